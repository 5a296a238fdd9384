import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { join } from "node:path";
import type { LakeFsApi } from "../../src/lakefs/api.ts";
import type { LakeFsClient } from "../../src/lakefs/client.ts";
import { ObjectCache, TOUCH_INTERVAL_MS } from "../../src/lakefs/object_cache.ts";
import { type DownloadCache, downloadPrefix, type RemoteEntry } from "../../src/lakefs/sync.ts";
import {
  md5Of,
  pattern,
  prefixObjects,
  seedObjects,
  tamperedListing,
  withLakeFs,
  withTempDir,
} from "./_helpers.ts";

const KIB = 1024;

const OBJECTS = prefixObjects(2 * 1024 * KIB + 5);

const seed = (client: LakeFsClient) => seedObjects(client, OBJECTS);

const withDir = (fn: (dir: string) => Promise<void>) => withTempDir(fn, "perago-cache-test-");

/** Downloads `p/` into `<dir>/<name>` with the cache; returns where each object came from. */
async function download(
  api: LakeFsApi,
  ref: string,
  dir: string,
  name: string,
  cache: ObjectCache,
): Promise<Record<string, "kept" | "cache" | "lakefs">> {
  const from: Record<string, "kept" | "cache" | "lakefs"> = {};
  const target = join(dir, name);
  await downloadPrefix(api, {
    repo: "repo",
    ref,
    prefix: "p/",
    cache,
    onObject: (entry, source) => from[entry.key] = source,
    resolvePath: (key) => Promise.resolve(join(target, key)),
  });
  for (const [key, data] of Object.entries(OBJECTS)) {
    assert.deepEqual(await Deno.readFile(join(target, key)), data, `${name}: ${key}`);
  }
  return from;
}

function allFrom(source: "cache" | "lakefs"): Record<string, "cache" | "lakefs"> {
  return Object.fromEntries(Object.keys(OBJECTS).map((key) => [key, source]));
}

async function cacheFiles(dir: string): Promise<string[]> {
  const out: string[] = [];
  for (const sub of ["objects", "tmp"]) {
    const pending = [join(dir, sub)];
    while (pending.length > 0) {
      const current = pending.pop()!;
      try {
        for await (const entry of Deno.readDir(current)) {
          const path = join(current, entry.name);
          if (entry.isDirectory) pending.push(path);
          else out.push(path.slice(dir.length + 1));
        }
      } catch (error) {
        if (!(error instanceof Deno.errors.NotFound)) throw error;
      }
    }
  }
  return out.sort();
}

Deno.test("object cache: a second download copies every object from the cache, byte for byte", async () => {
  await withLakeFs(async ({ client, server }) => {
    const ref = await seed(client);
    await withDir(async (dir) => {
      const cache = new ObjectCache({ dir: join(dir, "cache"), maxBytes: 64 * 1024 * KIB });
      assert.deepEqual(await download(client, ref, dir, "a", cache), allFrom("lakefs"));
      const expected = Object.values(OBJECTS).map((data) => {
        const hash = md5Of(data);
        return `objects/${hash.slice(0, 2)}/${hash}-${data.length}`;
      }).sort();
      assert.deepEqual(await cacheFiles(join(dir, "cache")), expected);
      server.stats.reset();
      assert.deepEqual(await download(client, ref, dir, "b", cache), allFrom("cache"));
      assert.equal(server.stats.count("getObject"), 0, "nothing fetched on the warm download");
      assert.deepEqual(cache.stats, { hits: 4, misses: 4, fills: 4, evictions: 0, errors: 0 });
      // A copy, not a link: rewriting the attempt's file in place leaves the entry alone.
      const copy = join(dir, "b", "p/dir/mid.bin");
      const entry = join(dir, "cache", expected.find((path) => path.endsWith(`-${300 * KIB}`))!);
      assert.notEqual((await Deno.stat(copy)).ino, (await Deno.stat(entry)).ino);
      const file = await Deno.open(copy, { write: true });
      await file.write(new Uint8Array(10));
      file.close();
      assert.deepEqual(await Deno.readFile(entry), OBJECTS["p/dir/mid.bin"]);
      // The copy is writable by the task, like a downloaded file.
      assert.equal((await Deno.stat(copy)).mode! & 0o600, 0o600);
    });
  });
});

