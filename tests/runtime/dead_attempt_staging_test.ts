/**
 * An executor SIGKILLed while its attempt stages leaves a staging branch. The next attempt of
 * the same task deletes it, but that attempt may never come: the task may have no retries
 * left, or its workflow may fail or be cancelled meanwhile (a FORK whose other branch failed
 * terminally). The supervisor, collecting the dead executor's attempt dir, deletes the branch
 * its marker names.
 */
import assert from "node:assert/strict";
import { waitFor } from "../../src/util/sleep.ts";
import { peerPid } from "../_http_gate.ts";
import { stopWorker, tail, waitRunning, type Worker } from "../_perago_process.ts";
import { startWritersStack } from "../_writers_stack.ts";

Deno.test("start: a dead attempt's staging branch is deleted though no retry comes", async () => {
  // The hook runs in the gate before the worker exists; it reads the worker from here.
  const spawned: { worker?: Worker } = {};
  let killed: number | undefined;
  await using stack = await startWritersStack({
    servers: "demo",
    partitions: 1,
    retries: 0,
    async lakefsHook(request, peer) {
      const path = new URL(request.url).pathname;
      const staged = request.method === "POST" &&
        /\/branches\/perago-staging-[^/]+\/commits$/.test(path);
      if (!staged || spawned.worker === undefined || killed !== undefined) return;
      const pid = await peerPid(peer, spawned.worker.executorPids());
      if (pid === undefined) return;
      killed = pid;
      Deno.kill(pid, "SIGKILL");
    },
  });
  await using worker = stack.startWorker(["-j", "1"]);
  spawned.worker = worker;
  await waitRunning(worker, 60_000);
  const workflow = await stack.workflow("single", [stack.writerTask("only")]);
  const id = await stack.api.startWorkflow(
    workflow,
    stack.input("main", stack.partition(0), { id: "only" }),
  );
  const [run] = await stack.waitAll([id], 60_000);
  assert.ok(killed !== undefined, "the executor was killed while staging");
  // No retries: the task failed for good, and no later attempt will clean up after it.
  assert.equal(run!.status, "FAILED", tail(worker.output()));
  assert.deepEqual(run!.tasks.map((t) => [t.status, t.retryCount]), [["FAILED", 0]]);
  await waitFor(async () => (await stack.leftoverStaging()).length === 0, {
    timeoutMs: 15_000,
    what: "the dead attempt's staging branch to be deleted",
  }).catch((error) => {
    throw new Error(`${error.message}\n${tail(worker.output())}`);
  });
  // The supervisor logs the deletion once lakeFS has answered it: the line may reach the
  // output just after the branch is gone.
  const deleted = /deleted staging branch perago-staging-\S+ of \S+ left by a dead attempt/;
  await waitFor(() => deleted.test(worker.output()), {
    timeoutMs: 15_000,
    what: "the supervisor's line on the deleted staging branch",
  }).catch((error) => {
    throw new Error(`${error.message}\n${tail(worker.output())}`);
  });
  // Nothing was published.
  const head = (await stack.lakefs.getBranch(stack.repo, "main")).commit_id;
  assert.equal(head, stack.seedCommit);
  assert.equal(await stopWorker(worker), 0, tail(worker.output()));
  assert.deepEqual(await stack.leftoverAttemptDirs(), []);
});
