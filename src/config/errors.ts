/**
 * The one error type of the configuration loader.
 *
 * @module
 */

/**
 * A configuration value is missing, malformed or unusable. The message is one line naming the
 * variable and the accepted form, written to be printed as is (`error: <message>`); it never
 * holds a secret value.
 *
 * @example
 * ```ts
 * const error = new ConfigError(
 *   "PERAGO_LOG_RETENTION must be a positive day count such as '7d' or '30d'",
 *   { variable: "PERAGO_LOG_RETENTION" },
 * );
 * error.variable; // "PERAGO_LOG_RETENTION"
 * ```
 */
export class ConfigError extends Error {
  override readonly name = "ConfigError";
  /** The environment variable at fault, when there is one. */
  readonly variable: string | undefined;

  /** Creates the error; `variable` names the variable at fault, `cause` the underlying error. */
  constructor(message: string, options: { variable?: string; cause?: unknown } = {}) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.variable = options.variable;
  }
}
