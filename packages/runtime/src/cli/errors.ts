import { TsrunError, type TsrunErrorOptions } from "../errors.ts";

/** A failure the user can act on: printed as is, exit status 1 (or the given one), no stack trace. */
export class CliError extends TsrunError {
  override name = "CliError";
  constructor(
    message: string,
    readonly exitCode = 1,
    options: TsrunErrorOptions = {},
  ) {
    super(message, options);
  }
}
