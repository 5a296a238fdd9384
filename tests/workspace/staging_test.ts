import assert from "node:assert/strict";
import { MAX_STAGING_BRANCH_LENGTH, stagingBranchName } from "../../src/workspace/staging.ts";

const ids = {
  workflowInstanceId: "3f2a-wf",
  referenceTaskName: "normalize.ref",
  seq: 2,
  iteration: 0,
  taskId: "t1",
  retryCount: 1,
  executionId: "e1",
};

Deno.test("stagingBranchName follows the pattern and lakeFS's charset", () => {
  assert.equal(
    stagingBranchName(ids),
    "perago-staging-3f2a-wf-normalize_ref-seq-2-iteration-0-task-id-t1-retry-1-exec-e1",
  );
  const odd = stagingBranchName({ ...ids, workflowInstanceId: "wf/ü x", taskId: "a:b" });
  assert.match(odd, /^\w[-\w]*$/);
});

Deno.test("stagingBranchName bounds long names and keeps them unique", () => {
  const a = stagingBranchName({ ...ids, referenceTaskName: "r".repeat(300), executionId: "e1" });
  const b = stagingBranchName({ ...ids, referenceTaskName: "r".repeat(300), executionId: "e2" });
  assert.equal(a.length, MAX_STAGING_BRANCH_LENGTH);
  assert.match(a, /^\w[-\w]*$/);
  assert.notEqual(a, b);
});
