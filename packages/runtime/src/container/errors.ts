/** A container operation that failed for a reason the user can act on; exit status 1. */
export class ContainerError extends Error {
  override name = "ContainerError";
}
