/**
 * An error the user can act on (bad input, a container in the wrong state, a host without a
 * feature): printed as its message alone, exit status 1. Anything else is a bug in tsrun.
 */
export class TsrunError extends Error {
  override name = "TsrunError";
}
