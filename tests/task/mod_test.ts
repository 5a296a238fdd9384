import assert from "node:assert/strict";
import * as perago from "../../mod.ts";
import { z as zod } from "zod";
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

Deno.test("TaskTerminalError keeps its name, message and cause", () => {
  const cause = new Error("root");
  const error = new perago.TaskTerminalError("word_count: too long; split it", { cause });
  assert.ok(error instanceof Error);
  assert.equal(error.name, "TaskTerminalError");
  assert.equal(error.message, "word_count: too long; split it");
  assert.equal(error.cause, cause);
  assert.equal(error.terminal, true);
});
