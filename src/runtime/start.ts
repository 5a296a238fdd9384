/**
 * `perago start` below the CLI: load the configuration and the task modules, check that each
 * TaskDef is registered, set up the supervisor's logging, and run the
 * {@linkcode Supervisor} with real child processes (process mode) or, in thread mode, executor
 * Web Workers (thread_spawner.ts) and the broker in this isolate (inline_broker.ts), under
 * narrow permissions.
 *
 * @module
 */
import { join } from "node:path";
import {
  type ConductorConfig,
  CONFIG_ENV_VARS,
  type LakeFsConfig,
  loadRuntimeConfig,
  loadTaskSettings,
  readProcessEnv,
  type RuntimeConfig,
  type TaskSettings,
} from "../config/config.ts";
import { ConfigError } from "../config/errors.ts";
import { taskEnvVars } from "../config/task_settings.ts";
import { brokerWorkerId, childWorkerId, moduleStem, resolveWorkerId } from "../config/worker_id.ts";
import type { ConductorApi } from "../conductor/api.ts";
import { ConductorClient } from "../conductor/client.ts";
import { LakeFsClient } from "../lakefs/client.ts";
import { LakeFsNotFoundError } from "../lakefs/errors.ts";
import { proxyInEnvironment } from "../util/http1.ts";
import { setupLogging } from "../log/setup.ts";
import { type LoadedTask, loadTask } from "../task/loader.ts";
import { spawnChild } from "./_child.ts";
import { hostPort } from "./net_grant.ts";
import {
  childCommand,
  childConfig,
  childEnv,
  childPermissionSets,
  envFileExposedToExecutors,
  readParentEnv,
} from "./permissions.ts";
import { spawnWorkerChild, workerOptionsEnabled, workerPermissions } from "./thread_spawner.ts";
import { spawnInlineBroker } from "./inline_broker.ts";
import { runBrokerRole } from "./roles.ts";
import { laneSocketPaths, makeLaneDir, WORKSPACE_LANE_DIR } from "./lane_dir.ts";
import {
  type BrokerInit,
  type ExecutorInit,
  FromBrokerSchema,
  FromExecutorSchema,
  type ToBroker,
  type ToExecutor,
} from "./protocol.ts";
import type { StagingBranchRef } from "./gc.ts";
import { type ChildSpawner, Supervisor } from "./supervisor.ts";
import type { TaskPolling } from "./broker.ts";
import { getLogger } from "../log/logger.ts";
import { type ListenAddress, parseListenAddress } from "../config/parse.ts";
import { type MetricsServer, startMetricsServer } from "../metrics/server.ts";
import { declareTaskMetrics, RuntimeTelemetry } from "./telemetry.ts";
import { bridgeToOpenTelemetry, otlpExportMayBeOn } from "../metrics/otlp.ts";
import { MetricsRegistry } from "../metrics/registry.ts";

/** A TaskDef is missing on the Conductor server. */
export class TaskDefNotRegisteredError extends Error {
  override name = "TaskDefNotRegisteredError";
}

/** Options of {@linkcode startRuntime}. */
export interface StartOptions {
  /** Task modules (paths or `file:` URLs), at least one. */
  modules: readonly string[];
  /** Executors (`-j`). @default 1 */
  concurrency?: number;
  /** `--execution-mode`; overrides `PERAGO_EXECUTION_MODE`. */
  executionMode?: "process" | "thread";
  /** @default Deno.cwd() */
  cwd?: string;
  /**
   * `--metrics-address host:port`: serve /metrics, /healthz and /readyz there; overrides
   * `PERAGO_METRICS_ADDRESS`.
   */
  metricsAddress?: string;
  /** Called with the supervisor once it exists (the CLI wires signals to `shutdown()`). */
  onSupervisor?: (supervisor: Supervisor) => void;
}

/**
 * Runs the runtime until it stops; resolves with the exit code. Needs the permissions of
 * `deno run -A main.ts` (the supervisor reads `.env`, spawns children, checks pids).
 *
 * @throws {ConfigError} for bad or missing configuration (Conductor and lakeFS are required).
 * @throws {TaskDefNotRegisteredError} when a task's TaskDef is not on the server.
 */
