import assert from "node:assert/strict";

/**
 * The modules an idle executor process (`main.ts __executor`) loads: the entry, the child
 * command, and the executor with its dependencies' loader. Everything past these is imported
 * with `importLazily` on the first attempt (the attempt and lakeFS code, OpenTelemetry, the
 * metric catalog), which a module graph does not follow.
 */
const IDLE_EXECUTOR_ROOTS = [
  "../../main.ts",
  "../../src/cli/_child.ts",
  "../../src/runtime/executor.ts",
  "../../src/runtime/executor_deps.ts",
].map((path) => new URL(path, import.meta.url).href);

interface GraphModule {
  specifier: string;
  dependencies?: { code?: { specifier: string } }[];
}

/** Specifiers reachable from `roots` through code imports (type-only imports never load). */
async function codeGraph(roots: readonly string[]): Promise<Set<string>> {
  const modules = new Map<string, GraphModule>();
  const redirects: Record<string, string> = {};
  for (const root of roots) {
    const output = await new Deno.Command(Deno.execPath(), {
      args: ["info", "--json", root],
      stdout: "piped",
      stderr: "piped",
    }).output();
    assert.equal(output.code, 0, new TextDecoder().decode(output.stderr));
    const info = JSON.parse(new TextDecoder().decode(output.stdout)) as {
      modules: GraphModule[];
      redirects: Record<string, string>;
    };
    for (const module of info.modules) modules.set(module.specifier, module);
    Object.assign(redirects, info.redirects);
  }
  const seen = new Set<string>();
  const pending = [...roots];
  while (pending.length > 0) {
    const specifier = pending.pop()!;
    const resolved = redirects[specifier] ?? specifier;
    if (seen.has(resolved)) continue;
    seen.add(resolved);
    for (const dependency of modules.get(resolved)?.dependencies ?? []) {
      if (dependency.code !== undefined) pending.push(dependency.code.specifier);
    }
  }
  return seen;
}

/**
 * What an executor's first attempt imports (`executor_deps.ts` and the instruments of
 * `executor.ts`, all with `importLazily`).
 */
const FIRST_ATTEMPT_ROOTS = [
  "../../src/workspace/attempt.ts",
  "../../src/workspace/_workspace_attempt.ts",
  "../../src/lakefs/client.ts",
  "../../src/lakefs/object_cache.ts",
  "../../src/workspace/warm_pool.ts",
  "../../src/runtime/attempt_metrics.ts",
  "../../src/runtime/attempt_trace.ts",
  "../../src/runtime/counting_lakefs.ts",
  "../../src/otel/trace.ts",
].map((path) => new URL(path, import.meta.url).href);

const npmPackages = (graph: Set<string>) =>
  [...graph].filter((specifier) => specifier.startsWith("npm:"));

Deno.test("idle executor: its module graph holds no npm: package", async () => {
  const graph = await codeGraph(IDLE_EXECUTOR_ROOTS);
  // The walk reached the executor's own code, so an empty result means something.
  assert.ok(graph.has(new URL("../../src/log/setup.ts", import.meta.url).href));
  assert.ok(graph.has(new URL("../../src/vendor/logtape.ts", import.meta.url).href));
  assert.deepEqual(npmPackages(graph), []);
});

Deno.test("first attempt: the attempt code and its instruments load no npm: package", async () => {
  const graph = await codeGraph(FIRST_ATTEMPT_ROOTS);
  assert.ok(graph.has(new URL("../../src/vendor/opentelemetry_api.ts", import.meta.url).href));
  assert.deepEqual(npmPackages(graph), []);
});

Deno.test("module graph walk: sees an import where there is one, not a type-only one", async () => {
  const dir = await Deno.makeTempDir({ prefix: "perago-graph-test-" });
  try {
    const entry = `${dir}/entry.ts`;
    await Deno.writeTextFile(`${dir}/dep.ts`, 'import "node:async_hooks";\nexport const x = 1;\n');
    await Deno.writeTextFile(`${dir}/typed.ts`, 'import "node:os";\nexport type T = 1;\n');
    await Deno.writeTextFile(
      entry,
      'import { x } from "./dep.ts";\nimport type { T } from "./typed.ts";\n' +
        "export const y: T | number = x;\n",
    );
    const graph = await codeGraph([new URL(`file://${entry}`).href]);
    assert.ok(graph.has("node:async_hooks"));
    assert.ok(!graph.has("node:os"), "a type-only import loads nothing");
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
