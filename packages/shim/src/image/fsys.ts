// The file-system calls layer unpacking and commit need that node:fs lacks (device nodes, extended
// attributes on the link itself, *at calls on directory fds), from the runtime's one libc binding, and the file-type bits
// the image code compares.
export { lgetxattr, llistxattr, lsetxattr, makedev, mknod } from "@tsrun/runtime/linux";
// Walking a tree a running process may change: every name looked up in its parent dir's fd.
export { AT_EMPTY_PATH, AT_FDCWD, AT_SYMLINK_NOFOLLOW, fdGetxattr, fdListxattr, fstatat, O_PATH, openat, readdirFd, readlinkat, type FileStat } from "@tsrun/runtime/linux";

export const S_IFMT = 0o170000;
export const S_IFIFO = 0o010000;
export const S_IFCHR = 0o020000;
export const S_IFBLK = 0o060000;

export const ENODATA = 61;
export const EOPNOTSUPP = 95;
