import assert from "node:assert/strict";
import { join } from "node:path";
import { fileURLToPath as fromFileUrl } from "node:url";
import type { LakeFsApi } from "../../src/lakefs/api.ts";
import { activeOwnerCount } from "../../src/workspace/owners.ts";
import {
  type AttemptIdentity,
  type AttemptOptions,
  type CurrentTaskState,
  runAttempt,
} from "../../src/workspace/attempt.ts";
import { sleep } from "../../src/util/sleep.ts";
import {
  attemptOptions,
  branchNames,
  fenceFor,
  identity,
  listDir,
  readTree,
  seed,
  type Stack,
  startStack,
} from "./_stack.ts";
import { counter, reader, writer } from "./_tasks.ts";
import { readMarker } from "../../src/workspace/attempt_dir.ts";
import { compileControls } from "../../src/task/controls.ts";

const BASE = {
  "docs/keep.txt": "keep\n",
  "docs/a.txt": "alpha\n",
  "other/x.txt": "outside prefix",
};

async function withStack(fn: (stack: Stack, head: string) => Promise<void>): Promise<void> {
  await using stack = await startStack();
  const head = await seed(stack, BASE);
  await fn(stack, head);
}

function workspaceInput(stack: Stack, ref: string) {
  return { repository: stack.repo, branch: "main", ref_type: "commit", ref };
}

/** A `runAttempt` of the writer task over main at `ref`. */
function options(
  stack: Stack,
  ref: string,
  params: Record<string, unknown>,
  overrides: Partial<AttemptOptions> = {},
): AttemptOptions {
  return attemptOptions(stack, writer, ref, params, overrides);
}

async function head(stack: Stack): Promise<string> {
  return (await stack.lakefs.getBranch(stack.repo, "main")).commit_id;
}

/** Every attempt must leave no staging branch, no attempt dir and no active owner. */
async function assertClean(stack: Stack, owners: number): Promise<void> {
  assert.deepEqual(await branchNames(stack), ["main"]);
  assert.deepEqual(await listDir(stack.root), []);
  assert.equal(activeOwnerCount(), owners);
}

// ------------------------------------------------------------------ workspace-free

Deno.test("workspace-free: completes with {result}; input keys must be exactly {params}", async () => {
  const base = {
    task: counter,
    attempt: identity(),
    workspaceRoot: "/nonexistent/never-used",
    ownerWorkerId: "w",
    failureReasonMaxLength: 500,
  };
  const ok = await runAttempt({ ...base, input: { params: { text: "a b c" } } });
  assert.equal(ok.status, "COMPLETED");
  assert.deepEqual(ok.outputData, { result: { words: 3 } });
  assert.equal(ok.reasonForIncompletion, undefined);
  assert.equal(ok.stale, false);

  for (const input of [{ params: { text: "a" }, workspace: {} }, {}, [], null, "x"]) {
    const bad = await runAttempt({ ...base, input });
    assert.equal(bad.status, "FAILED", JSON.stringify(input));
    assert.match(bad.reasonForIncompletion!, /^TaskInputError: workspace-free task input/);
  }
  const badParams = await runAttempt({ ...base, input: { params: { text: "a", extra: 1 } } });
  assert.equal(badParams.status, "FAILED");
  assert.match(badParams.reasonForIncompletion!, /^TaskInputError: invalid params/);
});

Deno.test("workspace-free: never loads the workspace phases; a workspace attempt does, on its first attempt", async () => {
  // With the phases' module unreadable, a workspace-free attempt completes (it never imports
  // it) and a workspace attempt fails importing it (it does, before anything else).
  const phases = fromFileUrl(new URL("../../src/workspace/_workspace_attempt.ts", import.meta.url));
  const output = await new Deno.Command(Deno.execPath(), {
    args: [
      "run",
      "-A",
      `--deny-read=${phases}`,
      fromFileUrl(new URL("./_phases_child.ts", import.meta.url)),
    ],
    stdin: "null",
  }).output();
  const stderr = new TextDecoder().decode(output.stderr);
  assert.ok(output.success, stderr);
  const { free, workspace } = JSON.parse(new TextDecoder().decode(output.stdout));
  assert.equal(free.status, "COMPLETED");
  assert.deepEqual(free.outputData, { result: { words: 2 } });
  assert.equal(workspace.status, "FAILED");
  assert.match(workspace.reasonForIncompletion, /_workspace_attempt\.ts/);
});

