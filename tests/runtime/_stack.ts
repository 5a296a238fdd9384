import { spawnPeragoStart, stopWorker as stopPerago, type Worker } from "../_perago_process.ts";
/**
 * Test harness: the demo Conductor and lakeFS servers in-process (or the real ones, with the
 * `servers` option), a tiny task module in a temp dir, and `deno run -A main.ts start` as a
 * real child process.
 */
import { ConductorClient } from "../../src/conductor/client.ts";
import { DEMO_ACCESS_KEY_ID, DEMO_SECRET_ACCESS_KEY } from "../../src/devstack/credentials.ts";
import { startConductorServer } from "../../src/devstack/conductor/server.ts";
import { startLakeFsServer } from "../../src/devstack/lakefs/server.ts";
import { loadTask } from "../../src/task/loader.ts";
import { buildTaskDef } from "../../src/task/taskdef.ts";
import type { Workflow } from "../../src/conductor/api.ts";
import { waitFor } from "../../src/util/sleep.ts";
import { type RealConductor, type RealLakeFs, uniqueSuffix } from "../_real_servers.ts";

const MOD = new URL("../../mod.ts", import.meta.url).href;

/** A workspace-free task that can sleep, read a path or fetch a URL on request. */
export const PROBE_TASK = (name: string, responseSeconds: number) => `
import { defineTask, z } from "${MOD}";
export default defineTask({
  name: "${name}",
  ownerEmail: "tests@example.com",
  description: "runtime test task",
  params: z.object({
    a: z.number(), b: z.number(),
    sleepMs: z.number().optional(), read: z.string().optional(), fetch: z.string().optional(),
    printStdout: z.boolean().optional(), sleepOnlyFirst: z.boolean().optional(),
    hogOnlyFirst: z.boolean().optional(),
  }),
  result: z.object({ sum: z.number() }),
  controls: {
    retry: { count: 2, logic: "FIXED", delaySeconds: 0 },
    timeout: { responseSeconds: ${responseSeconds}, seconds: 0 },
  },
  async run(p, ctx) {
    if (p.printStdout) console.log("a task printing to stdout");
    if (p.hogOnlyFirst && ctx.attempt.retryCount === 0) {
      // A runaway task: keeps every allocation until the heap gives out.
      const kept = [];
      while (true) kept.push(new Array(100_000).fill({ n: kept.length }));
    }
    const sleeps = p.sleepMs && !(p.sleepOnlyFirst && ctx.attempt.retryCount > 0);
    if (sleeps) await new Promise((r, j) => {
      const t = setTimeout(r, p.sleepMs);
      ctx.signal.addEventListener("abort", () => { clearTimeout(t); j(ctx.signal.reason); });
    });
    if (p.read) await Deno.readTextFile(p.read);
    if (p.fetch) await (await fetch(p.fetch)).text();
    return { sum: p.a + p.b };
  },
});
`;

/** A running stack; `await using stack = await startStack()` closes it when the scope ends. */
export interface Stack extends AsyncDisposable {
  dir: string;
  workspaceRoot: string;
  logRoot: string;
  modulePath: string;
  taskName: string;
  conductorUrl: string;
  lakefsUrl: string;
  /** lakeFS's URL and keys (the demo's or the real server's). */
  lakefs: RealLakeFs;
  /** Whether the stack runs on real servers (names must then be unique per run). */
  real: boolean;
  api: ConductorClient;
  /** The demo Conductor (its fault switches); throws on real servers, which have none. */
  readonly conductor: Awaited<ReturnType<typeof startConductorServer>>;
  env: Record<string, string>;
  startWorkflow(params: Record<string, unknown>): Promise<string>;
  waitWorkflow(id: string, status: string, timeoutMs?: number): Promise<Workflow>;
  close(): Promise<void>;
}

let seq = 0;

/**
 * Starts the demo servers (or takes `servers`, real ones from `tests/_real_servers.ts`),
 * writes and registers the probe task and its workflow.
 */
