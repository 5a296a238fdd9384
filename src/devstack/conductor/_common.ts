/**
 * Small shared pieces of the demo Conductor: its HTTP error and JSON helpers.
 *
 * @module
 */

/** A JSON object. */
export type Json = Record<string, unknown>;

/** An error that becomes an HTTP answer `{status, message}`. */
export class ConductorHttpError extends Error {
  override name = "ConductorHttpError";
  /** The HTTP status of the answer. */
  readonly status: number;
  /** Extra fields of the answer's body. */
  readonly extra: Json;
  constructor(status: number, message: string, extra: Json = {}) {
    super(message);
    this.status = status;
    this.extra = extra;
  }
  /**
   * The body the real server sends: `{status, message, instance, retryable}` with the host name
   * as `instance`, or, for a failed bean validation, `{status, message, retryable,
   * validationErrors}` (Conductor gives those no instance).
   */
  body(): Json {
    if ("validationErrors" in this.extra) {
      return { status: this.status, message: this.message, retryable: false, ...this.extra };
    }
    return {
      status: this.status,
      message: this.message,
      instance: instanceName(),
      retryable: false,
      ...this.extra,
    };
  }
}

let instance: string | undefined;

/**
 * The host name, as Conductor names the instance in its error bodies; `localhost` when the
 * process may not read it (`--allow-sys=hostname`).
 */
function instanceName(): string {
  if (instance === undefined) {
    try {
      instance = Deno.hostname();
    } catch {
      instance = "localhost";
    }
  }
  return instance;
}

/** True for a plain JSON object (not an array, not null). */
export function isObject(value: unknown): value is Json {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}

/** `value` when it is a finite number, else `fallback`. */
export function num(value: unknown, fallback: number): number {
  return typeof value === "number" && Number.isFinite(value) ? value : fallback;
}
