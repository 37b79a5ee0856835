import { defineCommand } from "@tsrun/runtime/cli";
import { imageRootFlag, images, userErrors } from "./common.ts";

export default defineCommand({
  summary: "show an image's manifest, config and layers as JSON",
  flags: { ...imageRootFlag },
  args: [{ name: "ref", description: "image reference", required: true }],
  run(ctx, flags, args) {
    return userErrors(async () => {
      ctx.stdout(`${JSON.stringify(await images(flags).inspect(args[0]!), null, 2)}\n`);
      return 0;
    });
  },
});
