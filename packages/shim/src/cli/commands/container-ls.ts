// `tsrun container ls`: the containers of `run --image` on this state root, as `docker ps`
// lists them. Not `list` or `ps`: those keep runc's meaning (`list`: every container of the
// root with its bundle and pid; `ps ID`: a container's processes), which engines rely on.
import { existsSync } from "node:fs";
import { defineCommand } from "@tsrun/runtime/cli";
import { Store, status, type ContainerRecord } from "@tsrun/runtime";
import { imageRootFlag, images } from "./common.ts";
import { imageContainerBundle, monitorAlive, readExitRecord, readMonitorRecord } from "../../monitor/files.ts";
import { readRecord } from "../../network/attach.ts";
import { cniContainerId, recordPath } from "../../network/paths.ts";
import { imageStoreOf } from "./delete.ts";

interface Row {
  id: string;
  image: string;
  command: string;
  created: string;
  status: string;
  state: string;
  exitCode?: number;
  ports: string;
}

/** "3 seconds", "2 minutes", "About an hour", as Docker says how long ago. */
export function humanDuration(ms: number): string {
  const s = Math.round(ms / 1000);
  if (s < 1) return "Less than a second";
  if (s < 60) return `${s} second${s === 1 ? "" : "s"}`;
  const m = Math.round(s / 60);
  if (m === 1) return "About a minute";
  if (m < 60) return `${m} minutes`;
  const h = Math.round(s / 3600);
  if (h === 1) return "About an hour";
  if (h < 48) return `${h} hours`;
  return `${Math.round(h / 24)} days`;
}

function quoteCommand(args: string[]): string {
  const text = args.map((a) => (/^[\w@%+=:,./-]+$/.test(a) ? a : `'${a.replace(/'/g, `'\\''`)}'`)).join(" ");
  return `"${text.length > 20 ? `${text.slice(0, 19)}…` : text}"`;
}

function row(store: Store, rec: ContainerRecord, imageRoot: string, root: string, now: number): Row | undefined {
  const bundle = imageContainerBundle(rec.bundle, imageStoreOf(rec.bundle) ?? imageRoot, rec.id);
  const m = bundle && readMonitorRecord(bundle);
  if (!bundle || !m) return undefined;
  const st = status(store, rec);
  const exit = readExitRecord(bundle);
  const since = (iso: string) => humanDuration(now - Date.parse(iso));
  let text: string;
  if (st === "running") text = `Up ${since(rec.created)}${monitorAlive(m) ? "" : " (its monitor is gone: no log, no attach)"}`;
  else if (st === "paused") text = `Up ${since(rec.created)} (Paused)`;
  else if (st === "created") text = "Created";
  else text = exit ? `Exited (${exit.code}) ${since(exit.finished)} ago` : "Exited (status unknown: its monitor was killed)";
  const cid = cniContainerId(root, rec.id);
  const store0 = imageStoreOf(rec.bundle) ?? imageRoot;
  const net = st !== "stopped" && existsSync(recordPath(store0, cid)) ? readRecord(store0, cid) : undefined;
  const ports = (net?.ports ?? []).map((p) => `${p.hostIP ?? "0.0.0.0"}:${p.hostPort}->${p.containerPort}/${p.protocol}`).join(", ");
  return {
    id: rec.id,
    image: m.image,
    command: quoteCommand(rec.config.process?.args ?? []),
    created: `${since(rec.created)} ago`,
    status: text,
    state: st,
    ...(exit ? { exitCode: exit.code } : {}),
    ports,
  };
}

export default defineCommand({
  summary: "list the containers of `run --image` with image, command, status, age and ports (runc's `list` shows every container of the root)",
  description:
    "Lists the containers `tsrun run --image` made on this state root (--root), as `docker ps` does: running ones, or all with -a (a container is kept after it exits, until `tsrun delete`). Named `container ls`, not `list` or `ps`: those two keep their runc meaning (`tsrun list`: every container of the root, with pid and bundle; `tsrun ps ID`: the processes of one), which engines and scripts written for runc rely on.",
  examples: ["tsrun container ls", "tsrun container ls -a", "tsrun container ls -aq", "tsrun container ls --format json"],
  flags: {
    ...imageRootFlag,
    all: { type: "boolean", char: "a", description: "all containers, not only running ones" },
    quiet: { type: "boolean", char: "q", description: "only the ids" },
    format: { type: "string", description: "table or json (one object per container, in an array)", default: "table", options: ["table", "json"] },
  },
  args: [],
  run(ctx, flags) {
    const store = new Store(ctx.globals.root);
    const imageRoot = images(flags).root;
    const now = Date.now();
    const rows: Row[] = [];
    for (const id of store.ids()) {
      let rec: ContainerRecord;
      try {
        rec = store.read(id);
      } catch {
        continue; // deleted meanwhile, or damaged: `tsrun list` and `delete --force` deal with it
      }
      const r = row(store, rec, imageRoot, ctx.globals.root, now);
      if (r && (flags.all || r.state === "running" || r.state === "paused")) rows.push(r);
    }
    if (flags.format === "json") {
      ctx.stdout(`${JSON.stringify(rows, null, 2)}\n`);
      return 0;
    }
    if (flags.quiet) {
      ctx.stdout(rows.map((r) => `${r.id}\n`).join(""));
      return 0;
    }
    const head = ["CONTAINER ID", "IMAGE", "COMMAND", "CREATED", "STATUS", "PORTS"];
    const table = [head, ...rows.map((r) => [r.id, r.image, r.command, r.created, r.status, r.ports])];
    const widths = head.map((_, i) => Math.max(...table.map((t) => t[i]!.length)));
    ctx.stdout(table.map((t) => t.map((c, i) => (i === t.length - 1 ? c : c.padEnd(widths[i]! + 3))).join("").trimEnd() + "\n").join(""));
    return 0;
  },
});
