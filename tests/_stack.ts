/**
 * The one test stack every end-to-end test builds on: a temp directory, a Conductor and a
 * lakeFS (the in-process demo servers, or the real ones `tests/_real_servers.ts` names),
 * run-unique repositories and task types, task modules written and registered, `perago start`
 * spawned as real child processes, and waits with deadlines. Everything it started or created
 * is undone, in reverse order, when the stack is disposed:
 *
 * ```ts
 * import assert from "node:assert/strict";
 * import { LakeFsClient } from "../src/lakefs/client.ts";
 *
 * await using stack = await TestStack.start({ dirPrefix: "perago-doc-" }); // demo servers
 * const repo = await stack.createRepository("doc");
 * const { url, accessKeyId, secretAccessKey } = stack.lakefs;
 * const client = new LakeFsClient({ endpointUrl: url, accessKeyId, secretAccessKey });
 * assert.equal((await client.getBranch(repo, "main")).id, "main");
 * const env = stack.peragoEnv({ workerIdPrefix: "doc" });
 * assert.equal(env.CONDUCTOR_SERVER_URL, stack.conductorUrl);
 * // stack.spawnWorker([modulePath], { env }) would run `perago start` until the scope ends;
 * // then the servers are closed and the directory removed.
 * ```
 *
 * The area stacks (`tests/runtime/_stack.ts`, `tests/workspace/_stack.ts`,
 * `tests/chaos/_harness.ts`, `tests/_writers_stack.ts`) are thin wrappers: each adds its
 * task module and the checks its tests share.
 *
 * @module
 */
import type { ConductorClient } from "../src/conductor/client.ts";
import type { Workflow, WorkflowDef } from "../src/conductor/api.ts";
import {
  type ConductorServerHandle,
  startConductorServer,
} from "../src/devstack/conductor/server.ts";
import type { FaultInjector } from "../src/devstack/faults.ts";
import { type LakeFsServerHandle, startLakeFsServer } from "../src/devstack/lakefs/server.ts";
import { loadTask } from "../src/task/loader.ts";
import { buildTaskDef } from "../src/task/taskdef.ts";
import { forEachConcurrent } from "../src/util/pool.ts";
import { waitFor } from "../src/util/sleep.ts";
import { startFaultProxy } from "./_fault_proxy.ts";
import { type SpawnOptions, spawnPeragoStart, type Worker } from "./_perago_process.ts";
import {
  createTestRepository,
  deleteTestRepository,
  type RealConductor,
  type RealLakeFs,
  uniqueSuffix,
} from "./_real_servers.ts";

/** Where a stack runs: the demo servers in-process, or the real ones. */
export type Servers = "demo" | { conductor: RealConductor; lakefs: RealLakeFs };

/**
 * Which servers a {@linkcode TestStack} reaches instead of starting demo ones: both, or one
 * (the other is then a demo server, or none with `conductor: false`).
 */
export type ServerChoice = "demo" | { conductor?: RealConductor; lakefs?: RealLakeFs };

/** Terminal workflow states. */
export const TERMINAL: ReadonlySet<string> = new Set([
  "COMPLETED",
  "FAILED",
  "TIMED_OUT",
  "TERMINATED",
]);

/** Options of {@linkcode TestStack.start}. */
export interface TestStackOptions {
  /** Prefix of the temp directory's name, e.g. `perago-rt-`. */
  dirPrefix: string;
  /** The servers to reach; demo ones are started for the others. @default "demo" */
  servers?: ServerChoice;
  /**
   * The demo Conductor's settings, or `false` for a lakeFS-only stack. With a real Conductor,
   * `faults` are injected by a loopback proxy every client then goes through (`conductorUrl`),
   * and `sweepIntervalMs` is the server's own.
   * @default {}
   */
  conductor?: false | { sweepIntervalMs?: number; faults?: FaultInjector };
  /**
   * The demo lakeFS's keys (defaults: random) and faults. With real servers the keys are the
   * server's and faults are injected by a loopback proxy every client then goes through.
   * @default {}
   */
  lakefs?: { accessKeyId?: string; secretAccessKey?: string; faults?: FaultInjector };
}

