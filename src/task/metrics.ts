/**
 * Task-owned metrics: a task declares them in `defineTask({ metrics })` (kind, unit, the
 * labels it may set) and records them through `ctx.metrics`. They are exported as
 * `app.<name>` (OTLP) / `app_<name>` (Prometheus) with the task's name as the `task_name`
 * label; attempt ids are never labels. An undeclared metric, a wrong kind or an undeclared
 * label is an error: at definition time for the declaration, at record time for a record.
 *
 * @module
 */
import { z } from "../vendor/zod.ts";
import { buildOnce } from "../util/lazy.ts";
import { parseDefinition, strictSection, WHEN_VALID } from "./_definition_schema.ts";

/** The kinds a task may declare; a timer is a histogram of seconds. */
export type TaskMetricKind = "counter" | "gauge" | "histogram" | "timer";

/** One metric as a task declares it. */
export interface TaskMetricDeclaration {
  readonly kind: TaskMetricKind;
  /** One line for dashboards. @default "" */
  readonly description?: string;
  /** UCUM unit (`1`, `By`, `s`, `ms`, ...). @default "s" for timers, else "1" */
  readonly unit?: string;
  /** Label names a record may set (each optional per record; unset = ""). @default [] */
  readonly labels?: readonly string[];
  /** Histogram bucket bounds, ascending. @default seconds buckets (timers), else 1..10^6 */
  readonly buckets?: readonly number[];
}

/** A declaration as `defineTask` compiled it: every field filled. */
export interface CompiledTaskMetric {
  readonly name: string;
  readonly kind: TaskMetricKind;
  readonly description: string;
  readonly unit: string;
  readonly labels: readonly string[];
  readonly buckets: readonly number[] | undefined;
}

/** What one record of `ctx.metrics` produces, for the runtime to export. */
export interface TaskMetricRecord {
  op: "inc" | "set" | "observe";
  /** `app_<name>` (`_total` added for counters): the Prometheus name. */
  name: string;
  labels: Record<string, string>;
  value: number;
}

/** A running timer of `ctx.metrics.timer`; `using` stops it at the end of the block. */
export interface TaskMetricTimer extends Disposable {
  /** Stops the timer and records the elapsed seconds (once); returns them. */
  stop(): number;
}

/** `ctx.metrics`: records the task's declared metrics. Each method throws for undeclared use. */
export interface TaskMetrics {
  /** Adds `value` (default 1, never negative) to a counter. */
  counter(name: string, value?: number, labels?: Record<string, string>): void;
  /** Sets a gauge. */
  gauge(name: string, value: number, labels?: Record<string, string>): void;
  /** Records one observation of a histogram (or a timer, in seconds). */
  histogram(name: string, value: number, labels?: Record<string, string>): void;
  /** Starts a timer; `stop()` (or the end of a `using` block) records the seconds. */
  timer(name: string, labels?: Record<string, string>): TaskMetricTimer;
}

/** Labels perago sets itself, or that would hold attempt ids: never declarable. */
export const RESERVED_METRIC_LABELS: readonly string[] = Object.freeze([
  "task_name",
  "task_id",
  "workflow_instance_id",
  "execution_id",
  "worker_id",
  "retry_count",
  "le",
  "quantile",
]);

const METRIC_NAME = /^[a-z][a-z0-9_]{0,99}$/;
const LABEL_NAME = /^[a-zA-Z][a-zA-Z0-9_]{0,63}$/;
const KINDS = [
  "counter",
  "gauge",
  "histogram",
  "timer",
] as const satisfies readonly TaskMetricKind[];
const DECLARATION_KEYS = ["kind", "description", "unit", "labels", "buckets"];

/** Default bounds of a timer (seconds). */
export const DEFAULT_TIMER_BUCKETS: readonly number[] = Object.freeze(
  [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300],
);
/** Default bounds of a histogram. */
export const DEFAULT_HISTOGRAM_BUCKETS: readonly number[] = Object.freeze([
  1,
  5,
  10,
  50,
  100,
  500,
  1_000,
  5_000,
  10_000,
  100_000,
  1_000_000,
]);

/** The Prometheus name of a task metric: `app_<name>`, counters with `_total`. */
export function appMetricName(metric: Pick<CompiledTaskMetric, "name" | "kind">): string {
  return `app_${metric.name}${metric.kind === "counter" ? "_total" : ""}`;
}

const UNIT_PATTERN = /^\S{1,32}$/;

