/**
 * Reads over kept-alive connections (util/http1.ts) against the real lakeFS, compared byte for
 * byte with the same reads through `fetch`: small objects read whole, large ones streamed into
 * the hashing lanes.
 */
import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { join } from "node:path";
import { LakeFsClient } from "../../src/lakefs/client.ts";
import { LakeFsNotFoundError } from "../../src/lakefs/errors.ts";
import {
  DownloadIntegrityError,
  downloadPrefix,
  SMALL_OBJECT_MAX_BYTES,
} from "../../src/lakefs/sync.ts";
import {
  createTestRepository,
  deleteTestRepository,
  type RealLakeFs,
  realLakeFs,
  skipNote,
} from "../_real_servers.ts";

const real = realLakeFs();

const md5 = (bytes: Uint8Array) => createHash("md5").update(bytes).digest("hex");

/**
 * A client of the real lakeFS: with `noProxy` it reads over kept-alive HTTP/1.1 connections,
 * without it through `fetch` (the reference of what the server sends).
 */
function realClient(server: RealLakeFs, noProxy: boolean): LakeFsClient {
  return new LakeFsClient({
    endpointUrl: server.url,
    accessKeyId: server.accessKeyId,
    secretAccessKey: server.secretAccessKey,
    noProxy,
  });
}

function bytesOf(size: number, seed: number): Uint8Array<ArrayBuffer> {
  const out = new Uint8Array(size);
  for (let i = 0; i < size; i++) out[i] = (i * 31 + seed * 7 + (i >> 8)) & 0xff;
  return out;
}

Deno.test({
  name:
    "kept-alive reads from the real lakeFS equal fetch's, byte for byte (sizes at the threshold, odd keys, 404)",
  ignore: skipNote("kept-alive reads against a real lakeFS", real),
  fn: async () => {
    if ("skip" in real) return;
    const repo = await createTestRepository(real, "http1-real");
    const kept = realClient(real, true);
    const fetched = realClient(real, false);
    try {
      const sizes = [
        0,
        1,
        SMALL_OBJECT_MAX_BYTES - 1,
        SMALL_OBJECT_MAX_BYTES,
        SMALL_OBJECT_MAX_BYTES + 1,
      ];
      const names = [
        "with space.txt",
        "é ü 日本.txt",
        "percent%25 %.txt",
        "plus+sign.txt",
        "hash#frag.txt",
        "query?x=1&y=2.txt",
        "dots..name.txt",
      ];
      const objects = new Map<string, Uint8Array<ArrayBuffer>>();
      sizes.forEach((size, i) => objects.set(`d/size-${size}.bin`, bytesOf(size, i)));
      names.forEach((name, i) => objects.set(`d/${name}`, bytesOf(100 + i, 50 + i)));
      // Keys that look like path segments: read, never written to disk here.
      for (const key of ["x/../y.txt", "x/./z.txt", "x/..", "x//double.txt"]) {
        objects.set(key, bytesOf(33, key.length));
      }
      for (const [key, data] of objects) {
        await kept.uploadObject(repo, "main", key, () => Promise.resolve(data), {
          size: data.length,
        });
      }

      const connections = kept.openConnections();
      assert.ok(connections !== undefined, "a plain-http endpoint reads over kept connections");
      try {
        for (const [key, data] of objects) {
          const options = { maxBytes: SMALL_OBJECT_MAX_BYTES };
          const overKept = await kept.getObjectBytes(repo, "main", key, {
            ...options,
            connections,
          });
          const overFetch = await fetched.getObjectBytes(repo, "main", key, options);
          // Past the limit, both cut at one byte more.
          const expected = data.subarray(0, SMALL_OBJECT_MAX_BYTES + 1);
          assert.equal(overKept.length, expected.length, key);
          assert.equal(md5(overKept), md5(expected), key);
          assert.equal(md5(overFetch), md5(overKept), key);
        }
        const missing = await kept.getObjectBytes(repo, "main", "d/missing", {
          maxBytes: 100,
          connections,
        }).then(() => assert.fail("a missing object was read"), (error: unknown) => error);
        const missingFetched = await fetched.getObjectBytes(repo, "main", "d/missing", {
          maxBytes: 100,
        }).then(() => assert.fail("a missing object was read"), (error: unknown) => error);
        assert.ok(missing instanceof LakeFsNotFoundError, String(missing));
        assert.ok(missingFetched instanceof LakeFsNotFoundError);
        assert.equal(missing.message, missingFetched.message);
        assert.equal(missing.status, 404);
      } finally {
        connections.close();
      }

      // A whole download through each path: the same files.
      const dirs: string[] = [];
      try {
        for (const lakefs of [kept, fetched]) {
          const dir = await Deno.makeTempDir({ prefix: "perago-http1-real-" });
          dirs.push(dir);
          const listing = await downloadPrefix(lakefs, {
            repo,
            ref: "main",
            prefix: "d/",
            resolvePath: (key) => Promise.resolve(join(dir, key)),
          });
          assert.equal(listing.length, sizes.length + names.length);
        }
        for (const [key, data] of objects) {
          if (!key.startsWith("d/")) continue;
          const [a, b] = await Promise.all(dirs.map((dir) => Deno.readFile(join(dir, key))));
          assert.equal(md5(a!), md5(data), key);
          assert.equal(md5(b!), md5(a!), key);
        }
      } finally {
        for (const dir of dirs) await Deno.remove(dir, { recursive: true });
      }
    } finally {
      await deleteTestRepository(real, repo);
    }
  },
});

