/**
 * Starts the demo lakeFS server in a child process (`_lakefs_child.ts`) with a data directory,
 * and gives a client and the server's request counts.
 *
 * @module
 */
import { DEMO_ACCESS_KEY_ID, DEMO_SECRET_ACCESS_KEY } from "../src/devstack/credentials.ts";
import { LakeFsClient } from "../src/lakefs/client.ts";
import { readJsonLine } from "./_common.ts";

/** A demo lakeFS server running in a child process. */
export interface LakeFsChild {
  /** Base URL without `/api/v1`. */
  readonly url: string;
  readonly accessKeyId: string;
  readonly secretAccessKey: string;
  /** `Authorization` header value for plain requests. */
  readonly authorization: string;
  readonly client: LakeFsClient;
  readonly pid: number;
  /** Request counts per operation since the last reset. */
  stats(): Promise<Record<string, number>>;
  resetStats(): Promise<void>;
  close(): Promise<void>;
}

/** Starts the server on a free loopback port with its state under `dataDir`. */
export async function startLakeFsChild(dataDir: string): Promise<LakeFsChild> {
  await Deno.mkdir(dataDir, { recursive: true });
  const child = new Deno.Command(Deno.execPath(), {
    args: [
      "run",
      "-A",
      new URL("./_lakefs_child.ts", import.meta.url).pathname,
      dataDir,
      DEMO_ACCESS_KEY_ID,
      DEMO_SECRET_ACCESS_KEY,
    ],
    stdin: "null",
    stdout: "piped",
    stderr: "inherit",
  }).spawn();
  let info: { url: string; statsUrl: string };
  try {
    info = await readJsonLine(child.stdout, 30_000) as typeof info;
  } catch (error) {
    child.kill("SIGKILL");
    await child.status;
    throw error;
  }
  const client = new LakeFsClient({
    endpointUrl: info.url,
    accessKeyId: DEMO_ACCESS_KEY_ID,
    secretAccessKey: DEMO_SECRET_ACCESS_KEY,
    requestTimeoutMs: 120_000,
  });
  return {
    url: info.url,
    accessKeyId: DEMO_ACCESS_KEY_ID,
    secretAccessKey: DEMO_SECRET_ACCESS_KEY,
    authorization: `Basic ${btoa(`${DEMO_ACCESS_KEY_ID}:${DEMO_SECRET_ACCESS_KEY}`)}`,
    client,
    pid: child.pid,
    async stats() {
      return await (await fetch(info.statsUrl)).json();
    },
    async resetStats() {
      await (await fetch(info.statsUrl, { method: "POST" })).body?.cancel();
    },
    async close() {
      try {
        child.kill("SIGTERM");
      } catch { /* gone */ }
      const timer = setTimeout(() => {
        try {
          child.kill("SIGKILL");
        } catch { /* gone */ }
      }, 10_000);
      await child.status;
      clearTimeout(timer);
    },
  };
}
