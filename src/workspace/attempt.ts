/**
 * One attempt of a task: input checks, a private attempt directory,
 * download, the task body with guardrails, and for writable tasks the fenced, incremental
 * publication to lakeFS. Every exception becomes an outcome; cleanup always runs. The phases
 * of a workspace task are in _workspace_attempt.ts, imported with the first attempt of such a
 * task, so a worker serving workspace-free tasks never loads them. Its options and outcome
 * are typed in attempt_types.ts and re-exported here: callers import this module only.
 *
 * @module
 */
import type { LakeFsApi } from "../lakefs/api.ts";
import { getLogger } from "../log/logger.ts";
import { isTerminalError, TaskInputError } from "../task/errors.ts";
import { StaleAttemptError } from "./errors.ts";
import {
  checkInputKeys,
  invokeTaskBody,
  type WorkspaceInput,
  type WorkspaceRefStyle,
} from "./_invoke.ts";
import { newOwner, registerOwner, unregisterOwner } from "./owners.ts";
import type { CurrentTaskState, PublicationKind } from "./publish.ts";
import { type AttemptState, type BodyResult, context } from "./_attempt_state.ts";
import type { AttemptOptions, AttemptOutcome } from "./attempt_types.ts";
import { importLazily } from "../util/lazy_import.ts";
import { loadOnce } from "../util/lazy.ts";

export type { CurrentTaskState, PublicationKind, WorkspaceInput, WorkspaceRefStyle };
export type {
  AttemptChanges,
  AttemptIdentity,
  AttemptOptions,
  AttemptOutcome,
  AttemptPhase,
} from "./attempt_types.ts";

/**
 * Cuts `<ErrorName>: <message>` to `maxLength` code points: the Conductor
 * `reasonForIncompletion` of a failed attempt.
 *
 * @example
 * ```ts
 * failureReason(new TypeError("bad"), 500); // "TypeError: bad"
 * ```
 */
export function failureReason(error: unknown, maxLength: number): string {
  const text = error instanceof Error
    ? `${error.name}: ${error.message}`
    : `Error: ${typeof error === "string" ? error : safeString(error)}`;
  const chars = Array.from(text);
  return chars.length <= maxLength ? text : chars.slice(0, Math.max(0, maxLength)).join("");
}

function safeString(value: unknown): string {
  try {
    return JSON.stringify(value) ?? String(value);
  } catch {
    return String(value);
  }
}

/**
 * Fills a missing `ref` of a workspace input with the head commit of its branch (what
 * `perago run` does for inputs written by hand). Other fields are left for validation.
 *
 * Requires `--allow-net` to the lakeFS host.
 */
export async function resolveInputRef(
  lakefs: LakeFsApi,
  workspaceInput: Record<string, unknown>,
  signal?: AbortSignal,
): Promise<Record<string, unknown>> {
  if (workspaceInput.ref !== undefined && workspaceInput.ref !== null) return workspaceInput;
  const { repository, branch } = workspaceInput;
  if (typeof repository !== "string" || typeof branch !== "string") {
    throw new TaskInputError(
      "invalid workspace input: repository and branch must be strings; fix the input file",
    );
  }
  const head = await lakefs.getBranch(repository, branch, signal);
  return { ...workspaceInput, ref: head.commit_id };
}

/**
 * Runs one attempt and returns its outcome; never throws for anything the task, the input or
 * the servers do (only for a programming error in `options`, as a `TypeError`).
 *
 * - Input keys must be exactly `{workspace, params}` (workspace tasks) or `{params}`.
 * - `TaskTerminalError` and pre-guardrail violations give `FAILED_WITH_TERMINAL_ERROR`;
 *   everything else `FAILED`, with `reasonForIncompletion` `<ErrorName>: <message>` cut to
 *   `failureReasonMaxLength`. A failed fence gives `stale: true`: report nothing.
 * - Finally, always: the staging branch is deleted (a failure is logged, never masks the
 *   outcome), the attempt directory removed, the owner token unregistered.
 *
 * Requires `--allow-read`/`--allow-write` on the workspace root and `--allow-net` to lakeFS.
 *
 * @example
 * ```ts ignore
 * // As the executor does (executor.ts), for a Conductor task `conductorTask` of `task`:
 * const outcome = await runAttempt({
 *   task, input: conductorTask.inputData, attempt: identity, workspaceRoot: "/var/lib/perago/ws",
 *   ownerWorkerId: "normalize0001", failureReasonMaxLength: 500, lakefs,
 *   loadCurrentAttempt: (signal) => conductor.getTask(identity.taskId, signal),
 * });
 * if (!outcome.stale) {
 *   await conductor.updateTask({
 *     workflowInstanceId: identity.workflowInstanceId, taskId: identity.taskId,
 *     status: outcome.status, outputData: outcome.outputData,
 *     reasonForIncompletion: outcome.reasonForIncompletion,
 *   });
 * }
 * ```
 */