Deno.test({
  name:
    "large objects from the real lakeFS stream into the hashing lanes over kept-alive connections: the files fetch's read-back gives; a listing's wrong MD5 fails the download",
  ignore: skipNote("streamed large downloads against a real lakeFS", real),
  fn: async () => {
    if ("skip" in real) return;
    const repo = await createTestRepository(real, "lanes-real");
    const kept = realClient(real, true);
    const fetched = realClient(real, false);
    const dirs: string[] = [];
    try {
      const objects = new Map<string, Uint8Array<ArrayBuffer>>();
      const sizes = [SMALL_OBJECT_MAX_BYTES + 1, 700_001, 1_048_576, 2_500_007, 300_000, 999_999];
      sizes.forEach((size, i) => objects.set(`big/o${i}.bin`, bytesOf(size, 90 + i)));
      for (const [key, data] of objects) {
        await kept.uploadObject(repo, "main", key, () => Promise.resolve(data), {
          size: data.length,
        });
      }
      for (const lakefs of [kept, fetched]) {
        const dir = await Deno.makeTempDir({ prefix: "perago-lanes-real-" });
        dirs.push(dir);
        const listing = await downloadPrefix(lakefs, {
          repo,
          ref: "main",
          prefix: "big/",
          concurrency: 4,
          resolvePath: (key) => Promise.resolve(join(dir, key)),
        });
        assert.equal(listing.length, objects.size);
      }
      for (const [key, data] of objects) {
        const [a, b] = await Promise.all(dirs.map((dir) => Deno.readFile(join(dir, key))));
        assert.equal(md5(a!), md5(data), key);
        assert.equal(md5(b!), md5(data), key);
      }
      const corrupt = "big/o3.bin";
      const tampered = new Proxy(kept, {
        get(target, property) {
          if (property === "listObjects") {
            return async function* (...args: Parameters<LakeFsClient["listObjects"]>) {
              for await (const entry of target.listObjects(...args)) {
                yield entry.path === corrupt ? { ...entry, checksum: "0".repeat(32) } : entry;
              }
            };
          }
          const value = Reflect.get(target, property, target);
          return typeof value === "function" ? value.bind(target) : value;
        },
      });
      const dir = await Deno.makeTempDir({ prefix: "perago-lanes-real-" });
      dirs.push(dir);
      await assert.rejects(
        downloadPrefix(tampered, {
          repo,
          ref: "main",
          prefix: "big/",
          resolvePath: (key) => Promise.resolve(join(dir, key)),
        }),
        (error: unknown) =>
          error instanceof DownloadIntegrityError &&
          error.message.includes(JSON.stringify(corrupt)) && /MD5/.test(error.message),
      );
    } finally {
      for (const dir of dirs) await Deno.remove(dir, { recursive: true });
      await deleteTestRepository(real, repo);
    }
  },
});
