/**
 * The supervisor's side of observability: the metrics registry (perago's runtime metrics
 * plus the task-owned ones the loaded tasks declare), what the children report over the
 * protocol (metric records, whether Conductor and lakeFS answered), what the supervisor
 * sees itself (slots, in-flight attempts, restarts, the result backlog), and the liveness
 * and readiness verdicts of `/healthz` and `/readyz`.
 *
 * When a server has not been heard from for a while (the broker is not polling because
 * every slot is busy; no attempt touched lakeFS), a cheap unauthenticated health request
 * (`GET /health` on Conductor, `GET /api/v1/healthcheck` on lakeFS) keeps the verdict fresh.
 *
 * @module
 */
import { getLogger, type Logger } from "../log/logger.ts";
import { defineRuntimeMetrics, M } from "../metrics/catalog.ts";
import { applyMetricRecords, type MetricRecord } from "../metrics/events.ts";
import {
  ContactTracker,
  type HealthInputs,
  liveness,
  type ProbeVerdict,
  readiness,
} from "../metrics/health.ts";
import { MetricsRegistry } from "../metrics/registry.ts";
import { appMetricName, type CompiledTaskMetric } from "../task/metrics.ts";
import { VERSION } from "../version.ts";

/** A server the runtime depends on. */
export type ServerName = "conductor" | "lakefs";

/** What the supervisor tells its telemetry (the seam the supervisor calls). */
export interface SupervisorTelemetry {
  /** Metric records and server contacts a child reported. */
  childReport(
    who: string,
    records: readonly MetricRecord[],
    contacts: readonly { server: ServerName; ok: boolean; detail?: string | undefined }[],
  ): void;
  attemptStarted(taskType: string): void;
  attemptEnded(taskType: string): void;
  /** A final result (or an abandon) went to the broker. */
  resultSent(): void;
  /** The broker said a result left it (delivered, dropped or skipped). */
  resultLeft(): void;
  executorRestarted(): void;
  /** An executor ended on purpose after its directory went to the warm pool (not a failure). */
  executorRecycled(): void;
  /** Executors alive and ready, and those of them idle. */
  slotsChanged(up: number, free: number): void;
}

/** The supervisor's state as the probes need it. */
export interface SupervisorStatus {
  state: HealthInputs["state"];
  brokerAlive: boolean;
  executorsUp: number;
  executorSlots: number;
}

/** Options of {@linkcode RuntimeTelemetry}. */
export interface RuntimeTelemetryOptions {
  executionMode: "process" | "thread";
  /** `-j`. */
  concurrency: number;
  /** Conductor API URL (its `/health` is probed). */
  conductorUrl: string;
  /** lakeFS endpoint, when a workspace task is served (its health then counts). */
  lakefsUrl: string | undefined;
  /** A server counts as reached when its last contact succeeded within this. @default 30000 */
  readyWindowMs?: number;
  /** Probe a server not heard from for this long. @default 5000 */
  probeAfterMs?: number;
  /** Timeout of one health request. @default 3000 */
  probeTimeoutMs?: number;
  /** Registry to fill. @default a new one */
  registry?: MetricsRegistry;
  logger?: Logger;
}

/**
 * Holds the runtime's metrics and health.
 *
 * @example
 * ```ts ignore
 * // startRuntime (start.ts) builds the supervisor's other options from the configuration.
 * const telemetry = new RuntimeTelemetry({ executionMode: "process", concurrency: 2,
 *   conductorUrl, lakefsUrl });
 * const supervisor = new Supervisor({ ...supervisorOptions, telemetry });
 * telemetry.watch(() => supervisor.status);
 * ```
 */
