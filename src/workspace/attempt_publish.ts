/**
 * The publication of a workspace attempt's result: the staged commit onto the target branch
 * (or, with nothing staged, the input ref confirmed) through `publish` in publish.ts, and the
 * output the attempt completes with, naming the ref that holds its result. The staging branch
 * is deleted as soon as the merge landed, since nothing reads it after. A read-only task
 * publishes nothing, so what it changed fails it here instead of being dropped without a
 * word. Part of the workspace phases, loaded with _workspace_attempt.ts (never import it from
 * attempt.ts).
 *
 * @module
 */
import type { BodyResult, WorkspaceAttempt } from "./_attempt_state.ts";
import { type WorkspaceInput, workspaceOutput, type WorkspaceRefStyle } from "./_invoke.ts";
import { deleteStaging } from "./attempt_cleanup.ts";
import { ReadOnlyWorkspaceError } from "./errors.ts";
import { type PublicationKind, publish, type PublishTarget, type StagedCommit } from "./publish.ts";
import { diffSnapshots, type Snapshot, snapshotsEqual } from "./snapshot.ts";

/** The head commit of the target branch, for the publication's check. */
export async function readHead(ws: WorkspaceAttempt): Promise<string> {
  return (await ws.lakefs.getBranch(ws.input.repository, ws.input.branch, ws.state.signal))
    .commit_id;
}

/**
 * `publish`: the staged commit onto the target branch, or, with nothing staged, the input
 * ref confirmed as the output (see `publish` in publish.ts).
 */
export async function publishPhase(
  ws: WorkspaceAttempt,
  result: unknown,
  staged: StagedCommit | undefined,
  head?: Promise<string>,
): Promise<BodyResult> {
  const { state, lakefs, input } = ws;
  const { options, signal, log } = state;
  options.onPhase?.("publish");
  const target: PublishTarget = {
    repo: input.repository,
    branch: input.branch,
    inputRef: input.ref,
    scope: ws.scope,
    workflowInstanceId: options.attempt.workflowInstanceId,
    referenceTaskName: options.attempt.referenceTaskName,
    publishRequestTimeoutMs: budgetMs(
      options.task.controls.publishBudget?.lakefsMergeTimeoutSeconds,
    ),
  };
  const publication = await publish(lakefs, target, staged, signal, {
    ...(head === undefined ? {} : { head }),
    // Merged: the staging branch is of no further use, so it is deleted while the merge is
    // checked; the cleanup waits for that deletion instead of starting its own.
    onMerged: () => {
      state.stagingDeleted ??= deleteStaging(state);
    },
  });
  if (staged === undefined) {
    log.info("no workspace change; completed with {ref} ({kind})", { ...publication });
  } else {
    log.info("published {ref} to {branch} ({kind})", { ...publication, branch: input.branch });
  }
  return published(input, result, publication, options.refStyle);
}

/** Throws {@linkcode ReadOnlyWorkspaceError} naming what a read-only task changed. */
export function assertUnchanged(taskName: string, before: Snapshot, after: Snapshot): void {
  if (snapshotsEqual(before, after)) return;
  const diff = diffSnapshots(before, after);
  const paths = [
    ...diff.added.map((entry) => `+${entry.path}`),
    ...diff.changed.map((entry) => `~${entry.path}`),
    ...diff.removed.map((entry) => `-${entry.path}`),
  ];
  const shown = paths.slice(0, 5).join(", ") + (paths.length > 5 ? `, ... (${paths.length})` : "");
  throw new ReadOnlyWorkspaceError(
    `read-only task ${JSON.stringify(taskName)} changed its workspace (${shown}); ` +
      "write nothing, or drop readOnly so the changes are published",
  );
}

function published(
  input: WorkspaceInput,
  result: unknown,
  publication: { ref: string; kind: PublicationKind },
  refStyle: WorkspaceRefStyle | undefined,
): BodyResult {
  return {
    output: { workspace: workspaceOutput(input, publication.ref, refStyle), result },
    publishedRef: publication.ref,
    publication: publication.kind,
  };
}

function budgetMs(seconds: number | undefined): number | undefined {
  return seconds === undefined ? undefined : seconds * 1000;
}
