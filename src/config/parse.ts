/**
 * The value parsers of the configuration, one per kind of variable. Each takes the raw value
 * (possibly `undefined`), trims it, treats an empty value as unset, and throws
 * {@linkcode ConfigError} with a one-line message naming the variable for anything else it
 * cannot accept.
 *
 * @module
 */
import { ConfigError } from "./errors.ts";
import { Secret } from "./secret.ts";

/** The environment as the parsers see it. */
export type Env = Readonly<Record<string, string | undefined>>;

/** Execution model of the executors: child processes or Web Workers. */
export type ExecutionMode = "process" | "thread";

/**
 * How a published workspace reference spells its type key: `snake` = `ref_type` (the form
 * of this project's contract), `camel` = `refType` (what perago for Python emits).
 */
export type WorkspaceRefStyle = "snake" | "camel";

/** Byte multipliers of the log size units (binary: 1 KB is 1024 bytes). */
export const LOG_SIZE_UNITS: Readonly<Record<"KB" | "MB" | "GB", number>> = Object.freeze({
  KB: 1024,
  MB: 1024 * 1024,
  GB: 1024 * 1024 * 1024,
});

const SECOND_MS = 1_000;
const MINUTE_MS = 60 * SECOND_MS;
const HOUR_MS = 60 * MINUTE_MS;
const DAY_MS = 24 * HOUR_MS;

/** `PERAGO_LOG_FILE_MAX_SIZE` default: 100 MB. */
export const DEFAULT_LOG_FILE_MAX_SIZE_BYTES = 100 * LOG_SIZE_UNITS.MB;
/** `PERAGO_LOG_RETENTION` default: 30 days. */
export const DEFAULT_LOG_RETENTION_MS = 30 * DAY_MS;
/** `PERAGO_EXECUTION_MODE` default. */
export const DEFAULT_EXECUTION_MODE: ExecutionMode = "process";
/** `PERAGO_WORKSPACE_REF_STYLE` default. */
export const DEFAULT_WORKSPACE_REF_STYLE: WorkspaceRefStyle = "snake";
/** `PERAGO_WORKSPACE_GC_TTL` default: 24 hours. */
export const DEFAULT_WORKSPACE_GC_TTL_MS = 24 * HOUR_MS;
/** `PERAGO_WORKSPACE_GC_INTERVAL` default: 1 hour. */
export const DEFAULT_WORKSPACE_GC_INTERVAL_MS = HOUR_MS;
/** `PERAGO_FAILURE_REASON_MAX_LENGTH` default. */
export const DEFAULT_FAILURE_REASON_MAX_LENGTH = 500;

/** The placeholder of the example `.env`, rejected wherever a connection value is read. */
export const PLACEHOLDER = "replace-me";

/** `(got "...")` for a value that may be shown; callers never pass secrets here. */
function got(value: string): string {
  return ` (got ${JSON.stringify(value)})`;
}

/** The trimmed value, or `undefined` when unset or blank. */
export function trimmed(value: string | undefined): string | undefined {
  if (value === undefined) return undefined;
  const result = value.trim();
  return result === "" ? undefined : result;
}

/**
 * Parses `PERAGO_LOG_FILE_MAX_SIZE`: a decimal amount and a unit KB, MB or GB (binary,
 * case-insensitive, optional space between), rounded up to whole bytes. Unset: 100 MB.
 *
 * @example
 * ```ts
 * parseLogFileMaxSize("1.5kb"); // 1536
 * ```
 */
export function parseLogFileMaxSize(value: string | undefined): number {
  const text = trimmed(value);
  if (text === undefined) return DEFAULT_LOG_FILE_MAX_SIZE_BYTES;
  const name = "PERAGO_LOG_FILE_MAX_SIZE";
  const bytes = parseSizeBytes(
    text,
    value ?? "",
    name,
    "must be a positive size such as '512KB', '100MB', or '1.5GB'",
  );
  if (bytes === 0) {
    throw new ConfigError(`${name} must be greater than zero${got(value ?? "")}`, {
      variable: name,
    });
  }
  return bytes;
}

