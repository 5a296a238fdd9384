/**
 * The permission flags and command line of the runtime's child processes. Never `-A`.
 *
 * What each child gets, and why:
 *
 * | flag            | broker                        | executor                                  |
 * |-----------------|-------------------------------|-------------------------------------------|
 * | `--allow-read`  | log root, perago's sources    | workspace root, log root, each task       |
 * |                 |                               | module's directory, perago's sources,     |
 * |                 |                               | the project import map's local modules    |
 * | `--allow-write` | log root                      | workspace root, log root                  |
 * | `--allow-net`   | Conductor host:port           | lakeFS host:port                          |
 * | lanes (process  | read, write and `unix:` net   | read, write and `unix:` net on its own    |
 * | mode)           | on every slot's lane socket   | slot's lane socket only (a compiled       |
 * |                 |                               | binary: every slot's, see lane_dir.ts)    |
 * | `--allow-env`   | none                          | none                                      |
 *
 * - No environment access: the supervisor (the only process that reads `.env` and the
 *   environment) sends each child its settings as the first protocol message (`init`), and
 *   only the secret that child needs (the broker never sees the lakeFS secret, executors
 *   never see the Conductor secret). The configuration variables are also removed from the
 *   children's environment.
 * - The task module's directory is readable so the module (a dynamic import, which Deno
 *   permission-checks) and its relative imports load. perago's source directory (the
 *   directory of `main.ts`, run from source) is readable for the same reason, but only
 *   what task modules import: `mod.ts`, `src/` and `deno.json` ({@linkcode sourceReadPaths}),
 *   never the rest of the root, where an operator's `.env` may hold the Conductor secret.
 *   Deno reads its own cache (`DENO_DIR`, npm packages) and the `deno.json` config without
 *   permission checks, so neither is listed.
 * - Children run with the config the supervisor runs with ({@linkcode childConfig}): a task
 *   project started with `deno run -A --config deno.json <perago>/main.ts start ...` has its
 *   import map apply to the executors too. When that config is not perago's own, the local
 *   modules its import map names are readable by executors ({@linkcode importMapReadPaths}:
 *   a mapped file's directory, a mapped directory; never the whole directory of the config,
 *   where the project's `.env` lives).
 * - `.env` is not readable by children (the supervisor read it): `--deny-read` names it
 *   (`envFile`), so a grant of its directory as a whole (a task module beside it) does not
 *   reach it. A thread-mode Worker's permissions have no deny list: the supervisor warns when
 *   one of its read grants covers `.env` ({@linkcode readGrantCovers}).
 * - `--no-prompt`: a denied access fails at once instead of waiting on a terminal prompt.
 *
 * A compiled binary (`Deno.build.standalone`) cannot take `deno run` flags: its permissions
 * were fixed by `deno compile`. Children are then started by re-invoking `Deno.execPath()`
 * with the hidden subcommand only, and narrow themselves at start with
 * {@linkcode narrowStandaloneChild}: Deno revokes a grant only together with every grant that
 * covers it, so the compile script bakes the narrowest lists that fit all roles
 * (`--allow-net=<conductor>,<lakefs>` as host:port etc.) and each child revokes what its role
 * never needs (subprocesses, FFI, environment; an executor also drops the Conductor host as
 * its init names it: net_grant.ts).
 *
 * @module
 */
import { dirname, isAbsolute, resolve } from "node:path";
import { fileURLToPath as fromFileUrl } from "node:url";
import { EXECUTOR_GC_FLAG } from "./idle_gc.ts";
import { hostPort } from "./net_grant.ts";
import { denoConfigInUse, type DenoConfigProbe, importMapReadPaths } from "./deno_config.ts";

/** Which child. */
export type ChildRole = "broker" | "executor";

