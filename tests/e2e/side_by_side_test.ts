/**
 * Writers side by side on one branch, end to end: `perago start` serves a partition writer
 * while Conductor runs forks of it on one lakeFS branch from one ref. Runs on the demo
 * servers, and on the real Conductor OSS and the real lakeFS when `PERAGO_TEST_*` name them:
 *
 * 1. a static FORK_JOIN of two writers of disjoint scopes completes with both changes on the
 *    branch (the second merged onto the head the first one moved);
 * 2. a static FORK_JOIN of two writers of one scope publishes exactly one; the other fails with
 *    ScopeConflictError as FAILED_WITH_TERMINAL_ERROR, and so does the workflow;
 * 3. a FORK_JOIN_DYNAMIC over 20 partitions (each forked input narrowed by `workspace.prefix`)
 *    completes with every partition published exactly once.
 */
import assert from "node:assert/strict";
import type { Task, Workflow } from "../../src/conductor/api.ts";
import { stopWorker, tail, waitRunning } from "../_perago_process.ts";
import { realServers, skipNote } from "../_real_servers.ts";
import { type Servers, startWritersStack } from "../_writers_stack.ts";

/** Partitions of the dynamic fork. */
const DYNAMIC_PARTITIONS = 20;

const real = realServers();
const skipReal = skipNote("writers side by side end to end (Conductor OSS + lakeFS)", real);
const TARGETS: { name: string; servers: Servers; ignore: boolean }[] = [
  { name: "demo servers", servers: "demo", ignore: false },
  {
    name: "real Conductor OSS + real lakeFS",
    servers: "skip" in real ? "demo" : real,
    ignore: skipReal,
  },
];

interface Published {
  workspace: { ref: string };
  result: { id: string; folders: number };
}

/** What a failed run shows: each task's status and reason. */
function describe(workflow: Workflow): string {
  return `${workflow.status} ${workflow.reasonForIncompletion ?? ""}\n` +
    workflow.tasks.map((t: Task) =>
      `  ${t.referenceTaskName} ${t.status} retry ${t.retryCount} ${t.reasonForIncompletion ?? ""}`
    ).join("\n");
}