Deno.test("terminal vs retryable mapping and reason truncation", async () => {
  const base = {
    task: counter,
    attempt: identity(),
    workspaceRoot: "/nonexistent",
    ownerWorkerId: "w",
    failureReasonMaxLength: 40,
  };
  const terminal = await runAttempt({ ...base, input: { params: { text: "terminal" } } });
  assert.equal(terminal.status, "FAILED_WITH_TERMINAL_ERROR");
  assert.equal(terminal.reasonForIncompletion, "TaskTerminalError: terminal: xxxxxxxxxxx");
  assert.equal(terminal.reasonForIncompletion!.length, 40);
  const plain = await runAttempt({ ...base, input: { params: { text: "throw" } } });
  assert.equal(plain.status, "FAILED");
  assert.equal(plain.reasonForIncompletion, "RangeError: plain failure");
  assert.equal(plain.outputData, undefined);
});

// ------------------------------------------------------------------ workspace input

Deno.test("workspace task: bad input keys or workspace fields fail before any download", async () => {
  await withStack(async (stack, a) => {
    const owners = activeOwnerCount();
    const cases: [unknown, RegExp][] = [
      [{ params: {} }, /TaskInputError: workspace task input must contain only/],
      [{ workspace: workspaceInput(stack, a), params: {}, x: 1 }, /must contain only/],
      [
        { workspace: { ...workspaceInput(stack, a), ref_type: "branch" }, params: {} },
        /invalid workspace input/,
      ],
      [
        { workspace: { ...workspaceInput(stack, a), extra: 1 }, params: {} },
        /invalid workspace input/,
      ],
      [
        { workspace: { repository: stack.repo, branch: "main", ref_type: "commit" }, params: {} },
        /invalid workspace input/,
      ],
    ];
    for (const [input, reason] of cases) {
      const outcome = await runAttempt({ ...options(stack, a, {}), input });
      assert.equal(outcome.status, "FAILED");
      assert.match(outcome.reasonForIncompletion!, reason);
    }
    assert.equal(stack.server.stats.count("getObject"), 0);
    assert.equal(stack.server.stats.count("listObjects"), 0);
    await assertClean(stack, owners);
  });
});

// ------------------------------------------------------------------ read-only

Deno.test("read-only: completes with the input ref and writes nothing to lakeFS", async () => {
  await withStack(async (stack, a) => {
    const owners = activeOwnerCount();
    stack.server.stats.reset();
    const phases: string[] = [];
    const outcome = await runAttempt({
      ...options(stack, a, {}, { task: reader, onPhase: (p) => phases.push(p) }),
      loadCurrentAttempt: () => Promise.reject(new Error("read-only must not fence")),
    });
    assert.equal(outcome.status, "COMPLETED", outcome.reasonForIncompletion);
    assert.deepEqual(outcome.outputData, {
      workspace: workspaceInput(stack, a),
      result: { files: ["docs/a.txt", "docs/keep.txt", "other/x.txt"] },
    });
    assert.equal(outcome.publishedRef, a);
    assert.deepEqual(phases, ["download", "run", "cleanup"]);
    for (
      const op of ["uploadObject", "createBranch", "commit", "mergeIntoBranch", "deleteObjects"]
    ) {
      assert.equal(stack.server.stats.count(op), 0, op);
    }
    assert.equal(await head(stack), a);
    await assertClean(stack, owners);
  });
});

// ------------------------------------------------------------------ writable, no change

Deno.test("writable no-op with H == A publishes A without a staging branch", async () => {
  await withStack(async (stack, a) => {
    const owners = activeOwnerCount();
    const attempt = identity();
    const fence = fenceFor(attempt);
    stack.server.stats.reset();
    const outcome = await runAttempt({ ...options(stack, a, {}), loadCurrentAttempt: fence.load });
    assert.equal(outcome.status, "COMPLETED", outcome.reasonForIncompletion);
    assert.deepEqual(outcome.outputData, {
      workspace: workspaceInput(stack, a),
      result: { edits: 0 },
    });
    assert.equal(fence.calls, 1);
    assert.deepEqual(outcome.changes, { added: [], changed: [], removed: [] });
    assert.equal(stack.server.stats.count("createBranch"), 0);
    assert.equal(stack.server.stats.count("uploadObject"), 0);
    assert.equal(await head(stack), a);
    await assertClean(stack, owners);
  });
});

