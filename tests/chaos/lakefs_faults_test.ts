/**
 * Scenario 3: lakeFS answers 429 or 5xx on 30% of calls. Attempts complete through retries
 * or fail cleanly as retryable FAILED and succeed on Conductor's retry; never a
 * half-published branch, never a staging branch left. Runs on the demo servers (whose lakeFS
 * injects the faults), and on the real Conductor and real lakeFS when `PERAGO_TEST_*` name
 * them, the faults then injected by a loopback proxy in front of the real lakeFS.
 */
import assert from "node:assert/strict";
import { FaultInjector } from "../../src/devstack/faults.ts";
import {
  type ChaosStackOptions,
  checkPublished,
  envInt,
  leftoverAttemptDirs,
  leftoverStaging,
  record,
  startChaosStack,
  startWorker,
  stopWorker,
  tail,
  Tally,
  waitRunning,
} from "./_harness.ts";
import { realServers, skipNote } from "../_real_servers.ts";

const TASKS = envInt("PERAGO_CHAOS_FAULT_TASKS", 30);

async function faultScenario(tasks: number, servers?: ChaosStackOptions["servers"]) {
  const started = Date.now();
  const faults = new FaultInjector();
  await using stack = await startChaosStack({
    lakefsFaults: faults,
    ...(servers ? { servers } : {}),
  });
  await using worker = startWorker(stack, ["-j", "3"]);
  // Half-published: a branch whose head is neither the seed nor a full, single publication.
  const halfPublished: string[] = [];
  await waitRunning(worker);
  const ids: string[] = [];
  const workflows: string[] = [];
  for (let i = 0; i < tasks; i++) {
    ids.push(`l${i}`);
    workflows.push(await stack.startTask(`l${i}`, { sleepMs: 50 }));
  }
  faults.set({ errorRate: 0.15, tooManyRate: 0.15, retryAfterSeconds: 0 });
  const done = await stack.waitAll(workflows, 150_000).catch((error) => {
    throw new Error(`${error.message}\n${tail(worker.output())}`);
  });
  faults.reset();
  const tally = new Tally();
  let failedAttempts = 0;
  for (const [i, wf] of done.entries()) {
    const id = ids[i]!;
    const check = await checkPublished(stack, id);
    failedAttempts += wf.tasks.filter((t) => t.status !== "COMPLETED").length;
    for (const t of wf.tasks) {
      if (t.status === "FAILED_WITH_TERMINAL_ERROR") {
        tally.problems.push(`${id}: terminal failure`);
      }
    }
    if (check.commits === 1 && !(check.lines === 1 && check.outFile)) halfPublished.push(id);
    tally.count(id, wf, check);
  }
  assert.equal(await stopWorker(worker), 0, tail(worker.output()));
  const injected = faults.injected;
  record(tally.row(
    `3 lakeFS 30% 429/5xx${stack.real ? " (real servers, proxy)" : ""}`,
    tasks,
    started,
    `${injected.errors} 5xx + ${injected.tooMany} 429 injected; ` +
      `${failedAttempts} attempts FAILED and retried`,
  ));
  tally.assertAllPassed("every workflow completes and publishes once");
  assert.deepEqual(halfPublished, [], "never a half-published branch");
  assert.ok(injected.errors + injected.tooMany > 0);
  assert.deepEqual(await leftoverStaging(stack), []);
  assert.deepEqual(await leftoverAttemptDirs(stack), []);
  // main was never touched.
  assert.equal((await stack.lakefs.getBranch(stack.repo, "main")).commit_id, stack.seedCommit);
}

Deno.test(`chaos 3: ${TASKS} writable tasks, lakeFS 429/5xx on 30% of calls`, async () => {
  await faultScenario(TASKS);
});

const real = realServers();
Deno.test({
  name:
    `chaos 3 on the real Conductor and lakeFS: ${TASKS} writable tasks, 429/5xx on 30% of lakeFS calls (proxy)`,
  ignore: skipNote("chaos 3 on the real servers", real),
  async fn() {
    if ("skip" in real) return;
    await faultScenario(TASKS, real);
  },
});