/** Inputs of {@linkcode childPermissionFlags} and {@linkcode childCommand}. */
export interface ChildPermissionOptions {
  role: ChildRole;
  /** Absolute workspace root (executors only use it). */
  workspaceRoot: string;
  /** Absolute log root. */
  logRoot: string;
  /** Task module paths or `file:` URLs (executors read their directories). */
  modules: readonly string[];
  /** `CONDUCTOR_SERVER_URL` (the broker's only host). */
  conductorUrl: string;
  /**
   * `LAKECTL_SERVER_ENDPOINT_URL` (the executors' only host); `undefined` when the worker
   * serves workspace-free tasks only: its executors then get no network at all.
   */
  lakefsUrl: string | undefined;
  /**
   * perago's source directory (the one holding `main.ts`) when running from source.
   * @default the directory of this repository's `main.ts`
   */
  sourceRoot?: string;
  /**
   * Executor lanes (lane_router.ts): the broker's are every slot's socket, an executor's its
   * own slot's only (so it can neither reach nor replace another slot's socket). Each path is
   * granted read, write and `unix:` net access, what listening and connecting need.
   * @default []
   */
  lanePaths?: readonly string[];
  /**
   * Local files and directories the children's import map points at (executors read them):
   * {@linkcode ChildConfig.importMapReads}.
   * @default []
   */
  importMapReads?: readonly string[];
  /**
   * The `.env` file the supervisor read (it holds the Conductor and lakeFS secrets): denied
   * to children by `--deny-read`, even where a granted directory covers it.
   * @default undefined (nothing denied)
   */
  envFile?: string | undefined;
}

/** How to start a child process. */
export interface ChildCommand {
  command: string;
  args: string[];
  /** Whether the child runs from a compiled binary (it must narrow itself). */
  standalone: boolean;
  /**
   * Variables to add to the child's environment: `DENO_V8_FLAGS` for a compiled binary,
   * {@linkcode DENO_RUN_CHILD_ENV} for `deno run`.
   */
  env?: Record<string, string>;
}

/** Options of {@linkcode childCommand}; defaults describe this process. */
export interface ChildCommandOptions extends ChildPermissionOptions {
  /** @default Deno.execPath() */
  execPath?: string;
  /** @default Deno.build.standalone */
  standalone?: boolean;
  /** perago's CLI entry. @default this repository's `main.ts` */
  mainModule?: string;
  /**
   * `deno.json` to run with (import map, lock); `undefined`: no `--config`.
   * @default {@linkcode childConfig}'s: the supervisor's, else the one beside `main.ts`
   */
  configFile?: string | undefined;
  /**
   * V8 heap limit of an executor in MiB (`--max-old-space-size`; `PERAGO_EXECUTOR_MAX_HEAP_MB`);
   * 0 or unset: V8's own. Passed as `--v8-flags` from source, as `DENO_V8_FLAGS` to a compiled
   * binary.
   */
  maxHeapMb?: number;
}

const MAIN_URL = new URL("../../main.ts", import.meta.url);
const CONFIG_URL = new URL("../../deno.json", import.meta.url);

/** The directory holding a module given as a path or `file:` URL (remote URLs: none). */
export function moduleDir(module: string): string | undefined {
  if (/^[a-z][a-z0-9+.-]*:/i.test(module)) {
    return module.startsWith("file:") ? dirname(fromFileUrl(module)) : undefined;
  }
  return dirname(isAbsolute(module) ? module : resolve(module));
}

function defaultSourceRoot(): string | undefined {
  // A compiled binary embeds perago's sources: there is nothing on disk to grant (and its
  // baked flags would not cover the embedded paths a thread-mode Worker asked for).
  if (Deno.build.standalone === true) return undefined;
  return MAIN_URL.protocol === "file:" ? dirname(fromFileUrl(MAIN_URL)) : undefined;
}

function unique(items: readonly (string | undefined)[]): string[] {
  return [...new Set(items.filter((item): item is string => item !== undefined && item !== ""))];
}

/** Joins a permission list; a comma inside a path would split it, so it is refused. */
function list(flag: string, items: readonly string[]): string {
  for (const item of items) {
    if (item.includes(",")) {
      throw new TypeError(
        `permissions: ${JSON.stringify(item)} contains a comma, which Deno's ${flag} list ` +
          "cannot express; move it to a path without commas",
      );
    }
  }
  return `${flag}=${items.join(",")}`;
}

