/**
 * Writers side by side on one branch: the attempt's scope as the unit of optimistic
 * concurrency. Every case runs against the demo lakeFS and, when `PERAGO_TEST_LAKEFS_*` name
 * one, against the real lakeFS (the reference).
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { defineTask, z } from "../../mod.ts";
import type { LakeFsApi } from "../../src/lakefs/api.ts";
import { LakeFsProtectedBranchError } from "../../src/lakefs/errors.ts";
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
  protectBranch,
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

/**
 * The first attempt of `task` (writing data/p1/mine.txt) lets `race` run before its merge,
 * merges and dies; then its retry writes the same. The head the first left, and the retry.
 */
async function diedAfterMergeThenRetried(
  stack: LakeStack,
  a: string,
  task: { workflowInstanceId: string; referenceTaskName: string },
  race: () => Promise<void>,
): Promise<{ afterFirst: string; retry: AttemptOutcome }> {
  const writer = { prefix: "data/p1/", write: { "data/p1/mine.txt": "m" } };
  const first = await run(stack, a, {
    ...writer,
    attempt: { ...task, taskId: "t-1", retryCount: 0 },
    lakefs: dyingAfterMerge(stack.lakefs, race),
  });
  assert.equal(first.status, "FAILED");
  const afterFirst = await head(stack);
  const retry = await run(stack, a, {
    ...writer,
    attempt: { ...task, taskId: "t-2", retryCount: 1 },
  });
  return { afterFirst, retry };
}

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
    const { afterFirst: combined, retry } = await diedAfterMergeThenRetried(
      stack,
      a,
      task,
      async () => {
        await seed(stack, { "data/p1/theirs.txt": "theirs" }, { message: "racer" });
      },
    );
    assert.equal((await readTree(stack, combined))["data/p1/mine.txt"], "m", "the merge stood");
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
    const { afterFirst: merged, retry } = await diedAfterMergeThenRetried(
      stack,
      a,
      task,
      async () => {
        await seed(stack, { "data/p2/theirs.txt": "theirs" }, { message: "racer" });
      },
    );
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

// ------------------------------------------------------------------ protected branch

/** Another writer publishing `files` onto a protected main: by a branch and a merge. */
async function mergeOnto(stack: LakeStack, files: Record<string, string>): Promise<string> {
  const side = `side-${crypto.randomUUID().slice(0, 8)}`;
  await stack.lakefs.createBranch(stack.repo, side, "main");
  await seed(stack, files, { branch: side, message: "racer" });
  const merged = await stack.lakefs.merge(stack.repo, side, "main", { message: "racer" });
  await stack.lakefs.deleteBranch(stack.repo, side);
  return merged;
}

test(
  "on a protected branch a retry replaces its earlier publication on A by merges",
  async (stack, a) => {
    await protectBranch(stack);
    // What the replacement did before: a hard reset, which branch protection refuses.
    await assert.rejects(
      stack.lakefs.hardReset(stack.repo, "main", a),
      (error) => error instanceof LakeFsProtectedBranchError && error.status === 403,
    );
    const task = {
      workflowInstanceId: `wf-protected-${crypto.randomUUID()}`,
      referenceTaskName: "step",
    };
    const attempt = (n: number) => ({ ...task, taskId: `t-${n}`, retryCount: n - 1 });
    const first = await run(stack, a, { write: { "data/p1/a.txt": "first" }, attempt: attempt(1) });
    assert.equal(first.status, "COMPLETED", first.reasonForIncompletion);
    assert.equal(first.publication, "merged");

    // The retry's content differs: its merge on top replaces the earlier publication's.
    const second = await run(stack, a, {
      write: { "data/p1/b.txt": "second" },
      attempt: attempt(2),
    });
    assert.equal(second.status, "COMPLETED", second.reasonForIncompletion);
    assert.equal(second.publication, "replaced-earlier-attempt");
    assert.equal(await head(stack), second.publishedRef);
    const replacement = await stack.lakefs.getCommit(stack.repo, second.publishedRef!);
    assert.deepEqual(replacement.parents, [first.publishedRef]);
    assert.equal(replacement.metadata?.[COMMIT_METADATA.revertedCommit], first.publishedRef);
    assert.equal(
      replacement.metadata?.[COMMIT_METADATA.workflowInstanceId],
      task.workflowInstanceId,
    );
    assert.deepEqual(await readTree(stack, "main"), { ...BASE, "data/p1/b.txt": "second" });
    await assertClean(stack);

    // An unchanged retry takes the branch back to A's content, again by a merge.
    const third = await run(stack, a, { attempt: attempt(3) });
    assert.equal(third.status, "COMPLETED", third.reasonForIncompletion);
    assert.equal(third.publication, "replaced-earlier-attempt");
    assert.equal(await head(stack), third.publishedRef);
    assert.deepEqual(await readTree(stack, "main"), BASE);

    // The same again completes with it; new content replaces the three before it.
    const fourth = await run(stack, a, { attempt: attempt(4) });
    assert.equal(fourth.status, "COMPLETED", fourth.reasonForIncompletion);
    assert.equal(fourth.publication, "earlier-attempt");
    assert.equal(fourth.publishedRef, third.publishedRef);
    const fifth = await run(stack, a, { write: { "data/p2/a.txt": "fifth" }, attempt: attempt(5) });
    assert.equal(fifth.status, "COMPLETED", fifth.reasonForIncompletion);
    assert.equal(fifth.publication, "replaced-earlier-attempt");
    assert.deepEqual(await readTree(stack, "main"), { ...BASE, "data/p2/a.txt": "fifth" });

    // Another writer's scope publishes on top; the retry then completes with the last one.
    const other = await mergeOnto(stack, { "other/y.txt": "y" });
    const sixth = await run(stack, a, { write: { "data/p1/c.txt": "6" }, attempt: attempt(6) });
    assert.equal(sixth.status, "COMPLETED", sixth.reasonForIncompletion);
    assert.equal(sixth.publication, "earlier-attempt");
    assert.equal(sixth.publishedRef, fifth.publishedRef);
    assert.equal(await head(stack), other);
    await assertClean(stack);
  },
);

