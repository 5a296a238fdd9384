/**
 * Errors thrown by the lakeFS client. Every one carries the HTTP status, the operation that
 * failed and the server's own message; none ever contains credentials or the Authorization
 * header.
 *
 * @module
 */

/** Details of a failed lakeFS call. */
export interface LakeFsErrorDetails {
  /** The client operation, e.g. `"listObjects"`. */
  operation: string;
  /** HTTP status; `0` when no HTTP answer arrived (network error, timeout, bad body). */
  status: number;
  /** The server's `message` (or a short description of what went wrong). */
  serverMessage: string;
  /**
   * Whether a retry may succeed: no answer arrived (network error, timeout), or 429, or 5xx.
   * @default true for 429 and 5xx, else false
   */
  transient?: boolean;
  /** The wait the server asked for (`Retry-After`), ms. */
  retryAfterMs?: number | undefined;
  /** The underlying error, if any. */
  cause?: unknown;
}

/**
 * A lakeFS call failed. Message: `lakeFS <operation> failed: <status> <server message>`.
 *
 * @example
 * ```ts
 * import type { LakeFsApi } from "./api.ts";
 *
 * async function branchExists(lakefs: LakeFsApi, repo: string, branch: string) {
 *   try {
 *     await lakefs.getBranch(repo, branch);
 *     return true;
 *   } catch (error) {
 *     if (error instanceof LakeFsNotFoundError) return false;
 *     throw error;
 *   }
 * }
 * ```
 */
export class LakeFsError extends Error {
  override name = "LakeFsError";
  /** HTTP status; `0` when no HTTP answer arrived. */
  readonly status: number;
  /** The client operation that failed. */
  readonly operation: string;
  /** The server's message. */
  readonly serverMessage: string;
  /** Whether a retry may succeed (see {@linkcode LakeFsErrorDetails.transient}). */
  readonly transient: boolean;
  /** The wait the server asked for before a retry, ms. */
  readonly retryAfterMs: number | undefined;

  constructor(details: LakeFsErrorDetails, message?: string) {
    super(
      message ??
        `lakeFS ${details.operation} failed: ${details.status} ${details.serverMessage}`,
      details.cause === undefined ? undefined : { cause: details.cause },
    );
    this.status = details.status;
    this.operation = details.operation;
    this.serverMessage = details.serverMessage;
    this.transient = details.transient ?? (details.status === 429 || details.status >= 500);
    this.retryAfterMs = details.retryAfterMs;
  }
}

/** 404: the repository, branch, commit or object does not exist. */
export class LakeFsNotFoundError extends LakeFsError {
  override name = "LakeFsNotFoundError";
}

/** 409: the thing exists already, or a merge conflicts. */
export class LakeFsConflictError extends LakeFsError {
  override name = "LakeFsConflictError";
}

/** 400 "no changes": a commit or merge that would change nothing. */
export class LakeFsNoChangesError extends LakeFsError {
  override name = "LakeFsNoChangesError";
}

/** 401: bad or missing credentials. Check LAKECTL_CREDENTIALS_* (never printed). */
export class LakeFsAuthError extends LakeFsError {
  override name = "LakeFsAuthError";
}

/** 412: a precondition failed (`If-None-Match: *` on an existing path, a hook failed). */
export class LakeFsPreconditionError extends LakeFsError {
  override name = "LakeFsPreconditionError";
}

/**
 * 403 on a protected branch: lakeFS branch protection refuses direct writes to a branch
 * matching a rule (staging objects, commits, hard resets); merges into it are allowed.
 * Publish to it by merging, or ask the repository admin to change its protection rules.
 */
export class LakeFsProtectedBranchError extends LakeFsError {
  override name = "LakeFsProtectedBranchError";
}

/**
 * Builds the right {@linkcode LakeFsError} subclass for an HTTP error status and message.
 *
 * @example
 * ```ts
 * lakeFsErrorFor({ operation: "commit", status: 400, serverMessage: "commit: no changes" });
 * // -> LakeFsNoChangesError
 * ```
 */
export function lakeFsErrorFor(details: LakeFsErrorDetails): LakeFsError {
  switch (details.status) {
    case 401:
      return new LakeFsAuthError(details);
    case 403:
      // lakeFS answers "protected branch", "cannot write to protected branch" or "cannot
      // commit to protected branch"; other 403s (a policy denial) stay plain.
      if (/protected branch/i.test(details.serverMessage)) {
        return new LakeFsProtectedBranchError(details);
      }
      return new LakeFsError(details);
    case 404:
      return new LakeFsNotFoundError(details);
    case 409:
      return new LakeFsConflictError(details);
    case 412:
      return new LakeFsPreconditionError(details);
    case 400:
      if (/no changes/i.test(details.serverMessage)) return new LakeFsNoChangesError(details);
      return new LakeFsError(details);
    default:
      return new LakeFsError(details);
  }
}