export async function startRuntime(options: StartOptions): Promise<number> {
  if (options.modules.length === 0) throw new TypeError("start: no task module given");
  const cwd = options.cwd ?? Deno.cwd();
  const first = options.modules[0]!;
  const config = await loadRuntimeConfig(first, { cwd });
  const { mode, metricsAddress, conductor } = startChoices(options, config);
  const loaded = await loadServedTasks(options.modules, cwd);
  const names = loaded.map((entry) => entry.task.name);
  const lakefs = lakeFsFor(loaded, config);

  const settings = await loadTaskSettings(names, { cwd });

  await checkTaskDefsRegistered(conductorClient(conductor), loaded, conductor.serverUrl);

  const secrets = [lakefs?.secretAccessKey.reveal(), conductor.authSecret?.reveal()]
    .filter((s): s is string => s !== undefined);
  const moduleName = moduleStem(first);
  const supervisorWorkerId = resolveWorkerId(first, readProcessEnv());
  const logging = await setupLogging({
    logRoot: config.logRoot,
    moduleName,
    workerId: supervisorWorkerId,
    maxFileBytes: config.logFileMaxSizeBytes,
    retentionMs: config.logRetentionMs,
    secrets,
    level: config.debug ? "debug" : "info",
  });
  const concurrency = options.concurrency ?? 1;
  // Every record is replayed over OTLP too when Deno exports it (OTEL_DENO=true); without it
  // each record's replay into no-op instruments was a tenth of the supervisor's CPU per task.
  const registry = new MetricsRegistry();
  const unbridge = otlpExportMayBeOn(otelDenoEnv())
    ? bridgeToOpenTelemetry(registry, { instanceId: config.instanceId ?? supervisorWorkerId })
    : () => {};
  const telemetry = runtimeTelemetry(registry, loaded, settings, {
    executionMode: mode,
    concurrency,
    conductorUrl: conductor.serverUrl,
    lakefsUrl: lakefs?.endpointUrl,
  });
  let server: MetricsServer | undefined;
  const laneDir = mode === "process"
    ? await makeLaneDir({ workspaceRoot: config.workspaceRoot, slots: concurrency })
    : undefined;
  let supervisor: Supervisor | undefined;
  try {
    if (metricsAddress !== undefined) {
      // Before any child starts: a taken port stops the start with one clear line.
      server = startMetricsListener(
        telemetry,
        metricsAddress,
        options.metricsAddress === undefined ? "PERAGO_METRICS_ADDRESS" : "--metrics-address",
      );
    }
    const lanePaths = laneDir === undefined ? undefined : laneSocketPaths(laneDir, concurrency);
    const permissionInputs = permissionInputsOf(config, lakefs, loaded);
    const running = new Supervisor({
      ...supervisorOptions(config, lakefs, loaded, settings, concurrency, moduleName, {
        mode,
        lanePaths,
        permissionInputs,
      }),
      telemetry,
    });
    supervisor = running;
    // Health requests only feed /readyz: none without the listener.
    telemetry.watch(() => running.status, { healthRequests: server !== undefined });
    options.onSupervisor?.(running);
    logStart(config, loaded, settings, {
      concurrency,
      mode,
      logFile: logging.logFile,
      envFileExposed: envFileExposedToExecutors(
        config.envFile,
        mode,
        childPermissionSets({ ...permissionInputs, role: "executor" }),
      ),
    });
    return await running.run();
  } finally {
    telemetry.close();
    unbridge();
    await server?.close();
    await removeLaneDir(laneDir, config.workspaceRoot, supervisor);
    await logging.dispose();
  }
}

