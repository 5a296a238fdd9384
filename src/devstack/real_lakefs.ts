/**
 * Starts a real lakeFS server (the `lakefs` binary, e.g. lakeFS 1.84.0) in local mode for
 * `perago dev --lakefs-bin`: embedded KV and local block storage under one data directory,
 * listening on 127.0.0.1 only, nothing outbound (usage stats and version checks off), and
 * the admin user created by lakeFS itself at start-up from its `installation.*` keys. Waits
 * for `GET /api/v1/healthcheck`, then checks the admin keys with `GET /api/v1/user`.
 *
 * Needs `--allow-run` (the binary), `--allow-read`/`--allow-write` (the data directory) and
 * `--allow-net` (loopback).
 *
 * @module
 */
import { basicAuthorization } from "../util/http.ts";

/** Options of {@linkcode startRealLakeFs}. */
export interface RealLakeFsOptions {
  /** Path of the `lakefs` executable. */
  bin: string;
  /** Directory for lakeFS's metadata, objects, config and log (created; reused as is). */
  dataDir: string;
  /** Port on 127.0.0.1; 0 picks a free one. @default 0 */
  port?: number;
  /** Access key id of the admin user lakeFS creates. */
  accessKeyId: string;
  /** Its secret access key. */
  secretAccessKey: string;
  /** Longest wait for the server to answer its health check. @default 60_000 */
  startTimeoutMs?: number;
  /** Aborts the start (the process is stopped). */
  signal?: AbortSignal;
}

/** A running real lakeFS. */
export interface RealLakeFsHandle {
  /** `http://127.0.0.1:PORT` (without `/api/v1`). */
  readonly url: string;
  readonly pid: number;
  /** Where lakeFS writes its log. */
  readonly logFile: string;
  /** SIGTERM, then SIGKILL after 15 s; resolves once the process is gone. */
  close(): Promise<void>;
}

/** lakeFS could not be started; the message says why and what to do. */
export class RealLakeFsError extends Error {
  override name = "RealLakeFsError";
}

/** A free loopback port (bound, then released: lakeFS needs the number in its config). */
function freePort(): number {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const port = (listener.addr as Deno.NetAddr).port;
  listener.close();
  return port;
}

/** A YAML double-quoted scalar (JSON strings are valid YAML). */
const quoted = (value: string) => JSON.stringify(value);

/** The key lakeFS encrypts stored credentials with: made once per data directory. */
async function encryptionKey(dataDir: string): Promise<string> {
  const path = `${dataDir}/encrypt.key`;
  try {
    return (await Deno.readTextFile(path)).trim();
  } catch (error) {
    if (!(error instanceof Deno.errors.NotFound)) throw error;
  }
  const bytes = crypto.getRandomValues(new Uint8Array(32));
  const key = Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
  await Deno.writeTextFile(path, key, { mode: 0o600, createNew: true });
  return key;
}

/** The lakeFS configuration for local mode on `port` under `dataDir`. */
export function localModeConfig(options: {
  dataDir: string;
  port: number;
  encryptKey: string;
  accessKeyId: string;
  secretAccessKey: string;
}): string {
  const { dataDir } = options;
  return [
    `listen_address: ${quoted(`127.0.0.1:${options.port}`)}`,
    "logging:",
    "  format: text",
    "  level: INFO",
    '  output: "-"',
    "database:",
    "  type: local",
    "  local:",
    `    path: ${quoted(`${dataDir}/metadata`)}`,
    "blockstore:",
    "  type: local",
    "  local:",
    `    path: ${quoted(`${dataDir}/block`)}`,
    "committed:",
    "  local_cache:",
    `    dir: ${quoted(`${dataDir}/cache`)}`,
    "auth:",
    "  encrypt:",
    `    secret_key: ${quoted(options.encryptKey)}`,
    // Nothing outbound: no usage stats, no version or audit checks.
    "stats:",
    "  enabled: false",
    '  address: "http://127.0.0.1:1"',
    "security:",
    "  check_latest_version: false",
    '  audit_check_url: "http://127.0.0.1:1/audit"',
    "email_subscription:",
    "  enabled: false",
    "installation:",
    '  user_name: "admin"',
    `  access_key_id: ${quoted(options.accessKeyId)}`,
    `  secret_access_key: ${quoted(options.secretAccessKey)}`,
    "",
  ].join("\n");
}

async function lastLines(path: string, count = 15): Promise<string> {
  try {
    return (await Deno.readTextFile(path)).trimEnd().split("\n").slice(-count).join("\n");
  } catch {
    return "(no log)";
  }
}

/**
 * Waits until lakeFS answers its health check; fails with the log's last lines when it
 * exits (`exitCode` says so) or the start timeout passes.
 */
