// The few file-system calls layer unpacking needs that node:fs lacks: device nodes (mknod) and
// extended attributes on the link itself (l*xattr, so a symlink in a layer is never followed).
// Bound through bun:ffi to libc on first use; failures throw the runtime's SysError with errno.
import { dlopen, FFIType } from "bun:ffi";
import { getErrno, SysError } from "@tsrun/runtime/src/linux/libc.ts";

const { i32, u32, u64, i64_fast, ptr } = FFIType;

function open() {
  return dlopen("libc.so.6", {
    mknod: { args: [ptr, u32, u64], returns: i32 },
    lsetxattr: { args: [ptr, ptr, ptr, u64, i32], returns: i32 },
    lgetxattr: { args: [ptr, ptr, ptr, u64], returns: i64_fast },
    llistxattr: { args: [ptr, ptr, u64], returns: i64_fast },
  });
}

let lib: ReturnType<typeof open>["symbols"] | undefined;
function libc(): ReturnType<typeof open>["symbols"] {
  return (lib ??= open().symbols);
}

const cstr = (s: string): Buffer => Buffer.from(`${s}\0`);

export const S_IFMT = 0o170000;
export const S_IFIFO = 0o010000;
export const S_IFCHR = 0o020000;
export const S_IFBLK = 0o060000;

export const ENODATA = 61;
export const EOPNOTSUPP = 95;

/** glibc's makedev: the 64-bit dev_t of Linux (12+20 bit major/minor split over two halves). */
export function makedev(major: number, minor: number): bigint {
  const ma = BigInt(major >>> 0);
  const mi = BigInt(minor >>> 0);
  return (mi & 0xffn) | ((ma & 0xfffn) << 8n) | ((mi & ~0xffn) << 12n) | ((ma & ~0xfffn) << 32n);
}

/** mknod(2); `mode` carries the file type (S_IFCHR, S_IFBLK, S_IFIFO) and permission bits. */
export function mknod(path: string, mode: number, major = 0, minor = 0): void {
  if (libc().mknod(cstr(path), mode, makedev(major, minor)) < 0) throw new SysError("mknod", getErrno(), path);
}

/** lsetxattr(2): sets an attribute on the path itself, never on a symlink's target. */
export function lsetxattr(path: string, name: string, value: Uint8Array): void {
  const v = value.length === 0 ? Buffer.alloc(1) : value;
  if (libc().lsetxattr(cstr(path), cstr(name), v, value.length, 0) < 0) throw new SysError("lsetxattr", getErrno(), `${name} on ${path}`);
}

/** lgetxattr(2); undefined when the attribute is not set (ENODATA) or the fs has none (EOPNOTSUPP). */
export function lgetxattr(path: string, name: string): Buffer | undefined {
  const p = cstr(path);
  const n = cstr(name);
  for (let size = 256; ; size *= 4) {
    const buf = Buffer.alloc(size);
    const r = Number(libc().lgetxattr(p, n, buf, size));
    if (r >= 0) return buf.subarray(0, r);
    const e = getErrno();
    if (e === ENODATA || e === EOPNOTSUPP) return undefined;
    if (e !== 34 /* ERANGE: grew since we asked */ || size > 1 << 24) throw new SysError("lgetxattr", e, `${name} on ${path}`);
  }
}

/** llistxattr(2): the attribute names of the path itself ([] where the fs keeps none). */
export function llistxattr(path: string): string[] {
  const p = cstr(path);
  for (let size = 1024; ; size *= 4) {
    const buf = Buffer.alloc(size);
    const r = Number(libc().llistxattr(p, buf, size));
    if (r >= 0)
      return buf
        .subarray(0, r)
        .toString("utf8")
        .split("\0")
        .filter((s) => s !== "");
    const e = getErrno();
    if (e === EOPNOTSUPP) return [];
    if (e !== 34 || size > 1 << 24) throw new SysError("llistxattr", e, path);
  }
}
