import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { join } from "node:path";
import { ATTEMPT_MARKER } from "../../src/workspace/attempt_dir.ts";
import {
  changeStamp,
  diffSnapshots,
  sha256File,
  SMALL_FILE_MAX_BYTES,
  snapshotDir,
  snapshotsEqual,
} from "../../src/workspace/snapshot.ts";
import { waitFor } from "../../src/util/sleep.ts";

const hex = (data: Uint8Array | string) => createHash("sha256").update(data).digest("hex");

Deno.test("sha256File hashes small (read whole) and large (streamed) files correctly", async () => {
  const dir = await Deno.makeTempDir();
  try {
    for (const size of [0, 1, SMALL_FILE_MAX_BYTES, SMALL_FILE_MAX_BYTES + 1, 3_500_000]) {
      const data = new Uint8Array(size).map((_, i) => (i * 31 + size) & 0xff);
      const path = join(dir, `f${size}`);
      await Deno.writeFile(path, data);
      assert.equal(await sha256File(path), hex(data), `size ${size}`);
    }
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("snapshotDir lists files and symlinks sorted, skips the root marker and dirs", async () => {
  const dir = await Deno.makeTempDir();
  try {
    await Deno.mkdir(join(dir, "b/c"), { recursive: true });
    await Deno.mkdir(join(dir, "empty"));
    await Deno.writeTextFile(join(dir, "b/c/z.txt"), "z");
    await Deno.writeTextFile(join(dir, "a.txt"), "hello");
    await Deno.writeTextFile(join(dir, ATTEMPT_MARKER), "{}");
    await Deno.writeTextFile(join(dir, "b", ATTEMPT_MARKER), "nested is data");
    await Deno.symlink("/etc/passwd", join(dir, "link"));
    const snap = await snapshotDir(dir);
    assert.deepEqual(snap, [
      { path: "a.txt", kind: "file", digest: hex("hello"), size: 5 },
      { path: `b/${ATTEMPT_MARKER}`, kind: "file", digest: hex("nested is data"), size: 14 },
      { path: "b/c/z.txt", kind: "file", digest: hex("z"), size: 1 },
      { path: "link", kind: "symlink", digest: "/etc/passwd", size: 0 },
    ]);
    assert.ok(snapshotsEqual(snap, await snapshotDir(dir)));

    await Deno.writeTextFile(join(dir, "a.txt"), "hello!");
    await Deno.remove(join(dir, "b/c/z.txt"));
    await Deno.writeTextFile(join(dir, "new.txt"), "n");
    await Deno.writeTextFile(join(dir, ATTEMPT_MARKER), "{changed}");
    const after = await snapshotDir(dir);
    assert.equal(snapshotsEqual(snap, after), false);
    assert.deepEqual(diffSnapshots(snap, after), {
      added: [{ path: "new.txt", size: 1 }],
      changed: [{ path: "a.txt", size: 6 }],
      removed: [{ path: "b/c/z.txt", size: 1 }],
    });
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("a changed link target is a change; the marker alone is not", async () => {
  const dir = await Deno.makeTempDir();
  try {
    await Deno.symlink("x", join(dir, "l"));
    const before = await snapshotDir(dir);
    await Deno.writeTextFile(join(dir, ATTEMPT_MARKER), "{}");
    assert.ok(snapshotsEqual(before, await snapshotDir(dir)));
    await Deno.remove(join(dir, "l"));
    await Deno.symlink("y", join(dir, "l"));
    assert.deepEqual(diffSnapshots(before, await snapshotDir(dir)).changed, [
      { path: "l", size: 0 },
    ]);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

/**
 * Waits (deadline 5 s) until the wall clock is past the whole second of `path`'s ctime (Deno
 * reports ctime in seconds), with 50 ms to spare for the kernel's coarse clock.
 */
async function pastCtimeSecond(path: string): Promise<void> {
  const ctime = (await Deno.lstat(path)).ctime!.getTime();
  const next = Math.floor(ctime / 1000) * 1000 + 1000 + 50;
  await waitFor(
    () => Promise.resolve(Date.now() >= next || undefined),
    { timeoutMs: 5_000, intervalMs: 5, what: "the next second" },
  );
}

Deno.test("snapshotDir walks before it returns: an entry made after the call is not in it", async () => {
  const dir = await Deno.makeTempDir();
  try {
    await Deno.writeTextFile(join(dir, "a.txt"), "alpha");
    const taking = snapshotDir(dir);
    await Deno.writeTextFile(join(dir, "late.txt"), "late");
    assert.deepEqual(await taking, [
      { path: "a.txt", kind: "file", digest: hex("alpha"), size: 5 },
    ]);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("snapshotDir lists paths in path order where folder names sort around '/', and since reuses every unchanged file of such a tree unread", async () => {
  const dir = await Deno.makeTempDir();
  try {
    // '-' and '.' sort before '/', '0' and 'b' after it: a folder's files go between them.
    const paths = [
      "a",
      "a-b",
      "a.b/c",
      "a0",
      "ab/c",
      "x/a/b",
      "x/a-b",
      "x/a0",
      "x/ab",
      "é/1",
      "😀",
    ];
    for (const path of paths) {
      await Deno.mkdir(join(dir, path, ".."), { recursive: true });
      await Deno.writeTextFile(join(dir, path), path);
    }
    await Deno.mkdir(join(dir, "x/a/c"), { recursive: true });
    await Deno.writeTextFile(join(dir, "x/a/c/d"), "x/a/c/d");
    paths.push("x/a/c/d");
    const expected = [...paths].sort((a, b) => (a < b ? -1 : a > b ? 1 : 0));
    const before = await snapshotDir(dir);
    assert.deepEqual(before.map((entry) => entry.path), expected);
    await pastCtimeSecond(join(dir, "x/a/c/d"));
    const stamp = changeStamp(dir);
    const marked = before.map((entry) => ({ ...entry, digest: `unread:${entry.path}` }));
    const after = await snapshotDir(dir, { since: { snapshot: marked, stamp } });
    assert.deepEqual(after, marked);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("snapshotDir written: the caller's digests are taken as they are, unread", async () => {
  const dir = await Deno.makeTempDir();
  try {
    await Deno.writeTextFile(join(dir, "a.txt"), "alpha");
    await Deno.writeTextFile(join(dir, "b.txt"), "beta");
    const written = new Map([["a.txt", { size: 5, digest: "known" }]]);
    assert.deepEqual(await snapshotDir(dir, { written }), [
      { path: "a.txt", kind: "file", digest: "known", size: 5 },
      { path: "b.txt", kind: "file", digest: hex("beta"), size: 4 },
    ]);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("snapshotDir since: files unchanged since the stamp keep their digest unread; changed ones are read", async () => {
  const dir = await Deno.makeTempDir();
  try {
    for (const name of ["same.txt", "rewritten.txt", "restored.txt", "grown.txt"]) {
      await Deno.writeTextFile(join(dir, name), "0123456789");
    }
    const before = await snapshotDir(dir);
    await pastCtimeSecond(join(dir, "grown.txt"));
    const stamp = changeStamp(dir);
    // A digest no file has: what the snapshot keeps when it does not read the file.
    const marked = before.map((entry) => ({ ...entry, digest: `unread:${entry.path}` }));
    await Deno.writeTextFile(join(dir, "rewritten.txt"), "9876543210"); // same size
    const { mtime } = await Deno.lstat(join(dir, "restored.txt"));
    await Deno.writeTextFile(join(dir, "restored.txt"), "abcdefghij"); // same size, then
    await Deno.utime(join(dir, "restored.txt"), mtime!, mtime!); // the old mtime put back
    await Deno.writeTextFile(join(dir, "grown.txt"), "0123456789+");
    await Deno.writeTextFile(join(dir, "new.txt"), "n");
    const after = await snapshotDir(dir, { since: { snapshot: marked, stamp } });
    assert.deepEqual(after, [
      { path: "grown.txt", kind: "file", digest: hex("0123456789+"), size: 11 },
      { path: "new.txt", kind: "file", digest: hex("n"), size: 1 },
      { path: "restored.txt", kind: "file", digest: hex("abcdefghij"), size: 10 },
      { path: "rewritten.txt", kind: "file", digest: hex("9876543210"), size: 10 },
      { path: "same.txt", kind: "file", digest: "unread:same.txt", size: 10 },
    ]);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("snapshotDir since: a same-size rewrite in the stamp's own second (the same millisecond) is read", async () => {
  const dir = await Deno.makeTempDir();
  try {
    await Deno.writeTextFile(join(dir, "a.txt"), "first");
    const before = await snapshotDir(dir);
    const stamp = changeStamp(dir);
    await Deno.writeTextFile(join(dir, "a.txt"), "again"); // no wait: same second, same size
    const marked = before.map((entry) => ({ ...entry, digest: "unread" }));
    const after = await snapshotDir(dir, { since: { snapshot: marked, stamp } });
    assert.deepEqual(after, [{ path: "a.txt", kind: "file", digest: hex("again"), size: 5 }]);
    // An unchanged file in that second is read too (it cannot be told from a changed one).
    const again = await snapshotDir(dir, { since: { snapshot: marked, stamp } });
    assert.equal(again[0]!.digest, hex("again"));
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("snapshotDir since: many racy files, small and large, are all read again; the event loop runs meanwhile", async () => {
  const dir = await Deno.makeTempDir();
  try {
    // Racy: every file is written again after the stamp (its ctime at or past it), sizes
    // unchanged. The small ones are hashed synchronously in slices, the 100 KiB one through
    // the async reads.
    const small = Array.from({ length: 3_000 }, (_, i) => `d${i % 10}/f${i}.txt`);
    for (let d = 0; d < 10; d++) await Deno.mkdir(join(dir, `d${d}`));
    for (const path of small) Deno.writeFileSync(join(dir, path), new Uint8Array(4096));
    Deno.writeFileSync(join(dir, "large.bin"), new Uint8Array(100 * 1024));
    const before = await snapshotDir(dir);
    const stamp = changeStamp(dir);
    const marked = before.map((entry) => ({ ...entry, digest: "unread" }));
    for (const path of small) Deno.writeFileSync(join(dir, path), new Uint8Array(4096));
    const rewritten = new Uint8Array(4096).fill(7);
    Deno.writeFileSync(join(dir, small[1234]!), rewritten);
    Deno.writeFileSync(join(dir, "large.bin"), new Uint8Array(100 * 1024).fill(7));
    let ticks = 0;
    const timer = setInterval(() => ticks++, 0);
    let after;
    try {
      after = await snapshotDir(dir, { since: { snapshot: marked, stamp } });
    } finally {
      clearInterval(timer);
    }
    assert.equal(after.length, small.length + 1);
    assert.ok(after.every((entry) => entry.digest !== "unread"), "a racy file was reused unread");
    const byPath = new Map(after.map((entry) => [entry.path, entry.digest]));
    assert.equal(byPath.get(small[1234]!), hex(rewritten));
    assert.equal(byPath.get(small[1]!), hex(new Uint8Array(4096)));
    assert.equal(byPath.get("large.bin"), hex(new Uint8Array(100 * 1024).fill(7)));
    assert.deepEqual(
      diffSnapshots(before, after).changed.map((entry) => entry.path).sort(),
      [
        small[1234]!,
        "large.bin",
      ].sort(),
    );
    // Reading 3,000 files takes longer than one slice: the interval ran between them.
    assert.ok(ticks > 0, "the event loop never ran while the racy files were hashed");
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("snapshotDir since: a stamp from the future (a clock stepped back) reuses nothing", async () => {
  const dir = await Deno.makeTempDir();
  try {
    await Deno.writeTextFile(join(dir, "a.txt"), "alpha");
    await pastCtimeSecond(join(dir, "a.txt"));
    const marked = [{ path: "a.txt", kind: "file" as const, digest: "unread", size: 5 }];
    const now = changeStamp(dir);
    assert.equal(
      (await snapshotDir(dir, { since: { snapshot: marked, stamp: now } }))[0]!.digest,
      "unread",
    );
    const future = now + 3_600_000;
    assert.equal(
      (await snapshotDir(dir, { since: { snapshot: marked, stamp: future } }))[0]!.digest,
      hex("alpha"),
    );
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("diffSnapshots pairs entries by path, whatever the order of the lists it is given", () => {
  const entry = (path: string, digest: string) => ({
    path,
    kind: "file" as const,
    digest,
    size: digest.length,
  });
  const before = [entry("a", "1"), entry("b/c", "2"), entry("b0", "3"), entry("d", "4")];
  const after = [entry("a", "1"), entry("b/c", "22"), entry("b-", "5"), entry("d", "4")];
  const expected = {
    added: [{ path: "b-", size: 1 }],
    changed: [{ path: "b/c", size: 2 }],
    removed: [{ path: "b0", size: 1 }],
  };
  const sorted = (list: typeof before) =>
    [...list].sort((x, y) => (x.path < y.path ? -1 : x.path > y.path ? 1 : 0));
  assert.deepEqual(diffSnapshots(sorted(before), sorted(after)), expected);
  assert.deepEqual(diffSnapshots([...before].reverse(), after), expected);
});
