/**
 * Task-owned metrics: a task declares them in `defineTask({ metrics })` (kind, unit, the
 * labels it may set) and records them through `ctx.metrics`. They are exported as
 * `app.<name>` (OTLP) / `app_<name>` (Prometheus) with the task's name as the `task_name`
 * label; attempt ids are never labels. An undeclared metric, a wrong kind or an undeclared
 * label is an error: at definition time for the declaration, at record time for a record.
 *
 * @module
 */

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
const KINDS: readonly TaskMetricKind[] = ["counter", "gauge", "histogram", "timer"];
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

/**
 * Checks and compiles the `metrics` of `defineTask`.
 *
 * @param fail makes the definition error for a field (`metrics.<name>.<key>`) and detail.
 */
export function compileTaskMetrics(
  value: unknown,
  fail: (field: string, detail: string) => Error,
): Readonly<Record<string, CompiledTaskMetric>> {
  if (value === undefined) return Object.freeze({});
  if (value === null || typeof value !== "object" || Array.isArray(value)) {
    throw fail("metrics", "must be an object { <name>: { kind, unit?, labels?, ... } }");
  }
  const compiled: Record<string, CompiledTaskMetric> = {};
  for (const [name, raw] of Object.entries(value as Record<string, unknown>)) {
    const field = `metrics.${name}`;
    if (!METRIC_NAME.test(name)) {
      throw fail(field, "a metric name is 1..100 of a-z, 0-9 and _, starting with a letter");
    }
    if (raw === null || typeof raw !== "object" || Array.isArray(raw)) {
      throw fail(field, "must be an object { kind, description?, unit?, labels?, buckets? }");
    }
    const spec = raw as Record<string, unknown>;
    for (const key of Object.keys(spec)) {
      if (!DECLARATION_KEYS.includes(key)) {
        throw fail(`${field}.${key}`, `unknown field; expected ${DECLARATION_KEYS.join(", ")}`);
      }
    }
    const kind = spec.kind as TaskMetricKind;
    if (!KINDS.includes(kind)) {
      throw fail(`${field}.kind`, `must be one of ${KINDS.join(", ")}`);
    }
    if (spec.description !== undefined && typeof spec.description !== "string") {
      throw fail(`${field}.description`, "must be a string");
    }
    if (
      spec.unit !== undefined && (typeof spec.unit !== "string" || !/^\S{1,32}$/.test(spec.unit))
    ) {
      throw fail(`${field}.unit`, "must be a unit such as 1, By, s or ms");
    }
    const labels = spec.labels ?? [];
    if (!Array.isArray(labels)) throw fail(`${field}.labels`, "must be an array of label names");
    for (const label of labels) {
      if (typeof label !== "string" || !LABEL_NAME.test(label)) {
        throw fail(`${field}.labels`, `invalid label name ${JSON.stringify(label)}`);
      }
      if (RESERVED_METRIC_LABELS.includes(label)) {
        throw fail(
          `${field}.labels`,
          `${label} is reserved (perago sets task_name; attempt ids are never labels)`,
        );
      }
    }
    if (new Set(labels).size !== labels.length) throw fail(`${field}.labels`, "a label repeats");
    let buckets: readonly number[] | undefined;
    if (kind === "histogram" || kind === "timer") {
      const given = spec.buckets ??
        (kind === "timer" ? DEFAULT_TIMER_BUCKETS : DEFAULT_HISTOGRAM_BUCKETS);
      if (
        !Array.isArray(given) || given.length === 0 ||
        given.some((b, i) => !Number.isFinite(b) || (i > 0 && b <= given[i - 1]))
      ) {
        throw fail(`${field}.buckets`, "must be finite numbers in ascending order");
      }
      buckets = Object.freeze([...given]);
    } else if (spec.buckets !== undefined) {
      throw fail(`${field}.buckets`, "only histograms and timers have buckets");
    }
    compiled[name] = Object.freeze({
      name,
      kind,
      description: (spec.description as string | undefined) ?? "",
      unit: (spec.unit as string | undefined) ?? (kind === "timer" ? "s" : "1"),
      labels: Object.freeze([...labels as string[]]),
      buckets,
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
 * import { z } from "zod";
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
