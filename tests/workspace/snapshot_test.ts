import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { join } from "node:path";
import { ATTEMPT_MARKER } from "../../src/workspace/attempt_dir.ts";
import {
  diffSnapshots,
  sha256File,
  SMALL_FILE_MAX_BYTES,
  snapshotDir,
  snapshotsEqual,
} from "../../src/workspace/snapshot.ts";

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
