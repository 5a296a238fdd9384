/**
 * Task controls: the retry, timeout and rate-limit settings of the Conductor TaskDef, as a
 * task author writes them ({@linkcode ControlsOptions}) and as `defineTask` compiles them
 * ({@linkcode CompiledControls}: every field present, validated, frozen).
 *
 * The checks mirror what a Conductor OSS server validates when the TaskDef is registered
 * (`retryCount >= 0`, `responseTimeoutSeconds >= 1`, `pollTimeoutSeconds >= 0`,
 * `responseTimeoutSeconds <= timeoutSeconds` when `timeoutSeconds > 0`), plus perago's own
 * bounds, so a bad value fails when the task module is imported instead of when
 * `POST /api/metadata/taskdefs` answers 400. Nothing is clamped.
 *
 * perago's own rules, beyond the server's:
 * - `retry.count` is 0..10: more retries than that hide a broken task behind hours of
 *   backoff.
 * - `retry.maxDelaySeconds` caps the growth of a backoff. Conductor OSS 3.21 does not know
 *   the field (it ignores it); servers that do apply it only to EXPONENTIAL_BACKOFF and
 *   LINEAR_BACKOFF. A cap with FIXED would be silently meaningless, so it is an error, as is
 *   a cap below `retry.delaySeconds`.
 * - `timeout.totalSeconds > 0` (the budget across all retries) must not be below
 *   `timeout.seconds` (the budget of one try).
 * - Rate limits come as a pair: `rateLimitPerFrequency` without
 *   `rateLimitFrequencyInSeconds` (or the other way round) is an error; both are >= 1.
 *   `concurrentExecLimit` is >= 0 (0 = no limit, as in Conductor).
 *
 * @module
 */
import { buildOnce } from "../util/lazy.ts";
import type { z } from "../vendor/zod.ts";
import {
  type DefinitionIssue,
  intIn,
  oneOf,
  parseDefinition,
  strictSection,
  WHEN_VALID,
} from "./_definition_schema.ts";
import type {
  CompiledControls,
  CompiledPublishBudget,
  RetryLogic,
  TimeoutPolicy,
} from "./types.ts";

/** Retry settings (Conductor: retryCount, retryLogic, retryDelaySeconds, ...). */
export interface RetryOptions {
  /** Retries after the first try, 0..10. @default 3 */
  count?: number;
  /** How the delay grows between retries. @default "FIXED" */
  logic?: RetryLogic;
  /** Delay before a retry, in seconds. @default 60 */
  delaySeconds?: number;
  /** Cap of a growing delay in seconds (backoff logics only); 0 = no cap. @default 0 */
  maxDelaySeconds?: number;
  /** Random jitter added to the delay, in milliseconds. @default 0 */
  jitterMs?: number;
}

/** Timeout settings (Conductor: timeoutPolicy, timeoutSeconds, ...). */
export interface TimeoutOptions {
  /** What Conductor does when `seconds` runs out. @default "TIME_OUT_WF" */
  policy?: TimeoutPolicy;
  /** Budget of one try from the first poll, in seconds; 0 = none. @default 0 */
  seconds?: number;
  /**
   * Seconds without an update after which Conductor times the try out; perago extends the
   * lease well before. At least 1, and at most `seconds` when that is set. @default 600
   */
  responseSeconds?: number;
  /** Seconds a scheduled task may wait to be polled; 0 = forever. @default 0 */
  pollSeconds?: number;
  /** Budget across all tries, in seconds; 0 = none. @default 0 */
  totalSeconds?: number;
}

/** Concurrency and rate limits (Conductor: concurrentExecLimit, rateLimit...). */
export interface LimitsOptions {
  /** Most tries IN_PROGRESS at once across all workers; 0 = no limit. @default unset (0) */
  concurrentExecLimit?: number;
  /** Most tries started per `rateLimitFrequencyInSeconds`. Give both or neither. */
  rateLimitPerFrequency?: number;
  /** The window of `rateLimitPerFrequency`, in seconds. Give both or neither. */
  rateLimitFrequencyInSeconds?: number;
}