Deno.test("writable no-op when the scope changed under the attempt: terminal scope conflict", async () => {
  await withStack(async (stack, a) => {
    const owners = activeOwnerCount();
    const foreign = await seed(stack, { "docs/foreign.txt": "someone else" });
    const outcome = await runAttempt(options(stack, a, {}));
    assert.equal(outcome.status, "FAILED_WITH_TERMINAL_ERROR");
    assert.equal(outcome.stale, false);
    assert.equal(outcome.errorName, "ScopeConflictError");
    assert.match(
      outcome.reasonForIncompletion!,
      /^ScopeConflictError: .*scope "docs\/" changed since the input ref .*"docs\/foreign.txt"; the head is /,
    );
    assert.equal(await head(stack), foreign);
    await assertClean(stack, owners);
  });
});

Deno.test("writable no-op when only another scope changed: completes with the new head", async () => {
  await withStack(async (stack, a) => {
    const owners = activeOwnerCount();
    const foreign = await seed(stack, { "other/y.txt": "someone else" });
    const outcome = await runAttempt(options(stack, a, {}));
    assert.equal(outcome.status, "COMPLETED", outcome.reasonForIncompletion);
    assert.equal(outcome.publishedRef, foreign);
    assert.equal(outcome.publication, "unchanged");
    assert.equal(await head(stack), foreign);
    await assertClean(stack, owners);
  });
});

// ------------------------------------------------------------------ writable, changed

Deno.test("changed workspace: staged, squash-merged, output carries the new commit", async () => {
  await withStack(async (stack, a) => {
    const owners = activeOwnerCount();
    const phases: string[] = [];
    stack.server.stats.reset();
    const outcome = await runAttempt(
      options(stack, a, { write: { "docs/a.txt": "ALPHA\n", "docs/new/b.txt": "b" }, remove: [] }, {
        onPhase: (p) => phases.push(p),
      }),
    );
    assert.equal(outcome.status, "COMPLETED", outcome.reasonForIncompletion);
    const published = outcome.publishedRef!;
    assert.notEqual(published, a);
    assert.deepEqual(outcome.outputData, {
      workspace: workspaceInput(stack, published),
      result: { edits: 2 },
    });
    assert.deepEqual(phases, [
      "download",
      "snapshot",
      "run",
      "snapshot",
      "stage",
      "publish",
      "cleanup",
    ]);
    assert.deepEqual(outcome.changes, {
      added: [{ path: "docs/new/b.txt", size: 1 }],
      changed: [{ path: "docs/a.txt", size: 6 }],
      removed: [],
    });
    assert.equal(await head(stack), published);
    const commit = await stack.lakefs.getCommit(stack.repo, published);
    assert.deepEqual(commit.parents, [a]);
    assert.deepEqual(await readTree(stack, published), {
      ...BASE,
      "docs/a.txt": "ALPHA\n",
      "docs/new/b.txt": "b",
    });
    assert.equal(stack.server.stats.count("uploadObject"), 2);
    assert.equal(stack.server.stats.count("deleteObjects"), 0);
    assert.equal(stack.server.stats.count("mergeIntoBranch"), 1);
    assert.equal(stack.server.stats.count("hardResetBranch"), 0);
    await assertClean(stack, owners);
  });
});

Deno.test("a removed file is deleted remotely; the marker is never uploaded", async () => {
  await withStack(async (stack, a) => {
    const outcome = await runAttempt(options(stack, a, { remove: ["docs/a.txt"] }));
    assert.equal(outcome.status, "COMPLETED", outcome.reasonForIncompletion);
    const tree = await readTree(stack, outcome.publishedRef!);
    assert.deepEqual(Object.keys(tree).sort(), ["docs/keep.txt", "other/x.txt"]);
    assert.equal(stack.server.stats.count("uploadObject"), Object.keys(BASE).length);
    assert.ok(!Object.keys(tree).some((key) => key.includes(".perago-attempt")));
  });
});

