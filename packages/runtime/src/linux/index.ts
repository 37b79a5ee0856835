// The Linux edge of tsrun: libc and the native executor through bun:ffi, constants, errno names.
// Importing this costs nothing: libc and libtsrun.so are opened on first use.
export * from "./constants.ts";
export { ERRNO, errnoName } from "./errno.ts";
export {
  close,
  fcntl,
  flock,
  getErrno,
  kill,
  killVerified,
  loopbackUp,
  mkfifo,
  mount,
  pidfdOpen,
  pidfdSendSignal,
  pipe,
  pollIn,
  sealedMemfd,
  prctl,
  sendBytes,
  setChildSubreaper,
  socketpair,
  strerror,
  SysError,
  umount2,
  waitpid,
  waitpidTimeout,
  type WaitStatus,
} from "./libc.ts";
export { ERROR_OP_PLAN, FD_KIND, MSG } from "./protocol.ts";
export { executorFd, sendFd, spawnExecutor, spawnWarmup, SyncChannel, SyncTimeout, type Message, type SpawnOptions, type Spawned } from "./native.ts";
