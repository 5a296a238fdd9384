/**
 * The phases of a workspace task's attempt: download, run between snapshots, stage, publish
 * behind fences, and the cleanup of its directory and staging branch. attempt.ts imports this
 * module on the first attempt of a workspace task only: a worker serving workspace-free tasks
 * never holds the lakeFS sync, snapshot and publication code (2.2 MiB of an executor's RSS
 * after its attempts, measured with the start-up benchmark's executor).
 *
 * This module is the flow ({@linkcode runWorkspace}): the order of the phases, the two
 * fences, and which lakeFS requests run side by side. Each phase is a module it imports
 * (attempt.ts must import none of them, or every worker would load them):
 * - attempt_download.ts: the input checked, the attempt directory made or taken from the
 *   warm pool, the objects of the scope downloaded into it;
 * - attempt_stage.ts: the upload plan, the staging branch, the staging commit;
 * - attempt_publish.ts: the publication onto the target branch and the attempt's output;
 * - attempt_cleanup.ts: the staging branch and the directory removed, leftovers of earlier
 *   attempts deleted;
 * - _attempt_state.ts: the state they share with attempt.ts.
 *
 * @module
 */
import type { RemoteEntry } from "../lakefs/sync.ts";
import { recordStagingBranch } from "./attempt_dir.ts";
import { invokeTaskBody, workspaceOutput } from "./_invoke.ts";
import type { newOwner } from "./owners.ts";
import { assertCurrentAttempt } from "./publish.ts";
import {
  changeStamp,
  diffSnapshots,
  type Snapshot,
  snapshotDir,
  snapshotsEqual,
} from "./snapshot.ts";
import {
  type AttemptState,
  type BodyResult,
  context,
  type WorkspaceAttempt,
} from "./_attempt_state.ts";
import { deleteLeftoverStaging } from "./attempt_cleanup.ts";
import {
  downloadedSnapshot,
  downloadPhase,
  knownFiles,
  noteCachedDigests,
  openWorkspace,
  takesSnapshots,
  writtenDigests,
} from "./attempt_download.ts";
import {
  createStagingBranch,
  planUploads,
  stagedChangeOf,
  stagePhase,
  stagingBranchOf,
  type UploadPlan,
} from "./attempt_stage.ts";
import { assertUnchanged, publishPhase, readHead } from "./attempt_publish.ts";

export { cleanup } from "./attempt_cleanup.ts";

/**
 * The attempt of a workspace task, phase by phase: download, run (between two snapshots for
 * a writable task), then, when something changed, stage and publish, each publication step
 * behind a fence.
 */
export async function runWorkspace(
  state: AttemptState,
  owner: ReturnType<typeof newOwner>,
): Promise<BodyResult> {
  const { options, signal } = state;
  const spec = options.task.workspace!;
  const ws = await openWorkspace(state, owner);
  const listing = await downloadPhase(ws);
  const snapshots = takesSnapshots(options);
  if (snapshots) options.onPhase?.("snapshot");
  const before = snapshots
    ? downloadedSnapshot(listing) ??
      await snapshotDir(ws.dir, { signal, written: writtenDigests(listing) })
    : undefined;
  if (before !== undefined) noteCachedDigests(options.downloadCache, listing, before);
  // Taken before the task runs: a file whose ctime is older was not changed by the task.
  const stamp = before === undefined && options.warmPool === undefined ? 0 : changeStamp(ws.dir);
  if (options.warmPool !== undefined) {
    let known: ReturnType<typeof knownFiles> | undefined;
    state.warm = {
      repository: ws.input.repository,
      scope: ws.scope,
      stampMs: stamp,
      // Made when the retirement first needs it, after the task: not on the attempt's path.
      get known() {
        return known ??= knownFiles(listing, before);
      },
    };
  }
  const result = await runPhase(ws);
  const since = before === undefined ? undefined : { snapshot: before, stamp };

  if (spec.readOnly || before === undefined || options.dryRun) {
    // Read-only, or a dry run: no lakeFS side effect to fence; complete with the input ref.
    if (before !== undefined) {
      const after = await snapshotDir(ws.dir, { signal, since });
      if (spec.readOnly) assertUnchanged(options.task.name, before, after);
      else state.changes = diffSnapshots(before, after);
    }
    return {
      output: { workspace: workspaceOutput(ws.input, ws.input.ref, options.refStyle), result },
      publishedRef: ws.input.ref,
    };
  }

  options.onPhase?.("snapshot");
  const branch = stagingBranchOf(state);
  // Fence #1 is read while the snapshot is taken: it guards what comes after both (deleting
  // leftovers, staging, publishing), and nothing of that starts before both are done.
  const fenced = fence(state);
  let walkedChange = false;
  const snapshotted = snapshotDir(ws.dir, {
    signal,
    since,
    onWalked: (entries) => walkedChange = stagedChangeOf(before, entries, ws.scope),
  });
  // Meanwhile the marker names the staging branch, which must happen before the branch can
  // exist (a process that dies later leaves it to whoever collects the directory). The
  // snapshot walked the directory before returning, so the marker's rewrite is not in it. When
  // nothing changed no branch is made, and a collector deleting the name finds none.
  const recorded = recordStagingBranch(ws.dir, ws.input.repository, branch);
  // A change the walk already shows will be staged: its branch is made as soon as fence #1
  // passed and the marker names it, while the files are still being read.
  const early = walkedChange
    ? createStagingBranch(ws, branch, Promise.all([fenced, recorded]))
    : undefined;
  early?.catch(() => {}); // awaited by the staging, or settled before the attempt ends
  const [fence1, snapshot, marker] = await Promise.allSettled([fenced, snapshotted, recorded]);
  try {
    return await publishChanges(ws, {
      before,
      result,
      listing,
      branch,
      fence1,
      snapshot,
      marker,
      early,
    });
  } finally {
    // The branch is never left being made when the attempt ends (the clean-up deletes it).
    await early?.catch(() => {});
  }
}

