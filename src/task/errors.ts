/**
 * The error classes of the task layer: what task authors throw ({@linkcode TaskTerminalError}),
 * what a bad task definition or a bad Conductor input raises, and the guardrail violations.
 *
 * How the attempt maps them onto a Conductor TaskResult:
 * - {@linkcode TaskTerminalError}, {@linkcode PreGuardrailViolation} and errors marked
 *   `terminal: true`: `FAILED_WITH_TERMINAL_ERROR` (retrying cannot help); see
 *   {@linkcode isTerminalError}.
 * - everything else, {@linkcode TaskInputError} and {@linkcode PostGuardrailViolation}
 *   included: `FAILED` (Conductor retries per the TaskDef).
 *
 * @module
 */

/**
 * Thrown by a task function to fail the Conductor task with `FAILED_WITH_TERMINAL_ERROR`:
 * Conductor does not retry it and the workflow fails at once. Use it when the input can never
 * succeed (a missing file the caller promised, a value out of range); throw anything else for
 * failures a retry may fix.
 *
 * @example
 * ```ts
 * function countWords(text: string): number {
 *   if (text.length > 1_000_000) {
 *     throw new TaskTerminalError("word_count: text is too long; split it into smaller parts");
 *   }
 *   return text.split(/\s+/).filter(Boolean).length;
 * }
 * ```
 */
export class TaskTerminalError extends Error {
  /** Always true: the attempt reports `FAILED_WITH_TERMINAL_ERROR`. */
  readonly terminal = true;
  /** @param message what failed, a colon, the detail, what to do. */
  constructor(message: string, options?: ErrorOptions) {
    super(message, options);
    this.name = "TaskTerminalError";
  }
}

/**
 * The Conductor task input does not fit the task: wrong top-level keys, a malformed
 * `workspace`, or `params` rejected by the task's schema. Reported as `FAILED`, not as a
 * terminal error, so a fixed TaskDef or input may succeed on retry.
 */
export class TaskInputError extends Error {
  constructor(message: string, options?: ErrorOptions) {
    super(message, options);
    this.name = "TaskInputError";
  }
}

/** Extra fields of a {@linkcode TaskDefinitionError}. */
export interface TaskDefinitionErrorOptions extends ErrorOptions {
  /** The task name, when known. */
  taskName?: string;
  /** The offending field as a dotted path, e.g. `controls.retry.count`. */
  field?: string;
}

/**
 * A `defineTask` call (or a guardrail helper) got bad arguments. Thrown when the task module
 * is imported, so `perago check` and `perago extract` report it before any work is done.
 * The message names the task and the field.
 */
export class TaskDefinitionError extends Error {
  /** The task name, when known. */
  readonly taskName: string | undefined;
  /** The offending field as a dotted path. */
  readonly field: string | undefined;
  constructor(message: string, options: TaskDefinitionErrorOptions = {}) {
    const { taskName, field, ...errorOptions } = options;
    super(message, errorOptions);
    this.name = "TaskDefinitionError";
    this.taskName = taskName;
    this.field = field;
  }
}

/**
 * A value as a definition error shows it: strings quoted, numbers, booleans, `null` and
 * `undefined` as written, anything else by its kind.
 *
 * @example
 * ```ts
 * showValue("x"); // '"x"'
 * showValue([1]); // "an array"
 * ```
 */
export function showValue(value: unknown): string {
  if (value === undefined) return "undefined";
  if (value === null) return "null";
  if (typeof value === "string") return JSON.stringify(value);
  if (typeof value === "number" || typeof value === "boolean") return String(value);
  return Array.isArray(value) ? "an array" : typeof value;
}

/**
 * Builds a {@linkcode TaskDefinitionError} with the standard message
 * `invalid task "<name>": <field>: <detail>; fix the defineTask call`.
 *
 * @example
 * ```ts
 * const error = definitionError("word_count", "controls.retry.count", "must be 0..10, got 11");
 * error.message; // names the task, the field and the detail
 * ```
 */
export function definitionError(
  taskName: string | undefined,
  field: string,
  detail: string,
  options: ErrorOptions = {},
): TaskDefinitionError {
  const subject = taskName === undefined
    ? "invalid task definition"
    : `invalid task ${JSON.stringify(taskName)}`;
  return new TaskDefinitionError(`${subject}: ${field}: ${detail}; fix the defineTask call`, {
    ...options,
    ...(taskName === undefined ? {} : { taskName }),
    field,
  });
}

/** A workspace guardrail failed. Base class of the pre and post variants. */
export class GuardrailViolation extends Error {
  /** `pre` or `post`. */
  readonly phase: "pre" | "post";
  /** One line per failed guardrail. */
  readonly failures: readonly string[];
  constructor(
    message: string,
    options: ErrorOptions & { phase: "pre" | "post"; failures?: readonly string[] },
  ) {
    const { phase, failures, ...errorOptions } = options;
    super(message, errorOptions);
    this.name = "GuardrailViolation";
    this.phase = phase;
    this.failures = Object.freeze([...(failures ?? [message])]);
  }
}

/**
 * A pre guardrail failed: the downloaded workspace is not what the task needs, so retrying
 * cannot help. Terminal (`FAILED_WITH_TERMINAL_ERROR`).
 */
export class PreGuardrailViolation extends GuardrailViolation {
  /** Always true: the attempt reports `FAILED_WITH_TERMINAL_ERROR`. */
  readonly terminal = true;
  constructor(message: string, options: ErrorOptions & { failures?: readonly string[] } = {}) {
    super(message, { ...options, phase: "pre" });
    this.name = "PreGuardrailViolation";
  }
}

/**
 * A post guardrail failed: the task function left the workspace in a state it promised not
 * to. An ordinary failure (`FAILED`, retried per the TaskDef); nothing is published.
 */
export class PostGuardrailViolation extends GuardrailViolation {
  constructor(message: string, options: ErrorOptions & { failures?: readonly string[] } = {}) {
    super(message, { ...options, phase: "post" });
    this.name = "PostGuardrailViolation";
  }
}

/**
 * Whether an error thrown by an attempt maps to `FAILED_WITH_TERMINAL_ERROR`: a
 * {@linkcode TaskTerminalError} (also one from another copy of this module, recognised by
 * name), a {@linkcode PreGuardrailViolation}, or any error that declares `terminal: true`
 * (the workspace layer marks failures no retry of the same input can fix that way).
 * Everything else is `FAILED`.
 *
 * @example
 * ```ts
 * const error: unknown = new TaskTerminalError("word_count: no text; pass params.text");
 * const status = isTerminalError(error) ? "FAILED_WITH_TERMINAL_ERROR" : "FAILED";
 * ```
 */
export function isTerminalError(error: unknown): boolean {
  if (error instanceof TaskTerminalError || error instanceof PreGuardrailViolation) return true;
  if (!(error instanceof Error)) return false;
  return error.name === "TaskTerminalError" || error.name === "PreGuardrailViolation" ||
    (error as { terminal?: unknown }).terminal === true;
}