/** What `perago start` is told by {@linkcode TestStack.peragoEnv}. */
export interface PeragoEnvOptions {
  /** `PERAGO_WORKER_ID_PREFIX`. */
  workerIdPrefix: string;
  /** @default `<dir>/ws` */
  workspaceRoot?: string;
  /** @default `<dir>/logs` */
  logRoot?: string;
  /** The lakeFS URL the worker uses (e.g. a gate in front of it). @default the stack's */
  lakefsUrl?: string;
  /** Variables added last (they win). */
  extra?: Record<string, string>;
}

let nameSeq = 0;

/**
 * A running stack: `await using stack = await TestStack.start(...)` undoes everything when the
 * scope ends, however the test ends (workers killed first, the temp directory removed last).
 */
export class TestStack implements AsyncDisposable {
  /** The temp directory (removed on dispose). */
  readonly dir: string;
  /** Whether the stack reaches a real server (names must then be unique per run). */
  readonly real: boolean;
  /** "demo servers" or "real servers", for test names and tables. */
  readonly label: string;
  /** The demo Conductor (its fault switches); undefined on real servers or without one. */
  readonly conductorServer: ConductorServerHandle | undefined;
  /** The demo lakeFS (its request counts); undefined on real servers. */
  readonly lakefsServer: LakeFsServerHandle | undefined;
  /** lakeFS's URL and keys as clients and workers use them (through the fault proxy, if any). */
  readonly lakefs: RealLakeFs;
  /** lakeFS itself, never through a proxy (where repositories are created and deleted). */
  readonly lakefsOrigin: RealLakeFs;
  readonly #conductorUrl: string | undefined;
  readonly #cleanup: AsyncDisposableStack;

  private constructor(fields: {
    dir: string;
    real: boolean;
    conductorServer: ConductorServerHandle | undefined;
    conductorUrl: string | undefined;
    lakefsServer: LakeFsServerHandle | undefined;
    lakefs: RealLakeFs;
    lakefsOrigin: RealLakeFs;
    cleanup: AsyncDisposableStack;
  }) {
    this.dir = fields.dir;
    this.real = fields.real;
    this.label = fields.real ? "real servers" : "demo servers";
    this.conductorServer = fields.conductorServer;
    this.#conductorUrl = fields.conductorUrl;
    this.lakefsServer = fields.lakefsServer;
    this.lakefs = fields.lakefs;
    this.lakefsOrigin = fields.lakefsOrigin;
    this.#cleanup = fields.cleanup;
  }

  /** Makes the temp directory and starts (or reaches) the servers. */
  static async start(options: TestStackOptions): Promise<TestStack> {
    const realConductor = options.servers === "demo" ? undefined : options.servers?.conductor;
    const realLakeFs = options.servers === "demo" ? undefined : options.servers?.lakefs;
    const conductorOptions = options.conductor ?? {};
    const lakefsOptions = options.lakefs ?? {};
    const cleanup = new AsyncDisposableStack();
    try {
      const dir = await Deno.makeTempDir({ prefix: options.dirPrefix });
      cleanup.defer(() => Deno.remove(dir, { recursive: true }).catch(() => {}));
      let conductorServer: ConductorServerHandle | undefined;
      let conductorUrl: string | undefined;
      if (conductorOptions && realConductor) {
        conductorUrl = realConductor.url;
        if (conductorOptions.faults) {
          const proxy = startFaultProxy(realConductor.url, conductorOptions.faults);
          cleanup.defer(() => proxy.close());
          conductorUrl = proxy.url;
        }
      } else if (conductorOptions) {
        const started = await startConductorServer({
          port: 0,
          sweepIntervalMs: conductorOptions.sweepIntervalMs ?? 200,
          ...(conductorOptions.faults ? { faults: conductorOptions.faults } : {}),
        });
        cleanup.defer(() => started.close());
        conductorServer = started;
        conductorUrl = started.url;
      }
      let lakefsServer: LakeFsServerHandle | undefined;
      let lakefsOrigin: RealLakeFs;
      if (realLakeFs) lakefsOrigin = realLakeFs;
      else {
        const accessKeyId = lakefsOptions.accessKeyId ?? "AKIATESTSTACK";
        const secretAccessKey = lakefsOptions.secretAccessKey ??
          `test-stack-${crypto.randomUUID()}`;
        const started = await startLakeFsServer({
          port: 0,
          accessKeyId,
          secretAccessKey,
          ...(lakefsOptions.faults ? { faults: lakefsOptions.faults } : {}),
        });
        cleanup.defer(() => started.close());
        lakefsServer = started;
        lakefsOrigin = { url: started.url, accessKeyId, secretAccessKey };
      }
      let lakefs = lakefsOrigin;
      if (realLakeFs && lakefsOptions.faults) {
        const proxy = startFaultProxy(lakefsOrigin.url, lakefsOptions.faults);
        cleanup.defer(() => proxy.close());
        lakefs = { ...lakefsOrigin, url: proxy.url };
      }
      return new TestStack({
        dir,
        real: realConductor !== undefined || realLakeFs !== undefined,
        conductorServer,
        conductorUrl,
        lakefsServer,
        lakefs,
        lakefsOrigin,
        cleanup: cleanup.move(),
      });
    } catch (error) {
      await cleanup.disposeAsync();
      throw error;
    }
  }