export async function startStack(
  options: {
    responseSeconds?: number;
    sweepIntervalMs?: number;
    servers?: { conductor: RealConductor; lakefs: RealLakeFs };
  } = {},
): Promise<Stack> {
  const dir = await Deno.makeTempDir({ prefix: "perago-rt-" });
  const real = options.servers;
  const conductor = real ? undefined : await startConductorServer({
    port: 0,
    sweepIntervalMs: options.sweepIntervalMs ?? 200,
  });
  const demoLakeFs = real ? undefined : await startLakeFsServer({
    port: 0,
    accessKeyId: DEMO_ACCESS_KEY_ID,
    secretAccessKey: DEMO_SECRET_ACCESS_KEY,
  });
  const lakefs: RealLakeFs = real?.lakefs ?? {
    url: demoLakeFs!.url,
    accessKeyId: DEMO_ACCESS_KEY_ID,
    secretAccessKey: DEMO_SECRET_ACCESS_KEY,
  };
  const conductorUrl = real?.conductor.url ?? conductor!.url;
  // Names on a real server outlive the run and are shared: unique per run there.
  const taskName = real ? `probe_${uniqueSuffix()}_${++seq}` : `probe_${Deno.pid}_${++seq}`;
  const modulePath = `${dir}/tasks/probe.ts`;
  await Deno.mkdir(`${dir}/tasks`, { recursive: true });
  await Deno.writeTextFile(modulePath, PROBE_TASK(taskName, options.responseSeconds ?? 60));
  const api = new ConductorClient({ serverUrl: conductorUrl });
  const { task } = await loadTask(modulePath);
  await api.registerTaskDefs([buildTaskDef(task)]);
  await api.upsertWorkflowDefs([{
    name: `${taskName}_wf`,
    version: 1,
    schemaVersion: 2,
    ownerEmail: "tests@example.com",
    tasks: [{
      name: taskName,
      taskReferenceName: "probe",
      type: "SIMPLE",
      inputParameters: { params: "${workflow.input.params}" },
    }],
    outputParameters: { sum: "${probe.output.result.sum}" },
  }]);
  const workspaceRoot = `${dir}/ws`;
  const logRoot = `${dir}/logs`;
  const env = {
    PERAGO_WORKSPACE_ROOT: workspaceRoot,
    PERAGO_LOG_ROOT: logRoot,
    PERAGO_WORKER_ID_PREFIX: "probe",
    CONDUCTOR_SERVER_URL: conductorUrl,
    LAKECTL_SERVER_ENDPOINT_URL: lakefs.url,
    LAKECTL_CREDENTIALS_ACCESS_KEY_ID: lakefs.accessKeyId,
    LAKECTL_CREDENTIALS_SECRET_ACCESS_KEY: lakefs.secretAccessKey,
    NO_COLOR: "1",
  };
  const stack: Stack = {
    dir,
    workspaceRoot,
    logRoot,
    modulePath,
    taskName,
    conductorUrl,
    lakefsUrl: lakefs.url,
    lakefs,
    real: real !== undefined,
    api,
    conductor: conductor!,
    env,
    startWorkflow: (params) => api.startWorkflow(`${taskName}_wf`, { params }),
    async waitWorkflow(id, status, timeoutMs = 20_000) {
      return await waitFor(async () => {
        const wf = await api.getWorkflow(id);
        return wf.status === status ? wf : undefined;
      }, { timeoutMs, intervalMs: 100, what: `workflow ${id} ${status}` });
    },
    async close() {
      await conductor?.close();
      await demoLakeFs?.close();
      await Deno.remove(dir, { recursive: true }).catch(() => {});
    },
    [Symbol.asyncDispose]: () => stack.close(),
  };
  if (!conductor) {
    // Not enumerable, so `{ ...stack }` copies stay usable on real servers.
    Object.defineProperty(stack, "conductor", {
      enumerable: false,
      get() {
        throw new Error("stack: no demo Conductor (fault switches) on the real servers");
      },
    });
  }
  return stack;
}

/** `perago start` as a child process, with its stderr collected. */
export type { Worker };

/** `denoFlags` replace `-A` (thread mode adds `--unstable-worker-options`). */
export function startWorker(
  stack: Stack,
  args: string[] = [],
  denoFlags: string[] = ["-A"],
): Worker {
  return spawnPeragoStart([stack.modulePath, ...args], {
    cwd: stack.dir,
    env: stack.env,
    denoFlags,
  });
}

/** Stops a worker (SIGTERM) and returns its exit code; SIGKILL after 20 s. */
export function stopWorker(worker: Worker, timeoutMs = 20_000): Promise<number> {
  return stopPerago(worker, timeoutMs);
}