/** The paths and hosts a child may use: what both its flags and its Worker permissions say. */
export interface ChildPermissionSets {
  read: string[];
  write: string[];
  net: string[];
  /** Paths refused even where a `read` grant covers them (flags only: see the module doc). */
  denyRead: string[];
}

/**
 * What task modules need to read of perago's source tree: `mod.ts` (their import), `src/`
 * (what it imports, and the CLI's lazily imported commands) and `deno.json`. Nothing else at
 * the root: an operator's `.env` (the Conductor secret) may live there.
 */
export function sourceReadPaths(sourceRoot: string | undefined): string[] {
  if (sourceRoot === undefined || sourceRoot === "") return [];
  const root = sourceRoot.replace(/\/+$/, "");
  return [`${root}/mod.ts`, `${root}/src`, `${root}/deno.json`];
}

/**
 * The read/write/net lists of a child (see the module doc). Flags
 * ({@linkcode childPermissionFlags}) and thread-mode Worker permissions are both made from
 * these, so the two modes cannot drift apart.
 */
export function childPermissionSets(options: ChildPermissionOptions): ChildPermissionSets {
  const source = sourceReadPaths(options.sourceRoot ?? defaultSourceRoot());
  const lanes = options.lanePaths ?? [];
  const laneNet = lanes.map((path) => `unix:${path}`);
  const denyRead = unique([options.envFile]);
  if (options.role === "broker") {
    return {
      read: unique([options.logRoot, ...source, ...lanes]),
      write: unique([options.logRoot, ...lanes]),
      net: [hostPort(options.conductorUrl), ...laneNet],
      denyRead,
    };
  }
  return {
    read: unique([
      options.workspaceRoot,
      options.logRoot,
      ...options.modules.map(moduleDir),
      ...(options.importMapReads ?? []),
      ...source,
      ...lanes,
    ]),
    write: unique([options.workspaceRoot, options.logRoot, ...lanes]),
    net: [...(options.lakefsUrl === undefined ? [] : [hostPort(options.lakefsUrl)]), ...laneNet],
    denyRead,
  };
}

/**
 * Whether one of the `read` grants covers `path`: the path itself or a directory above it.
 * Paths are compared as given (absolute, resolved by the caller).
 */
export function readGrantCovers(read: readonly string[], path: string): boolean {
  return read.some((grant) => {
    const dir = grant.replace(/\/+$/, "");
    return path === dir || path.startsWith(`${dir}/`) || dir === "";
  });
}

/**
 * Computes the `deno run` permission flags of a child (never `-A`; see the module doc).
 *
 * @example
 * ```ts
 * childPermissionFlags({
 *   role: "executor", workspaceRoot: "/w", logRoot: "/l", modules: ["/t/task.ts"],
 *   conductorUrl: "http://c:8080/api", lakefsUrl: "http://lake:8000", sourceRoot: "/src",
 * });
 * // ["--no-prompt", "--allow-read=/w,/l,/t,/src/mod.ts,/src/src,/src/deno.json",
 * //  "--allow-write=/w,/l", "--allow-net=lake:8000"]
 * ```
 */
export function childPermissionFlags(options: ChildPermissionOptions): string[] {
  const sets = childPermissionSets(options);
  return [
    "--no-prompt",
    list("--allow-read", sets.read),
    list("--allow-write", sets.write),
    // No list, no flag: an empty `--allow-net=` is not "nothing" to every Deno version.
    ...(sets.net.length === 0 ? [] : [list("--allow-net", sets.net)]),
    ...(sets.denyRead.length === 0 ? [] : [list("--deny-read", sets.denyRead)]),
  ];
}

/**
 * The full command line of a child: from source, `deno run --config <deno.json> <flags>
 * <main.ts> __broker|__executor` (an executor's flags also set its V8 flags and turn V8's code
 * cache off); from a compiled binary, `<binary> __broker|__executor`.
 */
