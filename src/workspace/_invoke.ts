/**
 * The task-body half of an attempt: the input wrapper checks, params and result validation,
 * guardrails and the call of `run`.
 *
 * @module
 */
import { z } from "../vendor/zod.ts";
import type { WorkspaceRefStyle } from "../config/parse.ts";
import { checkGuardrails } from "../task/check_guardrails.ts";
import {
  GuardrailViolation,
  PostGuardrailViolation,
  PreGuardrailViolation,
  TaskInputError,
} from "../task/errors.ts";
import type { Guardrail, TaskContext, TaskDefinition } from "../task/types.ts";
import { TaskResultError } from "./errors.ts";

export type { WorkspaceRefStyle };

/**
 * The `workspace` input of a workspace task (exact keys, `ref_type` "commit"), after
 * {@linkcode parseWorkspaceInput} has turned a `refType` into `ref_type`. The optional
 * `prefix` narrows the attempt's scope below the task's declared prefix.
 */
export const workspaceInputSchema = z.strictObject({
  repository: z.string().min(1),
  branch: z.string().min(1),
  ref_type: z.literal("commit"),
  ref: z.string().min(1),
  prefix: z.string().optional(),
});

/** A validated `workspace` input. */
export type WorkspaceInput = z.infer<typeof workspaceInputSchema>;

/**
 * Checks that `input` is an object whose keys are exactly `{workspace, params}` (workspace
 * tasks) or `{params}` (workspace-free tasks).
 *
 * @throws {TaskInputError}
 */
export function checkInputKeys(
  input: unknown,
  hasWorkspace: boolean,
): asserts input is Record<string, unknown> {
  const expected = hasWorkspace ? ["params", "workspace"] : ["params"];
  const what = hasWorkspace
    ? "workspace task input must contain only workspace and params"
    : "workspace-free task input must contain only params";
  if (typeof input !== "object" || input === null || Array.isArray(input)) {
    throw new TaskInputError(`${what}: got ${Array.isArray(input) ? "an array" : typeof input}`);
  }
  const keys = Object.keys(input).sort();
  if (keys.length !== expected.length || keys.some((key, i) => key !== expected[i])) {
    throw new TaskInputError(
      `${what}: got keys ${JSON.stringify(keys)}; fix the workflow's inputParameters`,
    );
  }
}

/**
 * Validates the `workspace` input. The reference type may be spelled `ref_type` (this
 * project's contract) or `refType` (perago for Python), exactly one of them; everything else
 * is strict (exact keys, non-empty strings, the type `"commit"`).
 *
 * @throws {TaskInputError}
 */
export function parseWorkspaceInput(value: unknown): WorkspaceInput {
  let candidate = value;
  let key: "ref_type" | "refType" = "ref_type";
  if (typeof value === "object" && value !== null && !Array.isArray(value)) {
    const hasSnake = Object.hasOwn(value, "ref_type");
    const hasCamel = Object.hasOwn(value, "refType");
    if (hasSnake && hasCamel) {
      throw new TaskInputError(
        "invalid workspace input: both ref_type and refType are given; give exactly one " +
          '(ref_type: "commit", or refType: "commit" as perago for Python writes it)',
      );
    }
    if (hasCamel) {
      key = "refType";
      const { refType, ...rest } = value as Record<string, unknown>;
      candidate = { ...rest, ref_type: refType };
    }
  }
  const parsed = workspaceInputSchema.safeParse(candidate);
  if (!parsed.success) {
    const detail = oneLine(z.prettifyError(parsed.error)).replaceAll("ref_type", key);
    throw new TaskInputError(
      `invalid workspace input: ${detail}; expected {repository, branch, ref_type: "commit", ` +
        'ref, prefix?} (or refType: "commit" instead of ref_type)',
      { cause: parsed.error },
    );
  }
  return parsed.data;
}

/**
 * The `workspace` of a task's output: the input's repository and branch at `ref`, the type
 * key spelled as `style` asks.
 *
 * @example
 * ```ts
 * const input = { repository: "docs", branch: "main", ref_type: "commit" as const, ref: "a1" };
 * workspaceOutput(input, "c0ffee", "camel");
 * // { repository: "docs", branch: "main", refType: "commit", ref: "c0ffee" }
 * ```
 */
export function workspaceOutput(
  input: WorkspaceInput,
  ref: string,
  style: WorkspaceRefStyle = "snake",
): Record<string, unknown> {
  return {
    repository: input.repository,
    branch: input.branch,
    [style === "camel" ? "refType" : "ref_type"]: "commit",
    ref,
  };
}

function oneLine(text: string): string {
  return text.replace(/\s*\n\s*/g, " ");
}

/**
 * Validates `params` against the task's strict schema.
 *
 * @throws {TaskInputError}
 */
export function parseParams(task: TaskDefinition, value: unknown): unknown {
  const parsed = task.params.safeParse(value);
  if (!parsed.success) {
    throw new TaskInputError(
      `invalid params for task ${JSON.stringify(task.name)}: ` +
        `${oneLine(z.prettifyError(parsed.error))}; fix the task input`,
      { cause: parsed.error },
    );
  }
  return parsed.data;
}

/**
 * Validates what `run` returned and makes it plain JSON, the form the Conductor task output
 * carries: the parsed value through a JSON round trip (dates become ISO strings, `undefined`
 * fields drop).
 *
 * @throws {TaskResultError}
 */
export function parseResult(task: TaskDefinition, value: unknown): unknown {
  const parsed = task.result.safeParse(value);
  if (!parsed.success) {
    throw new TaskResultError(
      `result of task ${JSON.stringify(task.name)} does not match its schema: ` +
        `${oneLine(z.prettifyError(parsed.error))}; fix the task function`,
      { cause: parsed.error },
    );
  }
  const json = JSON.stringify(parsed.data);
  return json === undefined ? null : JSON.parse(json);
}

/**
 * Checks one phase's guardrails; any violation comes out as the phase's class (a pre
 * violation is terminal, a post one is not).
 */
export async function checkPhase(
  dir: string,
  guardrails: readonly Guardrail[],
  phase: "pre" | "post",
  signal: AbortSignal,
): Promise<void> {
  try {
    await checkGuardrails(dir, guardrails, phase, { signal });
  } catch (error) {
    if (error instanceof GuardrailViolation) {
      const expected = phase === "pre" ? PreGuardrailViolation : PostGuardrailViolation;
      if (error instanceof expected) throw error;
      throw new expected(error.message, { cause: error, failures: error.failures });
    }
    throw error;
  }
}

/**
 * Runs the body of an attempt on a prepared (and, for workspace tasks, downloaded) directory:
 * params, pre guardrails, `run`, result, post guardrails. Returns the validated result.
 */
export async function invokeTaskBody(
  task: TaskDefinition,
  rawParams: unknown,
  ctx: TaskContext,
  onRun?: () => void,
): Promise<unknown> {
  const params = parseParams(task, rawParams);
  const dir = ctx.workspace;
  if (task.workspace !== undefined && dir !== undefined) {
    await checkPhase(dir, task.workspace.pre, "pre", ctx.signal);
  }
  onRun?.();
  const raw = await task.run(params, ctx);
  const result = parseResult(task, raw);
  if (task.workspace !== undefined && dir !== undefined) {
    await checkPhase(dir, task.workspace.post, "post", ctx.signal);
  }
  return result;
}
