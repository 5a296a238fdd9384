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

/**
 * The JSON Schema of the `workspace` object of a task input or output: the lakeFS
 * repository, the branch, and the commit (`ref_type` is always `"commit"`). The input also
 * takes an optional `prefix` that narrows the attempt's scope below the task's prefix.
 */
export function workspaceJsonSchema(direction: "input" | "output" = "output"): JsonSchema {
  return {
    type: "object",
    properties: {
      repository: { type: "string" },
      branch: { type: "string" },
      ref_type: { const: "commit" },
      ref: { type: "string" },
      ...(direction === "input" ? { prefix: { type: "string" } } : {}),
    },
    required: ["repository", "branch", "ref_type", "ref"],
    additionalProperties: false,
  };
}

/**
 * Builds the Conductor TaskDef of `task`. Unset limits take Conductor's own defaults
 * (`concurrentExecLimit` 0 = none, `rateLimitPerFrequency` 0 = none,
 * `rateLimitFrequencyInSeconds` 1), so the document is complete and registering it twice
 * is idempotent.
 *
 * @example
 * ```ts
 * const def = buildTaskDef(task);
 * def.inputKeys; // ["workspace", "params"] for a workspace task
 * ```
 */
export function buildTaskDef(task: TaskDefinition): ExtractedTaskDef {
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
      properties[key] = key === "workspace" ? workspaceJsonSchema(direction) : payload;
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
 * await Deno.writeTextFile("taskdef.json", renderTaskDef(task));
 * ```
 */
export function renderTaskDef(task: TaskDefinition): string {
  return `${JSON.stringify(buildTaskDef(task), null, 2)}\n`;
}