export function childCommand(options: ChildCommandOptions): ChildCommand {
  const execPath = options.execPath ?? Deno.execPath();
  const standalone = options.standalone ?? Deno.build.standalone === true;
  const subcommand = options.role === "broker" ? "__broker" : "__executor";
  const executor = options.role === "executor";
  const v8Flags = executor ? executorV8Flags(options.maxHeapMb ?? 0) : undefined;
  if (standalone) {
    return {
      command: execPath,
      args: [subcommand],
      standalone: true,
      ...(v8Flags === undefined ? {} : { env: { DENO_V8_FLAGS: v8Flags } }),
    };
  }
  const mainModule = options.mainModule ?? fromFileUrl(MAIN_URL);
  const configFile = "configFile" in options ? options.configFile : childConfig().configFile;
  return {
    command: execPath,
    args: [
      "run",
      ...(configFile === undefined ? [] : ["--config", configFile]),
      ...(v8Flags === undefined ? [] : [`--v8-flags=${v8Flags}`]),
      // Without V8's code cache an executor compiles only the functions it runs instead of
      // materialising every cached one: measured 2.7 MiB less idle RSS (1.8 MiB private)
      // and 10-20 ms less CPU to start and to its first attempt.
      ...(executor ? ["--no-code-cache"] : []),
      ...childPermissionFlags(options),
      mainModule,
      subcommand,
    ],
    env: DENO_RUN_CHILD_ENV,
    standalone: false,
  };
}

/**
 * What a `deno run` child adds to its environment: no update check. `deno run` otherwise
 * checks once a day for a newer Deno, from the CLI itself (no permission applies), and does it
 * in each child whose Deno cache has no recent answer: the HTTPS request from a sandboxed
 * child, and its client set up in each executor, 1.3 MiB of an idle executor's RSS (measured
 * with the start-up benchmark's executor). A compiled binary never checks.
 */
export const DENO_RUN_CHILD_ENV: Readonly<Record<string, string>> = Object.freeze({
  DENO_NO_UPDATE_CHECK: "1",
});

/**
 * V8's tier-up to its mid-tier optimising compiler (Maglev) in an executor process: after
 * 1,200 calls' worth of a function's bytecode instead of V8's 400. Loading the task modules
 * and reading `init` runs zod's schema constructors about 950 times (a task module like the
 * start-up benchmark's), which at 400 had V8 compile them with Maglev before the first task:
 * the compiler's code, paged in from the Deno binary, stays resident in the idle process
 * (idle executor 49.2 -> 47.9 MiB RSS, medians of 5 alternated runs, load 0.3-0.7;
 * tests/runtime/executor_tiering_test.ts checks that nothing tiers up before the first task).
 * Both optimising compilers stay on, at the same peak speed: hot task code reaches Maglev
 * later, and TurboFan about 800 calls later. Measured: the executor's CPU for 1,500 tasks
 * unchanged (930 against 1,020 ms, medians of 5 alternated runs); a CPU-bound task-like
 * loop's first 1,500 calls 1% slower, its first 5,000 6% (20 ms) slower, once per process.
 */
export const EXECUTOR_MAGLEV_FLAG = "--invocation-count-for-maglev=1200";

/**
 * The V8 flags of an executor process: its heap limit (`--max-old-space-size`, none for 0),
 * its gc function exposed for the idle collections (idle_gc.ts) and its Maglev tier-up
 * ({@linkcode EXECUTOR_MAGLEV_FLAG}), comma-separated as `--v8-flags` and `DENO_V8_FLAGS`
 * take them.
 */
export function executorV8Flags(maxHeapMb: number): string {
  return [
    ...(maxHeapMb > 0 ? [`--max-old-space-size=${maxHeapMb}`] : []),
    EXECUTOR_GC_FLAG,
    EXECUTOR_MAGLEV_FLAG,
  ].join(",");
}

/** The config children run with, and what its import map makes executors read. */
export interface ChildConfig {
  /** Absolute path of the `deno.json` for the children's `--config`; `undefined`: none. */
  configFile: string | undefined;
  /**
   * The local modules that config's import map names ({@linkcode importMapReadPaths}); empty
   * for perago's own `deno.json` (its targets are perago's sources, granted narrowly).
   */
  importMapReads: string[];
}

