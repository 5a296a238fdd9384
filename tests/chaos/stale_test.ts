/**
 * Scenario 4: a stale attempt. The first worker's lease extensions are refused, so the server
 * times the task out and hands its retry to a second worker while the first attempt still
 * runs. The first attempt publishes nothing and reports nothing; the branch holds the retry's
 * change once. On the demo servers, and on the real Conductor and lakeFS when `PERAGO_TEST_*`
 * name them (the heartbeats refused by a loopback proxy in front of the real Conductor).
 */
import assert from "node:assert/strict";
import { FaultInjector } from "../../src/devstack/faults.ts";
import { realServers, skipNote } from "../_real_servers.ts";
import {
  type ChaosStackOptions,
  checkPublished,
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

/**
 * Refuses the first worker's heartbeats (IN_PROGRESS updates from a worker id not starting
 * with `second`) with 503; everything else passes. The second worker keeps its lease, so its
 * retry completes however slowly the machine runs it.
 */
class NoLeaseFaults extends FaultInjector {
  refused = 0;
  override async apply(request: Request): Promise<Response | undefined> {
    const url = new URL(request.url);
    if (request.method === "POST" && url.pathname === "/api/tasks") {
      const body = await request.clone().json().catch(() => ({}));
      if (body?.status === "IN_PROGRESS" && !String(body.workerId).startsWith("second")) {
        this.refused++;
        return Response.json({ message: "heartbeat refused" }, { status: 503 });
      }
    }
    return await super.apply(request);
  }
}

async function staleScenario(servers?: ChaosStackOptions["servers"]): Promise<void> {
  const started = Date.now();
  // The server times the task out within its sweep: the demo Conductor's is 200 ms, a real
  // one sweeps the workflow 30 to 32 s after the task was scheduled (in every run so far).
  const timedOutWithinMs = servers ? 60_000 : 20_000;
  const faults = new NoLeaseFaults();
  await using stack = await startChaosStack({
    conductorFaults: faults,
    responseSeconds: 2,
    retries: 2,
    ...(servers ? { servers } : {}),
  });
  await using first = startWorker(stack, ["-j", "1"]);
  await waitRunning(first);
  // The first attempt runs until the retry has completed: it is let go by a file the test
  // creates then.
  const gate = `${stack.dir}/tasks/release-s0`;
  const id = await stack.startTask("s0", { gate });
  await waitForOutput(first, /attempt a\d+: task \S+ of \S+ started/, {
    timeoutMs: 20_000,
    what: "first attempt started",
  });
  // Only now the second worker: it gets the retry after the server times the first out.
  await using second = startWorker(stack, ["-j", "1"], {
    PERAGO_WORKSPACE_ROOT: `${stack.dir}/ws2`,
    PERAGO_WORKER_ID_PREFIX: "second",
  });
  await waitRunning(second);
  const [wf] = await stack.waitAll([id], timedOutWithinMs).catch((error) => {
    throw new Error(`${error.message}\n${tail(first.output())}\n${tail(second.output())}`);
  });
  await Deno.writeTextFile(gate, "");
  // The first attempt wakes up, finds itself fenced off and reports nothing.
  await waitForOutput(first, /attempt was stale \(fenced off\)/, {
    timeoutMs: 20_000,
    what: "the first attempt fenced off",
  }).catch((error) => {
    throw new Error(`${error.message}\n${tail(first.output(), 40)}`);
  });
  const after = await stack.api.getWorkflow(id);
  const check = await checkPublished(stack, "s0");
  const statuses = after.tasks.map((t) => t.status);
  const passed = wf!.status === "COMPLETED" && after.status === "COMPLETED" &&
    check.commits === 1 && check.lines === 1 && statuses[0] === "TIMED_OUT" &&
    statuses.filter((s) => s === "COMPLETED").length === 1 &&
    JSON.stringify(after.output) === JSON.stringify(wf!.output);
  assert.equal(await stopWorker(first), 0, tail(first.output()));
  assert.equal(await stopWorker(second), 0, tail(second.output()));
  const tally = new Tally();
  tally.count("s0", after, check, passed);
  record(tally.row(
    `4 stale attempt${stack.real ? " (real servers, proxy)" : ""}`,
    1,
    started,
    `${faults.refused} heartbeats refused; tasks ${statuses.join(",")}`,
  ));
  assert.equal(after.status, "COMPLETED");
  assert.equal(statuses[0], "TIMED_OUT", statuses.join(","));
  assert.equal(statuses.filter((s) => s === "COMPLETED").length, 1, statuses.join(","));
  assert.match(String(after.tasks[1]?.workerId), /^second/, "the retry ran on the second worker");
  assert.deepEqual(check, { commits: 1, lines: 1, outFile: true });
  assert.deepEqual(after.output, wf!.output, "the late attempt changed nothing");
  assert.deepEqual(await leftoverStaging(stack), []);
}

Deno.test("chaos 4: a timed-out attempt that still runs publishes nothing; the retry wins", async () => {
  await staleScenario();
});

const real = realServers();
Deno.test({
  name: "chaos 4 on the real Conductor and lakeFS: a timed-out attempt publishes nothing",
  ignore: skipNote("chaos 4 on the real servers", real),
  async fn() {
    if ("skip" in real) return;
    await staleScenario(real);
  },
});
