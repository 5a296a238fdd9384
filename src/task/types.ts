/**
 * The shapes of a task definition, shared by the task author API (`mod.ts`), the TaskDef
 * extractor, the attempt and the runtime. Only types live here; `define.ts` builds values.
 *
 * @module
 */
import type { z } from "../vendor/zod.ts";
import type { CompiledTaskMetric, TaskMetrics } from "./metrics.ts";

/** A guardrail checked against the attempt directory before (`pre`) or after (`post`) `run`. */
export type Guardrail =
  | { readonly kind: "requireFile"; readonly path: string }
  | { readonly kind: "requireDir"; readonly path: string }
  | {
    readonly kind: "requireGlob";
    readonly pattern: string;
    readonly min: number;
    readonly max: number | undefined;
  }
  | { readonly kind: "forbidGlob"; readonly pattern: string };

/** The workspace spec as compiled by `defineTask` (defaults filled, paths validated). */
export interface WorkspaceSpec {
  /** POSIX prefix inside the repository, normalised to `""` (root) or `dir/sub/`. */
  readonly prefix: string;
  /** Read-only tasks never write to lakeFS and skip snapshots. */
  readonly readOnly: boolean;
  readonly pre: readonly Guardrail[];
  readonly post: readonly Guardrail[];
}

/** Conductor retry logic names. */
export type RetryLogic = "FIXED" | "EXPONENTIAL_BACKOFF" | "LINEAR_BACKOFF";
/** Conductor timeout policy names. */
export type TimeoutPolicy = "TIME_OUT_WF" | "RETRY" | "ALERT_ONLY";

/** Controls as compiled by `defineTask`: every field present, mapped 1:1 onto the TaskDef. */
export interface CompiledControls {
  readonly retry: {
    readonly count: number;
    readonly logic: RetryLogic;
    readonly delaySeconds: number;
    readonly maxDelaySeconds: number;
    readonly jitterMs: number;
  };
  readonly timeout: {
    readonly policy: TimeoutPolicy;
    readonly seconds: number;
    readonly responseSeconds: number;
    readonly pollSeconds: number;
    readonly totalSeconds: number;
  };
  readonly limits: {
    readonly concurrentExecLimit: number | undefined;
    readonly rateLimitPerFrequency: number | undefined;
    readonly rateLimitFrequencyInSeconds: number | undefined;
  };
  /** The publication time budget of a writable workspace task, when given. */
  readonly publishBudget: CompiledPublishBudget | undefined;
}

/**
 * The time budget of publishing a workspace, as compiled by `defineTask`. The lakeFS merge
 * timeout bounds each merge and hard-reset request of the publication; the sum of the last
 * four fields is the response timeout the budget implies (`perago extract` warns when
 * `timeout.responseSeconds` is shorter).
 */
export interface CompiledPublishBudget {
  /** Observed high-percentile (p99) merge latency under the expected load, seconds. */
  readonly observedMergeP99Seconds: number;
  /** Added to the observed latency; the merge timeout must cover both, seconds. */
  readonly safetyMarginSeconds: number;
  /** Timeout of each lakeFS merge and hard-reset request of the publication, seconds. */
  readonly lakefsMergeTimeoutSeconds: number;
  /** Reserve for completing the Conductor task after publishing, seconds. */
  readonly conductorCompletionTimeoutSeconds: number;
  /** Reserve for a worker shutting down after publishing, seconds. */
  readonly workerShutdownGraceSeconds: number;
  /** Reserve for one heartbeat (lease extension) interval, seconds. */
  readonly heartbeatIntervalSeconds: number;
  /** Merge timeout + completion + shutdown grace + heartbeat interval, seconds. */
  readonly responseTimeoutSeconds: number;
}

/** The `worker` options as compiled by `defineTask` (unset = the runtime's default). */
export interface CompiledWorkerOptions {
  /** Most attempts of this task type in flight on one host. */
  readonly concurrency: number | undefined;
  /** Fixed polling interval while idle, ms; unset = adaptive polling. */
  readonly pollIntervalMs: number | undefined;
  /** Most tasks one poll asks for; unset = the free slots. */
  readonly batchSize: number | undefined;
}

/** Identity of the Conductor attempt a task function runs for. */
export interface AttemptInfo {
  readonly workflowInstanceId: string;
  readonly taskId: string;
  readonly retryCount: number;
  /** perago's own id of this execution (one per attempt, even for the same task id). */
  readonly executionId: string;
  readonly taskDefName: string;
}

/** The small logger handed to task functions as `ctx.log`. */
export interface TaskLogger {
  debug(message: string, properties?: Record<string, unknown>): void;
  info(message: string, properties?: Record<string, unknown>): void;
  warn(message: string, properties?: Record<string, unknown>): void;
  error(message: string, properties?: Record<string, unknown>): void;
}

/** The second argument of `run`. */
export interface TaskContext {
  /** Absolute attempt directory; set for workspace tasks only. */
  readonly workspace: string | undefined;
  /** Aborted when the attempt is cancelled (shutdown, lost lease). Pass it to fetch etc. */
  readonly signal: AbortSignal;
  readonly log: TaskLogger;
  readonly attempt: AttemptInfo;
  /**
   * Records the metrics the task declared in `defineTask({ metrics })`; exported as
   * `app.<name>` with the task name as a label. Undeclared names or labels throw.
   */
  readonly metrics: TaskMetrics;
}

/** Brand that marks a value made by `defineTask`, checked by the loader. */
export const TASK_BRAND: unique symbol = Symbol.for("perago.task");

/** A task as `defineTask` returns it: validated, frozen, ready for the runtime. */
export interface TaskDefinition<
  P extends z.ZodType = z.ZodType,
  R extends z.ZodType = z.ZodType,
> {
  readonly [TASK_BRAND]: true;
  readonly name: string;
  readonly ownerEmail: string;
  readonly description: string;
  /** Strict object schema of `params`. */
  readonly params: P;
  /** Schema of the result. */
  readonly result: R;
  /** Present for workspace tasks. */
  readonly workspace: WorkspaceSpec | undefined;
  readonly controls: CompiledControls;
  /** The metrics the task may record through `ctx.metrics`, by name. */
  readonly metrics: Readonly<Record<string, CompiledTaskMetric>>;
  /** How a worker serves this task type on one host (not part of the TaskDef). */
  readonly worker: CompiledWorkerOptions;
  readonly run: (params: z.output<P>, ctx: TaskContext) => z.input<R> | Promise<z.input<R>>;
}