/** `PERAGO_OBJECT_CACHE_MAX_SIZE` default: 5 GB. */
export const DEFAULT_OBJECT_CACHE_MAX_SIZE_BYTES = 5 * LOG_SIZE_UNITS.GB;

/**
 * Parses `PERAGO_OBJECT_CACHE_MAX_SIZE`, the bound of the host's object cache: a size in
 * the syntax of `PERAGO_LOG_FILE_MAX_SIZE` (`512MB`, `1.5GB`), or `0` (with or without a
 * unit) to turn the cache off. Unset: 5 GB.
 *
 * @example
 * ```ts
 * parseObjectCacheMaxSize("20GB"); // 21474836480
 * parseObjectCacheMaxSize("0"); // 0 (no cache)
 * ```
 */
export function parseObjectCacheMaxSize(value: string | undefined): number {
  const text = trimmed(value);
  if (text === undefined) return DEFAULT_OBJECT_CACHE_MAX_SIZE_BYTES;
  if (text === "0") return 0;
  return parseSizeBytes(
    text,
    value ?? "",
    "PERAGO_OBJECT_CACHE_MAX_SIZE",
    "must be a size such as '512MB', '5GB' or '1.5GB', or 0 for no cache",
  );
}

/**
 * `<amount>[ ]<KB|MB|GB>` in bytes (rounded up; 0 allowed); `what` completes the error, which
 * quotes the raw value.
 */
function parseSizeBytes(text: string, raw: string, name: string, what: string): number {
  const match = /^((?:0|[1-9][0-9]*)(?:\.([0-9]+))?)\s*(KB|MB|GB)$/i.exec(text);
  if (match === null) {
    throw new ConfigError(`${name} ${what}${got(raw)}`, { variable: name });
  }
  const [, amount = "", fraction = "", unitText = ""] = match;
  const unit = LOG_SIZE_UNITS[unitText.toUpperCase() as keyof typeof LOG_SIZE_UNITS];
  // Exact decimal arithmetic, rounded up to a whole byte ("0.001KB" is 2 bytes): no float
  // error can make a size one byte short.
  const digits = BigInt(amount.replace(".", ""));
  const scale = 10n ** BigInt(fraction.length);
  const numerator = digits * BigInt(unit);
  const bytes = (numerator + scale - 1n) / scale;
  if (bytes > BigInt(Number.MAX_SAFE_INTEGER)) {
    throw new ConfigError(`${name} ${what}${got(raw)}`, { variable: name });
  }
  return Number(bytes);
}

/**
 * Parses `PERAGO_LOG_RETENTION`: a positive day count such as `7d` (case-insensitive),
 * returned in milliseconds. Unset: 30 days.
 *
 * @example
 * ```ts
 * parseLogRetention("7d"); // 604800000
 * ```
 */
export function parseLogRetention(value: string | undefined): number {
  const text = trimmed(value);
  if (text === undefined) return DEFAULT_LOG_RETENTION_MS;
  const name = "PERAGO_LOG_RETENTION";
  const match = /^([1-9][0-9]*)d$/i.exec(text);
  const days = match === null ? NaN : Number(match[1]);
  if (!Number.isSafeInteger(days * DAY_MS)) {
    throw new ConfigError(
      `${name} must be a positive day count such as '7d' or '30d'${got(value ?? "")}`,
      { variable: name },
    );
  }
  return days * DAY_MS;
}

/**
 * Parses `PERAGO_EXECUTION_MODE` (`process` or `thread`, case-insensitive). Unset: `process`.
 *
 * @example
 * ```ts
 * parseExecutionMode(" Thread "); // "thread"
 * ```
 */
export function parseExecutionMode(
  value: string | undefined,
  name = "PERAGO_EXECUTION_MODE",
): ExecutionMode {
  const text = trimmed(value);
  if (text === undefined) return DEFAULT_EXECUTION_MODE;
  const mode = text.toLowerCase();
  if (mode !== "process" && mode !== "thread") {
    throw new ConfigError(
      `${name} must be either 'process' or 'thread'${got(value ?? "")}`,
      { variable: name },
    );
  }
  return mode;
}

