import { defineCommand } from "@tsrun/runtime/cli";
import { imageRootFlag, images, userErrors } from "./common.ts";

export default defineCommand({
  summary: "remove images (and the blobs and snapshots nothing else uses)",
  flags: { ...imageRootFlag },
  args: [{ name: "ref", description: "image reference", required: true }],
  variadic: true,
  run(ctx, flags, args) {
    return userErrors(async () => {
      const svc = images(flags);
      for (const ref of args) {
        await svc.remove(ref);
        ctx.stdout(`removed ${ref}\n`);
      }
      return 0;
    });
  },
});