Deno.test("object cache: an entry of the wrong size is never served; it is replaced by a fill", async () => {
  await withLakeFs(async ({ client, server }) => {
    const ref = await seed(client);
    await withDir(async (dir) => {
      const cache = new ObjectCache({ dir: join(dir, "cache"), maxBytes: 64 * 1024 * KIB });
      await download(client, ref, dir, "a", cache);
      const big = OBJECTS["p/dir/big.bin"]!;
      const hash = md5Of(big);
      const entry = join(dir, "cache", "objects", hash.slice(0, 2), `${hash}-${big.length}`);
      assert.equal((await Deno.stat(entry)).mode! & 0o777, 0o400, "entries are read-only");
      await Deno.chmod(entry, 0o600);
      await Deno.truncate(entry, 1000);
      server.stats.reset();
      const from = await download(client, ref, dir, "b", cache);
      assert.equal(from["p/dir/big.bin"], "lakefs");
      assert.equal(from["p/small.txt"], "cache");
      assert.equal(server.stats.count("getObject"), 1);
      assert.deepEqual(await Deno.readFile(entry), big, "the bad entry was filled again");
    });
  });
});

Deno.test("object cache: objects whose checksum is not an MD5 are never cached", async () => {
  await withLakeFs(async ({ client }) => {
    const ref = await seed(client);
    const api = tamperedListing(client, "p/small.txt", { checksum: "0123456789abcdef-3" });
    await withDir(async (dir) => {
      const cache = new ObjectCache({ dir: join(dir, "cache"), maxBytes: 64 * 1024 * KIB });
      await download(api, ref, dir, "a", cache);
      const from = await download(api, ref, dir, "b", cache);
      assert.equal(from["p/small.txt"], "lakefs");
      assert.equal(from["p/dir/big.bin"], "cache");
      assert.equal((await cacheFiles(join(dir, "cache"))).length, 3);
    });
  });
});

/** Downloads `p/` one object at a time into `<dir>/a`; it must fail on an MD5 mismatch. */
async function rejectsOnMd5(
  api: LakeFsApi,
  ref: string,
  dir: string,
  cache: DownloadCache,
): Promise<void> {
  await assert.rejects(
    downloadPrefix(api, {
      repo: "repo",
      ref,
      prefix: "p/",
      cache,
      concurrency: 1,
      resolvePath: (key) => Promise.resolve(join(dir, "a", key)),
    }),
    /MD5/,
  );
}

Deno.test("object cache: a download whose MD5 is wrong fails and adds nothing", async () => {
  await withLakeFs(async ({ client }) => {
    const ref = await seed(client);
    const api = tamperedListing(client, "p/small.txt", { checksum: "0".repeat(32) });
    await withDir(async (dir) => {
      const cache = new ObjectCache({ dir: join(dir, "cache"), maxBytes: 64 * 1024 * KIB });
      await rejectsOnMd5(api, ref, dir, cache);
      const files = await cacheFiles(join(dir, "cache"));
      assert.ok(!files.some((path) => path.includes("0".repeat(32))), files.join(", "));
      assert.ok(!files.some((path) => path.startsWith("tmp/")), files.join(", "));
    });
  });
});

Deno.test("object cache: a failed download settles only once every cache copy it started has finished", async () => {
  await withLakeFs(async ({ client }) => {
    const ref = await seed(client);
    const tampered = tamperedListing(client, "p/small.txt", { checksum: "0".repeat(32) });
    // The bad object's body has been served: from then on its check fails the download.
    let badServed!: () => void;
    const served = new Promise<void>((resolve) => badServed = resolve);
    const api = new Proxy(tampered, {
      get(target, property) {
        const value = Reflect.get(target, property, target);
        if (!["getObject", "getObjectBytes", "downloadObject"].includes(String(property))) {
          return typeof value === "function" ? value.bind(target) : value;
        }
        return async (...args: unknown[]) => {
          const answer = await (value as (...a: unknown[]) => Promise<unknown>).apply(target, args);
          if (args[2] === "p/small.txt") badServed();
          return answer;
        };
      },
    });
    await withDir(async (dir) => {
      const real = new ObjectCache({ dir: join(dir, "cache"), maxBytes: 64 * 1024 * KIB });
      let copied = false;
      // The large object's copy into the cache is still running when the bad object fails.
      const cache = new Proxy(real, {
        get(target, property) {
          const value = Reflect.get(target, property, target);
          if (property !== "add") return typeof value === "function" ? value.bind(target) : value;
          return async (entry: RemoteEntry, file: string) => {
            // (A deadline, so a download that never fetches it fails the test, not hangs it.)
            await Promise.race([served, new Promise((resolve) => setTimeout(resolve, 10_000))]);
            await new Promise((resolve) => setTimeout(resolve, 100));
            await target.add(entry, file);
            copied = true;
          };
        },
      });
      await rejectsOnMd5(api, ref, dir, cache);
      assert.ok(copied, "the download failed before the cache copy it started had finished");
      const files = await cacheFiles(join(dir, "cache"));
      assert.ok(!files.some((path) => path.startsWith("tmp/")), files.join(", "));
    });
  });
});