/** Options of {@linkcode childConfig}; defaults describe this process. */
export interface ChildConfigOptions extends DenoConfigProbe {
  /** @default Deno.build.standalone */
  standalone?: boolean;
  /** perago's own `deno.json`. @default the one beside `main.ts` if present */
  peragoConfigFile?: string | undefined;
  /** perago's source directory. @default the directory of this repository's `main.ts` */
  sourceRoot?: string | undefined;
}

/**
 * The config children run with: the one this process (the supervisor) runs with
 * ({@linkcode denoConfigInUse}: `--config`, else the one Deno discovered), so children resolve
 * imports exactly as the supervisor did; perago's own `deno.json` when that cannot be told
 * (no `/proc`, no permission to read it, `--no-config`). A compiled binary gets none: its
 * children take no `deno run` flags and embed their modules. Never throws.
 *
 * @example
 * ```ts
 * // Started as `deno run -A --config deno.json <perago>/main.ts start tasks/hello.ts`
 * // in /srv/project, whose deno.json maps "greet" to "./lib/greet.ts":
 * const { configFile, importMapReads } = childConfig();
 * // configFile: "/srv/project/deno.json", importMapReads: ["/srv/project/lib"]
 * ```
 */
export function childConfig(options: ChildConfigOptions = {}): ChildConfig {
  if (options.standalone ?? Deno.build.standalone === true) {
    return { configFile: undefined, importMapReads: [] };
  }
  const own = "peragoConfigFile" in options ? options.peragoConfigFile : peragoConfigFile();
  const config = denoConfigInUse(options)?.config;
  if (config === undefined || config === null || config.path === own) {
    return { configFile: own, importMapReads: [] };
  }
  const sourceRoot = "sourceRoot" in options ? options.sourceRoot : defaultSourceRoot();
  return {
    configFile: config.path,
    importMapReads: importMapReadPaths(config.path, config.text, unique([sourceRoot])),
  };
}

/** perago's own `deno.json` (beside `main.ts`), when it exists. */
function peragoConfigFile(): string | undefined {
  if (CONFIG_URL.protocol !== "file:") return undefined;
  try {
    Deno.statSync(CONFIG_URL);
    return fromFileUrl(CONFIG_URL);
  } catch {
    return undefined;
  }
}

/**
 * The environment of a child: this process's environment without the configuration
 * variables (children get their settings, secrets included, through the protocol).
 */
export function childEnv(
  parentEnv: Record<string, string>,
  configVars: readonly string[],
): Record<string, string> {
  const drop = new Set(configVars);
  return Object.fromEntries(Object.entries(parentEnv).filter(([name]) => !drop.has(name)));
}

/**
 * The standard OpenTelemetry variables Deno's built-in exporter reads (at start, in Rust,
 * without permission checks): passed on to children so they join the same traces. The
 * compiled binary may read them (`--allow-env`) only to pass them on.
 */
export function otelEnvVars(): string[] {
  return [
    "OTEL_DENO",
    "OTEL_DENO_CONSOLE",
    "OTEL_SERVICE_NAME",
    "OTEL_RESOURCE_ATTRIBUTES",
    "OTEL_PROPAGATORS",
    "OTEL_METRIC_EXPORT_INTERVAL",
    "OTEL_BSP_SCHEDULE_DELAY",
    "OTEL_EXPORTER_OTLP_ENDPOINT",
    "OTEL_EXPORTER_OTLP_PROTOCOL",
    "OTEL_EXPORTER_OTLP_HEADERS",
    "OTEL_EXPORTER_OTLP_TIMEOUT",
    "OTEL_EXPORTER_OTLP_COMPRESSION",
    ...["TRACES", "METRICS", "LOGS"].flatMap((signal) => [
      `OTEL_EXPORTER_OTLP_${signal}_ENDPOINT`,
      `OTEL_EXPORTER_OTLP_${signal}_PROTOCOL`,
      `OTEL_EXPORTER_OTLP_${signal}_HEADERS`,
    ]),
  ];
}

