/**
 * What the phases of one attempt share: its state, what its body produced, a workspace
 * attempt once its directory is made, and the context a task function receives. The phases
 * record in the state what the cleanup must undo (the directory, the staging branch, a
 * deletion already started), so whichever phase fails, the cleanup finds it. Used by the
 * attempt (attempt.ts) and by its workspace phases (_workspace_attempt.ts and the modules it
 * imports), which a worker loads only for a workspace task; this module imports only types
 * besides the task context's parts, so attempt.ts loads no workspace code through it.
 *
 * @module
 */
import type { LakeFsApi, ObjectStats } from "../lakefs/api.ts";
import { type Logger, taskLogger } from "../log/logger.ts";
import { createTaskMetrics } from "../task/metrics.ts";
import type { AttemptInfo, TaskContext } from "../task/types.ts";
import type { ReadAhead } from "../util/read_ahead.ts";
import type { WorkspaceInput } from "./_invoke.ts";
import type { AttemptChanges, AttemptOptions } from "./attempt_types.ts";
import type { PublicationKind } from "./publish.ts";
import type { DescribedDir, RetireInfo, WalkedDir } from "./warm_pool.ts";

/** Shared state of one attempt, for the steps and the cleanup. */
export interface AttemptState {
  readonly options: AttemptOptions;
  readonly signal: AbortSignal;
  readonly log: Logger;
  readonly info: AttemptInfo;
  dir?: string;
  staging?: { repo: string; branch: string };
  /** The deletion of the staging branch, once started (right after a successful merge). */
  stagingDeleted?: Promise<void>;
  changes?: AttemptChanges;
  /** What the warm pool needs to keep the directory (set once its content is known). */
  warm?: RetireInfo;
  /** The warm pool's description of the directory, made once the change was uploaded. */
  warmDescribed?: Promise<DescribedDir>;
  /** The directory came from the warm pool: what its walk left. */
  claimed?: WalkedDir;
}

/** What the body of an attempt produced. */
export interface BodyResult {
  output: Record<string, unknown>;
  publishedRef?: string;
  publication?: PublicationKind;
}

/** A workspace attempt past its input checks: where it reads and writes. */
export interface WorkspaceAttempt {
  readonly state: AttemptState;
  readonly lakefs: LakeFsApi;
  readonly input: WorkspaceInput;
  /** The input's `params`, not yet validated. */
  readonly params: unknown;
  /** The attempt's scope: the task's prefix, narrowed by the input's. */
  readonly scope: string;
  /** The attempt directory. */
  readonly dir: string;
  /** The listing of the scope at the input ref, started while the directory was prepared. */
  readonly listing: ReadAhead<ObjectStats>;
}

/** The context the task function of `state`'s attempt receives. */
export function context(state: AttemptState, workspace: string | undefined): TaskContext {
  return Object.freeze({
    workspace,
    signal: state.signal,
    log: taskLogger(state.log),
    attempt: state.info,
    metrics: createTaskMetrics(
      state.options.task.name,
      state.options.task.metrics,
      state.options.onMetric ?? (() => {}),
    ),
  });
}
