/** Shared set-up of the lakeFS tests: a demo server and a client pointed at it. */
import type { FaultInjector } from "../../src/devstack/faults.ts";
import { type LakeFsServerHandle, startLakeFsServer } from "../../src/devstack/lakefs/server.ts";
import { LakeFsClient, type LakeFsClientOptions } from "../../src/lakefs/client.ts";

export const ACCESS_KEY_ID = "AKIAPERAGOTEST";
export const SECRET = "perago-test-secret-value-1234";

export interface Fixture {
  server: LakeFsServerHandle;
  client: LakeFsClient;
}

/** Runs `fn` with a fresh server and client; closes the server afterwards. */
export async function withLakeFs(
  fn: (fx: Fixture) => Promise<void>,
  options: {
    client?: Partial<LakeFsClientOptions>;
    faults?: FaultInjector;
    dataDir?: string;
    repo?: string | false;
  } = {},
): Promise<void> {
  const server = await startLakeFsServer({
    accessKeyId: ACCESS_KEY_ID,
    secretAccessKey: SECRET,
    ...(options.faults ? { faults: options.faults } : {}),
    ...(options.dataDir ? { dataDir: options.dataDir } : {}),
  });
  try {
    const client = new LakeFsClient({
      endpointUrl: server.url,
      accessKeyId: ACCESS_KEY_ID,
      secretAccessKey: SECRET,
      retry: { baseDelayMs: 5, maxDelayMs: 50 },
      ...options.client,
    });
    if (options.repo !== false) {
      await client.createRepository(options.repo ?? "repo", "local://test-bucket/repo");
      server.stats.reset();
    }
    await fn({ server, client });
  } finally {
    await server.close();
  }
}

/** Bytes of a string. */
export const bytes = (text: string) => new TextEncoder().encode(text);

/** An upload body factory for a string. */
export const body = (text: string) => () => Promise.resolve(bytes(text));

/** Reads a stream fully as text. */
export async function readText(stream: ReadableStream<Uint8Array>): Promise<string> {
  return await new Response(stream).text();
}

/** A random source for FaultInjector that yields `values` in turn, then 1 (no fault). */
export function sequence(...values: number[]): () => number {
  let i = 0;
  return () => values[i++] ?? 1;
}

/** Basic auth header value. */
export const basicAuth = (id = ACCESS_KEY_ID, secret = SECRET) =>
  "Basic " + btoa(`${id}:${secret}`);