/** What {@linkcode runWorkspace} has when the snapshot after the task is taken. */
interface AfterTask {
  readonly before: Snapshot;
  readonly result: unknown;
  readonly listing: readonly RemoteEntry[];
  readonly branch: string;
  readonly fence1: PromiseSettledResult<void>;
  readonly snapshot: PromiseSettledResult<Snapshot>;
  readonly marker: PromiseSettledResult<void>;
  /** The staging branch being made already, when the walk showed a change. */
  readonly early: Promise<void> | undefined;
}

/**
 * The rest of a writable attempt once fence #1 and the snapshot after the task are in:
 * nothing changed, or stage and publish the change (fence #2 between).
 */
async function publishChanges(ws: WorkspaceAttempt, after: AfterTask): Promise<BodyResult> {
  const { state } = ws;
  const { options, signal } = state;
  const { before, result, listing, branch, fence1, snapshot, marker, early } = after;
  if (snapshot.status === "fulfilled") {
    state.changes = diffSnapshots(before, snapshot.value);
  }
  if (fence1.status === "rejected") throw fence1.reason; // fence #1
  if (snapshot.status === "rejected") throw snapshot.reason;
  const changed = !snapshotsEqual(before, snapshot.value);

  // This attempt is the current one: staging branches of earlier attempts of the same task
  // are leftovers of processes killed before their cleanup ran. They are deleted while this
  // attempt stages and publishes (its own branch excepted), and the attempt ends after both.
  const leftovers = deleteLeftoverStaging(ws.lakefs, ws.input.repository, options.attempt, {
    except: branch,
    log: state.log,
    signal,
  });
  let plan: UploadPlan | undefined;
  try {
    plan = changed ? planUploads(ws.dir, before, snapshot.value, listing, ws.scope) : undefined;
  } catch (error) {
    await leftovers.catch(() => {});
    throw error;
  }
  if (plan === undefined || (plan.uploads.length === 0 && plan.deletes.length === 0)) {
    // (A branch the walk had started is deleted by the clean-up.)
    return await besides(publishPhase(ws, result, undefined), leftovers);
  }
  const stagingPlan = plan;
  return await besides(
    (async () => {
      // A marker that could not name the branch fails the attempt before the branch is made.
      if (marker.status === "rejected") throw marker.reason;
      // The target's head is read while the attempt stages (nothing orders it after that):
      // the publication checks it and merges onto it, and the merge is checked after.
      const head = readHead(ws);
      const created = early ?? createStagingBranch(ws, branch, Promise.resolve());
      const staged = await besides(stagePhase(ws, stagingPlan, branch, created), head);
      await fence(state); // fence #2
      return await publishPhase(ws, result, staged, head);
    })(),
    leftovers,
  );
}

/**
 * Waits for `main` and `side`, which run side by side, to settle (neither is left running),
 * then throws `main`'s error, else `side`'s, else returns `main`'s value.
 */
async function besides<T>(main: Promise<T>, side: Promise<unknown>): Promise<T> {
  const [a, b] = await Promise.allSettled([main, side]);
  if (a.status === "rejected") throw a.reason;
  if (b.status === "rejected") throw b.reason;
  return a.value;
}

/** `run`: params, pre guardrails, the task function, result, post guardrails. */
async function runPhase(ws: WorkspaceAttempt): Promise<unknown> {
  const { options } = ws.state;
  return await invokeTaskBody(
    options.task,
    ws.params,
    context(ws.state, ws.dir),
    () => options.onPhase?.("run"),
  );
}

/** The fence: the Conductor task must still be this attempt's. */
async function fence(state: AttemptState): Promise<void> {
  const { options, signal } = state;
  assertCurrentAttempt(options.attempt, await options.loadCurrentAttempt!(signal));
}
