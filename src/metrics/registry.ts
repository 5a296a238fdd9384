/**
 * An in-memory metrics registry: counter, gauge and histogram families with a fixed set of
 * label names each, validated on every record (an undeclared metric or label is a
 * `TypeError`, never a silent drop). The supervisor holds one; the Prometheus text
 * exposition (`exposition.ts`) and the OTLP bridge (`otlp.ts`) read it.
 *
 * @module
 */

/** The kinds of metric a registry holds. */
export type MetricKind = "counter" | "gauge" | "histogram";

/** Label values of one series, by label name. */
export type Labels = Readonly<Record<string, string>>;

/** The declaration of a metric family. */
export interface MetricSpec {
  /** Prometheus name (`[a-zA-Z_:][a-zA-Z0-9_:]*`); counters end in `_total`. */
  readonly name: string;
  /** One line of help text. */
  readonly help: string;
  readonly kind: MetricKind;
  /** The label names every record must give, exactly. */
  readonly labelNames: readonly string[];
  /** Upper bounds of the histogram buckets, ascending (`+Inf` is implied). */
  readonly buckets?: readonly number[];
  /** UCUM unit for OTLP (`s`, `By`, `1`). @default "1" */
  readonly unit?: string;
  /** Name over OTLP. @default the name without a `_total` suffix */
  readonly otelName?: string;
}

/** One series of a family as read by an exporter. */
export interface SeriesSnapshot {
  readonly labels: Labels;
  /** Counter or gauge value; a histogram's sum. */
  readonly value: number;
  /** Histogram only: per-bucket (not cumulative) counts, one per bound plus `+Inf`. */
  readonly bucketCounts?: readonly number[];
  /** Histogram only: number of observations. */
  readonly count?: number;
}

/** A family and its series, in a stable order. */
export interface FamilySnapshot {
  readonly spec: MetricSpec;
  readonly series: readonly SeriesSnapshot[];
}

/** What a record did, for listeners such as the OTLP bridge. */
export interface RecordEvent {
  readonly spec: MetricSpec;
  readonly op: "inc" | "set" | "observe";
  readonly labels: Labels;
  readonly value: number;
  /** The series' value after the record (a gauge's current value). */
  readonly total: number;
}

/** Buckets for durations in seconds (Conductor SDK time buckets, extended to 10 min). */
export const SECONDS_BUCKETS: readonly number[] = Object.freeze(
  [0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600],
);

/** Buckets for sizes in bytes. */
export const BYTES_BUCKETS: readonly number[] = Object.freeze([
  1_024,
  16_384,
  131_072,
  1_048_576,
  16_777_216,
  134_217_728,
  1_073_741_824,
]);

const NAME = /^[a-zA-Z_:][a-zA-Z0-9_:]*$/;
const LABEL = /^[a-zA-Z_][a-zA-Z0-9_]*$/;

interface Series {
  labels: Labels;
  value: number;
  bucketCounts: number[] | undefined;
  count: number;
}

interface Family {
  spec: MetricSpec;
  series: Map<string, Series>;
}

/**
 * Holds metric families and their series.
 *
 * @example
 * ```ts
 * const registry = new MetricsRegistry();
 * registry.define({ name: "jobs_total", help: "Jobs.", kind: "counter", labelNames: ["type"] });
 * registry.inc("jobs_total", { type: "a" });
 * ```
 */
export class MetricsRegistry {
  readonly #families = new Map<string, Family>();
  readonly #listeners = new Set<(event: RecordEvent) => void>();

  /**
   * Declares a family. Declaring the same spec twice is a no-op; a different spec under a
   * taken name is a `TypeError`.
   */
  define(spec: MetricSpec): void {
    const existing = this.#families.get(spec.name);
    if (existing) {
      if (JSON.stringify(existing.spec) !== JSON.stringify(spec)) {
        throw new TypeError(`metrics: ${spec.name} is already declared differently`);
      }
      return;
    }
    checkSpec(spec);
    this.#families.set(spec.name, { spec: Object.freeze({ ...spec }), series: new Map() });
  }

  /** Whether `name` is declared. */
  has(name: string): boolean {
    return this.#families.has(name);
  }

  /** The spec of `name`, if declared. */
  spec(name: string): MetricSpec | undefined {
    return this.#families.get(name)?.spec;
  }

  /** Adds `value` (>= 0) to a counter, or any finite value to a gauge. */
  inc(name: string, labels: Labels = {}, value = 1): void {
    const family = this.#family(name, ["counter", "gauge"]);
    if (!Number.isFinite(value) || (family.spec.kind === "counter" && value < 0)) {
      throw new RangeError(`metrics: ${name} cannot be increased by ${value}`);
    }
    const series = this.#series(family, labels);
    series.value += value;
    this.#emit({ spec: family.spec, op: "inc", labels: series.labels, value, total: series.value });
  }