/**
 * The time budget of publishing a workspace (writable workspace tasks only; every field
 * required). `lakefsMergeTimeoutSeconds` becomes the timeout of each lakeFS merge and
 * hard-reset request of the publication and must cover `observedMergeP99Seconds +
 * safetyMarginSeconds`. The budget implies a response timeout of `lakefsMergeTimeoutSeconds
 * + conductorCompletionTimeoutSeconds + workerShutdownGraceSeconds +
 * heartbeatIntervalSeconds`; `perago extract` warns when `timeout.responseSeconds` is
 * shorter (the TaskDef keeps `timeout.responseSeconds`).
 */
export interface PublishBudgetOptions {
  /** Observed high-percentile (p99) merge latency under the expected load, seconds (>= 0). */
  observedMergeP99Seconds: number;
  /** Safety margin on top of the observed latency, seconds (>= 0). */
  safetyMarginSeconds: number;
  /** Timeout of each lakeFS merge and hard-reset request, seconds (>= 1). */
  lakefsMergeTimeoutSeconds: number;
  /** Reserve for completing the Conductor task, seconds (>= 1). */
  conductorCompletionTimeoutSeconds: number;
  /** Reserve for a worker shutdown after publishing, seconds (>= 1). */
  workerShutdownGraceSeconds: number;
  /** Reserve for one heartbeat interval, seconds (>= 1). */
  heartbeatIntervalSeconds: number;
}

/** The `controls` of `defineTask`; every field optional. */
export interface ControlsOptions {
  retry?: RetryOptions;
  timeout?: TimeoutOptions;
  limits?: LimitsOptions;
  /** Publication time budget (writable workspace tasks). @default unset */
  publishBudget?: PublishBudgetOptions;
}

/** The defaults of {@linkcode compileControls}: what a task without controls registers. */
export const DEFAULT_CONTROLS: CompiledControls = deepFreeze({
  retry: { count: 3, logic: "FIXED", delaySeconds: 60, maxDelaySeconds: 0, jitterMs: 0 },
  timeout: {
    policy: "TIME_OUT_WF",
    seconds: 0,
    responseSeconds: 600,
    pollSeconds: 0,
    totalSeconds: 0,
  },
  limits: {
    concurrentExecLimit: undefined,
    rateLimitPerFrequency: undefined,
    rateLimitFrequencyInSeconds: undefined,
  },
  publishBudget: undefined,
});

/** Conductor stores most of these as Java `int`. */
const INT_MAX = 2_147_483_647;

/** A section of the controls: an object (or nothing), no unknown key. */
function section<S extends z.core.$ZodLooseShape>(shape: S) {
  return strictSection(shape, {
    notObject: (shown) => `must be an object, got ${shown}`,
    unknownKey: `unknown key; expected one of ${Object.keys(shape).join(", ")}`,
  });
}

/** An integer field from `min` (to a Java int unless `max`), `fallback` when missing. */
const defaulted = (min: number, fallback: number, max = INT_MAX) =>
  intIn(min, max).default(fallback);

