/**
 * Errors of the Conductor client. Callers catch {@linkcode ConductorError} (every failed call)
 * and {@linkcode ConductorNotFoundError} (404: the task, workflow or definition is gone).
 *
 * @module
 */

/** What a {@linkcode ConductorError} knows about the failed call. */
export interface ConductorErrorDetails {
  /** The client operation, e.g. `updateTask`. */
  operation: string;
  /** HTTP status; `undefined` when no answer arrived (network error, timeout, bad body). */
  status?: number | undefined;
  /** The server's own message (`message` of its JSON error body, or the raw text). */
  serverMessage?: string | undefined;
  /** True for errors worth retrying: no answer, 429 or 5xx. */
  transient?: boolean;
  /** The wait the server asked for (`Retry-After`), ms. */
  retryAfterMs?: number | undefined;
  cause?: unknown;
}

/**
 * A Conductor call failed. The message reads `Conductor <operation> failed: <status>
 * <message>` and never contains credentials.
 *
 * @example
 * ```ts
 * import type { ConductorApi, Task } from "./api.ts";
 *
 * async function taskOrLater(client: ConductorApi, id: string): Promise<Task | "later"> {
 *   try {
 *     return await client.getTask(id);
 *   } catch (error) {
 *     if (error instanceof ConductorError && error.transient) return "later";
 *     throw error;
 *   }
 * }
 * ```
 */
export class ConductorError extends Error {
  override name = "ConductorError";
  /** The client operation that failed. */
  readonly operation: string;
  /** HTTP status, `undefined` when the server did not answer usefully. */
  readonly status: number | undefined;
  /** The server's message, if any. */
  readonly serverMessage: string | undefined;
  /** True when retrying may help (no answer, 429, 5xx). */
  readonly transient: boolean;
  /** The wait the server asked for before a retry, ms. */
  readonly retryAfterMs: number | undefined;

  constructor(details: ConductorErrorDetails, message?: string) {
    const what = details.status === undefined ? "" : `${details.status} `;
    super(
      message ??
        `Conductor ${details.operation} failed: ${what}${details.serverMessage ?? "no message"}`,
      { cause: details.cause },
    );
    this.operation = details.operation;
    this.status = details.status;
    this.serverMessage = details.serverMessage;
    this.transient = details.transient ??
      (details.status === undefined || details.status === 429 || details.status >= 500);
    this.retryAfterMs = details.retryAfterMs;
  }
}

/** The server answered 404 (or, for `getTask`, an empty 204 as Conductor 3.21.14 does). */
export class ConductorNotFoundError extends ConductorError {
  override name = "ConductorNotFoundError";

  constructor(details: Omit<ConductorErrorDetails, "transient">) {
    super({ ...details, transient: false });
  }
}

/**
 * True for a {@linkcode ConductorError} that says Conductor could not be reached: no answer, or
 * a gateway's or an unavailable server's (502, 503, 504). Unlike a 429 or a 500, such a call
 * is worth making again as soon as the server answers anything.
 */
export function isUnreachableConductorError(error: unknown): boolean {
  if (!(error instanceof ConductorError) || !error.transient) return false;
  const status = error.status;
  return status === undefined || status === 502 || status === 503 || status === 504;
}

/** True for a {@linkcode ConductorError} that retrying may cure. */
export function isTransientConductorError(error: unknown): boolean {
  return error instanceof ConductorError && error.transient;
}
