/**
 * Scenario 2: Conductor answers nothing but 503 while attempts finish. The workspace-free
 * ones end meanwhile: their results are kept and delivered when it returns. The writable ones
 * wait at their fence until it answers, then publish in the same attempt. None lost, none
 * duplicated, no task run twice. On the demo servers, and on
 * the real Conductor and lakeFS when `PERAGO_TEST_*` name them (the real Conductor behind a
 * loopback proxy that answers 503 for it).
 */
import assert from "node:assert/strict";
import { FaultInjector } from "../../src/devstack/faults.ts";
import { sleep, waitFor } from "../../src/util/sleep.ts";
import { realServers, skipNote } from "../_real_servers.ts";
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

/**
 * Length of the outage: 15 s. Past the broker's longest poll backoff (10 s), so polling has
 * backed off all the way before Conductor returns, and long enough for every result to be
 * refused several times (delivery backoff doubles from 0.5 s). The attempts end, or reach
 * their fence, within about 2 s of the outage's start, well inside it.
 */
const OUTAGE_MS = envInt("PERAGO_CHAOS_OUTAGE_MS", 15_000);
const FREE = 4;
const WRITABLE = 2;

async function outageScenario(servers?: ChaosStackOptions["servers"]): Promise<void> {
  const started = Date.now();
  const faults = new FaultInjector();
  // The response timeout must outlast the outage (no heartbeat gets through meanwhile).
  const responseSeconds = Math.ceil(OUTAGE_MS / 1000) + 30;
  await using stack = await startChaosStack({
    conductorFaults: faults,
    responseSeconds,
    ...(servers ? { servers } : {}),
  });
  await using worker = startWorker(stack, ["-j", String(FREE + WRITABLE)]);
  await waitRunning(worker);
  const free: string[] = [];
  const writable: string[] = [];
  for (let i = 0; i < FREE; i++) free.push(await stack.startFree(`f${i}`, { sleepMs: 1_500 }));
  for (let i = 0; i < WRITABLE; i++) {
    writable.push(await stack.startTask(`w${i}`, { sleepMs: 1_500 }));
  }
  const startedLines = () =>
    [...worker.output().matchAll(/attempt a\d+: task \S+ of \S+ started/g)].length;
  const endedLines = () => [...worker.output().matchAll(/attempt a\d+: task \S+ ended/g)].length;
  const fenceWaits = () =>
    [...worker.output().matchAll(/fence look-up of task \S+: .* asking again until/g)].length;
  await waitFor(() => startedLines() >= FREE + WRITABLE || undefined, {
    timeoutMs: 20_000,
    what: "every attempt started",
  });
  faults.set({ errorRate: 1 });
  const downAt = Date.now();
  // While Conductor is down every attempt ends, or waits at its fence (a writable one that
  // reached it before the outage has ended too).
  await waitFor(() => endedLines() + fenceWaits() >= FREE + WRITABLE || undefined, {
    timeoutMs: OUTAGE_MS,
    what: "every attempt ended or waiting at its fence during the outage",
  });
  await sleep(Math.max(0, OUTAGE_MS - (Date.now() - downAt)));
  const injected = faults.injected.errors;
  faults.reset();
  // The results held back go out when the worker's first poll succeeds (its backoff is at
  // most 10 s, the poll 2 s), not when each one's own backoff ends (up to 30 s, which could
  // outlast the response timeout and have the server run the task again).
  const upAt = Date.now();
  await stack.waitAll(free, 20_000).catch((error) => {
    throw new Error(
      `free tasks not ended 20 s after the outage: ${error.message}\n${tail(worker.output())}`,
    );
  });
  const freeEndedMs = Date.now() - upAt;
  const all = await stack.waitAll([...free, ...writable], 60_000).catch((error) => {
    throw new Error(`${error.message}\n${tail(worker.output())}`);
  });
  const tally = new Tally();
  for (const [i, wf] of all.entries()) {
    const completions = wf.tasks.filter((t) => t.status === "COMPLETED").length;
    const isWritable = i >= FREE;
    const check = isWritable ? await checkPublished(stack, `w${i - FREE}`) : undefined;
    // One task each (no timeout, no retry): a free task's result made while Conductor was
    // down is the one delivered; a writable one passed its fence once Conductor answered.
    const ok = wf.status === "COMPLETED" && completions === 1 && wf.tasks.length === 1 &&
      (!isWritable || (check!.commits === 1 && check!.lines === 1));
    tally.count(String(i), wf, check, ok);
  }
  assert.equal(await stopWorker(worker), 0, tail(worker.output()));
  record(tally.row(
    `2 Conductor outage${stack.real ? " (real servers, proxy)" : ""}`,
    all.length,
    started,
    `outage ${OUTAGE_MS} ms (PERAGO_CHAOS_OUTAGE_MS), ${injected} requests refused, ` +
      `free tasks ended ${freeEndedMs} ms after it`,
  ));
  tally.assertAllPassed(
    "every result kept through the outage and delivered once",
    tail(worker.output()),
  );
  assert.ok(injected > 0, "the outage refused requests");
  assert.deepEqual(await leftoverStaging(stack), []);
  assert.deepEqual(await leftoverAttemptDirs(stack), []);
}

Deno.test(`chaos 2: Conductor down for ${OUTAGE_MS} ms while attempts finish`, async () => {
  await outageScenario();
});

const real = realServers();
Deno.test({
  name: `chaos 2 on the real Conductor and lakeFS: down for ${OUTAGE_MS} ms while attempts finish`,
  ignore: skipNote("chaos 2 on the real servers", real),
  async fn() {
    if ("skip" in real) return;
    await outageScenario(real);
  },
});