async function waitHealthy(
  url: string,
  logFile: string,
  options: RealLakeFsOptions,
  exitCode: () => Promise<number | undefined>,
): Promise<void> {
  const timeoutMs = options.startTimeoutMs ?? 60_000;
  const deadline = Date.now() + timeoutMs;
  while (true) {
    options.signal?.throwIfAborted();
    const code = await exitCode();
    if (code !== undefined) {
      throw new RealLakeFsError(
        `lakeFS exited during start-up (exit ${code}); last log lines ` +
          `(${logFile}):\n${await lastLines(logFile)}`,
      );
    }
    const healthy = await fetch(`${url}/api/v1/healthcheck`, {
      signal: AbortSignal.timeout(2_000),
    }).then(async (r) => {
      await r.body?.cancel();
      return r.status === 204 || r.status === 200;
    }, () => false);
    if (healthy) return;
    if (Date.now() > deadline) {
      throw new RealLakeFsError(
        `lakeFS did not answer ${url}/api/v1/healthcheck within ${timeoutMs / 1000} s; ` +
          `last log lines (${logFile}):\n` + (await lastLines(logFile)),
      );
    }
    await new Promise((resolve) => setTimeout(resolve, 200));
  }
}

/** The admin keys must work: a data dir set up earlier with other keys would refuse them. */
async function checkAdminKeys(
  url: string,
  options: RealLakeFsOptions,
  dataDir: string,
): Promise<void> {
  const user = await fetch(`${url}/api/v1/user`, {
    headers: { authorization: basicAuthorization(options.accessKeyId, options.secretAccessKey) },
    signal: AbortSignal.timeout(10_000),
  });
  await user.body?.cancel();
  if (user.status !== 200) {
    throw new RealLakeFsError(
      `lakeFS is up but refuses the admin keys (GET /api/v1/user answered ${user.status}): ` +
        `was ${dataDir} set up earlier with other keys? Use another --data-dir`,
    );
  }
}

/**
 * Starts `bin run --config <dataDir>/lakefs.yaml` and waits until it serves with the admin
 * keys. The process gets a clean environment, so stray `LAKEFS_*` variables cannot change
 * its configuration.
 */
export async function startRealLakeFs(options: RealLakeFsOptions): Promise<RealLakeFsHandle> {
  try {
    const info = await Deno.stat(options.bin);
    if (!info.isFile) throw new Deno.errors.NotFound();
  } catch {
    throw new RealLakeFsError(
      `lakeFS binary not found at ${options.bin}: give the path of an unpacked lakefs ` +
        "executable (for ../shared/tools/lakefs: start.sh --unpack prints it)",
    );
  }
  await Deno.mkdir(options.dataDir, { recursive: true });
  const dataDir = await Deno.realPath(options.dataDir);
  for (const sub of ["metadata", "block", "cache", "home"]) {
    await Deno.mkdir(`${dataDir}/${sub}`, { recursive: true });
  }
  const port = options.port || freePort();
  const config = `${dataDir}/lakefs.yaml`;
  await Deno.writeTextFile(
    config,
    localModeConfig({
      dataDir,
      port,
      encryptKey: await encryptionKey(dataDir),
      accessKeyId: options.accessKeyId,
      secretAccessKey: options.secretAccessKey,
    }),
    { mode: 0o600 },
  );
  const logFile = `${dataDir}/lakefs.log`;
  const lakefs = await spawnLakeFs(options.bin, config, dataDir, logFile);
  const url = `http://127.0.0.1:${port}`;
  try {
    await waitHealthy(url, logFile, options, lakefs.exitCode);
    await checkAdminKeys(url, options, dataDir);
  } catch (error) {
    await lakefs.close();
    throw error;
  }
  return { url, pid: lakefs.pid, logFile, close: lakefs.close };
}

/**
 * Runs `bin run --config <config>` in a clean environment, its output appended to `logFile`.
 * `close()` stops it (SIGTERM, SIGKILL 15 s later) and is idempotent.
 */
async function spawnLakeFs(bin: string, config: string, dataDir: string, logFile: string) {
  // One append handle per stream: a writable takes one pipe at a time.
  const outLog = await Deno.open(logFile, { create: true, append: true });
  const errLog = await Deno.open(logFile, { append: true });
  const child = new Deno.Command(bin, {
    args: ["run", "--config", config],
    clearEnv: true,
    env: { PATH: "/usr/local/bin:/usr/bin:/bin", HOME: `${dataDir}/home` },
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  const piped = Promise.allSettled([
    child.stdout.pipeTo(outLog.writable),
    child.stderr.pipeTo(errLog.writable),
  ]);
  let exited = false;
  const status = child.status.then((s) => {
    exited = true;
    return s;
  });
  const kill = (signal: Deno.Signal) => {
    try {
      child.kill(signal);
    } catch {
      // gone
    }
  };
  let closing: Promise<void> | undefined;
  const close = () => {
    closing ??= (async () => {
      if (!exited) {
        kill("SIGTERM");
        const timer = setTimeout(() => kill("SIGKILL"), 15_000);
        await status;
        clearTimeout(timer);
      }
      await piped;
    })();
    return closing;
  };
  const exitCode = async () => exited ? (await status).code : undefined;
  return { pid: child.pid, exitCode, close };
}
