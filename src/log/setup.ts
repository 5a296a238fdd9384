/**
 * Process-wide logging of a worker: a rotating JSONL file per worker
 * process under the log root, retention of old files, readable lines on stderr, and secrets
 * redacted before anything is written.
 *
 * @module
 */
import { AsyncLocalStorage } from "node:async_hooks";
import { configure, type LogLevel, type LogRecord, reset, type Sink } from "../vendor/logtape.ts";
import { redactByField } from "../vendor/logtape_redaction.ts";
import { formatConsoleLine, formatJsonLine } from "./_format.ts";
import { removeExpiredLogs } from "./_retention.ts";
import { ROOT_CATEGORY } from "./logger.ts";
import { isoUtc } from "../util/iso_time.ts";
import { join } from "../util/path.ts";

/** Options of {@linkcode setupLogging}. */
export interface LoggingOptions {
  /** `PERAGO_LOG_ROOT` (absolute). */
  logRoot: string;
  /** The served module's name; a directory level under the root (sanitised). */
  moduleName: string;
  /** This process's worker id; in every line and in the file path (sanitised there). */
  workerId: string;
  /** @default Deno.pid */
  pid?: number;
  /** Start time in the file name. @default now */
  startedAt?: Date;
  /** Rotation threshold in bytes (`PERAGO_LOG_FILE_MAX_SIZE`). */
  maxFileBytes: number;
  /** Files older than this are removed (`PERAGO_LOG_RETENTION`). */
  retentionMs: number;
  /** Readable lines on stderr as well. @default true */
  console?: boolean;
  /**
   * Writes the readable lines instead of `Deno.stderr.writeSync` (a progress display clears
   * its line, writes them, and draws itself again below).
   */
  consoleWrite?: (bytes: Uint8Array) => void;
  /** Lowest level logged. @default "info" */
  level?: "debug" | "info" | "warning" | "error";
  /** Literal values (credentials) replaced by `***` wherever they appear. */
  secrets?: readonly string[];
}

/** What {@linkcode setupLogging} returns. */
export interface LoggingHandle {
  /**
   * Absolute path of the current JSONL file. A rotated file keeps the name with the time the
   * file was started put before `.jsonl`, as loguru names them:
   * `pid=<pid>__started=<ts>.<YYYY-MM-DD_HH-MM-SS_ffffff>.jsonl` (UTC).
   */
  readonly logFile: string;
  /** Flushes and closes the sinks and stops retention; idempotent. */
  dispose(): Promise<void>;
}

/**
 * Property names whose values are replaced by `***` wherever they appear in a record, nested
 * objects included: passwords, secrets, tokens, authorization headers, credentials, API and
 * private keys, cookies.
 */
export const REDACTED_FIELDS: readonly RegExp[] = Object.freeze([
  /pass(?:word|phrase|code)/i,
  /secret/i,
  /token/i,
  /authori[sz]ation/i,
  /credential/i,
  /api[-_]?key/i,
  /private[-_]?key/i,
  /cookie/i,
]);

/** {@linkcode REDACTED_FIELDS} as one pattern. */
const REDACTED_FIELD = new RegExp(REDACTED_FIELDS.map((pattern) => pattern.source).join("|"), "i");

/** Deeper or larger properties than this go through the full redaction (its limits apply). */
const QUICK_CHECK_MAX_DEPTH = 8;
const QUICK_CHECK_MAX_NODES = 500;

/**
 * Whether the redaction could change `record`: a property name (at any depth) or a message
 * placeholder matches {@linkcode REDACTED_FIELDS}, or the properties are too deep or large
 * to tell quickly. `false` means the record passes through the redaction unchanged.
 */