  /** The Conductor's URL; throws on a lakeFS-only stack. */
  get conductorUrl(): string {
    if (this.#conductorUrl === undefined) {
      throw new TypeError("test stack: started without a Conductor (conductor: false)");
    }
    return this.#conductorUrl;
  }

  /** Runs `onDispose` when the stack is disposed, before what was registered earlier. */
  defer(onDispose: () => unknown): void {
    this.#cleanup.defer(async () => {
      await onDispose();
    });
  }

  /**
   * A task type or workflow name unique to this call, `<prefix>_<...>`: unique per run on real
   * servers (names there outlive the run and are shared), per process on the demo ones.
   */
  uniqueName(prefix: string): string {
    return this.real
      ? `${prefix}_${uniqueSuffix()}_${++nameSeq}`
      : `${prefix}_${Deno.pid}_${++nameSeq}`;
  }

  /**
   * Creates a repository, `<label>-<suffix>` unless `name` is given, with storage namespace
   * `local://<name>`; on a real lakeFS it is deleted on dispose (a demo one goes with its
   * server).
   */
  async createRepository(
    label: string,
    options: { name?: string; defaultBranch?: string } = {},
  ): Promise<string> {
    const repo = await createTestRepository(this.lakefsOrigin, label, options);
    if (!this.lakefsServer) this.defer(() => deleteTestRepository(this.lakefsOrigin, repo));
    return repo;
  }

  /** Writes `source` to `<dir>/<relativePath>` (folders made as needed); returns the path. */
  async writeModule(relativePath: string, source: string): Promise<string> {
    const path = `${this.dir}/${relativePath}`;
    await Deno.mkdir(path.slice(0, path.lastIndexOf("/")), { recursive: true });
    await Deno.writeTextFile(path, source);
    return path;
  }

  /** The environment of `perago start` on this stack (Conductor, lakeFS, roots, no colour). */
  peragoEnv(options: PeragoEnvOptions): Record<string, string> {
    return {
      PERAGO_WORKSPACE_ROOT: options.workspaceRoot ?? `${this.dir}/ws`,
      PERAGO_LOG_ROOT: options.logRoot ?? `${this.dir}/logs`,
      PERAGO_WORKER_ID_PREFIX: options.workerIdPrefix,
      CONDUCTOR_SERVER_URL: this.conductorUrl,
      LAKECTL_SERVER_ENDPOINT_URL: options.lakefsUrl ?? this.lakefs.url,
      LAKECTL_CREDENTIALS_ACCESS_KEY_ID: this.lakefs.accessKeyId,
      LAKECTL_CREDENTIALS_SECRET_ACCESS_KEY: this.lakefs.secretAccessKey,
      NO_COLOR: "1",
      ...options.extra,
    };
  }

  /**
   * Spawns `perago start <args...>` in the stack's directory (unless `cwd` says otherwise);
   * it is SIGKILLed on dispose if still running, before the servers close.
   */
  spawnWorker(args: string[], options: Omit<SpawnOptions, "cwd"> & { cwd?: string }): Worker {
    const worker = spawnPeragoStart(args, { cwd: this.dir, ...options });
    this.defer(() => worker[Symbol.asyncDispose]());
    return worker;
  }

  /** Undoes everything, last started first; safe to call twice. */
  async close(): Promise<void> {
    await this.#cleanup.disposeAsync();
  }

  /** What `await using` calls when the scope ends: {@linkcode TestStack.close}. */
  async [Symbol.asyncDispose](): Promise<void> {
    await this.close();
  }
}

