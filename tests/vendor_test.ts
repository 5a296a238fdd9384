import assert from "node:assert/strict";
import { latin1, VENDORED_BUNDLES, vendoredFiles } from "../scripts/vendor.ts";

const VENDOR_DIR = new URL("../src/vendor/", import.meta.url);

Deno.test("src/vendor holds exactly what `deno task vendor` generates from the pinned packages", async () => {
  const generated = await vendoredFiles();
  const expected = VENDORED_BUNDLES.flatMap((b) => [b.file, ...b.wrappers.map((w) => w.file)]);
  assert.deepEqual([...generated.keys()].sort(), expected.sort());
  const committed: string[] = [];
  for await (const entry of Deno.readDir(VENDOR_DIR)) committed.push(entry.name);
  assert.deepEqual(committed.sort(), expected.sort(), "src/vendor has files nothing generates");
  for (const [name, text] of generated) {
    const current = await Deno.readTextFile(new URL(name, VENDOR_DIR));
    assert.ok(current === text, `src/vendor/${name} is stale: run \`deno task vendor\``);
  }
});

Deno.test("the bundles import nothing: no npm: package, no Node module", async () => {
  for (const bundle of VENDORED_BUNDLES) {
    const text = await Deno.readTextFile(new URL(bundle.file, VENDOR_DIR));
    const imports = [...text.matchAll(/^import\b.*?from\s+"([^"]+)"/gm)].map((m) => m[1]);
    assert.deepEqual(imports, [], bundle.file);
    const code = text.replace(/^\s*\/\/.*$/gm, "");
    assert.doesNotMatch(code, /\bimport\(|\brequire\(/, bundle.file);
  }
});

Deno.test("the bundles are Latin-1 throughout (V8 holds a module with any other character as UTF-16, twice its size)", async () => {
  for (const bundle of VENDORED_BUNDLES) {
    const text = await Deno.readTextFile(new URL(bundle.file, VENDOR_DIR));
    const wide = text.split("\n").flatMap((line, i) =>
      /[\u0100-\uffff]/.test(line) ? [`${i + 1}: ${line.slice(0, 80)}`] : []
    );
    assert.deepEqual(wide, [], bundle.file);
  }
});

Deno.test("latin1 writes characters past Latin-1 as \\u escapes and keeps the rest", () => {
  assert.equal(
    latin1("Copyright 2024\u20132026 Hong Minhee"),
    "Copyright 2024\\u20132026 Hong Minhee",
  );
  assert.equal(latin1("caf\u00e9 \u{1f600}"), "caf\u00e9 \\ud83d\\ude00");
});