/**
 * Parses `PERAGO_WORKSPACE_REF_STYLE` (`snake` or `camel`, case-insensitive). Unset: `snake`.
 *
 * @example
 * ```ts
 * parseWorkspaceRefStyle("camel"); // "camel"
 * ```
 */
export function parseWorkspaceRefStyle(value: string | undefined): WorkspaceRefStyle {
  const text = trimmed(value);
  if (text === undefined) return DEFAULT_WORKSPACE_REF_STYLE;
  const name = "PERAGO_WORKSPACE_REF_STYLE";
  const style = text.toLowerCase();
  if (style !== "snake" && style !== "camel") {
    throw new ConfigError(
      `${name} must be either 'snake' (ref_type) or 'camel' (refType)${got(value ?? "")}`,
      { variable: name },
    );
  }
  return style;
}

const DURATION_UNIT_MS: Readonly<Record<string, number>> = {
  s: SECOND_MS,
  m: MINUTE_MS,
  h: HOUR_MS,
  d: DAY_MS,
};

/**
 * Parses a duration `[1-9][0-9]*[smhd]` (unit case-insensitive) into milliseconds; unset
 * gives `defaultMs`.
 *
 * @example
 * ```ts
 * parseDuration("5m", { defaultMs: 0, name: "PERAGO_WORKSPACE_GC_TTL" }); // 300000
 * ```
 */
export function parseDuration(
  value: string | undefined,
  options: { defaultMs: number; name: string },
): number {
  const text = trimmed(value);
  if (text === undefined) return options.defaultMs;
  const match = /^([1-9][0-9]*)([smhd])$/i.exec(text);
  const unitMs = DURATION_UNIT_MS[(match?.[2] ?? "").toLowerCase()];
  const ms = match === null || unitMs === undefined ? NaN : Number(match[1]) * unitMs;
  if (!Number.isSafeInteger(ms)) {
    throw new ConfigError(
      `${options.name} must be a positive duration such as '30s', '5m', '1h', or '24h'${
        got(value ?? "")
      }`,
      { variable: options.name },
    );
  }
  return ms;
}

/**
 * Like {@linkcode parseDuration} but unset gives `undefined` (for
 * `PERAGO_SHUTDOWN_FORCE_KILL_AFTER`: unset means wait for the drain).
 *
 * @example
 * ```ts
 * parseOptionalDuration("", "PERAGO_SHUTDOWN_FORCE_KILL_AFTER"); // undefined
 * ```
 */
export function parseOptionalDuration(value: string | undefined, name: string): number | undefined {
  if (trimmed(value) === undefined) return undefined;
  return parseDuration(value, { defaultMs: SECOND_MS, name });
}

/**
 * Parses `PERAGO_FAILURE_REASON_MAX_LENGTH`: digits only, greater than zero. Unset: 500.
 *
 * @example
 * ```ts
 * parseFailureReasonMaxLength("200"); // 200
 * ```
 */
export function parseFailureReasonMaxLength(value: string | undefined): number {
  const text = trimmed(value);
  if (text === undefined) return DEFAULT_FAILURE_REASON_MAX_LENGTH;
  const name = "PERAGO_FAILURE_REASON_MAX_LENGTH";
  const parsed = /^[0-9]+$/.test(text) ? Number(text) : NaN;
  if (!Number.isSafeInteger(parsed)) {
    throw new ConfigError(`${name} must be a positive integer${got(value ?? "")}`, {
      variable: name,
    });
  }
  if (parsed <= 0) {
    throw new ConfigError(`${name} must be greater than zero${got(value ?? "")}`, {
      variable: name,
    });
  }
  return parsed;
}

/** A `host:port` to listen on. */
export interface ListenAddress {
  /** IPv4 address, host name, or IPv6 address without brackets. */
  readonly hostname: string;
  /** 0..65535; 0 picks a free port. */
  readonly port: number;
}

