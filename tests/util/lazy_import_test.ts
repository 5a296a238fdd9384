import assert from "node:assert/strict";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { importLazily, LAZY_MODULES, lazyModuleUrl } from "../../src/util/lazy_import.ts";
import { LAZY_MODULE_PATHS } from "../../scripts/compile.ts";

const ROOT = fileURLToPath(new URL("../../", import.meta.url));

Deno.test("importLazily: every listed module loads and exports something; compile embeds each", async () => {
  for (const module of LAZY_MODULES) {
    const namespace = await importLazily<Record<string, unknown>>(module);
    assert.ok(Object.keys(namespace).length > 0, `${module} exports nothing`);
  }
  assert.deepEqual(
    [...LAZY_MODULE_PATHS],
    LAZY_MODULES.map((module) => join(ROOT, "src", module)),
  );
  assert.equal(
    lazyModuleUrl("task/glob.ts").href,
    new URL("src/task/glob.ts", `file://${ROOT}`).href,
  );
});

Deno.test("importLazily: a module loaded this way works at once (the glob matcher)", async () => {
  const { compileGlob } = await importLazily<typeof import("../../src/task/glob.ts")>(
    "task/glob.ts",
  );
  assert.equal(compileGlob("docs/**")("docs/a.md"), true);
  assert.equal(compileGlob("docs/*.md")("src/a.md"), false);
});

/** Source files of perago that `deno run` and `deno compile` load (not tests, not benches). */
async function sourceFiles(): Promise<string[]> {
  const files = ["main.ts", "mod.ts", "testing.ts"].map((name) => join(ROOT, name));
  const walk = async (dir: string) => {
    for await (const entry of Deno.readDir(dir)) {
      const path = join(dir, entry.name);
      if (entry.isDirectory) await walk(path);
      else if (entry.name.endsWith(".ts")) files.push(path);
    }
  };
  await walk(join(ROOT, "src"));
  return files;
}

Deno.test("importLazily: no source file imports its own modules with a literal dynamic import", async () => {
  // A literal `import("./x.ts")` puts x.ts and all it imports in the module graph of every
  // process whose graph reaches the importer, run or not: the memory importLazily saves.
  // (`typeof import("./x.ts")` is a type: the module graph of `deno run` skips it.)
  const literal = /(?<!typeof\s+)\bimport\(\s*["'`](\.|\/|file:)/;
  const offenders: string[] = [];
  for (const file of await sourceFiles()) {
    const lines = (await Deno.readTextFile(file)).split("\n");
    lines.forEach((line, index) => {
      const code = line.trimStart();
      if (code.startsWith("*") || code.startsWith("//") || code.startsWith("/*")) return;
      if (literal.test(code)) offenders.push(`${file.slice(ROOT.length)}:${index + 1}: ${code}`);
    });
  }
  assert.deepEqual(offenders, [], "use importLazily (src/util/lazy_import.ts) instead");
});