/** The execution mode, the metrics address and Conductor's settings `start` runs with. */
function startChoices(options: StartOptions, config: RuntimeConfig): {
  mode: "process" | "thread";
  metricsAddress: ListenAddress | undefined;
  conductor: ConductorConfig;
} {
  const mode = options.executionMode ?? config.executionMode;
  checkExecutionMode(mode);
  const metricsAddress: ListenAddress | undefined = options.metricsAddress === undefined
    ? config.metricsAddress
    : parseListenAddress(options.metricsAddress, "--metrics-address");
  const conductor = config.conductor;
  if (conductor === undefined) {
    throw new ConfigError(
      "perago start needs Conductor: set CONDUCTOR_SERVER_URL (in .env or the environment); " +
        '"perago dev" prints a demo set',
    );
  }
  return { mode, metricsAddress, conductor };
}

/**
 * Removes the lanes' directory at stop. The workspace root's lanes belong to the supervisor
 * holding its lock: one that never took it (another supervisor runs there) leaves them alone.
 */
async function removeLaneDir(
  laneDir: string | undefined,
  workspaceRoot: string,
  supervisor: Supervisor | undefined,
): Promise<void> {
  const ours = laneDir !== undefined &&
    (laneDir !== join(workspaceRoot, WORKSPACE_LANE_DIR) || supervisor?.tookLock === true);
  if (ours) await Deno.remove(laneDir, { recursive: true }).catch(() => {});
}

/** The supervisor's own Conductor client (its look-ups at start). */
function conductorClient(conductor: ConductorConfig): ConductorClient {
  return new ConductorClient({
    serverUrl: conductor.serverUrl,
    authKey: conductor.authKey,
    authSecret: conductor.authSecret,
  });
}

/**
 * Thread mode needs per-worker permissions, an unstable Deno API.
 *
 * @throws {ConfigError} for thread mode in a process started without them.
 */
function checkExecutionMode(mode: "process" | "thread"): void {
  if (mode === "thread" && workerOptionsEnabled() === false) {
    throw new ConfigError(
      "execution mode thread needs Deno's --unstable-worker-options (per-worker " +
        "permissions), which this process was started without: run " +
        '"deno run -A --unstable-worker-options main.ts start ..." (deno task start and ' +
        "the compiled binary pass it), or use --execution-mode process",
    );
  }
}

/** The runtime's telemetry over `registry`, with each served task's own metrics declared. */
function runtimeTelemetry(
  registry: MetricsRegistry,
  loaded: readonly LoadedTask[],
  settings: readonly TaskSettings[],
  runtime: {
    executionMode: "process" | "thread";
    concurrency: number;
    conductorUrl: string;
    lakefsUrl: string | undefined;
  },
): RuntimeTelemetry {
  const telemetry = new RuntimeTelemetry({ registry, ...runtime });
  for (const { task } of loaded) declareTaskMetrics(telemetry.registry, task.name, task.metrics);
  telemetry.servedTaskTypes(
    settings.map((setting) => ({
      taskType: setting.name,
      paused: setting.paused,
      domain: setting.domain,
    })),
  );
  return telemetry;
}

/** Loads the task modules; two modules of one task name are an error. */
async function loadServedTasks(modules: readonly string[], cwd: string): Promise<LoadedTask[]> {
  const loaded: LoadedTask[] = [];
  for (const module of modules) loaded.push(await loadTask(module, { cwd }));
  const names = loaded.map((entry) => entry.task.name);
  const duplicate = names.find((name, i) => names.indexOf(name) !== i);
  if (duplicate !== undefined) {
    throw new TypeError(`start: two modules define the task ${duplicate}; give each task once`);
  }
  return loaded;
}

/**
 * lakeFS, for workspace tasks only: a worker of workspace-free tasks runs without it (and its
 * executors get no network at all).
 *
 * @throws {ConfigError} when a workspace task is served and lakeFS is not configured.
 */
