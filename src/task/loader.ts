/**
 * Loads a task module and returns the task it exports by default.
 *
 * @module
 */
import { fromFileUrl, isAbsolute, resolve, toFileUrl } from "../util/path.ts";
import { TASK_BRAND, type TaskDefinition } from "./types.ts";

/** A task module could not be loaded: missing, broken, or not exporting a task. */
export class TaskLoadError extends Error {
  /** The absolute path of the module (or the target as given when it was not a path). */
  readonly modulePath: string;
  constructor(message: string, options: ErrorOptions & { modulePath: string }) {
    const { modulePath, ...errorOptions } = options;
    super(message, errorOptions);
    this.name = "TaskLoadError";
    this.modulePath = modulePath;
  }
}

/** A loaded task module. */
export interface LoadedTask {
  /** The default export, made by `defineTask`. */
  readonly task: TaskDefinition;
  /** Absolute filesystem path of the module. */
  readonly modulePath: string;
  /** `file:` URL of the module, as imported. */
  readonly moduleUrl: string;
}

/**
 * Imports the task module `moduleTarget` (a relative or absolute path, or a `file:` URL) and
 * returns its default export, which must be made by `defineTask`. Relative paths resolve
 * against `cwd` (default: the working directory).
 *
 * Requires `--allow-read` on the module and what it imports.
 *
 * @throws {TaskLoadError} when the file is missing, does not compile or throws while being
 * imported (the message carries the first line of the cause), has no default export, or its
 * default export was not made by `defineTask`.
 * @example
 * ```ts
 * const { task } = await loadTask("examples/word_count.ts");
 * task.name; // "word_count"
 * ```
 */
export async function loadTask(
  moduleTarget: string,
  options: { cwd?: string } = {},
): Promise<LoadedTask> {
  const modulePath = toPath(moduleTarget, options.cwd);
  let info: Deno.FileInfo;
  try {
    // Synchronous, so an executor loading its tasks starts no thread pool for file calls (see
    // removeExpiredLogs in src/log/_retention.ts).
    info = Deno.statSync(modulePath);
  } catch (error) {
    if (error instanceof Deno.errors.NotFound) {
      throw new TaskLoadError(
        `task module not found: ${modulePath}; check the path (relative paths start from ${
          options.cwd ?? Deno.cwd()
        })`,
        { modulePath, cause: error },
      );
    }
    throw new TaskLoadError(
      `cannot read task module ${modulePath}: ${firstLine(error)}; check its permissions`,
      { modulePath, cause: error },
    );
  }
  if (!info.isFile) {
    throw new TaskLoadError(
      `task module ${modulePath} is not a file; give the path of a .ts or .js module`,
      { modulePath },
    );
  }
  const moduleUrl = toFileUrl(modulePath).href;
  let namespace: Record<string, unknown>;
  try {
    namespace = await import(moduleUrl);
  } catch (error) {
    throw new TaskLoadError(
      `cannot import task module ${modulePath}: ${firstLine(error)}; fix the module and retry`,
      { modulePath, cause: error },
    );
  }
  if (!("default" in namespace) || namespace.default === undefined) {
    throw new TaskLoadError(
      `${modulePath} has no default export; export default defineTask({...})`,
      { modulePath },
    );
  }
  const task = namespace.default;
  if (!isTaskDefinition(task)) {
    throw new TaskLoadError(
      `the default export of ${modulePath} is not a task (got ${
        describe(task)
      }); export default defineTask({...})`,
      { modulePath },
    );
  }
  return { task, modulePath, moduleUrl };
}

/** Whether `value` was made by `defineTask` (it carries the task brand). */
export function isTaskDefinition(value: unknown): value is TaskDefinition {
  return value !== null && typeof value === "object" &&
    (value as Record<symbol, unknown>)[TASK_BRAND] === true;
}

function toPath(target: string, cwd: string | undefined): string {
  if (typeof target !== "string" || target === "") {
    throw new TaskLoadError("task module not given; pass the path of a task module", {
      modulePath: String(target),
    });
  }
  if (target.startsWith("file:")) {
    try {
      return fromFileUrl(target);
    } catch (error) {
      throw new TaskLoadError(`invalid task module URL ${target}: ${firstLine(error)}`, {
        modulePath: target,
        cause: error,
      });
    }
  }
  if (/^[a-z][a-z0-9+.-]*:\/\//i.test(target)) {
    throw new TaskLoadError(
      `task module must be a local file, got ${target}; download it and pass its path`,
      { modulePath: target },
    );
  }
  return isAbsolute(target) ? resolve(target) : resolve(cwd ?? Deno.cwd(), target);
}

/** The first line of an error, plus the source location Deno appends to parse errors. */
function firstLine(error: unknown): string {
  let text = String(error);
  if (error instanceof Error) {
    text = /^\w*Error: /.test(error.message) ? error.message : `${error.name}: ${error.message}`;
  }
  const lines = text.split("\n");
  const first = (lines.find((l) => l.trim() !== "") ?? text).trim();
  const location = lines.map((l) => /^\s*at (file:\S+:\d+:\d+)\s*$/.exec(l)?.[1]).find(
    (l) => l !== undefined,
  );
  return location === undefined ? first : `${first} (at ${location})`;
}

function describe(value: unknown): string {
  if (value === null) return "null";
  if (Array.isArray(value)) return "an array";
  if (typeof value === "function") return "a function";
  if (typeof value === "object") return "an object not made by defineTask";
  return typeof value === "string" ? `a string` : typeof value;
}
