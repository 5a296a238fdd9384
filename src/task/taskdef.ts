/**
 * `extract`: the Conductor TaskDef of a task, as a plain object with a fixed key order and as
 * deterministic JSON text.
 *
 * @module
 */
import { type JsonSchema, toInlineJsonSchema } from "./json_schema.ts";
import type { TaskDefinition } from "./types.ts";

/** A Conductor `inputSchema` / `outputSchema` entry. */
export type TaskDefSchema = {
  name: string;
  version: 1;
  type: "JSON";
  data: JsonSchema;
};

/**
 * The TaskDef perago writes, keys in this order. A type alias (not an interface) so it is
 * assignable to the Conductor client's `TaskDef`.
 */
export type ExtractedTaskDef = {
  name: string;
  ownerEmail: string;
  description: string;
  retryCount: number;
  retryLogic: string;
  retryDelaySeconds: number;
  maxRetryDelaySeconds: number;
  backoffJitterMs: number;
  totalTimeoutSeconds: number;
  timeoutPolicy: string;
  timeoutSeconds: number;
  responseTimeoutSeconds: number;
  pollTimeoutSeconds: number;
  concurrentExecLimit: number;
  rateLimitPerFrequency: number;
  rateLimitFrequencyInSeconds: number;
  inputKeys: string[];
  outputKeys: string[];
  inputSchema: TaskDefSchema;
  outputSchema: TaskDefSchema;
};

/** The two spellings of the workspace reference's type key. */
export const WORKSPACE_REF_TYPE_KEYS = ["ref_type", "refType"] as const;

/** How published workspace references spell their type key (`PERAGO_WORKSPACE_REF_STYLE`). */
export type RefTypeStyle = "snake" | "camel";

/**
 * The JSON Schema of the `workspace` object of a task input or output: the lakeFS
 * repository, the branch, and the commit, with the reference type (always `"commit"`).
 *
 * - The input takes the type under exactly one of two keys, `ref_type` (this project's
 *   contract) or `refType` (perago for Python): both are listed in `properties`, and a
 *   `oneOf` of the two `required` forms refuses an object with both or neither. It also takes
 *   an optional `prefix` that narrows the attempt's scope below the task's prefix.
 * - The output is a closed object with the one spelling the workers emit: `ref_type`, or
 *   `refType` when `refStyle` is `"camel"`.
 */
export function workspaceJsonSchema(
  direction: "input" | "output" = "output",
  refStyle: RefTypeStyle = "snake",
): JsonSchema {
  const common = {
    repository: { type: "string", minLength: 1 },
    branch: { type: "string", minLength: 1 },
  };
  const ref = { type: "string", minLength: 1 };
  if (direction === "output") {
    const key = refStyle === "camel" ? "refType" : "ref_type";
    return {
      type: "object",
      properties: { ...common, [key]: { const: "commit" }, ref },
      required: ["repository", "branch", key, "ref"],
      additionalProperties: false,
    };
  }
  return {
    type: "object",
    properties: {
      ...common,
      ref_type: { const: "commit" },
      refType: { const: "commit" },
      ref,
      prefix: { type: "string" },
    },
    required: ["repository", "branch", "ref"],
    oneOf: WORKSPACE_REF_TYPE_KEYS.map((key) => ({ required: [key] })),
    additionalProperties: false,
  };
}

/**
 * What `perago extract` (and `check`) warn about in a task's TaskDef, one line each, without
 * changing it:
 * - a publish budget whose implied response timeout exceeds `timeout.responseSeconds` (the
 *   TaskDef keeps `timeout.responseSeconds`: Conductor may time a slow publication out);
 * - a publish budget on a read-only task (it never publishes: the budget is ignored).
 *
 * @example
 * ```ts
 * import { z } from "../vendor/zod.ts";
 * import { defineTask } from "./define.ts";
 *
 * const task = defineTask({
 *   name: "noop", ownerEmail: "team@example.com", description: "does nothing",
 *   params: z.object({}), result: z.object({}), run: () => ({}),
 * });
 * for (const line of taskDefWarnings(task)) console.error(`warning: ${line}`);
 * ```
 */
