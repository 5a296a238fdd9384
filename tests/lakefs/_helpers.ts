/** Shared set-up of the lakeFS tests: a demo server and a client pointed at it. */
import { createHash } from "node:crypto";
import type { FaultInjector } from "../../src/devstack/faults.ts";
import { type LakeFsServerHandle, startLakeFsServer } from "../../src/devstack/lakefs/server.ts";
import type { LakeFsApi, ListObjectsOptions, ObjectStats } from "../../src/lakefs/api.ts";
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

/** The hex MD5 of `bytes`. */
export function md5Of(bytes: Uint8Array): string {
  return createHash("md5").update(bytes).digest("hex");
}

/** The hex SHA-256 of `bytes`. */
export function sha256Of(bytes: Uint8Array): string {
  return createHash("sha256").update(bytes).digest("hex");
}

/** `size` bytes of a repeating pattern that differs by `seed`. */
export function pattern(size: number, seed: number): Uint8Array {
  const data = new Uint8Array(size);
  for (let i = 0; i < size; i++) data[i] = (i * 31 + seed) & 0xff;
  return data;
}

/** Uploads `objects` to main of the fixture's repository and commits; returns the commit id. */
export async function seedObjects(
  client: LakeFsClient,
  objects: Record<string, Uint8Array>,
): Promise<string> {
  for (const [key, data] of Object.entries(objects)) {
    await client.uploadObject("repo", "main", key, () => Promise.resolve(data));
  }
  return (await client.commit("repo", "main", "seed")).id;
}

/** Runs `fn` with a fresh temp directory, removed afterwards. */
export async function withTempDir(
  fn: (dir: string) => Promise<void>,
  prefix?: string,
): Promise<void> {
  const dir = await Deno.makeTempDir(prefix === undefined ? {} : { prefix });
  try {
    await fn(dir);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

/**
 * The objects under `p/` the download tests seed: small (hashed inline), 300 KiB, `bigSize`
 * bytes (hashed by the worker) and empty.
 */
export function prefixObjects(bigSize: number): Record<string, Uint8Array> {
  return {
    "p/small.txt": pattern(100, 1),
    "p/dir/mid.bin": pattern(300 * 1024, 2),
    "p/dir/big.bin": pattern(bigSize, 3),
    "p/empty.bin": new Uint8Array(0),
  };
}

/** The client with every listed checksum or size replaced for `key`. */
export function tamperedListing(
  client: LakeFsClient,
  key: string,
  change: Partial<ObjectStats>,
): LakeFsApi {
  return new Proxy(client, {
    get(target, property) {
      if (property === "listObjects") {
        return async function* (repo: string, ref: string, options?: ListObjectsOptions) {
          for await (const entry of target.listObjects(repo, ref, options)) {
            yield entry.path === key ? { ...entry, ...change } : entry;
          }
        };
      }
      const value = Reflect.get(target, property, target);
      return typeof value === "function" ? value.bind(target) : value;
    },
  });
}
