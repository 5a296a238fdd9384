/**
 * zod schemas of the Conductor answers the client reads. Objects are loose (unknown fields
 * are kept); only the fields perago relies on are required.
 *
 * @module
 */
import { z } from "../vendor/zod.ts";
import type { Task, TaskDef, Workflow } from "./api.ts";
import { isFiniteNumber, isPlainObject, setQuickCheck } from "../util/quick_check.ts";

const TASK_STATUSES = [
  "IN_PROGRESS",
  "CANCELED",
  "FAILED",
  "FAILED_WITH_TERMINAL_ERROR",
  "COMPLETED",
  "COMPLETED_WITH_ERRORS",
  "SCHEDULED",
  "TIMED_OUT",
  "SKIPPED",
] as const;

const WORKFLOW_STATUSES = [
  "RUNNING",
  "COMPLETED",
  "FAILED",
  "TIMED_OUT",
  "TERMINATED",
  "PAUSED",
] as const;

const record = z.record(z.string(), z.unknown());

/** A Task; missing optional numbers default the way Conductor's Java model does. */
export const taskSchema: z.ZodType<Task> = z.looseObject({
  taskId: z.string().min(1),
  workflowInstanceId: z.string().min(1),
  status: z.enum(TASK_STATUSES),
  taskType: z.string(),
  taskDefName: z.string().optional(),
  referenceTaskName: z.string().default(""),
  inputData: record.nullish().transform((v) => v ?? {}),
  outputData: record.nullish().transform((v) => v ?? {}),
  retryCount: z.number().int().default(0),
  seq: z.number().int().default(0),
  responseTimeoutSeconds: z.number().default(0),
}).transform((t) => ({ ...t, taskDefName: t.taskDefName ?? t.taskType })) as unknown as z.ZodType<
  Task
>;

/** A TaskDef as the server echoes it. */
export const taskDefSchema: z.ZodType<TaskDef> = z.looseObject({
  name: z.string().min(1),
}) as unknown as z.ZodType<TaskDef>;

/** A workflow execution. */
export const workflowSchema: z.ZodType<Workflow> = z.looseObject({
  workflowId: z.string().min(1),
  status: z.enum(WORKFLOW_STATUSES),
  tasks: z.array(taskSchema).default([]),
}) as unknown as z.ZodType<Workflow>;

/** A batch poll answer. */
export const taskListSchema: z.ZodType<Task[]> = z.array(taskSchema);

const TASK_STATUS_SET: ReadonlySet<unknown> = new Set(TASK_STATUSES);

/**
 * {@linkcode taskSchema}'s rules by hand (a Task is read for every task a worker runs, and
 * zod's copy of its every field was a visible part of a broker's CPU per trivial task): the
 * Task with the same defaults, or `undefined` for anything the schema must judge.
 */
export function quickTask(value: unknown): Task | undefined {
  if (!isPlainObject(value)) return undefined;
  const { taskId, workflowInstanceId, taskType, taskDefName, referenceTaskName } = value;
  if (
    typeof taskId !== "string" || taskId === "" || typeof workflowInstanceId !== "string" ||
    workflowInstanceId === "" || typeof taskType !== "string" ||
    !TASK_STATUS_SET.has(value.status) ||
    (taskDefName !== undefined && typeof taskDefName !== "string") ||
    (referenceTaskName !== undefined && typeof referenceTaskName !== "string")
  ) return undefined;
  const { inputData, outputData, retryCount, seq, responseTimeoutSeconds } = value;
  for (const data of [inputData, outputData]) {
    if (data !== undefined && data !== null && !isPlainObject(data)) return undefined;
  }
  for (const n of [retryCount, seq]) {
    if (n !== undefined && !Number.isSafeInteger(n)) return undefined;
  }
  if (responseTimeoutSeconds !== undefined && !isFiniteNumber(responseTimeoutSeconds)) {
    return undefined;
  }
  return {
    ...value,
    referenceTaskName: referenceTaskName ?? "",
    inputData: inputData ?? {},
    outputData: outputData ?? {},
    retryCount: retryCount ?? 0,
    seq: seq ?? 0,
    responseTimeoutSeconds: responseTimeoutSeconds ?? 0,
    taskDefName: taskDefName ?? taskType,
  } as Task;
}

/** {@linkcode taskListSchema}'s rules by hand (see {@linkcode quickTask}). */
export function quickTaskList(value: unknown): Task[] | undefined {
  if (!Array.isArray(value)) return undefined;
  const tasks: Task[] = [];
  for (const item of value) {
    const task = quickTask(item);
    if (task === undefined) return undefined;
    tasks.push(task);
  }
  return tasks;
}

setQuickCheck(taskSchema, quickTask);
setQuickCheck(taskListSchema, quickTaskList);

/** `POST /api/token` answer. */
export const tokenSchema: z.ZodType<{ token: string }> = z.looseObject({
  token: z.string().min(1),
});
