/**
 * A loopback HTTP proxy that shows every request to a hook before forwarding it: what lets a
 * test act at a precise point of a real server's protocol (SIGKILL an executor when its merge
 * request arrives) on servers it cannot instrument, such as a real lakeFS.
 *
 * ```ts ignore
 * const gate = startHttpGate("http://127.0.0.1:18765", (request) => {
 *   // delay or count `request` here; it is passed on when the hook returns
 * });
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

/** Which connection a request came on: the client's port and the gate's. */
export interface GatePeer {
  peerPort: number;
  gatePort: number;
}

/**
 * Starts the gate on a free loopback port. `hook` sees each request (its body unread) and
 * runs before it is forwarded; what it throws is answered 502. Bodies stream both ways.
 * Compression is switched off upstream, so what the client reads is what the server sent.
 */
export function startHttpGate(
  upstream: string,
  hook: (request: Request, peer: GatePeer) => void | Promise<void>,
): HttpGate {
  const base = upstream.replace(/\/+$/, "");
  let gatePort = 0;
  const server = Deno.serve({ hostname: "127.0.0.1", port: 0, onListen() {} }, async (
    request,
    info,
  ) => {
    try {
      await hook(request, { peerPort: (info.remoteAddr as Deno.NetAddr).port, gatePort });
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
  gatePort = port;
  return {
    url: `http://127.0.0.1:${port}`,
    async close() {
      await server.shutdown();
    },
  };
}

/**
 * Which of `pids` holds the client end of the loopback connection from `peer.peerPort` to
 * `peer.gatePort`, found through Linux's `/proc/net/tcp` (the socket's inode) and
 * `/proc/<pid>/fd`; `undefined` when none does (or elsewhere than Linux). Lets a hook act on
 * the very process that sent a request.
 */
export async function peerPid(
  peer: GatePeer,
  pids: readonly number[],
): Promise<number | undefined> {
  const port = (n: number) => n.toString(16).toUpperCase().padStart(4, "0");
  const local = `:${port(peer.peerPort)}`;
  const remote = `:${port(peer.gatePort)}`;
  let inode: string | undefined;
  for (const table of ["/proc/net/tcp", "/proc/net/tcp6"]) {
    const text = await Deno.readTextFile(table).catch(() => "");
    for (const line of text.split("\n").slice(1)) {
      // sl local_address rem_address st tx:rx tr:when retrnsmt uid timeout inode ...
      const cols = line.trim().split(/\s+/);
      if (cols[1]?.endsWith(local) && cols[2]?.endsWith(remote) && cols[9] !== "0") {
        inode = cols[9];
        break;
      }
    }
    if (inode !== undefined) break;
  }
  if (inode === undefined) return undefined;
  const socket = `socket:[${inode}]`;
  for (const pid of pids) {
    try {
      for await (const fd of Deno.readDir(`/proc/${pid}/fd`)) {
        const target = await Deno.readLink(`/proc/${pid}/fd/${fd.name}`).catch(() => "");
        if (target === socket) return pid;
      }
    } catch {
      // gone
    }
  }
  return undefined;
}