Deno.test("an earlier attempt's commit on A is replaced by hard reset (changed and no-op)", async () => {
  await withStack(async (stack, a) => {
    const owners = activeOwnerCount();
    // Attempt 1 published but (say) its COMPLETED was lost; Conductor retried the task.
    const first = await runAttempt(options(stack, a, { write: { "docs/a.txt": "first" } }));
    assert.equal(first.status, "COMPLETED", first.reasonForIncompletion);
    const c1 = first.publishedRef!;

    stack.server.stats.reset();
    const retry = identity({ taskId: "task-2", retryCount: 1 });
    const second = await runAttempt(
      options(stack, a, { write: { "docs/a.txt": "second" } }, { attempt: retry }),
    );
    assert.equal(second.status, "COMPLETED", second.reasonForIncompletion);
    const c2 = second.publishedRef!;
    assert.notEqual(c2, c1);
    assert.equal(await head(stack), c2);
    assert.deepEqual((await stack.lakefs.getCommit(stack.repo, c2)).parents, [a]);
    assert.equal((await readTree(stack, c2, "docs/"))["docs/a.txt"], "second");
    assert.equal(stack.server.stats.count("hardResetBranch"), 1);
    assert.equal(stack.server.stats.count("mergeIntoBranch"), 0);

    // A third retry changes nothing: the branch goes back to A.
    const third = await runAttempt(
      options(stack, a, {}, { attempt: identity({ taskId: "task-3", retryCount: 2 }) }),
    );
    assert.equal(third.status, "COMPLETED", third.reasonForIncompletion);
    assert.equal(third.publishedRef, a);
    assert.equal(await head(stack), a);
    await assertClean(stack, owners);
  });
});

Deno.test("a foreign commit under the scope: terminal scope conflict, nothing merged", async () => {
  await withStack(async (stack, a) => {
    const owners = activeOwnerCount();
    const foreign = await seed(stack, { "docs/foreign.txt": "x" });
    stack.server.stats.reset();
    const outcome = await runAttempt(options(stack, a, { write: { "docs/a.txt": "mine" } }));
    assert.equal(outcome.status, "FAILED_WITH_TERMINAL_ERROR");
    assert.equal(outcome.stale, false);
    assert.match(outcome.reasonForIncompletion!, /^ScopeConflictError: .*"docs\/foreign.txt"/);
    assert.equal(stack.server.stats.count("mergeIntoBranch"), 0);
    assert.equal(await head(stack), foreign);
    await assertClean(stack, owners);
  });
});

Deno.test("a foreign commit outside the scope: the change is merged onto the moved head", async () => {
  await withStack(async (stack, a) => {
    const owners = activeOwnerCount();
    const foreign = await seed(stack, { "other/y.txt": "theirs" });
    const outcome = await runAttempt(options(stack, a, { write: { "docs/a.txt": "mine" } }));
    assert.equal(outcome.status, "COMPLETED", outcome.reasonForIncompletion);
    assert.equal(outcome.publication, "merged");
    const published = outcome.publishedRef!;
    assert.equal(await head(stack), published);
    assert.deepEqual((await stack.lakefs.getCommit(stack.repo, published)).parents, [foreign]);
    const tree = await readTree(stack, published);
    assert.equal(tree["docs/a.txt"], "mine");
    assert.equal(tree["other/y.txt"], "theirs");
    assert.equal(tree["other/x.txt"], "outside prefix");
    await assertClean(stack, owners);
  });
});

// ------------------------------------------------------------------ fences

