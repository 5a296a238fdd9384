import assert from "node:assert/strict";
import { z } from "zod";
import { defineTask, type TaskOptions } from "../../src/task/define.ts";
import { TaskDefinitionError } from "../../src/task/errors.ts";
import { requireDir, requireFile } from "../../src/task/guardrails.ts";
import { isTaskDefinition } from "../../src/task/loader.ts";
import { TASK_BRAND, type TaskContext } from "../../src/task/types.ts";

function base(): TaskOptions<z.ZodObject<{ text: z.ZodString }>, z.ZodObject<{ n: z.ZodNumber }>> {
  return {
    name: "demo.task-1",
    ownerEmail: "owner@example.com",
    description: "a demo",
    params: z.object({ text: z.string() }),
    result: z.object({ n: z.number() }),
    run: ({ text }) => ({ n: text.length }),
  };
}

const ctx = {} as TaskContext;

Deno.test("defineTask returns a frozen, branded task with compiled defaults", async () => {
  const task = defineTask(base());
  assert.equal(task[TASK_BRAND], true);
  assert.ok(isTaskDefinition(task));
  assert.ok(Object.isFrozen(task));
  assert.equal(task.name, "demo.task-1");
  assert.equal(task.workspace, undefined);
  assert.equal(task.controls.retry.count, 3);
  assert.equal(task.controls.timeout.responseSeconds, 600);
  const params = task.params.parse({ text: "abc" });
  assert.deepEqual(await task.run(params, ctx), { n: 3 });
});

Deno.test("defineTask makes params strict: unknown keys are rejected", () => {
  const task = defineTask(base());
  assert.deepEqual(task.params.parse({ text: "x" }), { text: "x" });
  const parsed = task.params.safeParse({ text: "x", extra: 1 });
  assert.equal(parsed.success, false);
  assert.match(JSON.stringify(parsed.error?.issues), /unrecognized_keys/);
  // Also when the author passed a loose object.
  const loose = defineTask({ ...base(), params: z.looseObject({ text: z.string() }) });
  assert.equal(loose.params.safeParse({ text: "x", extra: 1 }).success, false);
});

Deno.test("defineTask compiles the workspace spec", () => {
  const task = defineTask({
    ...base(),
    workspace: { prefix: "/docs//", pre: [requireDir("docs")], post: [requireFile("docs/m.json")] },
  });
  assert.deepEqual(task.workspace, {
    prefix: "docs/",
    readOnly: false,
    pre: [{ kind: "requireDir", path: "docs" }],
    post: [{ kind: "requireFile", path: "docs/m.json" }],
  });
  assert.ok(Object.isFrozen(task.workspace) && Object.isFrozen(task.workspace.pre));
  const root = defineTask({ ...base(), workspace: { readOnly: true } });
  assert.deepEqual(root.workspace, { prefix: "", readOnly: true, pre: [], post: [] });
});

Deno.test("defineTask passes controls through compileControls", () => {
  const task = defineTask({ ...base(), controls: { retry: { count: 0 } } });
  assert.equal(task.controls.retry.count, 0);
  assert.throws(
    () => defineTask({ ...base(), controls: { retry: { count: 99 } } }),
    /invalid task "demo.task-1": controls.retry.count: must be an integer from 0 to 10, got 99/,
  );
});

const BUDGET = {
  observedMergeP99Seconds: 20,
  safetyMarginSeconds: 10,
  lakefsMergeTimeoutSeconds: 45,
  conductorCompletionTimeoutSeconds: 15,
  workerShutdownGraceSeconds: 30,
  heartbeatIntervalSeconds: 10,
};

Deno.test("defineTask compiles worker options (unset = the runtime's defaults)", () => {
  assert.deepEqual(defineTask(base()).worker, {
    concurrency: undefined,
    pollIntervalMs: undefined,
    batchSize: undefined,
  });
  const task = defineTask({
    ...base(),
    worker: { concurrency: 1, pollIntervalMs: 250, batchSize: 5 },
  });
  assert.deepEqual(task.worker, { concurrency: 1, pollIntervalMs: 250, batchSize: 5 });
  assert.ok(Object.isFrozen(task.worker));
});

Deno.test("defineTask compiles a publish budget and the response timeout it implies", () => {
  const task = defineTask({ ...base(), workspace: {}, controls: { publishBudget: BUDGET } });
  assert.deepEqual(task.controls.publishBudget, { ...BUDGET, responseTimeoutSeconds: 100 });
  assert.equal(task.controls.timeout.responseSeconds, 600, "the budget changes no timeout");
});

