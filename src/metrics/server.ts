/**
 * The supervisor's HTTP listener for operators: `GET /metrics` (Prometheus text),
 * `GET /healthz` (liveness) and `GET /readyz` (readiness); 200 or 503 with a JSON body
 * `{status, reasons}`. Nothing else is served; no request reaches the runtime.
 *
 * @module
 */
import { PROMETHEUS_CONTENT_TYPE, renderPrometheusText } from "./exposition.ts";
import type { ProbeVerdict } from "./health.ts";
import type { FamilySnapshot } from "./registry.ts";

/** The listener could not be opened (address taken, not permitted, not local). */
export class MetricsListenError extends Error {
  override name = "MetricsListenError";
}

/** Where to listen. */
export interface ListenAddress {
  hostname: string;
  /** 0 picks a free port (tests). */
  port: number;
}

/** Options of {@linkcode startMetricsServer}. */
export interface MetricsServerOptions {
  address: ListenAddress;
  /** What the setting was called, for error messages. @default "PERAGO_METRICS_ADDRESS" */
  settingName?: string;
  /** The families to expose, read on each scrape. */
  collect: () => readonly FamilySnapshot[];
  liveness: () => ProbeVerdict;
  readiness: () => ProbeVerdict;
}

/** A running listener. */
export interface MetricsServer {
  /** `host:port` actually bound (the port filled in when 0 was asked). */
  readonly address: string;
  /** `http://host:port`. */
  readonly url: string;
  /** Stops listening; idempotent. */
  close(): Promise<void>;
}

/**
 * Starts the listener. Requires `--allow-net` to the address.
 *
 * @throws {MetricsListenError} when the address is taken or not permitted.
 * @example
 * ```ts
 * import { MetricsRegistry } from "./registry.ts";
 *
 * const registry = new MetricsRegistry();
 * const ok = () => ({ ok: true, reasons: [] });
 * const server = startMetricsServer({ address: { hostname: "127.0.0.1", port: 0 },
 *   collect: () => registry.collect(), liveness: ok, readiness: ok });
 * await (await fetch(`${server.url}/healthz`)).text(); // 200
 * await server.close();
 * ```
 */
export function startMetricsServer(options: MetricsServerOptions): MetricsServer {
  const setting = options.settingName ?? "PERAGO_METRICS_ADDRESS";
  const { hostname, port } = options.address;
  const shown = hostname.includes(":") ? `[${hostname}]:${port}` : `${hostname}:${port}`;
  let server: Deno.HttpServer<Deno.NetAddr>;
  try {
    server = Deno.serve({ hostname, port, onListen: () => {} }, (request) => handle(request));
  } catch (error) {
    throw new MetricsListenError(listenProblem(error, shown, setting), { cause: error });
  }
  const bound = server.addr;
  const host = bound.hostname.includes(":") ? `[${bound.hostname}]` : bound.hostname;
  const address = `${host}:${bound.port}`;
  let closed: Promise<void> | undefined;

  function probe(verdict: ProbeVerdict): Response {
    return Response.json(
      { status: verdict.ok ? "ok" : "unavailable", reasons: verdict.reasons },
      { status: verdict.ok ? 200 : 503, headers: { "cache-control": "no-store" } },
    );
  }

  function handle(request: Request): Response {
    const path = new URL(request.url).pathname;
    if (request.method !== "GET" && request.method !== "HEAD") {
      return new Response("method not allowed\n", { status: 405, headers: { allow: "GET, HEAD" } });
    }
    try {
      switch (path) {
        case "/metrics":
          return new Response(renderPrometheusText(options.collect()), {
            headers: { "content-type": PROMETHEUS_CONTENT_TYPE, "cache-control": "no-store" },
          });
        case "/healthz":
          return probe(options.liveness());
        case "/readyz":
          return probe(options.readiness());
        default:
          return new Response("not found: try /metrics, /healthz or /readyz\n", { status: 404 });
      }
    } catch (error) {
      return new Response(`error: ${(error as Error).message}\n`, { status: 500 });
    }
  }

  return {
    address,
    url: `http://${address}`,
    close() {
      closed ??= server.shutdown().catch(() => {});
      return closed;
    },
  };
}

function listenProblem(error: unknown, shown: string, setting: string): string {
  if (error instanceof Deno.errors.AddrInUse) {
    return `cannot listen for metrics on ${shown}: the address is already in use; set ` +
      `${setting} to a free port or stop the process listening there`;
  }
  if (error instanceof Deno.errors.NotCapable || error instanceof Deno.errors.PermissionDenied) {
    return `cannot listen for metrics on ${shown}: not permitted (${
      (error as Error).message
    }); a compiled perago may listen only where PERAGO_METRICS_ADDRESS pointed when it was ` +
      "built: rebuild it with that setting (deno task compile)";
  }
  if (error instanceof Deno.errors.AddrNotAvailable) {
    return `cannot listen for metrics on ${shown}: no such local address; set ${setting} to ` +
      "an address of this host, e.g. 127.0.0.1:9464";
  }
  return `cannot listen for metrics on ${shown}: ${(error as Error).message}; check ${setting}`;
}