/**
 * Parses a listen address such as `PERAGO_METRICS_ADDRESS`: `host:port`, `[ipv6]:port` or
 * `:port` (all interfaces: `0.0.0.0`). Unset: `undefined` (the listener is off).
 *
 * @example
 * ```ts
 * parseListenAddress("127.0.0.1:9464", "PERAGO_METRICS_ADDRESS"); // { hostname: "127.0.0.1", port: 9464 }
 * ```
 */
export function parseListenAddress(
  value: string | undefined,
  name: string,
): ListenAddress | undefined {
  const text = trimmed(value);
  if (text === undefined) return undefined;
  const match = /^(?:\[([0-9A-Fa-f:.]+)\]|([A-Za-z0-9.-]*)):([0-9]{1,5})$/.exec(text);
  const hostname = match ? (match[1] ?? match[2] ?? "") : "";
  const port = match ? Number(match[3]) : NaN;
  if (
    match === null || !(port <= 65535) || hostname.startsWith("-") || hostname.startsWith(".") ||
    hostname.endsWith(".") || hostname.includes("..")
  ) {
    throw new ConfigError(
      `${name} must be host:port such as '127.0.0.1:9464', '[::1]:9464' or ':9464'` +
        got(value ?? ""),
      { variable: name },
    );
  }
  return Object.freeze({ hostname: hostname === "" ? "0.0.0.0" : hostname, port });
}

/** `PERAGO_EXECUTOR_MAX_HEAP_MB` default: 1024 MiB of V8 heap per executor process. */
export const DEFAULT_EXECUTOR_MAX_HEAP_MB = 1024;

/**
 * Parses `PERAGO_EXECUTOR_MAX_HEAP_MB`: the V8 heap limit of each executor process in MiB
 * (`--max-old-space-size`), 64 to 1048576, or `0` for V8's own limit. Unset: 1024.
 *
 * @example
 * ```ts
 * parseExecutorMaxHeapMb("4096"); // 4096
 * parseExecutorMaxHeapMb("0"); // 0 (V8's default)
 * ```
 */
export function parseExecutorMaxHeapMb(value: string | undefined): number {
  return parseWholeNumber(
    value,
    "PERAGO_EXECUTOR_MAX_HEAP_MB",
    DEFAULT_EXECUTOR_MAX_HEAP_MB,
    (mb) => mb === 0 || (mb >= 64 && mb <= 1_048_576),
    "a whole number of MiB from 64 to 1048576, or 0 for V8's own limit",
  );
}

/**
 * `value` as a whole number (digits, no sign, no leading zero) that `accepts` passes, else a
 * {@linkcode ConfigError} saying `name` must be `what`; unset (or blank): `fallback`.
 */
function parseWholeNumber(
  value: string | undefined,
  name: string,
  fallback: number,
  accepts: (n: number) => boolean,
  what: string,
): number {
  const text = trimmed(value);
  if (text === undefined) return fallback;
  const parsed = /^(0|[1-9][0-9]*)$/.test(text) ? Number(text) : NaN;
  if (!accepts(parsed)) {
    throw new ConfigError(`${name} must be ${what}${got(value ?? "")}`, { variable: name });
  }
  return parsed;
}

/** `PERAGO_WARM_POOL_MAX_SIZE` default: 10 GB. */
export const DEFAULT_WARM_POOL_MAX_SIZE_BYTES = 10 * LOG_SIZE_UNITS.GB;

/**
 * Parses `PERAGO_WARM_POOL_MAX_SIZE`, the bytes the warm pool's directories may hold
 * together: a size in the syntax of `PERAGO_LOG_FILE_MAX_SIZE` (`512MB`, `20GB`), more than
 * zero (`PERAGO_WARM_POOL_DIRS=0` turns the pool off). Unset: 10 GB.
 *
 * @example
 * ```ts
 * parseWarmPoolMaxSize("20GB"); // 21474836480
 * ```
 */
export function parseWarmPoolMaxSize(value: string | undefined): number {
  const text = trimmed(value);
  if (text === undefined) return DEFAULT_WARM_POOL_MAX_SIZE_BYTES;
  const name = "PERAGO_WARM_POOL_MAX_SIZE";
  const what = "must be a size above zero such as '512MB' or '20GB' (PERAGO_WARM_POOL_DIRS=0 " +
    "turns the warm pool off)";
  const bytes = parseSizeBytes(text, value ?? "", name, what);
  if (bytes === 0) throw new ConfigError(`${name} ${what}${got(value ?? "")}`, { variable: name });
  return bytes;
}