export function taskDefWarnings(task: TaskDefinition): string[] {
  const budget = task.controls.publishBudget;
  if (budget === undefined || task.workspace === undefined) return [];
  if (task.workspace.readOnly) {
    return [
      `task ${task.name}: controls.publishBudget is ignored: a read-only workspace task ` +
      "never publishes; remove it or make the task writable",
    ];
  }
  const response = task.controls.timeout.responseSeconds;
  if (response >= budget.responseTimeoutSeconds) return [];
  return [
    `task ${task.name}: controls.timeout.responseSeconds (${response}) is shorter than the ` +
    `publish budget it implies (${budget.responseTimeoutSeconds} s = lakefsMergeTimeoutSeconds ` +
    `${budget.lakefsMergeTimeoutSeconds} + conductorCompletionTimeoutSeconds ` +
    `${budget.conductorCompletionTimeoutSeconds} + workerShutdownGraceSeconds ` +
    `${budget.workerShutdownGraceSeconds} + heartbeatIntervalSeconds ` +
    `${budget.heartbeatIntervalSeconds}); responseTimeoutSeconds stays ${response}: raise ` +
    `timeout.responseSeconds to at least ${budget.responseTimeoutSeconds} or lower the budget`,
  ];
}

/**
 * Builds the Conductor TaskDef of `task`. Unset limits take Conductor's own defaults
 * (`concurrentExecLimit` 0 = none, `rateLimitPerFrequency` 0 = none,
 * `rateLimitFrequencyInSeconds` 1), so the document is complete and registering it twice
 * is idempotent.
 *
 * @example
 * ```ts
 * import { z } from "../vendor/zod.ts";
 * import { defineTask } from "./define.ts";
 *
 * const task = defineTask({
 *   name: "tidy", ownerEmail: "team@example.com", description: "tidies docs/",
 *   params: z.object({}), result: z.object({}), workspace: { prefix: "docs/" }, run: () => ({}),
 * });
 * buildTaskDef(task).inputKeys; // ["workspace", "params"]
 * ```
 */
export function buildTaskDef(
  task: TaskDefinition,
  options: { refStyle?: RefTypeStyle } = {},
): ExtractedTaskDef {
  const { retry, timeout, limits } = task.controls;
  const hasWorkspace = task.workspace !== undefined;
  const inputKeys = hasWorkspace ? ["workspace", "params"] : ["params"];
  const outputKeys = hasWorkspace ? ["workspace", "result"] : ["result"];
  const params = toInlineJsonSchema(task.params, "input");
  const result = toInlineJsonSchema(task.result, "output");
  const envelope = (
    keys: string[],
    payload: JsonSchema,
    direction: "input" | "output",
  ): JsonSchema => {
    const properties: JsonSchema = {};
    for (const key of keys) {
      properties[key] = key === "workspace"
        ? workspaceJsonSchema(direction, options.refStyle ?? "snake")
        : payload;
    }
    return { type: "object", properties, required: [...keys], additionalProperties: false };
  };
  return {
    name: task.name,
    ownerEmail: task.ownerEmail,
    description: task.description,
    retryCount: retry.count,
    retryLogic: retry.logic,
    retryDelaySeconds: retry.delaySeconds,
    maxRetryDelaySeconds: retry.maxDelaySeconds,
    backoffJitterMs: retry.jitterMs,
    totalTimeoutSeconds: timeout.totalSeconds,
    timeoutPolicy: timeout.policy,
    timeoutSeconds: timeout.seconds,
    responseTimeoutSeconds: timeout.responseSeconds,
    pollTimeoutSeconds: timeout.pollSeconds,
    concurrentExecLimit: limits.concurrentExecLimit ?? 0,
    rateLimitPerFrequency: limits.rateLimitPerFrequency ?? 0,
    rateLimitFrequencyInSeconds: limits.rateLimitFrequencyInSeconds ?? 1,
    inputKeys,
    outputKeys,
    inputSchema: {
      name: `${task.name}.input`,
      version: 1,
      type: "JSON",
      data: envelope(inputKeys, params, "input"),
    },
    outputSchema: {
      name: `${task.name}.output`,
      version: 1,
      type: "JSON",
      data: envelope(outputKeys, result, "output"),
    },
  };
}

/**
 * The TaskDef of `task` as JSON text: 2-space indent, trailing newline, identical bytes on
 * every run.
 *
 * @example
 * ```ts
 * import { z } from "../vendor/zod.ts";
 * import { defineTask } from "./define.ts";
 *
 * const task = defineTask({
 *   name: "noop", ownerEmail: "team@example.com", description: "does nothing",
 *   params: z.object({}), result: z.object({}), run: () => ({}),
 * });
 * const json = renderTaskDef(task); // what `perago extract` writes, the same bytes every time
 * ```
 */
export function renderTaskDef(
  task: TaskDefinition,
  options: { refStyle?: RefTypeStyle } = {},
): string {
  return `${JSON.stringify(buildTaskDef(task, options), null, 2)}\n`;
}
