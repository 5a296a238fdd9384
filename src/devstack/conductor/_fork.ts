/**
 * The pieces of Conductor's FORK_JOIN, FORK_JOIN_DYNAMIC and JOIN that need no engine state:
 * reading a dynamic fork's task list and inputs, and what a JOIN decides from the tasks it
 * waits on. Messages are the ones Conductor OSS 3.21 fails a workflow with.
 *
 * @module
 */
import { isObject, type Json } from "./_common.ts";

/** Statuses after which a task never changes. */
export const TERMINAL_TASK: ReadonlySet<string> = new Set([
  "CANCELED",
  "FAILED",
  "FAILED_WITH_TERMINAL_ERROR",
  "COMPLETED",
  "COMPLETED_WITH_ERRORS",
  "TIMED_OUT",
  "SKIPPED",
]);

/** Terminal statuses a workflow (or a JOIN) moves on from. */
export const SUCCESSFUL_TASK: ReadonlySet<string> = new Set([
  "COMPLETED",
  "COMPLETED_WITH_ERRORS",
  "SKIPPED",
]);

/**
 * A definition problem found while the workflow runs: Conductor fails the workflow with this
 * reason (a TerminateWorkflowException there), scheduling nothing of the task that caused it.
 */
export class WorkflowDefinitionFailure extends Error {
  override name = "WorkflowDefinitionFailure";
}

/** A value as Java's `toString` prints it (maps `{k=v}`, lists `[a, b]`), for messages. */
export function javaString(value: unknown): string {
  if (value === null || value === undefined) return "null";
  if (Array.isArray(value)) return `[${value.map(javaString).join(", ")}]`;
  if (isObject(value)) {
    return `{${Object.entries(value).map(([k, v]) => `${k}=${javaString(v)}`).join(", ")}}`;
  }
  return String(value);
}

/** What a FORK_JOIN_DYNAMIC forks: its workflow tasks and each one's input by reference. */
export interface DynamicFork {
  tasks: Json[];
  inputs: Record<string, Json>;
}

/**
 * Reads a dynamic fork from the fork task's resolved input: the list under
 * `dynamicForkTasksParam` (WorkflowTasks, `type` defaulting to SIMPLE, each with a
 * taskReferenceName) and the map under `dynamicForkTasksInputParamName` (reference name ->
 * input merged over that task's own inputParameters).
 *
 * @throws {WorkflowDefinitionFailure} when either is not what Conductor accepts.
 */
export function readDynamicFork(forkTask: Json, input: Json): DynamicFork {
  const tasksParam = forkTask.dynamicForkTasksParam as string;
  const listed = input[tasksParam];
  const invalid = () =>
    new WorkflowDefinitionFailure(
      `Input '${tasksParam}' is invalid. Cannot deserialize a list of Workflow Tasks from '${
        javaString(listed)
      }'`,
    );
  if (!Array.isArray(listed)) throw invalid();
  const tasks = listed.map((task) => {
    if (!isObject(task) || typeof task.taskReferenceName !== "string") throw invalid();
    const type = task.type ?? "SIMPLE";
    if (type !== "SIMPLE" || typeof task.name !== "string" || task.name === "") {
      throw new WorkflowDefinitionFailure(
        `the demo Conductor forks named SIMPLE tasks only, got ${javaString(task)}`,
      );
    }
    if (task.inputParameters !== undefined && !isObject(task.inputParameters)) throw invalid();
    return { ...structuredClone(task), type, inputParameters: task.inputParameters ?? {} };
  });
  const inputs = input[forkTask.dynamicForkTasksInputParamName as string];
  if (!isObject(inputs)) {
    throw new WorkflowDefinitionFailure(
      `Input to the dynamically forked tasks is not a map -> expecting a map of K,V  but found ${
        javaString(inputs)
      }`,
    );
  }
  const byRef: Record<string, Json> = {};
  for (const [ref, value] of Object.entries(inputs)) {
    if (isObject(value)) byRef[ref] = value;
  }
  return { tasks, inputs: byRef };
}

/** What a JOIN makes of the tasks it waits on. */
export interface JoinOutcome {
  /** COMPLETED, FAILED, or undefined while it still waits. */
  status: "COMPLETED" | "FAILED" | undefined;
  /** Reference name -> that task's output, for each task with a non-empty output. */
  output: Json;
  reason?: string;
}

/**
 * Evaluates a JOIN: it completes when every `joinOn` task exists and is terminal, fails as soon
 * as one of them ended unsuccessfully, and its output maps each reference name to that task's
 * outputData (tasks with an empty output are left out, as Conductor does).
 */
export function evaluateJoin(joinOn: string[], latest: ReadonlyMap<string, Json>): JoinOutcome {
  const output: Json = {};
  const allTerminal = joinOn.every((ref) => {
    const task = latest.get(ref);
    return task !== undefined && TERMINAL_TASK.has(task.status as string);
  });
  for (const ref of joinOn) {
    const task = latest.get(ref);
    if (!task) continue;
    const taskOutput = (task.outputData as Json | undefined) ?? {};
    if (Object.keys(taskOutput).length > 0) output[ref] = structuredClone(taskOutput);
    const status = task.status as string;
    if (TERMINAL_TASK.has(status) && !SUCCESSFUL_TASK.has(status)) {
      const reason = joinOn.map((r) => latest.get(r))
        .filter((t): t is Json =>
          t !== undefined && TERMINAL_TASK.has(t.status as string) &&
          !SUCCESSFUL_TASK.has(t.status as string)
        )
        .map((t) => String(t.reasonForIncompletion ?? null))
        .join(" ");
      return { status: "FAILED", output, reason };
    }
  }
  return { status: allTerminal ? "COMPLETED" : undefined, output };
}