export function mayNameRedactedField(record: LogRecord): boolean {
  if (typeof record.rawMessage === "string" && REDACTED_FIELD.test(record.rawMessage)) {
    return true;
  }
  let nodes = 0;
  const walk = (value: unknown, depth: number): boolean => {
    if (value === null || typeof value !== "object") return false;
    if (depth > QUICK_CHECK_MAX_DEPTH || ++nodes > QUICK_CHECK_MAX_NODES) return true;
    if (Array.isArray(value)) return value.some((item) => walk(item, depth + 1));
    for (const key in value) {
      if (REDACTED_FIELD.test(key)) return true;
      if (walk((value as Record<string, unknown>)[key], depth + 1)) return true;
    }
    return false;
  };
  return walk(record.properties, 0);
}

/** How often retention runs while the process lives. */
const RETENTION_INTERVAL_MS = 60 * 60 * 1000;

let active: symbol | undefined;

/** Replaces characters outside `[A-Za-z0-9._-]` by `_`, so a name is one safe path segment. */
export function safeSegment(name: string): string {
  const safe = name.replace(/[^A-Za-z0-9._-]/g, "_");
  return safe === "" || safe === "." || safe === ".." ? safe.replaceAll(".", "_") || "_" : safe;
}

/** `2026-11-23T09:01:02.345Z` -> `20261123T090102Z`. */
export function fileTimestamp(date: Date): string {
  return isoUtc(date).replace(/\.\d{3}Z$/, "Z").replace(/[-:]/g, "");
}

/**
 * The JSONL path of a worker process:
 * `<logRoot>/<module>/worker_id=<workerId>/pid=<pid>__started=<ts>.jsonl`.
 */
export function logFilePath(
  options: Pick<LoggingOptions, "logRoot" | "moduleName" | "workerId" | "pid" | "startedAt">,
): string {
  const pid = options.pid ?? Deno.pid;
  const started = fileTimestamp(options.startedAt ?? new Date());
  return join(
    options.logRoot,
    safeSegment(options.moduleName),
    `worker_id=${safeSegment(options.workerId)}`,
    `pid=${pid}__started=${started}.jsonl`,
  );
}

/**
 * Configures process-wide logging (replacing any earlier configuration): removes expired log
 * files of the module, opens the rotating JSONL file, and routes every logger under
 * `"perago"` (see `getLogger` in `logger.ts`) to it and, unless `console: false`, to stderr.
 * Records carry implicit context set with `withLogContext`.
 *
 * Requires `--allow-read` and `--allow-write` of the log root.
 *
 * @example
 * ```ts
 * import { getLogger } from "./logger.ts";
 *
 * const logRoot = await Deno.makeTempDir();
 * const logging = await setupLogging({
 *   logRoot, moduleName: "build", workerId: "build0001",
 *   maxFileBytes: 100 * 1024 * 1024, retentionMs: 30 * 86_400_000,
 *   secrets: ["s3cr3t"], console: false,
 * });
 * try {
 *   getLogger("example").info("built {count} files", { count: 3 });
 * } finally {
 *   await logging.dispose();
 *   await Deno.remove(logRoot, { recursive: true });
 * }
 * ```
 */