const BAD: [string, Record<string, unknown>, string, RegExp][] = [
  ["missing name", { name: undefined }, "name", /invalid task definition: name: must be/],
  ["empty name", { name: "" }, "name", /got ""/],
  ["name with space", { name: "my task" }, "name", /got "my task"/],
  ["name with slash", { name: "a/b" }, "name", /A-Z, a-z, 0-9/],
  ["name too long", { name: "x".repeat(256) }, "name", /1\.\.255 characters/],
  ["missing ownerEmail", { ownerEmail: undefined }, "ownerEmail", /must be an email address/],
  ["bad ownerEmail", { ownerEmail: "owner" }, "ownerEmail", /got "owner"/],
  ["ownerEmail without domain dot", { ownerEmail: "a@b" }, "ownerEmail", /email/],
  ["ownerEmail with space", { ownerEmail: "a b@c.com" }, "ownerEmail", /email/],
  ["description not a string", { description: 5 }, "description", /must be a string, got 5/],
  ["params not zod", { params: { text: "string" } }, "params", /zod object schema/],
  ["params not an object schema", { params: z.string() }, "params", /zod object schema/],
  ["result not zod", { result: {} }, "result", /must be a zod schema/],
  ["run not a function", { run: "go" }, "run", /must be a function/],
  ["unknown field", { retries: 3 }, "retries", /unknown field/],
  ["params unrepresentable", { params: z.object({ d: z.date() }) }, "params", /Date/],
  [
    "result with a transform",
    { result: z.object({ n: z.string().transform((s) => s.length) }) },
    "result",
    /Transforms cannot be represented/,
  ],
  ["workspace not an object", { workspace: "docs" }, "workspace", /must be an object/],
  ["workspace unknown key", { workspace: { prefx: "a" } }, "workspace.prefx", /unknown field/],
  ["prefix with ..", { workspace: { prefix: "../x" } }, "workspace.prefix", /"\.\." segment/],
  ["prefix not a string", { workspace: { prefix: 3 } }, "workspace.prefix", /expected a string/],
  [
    "readOnly not boolean",
    { workspace: { readOnly: "yes" } },
    "workspace.readOnly",
    /true or false/,
  ],
  ["pre not an array", { workspace: { pre: requireDir("a") } }, "workspace.pre", /array/],
  [
    "post entry not a guardrail",
    { workspace: { post: [{ kind: "requireFile", path: "../etc" }] } },
    "workspace.post[0]",
    /not a guardrail/,
  ],
  ["worker not an object", { worker: 2 }, "worker", /must be an object/],
  ["worker unknown key", { worker: { threads: 2 } }, "worker.threads", /unknown key/],
  [
    "worker.concurrency 0",
    { worker: { concurrency: 0 } },
    "worker.concurrency",
    /1 to 1000, got 0/,
  ],
  [
    "worker.concurrency not an integer",
    { worker: { concurrency: 1.5 } },
    "worker.concurrency",
    /integer from 1 to 1000, got 1\.5/,
  ],
  [
    "worker.pollIntervalMs too short",
    { worker: { pollIntervalMs: 10 } },
    "worker.pollIntervalMs",
    /50 to 300000, got 10/,
  ],
  [
    "worker.pollIntervalMs too long",
    { worker: { pollIntervalMs: 3_600_000 } },
    "worker.pollIntervalMs",
    /50 to 300000/,
  ],
  ["worker.batchSize 0", { worker: { batchSize: 0 } }, "worker.batchSize", /1 to 100, got 0/],
  [
    "worker.batchSize a string",
    { worker: { batchSize: "10" } },
    "worker.batchSize",
    /got "10"/,
  ],
  [
    "publishBudget on a workspace-free task",
    { controls: { publishBudget: BUDGET } },
    "controls.publishBudget",
    /workspace-free task publishes nothing/,
  ],
  [
    "publishBudget missing a field",
    {
      workspace: {},
      controls: { publishBudget: { ...BUDGET, heartbeatIntervalSeconds: undefined } },
    },
    "controls.publishBudget.heartbeatIntervalSeconds",
    /is required/,
  ],
  [
    "publishBudget merge timeout below p99 + margin",
    { workspace: {}, controls: { publishBudget: { ...BUDGET, lakefsMergeTimeoutSeconds: 29 } } },
    "controls.publishBudget.lakefsMergeTimeoutSeconds",
    /29 does not cover observedMergeP99Seconds \+ safetyMarginSeconds \(30\)/,
  ],
  [
    "publishBudget zero grace",
    { workspace: {}, controls: { publishBudget: { ...BUDGET, workerShutdownGraceSeconds: 0 } } },
    "controls.publishBudget.workerShutdownGraceSeconds",
    /from 1 to/,
  ],
  [
    "publishBudget unknown key",
    { workspace: {}, controls: { publishBudget: { ...BUDGET, mergeSeconds: 3 } } },
    "controls.publishBudget.mergeSeconds",
    /unknown key/,
  ],
];

for (const [label, patch, field, message] of BAD) {
  Deno.test(`defineTask rejects ${label}`, () => {
    const options = { ...base(), ...patch } as unknown as Parameters<typeof defineTask>[0];
    assert.throws(() => defineTask(options), (error: Error) => {
      assert.ok(error instanceof TaskDefinitionError, String(error));
      assert.equal(error.name, "TaskDefinitionError");
      assert.equal(error.field, field);
      assert.ok(error.message.includes(`${field}: `), error.message);
      assert.match(error.message, message);
      assert.match(error.message, /fix the defineTask call$/);
      if (field !== "name") assert.match(error.message, /^invalid task "demo.task-1": /);
      return true;
    });
  });
}

Deno.test("defineTask rejects a non-object argument", () => {
  assert.throws(() => defineTask(undefined as never), TaskDefinitionError);
});

Deno.test("recursive schemas are rejected at definition time", () => {
  const Node = z.object({
    name: z.string(),
    get children() {
      return z.array(Node);
    },
  });
  assert.throws(
    () => defineTask({ ...base(), result: Node } as never),
    (error: Error) => error instanceof TaskDefinitionError && /recursive/.test(error.message),
  );
});