function lakeFsFor(loaded: readonly LoadedTask[], config: RuntimeConfig): LakeFsConfig | undefined {
  const workspaceTasks = loaded.filter((entry) => entry.task.workspace !== undefined);
  if (workspaceTasks.length === 0) return undefined;
  if (config.lakefs === undefined) {
    throw new ConfigError(
      `perago start needs lakeFS for the workspace task(s) ${
        workspaceTasks.map((entry) => entry.task.name).join(", ")
      }: set LAKECTL_SERVER_ENDPOINT_URL, LAKECTL_CREDENTIALS_ACCESS_KEY_ID and ` +
        'LAKECTL_CREDENTIALS_SECRET_ACCESS_KEY (in .env or the environment); "perago dev" ' +
        "prints a demo set",
    );
  }
  return config.lakefs;
}

/** The operators' listener: /metrics, /healthz and /readyz from the runtime's telemetry. */
function startMetricsListener(
  telemetry: RuntimeTelemetry,
  address: ListenAddress,
  settingName: string,
): MetricsServer {
  const server = startMetricsServer({
    address,
    settingName,
    collect: () => telemetry.collect(),
    liveness: () => telemetry.liveness(),
    readiness: () => telemetry.readiness(),
  });
  getLogger("runtime").info(
    "serving metrics on {url}/metrics, probes on /healthz and /readyz",
    { url: server.url },
  );
  return server;
}

/** The start lines: executors and mode, each served task, and settings worth a word. */
function logStart(
  config: RuntimeConfig,
  loaded: readonly LoadedTask[],
  settings: readonly TaskSettings[],
  run: {
    concurrency: number;
    mode: "process" | "thread";
    logFile: string;
    envFileExposed: boolean;
  },
): void {
  const log = getLogger("runtime");
  const names = loaded.map((entry) => entry.task.name);
  log.info(
    "starting {concurrency} executor(s) ({mode} mode) for {tasks}; logs in {log}",
    { concurrency: run.concurrency, mode: run.mode, tasks: names.join(", "), log: run.logFile },
  );
  for (const line of describeServing(loaded, settings)) log.info(line);
  if (run.mode === "thread" && config.executorMaxHeapMb > 0) {
    // Deno gives a Worker no heap limit of its own (no resourceLimits; a V8 flag set now
    // reaches no isolate), and one running out of heap ends the whole process.
    log.info(
      "thread mode: executors share this process and its heap; PERAGO_EXECUTOR_MAX_HEAP_MB " +
        "caps executors in process mode only",
    );
  }
  if (run.envFileExposed) {
    log.warn(
      run.mode === "thread"
        ? "executors (Workers) can read {envFile}: a read grant covers its directory (a task " +
          "module's directory?) and a Worker's permissions cannot deny one file; keep .env " +
          "out of task module directories, or run in process mode"
        : "executors of this binary can read {envFile}: its directory is granted as a whole " +
          "(a task module's directory?); keep .env in a directory of its own and build again",
      { envFile: config.envFile },
    );
  }
  const unknownPaused = config.pausedTasks.filter((name) => !names.includes(name));
  if (unknownPaused.length > 0) {
    log.warn("PERAGO_TASK_PAUSED names {names}, which this worker does not serve", {
      names: unknownPaused.join(", "),
    });
  }
}

/**
 * Checks that every task's TaskDef exists on the server.
 *
 * @throws {TaskDefNotRegisteredError} naming the task, with the commands that register it.
 */
export async function checkTaskDefsRegistered(
  api: Pick<ConductorApi, "getTaskDef">,
  tasks: readonly Pick<LoadedTask, "task" | "modulePath">[],
  serverUrl: string,
): Promise<void> {
  const base = serverUrl.replace(/\/+$/, "").replace(/\/api$/, "");
  for (const { task, modulePath } of tasks) {
    if (await api.getTaskDef(task.name) !== undefined) continue;
    throw new TaskDefNotRegisteredError(
      `the TaskDef ${task.name} is not registered on ${base}: run "perago extract ` +
        `${modulePath} -o taskdef.json" and register it: curl -X POST ` +
        `${base}/api/metadata/taskdefs -H 'content-type: application/json' ` +
        `-d "[$(cat taskdef.json)]"`,
    );
  }
}

