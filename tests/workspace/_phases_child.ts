/**
 * Child of the attempt test "a workspace-free attempt never loads the workspace phases": one
 * workspace-free attempt and one workspace attempt, their outcomes as one JSON line. The test
 * runs it with the workspace phases' module unreadable.
 *
 * @module
 */
import { runAttempt } from "../../src/workspace/attempt.ts";
import { counter, reader } from "./_tasks.ts";

const base = {
  attempt: {
    workflowInstanceId: "wf-1",
    taskId: "task-1",
    retryCount: 0,
    referenceTaskName: "step_ref",
    seq: 1,
    iteration: 0,
    taskDefName: "t",
  },
  workspaceRoot: "/nonexistent/never-used",
  ownerWorkerId: "w",
  failureReasonMaxLength: 500,
};
const free = await runAttempt({ ...base, task: counter, input: { params: { text: "a b" } } });
const workspace = await runAttempt({
  ...base,
  task: reader,
  input: {
    workspace: { repository: "r", branch: "main", ref_type: "commit", ref: "c" },
    params: {},
  },
});
Deno.stdout.writeSync(new TextEncoder().encode(JSON.stringify({ free, workspace }) + "\n"));
