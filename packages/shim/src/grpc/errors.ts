// How errors of the ImageService cross the wire: a gRPC status code the caller can act on, the
// error's message as the status details (never its stack: the stack describes the server, not
// the request), and the error's class name and, for ImageNotFound, the reference as trailers
// so that the client can rebuild an error that reads and tests like the local one.
import { Metadata, status, type ServiceError, type StatusObject } from "@grpc/grpc-js";
import { ImageNotFound } from "../image/service.ts";

export const ERROR_NAME_TRAILER = "tsrun-error-name";
export const IMAGE_REF_TRAILER = "tsrun-image-ref";

// Errors are recognised by name rather than by class so that this module does not load the
// image implementation (registry, unpack, …) just to classify its errors.
const invalidArgument = new Set([
  "InvalidRequestError", // convert.ts: empty required field, unknown enum value
  "ImageReferenceError", // reference.ts: unparsable image reference
  "ImportError", // import.ts: not an OCI layout or docker-archive, or an invalid one
  "ImageSpecError", // spec.ts: bundle options that make no runnable spec
  "UserResolutionError", // passwd.ts: user or group not in the image
  "NoMatchingPlatformError", // registry.ts: the image has no manifest for the platform asked for
  "TypeError",
]);

const byName: Record<string, status> = {
  ImageNotFound: status.NOT_FOUND,
  DigestMismatchError: status.DATA_LOSS,
  RegistryAuthError: status.UNAUTHENTICATED,
};

/** The gRPC status code for an error thrown by the ImageService. */
export function statusCodeOf(err: unknown): status {
  if (!(err instanceof Error)) return status.INTERNAL;
  const known = byName[err.name];
  if (known !== undefined) return known;
  if (invalidArgument.has(err.name) || /^invalid\b/i.test(err.message)) return status.INVALID_ARGUMENT;
  return status.INTERNAL;
}

/** The status a failed call ends with. */
export function errorToStatus(err: unknown): Partial<StatusObject> & { code: status; details: string } {
  const metadata = new Metadata();
  let details: string;
  if (err instanceof Error) {
    details = err.message !== "" ? err.message : err.name;
    metadata.set(ERROR_NAME_TRAILER, err.name);
    const ref = (err as { ref?: unknown }).ref;
    if (err.name === "ImageNotFound" && typeof ref === "string") metadata.set(IMAGE_REF_TRAILER, ref);
  } else {
    details = `non-Error thrown: ${String(err)}`;
  }
  return { code: statusCodeOf(err), details, metadata };
}

/** A failed call as seen by the client: the server's message, and its error's class name. */
export class ImageServiceError extends Error {
  override name: string;
  constructor(
    message: string,
    /** The gRPC status code (a value of grpc-js's `status`). */
    readonly code: status,
    /** The class name of the error on the server, when it sent one. */
    readonly remoteName: string | undefined,
  ) {
    super(message);
    this.name = remoteName ?? "ImageServiceError";
  }
}

function trailer(md: Metadata | undefined, key: string): string | undefined {
  const v = md?.get(key)[0];
  return typeof v === "string" ? v : undefined;
}

/**
 * The error a client call fails with. `ref` is the reference the call was about, for when a
 * NOT_FOUND comes without the trailer (from another implementation of the protocol).
 */
export function statusToError(err: ServiceError, address: string, ref: string | undefined): Error {
  const remoteName = trailer(err.metadata, ERROR_NAME_TRAILER);
  const details = err.details;
  if (err.code === status.NOT_FOUND) {
    const e = new ImageNotFound(trailer(err.metadata, IMAGE_REF_TRAILER) ?? ref ?? "");
    if (details !== "") e.message = details;
    return e;
  }
  if (remoteName === undefined) {
    // No trailer: the failure came from the transport or grpc-js itself, not from the service,
    // so say where we tried to go.
    const what = status[err.code] ?? String(err.code);
    if (err.code === status.UNAVAILABLE) return new ImageServiceError(`image service at ${address} is unavailable: ${details}`, err.code, undefined);
    return new ImageServiceError(`image service at ${address}: ${what}: ${details}`, err.code, undefined);
  }
  return new ImageServiceError(details, err.code, remoteName);
}