/** One line per served task type: domain, per-host cap, polling, paused. */
function describeServing(
  loaded: readonly LoadedTask[],
  settings: readonly TaskSettings[],
): string[] {
  return loaded.map(({ task }, i) => {
    const setting = settings[i]!;
    if (setting.paused) return `task ${task.name}: paused (PERAGO_TASK_PAUSED), not polled`;
    const cap = setting.concurrency ?? task.worker.concurrency;
    return `task ${task.name}: domain ${setting.domain ?? "none (default queue)"}, ` +
      `concurrency ${cap ?? "all slots"}, polling ${
        task.worker.pollIntervalMs === undefined
          ? "adaptive"
          : `every ${task.worker.pollIntervalMs} ms when idle`
      }${task.worker.batchSize === undefined ? "" : `, batch ${task.worker.batchSize}`}`;
  });
}

/** The broker's polling settings of each served type that is not paused, by name. */
export function taskPollingOf(
  loaded: readonly Pick<LoadedTask, "task">[],
  settings: readonly TaskSettings[],
): Record<string, TaskPolling> {
  const polling: Record<string, TaskPolling> = {};
  loaded.forEach(({ task }, i) => {
    const setting = settings[i]!;
    if (setting.paused) return;
    const concurrency = setting.concurrency ?? task.worker.concurrency;
    polling[task.name] = {
      ...(setting.domain === undefined ? {} : { domain: setting.domain }),
      ...(concurrency === undefined ? {} : { concurrency }),
      ...(task.worker.pollIntervalMs === undefined
        ? {}
        : { pollIntervalMs: task.worker.pollIntervalMs }),
      ...(task.worker.batchSize === undefined ? {} : { batchSize: task.worker.batchSize }),
    };
  });
  return polling;
}

/** What the children's permissions are made of (see permissions.ts). */
function permissionInputsOf(
  config: RuntimeConfig,
  lakefs: LakeFsConfig | undefined,
  loaded: readonly LoadedTask[],
) {
  // Children (and thread-mode Workers, which resolve as this process does) use this process's
  // deno.json: a task project's import map reaches the executors, which may read its modules.
  const { configFile, importMapReads } = childConfig();
  return {
    workspaceRoot: config.workspaceRoot,
    logRoot: config.logRoot,
    modules: loaded.map((entry) => entry.modulePath),
    conductorUrl: config.conductor!.serverUrl,
    lakefsUrl: lakefs?.endpointUrl,
    configFile,
    importMapReads,
    envFile: config.envFile,
  };
}

function supervisorOptions(
  config: RuntimeConfig,
  lakefs: LakeFsConfig | undefined,
  loaded: readonly LoadedTask[],
  settings: readonly TaskSettings[],
  concurrency: number,
  moduleName: string,
  { mode, lanePaths, permissionInputs }: {
    mode: "process" | "thread";
    lanePaths: readonly string[] | undefined;
    permissionInputs: PermissionInputs;
  },
) {
  const modules = permissionInputs.modules;
  const prefix = config.workerIdPrefix;
  const env = childEnv(readParentEnv(), [
    ...CONFIG_ENV_VARS,
    ...taskEnvVars(loaded.map((entry) => entry.task.name)),
  ]);
  // The supervisor deletes staging branches of attempts whose executor died (named in their
  // attempt markers); it reaches lakeFS as the executors do.
  const stagingCleaner = lakefs === undefined ? undefined : new LakeFsClient({
    endpointUrl: lakefs.endpointUrl,
    accessKeyId: lakefs.accessKeyId,
    secretAccessKey: lakefs.secretAccessKey,
  });
  return {
    concurrency,
    workspaceRoot: config.workspaceRoot,
    workspaceGcTtlMs: config.workspaceGcTtlMs,
    workspaceGcIntervalMs: config.workspaceGcIntervalMs,
    shutdownForceKillAfterMs: config.shutdownForceKillAfterMs,
    brokerInit: {
      ...brokerInitOf(config, loaded, settings, moduleName),
      ...(lanePaths === undefined ? {} : { lanes: [...lanePaths] }),
    },
    ...(lanePaths === undefined ? {} : { lanePaths }),
    executorInit: (slot: number) => executorInitOf(config, lakefs, modules, moduleName, slot),
    spawner: mode === "thread"
      ? threadSpawner(permissionInputs, prefix)
      : processSpawner(permissionInputs, env, prefix, config.executorMaxHeapMb, lanePaths),
    childrenInProcess: mode === "thread",
    ...(stagingCleaner === undefined ? {} : {
      // A marker names its staging branch before the branch is made (and whether or not it
      // ever is): one that is not there is already as wanted.
      deleteStagingBranch: ({ repository, branch }: StagingBranchRef) =>
        stagingCleaner.deleteBranch(repository, branch, AbortSignal.timeout(60_000)).catch(
          (error) => {
            if (!(error instanceof LakeFsNotFoundError)) throw error;
          },
        ),
    }),
    executorMaxHeapMb: mode === "process" ? config.executorMaxHeapMb : 0,
    attemptBudgetMs: (taskType: string) => {
      const seconds = loaded.find((entry) => entry.task.name === taskType)?.task.controls.timeout
        .seconds;
      return seconds ? seconds * 1000 : undefined;
    },
  };
}