// The schemas are built on first use, not when the module loads (see controls.ts): a task
// declaring no metrics never parses any.
const metricsSchemaOnce = buildOnce(() => {
  /** The labels a metric may set: valid names, none reserved, none twice (`null`: none). */
  const labelsSchema = z.array(z.unknown(), { error: "must be an array of label names" })
    .nullish()
    .transform((labels) => labels ?? [])
    .superRefine((labels, ctx) => {
      for (const label of labels) {
        if (typeof label !== "string" || !LABEL_NAME.test(label)) {
          ctx.addIssue({ code: "custom", message: `invalid label name ${JSON.stringify(label)}` });
          return;
        }
        if (RESERVED_METRIC_LABELS.includes(label)) {
          ctx.addIssue({
            code: "custom",
            message: `${label} is reserved (perago sets task_name; attempt ids are never labels)`,
          });
          return;
        }
      }
      if (new Set(labels).size !== labels.length) {
        ctx.addIssue({ code: "custom", message: "a label repeats" });
      }
    }) as unknown as z.ZodType<string[], unknown>;

  /** One declaration; the buckets are checked against the kind once everything else holds. */
  const declarationSchema = strictSection({
    kind: z.enum(KINDS, { error: `must be one of ${KINDS.join(", ")}` }),
    description: z.string({ error: "must be a string" }).optional(),
    unit: z.string({ error: "must be a unit such as 1, By, s or ms" })
      .regex(UNIT_PATTERN, { error: "must be a unit such as 1, By, s or ms" })
      .optional(),
    labels: labelsSchema,
    buckets: z.unknown().optional(),
  }, {
    notObject: () => "must be an object { kind, description?, unit?, labels?, buckets? }",
    unknownKey: `unknown field; expected ${DECLARATION_KEYS.join(", ")}`,
  }).superRefine((declaration, ctx) => {
    const { kind, buckets } = declaration;
    if (kind !== "histogram" && kind !== "timer") {
      if (buckets !== undefined) {
        ctx.addIssue({
          code: "custom",
          path: ["buckets"],
          message: "only histograms and timers have buckets",
        });
      }
      return;
    }
    const given = buckets ?? (kind === "timer" ? DEFAULT_TIMER_BUCKETS : DEFAULT_HISTOGRAM_BUCKETS);
    if (
      !Array.isArray(given) || given.length === 0 ||
      given.some((b, i) => !Number.isFinite(b) || (i > 0 && b <= given[i - 1]))
    ) {
      ctx.addIssue({
        code: "custom",
        path: ["buckets"],
        message: "must be finite numbers in ascending order",
      });
    }
  }, WHEN_VALID);

  const metricsSchema = z.preprocess(
    // Like Object.entries: only the enumerable string keys are declarations.
    (value) =>
      value !== null && typeof value === "object" && !Array.isArray(value)
        ? Object.fromEntries(Object.entries(value))
        : value,
    z.record(z.string().regex(METRIC_NAME), declarationSchema, {
      error: (issue) =>
        issue.code === "invalid_key"
          ? "a metric name is 1..100 of a-z, 0-9 and _, starting with a letter"
          : "must be an object { <name>: { kind, unit?, labels?, ... } }",
    }),
  );
  return metricsSchema;
});

/**
 * Checks and compiles the `metrics` of `defineTask`. Of several bad declarations the first
 * is reported; of one declaration's faults, its name, its shape (an object, no unknown
 * field), then kind, description, unit, labels and buckets in this order.
 *
 * @param taskName named in error messages.
 * @throws {TaskDefinitionError} naming the field, e.g. `metrics.files.kind`.
 * @example
 * ```ts
 * compileTaskMetrics({ took: { kind: "timer" } }).took?.unit; // "s"
 * ```
 */
export function compileTaskMetrics(
  value: unknown,
  taskName?: string,
): Readonly<Record<string, CompiledTaskMetric>> {
  if (value === undefined) return Object.freeze({});
  const names = value !== null && typeof value === "object" ? Object.keys(value) : [];
  const declarations = parseDefinition(metricsSchemaOnce(), value, {
    taskName,
    field: "metrics",
    // A declaration's own faults (name, shape) before its fields'.
    rank: ({ path }) =>
      path.length === 0 ? [0] : [1, names.indexOf(String(path[0])), path.length === 1 ? 0 : 1],
  });
  const compiled: Record<string, CompiledTaskMetric> = {};
  for (const [name, declaration] of Object.entries(declarations)) {
    const { kind } = declaration;
    const histogram = kind === "histogram" || kind === "timer";
    const buckets = declaration.buckets ??
      (kind === "timer" ? DEFAULT_TIMER_BUCKETS : DEFAULT_HISTOGRAM_BUCKETS);
    compiled[name] = Object.freeze({
      name,
      kind,
      description: declaration.description ?? "",
      unit: declaration.unit ?? (kind === "timer" ? "s" : "1"),
      labels: Object.freeze([...declaration.labels]),
      buckets: histogram ? Object.freeze([...buckets as number[]]) : undefined,
    });
  }
  return Object.freeze(compiled);
}