  /** Sets a gauge. */
  set(name: string, labels: Labels, value: number): void {
    const family = this.#family(name, ["gauge"]);
    if (!Number.isFinite(value)) throw new RangeError(`metrics: ${name} cannot be set to ${value}`);
    const series = this.#series(family, labels);
    series.value = value;
    this.#emit({ spec: family.spec, op: "set", labels: series.labels, value, total: value });
  }

  /** Records one observation of a histogram. */
  observe(name: string, labels: Labels, value: number): void {
    const family = this.#family(name, ["histogram"]);
    if (!Number.isFinite(value)) {
      throw new RangeError(`metrics: ${name} cannot observe ${value}`);
    }
    const series = this.#series(family, labels);
    const bounds = family.spec.buckets!;
    let index = bounds.findIndex((bound) => value <= bound);
    if (index < 0) index = bounds.length;
    series.bucketCounts![index]!++;
    series.count++;
    series.value += value;
    this.#emit({
      spec: family.spec,
      op: "observe",
      labels: series.labels,
      value,
      total: series.value,
    });
  }

  /** Every family with its series, families in declaration order, series by labels. */
  collect(): FamilySnapshot[] {
    return [...this.#families.values()].map((family) => ({
      spec: family.spec,
      series: [...family.series.entries()]
        .sort(([a], [b]) => a < b ? -1 : a > b ? 1 : 0)
        .map(([, series]) => ({
          labels: series.labels,
          value: series.value,
          ...(series.bucketCounts === undefined
            ? {}
            : { bucketCounts: [...series.bucketCounts], count: series.count }),
        })),
    }));
  }

  /** Calls `listener` after every record; returns the unsubscribe function. */
  onRecord(listener: (event: RecordEvent) => void): () => void {
    this.#listeners.add(listener);
    return () => this.#listeners.delete(listener);
  }

  #emit(event: RecordEvent): void {
    for (const listener of this.#listeners) listener(event);
  }

  #family(name: string, kinds: readonly MetricKind[]): Family {
    const family = this.#families.get(name);
    if (family === undefined) {
      throw new TypeError(`metrics: ${name} is not declared; declare it before recording`);
    }
    if (!kinds.includes(family.spec.kind)) {
      throw new TypeError(`metrics: ${name} is a ${family.spec.kind}`);
    }
    return family;
  }

  #series(family: Family, labels: Labels): Series {
    const names = family.spec.labelNames;
    for (const key of Object.keys(labels)) {
      if (!names.includes(key)) {
        throw new TypeError(
          `metrics: ${family.spec.name} has no label ${JSON.stringify(key)} (declared: ${
            names.join(", ") || "none"
          })`,
        );
      }
    }
    const values = names.map((label) => {
      const value = labels[label];
      if (typeof value !== "string") {
        throw new TypeError(`metrics: ${family.spec.name} needs the label ${label} (a string)`);
      }
      return value;
    });
    const key = JSON.stringify(values);
    let series = family.series.get(key);
    if (series === undefined) {
      series = {
        labels: Object.freeze(Object.fromEntries(names.map((label, i) => [label, values[i]!]))),
        value: 0,
        bucketCounts: family.spec.kind === "histogram"
          ? new Array(family.spec.buckets!.length + 1).fill(0)
          : undefined,
        count: 0,
      };
      family.series.set(key, series);
    }
    return series;
  }
}

function checkSpec(spec: MetricSpec): void {
  if (!NAME.test(spec.name)) throw new TypeError(`metrics: invalid metric name ${spec.name}`);
  for (const label of spec.labelNames) {
    if (!LABEL.test(label) || label.startsWith("__") || label === "le") {
      throw new TypeError(`metrics: ${spec.name}: invalid label name ${JSON.stringify(label)}`);
    }
  }
  if (new Set(spec.labelNames).size !== spec.labelNames.length) {
    throw new TypeError(`metrics: ${spec.name}: a label name is repeated`);
  }
  if (spec.kind === "histogram") {
    const buckets = spec.buckets;
    if (!buckets || buckets.length === 0) {
      throw new TypeError(`metrics: histogram ${spec.name} needs buckets`);
    }
    for (let i = 0; i < buckets.length; i++) {
      if (!Number.isFinite(buckets[i]) || (i > 0 && buckets[i]! <= buckets[i - 1]!)) {
        throw new TypeError(`metrics: ${spec.name}: buckets must be finite and ascending`);
      }
    }
  } else if (spec.buckets !== undefined) {
    throw new TypeError(`metrics: ${spec.name}: only histograms have buckets`);
  }
}
