import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { join } from "node:path";
import type { LakeFsApi, ObjectSink, ObjectStats } from "../../src/lakefs/api.ts";
import { LakeFsClient } from "../../src/lakefs/client.ts";
import { LakeFsError } from "../../src/lakefs/errors.ts";
import { DownloadIntegrityError, downloadPrefix } from "../../src/lakefs/sync.ts";
import { FileHashers, fileSink, pipedFileSink } from "../../src/lakefs/_file_hasher.ts";
import { MD5_LANES } from "../../src/lakefs/_md5_lanes.ts";
import {
  pattern,
  prefixObjects,
  SECRET,
  seedObjects,
  tamperedListing,
  withLakeFs,
  withTempDir,
} from "./_helpers.ts";

const KIB = 1024;

/** Small (hashed inline) and large (hashed by the worker) objects. */
const OBJECTS = prefixObjects(3 * 1024 * KIB + 5);

const seed = (client: LakeFsClient) => seedObjects(client, OBJECTS);

const withDir = (fn: (dir: string) => Promise<void>) => withTempDir(fn);

/**
 * `client` whose download of `abortKey` calls `abort` once that object's file is opened (its
 * response arrived): the abort lands while the body is piped.
 */
function abortingWhenOpened(client: LakeFsClient, abortKey: string, abort: () => void): LakeFsApi {
  return new Proxy(client, {
    get(target, property) {
      const value = Reflect.get(target, property, target);
      if (property !== "downloadObject") {
        return typeof value === "function" ? value.bind(target) : value;
      }
      return (...args: Parameters<LakeFsClient["downloadObject"]>) => {
        const [repo, at, key, open, signal, options] = args;
        return target.downloadObject(
          repo,
          at,
          key,
          async () => {
            const sink = await open();
            if (key === abortKey) abort();
            return sink;
          },
          signal,
          options,
        );
      };
    },
  });
}

Deno.test("downloadPrefix writes every object byte for byte (native pipe path)", async () => {
  await withLakeFs(async ({ client }) => {
    const ref = await seed(client);
    await withDir(async (dir) => {
      const listing = await downloadPrefix(client, {
        repo: "repo",
        ref,
        prefix: "p/",
        resolvePath: (key) => Promise.resolve(join(dir, key)),
      });
      assert.deepEqual(listing.map((e) => e.key), Object.keys(OBJECTS).sort());
      for (const [key, data] of Object.entries(OBJECTS)) {
        assert.deepEqual(await Deno.readFile(join(dir, key)), data, key);
      }
    });
  });
});

Deno.test("downloadPrefix: the caller's abort while a large body is piped rejects with its reason, the object unreported", async () => {
  await withLakeFs(async ({ client }) => {
    const ref = await seed(client);
    await withDir(async (dir) => {
      const abort = new AbortController();
      const reason = new Error("stop the download");
      // The large object's sink opens once its response arrived: the abort lands mid-body.
      const api = abortingWhenOpened(client, "p/dir/big.bin", () => abort.abort(reason));
      const reported: string[] = [];
      await assert.rejects(
        downloadPrefix(api, {
          repo: "repo",
          ref,
          prefix: "p/",
          concurrency: 1,
          signal: abort.signal,
          resolvePath: (key) => Promise.resolve(join(dir, key)),
          onObject: (entry) => reported.push(entry.key),
        }),
        (error: unknown) => error === reason,
      );
      assert.ok(!reported.includes("p/dir/big.bin"), reported.join(", "));
    });
  });
});

Deno.test("downloadPrefix reads through getObject when the API has no file fast path", async () => {
  await withLakeFs(async ({ client }) => {
    const ref = await seed(client);
    const api = {
      listObjects: client.listObjects.bind(client),
      getObject: client.getObject.bind(client),
    } as unknown as LakeFsApi;
    await withDir(async (dir) => {
      await downloadPrefix(api, {
        repo: "repo",
        ref,
        prefix: "p/",
        resolvePath: (key) => Promise.resolve(join(dir, key)),
      });
      for (const [key, data] of Object.entries(OBJECTS)) {
        assert.deepEqual(await Deno.readFile(join(dir, key)), data, key);
      }
      // A wrong checksum is caught on this path too.
      const bad = tamperedListing(client, "p/dir/big.bin", { checksum: "0".repeat(32) });
      const fallback = {
        listObjects: bad.listObjects.bind(bad),
        getObject: client.getObject.bind(client),
      } as unknown as LakeFsApi;
      const other = join(dir, "again");
      await assert.rejects(
        downloadPrefix(fallback, {
          repo: "repo",
          ref,
          prefix: "p/",
          resolvePath: (key) => Promise.resolve(join(other, key)),
        }),
        DownloadIntegrityError,
      );
    });
  });
});

