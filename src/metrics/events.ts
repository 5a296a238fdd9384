/**
 * Metric records as they travel from the broker and the executors to the supervisor, which
 * owns the registry: small batches of `inc`/`set`/`observe` records, validated with zod on
 * arrival and applied to the registry (an unknown metric or label is refused there).
 *
 * @module
 */
import { z } from "../vendor/zod.ts";
import type { Labels, MetricsRegistry } from "./registry.ts";

/** One metric record (built on first use: only the supervisor reads records). */
export const MetricRecordSchema = z.lazy(() =>
  z.object({
    op: z.enum(["inc", "set", "observe"]),
    name: z.string().min(1).max(200),
    labels: z.record(z.string(), z.string().max(256)),
    value: z.number(),
  })
);
/** See {@linkcode MetricRecordSchema}. */
export type MetricRecord = z.infer<typeof MetricRecordSchema>;

/**
 * Applies records to `registry`; records it refuses (undeclared metric or label, bad value)
 * are returned with the reason, for the caller to log.
 *
 * @example
 * ```ts
 * import { MetricsRegistry } from "./registry.ts";
 *
 * const registry = new MetricsRegistry();
 * registry.define({ name: "jobs_total", help: "Jobs.", kind: "counter", labelNames: ["type"] });
 * const refused = applyMetricRecords(registry, [
 *   { op: "inc", name: "jobs_total", labels: { type: "a" }, value: 1 },
 *   { op: "inc", name: "undeclared_total", labels: {}, value: 1 },
 * ]);
 * for (const { record, reason } of refused) console.warn(reason, record.name); // the second
 * ```
 */
export function applyMetricRecords(
  registry: MetricsRegistry,
  records: readonly MetricRecord[],
): { record: MetricRecord; reason: string }[] {
  const refused: { record: MetricRecord; reason: string }[] = [];
  for (const record of records) {
    try {
      if (record.op === "inc") registry.inc(record.name, record.labels, record.value);
      else if (record.op === "set") registry.set(record.name, record.labels, record.value);
      else registry.observe(record.name, record.labels, record.value);
    } catch (error) {
      refused.push({ record, reason: (error as Error).message });
    }
  }
  return refused;
}

/**
 * Collects records in a child and hands them over in batches: at most every `flushMs`, or
 * at once with {@linkcode MetricBuffer.flush} (an executor flushes before it reports an
 * outcome, so the supervisor counts the attempt before the broker delivers its result).
 *
 * @example
 * ```ts
 * const sent: MetricRecord[][] = [];
 * const buffer = new MetricBuffer((records) => sent.push(records));
 * buffer.inc("perago_task_poll_total", { taskType: "sum" });
 * buffer.flush(); // sent[0] holds the one record
 * ```
 */
export class MetricBuffer {
  readonly #send: (records: MetricRecord[]) => void;
  readonly #flushMs: number;
  #records: MetricRecord[] = [];
  /**
   * The batch's `inc` record of each series (name and labels) not followed by another kind of
   * record of it: a later increment adds to it instead of making a record (the broker counts
   * every poll and result, the supervisor validates and applies every record it gets).
   */
  #incs = new Map<string, MetricRecord>();
  #touched = false;
  #timer: ReturnType<typeof setTimeout> | undefined;
  /** A {@linkcode MetricBuffer.flushWithin} deadline is armed (`#timer` fires by it). */
  #soon = false;

  /** `send` receives each non-empty batch. */
  constructor(send: (records: MetricRecord[]) => void, options: { flushMs?: number } = {}) {
    this.#send = send;
    this.#flushMs = options.flushMs ?? 1000;
  }

  /** Queues an increment. */
  inc(name: string, labels: Labels, value = 1): void {
    this.#push({ op: "inc", name, labels: { ...labels }, value });
  }

  /** Queues a gauge value. */
  set(name: string, labels: Labels, value: number): void {
    this.#push({ op: "set", name, labels: { ...labels }, value });
  }

  /** Queues a histogram observation. */
  observe(name: string, labels: Labels, value: number): void {
    this.#push({ op: "observe", name, labels: { ...labels }, value });
  }

  /** Queues a record as it was made elsewhere (a task's own metrics arrive as records). */
  add(record: MetricRecord): void {
    const { op, name, labels, value } = record;
    this.#push({ op, name, labels: { ...labels }, value });
  }

  /** Asks for a batch (maybe empty) within `flushMs`: the sender has news of its own. */
  touch(): void {
    this.#touched = true;
    this.#timer ??= setTimeout(() => this.flush(), this.#flushMs);
  }

  /**
   * Sends what is queued within `delayMs` (at once with `delayMs` 0): records queued
   * meanwhile join the same batch, so a sender recording in bursts (an executor's attempts
   * one after another) sends one batch for several bursts instead of one each.
   */
  flushWithin(delayMs: number): void {
    if (delayMs <= 0) return this.flush();
    if (this.#soon || (this.#records.length === 0 && !this.#touched)) return;
    clearTimeout(this.#timer);
    this.#soon = true;
    this.#timer = setTimeout(() => this.flush(), delayMs);
  }

  /** Sends what is queued now. */
  flush(): void {
    clearTimeout(this.#timer);
    this.#timer = undefined;
    this.#soon = false;
    if (this.#records.length === 0 && !this.#touched) return;
    this.#touched = false;
    const records = this.#records;
    this.#records = [];
    this.#incs.clear();
    this.#send(records);
  }

  #push(record: MetricRecord): void {
    const series = `${record.name}\u0000${JSON.stringify(record.labels)}`;
    if (record.op === "inc") {
      const earlier = this.#incs.get(series);
      if (earlier !== undefined) {
        earlier.value += record.value;
        return;
      }
      this.#incs.set(series, record);
    } else this.#incs.delete(series);
    this.#records.push(record);
    this.#timer ??= setTimeout(() => this.flush(), this.#flushMs);
  }
}
