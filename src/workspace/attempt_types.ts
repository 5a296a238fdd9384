/**
 * The public shapes of an attempt: who it is ({@linkcode AttemptIdentity}), what the caller
 * gives it ({@linkcode AttemptOptions}) and what it ends with ({@linkcode AttemptOutcome}).
 * The executor, `perago run` and `perago/testing` drive the same attempt through them, and
 * the attempt's phases read them, so they live apart from the code that runs it (only types:
 * importing them loads nothing); attempt.ts re-exports every one.
 *
 * @module
 */
import type { LakeFsApi } from "../lakefs/api.ts";
import type { DownloadCache } from "../lakefs/sync.ts";
import type { Logger } from "../log/logger.ts";
import type { TaskMetricRecord } from "../task/metrics.ts";
import type { TaskDefinition } from "../task/types.ts";
import type { WorkspaceRefStyle } from "./_invoke.ts";
import type { CurrentTaskState, PublicationKind } from "./publish.ts";
import type { WarmPool } from "./warm_pool.ts";

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
