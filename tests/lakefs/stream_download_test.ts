/**
 * Large downloads over kept-alive connections, read straight into the stream hasher's lanes
 * (`Http1Connections.getInto` + `laneFileSink`): framing, retries, timeouts, bounds and the
 * fallbacks to `fetch`, against servers that misbehave on purpose.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { DownloadIntegrityError, downloadPrefix, type RemoteEntry } from "../../src/lakefs/sync.ts";
import { LakeFsClient } from "../../src/lakefs/client.ts";
import type { LakeFsApi, ObjectSink } from "../../src/lakefs/api.ts";
import { LakeFsError } from "../../src/lakefs/errors.ts";
import {
  laneFileSink,
  MAX_LANES,
  SLOT_BYTES,
  StreamHasher,
} from "../../src/lakefs/_stream_hasher.ts";
import { Http1Connections } from "../../src/util/http1.ts";
import { fileSink } from "../../src/lakefs/_file_hasher.ts";
import {
  md5Of,
  pattern,
  SECRET,
  seedObjects,
  sha256Of,
  tamperedListing,
  withLakeFs,
  withTempDir,
} from "./_helpers.ts";

const KIB = 1024;

/**
 * A server answering each request with `answer(attempt)`: the body's chunks, the headers
 * (`content-length` by default the chunks' total), and whether to cut the connection after
 * the chunks (a body shorter than announced) or stall there.
 */
async function withServer(
  answer: (attempt: number) => {
    chunks: Uint8Array[];
    headers?: Record<string, string>;
    end?: "close" | "cut" | "stall";
  },
  fn: (url: string, attempts: () => number) => Promise<void>,
): Promise<void> {
  let attempts = 0;
  const stalled: ReadableStreamDefaultController<Uint8Array>[] = [];
  const server = Deno.serve({ hostname: "127.0.0.1", port: 0, onListen: () => {} }, () => {
    const { chunks, headers, end = "close" } = answer(++attempts);
    const length = chunks.reduce((sum, chunk) => sum + chunk.length, 0);
    const body = new ReadableStream<Uint8Array>({
      start(controller) {
        for (const chunk of chunks) controller.enqueue(chunk);
        if (end === "close") controller.close();
        else if (end === "cut") controller.error(new Error("cut"));
        else stalled.push(controller);
      },
      cancel() {},
    });
    // A body without a length (a transfer coding) goes out chunked.
    const framing: Record<string, string> = headers?.["transfer-encoding"] === undefined
      ? { "content-length": String(length) }
      : {};
    return new Response(body, { status: 200, headers: { ...framing, ...headers } });
  });
  try {
    await fn(`http://127.0.0.1:${server.addr.port}`, () => attempts);
  } finally {
    for (const controller of stalled) {
      try {
        controller.close();
      } catch {
        // Cancelled already.
      }
    }
    await server.shutdown();
  }
}

/** The client's download of object "x" into `open`'s sinks over `connections`. */
function fetchX(
  client: LakeFsClient,
  open: () => Promise<ObjectSink>,
  connections: Http1Connections,
) {
  return client.downloadObject("repo", "main", "x", open, undefined, { connections });
}

function clientFor(url: string, timeoutMs = 5_000, attempts = 3): LakeFsClient {
  return new LakeFsClient({
    endpointUrl: url,
    accessKeyId: "AKIATEST",
    secretAccessKey: SECRET,
    requestTimeoutMs: timeoutMs,
    retry: { attempts, baseDelayMs: 1, maxDelayMs: 5 },
  });
}

/**
 * Runs `fn` with a stream hasher, kept-alive connections to `url` and a sink factory over
 * `path` (each try truncates the file) that fails the test if the body comes through `write`
 * (so the body was read into the lanes) unless `allowWrite`.
 */
async function withLaneSink(
  url: string,
  path: string,
  fn: (
    open: () => Promise<ObjectSink>,
    connections: Http1Connections,
    opened: () => number,
  ) => Promise<void>,
  options: { allowWrite?: boolean; maxBytes?: number; writes?: { count: number } } = {},
): Promise<void> {
  const hasher = StreamHasher.create(1);
  assert.ok(hasher, "the stream hasher runs here");
  const connections = Http1Connections.for(new URL(url), { noProxy: true });
  assert.ok(connections);
  const lane = hasher.lane()!;
  let opened = 0;
  try {
    await fn(
      async () => {
        opened++;
        const sink = laneFileSink(
          await Deno.open(path, { write: true, create: true, truncate: true }),
          lane,
          options.maxBytes === undefined ? {} : { maxBytes: options.maxBytes },
        );
        if (options.allowWrite) {
          const writes = options.writes ?? { count: 0 };
          return {
            ...sink,
            write: (chunk) => {
              writes.count++;
              return sink.write(chunk);
            },
          };
        }
        return {
          ...sink,
          write: () => {
            throw new Error("the body went through write, not into the lanes");
          },
        };
      },
      connections,
      () => opened,
    );
  } finally {
    connections.close();
    hasher.close();
  }
}