// The schemas are built on first use, not when the module loads: building them touched about
// 2 MiB of a Deno process's memory (zod's code run for them, measured importing this module),
// which a task without controls, whose executor never parses any, need not hold.
const controlsSchemaOnce = buildOnce(() => {
  const RETRY = DEFAULT_CONTROLS.retry;
  const retrySchema = section({
    count: defaulted(0, RETRY.count, 10),
    logic: oneOf(["FIXED", "EXPONENTIAL_BACKOFF", "LINEAR_BACKOFF"]).default(RETRY.logic),
    delaySeconds: defaulted(0, RETRY.delaySeconds),
    maxDelaySeconds: defaulted(0, RETRY.maxDelaySeconds),
    jitterMs: defaulted(0, RETRY.jitterMs),
  }).superRefine((retry, ctx) => {
    if (retry.maxDelaySeconds === 0) return;
    const path = ["maxDelaySeconds"];
    if (retry.logic === "FIXED") {
      ctx.addIssue({
        code: "custom",
        path,
        message: "caps a growing backoff and has no effect with logic FIXED; remove it or use " +
          "EXPONENTIAL_BACKOFF or LINEAR_BACKOFF",
      });
    } else if (retry.maxDelaySeconds < retry.delaySeconds) {
      ctx.addIssue({
        code: "custom",
        path,
        message: `${retry.maxDelaySeconds} is below retry.delaySeconds ${retry.delaySeconds}; ` +
          "raise it or lower the delay",
      });
    }
  }, WHEN_VALID);

  const TIMEOUT = DEFAULT_CONTROLS.timeout;
  const timeoutSchema = section({
    policy: oneOf(["TIME_OUT_WF", "RETRY", "ALERT_ONLY"]).default(TIMEOUT.policy),
    seconds: defaulted(0, TIMEOUT.seconds),
    responseSeconds: defaulted(1, TIMEOUT.responseSeconds),
    pollSeconds: defaulted(0, TIMEOUT.pollSeconds),
    totalSeconds: defaulted(0, TIMEOUT.totalSeconds),
  }).superRefine((timeout, ctx) => {
    if (timeout.seconds > 0 && timeout.responseSeconds > timeout.seconds) {
      // Conductor rejects such a TaskDef with a 400: no try may wait longer for an update
      // than the try may last.
      ctx.addIssue({
        code: "custom",
        path: ["responseSeconds"],
        message: `${timeout.responseSeconds} is greater than timeout.seconds ${timeout.seconds} ` +
          "(Conductor rejects such a TaskDef); lower it or raise timeout.seconds",
      });
    } else if (timeout.totalSeconds > 0 && timeout.seconds > timeout.totalSeconds) {
      ctx.addIssue({
        code: "custom",
        path: ["seconds"],
        message:
          `${timeout.seconds} is greater than timeout.totalSeconds ${timeout.totalSeconds}; ` +
          "one try cannot outlast all of them",
      });
    }
  }, WHEN_VALID);

  const limitsSchema = section({
    concurrentExecLimit: intIn(0, INT_MAX).optional(),
    rateLimitPerFrequency: intIn(1, INT_MAX).optional(),
    rateLimitFrequencyInSeconds: intIn(1, INT_MAX).optional(),
  }).superRefine((limits, ctx) => {
    const perFrequency = limits.rateLimitPerFrequency !== undefined;
    if (perFrequency === (limits.rateLimitFrequencyInSeconds !== undefined)) return;
    const [given, missing] = perFrequency
      ? ["rateLimitPerFrequency", "rateLimitFrequencyInSeconds"]
      : ["rateLimitFrequencyInSeconds", "rateLimitPerFrequency"];
    ctx.addIssue({
      code: "custom",
      path: [missing],
      message: `is required when ${given} is given; set both or neither`,
    });
  }, WHEN_VALID);

  const BUDGET_MINIMA = {
    observedMergeP99Seconds: 0,
    safetyMarginSeconds: 0,
    lakefsMergeTimeoutSeconds: 1,
    conductorCompletionTimeoutSeconds: 1,
    workerShutdownGraceSeconds: 1,
    heartbeatIntervalSeconds: 1,
  } as const;
  const BUDGET_REQUIRED = `is required: a publish budget gives all of ${
    Object.keys(BUDGET_MINIMA).join(", ")
  }`;
  const budgetField = (min: number) => intIn(min, INT_MAX, BUDGET_REQUIRED);

  const publishBudgetSchema = section({
    observedMergeP99Seconds: budgetField(BUDGET_MINIMA.observedMergeP99Seconds),
    safetyMarginSeconds: budgetField(BUDGET_MINIMA.safetyMarginSeconds),
    lakefsMergeTimeoutSeconds: budgetField(BUDGET_MINIMA.lakefsMergeTimeoutSeconds),
    conductorCompletionTimeoutSeconds: budgetField(BUDGET_MINIMA.conductorCompletionTimeoutSeconds),
    workerShutdownGraceSeconds: budgetField(BUDGET_MINIMA.workerShutdownGraceSeconds),
    heartbeatIntervalSeconds: budgetField(BUDGET_MINIMA.heartbeatIntervalSeconds),
  }).superRefine((budget, ctx) => {
    const needed = budget.observedMergeP99Seconds + budget.safetyMarginSeconds;
    if (budget.lakefsMergeTimeoutSeconds >= needed) return;
    ctx.addIssue({
      code: "custom",
      path: ["lakefsMergeTimeoutSeconds"],
      message: `${budget.lakefsMergeTimeoutSeconds} does not cover observedMergeP99Seconds + ` +
        `safetyMarginSeconds (${needed}); raise it to at least ${needed}`,
    });
  }, WHEN_VALID).transform((budget): CompiledPublishBudget => ({
    ...budget,
    responseTimeoutSeconds: budget.lakefsMergeTimeoutSeconds +
      budget.conductorCompletionTimeoutSeconds + budget.workerShutdownGraceSeconds +
      budget.heartbeatIntervalSeconds,
  }));

  const controlsSchema = section({
    retry: retrySchema.prefault({}),
    timeout: timeoutSchema.prefault({}),
    limits: limitsSchema.prefault({}),
    publishBudget: publishBudgetSchema.optional(),
  }).optional();
  return controlsSchema;
});