for (
  const [key, change, what] of [
    ["p/small.txt", { checksum: "0".repeat(32) }, "MD5"],
    ["p/dir/big.bin", { checksum: "f".repeat(32) }, "MD5"],
    ["p/dir/mid.bin", { size_bytes: 300 * KIB + 1 }, "bytes"],
    ["p/dir/big.bin", { size_bytes: 1 }, "bytes"],
  ] as const
) {
  Deno.test(`a listing that disagrees with ${key}'s content (${what}) fails the download`, async () => {
    await withLakeFs(async ({ client }) => {
      const ref = await seed(client);
      await withDir(async (dir) => {
        await assert.rejects(
          downloadPrefix(tamperedListing(client, key, change), {
            repo: "repo",
            ref,
            prefix: "p/",
            concurrency: 1,
            resolvePath: (k) => Promise.resolve(join(dir, k)),
          }),
          (error: unknown) => {
            assert.ok(error instanceof DownloadIntegrityError, String(error));
            assert.match(error.message, new RegExp(`${JSON.stringify(key)}.*${what}`));
            return true;
          },
        );
      });
    });
  });
}

/**
 * More large objects than two sets of the hashing worker's lanes: full sets of lanes run as
 * files come, the rest once the download flushes at its end.
 */
function manyLargeObjects(): Record<string, Uint8Array> {
  const objects: Record<string, Uint8Array> = {};
  for (let i = 0; i < 2 * MD5_LANES + 5; i++) {
    objects[`p/o${String(i).padStart(2, "0")}.bin`] = pattern(300 * KIB + i * 4099, 10 + i);
  }
  return objects;
}

/**
 * The client as a download without kept-alive connections sees it (an `https:` endpoint or a
 * proxy): large objects are piped and read back by the hashing workers.
 */
function withoutConnections(client: LakeFsClient): LakeFsApi {
  return new Proxy(client, {
    get(target, property) {
      if (property === "openConnections") return () => undefined;
      const value = Reflect.get(target, property, target);
      return typeof value === "function" ? value.bind(target) : value;
    },
  });
}

for (
  const [how, apiOf] of [
    ["streamed into the lanes", (api: LakeFsApi) => api],
    ["read back", (api: LakeFsApi) => withoutConnections(api as LakeFsClient)],
  ] as const
) {
  Deno.test(`downloadPrefix (${how}): one corrupt large object among many downloading at once fails it; the others are reported only once checked`, async () => {
    await withLakeFs(async ({ client }) => {
      // Past the in-memory size, 8 at once: the pool moves on while the worker still hashes a
      // finished object, so the mismatch is found after its file was written. Corrupt the first
      // (a full set of lanes), one in the second set, and the last (hashed after the flush).
      const objects = manyLargeObjects();
      const keys = Object.keys(objects).sort();
      const ref = await seedObjects(client, objects);
      for (const corrupt of [keys[0]!, keys[MD5_LANES + 3]!, keys.at(-1)!]) {
        await withDir(async (dir) => {
          const reported: string[] = [];
          await assert.rejects(
            downloadPrefix(apiOf(tamperedListing(client, corrupt, { checksum: "e".repeat(32) })), {
              repo: "repo",
              ref,
              prefix: "p/",
              concurrency: 8,
              resolvePath: (k) => Promise.resolve(join(dir, k)),
              onObject: (entry) => reported.push(entry.key),
            }),
            (error: unknown) => {
              assert.ok(error instanceof DownloadIntegrityError, String(error));
              assert.match(error.message, new RegExp(`${JSON.stringify(corrupt)}.*MD5`));
              return true;
            },
          );
          assert.ok(!reported.includes(corrupt), `${corrupt} was reported downloaded`);
        });
      }
      // The same objects, listed truly, download and check out.
      await withDir(async (dir) => {
        const reported: string[] = [];
        await downloadPrefix(apiOf(client), {
          repo: "repo",
          ref,
          prefix: "p/",
          concurrency: 8,
          resolvePath: (k) => Promise.resolve(join(dir, k)),
          onObject: (entry) => reported.push(entry.key),
        });
        assert.deepEqual(reported.sort(), keys);
        for (const [key, data] of Object.entries(objects)) {
          assert.deepEqual(await Deno.readFile(join(dir, key)), data, key);
        }
      });
    });
  });
}

