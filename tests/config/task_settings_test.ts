import assert from "node:assert/strict";
import { join } from "node:path";
import { loadRuntimeConfig, loadTaskSettings } from "../../src/config/config.ts";
import { ConfigError } from "../../src/config/errors.ts";
import {
  parseTaskSettings,
  taskEnvVars,
  taskVariableSuffix,
} from "../../src/config/task_settings.ts";

Deno.test("task variables: the name upper-cased, other characters as _", () => {
  assert.equal(taskVariableSuffix("word_count"), "WORD_COUNT");
  assert.equal(taskVariableSuffix("features.build-v2"), "FEATURES_BUILD_V2");
  assert.deepEqual(taskEnvVars(["a.b", "c"]), [
    "PERAGO_TASK_DOMAIN_A_B",
    "PERAGO_TASK_CONCURRENCY_A_B",
    "PERAGO_TASK_DOMAIN_C",
    "PERAGO_TASK_CONCURRENCY_C",
  ]);
});

Deno.test("parseTaskSettings: per-task domain wins, NO_DOMAIN restores the default queue", () => {
  const settings = parseTaskSettings({
    PERAGO_TASK_DOMAIN: " staging ",
    PERAGO_TASK_DOMAIN_RENDER: "gpu",
    PERAGO_TASK_DOMAIN_INDEX: "No_Domain",
    PERAGO_TASK_CONCURRENCY_RENDER: "1",
    PERAGO_TASK_PAUSED: "thumbs,  index  thumbs",
  }, ["render", "index", "thumbs", "plain"]);
  assert.deepEqual(settings, [
    {
      name: "render",
      domain: "gpu",
      domainVariable: "PERAGO_TASK_DOMAIN_RENDER",
      concurrency: 1,
      paused: false,
    },
    {
      name: "index",
      domain: undefined,
      domainVariable: "PERAGO_TASK_DOMAIN_INDEX",
      concurrency: undefined,
      paused: true,
    },
    {
      name: "thumbs",
      domain: "staging",
      domainVariable: "PERAGO_TASK_DOMAIN",
      concurrency: undefined,
      paused: true,
    },
    {
      name: "plain",
      domain: "staging",
      domainVariable: "PERAGO_TASK_DOMAIN",
      concurrency: undefined,
      paused: false,
    },
  ]);
  assert.deepEqual(parseTaskSettings({}, ["x"])[0], {
    name: "x",
    domain: undefined,
    domainVariable: undefined,
    concurrency: undefined,
    paused: false,
  });
});

Deno.test("parseTaskSettings: each bad value is one line naming its variable", () => {
  const cases: [Record<string, string>, string, RegExp][] = [
    [{ PERAGO_TASK_DOMAIN: "a:b" }, "PERAGO_TASK_DOMAIN", /task domain of 1 to 255 letters/],
    [{ PERAGO_TASK_DOMAIN: "a,b" }, "PERAGO_TASK_DOMAIN", /\(got "a,b"\)/],
    [{ PERAGO_TASK_DOMAIN_T_1: "x y" }, "PERAGO_TASK_DOMAIN_T_1", /or NO_DOMAIN/],
    [{ PERAGO_TASK_DOMAIN: "d".repeat(256) }, "PERAGO_TASK_DOMAIN", /1 to 255/],
    [{ PERAGO_TASK_CONCURRENCY_T_1: "0" }, "PERAGO_TASK_CONCURRENCY_T_1", /PERAGO_TASK_PAUSED/],
    [{ PERAGO_TASK_CONCURRENCY_T_1: "2.5" }, "PERAGO_TASK_CONCURRENCY_T_1", /1 to 1000/],
    [{ PERAGO_TASK_CONCURRENCY_T_1: "1001" }, "PERAGO_TASK_CONCURRENCY_T_1", /\(got "1001"\)/],
    [{ PERAGO_TASK_PAUSED: "a, b/c" }, "PERAGO_TASK_PAUSED", /"b\/c" is not one/],
  ];
  for (const [env, variable, message] of cases) {
    assert.throws(() => parseTaskSettings(env, ["t-1"]), (error: unknown) => {
      assert.ok(error instanceof ConfigError, String(error));
      assert.equal(error.variable, variable);
      assert.ok(error.message.startsWith(variable), error.message);
      assert.ok(!error.message.includes("\n"), error.message);
      assert.match(error.message, message);
      return true;
    });
  }
});

Deno.test("loadTaskSettings reads .env and the environment; loadRuntimeConfig the global ones", async () => {
  const dir = await Deno.makeTempDir({ prefix: "perago-task-settings-" });
  try {
    await Deno.writeTextFile(
      join(dir, ".env"),
      "PERAGO_TASK_DOMAIN=from-dotenv\nPERAGO_TASK_CONCURRENCY_WORD_COUNT=2\n" +
        "PERAGO_TASK_PAUSED=other\nPERAGO_WORKSPACE_REF_STYLE=camel\n",
    );
    const env = { PERAGO_TASK_DOMAIN_WORD_COUNT: "from-env" };
    const [settings] = await loadTaskSettings(["word_count"], { cwd: dir, env });
    assert.equal(settings?.domain, "from-env");
    assert.equal(settings?.concurrency, 2);
    assert.equal(settings?.paused, false);
    const config = await loadRuntimeConfig("word_count.ts", { cwd: dir, env, probeRoots: false });
    assert.equal(config.taskDomain, "from-dotenv");
    assert.deepEqual(config.pausedTasks, ["other"]);
    assert.equal(config.workspaceRefStyle, "camel");
    await assert.rejects(
      loadRuntimeConfig("word_count.ts", {
        cwd: dir,
        env: { PERAGO_WORKSPACE_REF_STYLE: "kebab" },
        probeRoots: false,
      }),
      /^ConfigError: PERAGO_WORKSPACE_REF_STYLE must be either 'snake' \(ref_type\) or 'camel' \(refType\) \(got "kebab"\)$/,
    );
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
