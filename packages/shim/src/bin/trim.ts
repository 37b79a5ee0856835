// What an idle shim daemon gives back. Most of its resident memory is the executable's own code
// and read-only data (the Bun runtime: ~35 of ~55 MB), touched once while it started (parsing,
// loading, first calls) and rarely again while its containers merely run. MADV_DONTNEED on those
// mappings drops this process's page-table entries for them, not the pages: they stay in the
// page cache (shared with every other tsrun process, reclaimable by the kernel, not counted in
// anyone's RSS), and a page used again is mapped back by a minor fault. That is safe only where
// every resident page is the file's own: a mapping that is not writable and holds no anonymous
// (copy-on-write) page. A read-only mapping that was written before it was made read-only (the
// loader's relocations, RELRO) holds anonymous pages whose content the file does not have, and is
// left alone, as is every writable one. The JS heap is collected first, so that the allocator
// may return what it frees.
import { readFileSync, readlinkSync } from "node:fs";
import { madvise } from "@tsrun/runtime/linux";

const MADV_DONTNEED = 4;

/**
 * The mappings of `exe` in a /proc/PID/smaps text whose resident pages are all the file's: not
 * writable, no anonymous pages; [start, end) of each.
 */
export function fileBackedRanges(smaps: string, exe: string): Array<[number, number]> {
  const out: Array<[number, number]> = [];
  let cur: { start: number; end: number; ok: boolean } | undefined;
  const flush = () => {
    if (cur?.ok) out.push([cur.start, cur.end]);
    cur = undefined;
  };
  for (const line of smaps.split("\n")) {
    const head = /^([0-9a-f]+)-([0-9a-f]+) (\S{4}) \S+ \S+ \d+\s*(.*)$/.exec(line);
    if (head) {
      flush();
      cur = { start: parseInt(head[1]!, 16), end: parseInt(head[2]!, 16), ok: head[4] === exe && head[3]![1] !== "w" };
      continue;
    }
    const anon = /^Anonymous:\s+(\d+) kB/.exec(line);
    if (anon && cur && Number(anon[1]) !== 0) cur.ok = false;
  }
  flush();
  return out;
}

/** Collects the heap and unmaps the executable's file-backed clean pages (see above); returns how many bytes were advised. */
export function trimResident(): number {
  Bun.gc(true);
  const exe = readlinkSync("/proc/self/exe");
  let advised = 0;
  for (const [start, end] of fileBackedRanges(readFileSync("/proc/self/smaps", "utf8"), exe)) {
    madvise(start, end - start, MADV_DONTNEED);
    advised += end - start;
  }
  return advised;
}