Deno.test("downloadPrefix: the caller's abort while the worker holds files waiting for company rejects with its reason", async () => {
  await withLakeFs(async ({ client }) => {
    const objects = manyLargeObjects();
    const keys = Object.keys(objects).sort();
    const ref = await seedObjects(client, objects);
    await withDir(async (dir) => {
      const abort = new AbortController();
      const reason = new Error("stop the download");
      // Aborted as the second set of lanes fills: some files checked, some held by the worker
      // for company, some still downloading.
      const abortAt = keys[MD5_LANES + 5]!;
      const api = abortingWhenOpened(client, abortAt, () => abort.abort(reason));
      const reported: string[] = [];
      let timer: ReturnType<typeof setTimeout> | undefined;
      const deadline = new Promise<never>((_, reject) => {
        timer = setTimeout(() => reject(new Error("the aborted download did not settle")), 20_000);
      });
      try {
        await assert.rejects(
          Promise.race([
            downloadPrefix(api, {
              repo: "repo",
              ref,
              prefix: "p/",
              concurrency: 8,
              signal: abort.signal,
              resolvePath: (key) => Promise.resolve(join(dir, key)),
              onObject: (entry) => reported.push(entry.key),
            }),
            deadline,
          ]),
          (error: unknown) => error === reason,
        );
      } finally {
        clearTimeout(timer);
      }
      assert.ok(!reported.includes(abortAt), reported.join(", "));
      assert.ok(reported.length < keys.length, `${reported.length} of ${keys.length} reported`);
    });
  });
});

/** A server answering every request with a body `write` produces (per attempt). */
async function withBodyServer(
  write: (attempt: number, controller: ReadableStreamDefaultController<Uint8Array>) => void,
  fn: (url: string, attempts: () => number) => Promise<void>,
): Promise<void> {
  let attempts = 0;
  const server = Deno.serve({ hostname: "127.0.0.1", port: 0, onListen: () => {} }, () => {
    attempts++;
    const attempt = attempts;
    const body = new ReadableStream<Uint8Array>({
      start: (controller) => write(attempt, controller),
      cancel: () => {},
    });
    return new Response(body, { status: 200 });
  });
  try {
    await fn(`http://127.0.0.1:${server.addr.port}`, () => attempts);
  } finally {
    await server.shutdown();
  }
}

function clientFor(url: string, timeoutMs: number, attempts: number): LakeFsClient {
  return new LakeFsClient({
    endpointUrl: url,
    accessKeyId: "AKIATEST",
    secretAccessKey: SECRET,
    requestTimeoutMs: timeoutMs,
    retry: { attempts, baseDelayMs: 1, maxDelayMs: 5 },
  });
}

/** Sinks the client writes chunk by chunk, and sinks it pipes the body into. */
const SINKS: { name: string; sinkFor: (path: string) => Promise<ObjectSink> }[] = [
  {
    name: "chunks",
    sinkFor: async (path) =>
      fileSink(await Deno.open(path, { write: true, create: true, truncate: true })),
  },
  {
    name: "piped",
    sinkFor: async (path) =>
      pipedFileSink(
        await Deno.open(path, { write: true, create: true, truncate: true }),
        () => FILE_HASHERS.hash(path),
      ),
  },
];
/** The piped sinks' read-back (on the test's thread: a worker would outlive the test). */
const FILE_HASHERS = new FileHashers({ workers: false });

