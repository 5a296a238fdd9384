/**
 * A fault-injecting loopback proxy for tests against a real server: it forwards every request
 * (streamed both ways) to the target and lets a {@linkcode FaultInjector} answer some of them
 * itself first: 429 with `Retry-After`, 5xx, dropped connections, latency, pause, exactly as
 * the demo servers inject them. Subclasses of FaultInjector that act on requests (the chaos
 * suite's executor killer) work here too, since every request passes through `apply`.
 *
 * ```ts ignore
 * const faults = new FaultInjector();
 * const proxy = startFaultProxy("http://127.0.0.1:18765", faults);
 * faults.set({ tooManyRate: 0.15, errorRate: 0.15, retryAfterSeconds: 0 });
 * // point the client at proxy.url
 * await proxy.close();
 * ```
 */
import { FaultInjector } from "../src/devstack/faults.ts";

/** A running proxy. */
export interface FaultProxy {
  /** `http://127.0.0.1:PORT`: use it in place of the target's URL. */
  readonly url: string;
  readonly faults: FaultInjector;
  /** Requests forwarded to the target (not answered by a fault). */
  readonly forwarded: () => number;
  close(): Promise<void>;
}

/** Request headers not passed on: per-connection ones, and encodings (bodies pass as sent). */
const DROPPED_REQUEST_HEADERS = ["host", "connection", "keep-alive", "accept-encoding"];
/** Response headers not passed back: per-connection ones (Deno frames the body itself). */
const DROPPED_RESPONSE_HEADERS = ["connection", "keep-alive", "transfer-encoding"];

/** Starts a proxy on a free loopback port in front of `targetUrl` (scheme, host and port). */
export function startFaultProxy(
  targetUrl: string,
  faults: FaultInjector = new FaultInjector(),
): FaultProxy {
  const target = new URL(targetUrl);
  let forwarded = 0;
  const forward = async (request: Request): Promise<Response> => {
    const incoming = new URL(request.url);
    const url = new URL(incoming.pathname + incoming.search, target);
    const headers = new Headers(request.headers);
    for (const name of DROPPED_REQUEST_HEADERS) headers.delete(name);
    forwarded++;
    const upstream = await fetch(url, {
      method: request.method,
      headers,
      body: request.body,
      redirect: "manual",
    });
    const answer = new Headers(upstream.headers);
    for (const name of DROPPED_RESPONSE_HEADERS) answer.delete(name);
    return new Response(upstream.body, { status: upstream.status, headers: answer });
  };
  const server = Deno.serve({
    hostname: "127.0.0.1",
    port: 0,
    onListen: () => {},
    onError: (error) =>
      Response.json({ message: `fault proxy: ${(error as Error).message}` }, { status: 502 }),
  }, faults.wrap(forward));
  let closed: Promise<void> | undefined;
  return {
    url: `http://127.0.0.1:${server.addr.port}`,
    faults,
    forwarded: () => forwarded,
    close() {
      closed ??= (async () => {
        if (faults.settings.paused) faults.set({ paused: false });
        await server.shutdown();
      })();
      return closed;
    },
  };
}