/** The log settings of a child with id `workerId`. */
function childLog(config: RuntimeConfig, moduleName: string, workerId: string) {
  return {
    logRoot: config.logRoot,
    moduleName,
    workerId,
    maxFileBytes: config.logFileMaxSizeBytes,
    retentionMs: config.logRetentionMs,
    debug: config.debug,
  };
}

/** The broker's init: the task types it polls (paused ones left out), how, and Conductor. */
function brokerInitOf(
  config: RuntimeConfig,
  loaded: readonly LoadedTask[],
  settings: readonly TaskSettings[],
  moduleName: string,
): BrokerInit {
  const conductor = config.conductor!;
  const workerId = brokerWorkerId(config.workerIdPrefix);
  return {
    workerId,
    taskTypes: settings.filter((setting) => !setting.paused).map((setting) => setting.name),
    taskPolling: taskPollingOf(loaded, settings),
    pausedTaskTypes: settings.filter((setting) => setting.paused).map((setting) => setting.name),
    conductor: {
      serverUrl: conductor.serverUrl,
      ...(conductor.authKey === undefined ? {} : { authKey: conductor.authKey }),
      ...(conductor.authSecret === undefined ? {} : { authSecret: conductor.authSecret.reveal() }),
    },
    // Shorter than the 5 s maximum: a drain waits for the in-flight poll (never aborted, so
    // no polled task is lost), and 2 s keeps that wait short while idle polls stay rare.
    pollTimeoutMs: 2000,
    log: childLog(config, moduleName, workerId),
  };
}

/** The init of the executor in `slot`: its modules, roots and lakeFS (workspace tasks only). */
function executorInitOf(
  config: RuntimeConfig,
  lakefs: LakeFsConfig | undefined,
  modules: readonly string[],
  moduleName: string,
  slot: number,
): ExecutorInit {
  const workerId = childWorkerId(config.workerIdPrefix, slot);
  return {
    slot,
    workerId,
    modules: [...modules],
    workspaceRoot: config.workspaceRoot,
    failureReasonMaxLength: config.failureReasonMaxLength,
    workspaceRefStyle: config.workspaceRefStyle,
    objectCacheMaxBytes: config.objectCacheMaxBytes,
    warmPoolDirs: config.warmPoolDirs,
    warmPoolMaxBytes: config.warmPoolMaxBytes,
    warmPoolMinFiles: config.warmPoolMinFiles,
    dropHosts: executorDropHosts(config, lakefs),
    ...(lakefs === undefined ? {} : {
      lakefs: {
        endpointUrl: lakefs.endpointUrl,
        accessKeyId: lakefs.accessKeyId,
        secretAccessKey: lakefs.secretAccessKey.reveal(),
        // The executor may not read the environment: told here whether a proxy is set, so
        // its small reads can use kept-alive connections (see src/util/http1.ts).
        ...noProxyField(),
      },
    }),
    log: childLog(config, moduleName, workerId),
  };
}

