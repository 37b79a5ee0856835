// Errors on the wire: a gRPC status code and a message in google.rpc.Status. containerd maps the
// codes to its errdefs (NOT_FOUND on Kill and Delete is tolerated, UNIMPLEMENTED makes 2.x fall
// back from the v3 to the v2 service), so the code matters as much as the text.

export const Code = {
  OK: 0,
  CANCELLED: 1,
  UNKNOWN: 2,
  INVALID_ARGUMENT: 3,
  DEADLINE_EXCEEDED: 4,
  NOT_FOUND: 5,
  ALREADY_EXISTS: 6,
  PERMISSION_DENIED: 7,
  RESOURCE_EXHAUSTED: 8,
  FAILED_PRECONDITION: 9,
  ABORTED: 10,
  OUT_OF_RANGE: 11,
  UNIMPLEMENTED: 12,
  INTERNAL: 13,
  UNAVAILABLE: 14,
  DATA_LOSS: 15,
  UNAUTHENTICATED: 16,
} as const;

export type CodeValue = (typeof Code)[keyof typeof Code];

const NAMES = new Map<number, string>(Object.entries(Code).map(([k, v]) => [v, k]));

export function codeName(code: number): string {
  return NAMES.get(code) ?? `code ${code}`;
}

/** An error with a status code: thrown by handlers, and by the client for a failed call. */
export class TtrpcError extends Error {
  override name = "TtrpcError";
  constructor(
    readonly code: number,
    message: string,
  ) {
    super(message);
  }

  override toString(): string {
    return `${codeName(this.code)}: ${this.message}`;
  }
}

export const notFound = (message: string) => new TtrpcError(Code.NOT_FOUND, message);
export const invalidArgument = (message: string) => new TtrpcError(Code.INVALID_ARGUMENT, message);
export const failedPrecondition = (message: string) => new TtrpcError(Code.FAILED_PRECONDITION, message);
export const alreadyExists = (message: string) => new TtrpcError(Code.ALREADY_EXISTS, message);
export const unimplemented = (message: string) => new TtrpcError(Code.UNIMPLEMENTED, message);

/** The status for anything a handler threw: its own code, or UNKNOWN with the message (as ttrpc-go does). */
export function toStatus(err: unknown): { code: number; message: string } {
  if (err instanceof TtrpcError) return { code: err.code, message: err.message };
  if (err instanceof Error) return { code: Code.UNKNOWN, message: err.message };
  return { code: Code.UNKNOWN, message: String(err) };
}