export async function setupLogging(options: LoggingOptions): Promise<LoggingHandle> {
  if (!(options.maxFileBytes > 0)) {
    throw new RangeError(`maxFileBytes must be positive (got ${options.maxFileBytes})`);
  }
  if (!(options.retentionMs > 0)) {
    throw new RangeError(`retentionMs must be positive (got ${options.retentionMs})`);
  }
  const logFile = logFilePath(options);
  const moduleDir = join(options.logRoot, safeSegment(options.moduleName));
  await removeExpiredLogs(moduleDir, options.retentionMs);
  // Synchronous, like the retention sweep (see removeExpiredLogs).
  Deno.mkdirSync(join(logFile, ".."), { recursive: true });

  // Longest first, so a secret containing another is replaced whole.
  const secrets = [...new Set(options.secrets ?? [])]
    .filter((secret) => secret.length > 0)
    .sort((a, b) => b.length - a.length);
  const workerId = options.workerId;
  const redact = (sink: Sink & Disposable): Sink & Disposable => {
    const redacted = redactByField(sink, {
      fieldPatterns: [...REDACTED_FIELDS],
      action: () => "***",
    });
    // Most records (an attempt's start and end) name no such field: they skip the redaction
    // pass, which copies the whole record, for one walk over its property names.
    const wrapped: Sink = (record) =>
      mayNameRedactedField(record) ? redacted(record) : sink(record);
    return Object.assign(wrapped, { [Symbol.dispose]: () => sink[Symbol.dispose]() });
  };

  const fileSink = rotatingFileSink(
    logFile,
    options.maxFileBytes,
    (record: LogRecord) => formatJsonLine(record, workerId, secrets),
  );
  const consoleSink = (options.console ?? true)
    ? stderrSink(workerId, secrets, options.consoleWrite)
    : undefined;
  // One redaction for both renderings: walking a record's properties for secret field names
  // is the dearest part of logging a line, and both sinks would see the same result.
  const sinks: Record<string, Sink> = {
    worker: redact(fanOut(consoleSink === undefined ? [fileSink] : [fileSink, consoleSink])),
  };
  const sinkIds = Object.keys(sinks);

  await configure({
    reset: true,
    sinks,
    contextLocalStorage: new AsyncLocalStorage<Record<string, unknown>>(),
    loggers: [
      { category: [ROOT_CATEGORY], sinks: sinkIds, lowestLevel: options.level ?? "info" },
      { category: ["logtape", "meta"], sinks: sinkIds, lowestLevel: "warning" as LogLevel },
    ],
  });
  const token = Symbol("logging");
  active = token;

  const retentionTimer = setInterval(() => {
    removeExpiredLogs(moduleDir, options.retentionMs).catch(() => {});
  }, RETENTION_INTERVAL_MS);
  Deno.unrefTimer(retentionTimer);

  let disposed: Promise<void> | undefined;
  return {
    logFile,
    dispose() {
      disposed ??= (async () => {
        clearInterval(retentionTimer);
        if (active === token) {
          active = undefined;
          await reset();
        }
      })();
      return disposed;
    },
  };
}

/** One sink passing each record to every one of `sinks` in turn; disposing disposes each. */
function fanOut(sinks: readonly (Sink & Partial<Disposable>)[]): Sink & Disposable {
  const sink: Sink = (record: LogRecord) => {
    for (const each of sinks) each(record);
  };
  return Object.assign(sink, {
    [Symbol.dispose]: () => {
      for (const each of sinks) each[Symbol.dispose]?.();
    },
  });
}

/** Console lines are gathered this long (unless a warning/error or 3 KiB comes first). */
const CONSOLE_FLUSH_MS = 25;
/** Largest write that a pipe keeps whole (lines of several processes share one stderr). */
const PIPE_BUF = 4096;

/**
 * Readable lines on stderr. Lines are gathered and written together, at most 25 ms late (a
 * warning or error flushes at once, as do dispose and process exit), in writes of whole
 * lines of at most PIPE_BUF bytes so lines of the worker's processes never interleave. The
 * JSONL file gets every record at once; this only saves a write, and a wake-up of whatever
 * reads stderr, per line.
 */
function stderrSink(
  workerId: string,
  secrets: readonly string[],
  consoleWrite?: (bytes: Uint8Array) => void,
): Sink & Disposable {
  const encoder = new TextEncoder();
  let pending: Uint8Array[] = [];
  let size = 0;
  let timer: ReturnType<typeof setTimeout> | undefined;
  const write = (bytes: Uint8Array) => {
    try {
      if (consoleWrite !== undefined) return consoleWrite(bytes);
      let written = 0;
      while (written < bytes.length) written += Deno.stderr.writeSync(bytes.subarray(written));
    } catch {
      // A closed stderr must not break the worker; the file still has the line.
    }
  };
  const flush = () => {
    clearTimeout(timer);
    timer = undefined;
    if (pending.length === 0) return;
    const lines = pending;
    pending = [];
    size = 0;
    let group: Uint8Array[] = [];
    let groupSize = 0;
    const writeGroup = () => {
      if (group.length === 0) return;
      const bytes = new Uint8Array(groupSize);
      let offset = 0;
      for (const line of group) {
        bytes.set(line, offset);
        offset += line.length;
      }
      write(bytes);
      group = [];
      groupSize = 0;
    };
    for (const line of lines) {
      if (groupSize + line.length > PIPE_BUF) writeGroup();
      group.push(line);
      groupSize += line.length;
    }
    writeGroup();
  };
  const sink: Sink = (record: LogRecord) => {
    const bytes = encoder.encode(formatConsoleLine(record, workerId, secrets));
    pending.push(bytes);
    size += bytes.length;
    const urgent = record.level === "warning" || record.level === "error" ||
      record.level === "fatal";
    if (urgent || size >= 3072) flush();
    else if (timer === undefined) {
      timer = setTimeout(flush, CONSOLE_FLUSH_MS);
      Deno.unrefTimer(timer);
    }
  };
  globalThis.addEventListener("unload", flush);
  return Object.assign(sink, {
    [Symbol.dispose]: () => {
      globalThis.removeEventListener("unload", flush);
      flush();
    },
  });
}

