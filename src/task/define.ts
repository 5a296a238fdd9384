/**
 * `defineTask`: the one way to make a task. It validates everything a Conductor TaskDef and
 * the attempt need when the task module is imported, and returns a frozen
 * {@linkcode TaskDefinition}.
 *
 * @module
 */
import { z } from "../vendor/zod.ts";
import { compileControls, type ControlsOptions } from "./controls.ts";
import { type DefinitionIssue, parseDefinition, strictSection } from "./_definition_schema.ts";
import { definitionError, showValue } from "./errors.ts";
import { guardrailListSchema } from "./guardrails.ts";
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

/** A string that matches `pattern` (and is at most `max` long); anything else fails with `error`. */
function matching(pattern: RegExp, error: (issue: { input?: unknown }) => string, max = Infinity) {
  return z.string({ error }).regex(pattern, { error }).max(max, { error });
}

/** What a task function is: anything callable. */
type RunFunction = (...args: never[]) => unknown;

/**
 * Converts the schema to the JSON Schema of the Conductor TaskDef: a schema JSON Schema
 * cannot express fails when the task is defined, not at extract (an issue with the
 * conversion error as its message and cause, reported after the plain field checks).
 */
function convertible<T extends z.ZodType>(io: "input" | "output") {
  return (schema: T, ctx: z.core.$RefinementCtx<T>) => {
    try {
      toInlineJsonSchema(schema, io);
    } catch (error) {
      ctx.addIssue({
        code: "custom",
        message: (error as Error).message,
        params: { cause: error, convertible: true },
      });
    }
  };
}

const workspaceSchema = strictSection({
  // `null` and a missing prefix both mean the repository root.
  prefix: z.unknown().optional().transform((value, ctx) => {
    try {
      return normalizePrefix((value ?? "/") as string);
    } catch (error) {
      ctx.issues.push({
        code: "custom",
        message: (error as Error).message,
        input: value,
        params: { cause: error },
      });
      return z.NEVER;
    }
  }),
  readOnly: z.boolean({
    error: (issue) => `must be true or false, got ${showValue(issue.input)}`,
  }).default(false),
  pre: guardrailListSchema,
  post: guardrailListSchema,
}, {
  notObject: (shown) => `must be an object { prefix?, readOnly?, pre?, post? }, got ${shown}`,
  unknownKey: "unknown field; expected prefix, readOnly, pre, post",
}).transform((spec): WorkspaceSpec => Object.freeze(spec)).optional();

/** The fields of `defineTask`'s options, in the order of {@linkcode TaskOptions}. */
const optionsSchema = strictSection({
  name: matching(
    NAME_PATTERN,
    (issue) =>
      `must be 1..${NAME_MAX} characters of A-Z, a-z, 0-9, "_", "." or "-", got ${
        showValue(issue.input)
      }`,
    NAME_MAX,
  ),
  ownerEmail: matching(
    EMAIL_PATTERN,
    (issue) => `must be an email address, got ${showValue(issue.input)}`,
  ),
  description: z.string({
    error: (issue) => `must be a string, got ${showValue(issue.input)}`,
  }),
  // Strict params: an unknown key is an input error, so a misspelt parameter never passes
  // silently as its default.
  params: z.instanceof(z.ZodObject, {
    error: "must be a zod object schema such as z.object({ ... }) (import z from perago)",
  }).transform((params) => params.strict()).superRefine(convertible("input")),
  result: z.instanceof(z.ZodType, {
    error: "must be a zod schema such as z.object({ ... }) (import z from perago)",
  }).superRefine(convertible("output")),
  workspace: workspaceSchema,
  // Compiled after these checks, each by its own module.
  controls: z.unknown().optional(),
  metrics: z.unknown().optional(),
  worker: z.unknown().optional(),
  run: z.custom<RunFunction>((value) => typeof value === "function", {
    error: (issue) => `must be a function (params, ctx) => result, got ${showValue(issue.input)}`,
  }),
}, {
  notObject: () => "defineTask expects one object argument",
  unknownKey: "unknown field; expected name, ownerEmail, description, params, result, " +
    "workspace, controls, metrics, worker, run",
});

/**
 * The order `defineTask`'s fields are checked in: an unknown field; then name, ownerEmail,
 * description, params, result and run; then whether params and result convert to JSON
 * Schema; then the workspace (its shape, then prefix, readOnly, pre, post).
 */
function optionsRank(issue: DefinitionIssue): number[] {
  const [field, key] = issue.path;
  if (field === undefined) return [0];
  if (field === "workspace") return [3, key === undefined ? 0 : 1];
  return [issue.code === "custom" && issue.params?.convertible === true ? 2 : 1];
}

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
  // A name that fails its check still names the task in the message when it is a string.
  const taskName = typeof raw.name === "string" && raw.name !== "" ? raw.name : undefined;
  const checked = parseDefinition(optionsSchema, raw, { taskName, field: "", rank: optionsRank });
  const { name, workspace } = checked;
  const controls = compileControls(raw.controls as ControlsOptions | undefined, name);
  const metrics = compileTaskMetrics(raw.metrics, name);
  if (controls.publishBudget !== undefined && workspace === undefined) {
    throw definitionError(
      name,
      "controls.publishBudget",
      "budgets the publication of a workspace; a workspace-free task publishes nothing: " +
        "remove it or give the task a workspace",
    );
  }
  const worker = compileWorkerOptions(raw.worker, name);

  const task: TaskDefinition<P, R> = {
    [TASK_BRAND]: true,
    name,
    ownerEmail: checked.ownerEmail,
    description: checked.description,
    params: checked.params as unknown as P,
    result: raw.result as R,
    workspace,
    controls,
    metrics,
    worker,
    run: raw.run as TaskDefinition<P, R>["run"],
  };
  return Object.freeze(task);
}
