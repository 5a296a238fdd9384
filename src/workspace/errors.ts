/**
 * The errors of the attempt layer that callers catch by class: a stale attempt (the fence saw
 * a newer owner), a refused publication (the attempt's scope changed on the target branch), a
 * bad input scope, the path-safety refusals of the download and staging code, and a
 * read-only task that wrote. Errors with `terminal: true` end the attempt
 * `FAILED_WITH_TERMINAL_ERROR`.
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
 * const error = new StaleAttemptError("attempt fence failed: task t1 is COMPLETED; not publishing");
 * error.name; // "StaleAttemptError"
 * ```
 */
export class StaleAttemptError extends Error {
  override name = "StaleAttemptError";
}

/**
 * Publication refused because of the target branch's state. The base class of
 * {@linkcode ScopeConflictError}; on its own (the branch cannot be read or walked) it is an
 * ordinary failure: the attempt ends `FAILED` and Conductor schedules a retry.
 */
export class PublishFenceError extends Error {
  override name = "PublishFenceError";
}

/**
 * Publication refused: something under the attempt's scope changed on the target branch
 * since the input ref (another writer of an overlapping scope published first), or changed
 * between the check and the merge. Terminal (`FAILED_WITH_TERMINAL_ERROR`): the ref is pinned
 * in the task input, so a retry of the same task would read the same stale ref and fail the
 * same way; the workflow has to run again on the new head.
 */
export class ScopeConflictError extends PublishFenceError {
  override name = "ScopeConflictError";
  /** Always true: the attempt reports `FAILED_WITH_TERMINAL_ERROR`. */
  readonly terminal = true;
  /** The attempt's scope (`""` = the whole repository). */
  readonly scope: string;
  /** Up to ten repository paths that changed under the scope. */
  readonly paths: readonly string[];
  constructor(
    message: string,
    options: ErrorOptions & { scope: string; paths: readonly string[] },
  ) {
    const { scope, paths, ...errorOptions } = options;
    super(message, errorOptions);
    this.scope = scope;
    this.paths = Object.freeze([...paths]);
  }
}

/**
 * The task input's `workspace.prefix` is malformed or outside the task's declared prefix.
 * Terminal: the same input can never succeed.
 */
export class WorkspaceScopeError extends Error {
  override name = "WorkspaceScopeError";
  /** Always true: the attempt reports `FAILED_WITH_TERMINAL_ERROR`. */
  readonly terminal = true;
}

/**
 * An object key (from lakeFS, so untrusted) or a local path would land outside the attempt
 * directory, or is otherwise impossible or unsafe to map between the two (absolute, `..` or
 * `.` segment, backslash, control character, empty segment, a segment too long for the
 * filesystem, a key that is a file and a folder at once, the marker name, a file outside the
 * scope). Terminal: the repository content at the input ref, or the task's own writes, would
 * fail the same way on every retry.
 */
export class UnsafePathError extends Error {
  override name = "UnsafePathError";
  /** Always true: the attempt reports `FAILED_WITH_TERMINAL_ERROR`. */
  readonly terminal = true;
}

/**
 * A symlink was found where perago would write or upload through it: in a parent of a
 * download target, or in the attempt directory at staging (symlinks cannot be published).
 */
export class WorkspaceSymlinkError extends Error {
  override name = "WorkspaceSymlinkError";
}

/** The task returned a value its result schema rejects. Retryable like any failure. */
export class TaskResultError extends Error {
  override name = "TaskResultError";
}

/**
 * A read-only task changed its workspace. Only raised when the attempt verifies read-only
 * workspaces (`verifyReadOnly`, as `perago/testing` does); retryable like any failure.
 */
export class ReadOnlyWorkspaceError extends Error {
  override name = "ReadOnlyWorkspaceError";
}
