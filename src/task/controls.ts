/**
 * Task controls: the retry, timeout and rate-limit settings of the Conductor TaskDef, as a
 * task author writes them ({@linkcode ControlsOptions}) and as `defineTask` compiles them
 * ({@linkcode CompiledControls}: every field present, validated, frozen).
 *
 * The checks mirror what Conductor OSS validates when the TaskDef is registered (TaskDef.java
 * and TaskTimeoutConstraint: `retryCount >= 0`, `responseTimeoutSeconds >= 1`,
 * `pollTimeoutSeconds >= 0`, `responseTimeoutSeconds <= timeoutSeconds` when
 * `timeoutSeconds > 0`), plus perago's own bounds, so a bad value fails when the task module
 * is imported instead of when `POST /api/metadata/taskdefs` answers 400. Nothing is clamped.
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
import { definitionError, showValue } from "./errors.ts";
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

const RETRY_LOGICS: readonly RetryLogic[] = ["FIXED", "EXPONENTIAL_BACKOFF", "LINEAR_BACKOFF"];
const TIMEOUT_POLICIES: readonly TimeoutPolicy[] = ["TIME_OUT_WF", "RETRY", "ALERT_ONLY"];
/** Conductor stores most of these as Java `int`. */
const INT_MAX = 2_147_483_647;

/**
 * Fills the defaults of `input`, validates every field and the combinations, and returns a
 * frozen {@linkcode CompiledControls}.
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
  const fail: Fail = (field, detail) => definitionError(taskName, field, detail);
  const top = section(input, "controls", ["retry", "timeout", "limits", "publishBudget"], fail);
  // Every section's shape is checked before any value, in this order.
  const retryIn = section(
    top.retry,
    "controls.retry",
    ["count", "logic", "delaySeconds", "maxDelaySeconds", "jitterMs"],
    fail,
  );
  const timeoutIn = section(
    top.timeout,
    "controls.timeout",
    ["policy", "seconds", "responseSeconds", "pollSeconds", "totalSeconds"],
    fail,
  );
  const limitsIn = section(
    top.limits,
    "controls.limits",
    ["concurrentExecLimit", "rateLimitPerFrequency", "rateLimitFrequencyInSeconds"],
    fail,
  );
  const check = checkers(fail);
  const retry = compileRetry(retryIn, check, fail);
  const timeout = compileTimeout(timeoutIn, check, fail);
  const limits = compileLimits(limitsIn, check, fail);
  const publishBudget = top.publishBudget === undefined
    ? undefined
    : compilePublishBudget(top.publishBudget, check.int, fail);
  return deepFreeze({ retry, timeout, limits, publishBudget });
}

type Fail = (field: string, detail: string) => Error;

/** The value checks of the controls, each failing with the field's name and the value. */
function checkers(fail: Fail) {
  const int = (value: unknown, field: string, fallback: number, min: number, max = INT_MAX) => {
    if (value === undefined) return fallback;
    if (typeof value !== "number" || !Number.isInteger(value) || value < min || value > max) {
      throw fail(field, `must be an integer from ${min} to ${max}, got ${showValue(value)}`);
    }
    return value;
  };
  const optionalInt = (value: unknown, field: string, min: number) =>
    value === undefined ? undefined : int(value, field, 0, min);
  const oneOf = <T extends string>(
    value: unknown,
    field: string,
    fallback: T,
    allowed: readonly T[],
  ): T => {
    if (value === undefined) return fallback;
    if (typeof value !== "string" || !(allowed as readonly string[]).includes(value)) {
      throw fail(field, `must be one of ${allowed.join(", ")}, got ${showValue(value)}`);
    }
    return value as T;
  };
  return { int, optionalInt, oneOf };
}

type Checkers = ReturnType<typeof checkers>;

function compileRetry(
  retryIn: Record<string, unknown>,
  { int, oneOf }: Checkers,
  fail: Fail,
): CompiledControls["retry"] {
  const d = DEFAULT_CONTROLS.retry;
  const retry = {
    count: int(retryIn.count, "controls.retry.count", d.count, 0, 10),
    logic: oneOf(retryIn.logic, "controls.retry.logic", d.logic, RETRY_LOGICS),
    delaySeconds: int(retryIn.delaySeconds, "controls.retry.delaySeconds", d.delaySeconds, 0),
    maxDelaySeconds: int(
      retryIn.maxDelaySeconds,
      "controls.retry.maxDelaySeconds",
      d.maxDelaySeconds,
      0,
    ),
    jitterMs: int(retryIn.jitterMs, "controls.retry.jitterMs", d.jitterMs, 0),
  };
  if (retry.maxDelaySeconds > 0) {
    if (retry.logic === "FIXED") {
      throw fail(
        "controls.retry.maxDelaySeconds",
        `caps a growing backoff and has no effect with logic FIXED; remove it or use EXPONENTIAL_BACKOFF or LINEAR_BACKOFF`,
      );
    }
    if (retry.maxDelaySeconds < retry.delaySeconds) {
      throw fail(
        "controls.retry.maxDelaySeconds",
        `${retry.maxDelaySeconds} is below retry.delaySeconds ${retry.delaySeconds}; raise it or lower the delay`,
      );
    }
  }
  return retry;
}

