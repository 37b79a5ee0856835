import { defineCommand } from "@tsrun/runtime/cli";
import { imageRootFlag, images, registryOptions, userErrors } from "./common.ts";
import { progressDisplay } from "./image-progress.ts";

export default defineCommand({
  summary: "push an image to an OCI distribution registry",
  description:
    "Uploads REF's config, layers and manifest (an index with all its manifests, when the store holds them all; else the host platform's manifest) from the image store to the registry its name says, or to DEST. Blobs the registry already has are not uploaded again; every blob is checked against its digest as it is read. Registries on loopback are spoken to over plain HTTP, others over HTTPS unless --plain-http. Credentials: --username with the password in $TSRUN_REGISTRY_PASSWORD. On a terminal, each layer's progress is shown on stderr.",
  examples: ["tsrun image push localhost:5000/demo:1", "tsrun image push localhost/busybox:motd registry.example:5000/team/busybox:motd"],
  flags: {
    ...imageRootFlag,
    "plain-http": { type: "boolean", description: "speak HTTP, not HTTPS, to the registry" },
    username: { type: "string", description: "registry user name (password from $TSRUN_REGISTRY_PASSWORD)" },
  },
  args: [
    { name: "ref", description: "image reference in the store", required: true },
    { name: "dest", description: "reference to push to (default REF)" },
  ],
  run(ctx, flags, args) {
    return userErrors(async () => {
      const registry = registryOptions(flags);
      const display = progressDisplay();
      try {
        const r = await images(flags).push(
          {
            ref: args[0]!,
            ...(args[1] !== undefined ? { dest: args[1] } : {}),
            ...registry,
          },
          {
            onProgress: (e) => {
              if (e.type === "blob") display?.update(e);
              // Said even off a terminal: what lands in the registry differs from what was asked for.
              else if (e.type === "partial-index") {
                const platform = e.pushed.platform ? `${e.pushed.platform.os}/${e.pushed.platform.architecture} ` : "";
                const line = `tsrun: the image store lacks ${e.missing} of the manifests index ${e.index.digest} lists; pushing its ${platform}manifest ${e.pushed.digest} alone`;
                if (display) display.note(line);
                else process.stderr.write(`${line}\n`);
              }
            },
          },
        );
        ctx.stdout(`pushed ${r.name} ${r.digest}\n`);
        return 0;
      } finally {
        display?.finish();
      }
    });
  },
});