/**
 * Variables passed on to children when this process may not list its whole environment
 * (started with an `--allow-env=<list>`, as the compiled binary is). A compiled binary's
 * children need none of them; a `deno run` child needs `HOME`/`DENO_DIR`/`XDG_CACHE_HOME` to
 * find Deno's cache, so such a parent is given those names too (see
 * tests/runtime/compile_flags_test.ts).
 */
export const CHILD_ENV_PASSTHROUGH: readonly string[] = Object.freeze([
  ...otelEnvVars(),
  "PATH",
  "HOME",
  "DENO_DIR",
  "XDG_CACHE_HOME",
  "TMPDIR",
  "TMP",
  "TEMP",
  "NO_COLOR",
  "LANG",
  "TZ",
]);

/**
 * This process's environment as far as it may read it: all of it with `--allow-env`, else
 * the readable names of {@linkcode CHILD_ENV_PASSTHROUGH} (never throws).
 */
export function readParentEnv(): Record<string, string> {
  try {
    return Deno.env.toObject();
  } catch {
    const env: Record<string, string> = {};
    for (const name of CHILD_ENV_PASSTHROUGH) {
      try {
        const value = Deno.env.get(name);
        if (value !== undefined) env[name] = value;
      } catch {
        // not granted: not passed on
      }
    }
    return env;
  }
}

/**
 * In a compiled binary, revokes what a child never needs (its flags were fixed at compile
 * time): subprocesses, FFI, the environment, and reading `.env` (baked in for the supervisor,
 * which reads it from the working directory the children share), so no task can read the
 * Conductor secret there. A no-op for a permission already denied. Run it first thing in the
 * child, before any task module loads.
 */
export async function narrowStandaloneChild(
  _role: ChildRole,
  envFile: string | undefined = cwdEnvFile(),
): Promise<void> {
  for (const name of ["run", "ffi", "env"] as const) {
    await Deno.permissions.revoke({ name });
  }
  await revokeEnvFileRead(envFile);
}

/** `.env` of the working directory, or `undefined` when the directory cannot be read. */
function cwdEnvFile(): string | undefined {
  try {
    return resolve(Deno.cwd(), ".env");
  } catch {
    return undefined;
  }
}

/**
 * Revokes this process's read of `envFile` when the grant covering it is the file's own.
 * Deno revokes every grant that covers a path, so where `.env` is readable through its
 * directory (a task module's directory, baked into a binary as a whole) revoking it would
 * take that directory too: then nothing is revoked and `false` is returned (see
 * {@linkcode envFileReadableThroughDirectory}). `true` when `envFile` is not readable now.
 */
export async function revokeEnvFileRead(envFile: string | undefined): Promise<boolean> {
  if (envFile === undefined) return true;
  if (Deno.permissions.querySync({ name: "read", path: envFile }).state !== "granted") {
    return true;
  }
  if (envFileReadableThroughDirectory(envFile)) return false;
  await Deno.permissions.revoke({ name: "read", path: envFile });
  return true;
}

/**
 * Whether executors can still read `envFile` although children are denied it: a thread-mode
 * Worker's permissions have no deny list (so any of its `read` grants covering the file lets
 * it through), and a compiled binary's children share its flags and can revoke a grant only
 * as a whole ({@linkcode envFileReadableThroughDirectory}). Process mode from source denies it
 * with `--deny-read`. The supervisor warns when this is `true`.
 */
export function envFileExposedToExecutors(
  envFile: string | undefined,
  mode: "process" | "thread",
  executorSets: Pick<ChildPermissionSets, "read">,
  standalone: boolean = Deno.build.standalone === true,
): boolean {
  if (envFile === undefined) return false;
  if (mode === "thread") return readGrantCovers(executorSets.read, envFile);
  return standalone && envFileReadableThroughDirectory(envFile);
}

/**
 * Whether `envFile`'s directory is granted read as a whole, so children of a compiled binary
 * (whose flags are the supervisor's) keep reading `.env`: the supervisor warns at start.
 */
export function envFileReadableThroughDirectory(envFile: string): boolean {
  return Deno.permissions.querySync({ name: "read", path: dirname(envFile) }).state ===
    "granted";
}
