import assert from "node:assert/strict";
import { normalizePrefix, validateRelativePath } from "../../src/task/paths.ts";

Deno.test("validateRelativePath normalises ./, duplicate and trailing slashes", () => {
  assert.equal(validateRelativePath("docs/a.txt", "p"), "docs/a.txt");
  assert.equal(validateRelativePath("./docs//a.txt", "p"), "docs/a.txt");
  assert.equal(validateRelativePath("docs/./sub/", "p"), "docs/sub");
  assert.equal(validateRelativePath(".hidden", "p"), ".hidden");
  assert.equal(validateRelativePath("a..b/c", "p"), "a..b/c");
});

Deno.test("validateRelativePath rejects unsafe paths with a message naming the value", () => {
  const bad: [string, RegExp][] = [
    ["", /names no path/],
    [".", /names no path/],
    ["./", /names no path/],
    ["/etc/passwd", /absolute/],
    ["../x", /"\.\." segment/],
    ["docs/../../x", /"\.\." segment/],
    ["docs/..", /"\.\." segment/],
    ["docs\\a.txt", /backslash/],
    ["a\0b", /NUL/],
  ];
  for (const [path, message] of bad) {
    assert.throws(() => validateRelativePath(path, "requireFile"), (error: Error) => {
      assert.ok(error instanceof RangeError, `${JSON.stringify(path)}: ${error}`);
      assert.match(error.message, /^requireFile: /);
      assert.match(error.message, message);
      return true;
    });
  }
  assert.throws(() => validateRelativePath(42 as unknown as string, "p"), TypeError);
});

Deno.test("normalizePrefix: root forms become empty, directories get one trailing slash", () => {
  assert.equal(normalizePrefix(), "");
  assert.equal(normalizePrefix("/"), "");
  assert.equal(normalizePrefix(""), "");
  assert.equal(normalizePrefix("."), "");
  assert.equal(normalizePrefix("docs"), "docs/");
  assert.equal(normalizePrefix("docs/"), "docs/");
  assert.equal(normalizePrefix("/data//raw/"), "data/raw/");
  assert.equal(normalizePrefix("./a/./b"), "a/b/");
});

Deno.test("normalizePrefix rejects .., backslashes, NUL and host-like paths", () => {
  for (const prefix of ["..", "a/../b", "/..", "a\\b", "a\0", "//host/share", "///x"]) {
    assert.throws(() => normalizePrefix(prefix), RangeError, JSON.stringify(prefix));
  }
});