Deno.test("lane download: a body framed by Content-Length is read into the lanes; its size and MD5 are the file's", async () => {
  const data = pattern(3 * SLOT_BYTES + 777, 3);
  await withServer(
    () => ({ chunks: [data.subarray(0, 5000), data.subarray(5000)] }),
    async (url) => {
      await withTempDir(async (dir) => {
        const path = join(dir, "x");
        await withLaneSink(url, path, async (open, connections) => {
          const written = await fetchX(clientFor(url), open, connections);
          assert.deepEqual(written, { size: data.length, md5: md5Of(data) });
          assert.deepEqual(await Deno.readFile(path), data);
        });
      });
    },
  );
});

Deno.test("lane download: a body cut short of its Content-Length is retried into the truncated file", async () => {
  const bodyOf = (attempt: number) => new Uint8Array(2 * SLOT_BYTES + 99).fill(attempt);
  await withServer((attempt) => {
    const body = bodyOf(attempt);
    // The first try announces the whole body and closes the connection half-way.
    return attempt === 1
      ? {
        chunks: [body.subarray(0, SLOT_BYTES + 10)],
        headers: { "content-length": String(body.length) },
        end: "cut",
      }
      : { chunks: [body] };
  }, async (url, attempts) => {
    await withTempDir(async (dir) => {
      const path = join(dir, "x");
      await withLaneSink(url, path, async (open, connections, opened) => {
        const written = await fetchX(clientFor(url), open, connections);
        assert.equal(attempts(), 2);
        assert.equal(opened(), 2);
        const expected = bodyOf(2);
        assert.deepEqual(written, { size: expected.length, md5: md5Of(expected) });
        assert.deepEqual(await Deno.readFile(path), expected);
      });
    });
  });
});

Deno.test("lane download: a body that stops arriving times out and closes the file", async () => {
  await withServer(() => ({
    chunks: [new Uint8Array(1000)],
    headers: { "content-length": String(10 * SLOT_BYTES) },
    end: "stall",
  }), async (url) => {
    await withTempDir(async (dir) => {
      const path = join(dir, "x");
      await withLaneSink(url, path, async (open, connections) => {
        const started = performance.now();
        await assert.rejects(
          fetchX(clientFor(url, 300, 1), open, connections),
          (error: unknown) => {
            assert.ok(error instanceof LakeFsError, String(error));
            assert.match(error.message, /timed out after 300 ms/);
            return true;
          },
        );
        assert.ok(performance.now() - started < 5_000);
      });
    });
  });
});

Deno.test("lane download: a body past the sink's bound is refused before those bytes reach the file", async () => {
  const data = pattern(3 * SLOT_BYTES, 5);
  await withServer(() => ({ chunks: [data] }), async (url) => {
    await withTempDir(async (dir) => {
      const path = join(dir, "x");
      await withLaneSink(url, path, async (open, connections) => {
        await assert.rejects(
          fetchX(clientFor(url), open, connections),
          /more than 100000 bytes/,
        );
        assert.ok((await Deno.stat(path)).size <= 100_000, "no byte past the bound was written");
      }, { maxBytes: 100_000 });
    });
  });
});

Deno.test("lane download: a chunked or a coded body goes through fetch into the same sink, checked the same", async () => {
  const data = pattern(SLOT_BYTES + 5, 7);
  const gzipped = new Uint8Array(
    await new Response(
      new Blob([data.slice()]).stream().pipeThrough(new CompressionStream("gzip")),
    ).arrayBuffer(),
  );
  const cases: [string, Parameters<typeof withServer>[0]][] = [
    ["chunked", () => ({ chunks: [data], headers: { "transfer-encoding": "chunked" } })],
    ["gzip", () => ({ chunks: [gzipped], headers: { "content-encoding": "gzip" } })],
  ];
  for (const [name, answer] of cases) {
    const writes = { count: 0 };
    await withServer(answer, async (url) => {
      await withTempDir(async (dir) => {
        const path = join(dir, "x");
        await withLaneSink(url, path, async (open, connections) => {
          const written = await fetchX(clientFor(url), open, connections);
          assert.deepEqual(written, { size: data.length, md5: md5Of(data) }, name);
          assert.deepEqual(await Deno.readFile(path), data, name);
          assert.ok(writes.count > 0, `${name}: the body came through fetch and write`);
        }, { allowWrite: true, writes });
      });
    });
  }
});

/**
 * `downloadPrefix` of `p/` at `ref` into `dir` through {@linkcode recordingConnections}:
 * the listing, and whether each download was given kept-alive connections.
 */
async function recordedDownload(
  client: LakeFsClient,
  ref: string,
  dir: string,
  options: { concurrency: number; sha256?: boolean },
): Promise<{ listing: RemoteEntry[]; given: Map<string, boolean> }> {
  const given = new Map<string, boolean>();
  const listing = await downloadPrefix(recordingConnections(client, given), {
    repo: "repo",
    ref,
    prefix: "p/",
    ...options,
    resolvePath: (key) => Promise.resolve(join(dir, key)),
  });
  return { listing, given };
}