function compileTimeout(
  timeoutIn: Record<string, unknown>,
  { int, oneOf }: Checkers,
  fail: Fail,
): CompiledControls["timeout"] {
  const d = DEFAULT_CONTROLS.timeout;
  const field = (key: string) => `controls.timeout.${key}`;
  const timeout = {
    policy: oneOf(timeoutIn.policy, field("policy"), d.policy, TIMEOUT_POLICIES),
    seconds: int(timeoutIn.seconds, field("seconds"), d.seconds, 0),
    responseSeconds: int(timeoutIn.responseSeconds, field("responseSeconds"), d.responseSeconds, 1),
    pollSeconds: int(timeoutIn.pollSeconds, field("pollSeconds"), d.pollSeconds, 0),
    totalSeconds: int(timeoutIn.totalSeconds, field("totalSeconds"), d.totalSeconds, 0),
  };
  if (timeout.seconds > 0 && timeout.responseSeconds > timeout.seconds) {
    // Conductor's TaskTimeoutConstraint rejects this TaskDef with a 400.
    throw fail(
      "controls.timeout.responseSeconds",
      `${timeout.responseSeconds} is greater than timeout.seconds ${timeout.seconds} (Conductor rejects such a TaskDef); lower it or raise timeout.seconds`,
    );
  }
  if (timeout.totalSeconds > 0 && timeout.seconds > timeout.totalSeconds) {
    throw fail(
      "controls.timeout.seconds",
      `${timeout.seconds} is greater than timeout.totalSeconds ${timeout.totalSeconds}; one try cannot outlast all of them`,
    );
  }
  return timeout;
}

function compileLimits(
  limitsIn: Record<string, unknown>,
  { optionalInt }: Checkers,
  fail: Fail,
): CompiledControls["limits"] {
  const field = (key: string) => `controls.limits.${key}`;
  const limits = {
    concurrentExecLimit: optionalInt(
      limitsIn.concurrentExecLimit,
      field("concurrentExecLimit"),
      0,
    ),
    rateLimitPerFrequency: optionalInt(
      limitsIn.rateLimitPerFrequency,
      field("rateLimitPerFrequency"),
      1,
    ),
    rateLimitFrequencyInSeconds: optionalInt(
      limitsIn.rateLimitFrequencyInSeconds,
      field("rateLimitFrequencyInSeconds"),
      1,
    ),
  };
  if (
    (limits.rateLimitPerFrequency === undefined) !==
      (limits.rateLimitFrequencyInSeconds === undefined)
  ) {
    const [given, missing] = limits.rateLimitPerFrequency === undefined
      ? ["rateLimitFrequencyInSeconds", "rateLimitPerFrequency"]
      : ["rateLimitPerFrequency", "rateLimitFrequencyInSeconds"];
    throw fail(field(missing), `is required when ${given} is given; set both or neither`);
  }
  return limits;
}

const PUBLISH_BUDGET_FIELDS = [
  ["observedMergeP99Seconds", 0],
  ["safetyMarginSeconds", 0],
  ["lakefsMergeTimeoutSeconds", 1],
  ["conductorCompletionTimeoutSeconds", 1],
  ["workerShutdownGraceSeconds", 1],
  ["heartbeatIntervalSeconds", 1],
] as const;

function compilePublishBudget(
  value: unknown,
  int: Checkers["int"],
  fail: Fail,
): CompiledPublishBudget {
  const field = "controls.publishBudget";
  const raw = section(value, field, PUBLISH_BUDGET_FIELDS.map(([key]) => key), fail);
  const out: Record<string, number> = {};
  for (const [key, min] of PUBLISH_BUDGET_FIELDS) {
    if (raw[key] === undefined) {
      throw fail(
        `${field}.${key}`,
        `is required: a publish budget gives all of ${
          PUBLISH_BUDGET_FIELDS.map(([name]) => name).join(", ")
        }`,
      );
    }
    out[key] = int(raw[key], `${field}.${key}`, 0, min);
  }
  const budget = out as Omit<CompiledPublishBudget, "responseTimeoutSeconds">;
  const needed = budget.observedMergeP99Seconds + budget.safetyMarginSeconds;
  if (budget.lakefsMergeTimeoutSeconds < needed) {
    throw fail(
      `${field}.lakefsMergeTimeoutSeconds`,
      `${budget.lakefsMergeTimeoutSeconds} does not cover observedMergeP99Seconds + ` +
        `safetyMarginSeconds (${needed}); raise it to at least ${needed}`,
    );
  }
  return {
    ...budget,
    responseTimeoutSeconds: budget.lakefsMergeTimeoutSeconds +
      budget.conductorCompletionTimeoutSeconds + budget.workerShutdownGraceSeconds +
      budget.heartbeatIntervalSeconds,
  };
}

function section(
  value: unknown,
  field: string,
  keys: readonly string[],
  fail: Fail,
): Record<string, unknown> {
  if (value === undefined) return {};
  if (value === null || typeof value !== "object" || Array.isArray(value)) {
    throw fail(field, `must be an object, got ${showValue(value)}`);
  }
  for (const key of Object.keys(value)) {
    if (!keys.includes(key)) {
      throw fail(`${field}.${key}`, `unknown key; expected one of ${keys.join(", ")}`);
    }
  }
  return value as Record<string, unknown>;
}

function deepFreeze<T>(value: T): T {
  if (value !== null && typeof value === "object" && !Object.isFrozen(value)) {
    for (const child of Object.values(value)) deepFreeze(child);
    Object.freeze(value);
  }
  return value;
}
