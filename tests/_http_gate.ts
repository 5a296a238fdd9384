/**
 * A loopback HTTP proxy that shows every request to a hook before forwarding it: what lets a
 * test act at a precise point of a real server's protocol (SIGKILL an executor when its merge
 * request arrives) on servers it cannot instrument, such as a real lakeFS.
 *
 * ```ts
 * const gate = startHttpGate("http://127.0.0.1:18765", (request) => { ... });
 * // point the worker at gate.url instead of the server
 * await gate.close();
 * ```
 */

/** A running gate. */
export interface HttpGate {
  /** Where clients connect instead of the upstream server, e.g. `http://127.0.0.1:41234`. */
  url: string;
  close(): Promise<void>;
}

/** Headers a proxy must not copy from one hop to the next. */
const HOP_BY_HOP = [
  "connection",
  "keep-alive",
  "transfer-encoding",
  "upgrade",
  "proxy-connection",
  "host",
];

/**
 * Starts the gate on a free loopback port. `hook` sees each request (its body unread) and
 * runs before it is forwarded; what it throws is answered 502. Bodies stream both ways.
 * Compression is switched off upstream, so what the client reads is what the server sent.
 */
export function startHttpGate(
  upstream: string,
  hook: (request: Request) => void | Promise<void>,
): HttpGate {
  const base = upstream.replace(/\/+$/, "");
  const server = Deno.serve({ hostname: "127.0.0.1", port: 0, onListen() {} }, async (request) => {
    try {
      await hook(request);
      const url = new URL(request.url);
      const headers = new Headers(request.headers);
      for (const name of [...HOP_BY_HOP, "accept-encoding"]) headers.delete(name);
      const hasBody = request.body !== null && !["GET", "HEAD"].includes(request.method);
      const answer = await fetch(`${base}${url.pathname}${url.search}`, {
        method: request.method,
        headers,
        redirect: "manual",
        ...(hasBody ? { body: request.body, duplex: "half" } as RequestInit : {}),
      });
      const out = new Headers(answer.headers);
      for (const name of [...HOP_BY_HOP, "content-encoding", "content-length"]) out.delete(name);
      return new Response(answer.body, { status: answer.status, headers: out });
    } catch (error) {
      return Response.json({ message: `gate: ${(error as Error).message}` }, { status: 502 });
    }
  });
  const { port } = server.addr as Deno.NetAddr;
  return {
    url: `http://127.0.0.1:${port}`,
    async close() {
      await server.shutdown();
    },
  };
}
