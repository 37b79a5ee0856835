import { existsSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { cgroupManagerFromJSON, status, Store, type ContainerRecord } from "@tsrun/runtime";
import { defineCommand } from "@tsrun/runtime/cli";
import { imageRootFlag, images, userErrors } from "./common.ts";

/** Whether the cgroup is frozen already (paused by someone else): it is then left as it is. */
function frozenAlready(paths: Record<string, string>): boolean {
  const read = (f: string) => {
    try {
      return readFileSync(f, "utf8").trim();
    } catch {
      return "";
    }
  };
  if (paths.freezer !== undefined) return read(`${paths.freezer}/freezer.state`) === "FROZEN";
  return paths[""] !== undefined && read(`${paths[""]}/cgroup.freeze`) === "1";
}

/**
 * Runs `body` with the container's processes frozen, as `docker commit` pauses by default: a
 * process that keeps running could change the upper dir while it is read, and an fd walk that
 * refuses swapped files (diff.ts) would then fail rather than give a consistent layer. Whatever
 * is left in the cgroup of a stopped container is frozen too; an empty or removed cgroup has
 * nothing to freeze. Thawed afterwards, even on failure, unless it was paused before.
 */
export async function withContainerFrozen<T>(rec: ContainerRecord, body: () => Promise<T>): Promise<T> {
  const cg = rec.cgroup === undefined ? undefined : cgroupManagerFromJSON(rec.cgroup);
  if (cg === undefined || !cg.exists() || cg.pids().length === 0 || frozenAlready(cg.paths())) return body();
  cg.freeze();
  try {
    return await body();
  } finally {
    cg.thaw();
  }
}

export default defineCommand({
  summary: "make a new image from a container's changes to its image",
  description:
    "Turns what container ID changed in its root filesystem (the upper dir of its overlay: new and changed files, and deletions as whiteouts) into a new layer on top of its image, and records the result as image REF. The container must have been made from a bundle of `tsrun bundle --image` or `tsrun run --image`. A running container is frozen while its changes are read and thawed afterwards, as `docker commit` pauses it.",
  examples: ["tsrun commit web1 localhost/web:patched", "tsrun commit -m 'add config' -a ops web1 localhost/web:2"],
  flags: {
    ...imageRootFlag,
    author: { type: "string", char: "a", description: "author recorded in the image's history" },
    message: { type: "string", char: "m", description: "comment recorded in the image's history" },
    cmd: { type: "string", description: "new Cmd for the image, as a JSON array" },
    entrypoint: { type: "string", description: "new Entrypoint for the image, as a JSON array" },
    env: { type: "string", char: "e", description: "KEY=VALUE set in the image's Env; repeatable", multiple: true },
  },
  args: [
    { name: "id", description: "the container", required: true },
    { name: "ref", description: "reference for the new image", required: true },
  ],
  run(ctx, flags, args) {
    return userErrors(async () => {
      const svc = images(flags);
      const id = args[0]!;
      const store = new Store(ctx.globals.root);
      let bundle: string;
      let rec: ContainerRecord | undefined;
      if (store.exists(id)) {
        rec = store.read(id);
        // Still being set up: its rootfs may not be complete, and its cgroup not yet filled.
        if (status(store, rec) === "creating") throw new Error(`container ${id} is being created: commit it once it has been`);
        bundle = rec.bundle;
      } else {
        // `run --image` without --rm deletes the container but keeps its bundle: commit that.
        bundle = join(svc.root, "bundles", id);
        if (!existsSync(bundle)) throw new Error(`container ${id} does not exist on ${ctx.globals.root}, and ${svc.root} has no bundle of that name`);
      }
      const json = (what: string, v: string | undefined): string[] | undefined => {
        if (v === undefined) return undefined;
        let parsed: unknown;
        try {
          parsed = JSON.parse(v);
        } catch {
          throw new Error(`--${what} must be a JSON array of strings, e.g. '["sh","-c","echo hi"]'`);
        }
        if (!Array.isArray(parsed) || !parsed.every((x) => typeof x === "string")) throw new Error(`--${what} must be a JSON array of strings`);
        return parsed;
      };
      const cmd = json("cmd", flags.cmd);
      const entrypoint = json("entrypoint", flags.entrypoint);
      const changes = { ...(cmd ? { cmd } : {}), ...(entrypoint ? { entrypoint } : {}), ...(flags.env.length ? { env: flags.env } : {}) };
      const commit = () =>
        svc.commit({
          bundle,
          ref: args[1]!,
          ...(flags.author !== undefined ? { author: flags.author } : {}),
          ...(flags.message !== undefined ? { message: flags.message } : {}),
          ...(Object.keys(changes).length ? { changes } : {}),
        });
      const s = rec === undefined ? await commit() : await withContainerFrozen(rec, commit);
      ctx.stdout(`${s.name} ${s.digest}\n`);
      return 0;
    });
  },
});
