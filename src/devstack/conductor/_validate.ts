/**
 * Validation of what clients send the demo Conductor, with the real server's statuses and
 * messages: TaskDefs (Conductor's constraints), WorkflowDefs (SIMPLE tasks only) and
 * TaskResults (400 for empty ids, 500 for what Jackson could not read).
 *
 * @module
 */
import { ConductorHttpError, isObject, type Json } from "./_common.ts";

const RESULT_STATUSES = new Set([
  "IN_PROGRESS",
  "COMPLETED",
  "FAILED",
  "FAILED_WITH_TERMINAL_ERROR",
]);

/** Checks one TaskDef; returns a copy. */
export function checkTaskDef(def: unknown): Json {
  if (!isObject(def)) {
    throw new ConductorHttpError(500, "JSON parse error: a TaskDef must be a JSON object");
  }
  for (
    const [key, values] of [
      ["retryLogic", ["FIXED", "LINEAR_BACKOFF", "EXPONENTIAL_BACKOFF"]],
      ["timeoutPolicy", ["RETRY", "TIME_OUT_WF", "ALERT_ONLY"]],
    ] as const
  ) {
    if (def[key] !== undefined && !(values as readonly unknown[]).includes(def[key])) {
      throw new ConductorHttpError(
        500,
        `JSON parse error: ${key} "${def[key]}" is not one of [${values.join(", ")}]`,
      );
    }
  }
  // The checks of Conductor's TaskDef constraints, with its messages.
  const errors: Json[] = [];
  const name = def.name;
  if (typeof name !== "string" || name.trim() === "") {
    errors.push({ path: "name", message: "TaskDef name cannot be null or empty" });
  }
  const number = (key: string, fallback: number) => {
    const value = def[key];
    if (value === undefined || value === null) return fallback;
    if (typeof value !== "number") {
      throw new ConductorHttpError(500, `JSON parse error: ${key} must be a number`);
    }
    return value;
  };
  const retryCount = number("retryCount", 3);
  const responseTimeout = number("responseTimeoutSeconds", 3600);
  const timeout = number("timeoutSeconds", 0);
  const scale = number("backoffScaleFactor", 1);
  for (const key of ["retryDelaySeconds", "totalTimeoutSeconds", "pollTimeoutSeconds"]) {
    if (number(key, 0) < 0) errors.push({ path: key, message: `TaskDef ${key} must be >= 0` });
  }
  if (retryCount < 0) {
    errors.push({ path: "retryCount", message: "TaskDef retryCount: 0 must be >= 0" });
  }
  if (responseTimeout < 1) {
    errors.push({
      path: "responseTimeoutSeconds",
      message: `TaskDef responseTimeoutSeconds: ${responseTimeout} should be minimum 1 second`,
    });
  }
  if (timeout > 0 && responseTimeout > timeout) {
    errors.push({
      path: "",
      message:
        `TaskDef: ${name} responseTimeoutSeconds: ${responseTimeout} must be less than timeoutSeconds: ${timeout}`,
    });
  }
  if (scale < 1) {
    errors.push({
      path: "backoffScaleFactor",
      message: "Backoff scale factor. Applicable for LINEAR_BACKOFF",
    });
  }
  if (errors.length > 0) {
    throw new ConductorHttpError(400, "Validation failed, check below errors for detail.", {
      validationErrors: errors,
    });
  }
  return structuredClone(def);
}

/** Checks one WorkflowDef; returns a copy with defaults (version 1, SIMPLE tasks). */
export function checkWorkflowDef(def: unknown): Json & { name: string; version: number } {
  if (!isObject(def)) throw new ConductorHttpError(400, "Workflow definition must be an object");
  if (typeof def.name !== "string" || def.name.trim() === "") {
    throw new ConductorHttpError(400, "Validation failed, check below errors for detail.", {
      validationErrors: [{ path: "name", message: "WorkflowDef name cannot be null or empty" }],
    });
  }
  if (!Array.isArray(def.tasks) || def.tasks.length === 0) {
    throw new ConductorHttpError(400, "Validation failed, check below errors for detail.", {
      validationErrors: [{ path: "tasks", message: "WorkflowTask list cannot be empty" }],
    });
  }
  const refs = new Set<string>();
  for (const task of def.tasks) {
    if (!isObject(task) || typeof task.name !== "string" || task.name === "") {
      throw new ConductorHttpError(400, "WorkflowTask name cannot be empty or null");
    }
    if (typeof task.taskReferenceName !== "string" || task.taskReferenceName === "") {
      throw new ConductorHttpError(
        400,
        "WorkflowTask taskReferenceName name cannot be empty or null",
      );
    }
    const type = task.type ?? "SIMPLE";
    if (type !== "SIMPLE") {
      throw new ConductorHttpError(400, `the demo Conductor runs SIMPLE tasks only, got ${type}`);
    }
    if (refs.has(task.taskReferenceName)) {
      throw new ConductorHttpError(
        400,
        `taskReferenceName ${task.taskReferenceName} should be unique`,
      );
    }
    refs.add(task.taskReferenceName);
  }
  const version = def.version === undefined ? 1 : def.version;
  if (typeof version !== "number" || !Number.isInteger(version)) {
    throw new ConductorHttpError(500, "JSON parse error: version must be an integer");
  }
  return {
    schemaVersion: 2,
    inputParameters: [],
    outputParameters: {},
    ...structuredClone(def),
    name: def.name,
    version,
    tasks: def.tasks.map((t) => ({ type: "SIMPLE", inputParameters: {}, ...(t as Json) })),
  } as Json & { name: string; version: number };
}

/** Checks a TaskResult body. */
export function checkTaskResult(body: unknown): Json {
  if (!isObject(body)) {
    throw new ConductorHttpError(500, "JSON parse error: a TaskResult must be a JSON object");
  }
  if (body.status === undefined || body.status === null) {
    // Conductor dereferences the missing status and answers 500.
    throw new ConductorHttpError(500, "TaskResult status is missing: it is required");
  }
  if (!RESULT_STATUSES.has(body.status as string)) {
    throw new ConductorHttpError(
      500,
      `JSON parse error: Cannot deserialize value of type \`TaskResult$Status\` from String "${body.status}": not one of the values accepted for Enum class: [COMPLETED, FAILED_WITH_TERMINAL_ERROR, FAILED, IN_PROGRESS]`,
    );
  }
  for (const key of ["outputData"]) {
    if (body[key] !== undefined && body[key] !== null && !isObject(body[key])) {
      throw new ConductorHttpError(500, `JSON parse error: ${key} must be a JSON object`);
    }
  }
  if (
    body.callbackAfterSeconds !== undefined && body.callbackAfterSeconds !== null &&
    typeof body.callbackAfterSeconds !== "number"
  ) {
    throw new ConductorHttpError(500, "JSON parse error: callbackAfterSeconds must be a number");
  }
  const errors: Json[] = [];
  if (typeof body.taskId !== "string" || body.taskId === "") {
    errors.push({ path: "updateTask.arg0.taskId", message: "Task ID cannot be null or empty" });
  }
  if (typeof body.workflowInstanceId !== "string" || body.workflowInstanceId === "") {
    errors.push({
      path: "updateTask.arg0.workflowInstanceId",
      message: "Workflow Id cannot be null or empty",
    });
  }
  if (errors.length > 0) {
    throw new ConductorHttpError(400, "Validation failed, check below errors for detail.", {
      validationErrors: errors,
    });
  }
  return body;
}