/**
 * A client to whom lakeFS refuses reverts on main as on a protected branch (lakeFS 1.84 allows
 * them there; a server that does not must still see the merge undone).
 */
function refusingReverts(lakefs: LakeFsApi): LakeFsApi {
  return new Proxy(lakefs, {
    get(target, key, receiver) {
      if (key === "revertCommit") {
        return (...args: Parameters<LakeFsApi["revertCommit"]>) => {
          if (args[1] !== "main") return target.revertCommit(...args);
          return Promise.reject(
            new LakeFsProtectedBranchError({
              operation: "revertCommit",
              status: 403,
              serverMessage: "cannot write to protected branch",
            }),
          );
        };
      }
      const value = Reflect.get(target, key, receiver);
      return typeof value === "function" ? value.bind(target) : value;
    },
  });
}

for (const refused of [false, true]) {
  test(
    "on a protected branch a same-scope change in the window: the merge is reverted, terminal" +
      (refused ? " (reverts refused on the branch)" : ""),
    async (stack, a) => {
      await protectBranch(stack);
      let raced = 0;
      const lakefs = racingMerges(
        refused ? refusingReverts(stack.lakefs) : stack.lakefs,
        async () => {
          // Once: the revert may merge too.
          if (raced++ === 0) await mergeOnto(stack, { "data/p1/theirs.txt": "theirs" });
        },
      );
      const outcome = await run(stack, a, {
        prefix: "data/p1/",
        write: { "data/p1/mine.txt": "m" },
        lakefs,
      });
      assert.equal(outcome.status, "FAILED_WITH_TERMINAL_ERROR");
      assert.match(outcome.reasonForIncompletion!, /changed between the check .* was reverted/);
      const tree = await readTree(stack, "main");
      assert.equal(tree["data/p1/theirs.txt"], "theirs");
      assert.ok(!("data/p1/mine.txt" in tree));
      const log = await Array.fromAsync(stack.lakefs.logCommits(stack.repo, "main"));
      assert.equal(log[0]!.metadata?.[COMMIT_METADATA.revertedCommit], log[1]!.id);
      await assertClean(stack);
    },
  );
}

test(
  "on a protected branch a retry reverts an earlier attempt's combined merge, terminal",
  async (stack, a) => {
    await protectBranch(stack);
    const task = {
      workflowInstanceId: `wf-protected-${crypto.randomUUID()}`,
      referenceTaskName: "step",
    };
    const { afterFirst: combined, retry } = await diedAfterMergeThenRetried(
      stack,
      a,
      task,
      async () => {
        await mergeOnto(stack, { "data/p1/theirs.txt": "theirs" });
      },
    );
    assert.equal(retry.status, "FAILED_WITH_TERMINAL_ERROR", retry.reasonForIncompletion);
    assert.ok(retry.reasonForIncompletion!.includes(`earlier attempt's merge ${combined}`));
    assert.match(retry.reasonForIncompletion!, /was reverted so the two changes are not combined/);
    const tree = await readTree(stack, "main");
    assert.equal(tree["data/p1/theirs.txt"], "theirs");
    assert.ok(!("data/p1/mine.txt" in tree));
    await assertClean(stack);
  },
);