for (
  const [label, answer] of [
    ["not IN_PROGRESS", { status: "COMPLETED" }],
    ["another retry", { retryCount: 1 }],
    ["another workflow", { workflowInstanceId: "wf-other" }],
    ["another task id", { taskId: "task-other" }],
  ] as const
) {
  Deno.test(`fence #1 fails (${label}): stale, nothing published`, async () => {
    await withStack(async (stack, a) => {
      const owners = activeOwnerCount();
      const attempt = identity();
      stack.server.stats.reset();
      const outcome = await runAttempt({
        ...options(stack, a, { write: { "docs/a.txt": "x" } }),
        loadCurrentAttempt: fenceFor(attempt, [answer]).load,
      });
      assert.equal(outcome.stale, true);
      assert.equal(outcome.status, "FAILED");
      assert.match(outcome.reasonForIncompletion!, /^StaleAttemptError/);
      assert.equal(stack.server.stats.count("createBranch"), 0);
      assert.equal(await head(stack), a);
      await assertClean(stack, owners);
    });
  });
}

Deno.test("a change the walk shows early still makes its staging branch only after fence #1 passed", async () => {
  await withStack(async (stack, a) => {
    const owners = activeOwnerCount();
    const events: string[] = [];
    const watching = new Proxy(stack.lakefs, {
      get(target, property, receiver) {
        if (property === "createBranch") {
          return (repo: string, branch: string, ref: string, signal?: AbortSignal) => {
            events.push("createBranch");
            return target.createBranch(repo, branch, ref, signal);
          };
        }
        const value = Reflect.get(target, property, receiver);
        return typeof value === "function" ? value.bind(target) : value;
      },
    }) as LakeFsApi;
    /** A fence answering after a while (as Conductor over a slow link), with `answer`. */
    const slowFence = (attempt: AttemptIdentity, answer: Partial<CurrentTaskState>) => {
      const fence = fenceFor(attempt, [answer]);
      return async (signal: AbortSignal) => {
        await sleep(150, signal);
        events.push("fence");
        return await fence.load(signal);
      };
    };
    // Stale: a resized file (a change the walk alone shows) and no branch at all.
    const stale = identity();
    const lost = await runAttempt({
      ...options(stack, a, { write: { "docs/a.txt": "resized" } }, { attempt: stale }),
      lakefs: watching,
      loadCurrentAttempt: slowFence(stale, { status: "COMPLETED" }),
    });
    assert.equal(lost.stale, true);
    assert.deepEqual(events, ["fence"]);
    assert.equal(stack.server.stats.count("createBranch"), 0);
    // Current: the branch is made once the fence answered, and the change is published.
    events.length = 0;
    const current = identity({ taskId: "task-slow" });
    const outcome = await runAttempt({
      ...options(stack, a, { write: { "docs/a.txt": "resized" } }, { attempt: current }),
      lakefs: watching,
      loadCurrentAttempt: slowFence(current, {}),
    });
    assert.equal(outcome.status, "COMPLETED", outcome.reasonForIncompletion);
    assert.deepEqual(events.slice(0, 2), ["fence", "createBranch"]);
    assert.equal((await readTree(stack, outcome.publishedRef!, "docs/"))["docs/a.txt"], "resized");
    await assertClean(stack, owners);
  });
});

Deno.test("fence #2 fails after staging: stale, staging branch deleted, target untouched", async () => {
  await withStack(async (stack, a) => {
    const owners = activeOwnerCount();
    const attempt = identity();
    const fence = fenceFor(attempt, [{}, { status: "TIMED_OUT" }]);
    stack.server.stats.reset();
    const outcome = await runAttempt({
      ...options(stack, a, { write: { "docs/a.txt": "x" } }),
      loadCurrentAttempt: fence.load,
    });
    assert.equal(fence.calls, 2);
    assert.equal(outcome.stale, true);
    assert.equal(stack.server.stats.count("createBranch"), 1);
    assert.equal(stack.server.stats.count("commit"), 1);
    assert.equal(stack.server.stats.count("mergeIntoBranch"), 0);
    assert.equal(stack.server.stats.count("deleteBranch"), 1);
    assert.equal(await head(stack), a);
    await assertClean(stack, owners);
  });
});

Deno.test("no-op with a stale fence: stale and no branch change", async () => {
  await withStack(async (stack, a) => {
    const outcome = await runAttempt({
      ...options(stack, a, {}),
      loadCurrentAttempt: fenceFor(identity(), [{ status: "CANCELED" }]).load,
    });
    assert.equal(outcome.stale, true);
    assert.equal(await head(stack), a);
  });
});

// ------------------------------------------------------------------ failures and cleanup