function entryFor(index: number): RemoteEntry {
  const data = pattern(200, index);
  return { key: `k${index}`, size: data.length, checksum: md5Of(data) };
}

Deno.test("object cache: past the bound the least recently used entries go first", async () => {
  await withDir(async (dir) => {
    let now = Date.now();
    const cache = new ObjectCache({ dir: join(dir, "cache"), maxBytes: 1000, now: () => now });
    const sources: string[] = [];
    for (let i = 0; i < 6; i++) {
      sources.push(join(dir, `s${i}`));
      await Deno.writeFile(sources[i]!, pattern(200, i));
    }
    // Five entries (1,000 bytes: at the bound), aged 5..1 minutes: entry 0 is the oldest.
    for (let i = 0; i < 5; i++) {
      await cache.add(entryFor(i), sources[i]!);
      const path = await cache.lookup(entryFor(i));
      const when = new Date(now - (5 - i) * 60_000);
      await Deno.utime(path!, when, when);
    }
    // A hit on entry 0 makes it the most recently used.
    now += TOUCH_INTERVAL_MS + 1;
    assert.ok(await cache.lookup(entryFor(0)));
    // Entry 5 brings the total to 1,200: the two least recently used (1 and 2) are removed
    // to get under 90 % of the bound.
    await cache.add(entryFor(5), sources[5]!);
    const kept = [];
    for (let i = 0; i < 6; i++) if (await cache.lookup(entryFor(i)) !== undefined) kept.push(i);
    assert.deepEqual(kept, [0, 3, 4, 5]);
    assert.equal(cache.stats.evictions, 2);
  });
});

Deno.test("object cache: an object larger than a quarter of the bound is not cached", async () => {
  await withDir(async (dir) => {
    const cache = new ObjectCache({ dir: join(dir, "cache"), maxBytes: 700 });
    const source = join(dir, "s");
    await Deno.writeFile(source, pattern(200, 1));
    await cache.add(entryFor(1), source);
    assert.equal(await cache.lookup(entryFor(1)), undefined);
    assert.equal(cache.stats.fills, 0);
  });
});

Deno.test("object cache: a temporary file of a dead fill is removed by the next count", async () => {
  await withDir(async (dir) => {
    let now = Date.now();
    const cache = new ObjectCache({ dir: join(dir, "cache"), maxBytes: 10_000, now: () => now });
    await Deno.mkdir(join(dir, "cache", "tmp"), { recursive: true });
    const stale = join(dir, "cache", "tmp", "123-dead");
    await Deno.writeFile(stale, pattern(50, 9));
    now += 2 * 60 * 60_000;
    const source = join(dir, "s");
    await Deno.writeFile(source, pattern(200, 1));
    await cache.add(entryFor(1), source);
    await assert.rejects(Deno.lstat(stale), Deno.errors.NotFound);
    assert.ok(await cache.lookup(entryFor(1)));
  });
});

Deno.test("object cache: bad settings are refused", () => {
  for (const maxBytes of [0, -1, 1.5, Number.NaN]) {
    assert.throws(() => new ObjectCache({ dir: "/tmp/x", maxBytes }), RangeError);
  }
  assert.equal(ObjectCache.entryName({ size: 3, checksum: "ETAG-2" }), undefined);
  assert.equal(
    ObjectCache.entryName({ size: 3, checksum: "900150983CD24FB0D6963F7D28E17F72" }),
    "900150983cd24fb0d6963f7d28e17f72-3",
  );
});