/** Registers the task definitions of the task modules at `modulePaths`. */
export async function registerTaskModules(
  api: ConductorClient,
  modulePaths: readonly string[],
): Promise<void> {
  const tasks = await Promise.all(modulePaths.map(async (path) => (await loadTask(path)).task));
  await api.registerTaskDefs(tasks.map((task) => buildTaskDef(task)));
}

/**
 * A workflow definition of one SIMPLE task `taskName` (reference `ref`) taking `inputs`, owned
 * by `ownerEmail`.
 */
export function oneTaskWorkflow(
  name: string,
  task: { taskName: string; ref: string; inputs: Record<string, unknown> },
  output: Record<string, unknown>,
  ownerEmail: string,
): WorkflowDef {
  return {
    name,
    version: 1,
    schemaVersion: 2,
    ownerEmail,
    tasks: [{
      name: task.taskName,
      taskReferenceName: task.ref,
      type: "SIMPLE",
      inputParameters: task.inputs,
    }],
    outputParameters: output,
  };
}

/** Waits until workflow `id` has `status`; returns it. */
export async function waitWorkflowStatus(
  api: ConductorClient,
  id: string,
  status: string,
  timeoutMs = 20_000,
): Promise<Workflow> {
  return await waitFor(async () => {
    const wf = await api.getWorkflow(id);
    return wf.status === status ? wf : undefined;
  }, { timeoutMs, intervalMs: 100, what: `workflow ${id} ${status}` });
}

/** How {@linkcode waitAllTerminal} polls. */
export interface WaitAllOptions {
  timeoutMs: number;
  /** @default 250 */
  intervalMs?: number;
  /** Workflows fetched at once per poll. @default 1 */
  concurrency?: number;
  /** A pending workflow's task as the timeout message shows it. @default its status */
  describeTask?: (task: Workflow["tasks"][number]) => string;
}

/**
 * Waits until every workflow in `ids` is terminal; returns them in order. On timeout the error
 * names how many are pending and shows the states of up to five.
 */
export async function waitAllTerminal(
  api: ConductorClient,
  ids: readonly string[],
  options: WaitAllOptions,
): Promise<Workflow[]> {
  const done = new Map<string, Workflow>();
  await waitFor(async () => {
    const pending = ids.filter((id) => !done.has(id));
    await forEachConcurrent(pending, options.concurrency ?? 1, async (id) => {
      const wf = await api.getWorkflow(id);
      if (TERMINAL.has(wf.status)) done.set(id, wf);
    });
    return done.size === ids.length ? true : undefined;
  }, {
    timeoutMs: options.timeoutMs,
    intervalMs: options.intervalMs ?? 250,
    what: `${ids.length} workflows terminal`,
  }).catch(async (error) => {
    const describe = options.describeTask ?? ((task) => task.status);
    const pending = ids.filter((id) => !done.has(id)).slice(0, 5);
    const states = await Promise.all(pending.map(async (id) => {
      const wf = await api.getWorkflow(id).catch(() => undefined);
      return `${id}: ${wf?.status} ${wf?.tasks.map(describe).join(",")}`;
    }));
    throw new Error(
      `${(error as Error).message}; ${ids.length - done.size} pending, e.g.\n` +
        states.join("\n"),
    );
  });
  return ids.map((id) => done.get(id)!);
}
