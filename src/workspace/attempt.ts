/**
 * One attempt of a task: input checks, a private attempt directory,
 * download, the task body with guardrails, and for writable tasks the fenced, incremental
 * publication to lakeFS. Every exception becomes an outcome; cleanup always runs. The phases
 * of a workspace task are in _workspace_attempt.ts, imported with the first attempt of such a
 * task, so a worker serving workspace-free tasks never loads them.
 *
 * @module
 */
import type { LakeFsApi } from "../lakefs/api.ts";
import type { DownloadCache } from "../lakefs/sync.ts";
import { getLogger, type Logger } from "../log/logger.ts";
import { isTerminalError, TaskInputError } from "../task/errors.ts";
import type { TaskDefinition } from "../task/types.ts";
import type { TaskMetricRecord } from "../task/metrics.ts";
import { StaleAttemptError } from "./errors.ts";
import {
  checkInputKeys,
  invokeTaskBody,
  type WorkspaceInput,
  type WorkspaceRefStyle,
} from "./_invoke.ts";
import { newOwner, registerOwner, unregisterOwner } from "./owners.ts";
import type { CurrentTaskState, PublicationKind } from "./publish.ts";
import type { WarmPool } from "./warm_pool.ts";
import { type AttemptState, type BodyResult, context } from "./_attempt_state.ts";
import { importLazily } from "../util/lazy_import.ts";
import { loadOnce } from "../util/lazy.ts";

export type { CurrentTaskState, PublicationKind, WorkspaceInput, WorkspaceRefStyle };

/** The Conductor identity of an attempt. */
export interface AttemptIdentity {
  workflowInstanceId: string;
  taskId: string;
  retryCount: number;
  referenceTaskName: string;
  seq: number;
  iteration: number;
  taskDefName: string;
}

/** A phase of an attempt, reported through {@linkcode AttemptOptions.onPhase}. */
export type AttemptPhase = "download" | "snapshot" | "run" | "stage" | "publish" | "cleanup";

/** Options of {@linkcode runAttempt}. */
export interface AttemptOptions {
  /** The loaded task. */
  task: TaskDefinition;
  /** The Conductor `inputData`. */
  input: unknown;
  attempt: AttemptIdentity;
  /** `PERAGO_WORKSPACE_ROOT`: attempt directories are made below it. */
  workspaceRoot: string;
  /** Worker id written into the attempt marker. */
  ownerWorkerId: string;
  /** perago's id of this execution. @default a random UUID (hex) */
  executionId?: string;
  /** `PERAGO_FAILURE_REASON_MAX_LENGTH`: `reasonForIncompletion` is cut to this. */
  failureReasonMaxLength: number;
  /** Required for workspace tasks. */
  lakefs?: LakeFsApi;
  /**
   * The fence: fetches the task fresh from Conductor. Required for writable tasks unless
   * `dryRun`.
   */
  loadCurrentAttempt?: (signal: AbortSignal) => Promise<CurrentTaskState>;
  /** Cancels the attempt (shutdown, lost lease); reaches the task function and every call. */
  signal?: AbortSignal;
  /** Logger of the attempt (src/log/logger.ts). @default getLogger("attempt") */
  logger?: Logger;
  /** Run the task but write nothing to lakeFS (no staging branch, no fence). @default false */
  dryRun?: boolean;
  /**
   * Snapshot read-only workspaces too and fail the attempt with `ReadOnlyWorkspaceError` when
   * the task changed one (otherwise a read-only task's writes are dropped without a word).
   * Costs the two snapshots read-only tasks skip; `perago/testing` turns it on.
   * @default false
   */
  verifyReadOnly?: boolean;
  /**
   * Objects downloaded and uploaded at once.
   * @default 24 downloads (as lakectl), 8 uploads
   */
  syncConcurrency?: number;
  /**
   * The host's object cache (src/lakefs/object_cache.ts): objects the host fetched before
   * are copied from it instead of downloaded. @default no cache
   */
  downloadCache?: DownloadCache;
  /**
   * Move the attempt directory into the workspace root's trash and remove it in the
   * background instead of before returning (`trashAttemptDir` in attempt_dir.ts: removing
   * 21,000 files took 0.9-2.9 s of a re-run). The caller awaits `trashedDirsRemoved()`
   * before its process exits. @default false
   */
  removeDirInBackground?: boolean;
  /**
   * The host's warm pool (warm_pool.ts): the attempt starts from a directory an ended attempt
   * of the same repository left (its files checked, the ones that differ fetched again), and
   * leaves its own there instead of removing it. @default no pool
   */
  warmPool?: WarmPool;
  /** Progress hook for the runtime and tests. */
  onPhase?: (phase: AttemptPhase) => void;
  /** Receives what the task records through `ctx.metrics` (checked already). */
  onMetric?: (record: TaskMetricRecord) => void;
  /**
   * Spelling of the reference type in the output's `workspace`: `snake` = `ref_type`,
   * `camel` = `refType` (`PERAGO_WORKSPACE_REF_STYLE`). @default "snake"
   */
  refStyle?: WorkspaceRefStyle;
}

/** Paths with sizes, for the change report. */
export interface AttemptChanges {
  added: { path: string; size: number }[];
  changed: { path: string; size: number }[];
  removed: { path: string; size: number }[];
}

/** What an attempt ended with. */
export interface AttemptOutcome {
  status: "COMPLETED" | "FAILED" | "FAILED_WITH_TERMINAL_ERROR";
  outputData?: Record<string, unknown>;
  reasonForIncompletion?: string;
  /** The fence saw a newer owner: the caller must not report anything. */
  stale: boolean;
  /** The ref in `outputData.workspace.ref` (workspace tasks that completed). */
  publishedRef?: string;
  /** What the task changed (writable tasks that got past the task body). */
  changes?: AttemptChanges;
  /** How a writable attempt's result reached the branch (completed, not dry-run, attempts). */
  publication?: PublicationKind;
  /** The class name of the error a failed attempt ended with (e.g. `ScopeConflictError`). */
  errorName?: string;
  durationMs: number;
}

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
