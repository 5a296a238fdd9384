/**
 * The per-task-type settings of a deployment: the Conductor task domain each served task type
 * polls, a per-host cap on the attempts of one type, and the types a supervisor leaves
 * alone (paused). Task authors set defaults in `defineTask({ worker })`; these variables are
 * the operator's word, for one deployment:
 *
 * - `PERAGO_TASK_DOMAIN`: the domain of every served task type;
 * - `PERAGO_TASK_DOMAIN_<NAME>`: the domain of one type (`NO_DOMAIN` = the default queue);
 * - `PERAGO_TASK_CONCURRENCY_<NAME>`: the most attempts of one type in flight on this host;
 * - `PERAGO_TASK_PAUSED`: task types this supervisor does not poll (comma or space separated).
 *
 * `<NAME>` is the task name upper-cased with every character other than A-Z and 0-9 as `_`
 * ({@linkcode taskVariableSuffix}).
 *
 * @module
 */
import { ConfigError } from "./errors.ts";
import { type Env, trimmed } from "./parse.ts";

/** The global variables of this module (per-task ones come from {@linkcode taskEnvVars}). */
export const TASK_ENV_VARS: readonly string[] = Object.freeze([
  "PERAGO_TASK_DOMAIN",
  "PERAGO_TASK_PAUSED",
]);

/** The word Conductor uses for "the default queue" in `taskToDomain`, accepted here too. */
export const NO_DOMAIN = "NO_DOMAIN";

/** Most attempts of one type a host may be told to run at once. */
export const MAX_TASK_CONCURRENCY = 1000;

const DOMAIN_PATTERN = /^[A-Za-z0-9_.-]{1,255}$/;
const TASK_NAME_PATTERN = /^[A-Za-z0-9_.-]{1,255}$/;

/** What a deployment says about one served task type. */
export interface TaskSettings {
  /** The task type (the Conductor TaskDef name). */
  readonly name: string;
  /** The domain polls of this type carry; `undefined` = the default queue. */
  readonly domain: string | undefined;
  /** The variable that gave {@linkcode domain}, when one did. */
  readonly domainVariable: string | undefined;
  /** `PERAGO_TASK_CONCURRENCY_<NAME>`, when set. */
  readonly concurrency: number | undefined;
  /** Listed in `PERAGO_TASK_PAUSED`: never polled by this supervisor. */
  readonly paused: boolean;
}

/**
 * The `<NAME>` of the per-task variables: `name` upper-cased, every character other than
 * A-Z and 0-9 replaced by `_`.
 *
 * @example
 * ```ts
 * taskVariableSuffix("features.build-v2"); // "FEATURES_BUILD_V2"
 * ```
 */
export function taskVariableSuffix(name: string): string {
  return name.toUpperCase().replace(/[^A-Z0-9]/g, "_");
}

/** `PERAGO_TASK_DOMAIN_<NAME>` of `name`. */
export function taskDomainVariable(name: string): string {
  return `PERAGO_TASK_DOMAIN_${taskVariableSuffix(name)}`;
}

/** `PERAGO_TASK_CONCURRENCY_<NAME>` of `name`. */
export function taskConcurrencyVariable(name: string): string {
  return `PERAGO_TASK_CONCURRENCY_${taskVariableSuffix(name)}`;
}

/**
 * The per-task variables of `names`, for reading them one by one and for `--allow-env`.
 *
 * @example
 * ```ts
 * taskEnvVars(["word_count"]);
 * // ["PERAGO_TASK_DOMAIN_WORD_COUNT", "PERAGO_TASK_CONCURRENCY_WORD_COUNT"]
 * ```
 */
export function taskEnvVars(names: readonly string[]): string[] {
  const vars = names.flatMap((name) => [taskDomainVariable(name), taskConcurrencyVariable(name)]);
  return [...new Set(vars)];
}

function got(value: string): string {
  return ` (got ${JSON.stringify(value)})`;
}

/**
 * Parses a domain variable: `undefined` when unset or blank, `null` for `NO_DOMAIN` (any
 * case: the default queue), else the domain: 1..255 of A-Z, a-z, 0-9, `_`, `.` and `-`
 * (Conductor keys its queues `<domain>:<taskType>` and splits `taskToDomain` lists at commas,
 * so neither may appear).
 *
 * @throws {ConfigError} naming `variable`.
 * @example
 * ```ts
 * parseTaskDomain("staging", "PERAGO_TASK_DOMAIN"); // "staging"
 * parseTaskDomain("no_domain", "PERAGO_TASK_DOMAIN"); // null
 * ```
 */
