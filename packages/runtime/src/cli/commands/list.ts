import { readFileSync, statSync } from "node:fs";
import { defineCommand } from "../def.ts";
import { listContainers } from "../../container/lifecycle.ts";
import { Store } from "../../container/store.ts";

function table(rows: string[][]): string {
  const widths = rows[0]!.map((_, c) => Math.max(...rows.map((r) => r[c]!.length)));
  // runc pads every column to its width plus three spaces (tabwriter, minwidth 12).
  return rows.map((r) => r.map((cell, c) => (c === r.length - 1 ? cell : cell.padEnd(Math.max(widths[c]! + 3, 12)))).join("").trimEnd() + "\n").join("");
}

/**
 * The owner runc's `list` shows: the user owning the container's state directory (the user who
 * created it: a rootless root lists its own containers), by name from /etc/passwd, else "#uid".
 */
function owners(store: Store): (id: string) => string {
  let names: Map<number, string> | undefined;
  return (id) => {
    let uid: number;
    try {
      uid = statSync(store.dir(id)).uid;
    } catch {
      return "";
    }
    names ??= passwdNames();
    return names.get(uid) ?? `#${uid}`;
  };
}

function passwdNames(): Map<number, string> {
  const names = new Map<number, string>();
  let text = "";
  try {
    text = readFileSync("/etc/passwd", "utf8");
  } catch {
    return names;
  }
  for (const line of text.split("\n")) {
    const [name, , uid] = line.split(":");
    const n = Number(uid);
    if (name && uid && Number.isInteger(n) && !names.has(n)) names.set(n, name);
  }
  return names;
}

export default defineCommand({
  summary: "list the containers of this root",
  flags: {
    format: { type: "string", char: "f", description: "table or json", default: "table", options: ["table", "json"] },
    quiet: { type: "boolean", char: "q", description: "display only container IDs" },
  },
  args: [],
  run(ctx, flags) {
    const store = new Store(ctx.globals.root);
    const all = listContainers(store);
    if (flags.quiet) {
      ctx.stdout(all.map((s) => s.id + "\n").join(""));
      return 0;
    }
    const owner = owners(store);
    const rows: Array<(typeof all)[number]> = all.map((s) => ({ ...s, owner: owner(s.id) }));
    if (flags.format === "json") ctx.stdout(JSON.stringify(rows) + "\n");
    else ctx.stdout(table([["ID", "PID", "STATUS", "BUNDLE", "CREATED", "OWNER"], ...rows.map((s) => [s.id, String(s.pid), s.status, s.bundle ?? "", String(s.created ?? ""), String(s.owner)])]));
    return 0;
  },
});
