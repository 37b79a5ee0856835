import { readFileSync } from "node:fs";
import { defineCommand, CliError } from "@tsrun/runtime/cli";
import type { ServerTls } from "../../grpc/image-server.ts";
import { serveImagesCommand } from "../../grpc/serve.ts";
import { imageRootFlag, images, userErrors } from "./common.ts";

export default defineCommand({
  summary: "serve the image store over gRPC (tsrun.image.v1.Images) until SIGINT or SIGTERM",
  description:
    "Serves Import, Pull, List, Inspect, Remove, Bundle, RemoveBundle and Commit (packages/shim/proto/tsrun/image/v1/images.proto) so that a program or an engine can ask for bundles. " +
    "A caller can import any file and have bundles mounted as the user running the service, so callers must be authenticated: by default it listens on a unix socket made 0600; " +
    "a TCP address is accepted only with mutual TLS (--tls-cert, --tls-key and --tls-client-ca; every client must present a certificate signed by that CA).",
  examples: [
    "tsrun image serve --address unix:///run/tsrun/images.sock",
    "tsrun image serve --address 127.0.0.1:7070 --tls-cert server.pem --tls-key server.key --tls-client-ca clients-ca.pem",
  ],
  flags: {
    ...imageRootFlag,
    address: { type: "string", description: 'where to listen: "unix:///path", or "HOST:PORT" with the --tls-* flags', default: "unix:///run/tsrun/images.sock" },
    "tls-cert": { type: "string", description: "PEM file: the server's certificate chain (mutual TLS)" },
    "tls-key": { type: "string", description: "PEM file: the server certificate's private key (mutual TLS)" },
    "tls-client-ca": { type: "string", description: "PEM file: the CA that client certificates must be signed by (mutual TLS)" },
  },
  args: [],
  run(_ctx, flags) {
    return userErrors(async () => {
      const tls = tlsFlags(flags);
      await serveImagesCommand({ address: flags.address, service: images(flags), ...(tls !== undefined ? { tls } : {}) });
      return 0;
    });
  },
});

function tlsFlags(flags: { "tls-cert"?: string | undefined; "tls-key"?: string | undefined; "tls-client-ca"?: string | undefined }): ServerTls | undefined {
  const names = ["tls-cert", "tls-key", "tls-client-ca"] as const;
  const given = names.filter((n) => flags[n] !== undefined);
  if (given.length === 0) return undefined;
  if (given.length !== names.length)
    throw new CliError(`mutual TLS needs all of --tls-cert, --tls-key and --tls-client-ca; missing ${names.filter((n) => flags[n] === undefined).map((n) => `--${n}`).join(", ")}`);
  const read = (flag: (typeof names)[number]) => {
    const path = flags[flag]!;
    try {
      return readFileSync(path);
    } catch (e) {
      throw new CliError(`--${flag} ${path}: ${(e as Error).message}`);
    }
  };
  return { cert: read("tls-cert"), key: read("tls-key"), clientCa: read("tls-client-ca") };
}
