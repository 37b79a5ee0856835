import { defineCommand } from "@tsrun/runtime/cli";
import { imageRootFlag, images, userErrors } from "./common.ts";
import { progressDisplay } from "./image-progress.ts";

export default defineCommand({
  summary: "import an OCI image layout (dir or tar) or a docker-archive tar",
  description:
    "Imports every image of FILE into the image store: an OCI image layout (a directory or a tar of one, as `skopeo copy … oci:` or `umoci` make) or a docker-archive tar (`docker save`). Every blob is verified against its digest. Images are named by the layout's org.opencontainers.image.ref.name annotations or the archive's RepoTags, or by --name when FILE holds one image. On a terminal, each blob's progress is shown on stderr.",
  examples: ["tsrun image import busybox.tar", "tsrun image import --name localhost/demo:1 ./oci-layout"],
  flags: { ...imageRootFlag, name: { type: "string", description: "name (reference) to give the image" } },
  args: [{ name: "file", description: "OCI layout directory or tar, or docker-archive tar", required: true }],
  run(ctx, flags, args) {
    return userErrors(async () => {
      const display = progressDisplay();
      try {
        const done = await images(flags).import(args[0]!, {
          ...(flags.name !== undefined ? { name: flags.name } : {}),
          ...(display ? { onProgress: (e) => display.update(e) } : {}),
        });
        for (const i of done) ctx.stdout(`imported ${i.name} ${i.digest}\n`);
        return 0;
      } finally {
        display?.finish();
      }
    });
  },
});