for (const { name, sinkFor } of SINKS) {
  Deno.test(`downloadObject (${name}): a body that stops growing times out and closes the file`, async () => {
    let stalled: ReadableStreamDefaultController<Uint8Array> | undefined;
    await withBodyServer((_attempt, controller) => {
      controller.enqueue(new Uint8Array(1000));
      stalled = controller;
    }, async (url) => {
      await withDir(async (dir) => {
        const client = clientFor(url, 300, 1);
        const started = performance.now();
        await assert.rejects(
          client.downloadObject(
            "repo",
            "main",
            "x",
            () => sinkFor(join(dir, "x")),
          ),
          (error: unknown) => {
            assert.ok(error instanceof LakeFsError, String(error));
            assert.match(error.message, /timed out after 300 ms/);
            return true;
          },
        );
        assert.ok(performance.now() - started < 5_000);
        assert.equal((await Deno.stat(join(dir, "x"))).size, 1000);
      });
      try {
        stalled?.close();
      } catch {
        // Already cancelled.
      }
    });
  });

  Deno.test(`downloadObject (${name}): a slow body that keeps growing is not timed out`, async () => {
    await withBodyServer((_attempt, controller) => {
      let sent = 0;
      const tick = () => {
        if (sent === 8) return controller.close();
        controller.enqueue(new Uint8Array(4096).fill(sent++));
        setTimeout(tick, 100);
      };
      tick();
    }, async (url) => {
      await withDir(async (dir) => {
        // 8 chunks 100 ms apart: 700 ms in all, more than twice the 300 ms idle timeout.
        const client = clientFor(url, 300, 1);
        await client.downloadObject(
          "repo",
          "main",
          "x",
          () => sinkFor(join(dir, "x")),
        );
        const data = await Deno.readFile(join(dir, "x"));
        assert.equal(data.length, 8 * 4096);
        assert.equal(data[7 * 4096], 7);
      });
    });
  });
}

Deno.test("downloadObject: a body cut mid-way is retried into a fresh file", async () => {
  await withBodyServer((attempt, controller) => {
    controller.enqueue(new Uint8Array(5000).fill(attempt));
    if (attempt === 1) controller.error(new Error("cut"));
    else controller.close();
  }, async (url, attempts) => {
    await withDir(async (dir) => {
      const client = clientFor(url, 5_000, 3);
      let opened = 0;
      const written = await client.downloadObject("repo", "main", "x", async () => {
        opened++;
        return fileSink(
          await Deno.open(join(dir, "x"), { write: true, create: true, truncate: true }),
        );
      });
      assert.equal(attempts(), 2);
      assert.equal(opened, 2);
      assert.deepEqual(await Deno.readFile(join(dir, "x")), new Uint8Array(5000).fill(2));
      // The size and MD5 are of the bytes of the try that succeeded.
      assert.deepEqual(written, {
        size: 5000,
        md5: createHash("md5").update(new Uint8Array(5000).fill(2)).digest("hex"),
      });
    });
  });
});

Deno.test("downloadObject into a piped file sink: a cut body is retried into the truncated file, which is read back", async () => {
  await withBodyServer((attempt, controller) => {
    // 3 MiB, then the first try is cut: its bytes reached the file, the retry's must replace
    // them before the file is read back.
    for (let i = 0; i < 3; i++) controller.enqueue(new Uint8Array(1024 * KIB).fill(attempt));
    if (attempt === 1) controller.error(new Error("cut"));
    else controller.close();
  }, async (url, attempts) => {
    await withDir(async (dir) => {
      const client = clientFor(url, 5_000, 3);
      const hashers = new FileHashers();
      try {
        let tries = 0;
        const path = join(dir, "x");
        const written = await client.downloadObject("repo", "main", "x", async () => {
          const file = await Deno.open(
            path,
            tries++ === 0 ? { write: true, createNew: true } : { write: true, truncate: true },
          );
          const sink = pipedFileSink(file, () => hashers.hash(path));
          // The client pipes the body into the file: a chunk handed to `write` fails the test.
          return {
            ...sink,
            writable: sink.writable,
            written: sink.written,
            write: () => {
              throw new Error("the body went through write, not the pipe");
            },
          };
        });
        assert.equal(attempts(), 2);
        const expected = new Uint8Array(3 * 1024 * KIB).fill(2);
        assert.deepEqual(written, {
          size: expected.length,
          md5: createHash("md5").update(expected).digest("hex"),
        });
        assert.deepEqual(await Deno.readFile(path), expected);
      } finally {
        hashers.close();
      }
    });
  });
});

