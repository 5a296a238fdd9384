import assert from "node:assert/strict";
import * as nodePath from "node:path";
import { fileURLToPath, pathToFileURL } from "node:url";
import {
  basename,
  fromFileUrl,
  isAbsolute,
  join,
  normalize,
  resolve,
  toFileUrl,
} from "../../src/util/path.ts";

const PATHS = [
  "",
  ".",
  "..",
  "/",
  "//",
  "/a",
  "/a/",
  "a",
  "a/",
  "a/b/../c",
  "/a//b/./c/..",
  "../../x",
  "/../x",
  "a/../..",
  "./a/./b/",
  "/tmp/perago logs/x=1/pid=2__started=3.jsonl",
  "/a/b/c/..",
  "docs/../../etc",
  "é/ü%20/#?",
];

Deno.test({
  name: "path: join, normalize, resolve, basename and isAbsolute are node:path's (POSIX)",
  ignore: Deno.build.os === "windows",
  fn() {
    for (const a of PATHS) {
      assert.equal(normalize(a), nodePath.normalize(a), `normalize ${a}`);
      assert.equal(isAbsolute(a), nodePath.isAbsolute(a), `isAbsolute ${a}`);
      assert.equal(basename(a), nodePath.basename(a), `basename ${a}`);
      assert.equal(resolve(a), nodePath.resolve(a), `resolve ${a}`);
      for (const b of PATHS) {
        assert.equal(join(a, b), nodePath.join(a, b), `join ${a} ${b}`);
        assert.equal(resolve(a, b), nodePath.resolve(a, b), `resolve ${a} ${b}`);
        assert.equal(join(a, b, ".."), nodePath.join(a, b, ".."), `join ${a} ${b} ..`);
      }
    }
    assert.equal(join(), nodePath.join());
    assert.equal(resolve(), nodePath.resolve());
  },
});

Deno.test({
  name: "path: file URLs are node:url's (POSIX)",
  ignore: Deno.build.os === "windows",
  fn() {
    for (const path of PATHS.filter((p) => p !== "")) {
      assert.equal(toFileUrl(path).href, pathToFileURL(path).href, `toFileUrl ${path}`);
      const url = pathToFileURL(nodePath.resolve(path));
      assert.equal(fromFileUrl(url), fileURLToPath(url), `fromFileUrl ${url.href}`);
      assert.equal(fromFileUrl(url.href), fileURLToPath(url.href), `fromFileUrl ${url.href}`);
    }
    for (const path of ["/a\tb\nc", "/100%", "/a\\b", "/x y#z?w"]) {
      assert.equal(toFileUrl(path).href, pathToFileURL(path).href, `toFileUrl ${path}`);
      assert.equal(fromFileUrl(toFileUrl(path)), path);
    }
    assert.throws(() => fromFileUrl("https://example.com/a"), TypeError);
  },
});
