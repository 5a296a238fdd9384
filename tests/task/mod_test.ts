import assert from "node:assert/strict";
import * as perago from "../../mod.ts";
import { z as zod } from "../../src/vendor/zod.ts";
import { z as npmZod } from "zod";
import { defineTask } from "../../src/task/define.ts";
import { TaskTerminalError } from "../../src/task/errors.ts";
import { forbidGlob, requireDir, requireFile, requireGlob } from "../../src/task/guardrails.ts";

Deno.test("mod.ts exports exactly the task author API", () => {
  assert.deepEqual(Object.keys(perago).sort(), [
    "TaskTerminalError",
    "defineTask",
    "forbidGlob",
    "requireDir",
    "requireFile",
    "requireGlob",
    "z",
  ]);
  assert.equal(perago.z, zod);
  assert.equal(perago.defineTask, defineTask);
  assert.equal(perago.TaskTerminalError, TaskTerminalError);
  assert.equal(perago.requireFile, requireFile);
  assert.equal(perago.requireDir, requireDir);
  assert.equal(perago.requireGlob, requireGlob);
  assert.equal(perago.forbidGlob, forbidGlob);
});

Deno.test("a task whose author imports zod from npm works with perago's bundled zod", () => {
  // perago's z is zod bundled into a local module (scripts/vendor.ts); a task module may
  // import npm:zod itself: its schemas must pass defineTask's checks and convert to JSON Schema.
  assert.notEqual(perago.z, npmZod);
  const task = perago.defineTask({
    name: "npm_zod_task",
    ownerEmail: "a@example.com",
    description: "schemas from npm zod",
    params: npmZod.object({ n: npmZod.number().int().describe("a number") }),
    result: perago.z.object({ n: perago.z.number().int() }),
    run: ({ n }) => ({ n }),
  });
  assert.deepEqual(task.params.parse({ n: 2 }), { n: 2 });
  assert.ok(npmZod.object({}) instanceof perago.z.ZodObject);
  assert.ok(perago.z.object({}) instanceof npmZod.ZodType);
  const schema = JSON.stringify(perago.z.toJSONSchema(task.params));
  assert.match(schema, /"n":\{[^}]*"description":"a number"/);
});

Deno.test("TaskTerminalError keeps its name, message and cause", () => {
  const cause = new Error("root");
  const error = new perago.TaskTerminalError("word_count: too long; split it", { cause });
  assert.ok(error instanceof Error);
  assert.equal(error.name, "TaskTerminalError");
  assert.equal(error.message, "word_count: too long; split it");
  assert.equal(error.cause, cause);
  assert.equal(error.terminal, true);
});