for (const target of TARGETS) {
  Deno.test({
    name: `writers side by side on one branch, end to end (${target.name})`,
    ignore: target.ignore,
    async fn(t) {
      await using stack = await startWritersStack({
        servers: target.servers,
        partitions: DYNAMIC_PARTITIONS,
      });
      await using worker = stack.startWorker(["-j", "4"]);
      const timings: string[] = [];
      const timed = async (name: string, fn: () => Promise<void>) => {
        const started = performance.now();
        await t.step(name, fn);
        timings.push(`${name}: ${((performance.now() - started) / 1000).toFixed(1)} s`);
      };
      await waitRunning(worker, 60_000);
      const forkWorkflow = await stack.workflow("fork", [
        {
          name: "fork",
          taskReferenceName: "fork",
          type: "FORK_JOIN",
          forkTasks: [[stack.writerTask("a", "workflow.input.a")], [
            stack.writerTask("b", "workflow.input.b"),
          ]],
        },
        { name: "join", taskReferenceName: "join", type: "JOIN", joinOn: ["a", "b"] },
      ], { joined: "${join.output}" });
      const runFork = async (branch: string, scopeA: string, scopeB: string) => {
        await stack.branchFromSeed(branch);
        // Both sleep a moment, so both have read the ref before either publishes.
        const id = await stack.api.startWorkflow(forkWorkflow, {
          a: stack.input(branch, scopeA, { id: "a", sleepMs: 300 }),
          b: stack.input(branch, scopeB, { id: "b", sleepMs: 300 }),
        });
        const [workflow] = await stack.waitAll([id], 60_000).catch((error) => {
          throw new Error(`${error.message}\n${tail(worker.output())}`);
        });
        return workflow!;
      };

      await timed(
        "a fork of disjoint writers completes with both changes on the branch",
        async () => {
          const p0 = stack.partition(0);
          const p1 = stack.partition(1);
          const workflow = await runFork("disjoint", p0, p1);
          assert.equal(workflow.status, "COMPLETED", describe(workflow));
          const joined = workflow.output?.joined as Record<"a" | "b", Published>;
          assert.deepEqual(joined.a.result, { id: "a", folders: 1 });
          assert.deepEqual(joined.b.result, { id: "b", folders: 1 });
          for (const task of workflow.tasks.filter((t) => t.taskType === stack.taskName)) {
            assert.equal(task.retryCount, 0, `${task.referenceTaskName} was not retried`);
          }
          const head = (await stack.lakefs.getBranch(stack.repo, "disjoint")).commit_id;
          assert.deepEqual(await stack.readPartition(head, p0), { lines: ["a"], outs: ["a"] });
          assert.deepEqual(await stack.readPartition(head, p1), { lines: ["b"], outs: ["b"] });
          assert.deepEqual(await stack.readPartition(head, stack.partition(2)), {
            lines: [],
            outs: [],
          });
          // Both from the seed: one merged onto it, the other onto the first one's commit.
          const refs = [joined.a.workspace.ref, joined.b.workspace.ref];
          const parents = await Promise.all(
            refs.map(async (ref) => (await stack.lakefs.getCommit(stack.repo, ref)).parents),
          );
          const [first, second] = parents[0]![0] === stack.seedCommit ? [0, 1] : [1, 0];
          assert.deepEqual(parents[first], [stack.seedCommit]);
          assert.deepEqual(parents[second], [refs[first]]);
          assert.equal(head, refs[second]);
          assert.deepEqual(
            Object.fromEntries(await stack.commitsTouching("disjoint")),
            { [p0]: 1, [p1]: 1 },
          );
        },
      );

      await timed(
        "a fork of one scope publishes exactly one; the other fails terminally",
        async () => {
          const p0 = stack.partition(0);
          const workflow = await runFork("overlap", p0, p0);
          assert.equal(workflow.status, "FAILED", describe(workflow));
          const writers = workflow.tasks.filter((t) => t.taskType === stack.taskName);
          const losers = writers.filter((t) => t.status === "FAILED_WITH_TERMINAL_ERROR");
          assert.equal(losers.length, 1, describe(workflow));
          const loser = losers[0]!;
          assert.match(loser.reasonForIncompletion!, /^ScopeConflictError: /);
          assert.ok(
            loser.reasonForIncompletion!.includes(`"${p0}"`),
            loser.reasonForIncompletion,
          );
          assert.equal(loser.retryCount, 0, "a terminal failure is not retried");
          assert.match(workflow.reasonForIncompletion ?? "", /ScopeConflictError/);
          const winner = loser.referenceTaskName === "a" ? "b" : "a";
          const winning = writers.find((t) => t.referenceTaskName === winner)!;
          // The winner completed, or was cancelled with the workflow after it published.
          assert.ok(["COMPLETED", "CANCELED"].includes(winning.status), describe(workflow));
          const head = (await stack.lakefs.getBranch(stack.repo, "overlap")).commit_id;
          assert.deepEqual(await stack.readPartition(head, p0), {
            lines: [winner],
            outs: [winner],
          });
        },
      );

      await timed(
        `a dynamic fork over ${DYNAMIC_PARTITIONS} partitions publishes each exactly once`,
        async () => {
          const dynamicWorkflow = await stack.workflow("dynamic", stack.dynamicForkTasks(), {
            joined: "${partitions_join.output}",
          });
          await stack.branchFromSeed("dynamic");
          const refs = Array.from({ length: DYNAMIC_PARTITIONS }, (_, i) => `part_${i}`);
          const id = await stack.api.startWorkflow(
            dynamicWorkflow,
            stack.dynamicForkInput(
              refs,
              (i) => stack.input("dynamic", stack.partition(i), { id: refs[i]! }),
            ),
          );
          const [workflow] = await stack.waitAll([id], 120_000).catch((error) => {
            throw new Error(`${error.message}\n${tail(worker.output())}`);
          });
          assert.equal(workflow!.status, "COMPLETED", describe(workflow!));
          const joined = workflow!.output?.joined as Record<string, Published>;
          assert.deepEqual(Object.keys(joined).sort(), [...refs].sort());
          const head = (await stack.lakefs.getBranch(stack.repo, "dynamic")).commit_id;
          const touching = await stack.commitsTouching("dynamic");
          for (const [i, ref] of refs.entries()) {
            const scope = stack.partition(i);
            assert.deepEqual(joined[ref]!.result, { id: ref, folders: 1 });
            // The task's own publication holds its change; the head holds every one, once.
            const own = await stack.readPartition(joined[ref]!.workspace.ref, scope);
            assert.deepEqual(own, { lines: [ref], outs: [ref] }, ref);
            assert.deepEqual(await stack.readPartition(head, scope), own, ref);
            assert.equal(touching.get(scope), 1, `${scope} published exactly once`);
          }
          assert.equal(touching.size, DYNAMIC_PARTITIONS);
        },
      );

      assert.deepEqual(await stack.leftoverStaging(), [], "no staging branch left");
      assert.equal(await stopWorker(worker), 0, tail(worker.output()));
      assert.deepEqual(await stack.leftoverAttemptDirs(), [], "no attempt dir left");
      // deno-lint-ignore no-console
      console.log(`side by side (${target.name}): ${timings.join("; ")}`);
    },
  });
}