const CHILD = `
import { join } from "node:path";
import { LakeFsClient } from "${new URL("../../src/lakefs/client.ts", import.meta.url).href}";
import { ObjectCache } from "${new URL("../../src/lakefs/object_cache.ts", import.meta.url).href}";
import { downloadPrefix } from "${new URL("../../src/lakefs/sync.ts", import.meta.url).href}";
const [url, key, secret, ref, cacheDir, target] = Deno.args;
const client = new LakeFsClient({ endpointUrl: url, accessKeyId: key, secretAccessKey: secret });
const cache = new ObjectCache({ dir: cacheDir, maxBytes: 1 << 30 });
for (let round = 0; round < 5; round++) {
  await downloadPrefix(client, {
    repo: "repo", ref, prefix: "p/", cache, concurrency: 4,
    resolvePath: (k) => Promise.resolve(join(target, String(round), k)),
  });
}
console.log(JSON.stringify(cache.stats));
`;

Deno.test("object cache: several processes filling and reading one cache at once", async () => {
  await withLakeFs(async ({ client, server }) => {
    const many: Record<string, Uint8Array> = {};
    for (let i = 0; i < 40; i++) many[`p/f${i}.bin`] = pattern(64 * KIB + i * 997, 100 + i);
    for (const [key, data] of Object.entries(many)) {
      await client.uploadObject("repo", "main", key, () => Promise.resolve(data));
    }
    const ref = (await client.commit("repo", "main", "many")).id;
    await withDir(async (dir) => {
      const script = join(dir, "child.ts");
      await Deno.writeTextFile(script, CHILD);
      const cacheDir = join(dir, "cache");
      const children = [0, 1, 2].map((n) =>
        new Deno.Command(Deno.execPath(), {
          args: [
            "run",
            "-A",
            "--config",
            new URL("../../deno.json", import.meta.url).pathname,
            script,
            server.url,
            "AKIAPERAGOTEST",
            "perago-test-secret-value-1234",
            ref,
            cacheDir,
            join(dir, `out${n}`),
          ],
          stdout: "piped",
          stderr: "piped",
        }).output()
      );
      const results = await Promise.all(children);
      for (const [n, result] of results.entries()) {
        const stderr = new TextDecoder().decode(result.stderr);
        assert.equal(result.code, 0, `child ${n}: ${stderr}`);
        const stats = JSON.parse(new TextDecoder().decode(result.stdout));
        assert.equal(stats.errors, 0, `child ${n}: ${JSON.stringify(stats)}`);
        for (let round = 0; round < 5; round++) {
          for (const [key, data] of Object.entries(many)) {
            const got = await Deno.readFile(join(dir, `out${n}`, String(round), key));
            assert.deepEqual(got, data, `child ${n} round ${round}: ${key}`);
          }
        }
      }
      const files = await cacheFiles(cacheDir);
      assert.equal(files.filter((path) => path.startsWith("objects/")).length, 40);
      assert.deepEqual(files.filter((path) => path.startsWith("tmp/")), []);
    });
  });
});

Deno.test("object cache: a small entry with the right size but other bytes is never served", async () => {
  await withLakeFs(async ({ client, server }) => {
    const ref = await seed(client);
    await withDir(async (dir) => {
      const cache = new ObjectCache({ dir: join(dir, "cache"), maxBytes: 64 * 1024 * KIB });
      await download(client, ref, dir, "a", cache);
      const small = OBJECTS["p/small.txt"]!;
      const hash = md5Of(small);
      const entry = join(dir, "cache", "objects", hash.slice(0, 2), `${hash}-${small.length}`);
      // A small entry is its bytes then their SHA-256, read-only.
      const good = new Uint8Array([...small, ...createHash("sha256").update(small).digest()]);
      assert.deepEqual(await Deno.readFile(entry), good);
      assert.equal((await Deno.stat(entry)).mode! & 0o777, 0o400);
      // One byte of the content flipped, the digest after it intact, the size unchanged.
      const bad = good.slice();
      bad[0] = bad[0]! ^ 0xff;
      await Deno.chmod(entry, 0o600);
      await Deno.writeFile(entry, bad);
      server.stats.reset();
      const from = await download(client, ref, dir, "b", cache);
      assert.equal(from["p/small.txt"], "lakefs");
      assert.equal(server.stats.count("getObject"), 1);
      assert.deepEqual(await Deno.readFile(entry), good, "the bad entry was filled again");
      // Cut short (the digest gone): not served either.
      await Deno.chmod(entry, 0o600);
      await Deno.truncate(entry, small.length);
      server.stats.reset();
      assert.equal((await download(client, ref, dir, "c", cache))["p/small.txt"], "lakefs");
      assert.equal(server.stats.count("getObject"), 1);
    });
  });
});