const SECTIONS = ["retry", "timeout", "limits", "publishBudget"];

/**
 * The order the controls are checked in: the shape of the controls, then of retry, timeout
 * and limits; then each section's values (in the order of its fields) and their
 * combinations, in the order retry, timeout, limits, publishBudget (whose shape is checked
 * with its values).
 */
function controlsRank({ path }: DefinitionIssue): number[] {
  const [name, key] = path;
  if (name === undefined) return [0];
  const index = SECTIONS.indexOf(String(name));
  if (key === undefined && name !== "publishBudget") return [1, index];
  return [2, index, key === undefined ? 0 : 1];
}

/**
 * Fills the defaults of `input`, validates every field and the combinations, and returns a
 * frozen {@linkcode CompiledControls}. Of several bad fields, the first in the order of
 * {@linkcode ControlsOptions} is reported, except that the shapes of `controls`, `retry`,
 * `timeout` and `limits` (an object, no unknown key) are checked before any value.
 *
 * @param taskName named in error messages.
 * @throws {TaskDefinitionError} naming the field, e.g. `controls.retry.count`.
 * @example
 * ```ts
 * const controls = compileControls({ retry: { count: 5, logic: "EXPONENTIAL_BACKOFF" } });
 * controls.timeout.responseSeconds; // 600
 * ```
 */
export function compileControls(input?: ControlsOptions, taskName?: string): CompiledControls {
  if (input === undefined) return DEFAULT_CONTROLS;
  const parsed = parseDefinition(controlsSchemaOnce(), input, {
    taskName,
    field: "controls",
    rank: controlsRank,
  });
  if (parsed === undefined) return DEFAULT_CONTROLS;
  const { retry, timeout, limits, publishBudget } = parsed;
  return deepFreeze({
    retry,
    timeout,
    limits: {
      concurrentExecLimit: limits.concurrentExecLimit,
      rateLimitPerFrequency: limits.rateLimitPerFrequency,
      rateLimitFrequencyInSeconds: limits.rateLimitFrequencyInSeconds,
    },
    publishBudget,
  });
}

function deepFreeze<T>(value: T): T {
  if (value !== null && typeof value === "object" && !Object.isFrozen(value)) {
    for (const child of Object.values(value)) deepFreeze(child);
    Object.freeze(value);
  }
  return value;
}
