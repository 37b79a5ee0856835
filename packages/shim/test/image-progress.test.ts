// The progress display of pull, push and import as a unit: what a row says, how the display
// redraws in place on a terminal, and that off a terminal there is no display at all.
import { expect, test } from "bun:test";
import { blobLabel, formatRate, progressDisplay, ProgressDisplay, renderProgress, renderRow, type ProgressRow } from "../src/cli/commands/image-progress.ts";

const D = `sha256:${"ab12cd34ef56".repeat(5)}abcd`;

test("a row shows bytes done of total, a bar and the rate; finished and skipped rows say so", () => {
  const row: ProgressRow = { label: "layer 1 of 2 ab12cd34ef56", completed: 1_500_000, total: 3_000_000, state: "data", startedAt: 0, startBytes: 0 };
  expect(renderRow(row, 1000)).toBe("layer 1 of 2 ab12cd34ef56  [==========>         ]  1.50 MB / 3.00 MB  1.50 MB/s");
  // a resumed download's rate counts only what moved in this run
  expect(renderRow({ ...row, startBytes: 1_000_000 }, 1000)).toEndWith("500 kB/s");
  expect(renderRow({ ...row, state: "done", completed: 3_000_000, endedAt: 2000 }, 9000)).toBe("layer 1 of 2 ab12cd34ef56  done  3.00 MB  1.50 MB/s");
  expect(renderRow({ ...row, state: "exists" }, 1000)).toBe("layer 1 of 2 ab12cd34ef56  already in the registry");
  expect(renderRow({ ...row, state: "cached" }, 1000)).toBe("layer 1 of 2 ab12cd34ef56  already in the store");
  expect(renderRow({ ...row, completed: 0 }, 0)).toBe("layer 1 of 2 ab12cd34ef56  [>                   ]  0 B / 3.00 MB");
  expect(renderRow({ ...row, state: "retry" }, 1000)).toEndWith("(retrying)");
  expect(formatRate(999)).toBe("999 B/s");
  // labels line up
  const lines = renderProgress([{ ...row, label: "config x" }, row], 1000);
  expect(lines[0]!.indexOf("[")).toBe(lines[1]!.indexOf("["));
});

test("labels: role and short digest; an archive's blob path becomes its short digest; long paths are cut from the left", () => {
  expect(blobLabel({ what: "config", digest: D })).toBe("config ab12cd34ef56");
  expect(blobLabel({ what: `blobs/sha256/${D.slice(7)}` })).toBe("ab12cd34ef56");
  const long = blobLabel({ what: `${"x".repeat(60)}/layer.tar` });
  expect(long).toHaveLength(40);
  expect(long).toEndWith("/layer.tar");
});

test("the display redraws its rows in place, at most every interval, and always on a row's end", () => {
  let now = 0;
  const out: string[] = [];
  const d = new ProgressDisplay((t) => out.push(t), () => now, 100);
  d.update({ what: "layer 1 of 1", digest: D, completed: 0, total: 1000, state: "start" });
  expect(out).toHaveLength(1);
  expect(out[0]).toBe("\r\x1b[2Klayer 1 of 1 ab12cd34ef56  [>                   ]  0 B / 1.00 kB\n");
  now = 50;
  d.update({ what: "layer 1 of 1", digest: D, completed: 500, total: 1000, state: "data" });
  expect(out).toHaveLength(1); // too soon
  now = 100;
  d.update({ what: "config", digest: D.replace("ab", "ff"), completed: 10, total: 10, state: "exists" });
  expect(out).toHaveLength(2);
  // back up over the one row drawn, then both rows
  expect(out[1]!.startsWith("\x1b[1A\r\x1b[2K")).toBe(true);
  expect(out[1]!.split("\n").filter(Boolean)).toHaveLength(2);
  now = 120;
  d.update({ what: "layer 1 of 1", digest: D, completed: 1000, total: 1000, state: "done" });
  expect(out).toHaveLength(3);
  expect(out[2]).toContain("done  1.00 kB");
  d.note("a note");
  expect(out.slice(3).join("")).toStartWith("\x1b[2A\x1b[Ja note\n");
});

test("no display off a terminal or on a dumb one", () => {
  const sink = { write: () => true };
  expect(progressDisplay({ ...sink, isTTY: false }, {})).toBeUndefined();
  expect(progressDisplay(sink, {})).toBeUndefined();
  expect(progressDisplay({ ...sink, isTTY: true }, { TERM: "dumb" })).toBeUndefined();
  expect(progressDisplay({ ...sink, isTTY: true }, { TERM: "xterm" })).toBeInstanceOf(ProgressDisplay);
});