/**
 * `PERAGO_WARM_POOL_MIN_FILES` default: 200 files. Under `perago start` an executor is replaced
 * after each directory it keeps (the directory is claimable only once its executor has ended),
 * which costs the new executor's start (0.19-0.41 s from the old one's end to the new one's
 * `ready`, process and thread mode alike) and its first attempt's module loads (0.18-0.22 s):
 * a task that waits for the replacement took 0.2 s more from start to end. Measured side by
 * side under `perago start -j 1` (demo servers, workspace root on disk, load 4-7, re-runs whose
 * objects the object cache held): re-runs of 50 files took 0.11-0.22 s without recycling and
 * 0.31-0.33 s with it; of 200 files 0.42-0.63 s against 0.31-0.42 s; of 1,000 files 1.76-2.10 s
 * against 0.42-0.63 s. So a kept file saves about 1.5 ms here, and from about 150 files on the
 * replacement pays. (On tmpfs a file saves far less: a larger bound fits there.)
 */
export const DEFAULT_WARM_POOL_MIN_FILES = 200;

/**
 * Parses `PERAGO_WARM_POOL_MIN_FILES`: the smallest directory, in downloaded files, that an
 * executor keeps in the warm pool (a smaller one is removed, unless its files hold 1 MiB per
 * file of the bound or more): a whole number up to 10,000,000;
 * `0` keeps every directory. Unset: {@linkcode DEFAULT_WARM_POOL_MIN_FILES}.
 *
 * @example
 * ```ts
 * parseWarmPoolMinFiles("200"); // 200
 * ```
 */
export function parseWarmPoolMinFiles(value: string | undefined): number {
  return parseWholeNumber(
    value,
    "PERAGO_WARM_POOL_MIN_FILES",
    DEFAULT_WARM_POOL_MIN_FILES,
    (files) => files >= 0 && files <= 10_000_000,
    "a whole number of files from 0 (keep every directory) to 10000000",
  );
}

/** `PERAGO_WARM_POOL_DIRS` default: 2 directories. */
export const DEFAULT_WARM_POOL_DIRS = 2;

/**
 * Parses `PERAGO_WARM_POOL_DIRS`, the number of ended attempts' directories the host keeps
 * for the next attempts of the same repository: a whole number up to 1000, or `0` to turn
 * the warm pool off. Unset: 2.
 *
 * @example
 * ```ts
 * parseWarmPoolDirs("4"); // 4
 * parseWarmPoolDirs("0"); // 0 (no warm pool)
 * ```
 */
export function parseWarmPoolDirs(value: string | undefined): number {
  return parseWholeNumber(
    value,
    "PERAGO_WARM_POOL_DIRS",
    DEFAULT_WARM_POOL_DIRS,
    (dirs) => dirs >= 0 && dirs <= 1000,
    "a whole number of directories from 0 (no warm pool) to 1000",
  );
}

/**
 * Reads an optional connection value: trimmed, blank = unset, and the placeholder
 * `replace-me` rejected (`<NAME> must be replaced with a real value`).
 */
export function envOptional(env: Env, name: string): string | undefined {
  const text = trimmed(env[name]);
  if (text === PLACEHOLDER) {
    throw new ConfigError(`${name} must be replaced with a real value`, { variable: name });
  }
  return text;
}

/** Conductor connection settings (`CONDUCTOR_*`). */
export interface ConductorConfig {
  /** `CONDUCTOR_SERVER_URL`, e.g. `http://localhost:8080/api`. */
  readonly serverUrl: string;
  /** `CONDUCTOR_AUTH_KEY` (Orkes key id), set together with the secret. */
  readonly authKey: string | undefined;
  /** `CONDUCTOR_AUTH_SECRET`, set together with the key. */
  readonly authSecret: Secret | undefined;
}

