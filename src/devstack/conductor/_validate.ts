/**
 * Validation of what clients send the demo Conductor, with the real server's statuses and
 * messages: TaskDefs (Conductor's constraints), WorkflowDefs (SIMPLE tasks, static and dynamic
 * forks, joins) and TaskResults (400 for empty ids, 500 for what Jackson could not read).
 *
 * @module
 */
import { ConductorHttpError, isObject, type Json } from "./_common.ts";

/** Conductor's 400 for a request that fails its bean validation, listing each violation. */
function validationFailed(errors: Json[]): ConductorHttpError {
  return new ConductorHttpError(400, "Validation failed, check below errors for detail.", {
    validationErrors: errors,
  });
}

const RESULT_STATUSES = new Set([
  "IN_PROGRESS",
  "COMPLETED",
  "FAILED",
  "FAILED_WITH_TERMINAL_ERROR",
]);

/**
 * One bean-validation violation as Conductor lists it: where (`at` and the property), the
 * message, and the rejected value as a string when there was one.
 */
function violation(at: string, key: string, message: string, value?: unknown): Json {
  return {
    path: key === "" ? at : `${at}.${key}`,
    message,
    ...(value === undefined || value === null ? {} : { invalidValue: String(value) }),
  };
}

/**
 * Checks one TaskDef; returns a copy. `at` is where Conductor's validation errors say the def
 * was (`registerTaskDef.arg0[i]` for a POST, `updateTaskDef.arg0` for a PUT). Only what
 * Conductor OSS 3.21 constrains is refused: retryCount and pollTimeoutSeconds >= 0,
 * responseTimeoutSeconds >= 1 and not above a set timeoutSeconds, backoffScaleFactor >= 1
 * (a negative retryDelaySeconds or totalTimeoutSeconds registers).
 */
export function checkTaskDef(def: unknown, at = "registerTaskDef.arg0[0]"): Json {
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
    errors.push(violation(at, "name", "TaskDef name cannot be null or empty", name));
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
  const pollTimeout = number("pollTimeoutSeconds", 0);
  if (retryCount < 0) {
    errors.push(violation(at, "retryCount", "TaskDef retryCount: 0 must be >= 0", retryCount));
  }
  if (pollTimeout < 0) {
    errors.push(
      violation(
        at,
        "pollTimeoutSeconds",
        "TaskDef pollTimeoutSeconds: 0 must be >= 0",
        pollTimeout,
      ),
    );
  }
  if (responseTimeout < 1) {
    errors.push(violation(
      at,
      "responseTimeoutSeconds",
      `TaskDef responseTimeoutSeconds: ${responseTimeout} should be minimum 1 second`,
      responseTimeout,
    ));
  }
  if (timeout > 0 && responseTimeout > timeout) {
    errors.push(violation(
      at,
      "",
      `TaskDef: ${name} responseTimeoutSeconds: ${responseTimeout} must be less than timeoutSeconds: ${timeout}`,
    ));
  }
  if (scale < 1) {
    errors.push(violation(
      at,
      "backoffScaleFactor",
      "Backoff scale factor. Applicable for LINEAR_BACKOFF",
      scale,
    ));
  }
  if (errors.length > 0) {
    throw validationFailed(errors);
  }
  return structuredClone(def);
}

/** The task types the demo Conductor runs. */
const WORKFLOW_TASK_TYPES = new Set(["SIMPLE", "FORK_JOIN", "FORK_JOIN_DYNAMIC", "JOIN"]);
/** Names Conductor's parameter check treats as system parameters, not task references. */
const SYSTEM_PARAMETERS = new Set(["CPEWF_TASK_ID", "NETFLIX_ENV", "NETFLIX_STACK"]);

/**
 * Checks one WorkflowDef; returns a copy with defaults (version 1, `type` SIMPLE, `joinOn` []
 * on JOINs, fork branches normalised the same way). `at` is where Conductor's validation
 * errors say the def was (`registerWorkflowDef.arg0` for a POST, `updateWorkflowDef.arg0[i]`
 * for a PUT). Like Conductor OSS 3.21, only what its constraints check is refused here: a
 * FORK_JOIN without a JOIN after it registers and fails the workflow when it runs.
 */
export function checkWorkflowDef(
  def: unknown,
  at = "registerWorkflowDef.arg0",
): Json & { name: string; version: number } {
  if (!isObject(def)) throw new ConductorHttpError(400, "Workflow definition must be an object");
  if (typeof def.name !== "string" || def.name.trim() === "") {
    throw validationFailed([{ path: "name", message: "WorkflowDef name cannot be null or empty" }]);
  }
  if (!Array.isArray(def.tasks) || def.tasks.length === 0) {
    throw validationFailed([{ path: "tasks", message: "WorkflowTask list cannot be empty" }]);
  }
  const name = def.name;
  const errors: Json[] = [];
  const refs = new Set<string>();
  const context: TaskCheck = { at, workflowName: name, refs, errors };
  const tasks = def.tasks.map((t, i) => normaliseTask(t, `${at}.tasks[${i}]`, context));
  // Conductor checks the references in the inputParameters of top-level tasks only.
  for (const task of tasks) {
    for (
      const message of checkReferences(task.inputParameters as Json, task.name as string, refs)
    ) {
      errors.push({ path: at, message });
    }
  }
  if (errors.length > 0) {
    throw validationFailed(errors);
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
    name,
    version,
    tasks,
  } as Json & { name: string; version: number };
}