Deno.test("task failures: plain -> FAILED, terminal -> FAILED_WITH_TERMINAL_ERROR; clean", async () => {
  await withStack(async (stack, a) => {
    const owners = activeOwnerCount();
    const plain = await runAttempt(
      options(stack, a, { write: { "docs/a.txt": "x" }, fail: "boom" }),
    );
    assert.equal(plain.status, "FAILED");
    assert.equal(plain.reasonForIncompletion, "Error: boom");
    const terminal = await runAttempt(
      options(stack, a, { write: { "docs/a.txt": "x" }, fail: "no way", terminal: true }),
    );
    assert.equal(terminal.status, "FAILED_WITH_TERMINAL_ERROR");
    assert.equal(terminal.reasonForIncompletion, "TaskTerminalError: no way");
    const badResult = await runAttempt(options(stack, a, { badResult: true }));
    assert.equal(badResult.status, "FAILED");
    assert.match(badResult.reasonForIncompletion!, /^TaskResultError/);
    assert.equal(await head(stack), a);
    await assertClean(stack, owners);
  });
});

Deno.test("guardrails: pre failure is terminal, post failure is retryable", async () => {
  await using stack = await startStack();
  const owners = activeOwnerCount();
  const noDocs = await seed(stack, { "other/x.txt": "x" });
  const pre = await runAttempt(options(stack, noDocs, {}));
  assert.equal(pre.status, "FAILED_WITH_TERMINAL_ERROR");
  assert.match(pre.reasonForIncompletion!, /^PreGuardrailViolation: pre guardrail/);
  const a = await seed(stack, BASE);
  const post = await runAttempt(options(stack, a, { remove: ["docs/keep.txt"] }));
  assert.equal(post.status, "FAILED");
  assert.match(post.reasonForIncompletion!, /^PostGuardrailViolation: post guardrail/);
  assert.equal(await head(stack), a);
  await assertClean(stack, owners);
});

Deno.test("a failing merge still deletes the staging branch", async () => {
  await withStack(async (stack, a) => {
    const owners = activeOwnerCount();
    const failing = new Proxy(stack.lakefs, {
      get(target, property, receiver) {
        if (property === "merge") {
          return () => Promise.reject(new Error("merge exploded"));
        }
        const value = Reflect.get(target, property, receiver);
        return typeof value === "function" ? value.bind(target) : value;
      },
    }) as LakeFsApi;
    const outcome = await runAttempt({
      ...options(stack, a, { write: { "docs/a.txt": "x" } }),
      lakefs: failing,
    });
    assert.equal(outcome.status, "FAILED");
    assert.equal(outcome.reasonForIncompletion, "Error: merge exploded");
    assert.equal(await head(stack), a);
    await assertClean(stack, owners);
  });
});

Deno.test("the marker names the staging branch before the branch is made; a marker it cannot update fails a changed attempt only", async () => {
  await withStack(async (stack, a) => {
    const owners = activeOwnerCount();
    // The task removes the marker: a change cannot be staged safely, no change completes.
    const changed = await runAttempt(
      options(stack, a, { write: { "docs/a.txt": "y" }, remove: [".perago-attempt.json"] }),
    );
    assert.equal(changed.status, "FAILED");
    assert.match(changed.reasonForIncompletion!, /has no marker/);
    assert.equal(stack.server.stats.count("createBranch"), 0);
    const unchanged = await runAttempt(options(stack, a, { remove: [".perago-attempt.json"] }));
    assert.equal(unchanged.status, "COMPLETED", unchanged.reasonForIncompletion);
    assert.equal(unchanged.publishedRef, a);
    assert.equal(await head(stack), a);

    const named: (string | undefined)[] = [];
    const watching = new Proxy(stack.lakefs, {
      get(target, property, receiver) {
        if (property === "createBranch") {
          return async (repo: string, branch: string, ref: string, signal?: AbortSignal) => {
            const [dir] = await listDir(stack.root);
            named.push((await readMarker(join(stack.root, dir!)))?.staging_branch);
            assert.equal(named.at(-1), branch);
            return await target.createBranch(repo, branch, ref, signal);
          };
        }
        const value = Reflect.get(target, property, receiver);
        return typeof value === "function" ? value.bind(target) : value;
      },
    }) as LakeFsApi;
    const outcome = await runAttempt({
      ...options(stack, a, { write: { "docs/a.txt": "x" } }),
      lakefs: watching,
    });
    assert.equal(outcome.status, "COMPLETED", outcome.reasonForIncompletion);
    assert.equal(named.length, 1);
    assert.match(named[0]!, /^perago-staging-/);
    await assertClean(stack, owners);
  });
});