Deno.test("getObject: a body that stalls after its first chunk errors with body stalled", async () => {
  let stalled: ReadableStreamDefaultController<Uint8Array> | undefined;
  await withBodyServer((_attempt, controller) => {
    controller.enqueue(new Uint8Array(1000).fill(9));
    stalled = controller;
  }, async (url) => {
    const client = clientFor(url, 300, 1);
    const body = await client.getObject("repo", "main", "x");
    const reader = body.getReader();
    let received = 0;
    const started = performance.now();
    await assert.rejects(
      (async () => {
        while (true) {
          const { done, value } = await reader.read();
          if (done) break;
          received += value.length;
        }
      })(),
      (error: unknown) => {
        assert.ok(error instanceof LakeFsError, String(error));
        assert.match(error.message, /body stalled for 300 ms/);
        return true;
      },
    );
    assert.equal(received, 1000);
    assert.ok(performance.now() - started < 5_000);
    try {
      stalled?.close();
    } catch {
      // Already cancelled.
    }
  });
});

Deno.test("getObjectBytes: a body cut mid-way is retried; a stalled one times out", async () => {
  await withBodyServer((attempt, controller) => {
    controller.enqueue(new Uint8Array(5000).fill(attempt));
    if (attempt === 1) controller.error(new Error("cut"));
    else if (attempt === 2) controller.close();
    // attempt 3+: never closes
  }, async (url, attempts) => {
    const client = clientFor(url, 300, 3);
    const data = await client.getObjectBytes("repo", "main", "x", { maxBytes: 10_000 });
    assert.equal(attempts(), 2);
    assert.deepEqual(data, new Uint8Array(5000).fill(2));
    const stalled = clientFor(url, 300, 1);
    await assert.rejects(
      stalled.getObjectBytes("repo", "main", "x", { maxBytes: 10_000 }),
      /timed out after 300 ms/,
    );
  });
});

Deno.test("getObjectBytes stops reading past maxBytes + 1; the download says the size is wrong", async () => {
  await withBodyServer((_attempt, controller) => {
    // Endless: a listing that says 100 bytes must not make perago hold a huge body.
    for (let i = 0; i < 64; i++) controller.enqueue(new Uint8Array(64 * KIB));
  }, async (url) => {
    const client = clientFor(url, 5_000, 1);
    const data = await client.getObjectBytes("repo", "main", "x", { maxBytes: 100 });
    assert.equal(data.length, 101);
    const api = {
      listObjects: async function* () {
        yield {
          path: "p/x",
          path_type: "object",
          checksum: "0".repeat(32),
          size_bytes: 100,
          mtime: 0,
          physical_address: "local://x",
        } satisfies ObjectStats;
      },
      getObjectBytes: client.getObjectBytes.bind(client),
    } as unknown as LakeFsApi;
    await withDir(async (dir) => {
      await assert.rejects(
        downloadPrefix(api, {
          repo: "repo",
          ref: "main",
          prefix: "p/",
          resolvePath: (key) => Promise.resolve(join(dir, key)),
        }),
        (error: unknown) => {
          assert.ok(error instanceof DownloadIntegrityError, String(error));
          assert.match(error.message, /is 101 bytes, the listing says 100/);
          return true;
        },
      );
    });
  });
});

Deno.test("downloadPrefix: two keys that land on one path fail the download, small files included", async () => {
  await withLakeFs(async ({ client }) => {
    for (let i = 0; i < 80; i++) {
      await client.uploadObject("repo", "main", `p/f${i}`, () => Promise.resolve(pattern(10, i)));
    }
    const ref = (await client.commit("repo", "main", "many")).id;
    await withDir(async (dir) => {
      await assert.rejects(
        downloadPrefix(client, {
          repo: "repo",
          ref,
          prefix: "p/",
          concurrency: 4,
          // Every key past the 70th maps onto one path (as a case-folding filesystem would).
          resolvePath: (key) => {
            const n = Number(key.slice(3));
            return Promise.resolve(join(dir, n >= 70 ? "same" : key.slice(2)));
          },
        }),
        (error: unknown) => {
          assert.ok(error instanceof DownloadIntegrityError, String(error));
          assert.match(error.message, /already exists; the listing maps two keys to one path/);
          return true;
        },
      );
    });
  });
});
