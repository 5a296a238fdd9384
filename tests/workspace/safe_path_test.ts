import assert from "node:assert/strict";
import { join } from "node:path";
import { UnsafePathError, WorkspaceSymlinkError } from "../../src/workspace/errors.ts";
import { checkRelativeKey, resolveInsideDir } from "../../src/workspace/safe_path.ts";

Deno.test("checkRelativeKey accepts plain relative keys", () => {
  assert.deepEqual(checkRelativeKey("docs/a.txt"), ["docs", "a.txt"]);
  assert.deepEqual(checkRelativeKey("a..b/.hidden"), ["a..b", ".hidden"]);
  assert.deepEqual(checkRelativeKey("sub/.perago-attempt.json"), ["sub", ".perago-attempt.json"]);
});

Deno.test("checkRelativeKey refuses every dangerous key", () => {
  for (
    const key of [
      "",
      "/abs",
      "../x",
      "a/../../x",
      "a/..",
      "./a",
      "a/./b",
      "a\\b",
      "..\\x",
      "a\u0000b",
      "a\nb",
      "a//b",
      "a/",
      ".perago-attempt.json",
    ]
  ) {
    assert.throws(() => checkRelativeKey(key), UnsafePathError, JSON.stringify(key));
  }
});

Deno.test("resolveInsideDir maps keys inside and refuses symlinked parents and targets", async () => {
  const root = await Deno.makeTempDir();
  try {
    const dir = join(root, "attempt");
    const outside = join(root, "outside");
    await Deno.mkdir(dir);
    await Deno.mkdir(outside);
    assert.equal(await resolveInsideDir(dir, "docs/a.txt"), join(dir, "docs", "a.txt"));
    await assert.rejects(() => resolveInsideDir(dir, "../outside/x"), UnsafePathError);
    await Deno.symlink(outside, join(dir, "link"));
    await assert.rejects(() => resolveInsideDir(dir, "link/x"), WorkspaceSymlinkError);
    await Deno.symlink(join(outside, "f"), join(dir, "file-link"));
    await assert.rejects(() => resolveInsideDir(dir, "file-link"), WorkspaceSymlinkError);
    await Deno.writeTextFile(join(dir, "plain"), "x");
    await assert.rejects(() => resolveInsideDir(dir, "plain/child"), UnsafePathError);
    assert.deepEqual([...Deno.readDirSync(outside)], []);
  } finally {
    await Deno.remove(root, { recursive: true });
  }
});

Deno.test("resolveInsideDir with checkedDirs: a folder found real is not looked at again; a symlink is still refused the first time", async () => {
  const dir = await Deno.makeTempDir();
  const outside = await Deno.makeTempDir();
  try {
    await Deno.mkdir(`${dir}/a/b`, { recursive: true });
    await Deno.symlink(outside, `${dir}/link`);
    const checked = new Set<string>();
    assert.equal(await resolveInsideDir(dir, "a/b/x.txt", checked), `${dir}/a/b/x.txt`);
    assert.deepEqual([...checked].sort(), [`${dir}/a`, `${dir}/a/b`]);
    await assert.rejects(resolveInsideDir(dir, "link/x.txt", checked), WorkspaceSymlinkError);
    assert.ok(!checked.has(`${dir}/link`));
  } finally {
    await Deno.remove(dir, { recursive: true });
    await Deno.remove(outside, { recursive: true });
  }
});