/** What the check of a workflow's tasks shares: where, the names seen, the errors found. */
interface TaskCheck {
  readonly at: string;
  readonly workflowName: string;
  readonly refs: Set<string>;
  readonly errors: Json[];
}

/**
 * Checks one workflow task (and the tasks of its fork branches) as Conductor OSS does, and
 * returns it with its defaults (type SIMPLE, empty inputParameters).
 */
function normaliseTask(task: unknown, path: string, context: TaskCheck): Json {
  const { at, workflowName: name, refs, errors } = context;
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
  if (typeof type !== "string" || !WORKFLOW_TASK_TYPES.has(type)) {
    throw new ConductorHttpError(
      400,
      `the demo Conductor runs SIMPLE, FORK_JOIN, FORK_JOIN_DYNAMIC and JOIN tasks only, got ${type}`,
    );
  }
  if (refs.has(task.taskReferenceName)) {
    errors.push({
      path: at,
      message:
        `taskReferenceName: ${task.taskReferenceName} should be unique across tasks for a given workflowDefinition: ${name}`,
    });
  }
  refs.add(task.taskReferenceName);
  const out: Json = { inputParameters: {}, ...structuredClone(task), type };
  if (!isObject(out.inputParameters)) {
    throw new ConductorHttpError(500, "JSON parse error: inputParameters must be a JSON object");
  }
  if (type === "FORK_JOIN") {
    const branches = task.forkTasks ?? [];
    if (!Array.isArray(branches) || !branches.every(Array.isArray)) {
      throw new ConductorHttpError(500, "JSON parse error: forkTasks must be a list of lists");
    }
    if (branches.length === 0) {
      errors.push({
        path,
        message:
          `forkTasks should have atleast one task for taskType: FORK_JOIN taskName: ${task.name}`,
      });
    }
    out.forkTasks = branches.map((branch: unknown[], i) =>
      branch.map((t, j) =>
        normaliseTask(t, `${path}.forkTasks[${i}].<list element>[${j}]`, context)
      )
    );
  }
  if (type === "FORK_JOIN_DYNAMIC") {
    for (const field of ["dynamicForkTasksInputParamName", "dynamicForkTasksParam"]) {
      if (task[field] === undefined || task[field] === null) {
        errors.push({
          path,
          message:
            `${field} field is required for taskType: FORK_JOIN_DYNAMIC taskName: ${task.name}`,
        });
      } else if (typeof task[field] !== "string") {
        throw new ConductorHttpError(500, `JSON parse error: ${field} must be a string`);
      }
    }
  }
  if (type === "JOIN") {
    const joinOn = task.joinOn ?? [];
    if (!Array.isArray(joinOn) || !joinOn.every((ref) => typeof ref === "string")) {
      throw new ConductorHttpError(500, "JSON parse error: joinOn must be a list of strings");
    }
    out.joinOn = joinOn;
  }
  return out;
}

/**
 * Conductor's check of `${...}` references in inputParameters: a path with whitespace is
 * invalid, and a path's first component must be `workflow` or a reference name of the def.
 */
function checkReferences(input: Json, taskName: string, refs: Set<string>): string[] {
  const errors: string[] = [];
  const check = (key: string, value: unknown): void => {
    if (typeof value === "string") {
      for (const piece of value.split(/(?=(?<!\$)\$\{)|(?<=\})/)) {
        if (!piece.startsWith("${") || !piece.endsWith("}")) continue;
        const path = piece.slice(2, -1);
        if (/\s/.test(path)) {
          errors.push(`key: ${key} input parameter value: ${path} is not valid`);
        } else if (!SYSTEM_PARAMETERS.has(path)) {
          const head = path.split(".")[0]!;
          if (head !== "workflow" && !refs.has(head)) {
            errors.push(
              `taskReferenceName: ${head} for given task: ${taskName} input value: ${key} of input parameter: ${value} is not defined in workflow definition.`,
            );
          }
        }
      }
    } else if (Array.isArray(value)) {
      for (const item of value) check(key, item);
    } else if (isObject(value)) {
      for (const [k, v] of Object.entries(value)) check(k, v);
    }
  };
  for (const [key, value] of Object.entries(input)) check(key, value);
  return errors;
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
    errors.push(
      violation("updateTask.arg0", "taskId", "Task ID cannot be null or empty", body.taskId),
    );
  }
  if (typeof body.workflowInstanceId !== "string" || body.workflowInstanceId === "") {
    errors.push(violation(
      "updateTask.arg0",
      "workflowInstanceId",
      "Workflow Id cannot be null or empty",
      body.workflowInstanceId,
    ));
  }
  if (errors.length > 0) {
    throw validationFailed(errors);
  }
  return body;
}
