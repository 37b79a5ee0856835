// The `serve` command's body: the image service in the foreground until it is told to stop.
import type { ImageService } from "../image/service.ts";
import { serveImages, type ServerTls } from "./image-server.ts";

export interface ServeImagesCommandOptions {
  /** "unix:///path", or "host:port" with `tls`. */
  address: string;
  /** Mutual TLS (required for a TCP address). */
  tls?: ServerTls;
  service: ImageService;
  /** Stops serving when aborted, like a signal (for embedding and tests). */
  signal?: AbortSignal;
  /** Where progress lines go (default: stderr, so stdout stays free for a caller's protocol). */
  log?: (line: string) => void;
  /** How long calls in progress may take to finish once stopping (default 10 s). */
  graceMs?: number;
}

/**
 * Serves `service` at `address` until SIGINT or SIGTERM (or `signal`), then stops taking calls,
 * lets those in progress finish and removes the socket. Resolves once everything is closed;
 * rejects only if the server cannot start.
 */
export async function serveImagesCommand(opts: ServeImagesCommandOptions): Promise<void> {
  const log = opts.log ?? ((line: string) => process.stderr.write(`${line}\n`));
  const server = await serveImages(opts.service, opts.address, {
    ...(opts.tls !== undefined ? { tls: opts.tls } : {}),
    // The caller only sees the message; the stack belongs in the server's log.
    onInternalError: (rpc, err) => log(`image service: ${rpc} failed: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}`),
  });
  log(`image service listening on ${server.address}${opts.tls !== undefined ? " (mutual TLS)" : ""}`);

  const stopped = await new Promise<string>((resolve) => {
    const onSignal = (sig: NodeJS.Signals) => finish(sig);
    const onAbort = () => finish("abort");
    function finish(why: string): void {
      process.off("SIGINT", onSignal);
      process.off("SIGTERM", onSignal);
      opts.signal?.removeEventListener("abort", onAbort);
      resolve(why);
    }
    process.on("SIGINT", onSignal);
    process.on("SIGTERM", onSignal);
    if (opts.signal?.aborted === true) finish("abort");
    else opts.signal?.addEventListener("abort", onAbort, { once: true });
  });

  log(`image service stopping (${stopped})`);
  await server.close(opts.graceMs ?? 10_000);
}
