import { TsrunError } from "../errors.ts";

/** A container operation that failed for a reason the user can act on. */
export class ContainerError extends TsrunError {
  override name = "ContainerError";
}
