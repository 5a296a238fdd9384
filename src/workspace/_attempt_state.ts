/**
 * What the phases of one attempt share: its state, what its body produced, and the context a
 * task function receives. Used by the attempt (attempt.ts) and by its workspace phases
 * (_workspace_attempt.ts), which a worker loads only for a workspace task.
 *
 * @module
 */
import { type Logger, taskLogger } from "../log/logger.ts";
import { createTaskMetrics } from "../task/metrics.ts";
import type { AttemptInfo, TaskContext } from "../task/types.ts";
import type { AttemptChanges, AttemptOptions, PublicationKind } from "./attempt.ts";
import type { RetireInfo, WalkedDir } from "./warm_pool.ts";

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
  /** The directory came from the warm pool: what its walk left. */
  claimed?: WalkedDir;
}

/** What the body of an attempt produced. */
export interface BodyResult {
  output: Record<string, unknown>;
  publishedRef?: string;
  publication?: PublicationKind;
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
