/**
 * Writers side by side on one branch: the attempt's scope as the unit of optimistic
 * concurrency. Every case runs against the demo lakeFS and, when `PERAGO_TEST_LAKEFS_*` name
 * one, against the real lakeFS (the reference).
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { defineTask, z } from "../../mod.ts";
import type { LakeFsApi } from "../../src/lakefs/api.ts";
import {
  type AttemptIdentity,
  type AttemptOutcome,
  runAttempt,
} from "../../src/workspace/attempt.ts";
import { COMMIT_METADATA } from "../../src/workspace/publish.ts";
import { realLakeFs, skipNote } from "../_real_servers.ts";
import {
  branchNames,
  fenceFor,
  identity,
  type LakeStack,
  listDir,
  readTree,
  seed,
  startRealStack,
  startStack,
} from "./_stack.ts";

/** A partition writer: writes the files it is given, lists what it saw. */
const partitionWriter = defineTask({
  name: "partition_writer",
  ownerEmail: "tests@example.com",
  description: "writes files under data/",
  params: z.object({ write: z.record(z.string(), z.string()).default({}) }),
  result: z.object({ seen: z.array(z.string()) }),
  workspace: { prefix: "data/" },
  async run({ write }, ctx) {
    const root = ctx.workspace!;
    const seen: string[] = [];
    const walk = async (dir: string, rel: string) => {
      for await (const entry of Deno.readDir(dir)) {
        const path = rel === "" ? entry.name : `${rel}/${entry.name}`;
        if (entry.isDirectory) await walk(join(dir, entry.name), path);
        else if (entry.name !== ".perago-attempt.json") seen.push(path);
      }
    };
    await walk(root, "");
    for (const [path, text] of Object.entries(write)) {
      await Deno.mkdir(join(root, path, ".."), { recursive: true });
      await Deno.writeTextFile(join(root, path), text);
    }
    return { seen: seen.sort() };
  },
});

const BASE = {
  "data/p1/a.txt": "p1\n",
  "data/p2/a.txt": "p2\n",
  "other/x.txt": "outside\n",
};

interface Writer {
  /** Narrows the scope (`workspace.prefix`); the task's own prefix when absent. */
  prefix?: string;
  write?: Record<string, string>;
  attempt?: Partial<AttemptIdentity>;
  lakefs?: LakeFsApi;
}

function run(stack: LakeStack, ref: string, writer: Writer): Promise<AttemptOutcome> {
  const attempt = identity({ workflowInstanceId: `wf-${crypto.randomUUID()}`, ...writer.attempt });
  return runAttempt({
    task: partitionWriter,
    input: {
      workspace: {
        repository: stack.repo,
        branch: "main",
        ref_type: "commit",
        ref,
        ...(writer.prefix === undefined ? {} : { prefix: writer.prefix }),
      },
      params: { write: writer.write ?? {} },
    },
    attempt,
    workspaceRoot: stack.root,
    ownerWorkerId: "test0000",
    failureReasonMaxLength: 2000,
    lakefs: writer.lakefs ?? stack.lakefs,
    loadCurrentAttempt: fenceFor(attempt).load,
  });
}

async function head(stack: LakeStack): Promise<string> {
  return (await stack.lakefs.getBranch(stack.repo, "main")).commit_id;
}

async function commitCount(stack: LakeStack): Promise<number> {
  let count = 0;
  for await (const _ of stack.lakefs.logCommits(stack.repo, "main")) count++;
  return count;
}

async function assertClean(stack: LakeStack): Promise<void> {
  assert.deepEqual(await branchNames(stack), ["main"]);
  assert.deepEqual(await listDir(stack.root), []);
}

/** A client whose merges first let `before` run (a writer racing into the window). */
function racingMerges(lakefs: LakeFsApi, before: () => Promise<void>): LakeFsApi {
  return new Proxy(lakefs, {
    get(target, key, receiver) {
      if (key === "merge") {
        return async (...args: Parameters<LakeFsApi["merge"]>) => {
          await before();
          return await target.merge(...args);
        };
      }
      const value = Reflect.get(target, key, receiver);
      return typeof value === "function" ? value.bind(target) : value;
    },
  });
}

const real = realLakeFs();
const skipReal = skipNote("workspace publication on the real lakeFS", real);
const TARGETS: { name: string; ignore: boolean; start: () => Promise<LakeStack> }[] = [
  { name: "demo lakeFS", ignore: false, start: () => startStack() },
  {
    name: "real lakeFS",
    ignore: skipReal,
    start: () => startRealStack(real as Exclude<typeof real, { skip: string }>),
  },
];

