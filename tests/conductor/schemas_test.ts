import assert from "node:assert/strict";
import { assertQuickAgrees, assertQuickAnswers } from "../_quick_agreement.ts";
import {
  quickTask,
  quickTaskList,
  taskListSchema,
  taskSchema,
} from "../../src/conductor/_schemas.ts";
import { checkWith } from "../../src/util/quick_check.ts";

const TASK = {
  taskId: "t1",
  workflowInstanceId: "wf1",
  status: "IN_PROGRESS",
  taskType: "sum",
};

const VALID: Record<string, unknown>[] = [
  TASK,
  {
    ...TASK,
    taskDefName: "sum_def",
    referenceTaskName: "sum_ref",
    inputData: { params: { a: 1 } },
    outputData: null,
    retryCount: 2,
    seq: 4,
    responseTimeoutSeconds: 600.5,
    workflowTask: { name: "sum", inputParameters: {} }, // kept, as the loose schema keeps it
    pollCount: 1,
  },
  { ...TASK, status: "SCHEDULED", inputData: null, outputData: { x: [1] }, taskType: "" },
];

const INVALID: unknown[] = [
  null,
  [],
  "task",
  { ...TASK, taskId: "" },
  { ...TASK, taskId: 1 },
  { ...TASK, workflowInstanceId: "" },
  { ...TASK, status: "RUNNING" },
  { ...TASK, taskType: undefined },
  { ...TASK, taskDefName: null },
  { ...TASK, referenceTaskName: null },
  { ...TASK, inputData: [] },
  { ...TASK, outputData: "x" },
  { ...TASK, retryCount: 1.5 },
  { ...TASK, retryCount: "1" },
  { ...TASK, seq: null },
  { ...TASK, responseTimeoutSeconds: Infinity },
  { ...TASK, responseTimeoutSeconds: "600" },
];

Deno.test("quickTask agrees with taskSchema (same answers, same defaults) and takes the valid tasks", () => {
  assertQuickAnswers(taskSchema, quickTask, VALID, INVALID);
  assert.equal(quickTask(VALID[0])?.taskDefName, "sum", "taskDefName defaults to taskType");
});

Deno.test("quickTaskList agrees with taskListSchema; one bad task leaves the list to the schema", () => {
  for (const value of [[], VALID, [TASK, { ...TASK, status: "?" }], {}, null]) {
    const schema = taskListSchema.safeParse(value);
    const checked = checkWith(taskListSchema, value);
    assert.equal(checked.success, schema.success, JSON.stringify(value));
    if (schema.success) assert.deepEqual(checked.success && checked.data, schema.data);
  }
  assert.equal(quickTaskList([TASK, { ...TASK, status: "?" }]), undefined);
  assert.equal(quickTaskList(VALID)?.length, 3);
});

Deno.test("quickTask agrees with taskSchema on every one-field change of a full Task", () => {
  const taken = assertQuickAgrees(taskSchema, [VALID[1] as Record<string, unknown>], quickTask);
  assert.ok(taken > 10, `the quick check took ${taken} values itself`);
});
