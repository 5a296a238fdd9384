/**
 * The same metrics over OTLP, through Deno's built-in OpenTelemetry: every record of the
 * registry is replayed into an `@opentelemetry/api` instrument, which Deno exports when the
 * process runs with `OTEL_DENO=true` (endpoint, protocol and interval from the standard
 * `OTEL_EXPORTER_OTLP_*` and `OTEL_METRIC_EXPORT_INTERVAL` variables). Without it the API
 * hands out no-op instruments and this costs next to nothing.
 *
 * Why Deno's exporter rather than the npm OpenTelemetry SDK: it runs in Deno's Rust side,
 * outside the permission checks, so no process gets `--allow-net` to the collector or
 * `--allow-env` for the `OTEL_*` variables: the supervisor, the broker and the executors
 * keep exactly the hosts they had.
 *
 * Besides perago's own series (OTLP names without the Prometheus `_total`), the series of
 * perago for Python are emitted with their names and labels, so its dashboards keep working:
 * `runtime.task_attempt_duration_seconds{task_name}`,
 * `runtime.workspace_io_duration_seconds{task_name, operation=download|upload|publish}`,
 * `runtime.workspace_io_bytes{task_name, operation=download|upload}` and
 * `runtime.busy_slots{task_name, perago_instance_id}`.
 *
 * @module
 */
import { type Attributes, metrics } from "../otel/trace.ts";
import { M } from "./catalog.ts";
import type { MetricSpec, MetricsRegistry, RecordEvent } from "./registry.ts";
import { VERSION } from "../version.ts";

/** Options of {@linkcode bridgeToOpenTelemetry}. */
export interface OtlpBridgeOptions {
  /** `PERAGO_INSTANCE_ID`: the `perago_instance_id` label of `runtime.busy_slots`. */
  instanceId: string;
}

interface Instruments {
  counter(name: string, unit: string, description: string): { add(v: number, a: Attributes): void };
  gauge(
    name: string,
    unit: string,
    description: string,
  ): { record(v: number, a: Attributes): void };
  histogram(
    name: string,
    unit: string,
    description: string,
    buckets: readonly number[] | undefined,
  ): { record(v: number, a: Attributes): void };
}

/**
 * Whether Deno's OpenTelemetry may be exporting in a process with environment `env`: unless
 * `OTEL_DENO` is unset, empty, `false` or `0` (Deno exports only with `OTEL_DENO=true`; any
 * other value keeps the bridge, the safe side). Without export the bridge replays every
 * record into no-op instruments for nothing.
 *
 * @example
 * ```ts
 * otlpExportMayBeOn({ OTEL_DENO: "true" }); // true
 * otlpExportMayBeOn({}); // false
 * ```
 */
export function otlpExportMayBeOn(env: Readonly<Record<string, string | undefined>>): boolean {
  const value = env.OTEL_DENO?.trim().toLowerCase();
  return value !== undefined && value !== "" && value !== "false" && value !== "0";
}

/** The OTLP name of a family: its `otelName`, else its name without `_total`. */
export function otelName(spec: MetricSpec): string {
  return spec.otelName ?? spec.name.replace(/_total$/, "");
}

/**
 * Replays every record of `registry` into OpenTelemetry instruments from now on; returns the
 * unsubscribe function.
 *
 * @example
 * ```ts
 * import { MetricsRegistry } from "./registry.ts";
 *
 * const stop = bridgeToOpenTelemetry(new MetricsRegistry(), { instanceId: "host-1" });
 * stop();
 * ```
 */
export function bridgeToOpenTelemetry(
  registry: MetricsRegistry,
  options: OtlpBridgeOptions,
): () => void {
  const meter = metrics.getMeter("perago", VERSION);
  const made = new Map<string, unknown>();
  const once = <T>(key: string, make: () => T): T => {
    if (!made.has(key)) made.set(key, make());
    return made.get(key) as T;
  };
  const instruments: Instruments = {
    counter: (name, unit, description) =>
      once(`c:${name}`, () => meter.createCounter(name, { unit, description })),
    gauge: (name, unit, description) =>
      once(`g:${name}`, () => meter.createGauge(name, { unit, description })),
    histogram: (name, unit, description, buckets) =>
      once(`h:${name}`, () =>
        meter.createHistogram(name, {
          unit,
          description,
          ...(buckets === undefined ? {} : { advice: { explicitBucketBoundaries: [...buckets] } }),
        })),
  };
  return registry.onRecord((event) => {
    try {
      replay(event, instruments);
      pythonSeries(event, instruments, options);
    } catch {
      // An exporter problem never reaches the runtime.
    }
  });
}

function replay(event: RecordEvent, instruments: Instruments): void {
  const { spec } = event;
  const name = otelName(spec);
  const unit = spec.unit ?? "1";
  if (spec.kind === "counter") {
    instruments.counter(name, unit, spec.help).add(event.value, event.labels);
  } else if (spec.kind === "gauge") {
    instruments.gauge(name, unit, spec.help).record(event.total, event.labels);
  } else {
    instruments.histogram(name, unit, spec.help, spec.buckets).record(event.value, event.labels);
  }
}

const IO_PHASES: Readonly<Record<string, string>> = {
  download: "download",
  stage: "upload",
  publish: "publish",
};

/** The runtime series of perago for Python, derived from the matching perago records. */
function pythonSeries(
  event: RecordEvent,
  instruments: Instruments,
  options: OtlpBridgeOptions,
): void {
  const taskName = event.labels.taskType;
  if (taskName === undefined) return;
  switch (event.spec.name) {
    case M.taskExecuteTime:
      instruments.histogram(
        "runtime.task_attempt_duration_seconds",
        "s",
        "Duration of a task attempt.",
        event.spec.buckets,
      ).record(event.value, { task_name: taskName });
      return;
    case M.attemptPhase: {
      const operation = IO_PHASES[event.labels.phase ?? ""];
      if (operation === undefined) return;
      instruments.histogram(
        "runtime.workspace_io_duration_seconds",
        "s",
        "Duration of a workspace download, upload or publication.",
        event.spec.buckets,
      ).record(event.value, { task_name: taskName, operation });
      return;
    }
    case M.workspaceIoBytes:
      // One increment per operation and attempt: the bytes that attempt moved.
      instruments.histogram(
        "runtime.workspace_io_bytes",
        "By",
        "Bytes of a workspace download or upload.",
        undefined,
      ).record(event.value, { task_name: taskName, operation: event.labels.operation ?? "" });
      return;
    case M.attemptsInFlight:
      instruments.gauge("runtime.busy_slots", "1", "Executor slots busy with the task.").record(
        event.total,
        { task_name: taskName, perago_instance_id: options.instanceId },
      );
      return;
  }
}
