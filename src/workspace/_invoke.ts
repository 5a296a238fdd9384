/**
 * The task-body half of an attempt: the input wrapper checks, params and result validation,
 * guardrails and the call of `run`.
 *
 * @module
 */
import { z } from "zod";
import { checkGuardrails } from "../task/check_guardrails.ts";
import {
  GuardrailViolation,
  PostGuardrailViolation,
  PreGuardrailViolation,
  TaskInputError,
} from "../task/errors.ts";
import type { Guardrail, TaskContext, TaskDefinition } from "../task/types.ts";
import { TaskResultError } from "./errors.ts";

/**
 * The `workspace` input of a workspace task (exact keys, `ref_type` "commit"). The optional
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
 * Validates the `workspace` input.
 *
 * @throws {TaskInputError}
 */
export function parseWorkspaceInput(value: unknown): WorkspaceInput {
  const parsed = workspaceInputSchema.safeParse(value);
  if (!parsed.success) {
    throw new TaskInputError(
      `invalid workspace input: ${oneLine(z.prettifyError(parsed.error))}; expected ` +
        '{repository, branch, ref_type: "commit", ref, prefix?}',
      { cause: parsed.error },
    );
  }
  return parsed.data;
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
