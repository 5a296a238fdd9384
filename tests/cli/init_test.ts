/**
 * `perago init` as a new user meets it: scaffold into an empty folder, then `deno task test`
 * and `deno task check` there as child processes; never overwrite; `.env.example` names
 * every setting with its real default.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { CONFIG_ENV_VARS, loadRuntimeConfig } from "../../src/config/config.ts";
import { envExample, envExampleEntries } from "../../src/cli/_init_files.ts";

const ROOT = new URL("../../", import.meta.url);
const MAIN = fileURLToPath(new URL("main.ts", ROOT));

async function run(args: string[], cwd: string): Promise<{ code: number; output: string }> {
  const result = await new Deno.Command(Deno.execPath(), {
    args,
    cwd,
    env: { NO_COLOR: "1" },
    stdin: "null",
    signal: AbortSignal.timeout(180_000),
  }).output();
  const decoder = new TextDecoder();
  return {
    code: result.code,
    output: decoder.decode(result.stdout) + decoder.decode(result.stderr),
  };
}

async function withTempDir(fn: (dir: string) => Promise<void>): Promise<void> {
  const dir = await Deno.makeTempDir({ prefix: "perago-init-" });
  try {
    await fn(dir);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

Deno.test("perago init in an empty folder, then deno task test and deno task check there pass", async () => {
  await withTempDir(async (dir) => {
    const init = await run(["run", "-A", MAIN, "init", "my-tasks"], dir);
    assert.equal(init.code, 0, init.output);
    assert.match(init.output, /created my-tasks\/deno\.json/);
    assert.match(init.output, /cd my-tasks/);
    const project = join(dir, "my-tasks");
    const config = JSON.parse(await Deno.readTextFile(join(project, "deno.json")));
    assert.equal(config.imports["perago"], new URL("mod.ts", ROOT).href);
    assert.equal(config.imports["perago/testing"], new URL("testing.ts", ROOT).href);
    assert.deepEqual(Object.keys(config.tasks).sort(), ["check", "perago", "start", "test"]);
    // The tests get read and write only: no network, environment or subprocesses.
    assert.equal(config.tasks.test, "deno test --allow-read --allow-write tests/");
    const testSource = await Deno.readTextFile(join(project, "tests/tidy_docs_test.ts"));
    assert.match(testSource, /from "perago\/testing"/);

    const test = await run(["task", "test"], project);
    assert.equal(test.code, 0, test.output);
    assert.match(test.output, /ok \| 4 passed \| 0 failed/);
    const check = await run(["task", "check"], project);
    assert.equal(check.code, 0, check.output);
    const extract = await run(["task", "perago", "extract", "tasks/tidy_docs.ts"], project);
    assert.equal(extract.code, 0, extract.output);
    assert.match(extract.output, /"name": "tidy_docs"/);
  });
});

Deno.test("perago init refuses to overwrite: one clear error, nothing written", async () => {
  await withTempDir(async (dir) => {
    await Deno.writeTextFile(join(dir, "README.md"), "mine\n");
    const init = await run(["run", "-A", MAIN, "init"], dir);
    assert.equal(init.code, 1, init.output);
    assert.match(
      init.output,
      /^error: init: README\.md already exists in .*; nothing was written\./m,
    );
    const left = await Array.fromAsync(Deno.readDir(dir), (entry) => entry.name);
    assert.deepEqual(left, ["README.md"]);
    assert.equal(await Deno.readTextFile(join(dir, "README.md")), "mine\n");

    const extra = await run(["run", "-A", MAIN, "init", "a", "b"], dir);
    assert.equal(extra.code, 1);
    assert.match(extra.output, /error: init: expected at most one directory/);
  });
});

Deno.test(".env.example names every setting perago reads, each with its real default", async () => {
  const text = envExample("/tmp");
  const named = envExampleEntries("/tmp").map((entry) => entry.name);
  const settings = CONFIG_ENV_VARS.filter((name) => !["TMPDIR", "TMP", "TEMP"].includes(name));
  assert.deepEqual([...named].sort(), [...settings].sort());
  for (const name of settings) assert.match(text, new RegExp(`^# ${name}=`, "m"));

  // Setting a variable to the default it names changes nothing.
  await withTempDir(async (dir) => {
    const load = (env: Record<string, string>) =>
      loadRuntimeConfig("tasks/tidy_docs.ts", { cwd: dir, env, probeRoots: false });
    const tempDir = (await load({})).workspaceRoot.replace(/\/perago\/workspaces$/, "");
    const defaults = await load({});
    for (const entry of envExampleEntries(tempDir)) {
      if (entry.defaultValue === "") continue;
      const config = await load({ [entry.name]: entry.defaultValue });
      assert.deepEqual(config, defaults, `${entry.name}=${entry.defaultValue} is not the default`);
    }
  });
});
