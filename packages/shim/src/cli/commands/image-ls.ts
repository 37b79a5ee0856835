import { defineCommand } from "@tsrun/runtime/cli";
import { humanSize, imageRootFlag, images, userErrors } from "./common.ts";

export default defineCommand({
  summary: "list the images of the image store",
  flags: {
    ...imageRootFlag,
    format: { type: "string", char: "f", description: "table or json", default: "table", options: ["table", "json"] },
    quiet: { type: "boolean", char: "q", description: "print the names only" },
  },
  args: [],
  run(ctx, flags) {
    return userErrors(async () => {
      const list = (await images(flags).list()).sort((a, b) => a.name.localeCompare(b.name));
      if (flags.quiet) ctx.stdout(list.map((i) => `${i.name}\n`).join(""));
      else if (flags.format === "json") ctx.stdout(`${JSON.stringify(list, null, 2)}\n`);
      else {
        const rows = [["NAME", "DIGEST", "SIZE", "PLATFORM", "CREATED"], ...list.map((i) => [i.name, i.digest.slice(0, 19), humanSize(i.size), i.platform, i.created])];
        const w = rows[0]!.map((_, c) => Math.max(...rows.map((r) => r[c]!.length)));
        ctx.stdout(rows.map((r) => `${r.map((v, c) => (c === r.length - 1 ? v : v.padEnd(w[c]!))).join("   ")}\n`).join(""));
      }
      return 0;
    });
  },
});
