// Mount options → mount(2) flags, data, propagation and mount_setattr attributes. Pure.
import { MOUNT_OPTIONS, MS } from "@tsrun/ocispec/core";

export interface ParsedMountOptions {
  /** Flags for mount(2) (MS_BIND, MS_RDONLY, …), excluding propagation. */
  flags: number;
  /** Flags that the options cleared (rw clears MS_RDONLY …): for remounts that keep the rest. */
  cleared: number;
  /** Propagation changes, applied one by one after the mount (MS_SHARED|MS_REC …). */
  propagation: number[];
  /** Recursive attributes for mount_setattr(AT_RECURSIVE). */
  attrSet: number;
  attrClr: number;
  /** Filesystem-specific options, passed as mount data: "mode=755,size=65536k". */
  data: string[];
  /** tmpcopyup, idmap, ridmap. */
  extensions: string[];
}

export function parseMountOptions(options: readonly string[] = []): ParsedMountOptions {
  const out: ParsedMountOptions = { flags: 0, cleared: 0, propagation: [], attrSet: 0, attrClr: 0, data: [], extensions: [] };
  for (const o of options) {
    const known = MOUNT_OPTIONS[o];
    if (!known) {
      out.data.push(o);
      continue;
    }
    switch (known.kind) {
      case "flag":
        out.flags = (out.flags & ~known.clear) | known.set;
        out.cleared = (out.cleared | known.clear) & ~known.set;
        break;
      case "propagation":
        out.propagation.push(known.flag);
        break;
      case "recursive":
        out.attrSet = (out.attrSet & ~known.clear) | known.set;
        out.attrClr = (out.attrClr | known.clear) & ~known.set;
        break;
      case "extension":
        out.extensions.push(known.name);
        break;
    }
  }
  return out;
}

export function isBind(type: string | undefined, parsed: ParsedMountOptions): boolean {
  return type === "bind" || (parsed.flags & MS.BIND) !== 0;
}
