import assert from "node:assert/strict";
import { join } from "node:path";
import { pathToFileURL } from "node:url";
import { loadTask, TaskLoadError } from "../../src/task/loader.ts";

const MOD_URL = new URL("../../mod.ts", import.meta.url).href;

const GOOD = `
import { defineTask, z } from ${JSON.stringify(MOD_URL)};
export default defineTask({
  name: "loaded_task",
  ownerEmail: "o@example.com",
  description: "loaded from a temp file",
  params: z.object({}),
  result: z.object({ ok: z.boolean() }),
  run: () => ({ ok: true }),
});
`;

async function withModules(
  files: Record<string, string>,
  fn: (dir: string) => Promise<void>,
): Promise<void> {
  const dir = await Deno.realPath(await Deno.makeTempDir({ prefix: "perago-loader-" }));
  try {
    for (const [name, text] of Object.entries(files)) {
      await Deno.writeTextFile(join(dir, name), text);
    }
    await fn(dir);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

async function loadError(target: string, cwd?: string): Promise<TaskLoadError> {
  try {
    await loadTask(target, cwd === undefined ? {} : { cwd });
  } catch (error) {
    assert.ok(error instanceof TaskLoadError, String(error));
    assert.equal(error.name, "TaskLoadError");
    return error;
  }
  assert.fail(`expected loading ${target} to fail`);
}

Deno.test("loadTask accepts a relative path, an absolute path and a file: URL", async () => {
  await withModules({ "good.ts": GOOD }, async (dir) => {
    const path = join(dir, "good.ts");
    const url = pathToFileURL(path).href;
    for (
      const [target, cwd] of [["good.ts", dir], ["./good.ts", dir], [path, undefined], [
        url,
        undefined,
      ]] as const
    ) {
      const loaded = await loadTask(target, cwd === undefined ? {} : { cwd });
      assert.equal(loaded.task.name, "loaded_task");
      assert.equal(loaded.modulePath, path);
      assert.equal(loaded.moduleUrl, url);
    }
  });
});

Deno.test("loadTask: a missing module", async () => {
  await withModules({}, async (dir) => {
    const error = await loadError("nope.ts", dir);
    assert.equal(error.modulePath, join(dir, "nope.ts"));
    assert.match(error.message, new RegExp(`^task module not found: ${join(dir, "nope.ts")}`));
    assert.ok(error.cause instanceof Deno.errors.NotFound);
  });
});

Deno.test("loadTask: a directory is not a module", async () => {
  await withModules({}, async (dir) => {
    const error = await loadError(dir);
    assert.match(error.message, /is not a file/);
  });
});

Deno.test("loadTask: a module with a syntax error", async () => {
  await withModules({ "broken.ts": "export default defineTask({ name: ;\n" }, async (dir) => {
    const error = await loadError(join(dir, "broken.ts"));
    assert.match(
      error.message,
      new RegExp(`^cannot import task module ${join(dir, "broken.ts")}: `),
    );
    assert.ok(!error.message.slice(0, -1).includes("\n"), "only the first line of the cause");
    assert.match(
      error.message,
      /: SyntaxError: .* \(at file:\S*broken\.ts:1:\d+\); fix the module/,
    );
    assert.ok(error.cause !== undefined);
  });
});

Deno.test("loadTask: a module that throws while being imported", async () => {
  await withModules({
    "throws.ts": 'throw new Error("boom at import\\nsecond line");\n',
    "badtask.ts": GOOD.replace('"o@example.com"', '"not-an-email"'),
  }, async (dir) => {
    let error = await loadError(join(dir, "throws.ts"));
    assert.match(error.message, /cannot import task module .*throws\.ts: Error: boom at import; /);
    assert.ok(!error.message.includes("second line"));
    error = await loadError(join(dir, "badtask.ts"));
    assert.match(
      error.message,
      /TaskDefinitionError: invalid task "loaded_task": ownerEmail: must be an email address/,
    );
    assert.equal((error.cause as Error).name, "TaskDefinitionError");
  });
});

Deno.test("loadTask: no default export", async () => {
  await withModules(
    { "nodefault.ts": GOOD.replace("export default", "export const task =") },
    async (dir) => {
      const path = join(dir, "nodefault.ts");
      const error = await loadError(path);
      assert.equal(
        error.message,
        `${path} has no default export; export default defineTask({...})`,
      );
    },
  );
});

Deno.test("loadTask: a default export not made by defineTask", async () => {
  await withModules({
    "plain.ts": 'export default { name: "x", run() {} };\n',
    "fn.ts": "export default function run() {}\n",
  }, async (dir) => {
    let error = await loadError(join(dir, "plain.ts"));
    assert.match(error.message, /is not a task \(got an object not made by defineTask\)/);
    assert.match(error.message, /export default defineTask\(\{\.\.\.\}\)$/);
    error = await loadError(join(dir, "fn.ts"));
    assert.match(error.message, /got a function/);
  });
});

Deno.test("loadTask refuses remote URLs", async () => {
  const error = await loadError("https://example.com/task.ts");
  assert.match(error.message, /must be a local file/);
});