/**
 * The name a rotated log file takes: `<path without .jsonl>.<started>.jsonl` with `started` as
 * `YYYY-MM-DD_HH-MM-SS_ffffff` in UTC (loguru's rotation names), `.2`, `.3`, ... before `.jsonl`
 * when that name is taken. Rotated files stay `*.jsonl`, so whatever reads a worker's JSONL
 * files by that extension reads them all; retention by age is what removes them.
 */
export function rotatedLogPath(
  path: string,
  startedAt: Date,
  exists: (path: string) => boolean,
): string {
  const root = path.endsWith(".jsonl") ? path.slice(0, -".jsonl".length) : path;
  const iso = isoUtc(startedAt); // 2026-12-02T05:09:58.123Z
  const stamp = `${iso.slice(0, 10)}_${iso.slice(11, 19).replaceAll(":", "-")}_${
    iso.slice(20, 23)
  }000`;
  let candidate = `${root}.${stamp}.jsonl`;
  for (let counter = 2; exists(candidate); counter++) {
    candidate = `${root}.${stamp}.${counter}.jsonl`;
  }
  return candidate;
}

/**
 * A size-rotating JSONL file sink: before a write that would pass `maxBytes`, the current file
 * is renamed by {@linkcode rotatedLogPath} and a new one started at `path`. Every record is
 * written to the file at once with one `write` (the last lines before a process crash are in
 * the kernel's page cache, so they survive it), but never fsynced: `@logtape/file`'s
 * unbuffered mode fsyncs every record, which made logging the most expensive part of a
 * trivial task (about 1.5 ms per record). Only a machine crash can lose the newest lines; the
 * file is fsynced once when the sink is disposed.
 */
function rotatingFileSink(
  path: string,
  maxBytes: number,
  format: (record: LogRecord) => string,
): Sink & Disposable {
  const encoder = new TextEncoder();
  let file = Deno.openSync(path, { create: true, append: true });
  let offset = 0;
  let startedAt = new Date();
  try {
    const info = Deno.statSync(path);
    offset = info.size;
    if (offset > 0) startedAt = info.birthtime ?? info.mtime ?? startedAt;
  } catch { /* new file */ }
  const exists = (candidate: string) => {
    try {
      Deno.lstatSync(candidate);
      return true;
    } catch {
      return false;
    }
  };
  const rollover = () => {
    file.close();
    Deno.renameSync(path, rotatedLogPath(path, startedAt, exists));
    offset = 0;
    startedAt = new Date();
    file = Deno.openSync(path, { create: true, append: true });
  };
  const sink: Sink & Partial<Disposable> = (record: LogRecord) => {
    const bytes = encoder.encode(format(record));
    if (offset > 0 && offset + bytes.length > maxBytes) rollover();
    let written = 0;
    while (written < bytes.length) written += file.writeSync(bytes.subarray(written));
    offset += bytes.length;
  };
  const dispose = () => {
    try {
      file.syncSync();
    } catch { /* best effort */ }
    file.close();
  };
  return Object.assign(sink, { [Symbol.dispose]: dispose });
}
