/**
 * The only module the rest of perago uses for logging: loggers under the root category
 * `"perago"`, implicit context, and the adapter to the task author's `ctx.log`. Swapping the
 * logging library means changing this module and `setup.ts`.
 *
 * @module
 */
import {
  getLogger as getLogtapeLogger,
  type Logger as LogtapeLogger,
  withContext,
} from "../vendor/logtape.ts";
import type { TaskLogger } from "../task/types.ts";

/** The root category of every perago logger. */
export const ROOT_CATEGORY = "perago";

/**
 * A logger. Messages are templates: `{name}` is replaced by the property `name`
 * (`logger.info("claimed {count} tasks", { count })`); `{{` and `}}` are literal braces.
 * Properties named `workflow_instance_id`/`workflowInstanceId`, `task_id`/`taskId`,
 * `execution_id`/`executionId`, `retry_count`/`retryCount` and
 * `task_def_name`/`taskDefName` become top-level fields of the JSON line; the rest go under
 * `extra`.
 */
export type Logger = LogtapeLogger;

/**
 * A logger for `perago.<category...>`.
 *
 * @example
 * ```ts
 * const log = getLogger("runtime", "broker");
 * log.info("polled {count} tasks", { count: 3 });
 * log.with({ task_id: "t1" }).warn("lease extension failed", { error: "timeout" });
 * ```
 */
export function getLogger(...category: string[]): Logger {
  return getLogtapeLogger([ROOT_CATEGORY, ...category]);
}

/**
 * Runs `fn` with `properties` added to every record logged inside it (async calls included),
 * e.g. the ids of the attempt being run.
 *
 * @example
 * ```ts
 * const done = await withLogContext({ task_id: "t1" }, () => {
 *   getLogger("runtime").info("attempt started"); // carries task_id "t1"
 *   return Promise.resolve(true);
 * });
 * ```
 */
export function withLogContext<T>(properties: Record<string, unknown>, fn: () => T): T {
  return withContext(properties, fn);
}

/** Makes a plain-text message safe from template interpretation. */
function literal(message: string): string {
  return message.replaceAll("{", "{{").replaceAll("}", "}}");
}

/**
 * Adapts a logger to the task author's `ctx.log`: messages are plain text (braces are kept
 * as written), properties go to the record.
 *
 * @example
 * ```ts
 * const log = taskLogger(getLogger("task").with({ task_id: "t1" }));
 * log.info("wrote {x}", { files: 3 }); // message "wrote {x}", extra.files = 3
 * ```
 */
export function taskLogger(logger: Logger): TaskLogger {
  return Object.freeze({
    debug: (message: string, properties: Record<string, unknown> = {}) =>
      logger.debug(literal(String(message)), properties),
    info: (message: string, properties: Record<string, unknown> = {}) =>
      logger.info(literal(String(message)), properties),
    warn: (message: string, properties: Record<string, unknown> = {}) =>
      logger.warn(literal(String(message)), properties),
    error: (message: string, properties: Record<string, unknown> = {}) =>
      logger.error(literal(String(message)), properties),
  });
}
