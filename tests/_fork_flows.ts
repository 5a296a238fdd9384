/**
 * The fork workflows the demo Conductor's tests (`tests/devstack/conductor_fork_test.ts`) and
 * the real server's contract (`tests/contract/conductor_contract_test.ts`) both run, so the two
 * check the demo against the same definitions and expected shapes: task defs built by
 * {@linkcode simple} and {@linkcode forkAndJoin}, tasks compared through {@linkcode briefTask}.
 *
 * ```ts
 * import assert from "node:assert/strict";
 *
 * const tasks = staticForkTasks("t");
 * assert.deepEqual(tasks.map((task) => task.taskReferenceName), ["fork", "join", "after"]);
 * // Registered with outputParameters STATIC_FORK_OUTPUT and started with { x: "X" }, the
 * // workflow's tasks then read:
 * assert.deepEqual(staticForkStarted("t").map((task) => task.ref), ["fork", "a1", "b1", "join"]);
 * assert.deepEqual(briefTask({ seq: 1, taskType: "FORK", referenceTaskName: "fork" }), {
 *   seq: 1,
 *   taskType: "FORK",
 *   ref: "fork",
 *   status: undefined,
 * });
 * ```
 *
 * @module
 */
import type { WorkflowTaskDef } from "../src/conductor/api.ts";

/** A SIMPLE task of type `name` with reference `ref`. */
export function simple(
  name: string,
  ref: string,
  inputParameters: Record<string, unknown> = {},
): WorkflowTaskDef {
  return { name, taskReferenceName: ref, type: "SIMPLE", inputParameters };
}

/**
 * A FORK_JOIN `fork` of `branches` (each run in sequence) and the JOIN `join` on `joinOn`;
 * `forkInput` is the FORK's inputParameters when given.
 */
export function forkAndJoin(
  branches: WorkflowTaskDef[][],
  joinOn: string[],
  forkInput?: Record<string, unknown>,
): WorkflowTaskDef[] {
  return [
    {
      name: "fork",
      taskReferenceName: "fork",
      type: "FORK_JOIN",
      ...(forkInput === undefined ? {} : { inputParameters: forkInput }),
      forkTasks: branches,
    },
    { name: "join", taskReferenceName: "join", type: "JOIN", joinOn },
  ];
}

/** What the fork tests compare of a workflow's task. */
export function briefTask(
  task: { seq?: unknown; taskType?: unknown; referenceTaskName?: unknown; status?: unknown },
): { seq: unknown; taskType: unknown; ref: unknown; status: unknown } {
  return {
    seq: task.seq,
    taskType: task.taskType,
    ref: task.referenceTaskName,
    status: task.status,
  };
}

/**
 * The static fork: branch a (a1, then a2 reading a1's output `v`) beside branch b (b1), a JOIN
 * on a2 and b1, then `after` reading the JOIN's and the FORK's output and input. Started with
 * input `{ x: "X" }`.
 */
export function staticForkTasks(type: string): WorkflowTaskDef[] {
  return [
    ...forkAndJoin(
      [
        [
          simple(type, "a1", { x: "${workflow.input.x}" }),
          simple(type, "a2", { prev: "${a1.output.v}" }),
        ],
        [simple(type, "b1", { y: 2 })],
      ],
      ["a2", "b1"],
      { fx: "${workflow.input.x}" },
    ),
    simple(type, "after", {
      j: "${join.output}",
      ja: "${join.output.a2.v}",
      f: "${fork.output}",
      fi: "${fork.input}",
    }),
  ];
}

/** The static fork's workflow output parameters. */
export const STATIC_FORK_OUTPUT: Record<string, unknown> = { j: "${join.output}" };

/**
 * The static fork's tasks right after start, as {@linkcode briefTask} shows them: the FORK
 * (done at once), each branch's first task, the JOIN (in progress).
 */
export function staticForkStarted(type: string): ReturnType<typeof briefTask>[] {
  return [
    { seq: 1, taskType: "FORK", ref: "fork", status: "COMPLETED" },
    { seq: 2, taskType: type, ref: "a1", status: "SCHEDULED" },
    { seq: 3, taskType: type, ref: "b1", status: "SCHEDULED" },
    { seq: 4, taskType: "JOIN", ref: "join", status: "IN_PROGRESS" },
  ];
}

/**
 * The static fork's JOIN output once a1, b1 and a2 completed with `{ v: "out-<ref>" }`, and
 * `after`'s input then.
 */
export const STATIC_FORK_JOINED = { a2: { v: "out-a2" }, b1: { v: "out-b1" } };

/** `after`'s input in the static fork once the JOIN completed. */
export const STATIC_FORK_AFTER_INPUT = {
  j: STATIC_FORK_JOINED,
  ja: "out-a2",
  f: {},
  fi: { fx: "X" },
};

/**
 * A FORK_JOIN_DYNAMIC `ref` forking the task defs in `${workflow.input.<tasks>}`, each with its
 * input by reference name from `${workflow.input.<inputs>}` (`extraInput` beside them), and
 * its JOIN `joinRef` (no joinOn: it waits on every forked task).
 */
export function dynamicForkAndJoin(
  ref: string,
  joinRef: string,
  keys: { tasks: string; inputs: string } = { tasks: "tasks", inputs: "inputs" },
  extraInput: Record<string, unknown> = {},
): WorkflowTaskDef[] {
  return [
    {
      name: ref,
      taskReferenceName: ref,
      type: "FORK_JOIN_DYNAMIC",
      inputParameters: {
        [keys.tasks]: "${workflow.input." + keys.tasks + "}",
        [keys.inputs]: "${workflow.input." + keys.inputs + "}",
        ...extraInput,
      },
      dynamicForkTasksParam: keys.tasks,
      dynamicForkTasksInputParamName: keys.inputs,
    },
    { name: joinRef, taskReferenceName: joinRef, type: "JOIN" },
  ];
}
