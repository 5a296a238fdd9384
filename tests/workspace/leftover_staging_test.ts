import assert from "node:assert/strict";
import { runAttempt } from "../../src/workspace/attempt.ts";
import {
  isSameTaskStagingBranch,
  MAX_STAGING_BRANCH_LENGTH,
  publishBranchName,
  stagingBranchName,
} from "../../src/workspace/staging.ts";
import { attemptOptions, branchNames, identity, seed, startStack } from "./_stack.ts";
import { writer } from "./_tasks.ts";

const IDS = { workflowInstanceId: "wf-1", referenceTaskName: "step_ref" };

/** A staging branch name of seq 1, task t1, execution e1 of `IDS`, with `over` changed. */
const branchName = (over: Record<string, unknown>) =>
  stagingBranchName({
    ...IDS,
    seq: 1,
    iteration: 0,
    taskId: "t1",
    retryCount: 0,
    executionId: "e1",
    ...over,
  });

Deno.test("isSameTaskStagingBranch: same workflow task, any retry/seq/iteration; nothing else", () => {
  const name = branchName;
  assert.ok(isSameTaskStagingBranch(name({}), IDS));
  assert.ok(isSameTaskStagingBranch(name({ seq: 7, retryCount: 3, taskId: "t9" }), IDS));
  assert.ok(!isSameTaskStagingBranch(name({ workflowInstanceId: "wf-2" }), IDS));
  assert.ok(!isSameTaskStagingBranch(name({ referenceTaskName: "step" }), IDS));
  assert.ok(!isSameTaskStagingBranch(name({ referenceTaskName: "step_ref-seq-1" }), IDS));
  assert.ok(!isSameTaskStagingBranch("main", IDS));
  const long = name({ taskId: "x".repeat(300) });
  assert.equal(long.length, MAX_STAGING_BRANCH_LENGTH);
  assert.ok(isSameTaskStagingBranch(long, IDS));
  assert.ok(!isSameTaskStagingBranch(long, { ...IDS, referenceTaskName: "step" }));
  // The throw-away branch of a publication by merges counts as one of the task's.
  assert.ok(isSameTaskStagingBranch(publishBranchName(IDS), IDS));
  assert.notEqual(publishBranchName(IDS), publishBranchName(IDS));
  assert.ok(!isSameTaskStagingBranch(publishBranchName(IDS), { ...IDS, referenceTaskName: "s" }));
});

Deno.test("isSameTaskStagingBranch: a workflow id and reference name longer than the limit", () => {
  const ids = { workflowInstanceId: "w".repeat(120), referenceTaskName: "r".repeat(120) };
  const name = (over: Record<string, unknown>) => branchName({ ...ids, ...over });
  const first = name({});
  assert.equal(first.length, MAX_STAGING_BRANCH_LENGTH);
  assert.ok(isSameTaskStagingBranch(first, ids));
  assert.ok(isSameTaskStagingBranch(name({ seq: 4, retryCount: 2, executionId: "e9" }), ids));
  assert.ok(isSameTaskStagingBranch(publishBranchName(ids), ids));
  // Another task whose names share the same first 200 characters is not taken for this one.
  const sibling = { ...ids, referenceTaskName: `${"r".repeat(120)}_other` };
  assert.ok(!isSameTaskStagingBranch(branchName(sibling), ids));
  assert.ok(!isSameTaskStagingBranch(first, sibling));
});

Deno.test("attempt: deletes staging branches an earlier (killed) attempt of the same task left", async () => {
  await using stack = await startStack();
  const head = await seed(stack, { "docs/keep.txt": "keep\n" });
  const earlier = branchName({ taskId: "task-0", executionId: "dead" });
  const other = branchName({
    workflowInstanceId: "wf-other",
    taskId: "task-x",
    executionId: "alive",
  });
  // And the throw-away branch of a publication by merges a killed attempt left.
  const publishing = publishBranchName(IDS);
  await stack.lakefs.createBranch(stack.repo, earlier, head);
  await stack.lakefs.createBranch(stack.repo, publishing, head);
  await stack.lakefs.createBranch(stack.repo, other, head);
  const attempt = identity({ taskId: "task-1", retryCount: 1, seq: 2 });
  const outcome = await runAttempt(
    attemptOptions(stack, writer, head, { write: { "docs/new.txt": "new\n" } }, { attempt }),
  );
  assert.equal(outcome.status, "COMPLETED", outcome.reasonForIncompletion);
  assert.deepEqual(await branchNames(stack), ["main", other].sort());
});