/** `{ noProxy }` when this process could read its environment for proxies, else nothing. */
function noProxyField(): { noProxy?: boolean } {
  const proxy = proxyInEnvironment();
  return proxy === undefined ? {} : { noProxy: !proxy };
}

/**
 * The hosts an executor drops as it starts: Conductor's, unless lakeFS is on the same
 * `host:port`. Task code never needs Conductor; only the broker talks to it.
 *
 * @example
 * ```ts
 * import type { RuntimeConfig } from "../config/config.ts";
 * const config = { conductor: { serverUrl: "http://conductor.internal:8080/api" } };
 * executorDropHosts(config as unknown as RuntimeConfig, undefined); // ["conductor.internal:8080"]
 * ```
 */
export function executorDropHosts(
  config: RuntimeConfig,
  lakefs: LakeFsConfig | undefined,
): string[] {
  if (config.conductor === undefined) return [];
  const conductor = hostPort(config.conductor.serverUrl);
  return lakefs !== undefined && hostPort(lakefs.endpointUrl) === conductor ? [] : [conductor];
}

type PermissionInputs = Omit<Parameters<typeof childPermissionSets>[0], "role">;

/**
 * Thread mode: executors as Web Workers with per-worker permissions; the broker in this
 * isolate (inline_broker.ts), so a task's poll and result cross no thread on their way
 * between the broker and the supervisor.
 */
function threadSpawner(permissionInputs: PermissionInputs, prefix: string): ChildSpawner {
  return {
    broker: () =>
      spawnInlineBroker({
        run: (open) => runBrokerRole(open, { logging: "host" }),
        onCrash: (message) => workerCrash("broker", message),
      }),
    executor: (slot) =>
      spawnWorkerChild<typeof FromExecutorSchema._output, ToExecutor>({
        slot,
        permissions: workerPermissions(
          childPermissionSets({ ...permissionInputs, role: "executor" }),
        ),
        schema: FromExecutorSchema,
        onInvalid: (error) => strayLine(childWorkerId(prefix, slot), error.message),
        onCrash: (message) => workerCrash(childWorkerId(prefix, slot), message),
      }),
  };
}

/** Process mode: the broker and executors as child processes with narrow permission flags. */
function processSpawner(
  permissionInputs: PermissionInputs,
  env: Record<string, string>,
  prefix: string,
  executorMaxHeapMb: number,
  lanePaths: readonly string[] | undefined,
): ChildSpawner {
  return {
    broker: () =>
      spawnChild<typeof FromBrokerSchema._output, ToBroker>({
        command: childCommand({
          ...permissionInputs,
          role: "broker",
          ...(lanePaths === undefined ? {} : { lanePaths }),
        }),
        env,
        schema: FromBrokerSchema,
        onInvalid: (_error, line) => strayLine("broker", line),
      }),
    executor: (slot) =>
      spawnChild<typeof FromExecutorSchema._output, ToExecutor>({
        command: childCommand({
          ...permissionInputs,
          role: "executor",
          maxHeapMb: executorMaxHeapMb,
          // Its own slot's lane only.
          ...(lanePaths?.[slot] === undefined ? {} : { lanePaths: [lanePaths[slot]] }),
        }),
        env,
        schema: FromExecutorSchema,
        onInvalid: (_error, line) => strayLine(childWorkerId(prefix, slot), line),
      }),
  };
}

function workerCrash(who: string, message: string): void {
  getLogger("runtime", "supervisor").error("{who} (worker) crashed: {message}", {
    who,
    message: message.slice(0, 2000),
  });
}

function strayLine(who: string, line: string): void {
  getLogger("runtime", "supervisor").warn("{who} wrote a non-protocol line to stdout: {line}", {
    who,
    line: line.slice(0, 500),
  });
}

/** `OTEL_DENO` of this process; unreadable counts as set (the bridge stays, the safe side). */
function otelDenoEnv(): Record<string, string> {
  try {
    return readProcessEnv(["OTEL_DENO"]);
  } catch {
    return { OTEL_DENO: "true" };
  }
}
