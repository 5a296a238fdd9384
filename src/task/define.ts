/**
 * `defineTask`: the one way to make a task. It validates everything a Conductor TaskDef and
 * the attempt need when the task module is imported, and returns a frozen
 * {@linkcode TaskDefinition}.
 *
 * @module
 */
import { z } from "zod";
import { compileControls, type ControlsOptions } from "./controls.ts";
import { definitionError, showValue } from "./errors.ts";
import { checkGuardrailList } from "./guardrails.ts";
import { toInlineJsonSchema } from "./json_schema.ts";
import { normalizePrefix } from "./paths.ts";
import { compileTaskMetrics, type TaskMetricDeclaration } from "./metrics.ts";
import { compileWorkerOptions, type WorkerOptions } from "./worker_options.ts";
import {
  type Guardrail,
  TASK_BRAND,
  type TaskContext,
  type TaskDefinition,
  type WorkspaceSpec,
} from "./types.ts";

/** The `workspace` of `defineTask`: present for tasks that work on a lakeFS workspace. */
export interface WorkspaceOptions {
  /**
   * The part of the repository downloaded into the attempt directory, as a POSIX path
   * (`"/"` or `""` = the whole repository, `"docs"` = `docs/`). Never `..`. @default "/"
   */
  prefix?: string;
  /** A read-only task never writes to lakeFS; it completes with the input ref. @default false */
  readOnly?: boolean;
  /**
   * Checked after download, before `run`. A failure is terminal (`FAILED_WITH_TERMINAL_ERROR`).
   * Paths are relative to the attempt directory, i.e. the repository root (prefix included).
   */
  pre?: readonly Guardrail[];
  /** Checked after `run`, before publishing. A failure is an ordinary (retryable) failure. */
  post?: readonly Guardrail[];
}

/** The argument of {@linkcode defineTask}. */
export interface TaskOptions<P extends z.ZodObject, R extends z.ZodType> {
  /** The Conductor task type: letters, digits, `_`, `.` and `-`. */
  name: string;
  /** Owner of the TaskDef (Conductor requires it unless configured otherwise). */
  ownerEmail: string;
  /** One line shown in the Conductor UI. */
  description: string;
  /** Zod object schema of `params`; made strict (unknown keys are rejected). */
  params: P;
  /** Zod schema of the result; validated before anything is published. */
  result: R;
  /** Present for workspace tasks. */
  workspace?: WorkspaceOptions;
  /** Retry, timeout and rate-limit settings of the TaskDef, and the publish budget. */
  controls?: ControlsOptions;
  /**
   * Metrics the task records through `ctx.metrics`, by name (`a-z`, `0-9`, `_`): kind
   * (counter, gauge, histogram, timer), unit, the labels a record may set, buckets.
   * Exported as `app.<name>` with the task name as the `task_name` label.
   */
  metrics?: Readonly<Record<string, TaskMetricDeclaration>>;
  /**
   * How a worker serves this task type on one host: per-host concurrency and polling. Not
   * part of the TaskDef; `PERAGO_TASK_CONCURRENCY_<NAME>` overrides the concurrency.
   */
  worker?: WorkerOptions;
  /** The task function, sync or async. Throw `TaskTerminalError` to fail without retry. */
  run: (params: z.output<P>, ctx: TaskContext) => z.input<R> | Promise<z.input<R>>;
}

const NAME_PATTERN = /^[A-Za-z0-9_.-]+$/;
const NAME_MAX = 255;
// Deliberately simple: one "@", a non-empty local part, a dotted domain, no spaces.
const EMAIL_PATTERN = /^[^\s@]+@[^\s@.]+(\.[^\s@.]+)+$/;
const KNOWN_KEYS = [
  "name",
  "ownerEmail",
  "description",
  "params",
  "result",
  "workspace",
  "controls",
  "metrics",
  "worker",
  "run",
];
const WORKSPACE_KEYS = ["prefix", "readOnly", "pre", "post"];

/**
 * Defines a task. The module that calls it must `export default` the result.
 *
 * @throws {TaskDefinitionError} naming the task and the field for any bad argument.
 * @example
 * ```ts
 * import { defineTask, z } from "perago";
 *
 * export default defineTask({
 *   name: "word_count",
 *   ownerEmail: "team@example.com",
 *   description: "Counts the words of a text",
 *   params: z.object({ text: z.string() }),
 *   result: z.object({ words: z.number().int() }),
 *   run: ({ text }) => ({ words: text.split(/\s+/).filter(Boolean).length }),
 * });
 * ```
 */