export class RuntimeTelemetry implements SupervisorTelemetry {
  /** perago's metrics and the tasks' own. */
  readonly registry: MetricsRegistry;
  readonly #contacts: Record<ServerName, ContactTracker> = {
    conductor: new ContactTracker(),
    lakefs: new ContactTracker(),
  };
  readonly #o: RuntimeTelemetryOptions;
  readonly #log: Logger;
  readonly #inFlight = new Map<string, number>();
  #backlog = 0;
  #status: () => SupervisorStatus = () => ({
    state: "starting",
    brokerAlive: false,
    executorsUp: 0,
    executorSlots: this.#o.concurrency,
  });
  #probeTimer: ReturnType<typeof setInterval> | undefined;
  readonly #probing = new Set<ServerName>();
  readonly #lastHeard: Record<ServerName, number> = { conductor: 0, lakefs: 0 };
  readonly #stop = new AbortController();

  constructor(options: RuntimeTelemetryOptions) {
    this.#o = options;
    this.#log = options.logger ?? getLogger("runtime", "telemetry");
    this.registry = options.registry ?? new MetricsRegistry();
    defineRuntimeMetrics(this.registry);
    this.registry.set(M.buildInfo, {
      version: VERSION,
      deno_version: Deno.version.deno,
      execution_mode: options.executionMode,
    }, 1);
    this.registry.set(M.slots, {}, options.concurrency);
    this.registry.set(M.executorsUp, {}, 0);
    this.registry.set(M.freeSlots, {}, 0);
    this.registry.set(M.resultBacklog, {}, 0);
    this.registry.inc(M.executorRestarts, {}, 0);
    this.registry.inc(M.executorRecycles, {}, 0);
  }

  /**
   * Reads the supervisor's status for the probes from now on and, when `healthRequests`
   * (someone reads `/readyz`), starts the health requests for servers gone quiet. Call
   * {@linkcode RuntimeTelemetry.close} to stop them.
   */
  watch(status: () => SupervisorStatus, options: { healthRequests?: boolean } = {}): void {
    this.#status = status;
    if (options.healthRequests === false) return;
    const every = this.#o.probeAfterMs ?? 5000;
    this.#probeTimer ??= setInterval(() => this.#probeQuiet(), Math.max(250, every / 2));
  }

  /** Stops the health requests. */
  close(): void {
    clearInterval(this.#probeTimer);
    this.#probeTimer = undefined;
    this.#stop.abort();
  }

  /** The `/healthz` verdict. */
  liveness(): ProbeVerdict {
    return liveness(this.#inputs());
  }

  /** The `/readyz` verdict; also updates `perago_ready` and `perago_up`. */
  readiness(): ProbeVerdict {
    const inputs = this.#inputs();
    const verdict = readiness(inputs);
    this.registry.set(M.ready, {}, verdict.ok ? 1 : 0);
    this.registry.set(M.up, {}, liveness(inputs).ok ? 1 : 0);
    return verdict;
  }

  /** Families to expose (the probes' gauges refreshed first). */
  collect(): ReturnType<MetricsRegistry["collect"]> {
    this.readiness();
    return this.registry.collect();
  }

  // ---- SupervisorTelemetry ----

  childReport(
    who: string,
    records: readonly MetricRecord[],
    contacts: readonly { server: ServerName; ok: boolean; detail?: string | undefined }[],
  ): void {
    for (const { record, reason } of applyMetricRecords(this.registry, records)) {
      this.#log.warn("{who} sent a metric record the registry refused: {reason}", {
        who,
        reason,
        name: record.name,
      });
    }
    for (const contact of contacts) this.contact(contact.server, contact.ok, contact.detail);
  }

  /**
   * Declares the served task types: `perago_task_paused` is 1 for each paused one (never
   * polled) and 0 for the others, labelled with the domain their polls carry.
   */
  servedTaskTypes(
    types: readonly { taskType: string; paused: boolean; domain: string | undefined }[],
  ): void {
    for (const { taskType, paused, domain } of types) {
      this.registry.set(M.taskPaused, { taskType, domain: domain ?? "" }, paused ? 1 : 0);
    }
  }

  /** Records whether a request to `server` got through. */
  contact(server: ServerName, ok: boolean, detail?: string): void {
    this.#lastHeard[server] = Date.now();
    if (ok) this.#contacts[server].ok();
    else this.#contacts[server].failed(detail ?? "request failed");
  }

  attemptStarted(taskType: string): void {
    const count = (this.#inFlight.get(taskType) ?? 0) + 1;
    this.#inFlight.set(taskType, count);
    this.registry.set(M.attemptsInFlight, { taskType }, count);
  }

  attemptEnded(taskType: string): void {
    const count = Math.max(0, (this.#inFlight.get(taskType) ?? 0) - 1);
    this.#inFlight.set(taskType, count);
    this.registry.set(M.attemptsInFlight, { taskType }, count);
  }

  resultSent(): void {
    this.registry.set(M.resultBacklog, {}, ++this.#backlog);
  }

  resultLeft(): void {
    this.#backlog = Math.max(0, this.#backlog - 1);
    this.registry.set(M.resultBacklog, {}, this.#backlog);
  }

  executorRestarted(): void {
    this.registry.inc(M.executorRestarts, {});
  }

  executorRecycled(): void {
    this.registry.inc(M.executorRecycles, {});
  }

  slotsChanged(up: number, free: number): void {
    this.registry.set(M.executorsUp, {}, up);
    this.registry.set(M.freeSlots, {}, free);
  }

  // ---- health ----

  #inputs(): HealthInputs {
    const status = this.#status();
    const windowMs = this.#o.readyWindowMs ?? 30_000;
    return {
      ...status,
      conductorProblem: this.#contacts.conductor.problem(windowMs),
      lakefsProblem: this.#o.lakefsUrl === undefined
        ? undefined
        : this.#contacts.lakefs.problem(windowMs),
    };
  }

  #probeQuiet(): void {
    const quietMs = this.#o.probeAfterMs ?? 5000;
    const targets: [ServerName, string | undefined][] = [
      ["conductor", healthUrl("conductor", this.#o.conductorUrl)],
      ["lakefs", this.#o.lakefsUrl && healthUrl("lakefs", this.#o.lakefsUrl)],
    ];
    for (const [server, url] of targets) {
      if (url === undefined || this.#probing.has(server)) continue;
      if (Date.now() - this.#lastHeard[server] < quietMs) continue;
      this.#probing.add(server);
      void this.#probe(server, url).finally(() => this.#probing.delete(server));
    }
  }

  async #probe(server: ServerName, url: string): Promise<void> {
    const timeoutMs = this.#o.probeTimeoutMs ?? 3000;
    try {
      const response = await fetch(url, {
        signal: AbortSignal.any([this.#stop.signal, AbortSignal.timeout(timeoutMs)]),
      });
      await response.body?.cancel();
      if (this.#stop.signal.aborted) return;
      if (response.ok) this.contact(server, true);
      else this.contact(server, false, `health check answered ${response.status}`);
    } catch (error) {
      if (this.#stop.signal.aborted) return;
      this.contact(server, false, `health check failed: ${(error as Error).message}`);
    }
  }
}

/**
 * Declares a task's own metrics in `registry`: `app_<name>` (`app.<name>` over OTLP) with the
 * label `task_name` before the task's declared labels.
 *
 * @throws {TypeError} when another task declared the same name differently.
 */
export function declareTaskMetrics(
  registry: MetricsRegistry,
  taskName: string,
  metrics: Readonly<Record<string, CompiledTaskMetric>>,
): void {
  for (const metric of Object.values(metrics)) {
    const name = appMetricName(metric);
    try {
      registry.define({
        name,
        help: metric.description || `${metric.name} (declared by the task)`,
        kind: metric.kind === "timer" ? "histogram" : metric.kind,
        labelNames: ["task_name", ...metric.labels],
        ...(metric.buckets === undefined ? {} : { buckets: metric.buckets }),
        unit: metric.unit,
        otelName: `app.${metric.name}`,
      });
    } catch (error) {
      throw new TypeError(
        `task ${taskName} declares the metric ${metric.name}, which another task declares ` +
          "differently (kind, unit, labels, buckets or description); declare it the same way " +
          "in both, or give it another name",
        { cause: error },
      );
    }
  }
}

/** The unauthenticated health endpoint of a server, from its configured URL. */
export function healthUrl(server: ServerName, configured: string): string {
  const base = configured.replace(/\/+$/, "");
  if (server === "conductor") return `${base.replace(/\/api$/, "")}/health`;
  return `${base.replace(/\/api\/v1$/, "")}/api/v1/healthcheck`;
}
