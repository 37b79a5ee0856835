import { defineCommand } from "@tsrun/runtime/cli";
import { imageRootFlag, images, registryOptions, userErrors } from "./common.ts";
import { progressDisplay } from "./image-progress.ts";

export default defineCommand({
  summary: "pull an image from an OCI distribution registry",
  description:
    "Fetches REF's manifest (the host platform's, from an index), config and layers into the image store, verifying every blob; a pull that was cut resumes where it stopped. On a terminal, each layer's progress is shown on stderr. Registries on loopback are spoken to over plain HTTP, others over HTTPS unless --plain-http. Credentials: --username with the password in $TSRUN_REGISTRY_PASSWORD.",
  examples: ["tsrun image pull docker.io/library/busybox:latest", "tsrun image pull --platform linux/arm64 localhost:5000/demo:1"],
  flags: {
    ...imageRootFlag,
    platform: { type: "string", description: 'platform to pull, "os/arch[/variant]" (default: this host\'s)' },
    "plain-http": { type: "boolean", description: "speak HTTP, not HTTPS, to the registry" },
    username: { type: "string", description: "registry user name (password from $TSRUN_REGISTRY_PASSWORD)" },
  },
  args: [{ name: "ref", description: "image reference", required: true }],
  run(ctx, flags, args) {
    return userErrors(async () => {
      const registry = registryOptions(flags);
      const display = progressDisplay();
      try {
        const s = await images(flags).pull(
          {
            ref: args[0]!,
            ...(flags.platform !== undefined ? { platform: flags.platform } : {}),
            ...registry,
          },
          { onProgress: (e) => e.type === "blob" && display?.update(e) },
        );
        ctx.stdout(`pulled ${s.name} ${s.digest}\n`);
        return 0;
      } finally {
        display?.finish();
      }
    });
  },
});