export function parseTaskDomain(
  value: string | undefined,
  variable: string,
): string | null | undefined {
  const text = trimmed(value);
  if (text === undefined) return undefined;
  if (text.toUpperCase() === NO_DOMAIN) return null;
  if (!DOMAIN_PATTERN.test(text)) {
    throw new ConfigError(
      `${variable} must be a Conductor task domain of 1 to 255 letters, digits, '_', '.' ` +
        `or '-', or ${NO_DOMAIN} for the default queue${got(value ?? "")}`,
      { variable },
    );
  }
  return text;
}

/**
 * Parses `PERAGO_TASK_PAUSED`: task names separated by commas and/or whitespace; unset gives
 * `[]`. Duplicates are dropped, the order kept.
 *
 * @throws {ConfigError} for a name a task could not have.
 * @example
 * ```ts
 * parseTaskPaused("resize, thumbnails"); // ["resize", "thumbnails"]
 * ```
 */
export function parseTaskPaused(value: string | undefined): readonly string[] {
  const text = trimmed(value);
  if (text === undefined) return Object.freeze([]);
  const variable = "PERAGO_TASK_PAUSED";
  const names: string[] = [];
  for (const name of text.split(/[\s,]+/).filter((part) => part !== "")) {
    if (!TASK_NAME_PATTERN.test(name)) {
      throw new ConfigError(
        `${variable} must list task names (letters, digits, '_', '.' or '-') separated by ` +
          `commas or spaces; ${JSON.stringify(name)} is not one${got(value ?? "")}`,
        { variable },
      );
    }
    if (!names.includes(name)) names.push(name);
  }
  return Object.freeze(names);
}

/**
 * Parses a `PERAGO_TASK_CONCURRENCY_<NAME>` value: an integer from 1 to
 * {@linkcode MAX_TASK_CONCURRENCY}; unset gives `undefined`.
 *
 * @throws {ConfigError} naming `variable`.
 */
export function parseTaskConcurrency(
  value: string | undefined,
  variable: string,
): number | undefined {
  const text = trimmed(value);
  if (text === undefined) return undefined;
  const parsed = /^[0-9]+$/.test(text) ? Number(text) : NaN;
  if (!(parsed >= 1 && parsed <= MAX_TASK_CONCURRENCY)) {
    throw new ConfigError(
      `${variable} must be an integer from 1 to ${MAX_TASK_CONCURRENCY} (to stop a task ` +
        `type, list it in PERAGO_TASK_PAUSED)${got(value ?? "")}`,
      { variable },
    );
  }
  return parsed;
}

/**
 * The settings of each of `names` from `env`: a per-task domain variable wins over
 * `PERAGO_TASK_DOMAIN` (its `NO_DOMAIN` restores the default queue for that type).
 *
 * @throws {ConfigError} for the first bad value, naming its variable.
 * @example
 * ```ts
 * const [wordCount] = parseTaskSettings(
 *   { PERAGO_TASK_DOMAIN: "staging", PERAGO_TASK_CONCURRENCY_WORD_COUNT: "2" },
 *   ["word_count"],
 * );
 * wordCount?.domain; // "staging"
 * wordCount?.concurrency; // 2
 * ```
 */
export function parseTaskSettings(env: Env, names: readonly string[]): TaskSettings[] {
  const globalDomain = parseTaskDomain(env["PERAGO_TASK_DOMAIN"], "PERAGO_TASK_DOMAIN");
  const paused = parseTaskPaused(env["PERAGO_TASK_PAUSED"]);
  return names.map((name) => {
    const domainVariable = taskDomainVariable(name);
    const own = parseTaskDomain(env[domainVariable], domainVariable);
    const domain = own !== undefined ? own : globalDomain;
    const source = own !== undefined
      ? domainVariable
      : globalDomain !== undefined
      ? "PERAGO_TASK_DOMAIN"
      : undefined;
    const concurrencyVariable = taskConcurrencyVariable(name);
    return Object.freeze({
      name,
      domain: domain ?? undefined,
      domainVariable: source,
      concurrency: parseTaskConcurrency(env[concurrencyVariable], concurrencyVariable),
      paused: paused.includes(name),
    });
  });
}