export async function runAttempt(options: AttemptOptions): Promise<AttemptOutcome> {
  const started = performance.now();
  const spec = options.task.workspace;
  if (!Number.isInteger(options.failureReasonMaxLength) || options.failureReasonMaxLength < 0) {
    throw new TypeError("runAttempt: failureReasonMaxLength must be a non-negative integer");
  }
  if (
    spec !== undefined && !spec.readOnly && !options.dryRun &&
    options.loadCurrentAttempt === undefined
  ) {
    throw new TypeError(
      `runAttempt: writable task ${JSON.stringify(options.task.name)} needs ` +
        "loadCurrentAttempt (the fence) unless dryRun",
    );
  }
  const signal = options.signal ?? new AbortController().signal;
  const executionId = options.executionId ?? crypto.randomUUID().replaceAll("-", "");
  const log = (options.logger ?? getLogger("attempt")).with({
    workflow_instance_id: options.attempt.workflowInstanceId,
    task_id: options.attempt.taskId,
    retry_count: options.attempt.retryCount,
    execution_id: executionId,
    task_def_name: options.attempt.taskDefName,
  });
  const state: AttemptState = {
    options,
    signal,
    log,
    info: Object.freeze({
      workflowInstanceId: options.attempt.workflowInstanceId,
      taskId: options.attempt.taskId,
      retryCount: options.attempt.retryCount,
      executionId,
      taskDefName: options.attempt.taskDefName,
    }),
  };
  const owner = newOwner(options.ownerWorkerId);
  registerOwner(owner);
  let outcome: AttemptOutcome;
  // A workspace task's phases, loaded with its first attempt (see _workspace_attempt.ts).
  let phases: WorkspacePhases | undefined;
  try {
    if (spec !== undefined) phases = await loadWorkspacePhases();
    const body = phases === undefined
      ? await runWorkspaceFree(state)
      : await phases.runWorkspace(state, owner);
    outcome = {
      status: "COMPLETED",
      outputData: body.output,
      stale: false,
      ...(body.publishedRef === undefined ? {} : { publishedRef: body.publishedRef }),
      ...(state.changes === undefined ? {} : { changes: state.changes }),
      ...(body.publication === undefined ? {} : { publication: body.publication }),
      durationMs: 0,
    };
  } catch (error) {
    const stale = error instanceof StaleAttemptError;
    outcome = {
      status: isTerminalError(error) ? "FAILED_WITH_TERMINAL_ERROR" : "FAILED",
      reasonForIncompletion: failureReason(error, options.failureReasonMaxLength),
      stale,
      ...(state.changes === undefined ? {} : { changes: state.changes }),
      errorName: error instanceof Error ? error.name : "Error",
      durationMs: 0,
    };
    log.warn("attempt failed: {reason}", {
      reason: outcome.reasonForIncompletion,
      status: outcome.status,
      stale,
    });
  } finally {
    if (state.staging !== undefined || state.dir !== undefined) options.onPhase?.("cleanup");
    // Only a workspace attempt has a directory or a staging branch to clean up.
    await phases?.cleanup(state, owner.token);
    unregisterOwner(owner);
  }
  outcome.durationMs = Math.round(performance.now() - started);
  return outcome;
}

/** The phases of a workspace attempt (_workspace_attempt.ts). */
type WorkspacePhases = typeof import("./_workspace_attempt.ts");

/** Imports the workspace phases on the first attempt of a workspace task. */
const loadWorkspacePhases = loadOnce(() =>
  importLazily<WorkspacePhases>("workspace/_workspace_attempt.ts")
);

/**
 * Starts loading the code of a workspace task's attempt before {@linkcode runAttempt} needs
 * it, so that the loading overlaps other start-up work (a `perago run` waiting for lakeFS);
 * never rejects (a failed load is reported by the attempt, which loads again).
 */
export function preloadWorkspacePhases(): void {
  loadWorkspacePhases().catch(() => {});
}

async function runWorkspaceFree(state: AttemptState): Promise<BodyResult> {
  const { options } = state;
  checkInputKeys(options.input, false);
  const result = await invokeTaskBody(
    options.task,
    options.input.params,
    context(state, undefined),
    () => options.onPhase?.("run"),
  );
  return { output: { result } };
}
