import { defineCommand } from "@tsrun/runtime/src/cli/def.ts";
import { serveImagesCommand } from "../../grpc/serve.ts";
import { imageRootFlag, images, userErrors } from "./common.ts";

export default defineCommand({
  summary: "serve the image store over gRPC (tsrun.image.v1.Images) until SIGINT or SIGTERM",
  description:
    "Serves Import, Pull, List, Inspect, Remove, Bundle, RemoveBundle and Commit (packages/shim/proto/tsrun/image/v1/images.proto) on a unix socket (mode 0600) or a loopback TCP port, so that a program or an engine can ask for bundles. There is no authentication: keep it on a unix socket.",
  examples: ["tsrun image serve --address unix:///run/tsrun/images.sock"],
  flags: {
    ...imageRootFlag,
    address: { type: "string", description: 'where to listen: "unix:///path" or "127.0.0.1:PORT"', default: "unix:///run/tsrun/images.sock" },
  },
  args: [],
  run(_ctx, flags) {
    return userErrors(async () => {
      await serveImagesCommand({ address: flags.address, service: images(flags) });
      return 0;
    });
  },
});
