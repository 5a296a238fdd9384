import assert from "node:assert/strict";
import { UnsafePathError, WorkspaceScopeError } from "../../src/workspace/errors.ts";
import { KeyTreeGuard } from "../../src/workspace/safe_path.ts";
import { describeScope, inScope, resolveScope } from "../../src/workspace/scope.ts";
import { isTerminalError } from "../../src/task/errors.ts";

Deno.test("resolveScope: no input prefix keeps the declared one; a narrower one is normalised", () => {
  assert.equal(resolveScope("data/", undefined), "data/");
  assert.equal(resolveScope("", undefined), "");
  assert.equal(resolveScope("data/", "data/part=07"), "data/part=07/");
  assert.equal(resolveScope("data/", "/data//part=07/"), "data/part=07/");
  assert.equal(resolveScope("data/", "data"), "data/");
  assert.equal(resolveScope("", "docs/"), "docs/");
  assert.equal(resolveScope("", "/"), "");
});

for (
  const [declared, given, why] of [
    ["data/", "docs/", /not under the task's prefix "data\/"/],
    ["data/", "/", /not under the task's prefix "data\/"/],
    ["data/part=07/", "data/", /not under the task's prefix "data\/part=07\/"/],
    ["data/", "datax/", /not under the task's prefix/],
    ["data/", "data/../etc", /"\.\." segment/],
    ["", "a\\b", /backslash/],
    ["", "//host/share", /not a repository path/],
    ["", "a\u0000b", /NUL/],
  ] as const
) {
  Deno.test(`resolveScope refuses ${JSON.stringify(given)} under ${JSON.stringify(declared)}`, () => {
    assert.throws(
      () => resolveScope(declared, given),
      (error: Error) =>
        error instanceof WorkspaceScopeError && isTerminalError(error) &&
        /^invalid workspace input: workspace\.prefix: /.test(error.message) &&
        why.test(error.message),
    );
  });
}

Deno.test("inScope is a folder test, describeScope shows the root as /", () => {
  assert.ok(inScope("data/part=07/a.csv", "data/part=07/"));
  assert.ok(!inScope("data/part=070/a.csv", "data/part=07/"));
  assert.ok(inScope("anything", ""));
  assert.equal(describeScope(""), "/");
  assert.equal(describeScope("data/"), "data/");
});

Deno.test("KeyTreeGuard refuses a key that is a file and a folder at once, in either order", () => {
  const one = new KeyTreeGuard();
  one.claim("docs/a");
  one.claim("docs/a-b/c.txt");
  assert.throws(() => one.claim("docs/a/b.txt"), UnsafePathError);
  const two = new KeyTreeGuard();
  two.claim("docs/a/b.txt");
  assert.throws(() => two.claim("docs/a"), /"docs\/a\/b.txt" is also an object/);
  const fine = new KeyTreeGuard();
  for (const key of ["a/b/c", "a/b/d", "a/bc", "ab"]) fine.claim(key);
  // Keys of one folder in a row: each still clashes with a file of a folder's name.
  const row = new KeyTreeGuard();
  row.claim("f");
  assert.throws(() => row.claim("f/x/1"), /"f" is also an object/);
  assert.throws(() => row.claim("f/x/2"), /"f" is also an object/);
  row.claim("d/x/1");
  row.claim("d/x/2");
  assert.throws(() => row.claim("d/x"), /"d\/x\/1" is also an object/);
  assert.throws(() => row.claim("d"), UnsafePathError);
  row.claim("d/x/3");
});