Deno.test("a failing staging-branch delete is logged and never masks the outcome", async () => {
  await withStack(async (stack, a) => {
    const failing = new Proxy(stack.lakefs, {
      get(target, property, receiver) {
        if (property === "deleteBranch") return () => Promise.reject(new Error("nope"));
        const value = Reflect.get(target, property, receiver);
        return typeof value === "function" ? value.bind(target) : value;
      },
    }) as LakeFsApi;
    const outcome = await runAttempt({
      ...options(stack, a, { write: { "docs/a.txt": "x" } }),
      lakefs: failing,
    });
    assert.equal(outcome.status, "COMPLETED", outcome.reasonForIncompletion);
    assert.deepEqual(await listDir(stack.root), []);
  });
});

Deno.test("writes outside the prefix fail the attempt (terminal) instead of being dropped", async () => {
  await withStack(async (stack, a) => {
    const outcome = await runAttempt(options(stack, a, { write: { "other/y.txt": "y" } }));
    assert.equal(outcome.status, "FAILED_WITH_TERMINAL_ERROR");
    assert.match(outcome.reasonForIncompletion!, /^UnsafePathError: cannot stage "other\/y.txt"/);
    assert.equal(await head(stack), a);
    assert.equal(stack.server.stats.count("createBranch"), 0);
  });
});

Deno.test("a missing lakeFS or fence is reported clearly", async () => {
  await withStack(async (stack, a) => {
    const outcome = await runAttempt({ ...options(stack, a, {}), lakefs: undefined as never });
    assert.equal(outcome.status, "FAILED");
    assert.match(outcome.reasonForIncompletion!, /needs lakeFS/);
    await assert.rejects(
      () => runAttempt({ ...options(stack, a, {}), loadCurrentAttempt: undefined as never }),
      TypeError,
    );
  });
});

Deno.test("dry run: reports the changes and writes nothing", async () => {
  await withStack(async (stack, a) => {
    stack.server.stats.reset();
    const outcome = await runAttempt({
      ...options(stack, a, { write: { "docs/z.txt": "zz" }, remove: ["docs/a.txt"] }),
      loadCurrentAttempt: undefined as never,
      dryRun: true,
    });
    assert.equal(outcome.status, "COMPLETED", outcome.reasonForIncompletion);
    assert.deepEqual(outcome.changes, {
      added: [{ path: "docs/z.txt", size: 2 }],
      changed: [],
      removed: [{ path: "docs/a.txt", size: 6 }],
    });
    assert.equal(outcome.publishedRef, a);
    for (
      const op of ["uploadObject", "createBranch", "commit", "deleteObjects", "hardResetBranch"]
    ) {
      assert.equal(stack.server.stats.count(op), 0, op);
    }
    assert.deepEqual(await branchNames(stack), ["main"]);
  });
});

Deno.test("cancellation reaches the task and the attempt still cleans up", async () => {
  await withStack(async (stack, a) => {
    const owners = activeOwnerCount();
    const controller = new AbortController();
    const outcome = await runAttempt({
      ...options(stack, a, {}),
      signal: controller.signal,
      onPhase: (phase) => {
        if (phase === "run") controller.abort(new Error("shutdown"));
      },
    });
    assert.equal(outcome.status, "FAILED");
    assert.match(outcome.reasonForIncompletion!, /shutdown/);
    await assertClean(stack, owners);
    assert.ok((await Deno.lstat(join(stack.tmp))).isDirectory);
  });
});

// ------------------------------------------------------------------ perago for Python's spelling

