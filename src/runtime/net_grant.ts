/**
 * Narrowing a child's network grant to its own server. A compiled binary's children run with
 * the supervisor's baked `--allow-net` (Conductor and lakeFS both); an executor, which runs
 * task code, drops Conductor as it starts, so no task can call Conductor's API (which, on a
 * server without authentication, would let it complete or fail any task) and bypass the
 * attempt's fences. Under `deno run` an executor's flags never grant Conductor, and dropping
 * it again changes nothing.
 *
 * @module
 */

/** `host:port` of an http(s) URL, with the scheme's default port made explicit. */
export function hostPort(url: string): string {
  const parsed = new URL(url);
  const port = parsed.port !== ""
    ? parsed.port
    : parsed.protocol === "https:"
    ? "443"
    : parsed.protocol === "http:"
    ? "80"
    : "";
  if (port === "") throw new TypeError(`permissions: not an http(s) URL: ${parsed.origin}`);
  return `${parsed.hostname}:${port}`;
}

/** A host that could not be dropped without dropping the child's own server too. */
export class NetGrantNarrowError extends Error {
  override name = "NetGrantNarrowError";
}

/**
 * Revokes network access to each of `hosts` (`host:port`), keeping `keep` (`host:port`, the
 * child's own server). Deno revokes every grant that covers a host, so a host covered by a
 * grant that also covers `keep` (the same host name granted for every port, or the network
 * granted as a whole) is left as it is: the answer lists the hosts still reachable. Throws
 * {@linkcode NetGrantNarrowError} when `keep` was reachable before and is not after.
 *
 * @example
 * ```ts
 * // executor under --allow-net=conductor.internal:8080,lakefs.internal:8000
 * await dropHosts(["conductor.internal:8080"], "lakefs.internal:8000"); // []
 * ```
 */
export async function dropHosts(
  hosts: readonly string[],
  keep: string | undefined,
): Promise<string[]> {
  const granted = (host?: string) =>
    Deno.permissions.querySync(host === undefined ? { name: "net" } : { name: "net", host })
      .state === "granted";
  if (hosts.length === 0) return [];
  if (granted()) return [...hosts];
  const keptBefore = keep !== undefined && granted(keep);
  const left: string[] = [];
  for (const host of hosts) {
    if (!granted(host)) continue;
    if (keep !== undefined && sharesGrant(host, keep, granted)) {
      left.push(host);
      continue;
    }
    await Deno.permissions.revoke({ name: "net", host });
    if (granted(host)) left.push(host);
  }
  if (keptBefore && !granted(keep)) {
    throw new NetGrantNarrowError(
      `cannot narrow the network grant: dropping ${hosts.join(", ")} dropped ${keep} too; ` +
        "grant each server as host:port (scripts/compile.ts does)",
    );
  }
  return left;
}

/** Whether one grant covers both hosts: the same host name granted for every port. */
function sharesGrant(
  host: string,
  keep: string,
  granted: (host: string) => boolean,
): boolean {
  const name = hostName(host);
  return name === hostName(keep) && granted(name);
}

/** The host name of `host:port` (IPv6 in brackets kept as they are). */
function hostName(hostAndPort: string): string {
  const colon = hostAndPort.lastIndexOf(":");
  return colon > 0 && !hostAndPort.endsWith("]") ? hostAndPort.slice(0, colon) : hostAndPort;
}
