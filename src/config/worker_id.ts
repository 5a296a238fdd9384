/**
 * Worker identities: the prefix, the worker id of a lone worker, and the ids the supervisor hands
 * to its executors and broker.
 *
 * @module
 */
import { ConfigError } from "./errors.ts";
import type { Env } from "./parse.ts";

const PREFIX_VARIABLE = "PERAGO_WORKER_ID_PREFIX";

/**
 * Checks a worker id prefix: non-empty, ASCII letters and digits only.
 *
 * @throws {ConfigError} naming `PERAGO_WORKER_ID_PREFIX`.
 */
export function validateWorkerIdPrefix(value: string, detail = ""): string {
  if (value === "") {
    throw new ConfigError(`${PREFIX_VARIABLE} must not be empty${detail}`, {
      variable: PREFIX_VARIABLE,
    });
  }
  if (!/^[A-Za-z0-9]+$/.test(value)) {
    throw new ConfigError(
      `${PREFIX_VARIABLE} must contain only ASCII letters and digits${detail}`,
      { variable: PREFIX_VARIABLE },
    );
  }
  return value;
}

/**
 * The stem of a module target (a path or URL): its last path segment without query, fragment
 * or extension. `examples/normalize_text.ts` -> `normalize_text`.
 */
export function moduleStem(moduleTarget: string): string {
  let path = moduleTarget;
  if (/^[A-Za-z][A-Za-z0-9+.-]+:/.test(moduleTarget)) {
    try {
      path = decodeURIComponent(new URL(moduleTarget).pathname);
    } catch {
      path = moduleTarget;
    }
  }
  const segment = path.split(/[\\/]/).filter((part) => part !== "").at(-1) ?? "";
  const dot = segment.lastIndexOf(".");
  return dot > 0 ? segment.slice(0, dot) : segment;
}

/**
 * The default prefix of a module: the ASCII letters and digits of its file stem.
 *
 * @throws {ConfigError} when nothing is left (set `PERAGO_WORKER_ID_PREFIX` then).
 * @example
 * ```ts
 * defaultWorkerIdPrefix("examples/normalize_text.ts"); // "normalizetext"
 * ```
 */
export function defaultWorkerIdPrefix(moduleTarget: string): string {
  const candidate = moduleStem(moduleTarget).replace(/[^A-Za-z0-9]+/g, "");
  return validateWorkerIdPrefix(
    candidate,
    ` (the module ${
      JSON.stringify(moduleTarget)
    } has no ASCII letters or digits to derive it from)`,
  );
}

/**
 * `PERAGO_WORKER_ID_PREFIX` (trimmed; if set it must be valid, even when blank) or the
 * module's default prefix.
 *
 * @example
 * ```ts
 * resolveWorkerIdPrefix("tasks/build.ts", { PERAGO_WORKER_ID_PREFIX: "featuresBuild" });
 * ```
 */
export function resolveWorkerIdPrefix(moduleTarget: string, env: Env): string {
  const configured = env[PREFIX_VARIABLE];
  if (configured !== undefined) {
    const value = configured.trim();
    return validateWorkerIdPrefix(value, /^[A-Za-z0-9]*$/.test(value) ? "" : got(configured));
  }
  return defaultWorkerIdPrefix(moduleTarget);
}

function got(value: string): string {
  return ` (got ${JSON.stringify(value)})`;
}

/**
 * The id of this worker process: `PERAGO_WORKER_ID` when set (the supervisor sets it for its
 * children), else `<default prefix>-pid-<pid>`. The fallback uses the module's default prefix, not
 * `PERAGO_WORKER_ID_PREFIX`, so a lone worker's id depends on its module only.
 *
 * @example
 * ```ts
 * resolveWorkerId("tasks/build.ts", {}, 42); // "build-pid-42"
 * ```
 */
export function resolveWorkerId(moduleTarget: string, env: Env, pid: number = Deno.pid): string {
  const configured = env["PERAGO_WORKER_ID"]?.trim();
  if (configured) return configured;
  return `${defaultWorkerIdPrefix(moduleTarget)}-pid-${pid}`;
}

/**
 * The worker id of executor `slot`: `<prefix><slot, 4 digits>`.
 *
 * @example
 * ```ts
 * childWorkerId("build", 3); // "build0003"
 * ```
 */
export function childWorkerId(prefix: string, slot: number): string {
  if (!Number.isSafeInteger(slot) || slot < 0) {
    throw new RangeError(`executor slot must be a non-negative integer (got ${slot})`);
  }
  return `${prefix}${String(slot).padStart(4, "0")}`;
}

/**
 * The worker id of the broker: `<prefix>Broker`.
 *
 * @example
 * ```ts
 * brokerWorkerId("build"); // "buildBroker"
 * ```
 */
export function brokerWorkerId(prefix: string): string {
  return `${prefix}Broker`;
}

/**
 * The environment of executor `slot`: a copy of `baseEnv` with `PERAGO_WORKER_ID_PREFIX` and
 * `PERAGO_WORKER_ID` set.
 *
 * @example
 * ```ts
 * childEnvironment({}, "tasks/build.ts", 1).PERAGO_WORKER_ID; // "build0001"
 * ```
 */
export function childEnvironment(
  baseEnv: Readonly<Record<string, string>>,
  moduleTarget: string,
  slot: number,
): Record<string, string> {
  const env = { ...baseEnv };
  const prefix = resolveWorkerIdPrefix(moduleTarget, env);
  env[PREFIX_VARIABLE] = prefix;
  env["PERAGO_WORKER_ID"] = childWorkerId(prefix, slot);
  return env;
}