Deno.test("workspace input: refType (perago for Python) works like ref_type; exactly one is taken", async () => {
  await withStack(async (stack, a) => {
    const owners = activeOwnerCount();
    const { ref_type: _, ...rest } = workspaceInput(stack, a);
    const camel = { ...rest, refType: "commit" };
    const outcome = await runAttempt({
      ...options(stack, a, { write: { "docs/a.txt": "camel\n" } }),
      input: { workspace: camel, params: { write: { "docs/a.txt": "camel\n" } } },
    });
    assert.equal(outcome.status, "COMPLETED", outcome.reasonForIncompletion);
    // Emitted as ref_type unless asked otherwise.
    assert.deepEqual(outcome.outputData?.workspace, {
      repository: stack.repo,
      branch: "main",
      ref_type: "commit",
      ref: outcome.publishedRef,
    });
    const b = outcome.publishedRef!;
    const asCamel = await runAttempt({
      ...options(stack, b, { write: { "docs/a.txt": "camel 2\n" } }),
      refStyle: "camel",
    });
    assert.equal(asCamel.status, "COMPLETED", asCamel.reasonForIncompletion);
    assert.deepEqual(asCamel.outputData?.workspace, {
      repository: stack.repo,
      branch: "main",
      refType: "commit",
      ref: asCamel.publishedRef,
    });
    const c = asCamel.publishedRef!;
    const cases: [Record<string, unknown>, RegExp][] = [
      [
        { ...workspaceInput(stack, c), refType: "commit" },
        /both ref_type and refType are given; give exactly one/,
      ],
      [{ ...rest, ref: c, refType: "branch" }, /invalid workspace input: .*refType/],
      [{ ...rest, ref: c, refType: "commit", extra: 1 }, /invalid workspace input/],
    ];
    stack.server.stats.reset();
    for (const [workspace, reason] of cases) {
      const bad = await runAttempt({ ...options(stack, c, {}), input: { workspace, params: {} } });
      assert.equal(bad.status, "FAILED");
      assert.match(bad.reasonForIncompletion!, reason);
    }
    assert.equal(stack.server.stats.count("listObjects"), 0, "rejected before any download");
    await assertClean(stack, owners + 0);
  });
});

Deno.test("publishBudget: its lakeFS merge timeout bounds the publication's merge and hard reset", async () => {
  await withStack(async (stack, a) => {
    const seen: { op: string; requestTimeoutMs: number | undefined }[] = [];
    const lakefs = new Proxy(stack.lakefs, {
      get(target, key, receiver) {
        const value = Reflect.get(target, key, receiver);
        if (key === "merge") {
          return (...args: Parameters<LakeFsApi["merge"]>) => {
            seen.push({ op: "merge", requestTimeoutMs: args[3]?.requestTimeoutMs });
            return target.merge(...args);
          };
        }
        if (key === "hardReset") {
          return (...args: Parameters<LakeFsApi["hardReset"]>) => {
            seen.push({ op: "hardReset", requestTimeoutMs: args[4]?.requestTimeoutMs });
            return target.hardReset(...args);
          };
        }
        return typeof value === "function" ? value.bind(target) : value;
      },
    });
    const budgeted = Object.freeze({
      ...writer,
      controls: compileControls({
        timeout: { responseSeconds: 120 },
        publishBudget: {
          observedMergeP99Seconds: 2,
          safetyMarginSeconds: 1,
          lakefsMergeTimeoutSeconds: 7,
          conductorCompletionTimeoutSeconds: 5,
          workerShutdownGraceSeconds: 5,
          heartbeatIntervalSeconds: 5,
        },
      }),
    }) as unknown as AttemptOptions["task"];
    const merged = await runAttempt({
      ...options(stack, a, { write: { "docs/a.txt": "budget\n" } }),
      task: budgeted,
      lakefs,
    });
    assert.equal(merged.status, "COMPLETED", merged.reasonForIncompletion);
    assert.deepEqual(seen, [{ op: "merge", requestTimeoutMs: 7000 }]);
    // Without a budget: the client's own timeout.
    seen.length = 0;
    const plain = await runAttempt({
      ...options(stack, merged.publishedRef!, { write: { "docs/a.txt": "plain\n" } }),
      lakefs,
    });
    assert.equal(plain.status, "COMPLETED", plain.reasonForIncompletion);
    assert.deepEqual(seen, [{ op: "merge", requestTimeoutMs: undefined }]);
  });
});
