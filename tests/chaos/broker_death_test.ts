/**
 * Scenario 5: the broker is killed. The runtime stops, the executors exit, and the next
 * start takes over the lock, recovers the attempt dirs, and the task completes once.
 */
import assert from "node:assert/strict";
import { isPidAlive } from "../../src/runtime/_pid.ts";
import { waitFor } from "../../src/util/sleep.ts";
import {
  checkPublished,
  leftoverAttemptDirs,
  leftoverStaging,
  record,
  startChaosStack,
  startWorker,
  stopWorker,
  tail,
  Tally,
  waitForOutput,
  waitRunning,
} from "./_harness.ts";

Deno.test("chaos 5: broker SIGKILLed: runtime stops, executors exit, next start recovers", async () => {
  const started = Date.now();
  await using stack = await startChaosStack({ responseSeconds: 3 });
  await using first = startWorker(stack, ["-j", "2"]);
  await waitRunning(first);
  const id = await stack.startTask("b0", { sleepMs: 60_000, sleepOnlyFirst: true });
  await waitForOutput(first, /attempt a\d+: task \S+ of \S+ started/, {
    timeoutMs: 20_000,
    what: "attempt started",
  });
  // The "started" line comes just before the attempt makes its dir.
  await waitFor(async () => (await leftoverAttemptDirs(stack)).length === 1 || undefined, {
    timeoutMs: 10_000,
    what: "the attempt dir exists while it runs",
  });
  const executors = first.executorPids();
  const broker = first.brokerPid();
  assert.ok(broker && executors.length === 2, tail(first.output()));
  Deno.kill(broker, "SIGKILL");
  const status = await first.status;
  assert.notEqual(status.code, 0, "the runtime stops with a failure");
  assert.match(first.output(), /the broker exited unexpectedly/);
  await waitFor(() => executors.every((pid) => !isPidAlive(pid)) || undefined, {
    timeoutMs: 15_000,
    what: "executors exited",
  });
  const lockLeft = await Deno.stat(`${stack.workspaceRoot}/.perago-supervisor.lock`).then(
    () => true,
    () => false,
  );
  const dirsAfterDeath = (await leftoverAttemptDirs(stack)).length;
  // The next start takes over the lock, sweeps what is left, and serves the retry.
  await using next = startWorker(stack, ["-j", "2"]);
  await waitRunning(next);
  const [wf] = await stack.waitAll([id], 40_000).catch((error) => {
    throw new Error(`${error.message}\n${tail(next.output())}`);
  });
  const check = await checkPublished(stack, "b0");
  assert.equal(await stopWorker(next), 0, tail(next.output()));
  const dirs = await leftoverAttemptDirs(stack);
  const staging = await leftoverStaging(stack);
  const tally = new Tally();
  tally.count("b0", wf!, check);
  record(tally.row(
    "5 broker SIGKILL",
    1,
    started,
    `exit ${status.code}; lock left ${lockLeft}, ${dirsAfterDeath} attempt dir(s) ` +
      `left for the next start; tasks ${wf!.tasks.map((t) => t.status).join(",")}`,
  ));
  assert.equal(wf!.status, "COMPLETED", tail(next.output()));
  assert.deepEqual(check, { commits: 1, lines: 1, outFile: true });
  assert.deepEqual(dirs, [], "attempt dirs recovered");
  assert.deepEqual(staging, []);
});