/**
 * Makes `ctx.metrics` for one attempt of `taskName`: each record is checked against the
 * declarations and handed to `sink`.
 *
 * @example
 * ```ts
 * import { z } from "../vendor/zod.ts";
 * import { defineTask } from "./define.ts";
 * import type { TaskMetricRecord } from "./metrics.ts";
 *
 * const task = defineTask({
 *   name: "tidy", ownerEmail: "team@example.com", description: "tidies files",
 *   params: z.object({}), result: z.object({}), run: () => ({}),
 *   metrics: { files_tidied: { kind: "counter", labels: ["kind"] } },
 * });
 * const records: TaskMetricRecord[] = [];
 * const metrics = createTaskMetrics("tidy", task.metrics, (record) => records.push(record));
 * metrics.counter("files_tidied", 3, { kind: "txt" });
 * ```
 */
export function createTaskMetrics(
  taskName: string,
  declared: Readonly<Record<string, CompiledTaskMetric>>,
  sink: (record: TaskMetricRecord) => void,
): TaskMetrics {
  const lookup = (name: unknown, kinds: readonly TaskMetricKind[], method: string) =>
    declaredMetric(taskName, declared, name, kinds, method);
  const record = (
    op: TaskMetricRecord["op"],
    metric: CompiledTaskMetric,
    value: unknown,
    labels: unknown,
    nonNegative = false,
  ) =>
    sink({
      op,
      name: appMetricName(metric),
      labels: metricLabels(taskName, metric, labels),
      value: finiteValue(metric, value, nonNegative),
    });
  return Object.freeze({
    counter(name: string, value = 1, labels?: Record<string, string>) {
      record("inc", lookup(name, ["counter"], "counter"), value, labels, true);
    },
    gauge(name: string, value: number, labels?: Record<string, string>) {
      record("set", lookup(name, ["gauge"], "gauge"), value, labels);
    },
    histogram(name: string, value: number, labels?: Record<string, string>) {
      record("observe", lookup(name, ["histogram", "timer"], "histogram"), value, labels);
    },
    timer(name: string, labels?: Record<string, string>): TaskMetricTimer {
      const metric = lookup(name, ["timer"], "timer");
      metricLabels(taskName, metric, labels); // refuse a bad label now, not when it stops
      const started = performance.now();
      let seconds: number | undefined;
      const stop = () => {
        if (seconds === undefined) {
          seconds = (performance.now() - started) / 1000;
          record("observe", metric, seconds, labels);
        }
        return seconds;
      };
      return { stop, [Symbol.dispose]: () => void stop() };
    },
  });
}

/** The declaration of `name`, which must be of one of `kinds` (`method` is in the error). */
function declaredMetric(
  taskName: string,
  declared: Readonly<Record<string, CompiledTaskMetric>>,
  name: unknown,
  kinds: readonly TaskMetricKind[],
  method: string,
): CompiledTaskMetric {
  const metric = typeof name === "string" && Object.hasOwn(declared, name)
    ? declared[name]
    : undefined;
  if (metric === undefined) {
    const known = Object.keys(declared).join(", ") || "none";
    throw new TypeError(
      `ctx.metrics.${method}: task ${JSON.stringify(taskName)} declares no metric ` +
        `${JSON.stringify(name)} (declared: ${known}); add it to defineTask({ metrics })`,
    );
  }
  if (!kinds.includes(metric.kind)) {
    throw new TypeError(
      `ctx.metrics.${method}: ${metric.name} is declared as a ${metric.kind}; use ` +
        `ctx.metrics.${metric.kind === "timer" ? "timer or histogram" : metric.kind}`,
    );
  }
  return metric;
}

/** A record's labels: `task_name`, then every declared label (given ones checked, others ""). */
function metricLabels(
  taskName: string,
  metric: CompiledTaskMetric,
  given: unknown,
): Record<string, string> {
  const labels: Record<string, string> = { task_name: taskName };
  for (const label of metric.labels) labels[label] = "";
  if (given === undefined) return labels;
  if (given === null || typeof given !== "object" || Array.isArray(given)) {
    throw new TypeError(`ctx.metrics: labels of ${metric.name} must be an object of strings`);
  }
  for (const [key, value] of Object.entries(given as Record<string, unknown>)) {
    if (!metric.labels.includes(key)) {
      throw new TypeError(
        `ctx.metrics: ${metric.name} declares no label ${JSON.stringify(key)} (declared: ${
          metric.labels.join(", ") || "none"
        }); add it to the metric's labels in defineTask`,
      );
    }
    if (typeof value !== "string") {
      throw new TypeError(`ctx.metrics: label ${key} of ${metric.name} must be a string`);
    }
    labels[key] = value.slice(0, 256);
  }
  return labels;
}

function finiteValue(metric: CompiledTaskMetric, value: unknown, nonNegative: boolean): number {
  if (typeof value !== "number" || !Number.isFinite(value) || (nonNegative && value < 0)) {
    throw new RangeError(
      `ctx.metrics: ${metric.name} needs a finite${nonNegative ? ", non-negative" : ""} ` +
        `number, got ${String(value)}`,
    );
  }
  return value;
}
