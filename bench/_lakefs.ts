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

/**
 * Starts the server on a free loopback port with its state under `dataDir` (`-`: state in
 * memory, blobs in a temp dir).
 */
export async function startLakeFsChild(dataDir: string): Promise<LakeFsChild> {
  if (dataDir !== "-") await Deno.mkdir(dataDir, { recursive: true });
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

/** A lakeFS a benchmark runs against: the demo server in a child process, or a real one. */
export interface LakeFsTarget {
  /** `demo lakeFS (child process)` or `real lakeFS 1.84.0 at <url>`. */
  readonly label: string;
  readonly url: string;
  readonly accessKeyId: string;
  readonly secretAccessKey: string;
  readonly client: LakeFsClient;
  /** A repository name for this run (unique on a real server, which outlives the run). */
  readonly repo: string;
  /** Deletes the repository (real) or stops the server (demo). */
  close(): Promise<void>;
}

/**
 * The real lakeFS of `PERAGO_BENCH_LAKEFS_URL` (or `PERAGO_TEST_LAKEFS_URL`) with the keys of
 * `PERAGO_TEST_LAKEFS_ACCESS_KEY_ID` / `_SECRET_ACCESS_KEY`, when `real` is asked for or the
 * demo is not; else the demo server in a child process (state in memory).
 */
export async function startLakeFsTarget(label: string, real: boolean): Promise<LakeFsTarget> {
  if (real) {
    const url = (Deno.env.get("PERAGO_BENCH_LAKEFS_URL") ?? Deno.env.get("PERAGO_TEST_LAKEFS_URL"))
      ?.replace(/\/+$/, "");
    const accessKeyId = Deno.env.get("PERAGO_TEST_LAKEFS_ACCESS_KEY_ID");
    const secretAccessKey = Deno.env.get("PERAGO_TEST_LAKEFS_SECRET_ACCESS_KEY");
    if (!url || !accessKeyId || !secretAccessKey) {
      throw new Error(
        "a real lakeFS is needed: set PERAGO_TEST_LAKEFS_URL (or PERAGO_BENCH_LAKEFS_URL), " +
          "PERAGO_TEST_LAKEFS_ACCESS_KEY_ID and PERAGO_TEST_LAKEFS_SECRET_ACCESS_KEY",
      );
    }
    const client = new LakeFsClient({
      endpointUrl: url,
      accessKeyId,
      secretAccessKey,
      requestTimeoutMs: 120_000,
    });
    const repo = `bench-${label}-${Date.now().toString(36)}`;
    await client.createRepository(repo, `local://${repo}`, "main");
    return {
      label: `real lakeFS at ${url}`,
      url,
      accessKeyId,
      secretAccessKey,
      client,
      repo,
      async close() {
        await fetch(`${url}/api/v1/repositories/${repo}`, {
          method: "DELETE",
          headers: { authorization: `Basic ${btoa(`${accessKeyId}:${secretAccessKey}`)}` },
        }).then((response) => response.body?.cancel()).catch(() => {});
      },
    };
  }
  const child = await startLakeFsChild("-");
  await child.client.createRepository("bench", "local://bench", "main");
  return {
    label: "demo lakeFS (child process, state in memory, blobs on disk)",
    url: child.url,
    accessKeyId: child.accessKeyId,
    secretAccessKey: child.secretAccessKey,
    client: child.client,
    repo: "bench",
    close: () => child.close(),
  };
}