export function defineTask<P extends z.ZodObject, R extends z.ZodType>(
  options: TaskOptions<P, R>,
): TaskDefinition<P, R> {
  if (options === null || typeof options !== "object" || Array.isArray(options)) {
    throw definitionError(undefined, "options", "defineTask expects one object argument");
  }
  const raw = options as unknown as Record<string, unknown>;
  const rawName = raw.name;
  const taskName = typeof rawName === "string" && rawName !== "" ? rawName : undefined;
  const fail: Fail = (field, detail, cause) =>
    definitionError(taskName, field, detail, cause === undefined ? {} : { cause });
  const { name, ownerEmail, description } = checkFields(raw, fail);

  // Strict params: an unknown key is an input error, so a misspelt parameter never passes
  // silently as its default.
  const params = (raw.params as z.ZodObject).strict() as unknown as P;
  const result = raw.result as R;
  checkConvertible(params, result, fail);

  const workspace = compileWorkspace(raw.workspace, name, fail);
  const controls = compileControls(raw.controls as ControlsOptions | undefined, name);
  const metrics = compileTaskMetrics(raw.metrics, fail);
  if (controls.publishBudget !== undefined && workspace === undefined) {
    throw fail(
      "controls.publishBudget",
      "budgets the publication of a workspace; a workspace-free task publishes nothing: " +
        "remove it or give the task a workspace",
    );
  }
  const worker = compileWorkerOptions(raw.worker, name);

  const task: TaskDefinition<P, R> = {
    [TASK_BRAND]: true,
    name,
    ownerEmail,
    description,
    params,
    result,
    workspace,
    controls,
    metrics,
    worker,
    run: raw.run as TaskDefinition<P, R>["run"],
  };
  return Object.freeze(task);
}

type Fail = (field: string, detail: string, cause?: unknown) => Error;

/** Checks the plain fields of `defineTask`'s options, in this order; returns the strings. */
function checkFields(
  raw: Record<string, unknown>,
  fail: Fail,
): { name: string; ownerEmail: string; description: string } {
  for (const key of Object.keys(raw)) {
    if (!KNOWN_KEYS.includes(key)) {
      throw fail(key, `unknown field; expected ${KNOWN_KEYS.join(", ")}`);
    }
  }
  const name = raw.name;
  if (typeof name !== "string" || !NAME_PATTERN.test(name) || name.length > NAME_MAX) {
    throw fail(
      "name",
      `must be 1..${NAME_MAX} characters of A-Z, a-z, 0-9, "_", "." or "-", got ${showValue(name)}`,
    );
  }
  if (typeof raw.ownerEmail !== "string" || !EMAIL_PATTERN.test(raw.ownerEmail)) {
    throw fail("ownerEmail", `must be an email address, got ${showValue(raw.ownerEmail)}`);
  }
  if (typeof raw.description !== "string") {
    throw fail("description", `must be a string, got ${showValue(raw.description)}`);
  }
  if (!(raw.params instanceof z.ZodObject)) {
    throw fail(
      "params",
      "must be a zod object schema such as z.object({ ... }) (import z from perago)",
    );
  }
  if (!(raw.result instanceof z.ZodType)) {
    throw fail("result", "must be a zod schema such as z.object({ ... }) (import z from perago)");
  }
  if (typeof raw.run !== "function") {
    throw fail("run", `must be a function (params, ctx) => result, got ${showValue(raw.run)}`);
  }
  return { name, ownerEmail: raw.ownerEmail, description: raw.description };
}

/**
 * Both schemas must become the Conductor TaskDef's inputSchema and outputSchema: a schema
 * JSON Schema cannot express fails here, when the task is defined, not at extract.
 */
function checkConvertible(params: z.ZodType, result: z.ZodType, fail: Fail): void {
  for (
    const [field, schema, io] of [["params", params, "input"], [
      "result",
      result,
      "output",
    ]] as const
  ) {
    try {
      toInlineJsonSchema(schema, io);
    } catch (error) {
      throw fail(field, (error as Error).message, error);
    }
  }
}

function compileWorkspace(
  value: unknown,
  taskName: string,
  fail: Fail,
): WorkspaceSpec | undefined {
  if (value === undefined) return undefined;
  if (value === null || typeof value !== "object" || Array.isArray(value)) {
    throw fail(
      "workspace",
      `must be an object { prefix?, readOnly?, pre?, post? }, got ${showValue(value)}`,
    );
  }
  const spec = value as Record<string, unknown>;
  for (const key of Object.keys(spec)) {
    if (!WORKSPACE_KEYS.includes(key)) {
      throw fail(`workspace.${key}`, `unknown field; expected ${WORKSPACE_KEYS.join(", ")}`);
    }
  }
  let prefix: string;
  try {
    prefix = normalizePrefix((spec.prefix ?? "/") as string);
  } catch (error) {
    throw fail("workspace.prefix", (error as Error).message, error);
  }
  if (spec.readOnly !== undefined && typeof spec.readOnly !== "boolean") {
    throw fail("workspace.readOnly", `must be true or false, got ${showValue(spec.readOnly)}`);
  }
  return Object.freeze({
    prefix,
    readOnly: (spec.readOnly as boolean | undefined) ?? false,
    pre: checkGuardrailList(spec.pre, "workspace.pre", taskName),
    post: checkGuardrailList(spec.post, "workspace.post", taskName),
  });
}