/** lakeFS connection settings (`LAKECTL_*`, the names lakectl uses). */
export interface LakeFsConfig {
  /** `LAKECTL_SERVER_ENDPOINT_URL`, with or without `/api/v1`. */
  readonly endpointUrl: string;
  /** `LAKECTL_CREDENTIALS_ACCESS_KEY_ID`. */
  readonly accessKeyId: string;
  /** `LAKECTL_CREDENTIALS_SECRET_ACCESS_KEY`. */
  readonly secretAccessKey: Secret;
}

function requireHttpUrl(value: string, name: string, example: string): void {
  let protocol: string | undefined;
  try {
    protocol = new URL(value).protocol;
  } catch {
    protocol = undefined;
  }
  if (protocol !== "http:" && protocol !== "https:") {
    // Credentials written into the URL (`scheme://user:secret@host`) are not echoed.
    const shown = value.replace(/^([^/]*\/\/)[^/@]*@/, "$1***@");
    throw new ConfigError(
      `${name} must be an http(s) URL such as '${example}'${got(shown)}`,
      { variable: name },
    );
  }
}

function missingError(what: string, missing: readonly string[]): ConfigError {
  return new ConfigError(`${what} config is incomplete; missing ${missing.join(", ")}`, {
    ...(missing[0] === undefined ? {} : { variable: missing[0] }),
  });
}

/**
 * Reads the Conductor settings: `undefined` when none of `CONDUCTOR_SERVER_URL`,
 * `CONDUCTOR_AUTH_KEY`, `CONDUCTOR_AUTH_SECRET` is set. The auth key and secret come
 * together or not at all, and need a server URL.
 *
 * @example
 * ```ts
 * parseConductorConfig({ CONDUCTOR_SERVER_URL: "http://localhost:8080/api" });
 * ```
 */
export function parseConductorConfig(env: Env): ConductorConfig | undefined {
  const serverUrl = envOptional(env, "CONDUCTOR_SERVER_URL");
  const authKey = envOptional(env, "CONDUCTOR_AUTH_KEY");
  const authSecret = envOptional(env, "CONDUCTOR_AUTH_SECRET");
  if (serverUrl === undefined && authKey === undefined && authSecret === undefined) {
    return undefined;
  }
  if ((authKey === undefined) !== (authSecret === undefined)) {
    const missing = authKey === undefined ? "CONDUCTOR_AUTH_KEY" : "CONDUCTOR_AUTH_SECRET";
    throw missingError("Conductor auth", [missing]);
  }
  if (serverUrl === undefined) throw missingError("Conductor", ["CONDUCTOR_SERVER_URL"]);
  requireHttpUrl(serverUrl, "CONDUCTOR_SERVER_URL", "http://localhost:8080/api");
  return Object.freeze({
    serverUrl,
    authKey,
    authSecret: authSecret === undefined ? undefined : new Secret(authSecret),
  });
}

/**
 * Reads the lakeFS settings: all three `LAKECTL_*` variables or none (`undefined`).
 *
 * @example
 * ```ts
 * parseLakeFsConfig({}); // undefined
 * ```
 */
export function parseLakeFsConfig(env: Env): LakeFsConfig | undefined {
  const names = [
    "LAKECTL_SERVER_ENDPOINT_URL",
    "LAKECTL_CREDENTIALS_ACCESS_KEY_ID",
    "LAKECTL_CREDENTIALS_SECRET_ACCESS_KEY",
  ] as const;
  const [endpointUrl, accessKeyId, secretAccessKey] = names.map((name) => envOptional(env, name));
  if (endpointUrl === undefined && accessKeyId === undefined && secretAccessKey === undefined) {
    return undefined;
  }
  if (endpointUrl === undefined || accessKeyId === undefined || secretAccessKey === undefined) {
    const values = [endpointUrl, accessKeyId, secretAccessKey];
    throw missingError("LakeFS", names.filter((_, i) => values[i] === undefined));
  }
  requireHttpUrl(endpointUrl, "LAKECTL_SERVER_ENDPOINT_URL", "http://localhost:8000");
  return Object.freeze({ endpointUrl, accessKeyId, secretAccessKey: new Secret(secretAccessKey) });
}
