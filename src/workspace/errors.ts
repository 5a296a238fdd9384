/**
 * The errors of the attempt layer that callers catch by class: a stale attempt (the fence saw
 * a newer owner), a publish fence failure (the target branch moved), and the path-safety
 * refusals of the download and staging code, and a read-only task that wrote.
 *
 * @module
 */

/**
 * The attempt fence failed: Conductor no longer considers this attempt current (not
 * `IN_PROGRESS`, or another workflow, task id or retry count). The attempt must publish
 * nothing and report nothing.
 *
 * @example
 * ```ts
 * throw new StaleAttemptError("attempt fence failed: task t1 is COMPLETED; not publishing");
 * ```
 */
export class StaleAttemptError extends Error {
  override name = "StaleAttemptError";
  constructor(message: string, options?: ErrorOptions) {
    super(message, options);
  }
}

/**
 * Publication refused: the target branch moved under the attempt (its head is neither the
 * input ref nor a commit of an earlier attempt of the same task on top of it). Retryable:
 * the attempt ends `FAILED` and Conductor schedules a retry.
 */
export class PublishFenceError extends Error {
  override name = "PublishFenceError";
  constructor(message: string, options?: ErrorOptions) {
    super(message, options);
  }
}

/**
 * An object key (from lakeFS, so untrusted) or a local path would land outside the attempt
 * directory, or is otherwise unsafe to map between the two (absolute, `..`, backslash, NUL,
 * empty segment, the marker name).
 */
export class UnsafePathError extends Error {
  override name = "UnsafePathError";
  constructor(message: string, options?: ErrorOptions) {
    super(message, options);
  }
}

/**
 * A symlink was found where perago would write or upload through it: in a parent of a
 * download target, or in the attempt directory at staging (symlinks cannot be published).
 */
export class WorkspaceSymlinkError extends Error {
  override name = "WorkspaceSymlinkError";
  constructor(message: string, options?: ErrorOptions) {
    super(message, options);
  }
}

/** The task returned a value its result schema rejects. Retryable like any failure. */
export class TaskResultError extends Error {
  override name = "TaskResultError";
  constructor(message: string, options?: ErrorOptions) {
    super(message, options);
  }
}

/**
 * A read-only task changed its workspace. Only raised when the attempt verifies read-only
 * workspaces (`verifyReadOnly`, as `perago/testing` does); retryable like any failure.
 */
export class ReadOnlyWorkspaceError extends Error {
  override name = "ReadOnlyWorkspaceError";
  constructor(message: string, options?: ErrorOptions) {
    super(message, options);
  }
}
