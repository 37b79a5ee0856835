import { defineCommand } from "../def.ts";
import { listContainers } from "../../container/lifecycle.ts";
import { Store } from "../../container/store.ts";

function table(rows: string[][]): string {
  const widths = rows[0]!.map((_, c) => Math.max(...rows.map((r) => r[c]!.length)));
  // runc pads every column to its width plus three spaces (tabwriter, minwidth 12).
  return rows.map((r) => r.map((cell, c) => (c === r.length - 1 ? cell : cell.padEnd(Math.max(widths[c]! + 3, 12)))).join("").trimEnd() + "\n").join("");
}

export default defineCommand({
  summary: "list the containers of this root",
  flags: {
    format: { type: "string", char: "f", description: "table or json", default: "table", options: ["table", "json"] },
    quiet: { type: "boolean", char: "q", description: "display only container IDs" },
  },
  args: [],
  run(ctx, flags) {
    const all = listContainers(new Store(ctx.globals.root));
    if (flags.quiet) ctx.stdout(all.map((s) => s.id + "\n").join(""));
    else if (flags.format === "json") ctx.stdout(JSON.stringify(all.map((s) => ({ ...s, owner: s.owner || "root" }))) + "\n");
    else ctx.stdout(table([["ID", "PID", "STATUS", "BUNDLE", "CREATED", "OWNER"], ...all.map((s) => [s.id, String(s.pid), s.status, s.bundle ?? "", String(s.created ?? ""), (s.owner as string) || "root"])]));
    return 0;
  },
});
