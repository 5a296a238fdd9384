/**
 * Scenario 1: many writable tasks while executors are killed with SIGKILL at random points
 * (download, task body, staging, publish). Every workflow completes, each change is
 * published exactly once, and no staging branch or attempt dir is left. Runs on the demo
 * servers, and on the real Conductor and real lakeFS when `PERAGO_TEST_*` name them (fewer
 * tasks there: `PERAGO_CHAOS_REAL_TASKS`, default 40).
 */
import assert from "node:assert/strict";
import { FaultInjector } from "../../src/devstack/faults.ts";
import { sleep } from "../../src/util/sleep.ts";
import {
  type ChaosStackOptions,
  checkPublished,
  envInt,
  findSecretLeaks,
  leftoverAttemptDirs,
  leftoverStaging,
  record,
  startChaosStack,
  startWorker,
  stopWorker,
  tail,
  Tally,
  waitRunning,
  type Worker,
} from "./_harness.ts";
import { realServers, skipNote } from "../_real_servers.ts";

/** Tasks of the scenario on the demo servers. */
const TASKS = envInt("PERAGO_CHAOS_TASKS", 200);
/** Tasks of the scenario on the real servers (each publish is slower there). */
const REAL_TASKS = envInt("PERAGO_CHAOS_REAL_TASKS", 40);
/** Most executor kills in one run of `tasks` tasks. */
const maxKills = (tasks: number) =>
  envInt("PERAGO_CHAOS_KILLS", Math.max(4, Math.min(12, Math.ceil(tasks / 4))));
const SLOTS = 3;

type Phase = "download" | "body" | "staging" | "publish";

/** A lakeFS fault injector that SIGKILLs an executor when a request of some phase arrives. */
class KillingFaults extends FaultInjector {
  worker: Worker | undefined;
  readonly maxKills: number;
  readonly killed = new Set<number>();
  readonly byPhase: Record<Phase, number> = { download: 0, body: 0, staging: 0, publish: 0 };
  #last = 0;

  constructor(maxKills: number) {
    super();
    this.maxKills = maxKills;
  }

  phaseOf(request: Request): Phase | undefined {
    const url = new URL(request.url);
    const path = url.pathname;
    if (request.method === "GET" && /\/refs\/[^/]+\/objects$/.test(path)) return "download";
    if (request.method === "POST" && /\/branches\/perago-staging-[^/]+\/objects$/.test(path)) {
      return "staging";
    }
    if (request.method === "POST" && /\/branches\/perago-staging-[^/]+\/commits$/.test(path)) {
      return "staging";
    }
    if (request.method === "POST" && /\/merge\//.test(path)) return "publish";
    if (request.method === "PUT" && /\/hard_reset$/.test(path)) return "publish";
    return undefined;
  }

  /** The phases in turn: each kill waits for a request (or moment) of the next one. */
  readonly #order: Phase[] = ["publish", "download", "body", "staging"];

  /** Kills one live executor if it is this phase's turn and the budget and spacing allow. */
  kill(phase: Phase): boolean {
    const worker = this.worker;
    if (!worker || this.killed.size >= this.maxKills) return false;
    if (this.#order[this.killed.size % this.#order.length] !== phase) return false;
    if (Date.now() - this.#last < 1_500) return false;
    const live = worker.executorPids().filter((pid) => !this.killed.has(pid));
    if (live.length < SLOTS) return false; // let restarts come back first
    const pid = live[Math.floor(Math.random() * live.length)]!;
    try {
      Deno.kill(pid, "SIGKILL");
    } catch {
      return false;
    }
    this.killed.add(pid);
    this.byPhase[phase]++;
    this.#last = Date.now();
    return true;
  }

  override async apply(request: Request): Promise<Response | undefined> {
    const phase = this.phaseOf(request);
    if (phase) this.kill(phase);
    return await super.apply(request);
  }
}

/** Kills during the task body: now and then, whatever runs, until stopped or disposed. */
function startBodyKiller(
  worker: Worker,
  faults: KillingFaults,
): AsyncDisposable & { stop(): Promise<void> } {
  const stopped = new AbortController();
  const loop = (async () => {
    while (!stopped.signal.aborted) {
      await sleep(50 + Math.random() * 200, stopped.signal).catch(() => {});
      if (/attempt a\d+: task \S+ of \S+ started/.test(worker.output())) faults.kill("body");
    }
  })();
  const stop = async () => {
    stopped.abort();
    await loop;
  };
  return { stop, [Symbol.asyncDispose]: stop };
}

async function killScenario(
  tasks: number,
  servers?: ChaosStackOptions["servers"],
): Promise<void> {
  const started = Date.now();
  const faults = new KillingFaults(maxKills(tasks));
  await using stack = await startChaosStack({
    lakefsFaults: faults,
    ...(servers ? { servers } : {}),
  });
  await using worker = startWorker(stack, ["-j", String(SLOTS)]);
  faults.worker = worker;
  await waitRunning(worker);
  const ids: string[] = [];
  const workflows: string[] = [];
  for (let i = 0; i < tasks; i++) {
    const id = `k${i}`;
    ids.push(id);
    workflows.push(await stack.startTask(id, { sleepMs: 100 + Math.floor(Math.random() * 300) }));
  }
  await using bodyKiller = startBodyKiller(worker, faults);
  const done = await stack.waitAll(workflows, 60_000 + 1_500 * tasks).catch((error) => {
    throw new Error(`${error.message}\n${tail(worker.output())}`);
  });
  await bodyKiller.stop();
  const tally = new Tally();
  for (const [i, wf] of done.entries()) {
    const id = ids[i]!;
    tally.count(id, wf, await checkPublished(stack, id));
  }
  assert.equal(await stopWorker(worker), 0, tail(worker.output()));
  const staging = await leftoverStaging(stack);
  const dirs = await leftoverAttemptDirs(stack);
  const leaks = await findSecretLeaks(stack, [
    worker.output(),
    ...done.flatMap((wf) => wf.tasks.map((t) => String(t.reasonForIncompletion ?? ""))),
  ]);
  const kills = [...Object.entries(faults.byPhase)].map(([k, v]) => `${k} ${v}`).join(", ");
  record(tally.row(
    `1 executor SIGKILL${stack.real ? " (real servers)" : ""}`,
    tasks,
    started,
    `kills: ${kills}; ${stack.real ? "PERAGO_CHAOS_REAL_TASKS" : "PERAGO_CHAOS_TASKS"}=${tasks}`,
  ));
  tally.assertAllPassed("every workflow completes and publishes once");
  assert.ok(faults.killed.size > 0, "at least one executor was killed");
  assert.deepEqual(staging, [], "no staging branch left");
  assert.deepEqual(dirs, [], "no attempt dir left");
  assert.deepEqual(leaks, [], "no secret in logs or reasons");
}

Deno.test(`chaos 1: ${TASKS} writable tasks, executors SIGKILLed at random points`, async () => {
  await killScenario(TASKS);
});

const real = realServers();
Deno.test({
  name:
    `chaos 1 on the real Conductor and lakeFS: ${REAL_TASKS} writable tasks, executors SIGKILLed`,
  ignore: skipNote("chaos 1 on the real servers", real),
  async fn() {
    if ("skip" in real) return;
    await killScenario(REAL_TASKS, real);
  },
});