/** `client` recording whether each download was given kept-alive connections. */
function recordingConnections(client: LakeFsClient, given: Map<string, boolean>): LakeFsApi {
  return new Proxy(client, {
    get(target, property) {
      const value = Reflect.get(target, property, target);
      if (property !== "downloadObject") {
        return typeof value === "function" ? value.bind(target) : value;
      }
      return (...args: Parameters<LakeFsClient["downloadObject"]>) => {
        given.set(args[2], args[5]?.connections !== undefined);
        return target.downloadObject(...args);
      };
    },
  });
}

Deno.test("downloadPrefix: large objects stream into the lanes over kept-alive connections, byte for byte; a corrupt one still fails it", async () => {
  await withLakeFs(async ({ client }) => {
    const objects: Record<string, Uint8Array> = {};
    for (let i = 0; i < 11; i++) {
      objects[`p/o${String(i).padStart(2, "0")}.bin`] = pattern(300 * KIB + i * 65_537, i);
    }
    const keys = Object.keys(objects).sort();
    const ref = await seedObjects(client, objects);
    await withTempDir(async (dir) => {
      const { given } = await recordedDownload(client, ref, dir, { concurrency: 4 });
      assert.deepEqual([...given.keys()].sort(), keys);
      assert.ok([...given.values()].every(Boolean), "every large object over connections");
      for (const [key, data] of Object.entries(objects)) {
        assert.deepEqual(await Deno.readFile(join(dir, key)), data, key);
      }
    });
    await withTempDir(async (dir) => {
      const corrupt = keys[6]!;
      await assert.rejects(
        downloadPrefix(tamperedListing(client, corrupt, { checksum: "c".repeat(32) }), {
          repo: "repo",
          ref,
          prefix: "p/",
          concurrency: 4,
          resolvePath: (key) => Promise.resolve(join(dir, key)),
        }),
        (error: unknown) => {
          assert.ok(error instanceof DownloadIntegrityError, String(error));
          assert.match(error.message, new RegExp(`${JSON.stringify(corrupt)}.*MD5`));
          return true;
        },
      );
    });
  });
});

Deno.test("downloadPrefix: more large downloads at once than the hasher has lanes read the rest back, every one checked, each one's SHA-256 taken either way", async () => {
  await withLakeFs(async ({ client }) => {
    const objects: Record<string, Uint8Array> = {};
    for (let i = 0; i < 3 * MAX_LANES; i++) {
      objects[`p/o${String(i).padStart(2, "0")}.bin`] = pattern(260 * KIB + i * 1031, 40 + i);
    }
    const ref = await seedObjects(client, objects);
    await withTempDir(async (dir) => {
      const { listing, given } = await recordedDownload(client, ref, dir, {
        concurrency: MAX_LANES + 8,
        sha256: true,
      });
      assert.equal(given.size, 3 * MAX_LANES);
      // The first 24 start before any ends: 16 take the lanes, 8 read back.
      assert.ok([...given.values()].some(Boolean), "some streamed into the lanes");
      assert.ok([...given.values()].some((streamed) => !streamed), "some read back");
      for (const [key, data] of Object.entries(objects)) {
        assert.deepEqual(await Deno.readFile(join(dir, key)), data, key);
      }
      assert.deepEqual(
        listing.map((entry) => [entry.key, entry.sha256]),
        Object.entries(objects).map(([key, data]) => [key, sha256Of(data)]),
      );
    });
  });
});

Deno.test("lane download: over kept-alive connections a sink without space/filled gets the body through write", async () => {
  const data = pattern(2 * SLOT_BYTES + 3, 9);
  await withServer(() => ({ chunks: [data] }), async (url) => {
    await withTempDir(async (dir) => {
      const path = join(dir, "x");
      const connections = Http1Connections.for(new URL(url), { noProxy: true })!;
      try {
        const written = await fetchX(
          clientFor(url),
          async () => fileSink(await Deno.open(path, { write: true, create: true })),
          connections,
        );
        assert.deepEqual(written, { size: data.length, md5: md5Of(data) });
        assert.deepEqual(await Deno.readFile(path), data);
      } finally {
        connections.close();
      }
    });
  });
});

Deno.test("downloadPrefix with sha256: every large object streamed into the lanes has its file's SHA-256 in the listing; without it, none", async () => {
  await withLakeFs(async ({ client }) => {
    const objects: Record<string, Uint8Array> = {};
    for (let i = 0; i < 9; i++) {
      objects[`p/o${i}.bin`] = pattern(300 * KIB + i * 77_777, 60 + i);
    }
    const ref = await seedObjects(client, objects);
    for (const sha256 of [true, false]) {
      await withTempDir(async (dir) => {
        const { listing, given } = await recordedDownload(client, ref, dir, {
          concurrency: 4,
          sha256,
        });
        assert.ok([...given.values()].every(Boolean), "every large object over connections");
        for (const entry of listing) {
          const file = await Deno.readFile(join(dir, entry.key));
          assert.equal(
            entry.sha256,
            sha256 ? sha256Of(file) : undefined,
            entry.key,
          );
        }
      });
    }
  });
});