function test(name: string, fn: (stack: LakeStack, a: string) => Promise<void>): void {
  for (const target of TARGETS) {
    Deno.test({
      name: `${name} (${target.name})`,
      ignore: target.ignore,
      async fn() {
        await using stack = await target.start();
        await fn(stack, await seed(stack, BASE));
      },
    });
  }
}

// ------------------------------------------------------------------ scope

test(
  "workspace.prefix narrows what is downloaded, and the output carries no prefix",
  async (stack, a) => {
    const outcome = await run(stack, a, { prefix: "data/p2" });
    assert.equal(outcome.status, "COMPLETED", outcome.reasonForIncompletion);
    assert.deepEqual(outcome.outputData?.result, { seen: ["data/p2/a.txt"] });
    assert.deepEqual(outcome.outputData?.workspace, {
      repository: stack.repo,
      branch: "main",
      ref_type: "commit",
      ref: a,
    });
    await assertClean(stack);
  },
);

for (
  const [prefix, why] of [
    ["other/", /not under the task's prefix "data\/"/],
    ["data/../other/", /workspace\.prefix: .*"\.\." segment/],
    ["data\\p1", /workspace\.prefix: .*backslash/],
  ] as const
) {
  test(
    `a bad workspace.prefix ${JSON.stringify(prefix)} is a terminal input error`,
    async (stack, a) => {
      const outcome = await run(stack, a, { prefix, write: { "data/p1/z.txt": "z" } });
      assert.equal(outcome.status, "FAILED_WITH_TERMINAL_ERROR");
      assert.match(
        outcome.reasonForIncompletion!,
        /^WorkspaceScopeError: invalid workspace input: /,
      );
      assert.match(outcome.reasonForIncompletion!, why);
      assert.equal(await head(stack), a);
      await assertClean(stack);
    },
  );
}

test(
  "a write outside the narrowed scope fails terminally and publishes nothing",
  async (stack, a) => {
    const outcome = await run(stack, a, { prefix: "data/p1/", write: { "data/p2/b.txt": "b" } });
    assert.equal(outcome.status, "FAILED_WITH_TERMINAL_ERROR");
    assert.match(outcome.reasonForIncompletion!, /outside the attempt's scope "data\/p1\/"/);
    assert.equal(await head(stack), a);
    await assertClean(stack);
  },
);

// ------------------------------------------------------------------ side by side

test("writers of disjoint scopes publish side by side from one ref", async (stack, a) => {
  const [one, two] = await Promise.all([
    run(stack, a, { prefix: "data/p1/", write: { "data/p1/a.txt": "one" } }),
    run(stack, a, { prefix: "data/p2/", write: { "data/p2/b.txt": "two" } }),
  ]);
  assert.equal(one.status, "COMPLETED", one.reasonForIncompletion);
  assert.equal(two.status, "COMPLETED", two.reasonForIncompletion);
  const tree = await readTree(stack, "main");
  assert.deepEqual(tree, { ...BASE, "data/p1/a.txt": "one", "data/p2/b.txt": "two" });
  // Each output holds its own change; the later one holds both.
  assert.equal((await readTree(stack, one.publishedRef!))["data/p1/a.txt"], "one");
  assert.equal((await readTree(stack, two.publishedRef!))["data/p2/b.txt"], "two");
  assert.ok([one.publishedRef, two.publishedRef].includes(await head(stack)));
  await assertClean(stack);
});

test(
  "an overlapping scope that changed since the ref fails terminally, naming the paths",
  async (stack, a) => {
    const first = await run(stack, a, { write: { "data/p1/a.txt": "first" } });
    assert.equal(first.status, "COMPLETED", first.reasonForIncompletion);
    const second = await run(stack, a, { prefix: "data/p1/", write: { "data/p1/b.txt": "b" } });
    assert.equal(second.status, "FAILED_WITH_TERMINAL_ERROR");
    assert.equal(second.errorName, "ScopeConflictError");
    const reason = second.reasonForIncompletion!;
    assert.match(reason, /scope "data\/p1\/" changed since the input ref/);
    assert.ok(reason.includes('"data/p1/a.txt"'), reason);
    assert.ok(reason.includes(`the head is ${first.publishedRef}`), reason);
    assert.equal(await head(stack), first.publishedRef);
    await assertClean(stack);
  },
);

test("a conflict names at most ten changed paths", async (stack, a) => {
  const many: Record<string, string> = {};
  for (let i = 0; i < 14; i++) many[`data/p1/f${String(i).padStart(2, "0")}.txt`] = "x";
  await seed(stack, many);
  const outcome = await run(stack, a, { prefix: "data/p1/", write: { "data/p1/mine.txt": "m" } });
  assert.equal(outcome.status, "FAILED_WITH_TERMINAL_ERROR");
  const named = outcome.reasonForIncompletion!.match(/"data\/p1\/f\d\d\.txt"/g) ?? [];
  assert.equal(named.length, 10);
  assert.match(outcome.reasonForIncompletion!, /and more/);
});

test(
  "two writers of one scope at once: exactly one publishes, the other fails terminally",
  async (stack, _a) => {
    for (let round = 0; round < 3; round++) {
      const ref = await head(stack);
      const outcomes = await Promise.all([
        run(stack, ref, { prefix: "data/p1/", write: { [`data/p1/x${round}.txt`]: "x" } }),
        run(stack, ref, { prefix: "data/p1/", write: { [`data/p1/y${round}.txt`]: "y" } }),
      ]);
      const completed = outcomes.filter((o) => o.status === "COMPLETED");
      const failed = outcomes.filter((o) => o.status === "FAILED_WITH_TERMINAL_ERROR");
      assert.equal(completed.length, 1, outcomes.map((o) => o.reasonForIncompletion).join(" | "));
      assert.equal(failed.length, 1);
      assert.equal(failed[0]!.errorName, "ScopeConflictError");
      const tree = await readTree(stack, "main", "data/p1/");
      const present = [`data/p1/x${round}.txt`, `data/p1/y${round}.txt`].filter((p) => p in tree);
      assert.equal(present.length, 1, `round ${round}: ${JSON.stringify(Object.keys(tree))}`);
    }
    await assertClean(stack);
  },
);

// ------------------------------------------------------------------ the window

test(
  "a same-scope change that slips in before the merge: the merge is reverted, terminal",
  async (stack, a) => {
    const lakefs = racingMerges(stack.lakefs, async () => {
      await seed(stack, { "data/p1/theirs.txt": "theirs" }, { message: "racer" });
    });
    const outcome = await run(stack, a, {
      prefix: "data/p1/",
      write: { "data/p1/mine.txt": "m" },
      lakefs,
    });
    assert.equal(outcome.status, "FAILED_WITH_TERMINAL_ERROR");
    assert.match(outcome.reasonForIncompletion!, /changed between the check .* was reverted/);
    assert.match(outcome.reasonForIncompletion!, /"data\/p1\/theirs.txt"/);
    const tree = await readTree(stack, "main");
    assert.equal(tree["data/p1/theirs.txt"], "theirs");
    assert.ok(!("data/p1/mine.txt" in tree));
    // History: seed, racer, our merge, our revert (marked with what it undid).
    const log = await Array.fromAsync(stack.lakefs.logCommits(stack.repo, "main"));
    const merged = log[1]!;
    assert.equal(log[0]!.metadata?.[COMMIT_METADATA.revertedCommit], merged.id);
    assert.equal(merged.metadata?.[COMMIT_METADATA.workflowInstanceId] !== undefined, true);
    await assertClean(stack);
  },
);

test(
  "a same-path change that slips in before the merge: lakeFS refuses, nothing published",
  async (stack, a) => {
    const lakefs = racingMerges(stack.lakefs, async () => {
      await seed(stack, { "data/p1/a.txt": "theirs" }, { message: "racer" });
    });
    const racer = () => head(stack);
    const outcome = await run(stack, a, {
      prefix: "data/p1/",
      write: { "data/p1/a.txt": "mine" },
      lakefs,
    });
    assert.equal(outcome.status, "FAILED_WITH_TERMINAL_ERROR");
    assert.match(outcome.reasonForIncompletion!, /changed the same paths .* nothing was published/);
    assert.equal((await readTree(stack, await racer()))["data/p1/a.txt"], "theirs");
    await assertClean(stack);
  },
);

test("another scope's change in the window is merged alongside", async (stack, a) => {
  const lakefs = racingMerges(stack.lakefs, async () => {
    await seed(stack, { "data/p2/theirs.txt": "theirs" }, { message: "racer" });
  });
  const outcome = await run(stack, a, {
    prefix: "data/p1/",
    write: { "data/p1/mine.txt": "m" },
    lakefs,
  });
  assert.equal(outcome.status, "COMPLETED", outcome.reasonForIncompletion);
  assert.equal(outcome.publication, "merged");
  const tree = await readTree(stack, "main");
  assert.equal(tree["data/p1/mine.txt"], "m");
  assert.equal(tree["data/p2/theirs.txt"], "theirs");
  await assertClean(stack);
});

// ------------------------------------------------------------------ exactly once

test(
  "a retry whose earlier attempt published under another writer's commit completes with it",
  async (stack, a) => {
    const task = { workflowInstanceId: "wf-rebased", referenceTaskName: "part_07" };
    const first = await run(stack, a, {
      prefix: "data/p1/",
      write: { "data/p1/a.txt": "mine" },
      attempt: { ...task, taskId: "t-1", retryCount: 0 },
    });
    assert.equal(first.status, "COMPLETED", first.reasonForIncompletion);
    // Its COMPLETED was lost; meanwhile another partition published on top.
    const other = await run(stack, a, { prefix: "data/p2/", write: { "data/p2/a.txt": "other" } });
    assert.equal(other.status, "COMPLETED", other.reasonForIncompletion);
    const commits = await commitCount(stack);

    for (const [retryCount, write] of [[1, { "data/p1/a.txt": "mine" }], [2, {}]] as const) {
      const retry = await run(stack, a, {
        prefix: "data/p1/",
        write,
        attempt: { ...task, taskId: `t-${retryCount + 1}`, retryCount },
      });
      assert.equal(retry.status, "COMPLETED", retry.reasonForIncompletion);
      assert.equal(retry.publication, "earlier-attempt");
      assert.equal(retry.publishedRef, first.publishedRef);
    }
    assert.equal(await commitCount(stack), commits, "nothing published twice");
    assert.equal(await head(stack), other.publishedRef);
    await assertClean(stack);
  },
);

test(
  "a retry with the same content as its earlier publication on the ref completes with it",
  async (stack, a) => {
    const task = { workflowInstanceId: "wf-same", referenceTaskName: "step" };
    const first = await run(stack, a, {
      write: { "data/p1/a.txt": "same" },
      attempt: { ...task, taskId: "t-1", retryCount: 0 },
    });
    const retry = await run(stack, a, {
      write: { "data/p1/a.txt": "same" },
      attempt: { ...task, taskId: "t-2", retryCount: 1 },
    });
    assert.equal(retry.status, "COMPLETED", retry.reasonForIncompletion);
    assert.equal(retry.publication, "earlier-attempt");
    assert.equal(retry.publishedRef, first.publishedRef);
    assert.equal(await head(stack), first.publishedRef);
    await assertClean(stack);
  },
);

/** A client whose first merge lets `before` run, merges, then dies (the merge stands). */
function dyingAfterMerge(lakefs: LakeFsApi, before: () => Promise<void>): LakeFsApi {
  const racing = racingMerges(lakefs, before);
  return new Proxy(racing, {
    get(target, key, receiver) {
      if (key === "merge") {
        return async (...args: Parameters<LakeFsApi["merge"]>) => {
          await target.merge(...args);
          throw new Error("the executor was killed right after its merge");
        };
      }
      return Reflect.get(target, key, receiver);
    },
  });
}

test(
  "a retry whose earlier attempt died before reverting a combined merge reverts it, terminal",
  async (stack, a) => {
    const task = { workflowInstanceId: "wf-died-in-window", referenceTaskName: "step" };
    // The first attempt checked a clean scope, another writer changed the scope before its
    // merge, and it died before its check after the merge could revert the combination.
    const first = await run(stack, a, {
      prefix: "data/p1/",
      write: { "data/p1/mine.txt": "m" },
      attempt: { ...task, taskId: "t-1", retryCount: 0 },
      lakefs: dyingAfterMerge(stack.lakefs, async () => {
        await seed(stack, { "data/p1/theirs.txt": "theirs" }, { message: "racer" });
      }),
    });
    assert.equal(first.status, "FAILED");
    const combined = await head(stack);
    assert.equal((await readTree(stack, combined))["data/p1/mine.txt"], "m", "the merge stood");

    const retry = await run(stack, a, {
      prefix: "data/p1/",
      write: { "data/p1/mine.txt": "m" },
      attempt: { ...task, taskId: "t-2", retryCount: 1 },
    });
    assert.equal(retry.status, "FAILED_WITH_TERMINAL_ERROR", retry.reasonForIncompletion);
    assert.equal(retry.errorName, "ScopeConflictError");
    const reason = retry.reasonForIncompletion!;
    assert.match(reason, /"data\/p1\/theirs\.txt"/);
    assert.ok(reason.includes(`earlier attempt's merge ${combined}`), reason);
    assert.match(reason, /was reverted so the two changes are not combined/);
    const tree = await readTree(stack, "main");
    assert.equal(tree["data/p1/theirs.txt"], "theirs");
    assert.ok(!("data/p1/mine.txt" in tree), "never both changes under one scope");
    const log = [];
    for await (const commit of stack.lakefs.logCommits(stack.repo, "main")) log.push(commit);
    assert.equal(log[0]!.metadata?.[COMMIT_METADATA.revertedCommit], combined);
    // A further retry finds the publication reverted and the scope changed: terminal again,
    // nothing published.
    const again = await run(stack, a, {
      prefix: "data/p1/",
      write: { "data/p1/mine.txt": "m" },
      attempt: { ...task, taskId: "t-3", retryCount: 2 },
    });
    assert.equal(again.status, "FAILED_WITH_TERMINAL_ERROR");
    assert.match(again.reasonForIncompletion!, /changed since the input ref/);
    assert.equal(await head(stack), log[0]!.id);
    await assertClean(stack);
  },
);

test(
  "a retry whose earlier attempt died after merging beside another scope's change completes with it",
  async (stack, a) => {
    const task = { workflowInstanceId: "wf-died-beside", referenceTaskName: "step" };
    const first = await run(stack, a, {
      prefix: "data/p1/",
      write: { "data/p1/mine.txt": "m" },
      attempt: { ...task, taskId: "t-1", retryCount: 0 },
      lakefs: dyingAfterMerge(stack.lakefs, async () => {
        await seed(stack, { "data/p2/theirs.txt": "theirs" }, { message: "racer" });
      }),
    });
    assert.equal(first.status, "FAILED");
    const merged = await head(stack);
    const retry = await run(stack, a, {
      prefix: "data/p1/",
      write: { "data/p1/mine.txt": "m" },
      attempt: { ...task, taskId: "t-2", retryCount: 1 },
    });
    assert.equal(retry.status, "COMPLETED", retry.reasonForIncompletion);
    assert.equal(retry.publication, "earlier-attempt");
    assert.equal(retry.publishedRef, merged);
    const tree = await readTree(stack, "main");
    assert.equal(tree["data/p1/mine.txt"], "m");
    assert.equal(tree["data/p2/theirs.txt"], "theirs");
    await assertClean(stack);
  },
);

test("a reverted earlier publication does not count: the retry publishes", async (stack, a) => {
  const task = { workflowInstanceId: "wf-reverted", referenceTaskName: "step" };
  const first = await run(stack, a, {
    prefix: "data/p1/",
    write: { "data/p1/a.txt": "first" },
    attempt: { ...task, taskId: "t-1", retryCount: 0 },
  });
  await stack.lakefs.revertCommit(stack.repo, "main", first.publishedRef!, {
    metadata: { [COMMIT_METADATA.revertedCommit]: first.publishedRef! },
  });
  const retry = await run(stack, a, {
    prefix: "data/p1/",
    write: { "data/p1/a.txt": "second" },
    attempt: { ...task, taskId: "t-2", retryCount: 1 },
  });
  assert.equal(retry.status, "COMPLETED", retry.reasonForIncompletion);
  assert.equal(retry.publication, "merged");
  assert.equal((await readTree(stack, "main"))["data/p1/a.txt"], "second");
  await assertClean(stack);
});

test("a branch reset to a history without the ref fails terminally", async (stack, a) => {
  await stack.lakefs.createBranch(stack.repo, "elsewhere", a);
  await seed(stack, { "data/p2/z.txt": "z" }, { branch: "elsewhere" });
  const elsewhere = await seed(stack, { "data/p2/y.txt": "y" }, { branch: "elsewhere" });
  const mine = await seed(stack, { "other/new.txt": "n" });
  await stack.lakefs.hardReset(stack.repo, "main", elsewhere);
  await stack.lakefs.deleteBranch(stack.repo, "elsewhere");
  const outcome = await run(stack, mine, { prefix: "data/p1/", write: { "data/p1/q.txt": "q" } });
  assert.equal(outcome.status, "FAILED_WITH_TERMINAL_ERROR");
  assert.match(outcome.reasonForIncompletion!, /no longer descends from the input ref/);
  assert.equal(await head(stack), elsewhere);
  await assertClean(stack);
});
