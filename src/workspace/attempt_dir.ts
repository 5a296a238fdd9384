/**
 * The private directory of one attempt: `<root>/task_id=<seg>-exec=<seg>`, created fresh with
 * mode 0700 and a marker file naming its owner, and removed only when the marker is there.
 *
 * @module
 */
import { z } from "../vendor/zod.ts";
import type { WorkspaceOwner } from "./owners.ts";
import { isoUtc } from "../util/iso_time.ts";
import { basename, join } from "../util/path.ts";

/** The marker file's name; never downloaded over, never uploaded, never snapshotted. */
export const ATTEMPT_MARKER = ".perago-attempt.json";

/**
 * The folder under the workspace root where attempt directories wait for their removal in
 * the background (see {@linkcode trashAttemptDir}).
 */
export const TRASH_DIR_NAME = ".perago-trash";

/** Longest sanitised id segment in a directory name. */
const MAX_SEGMENT = 80;

/** The ids an attempt directory is made for. */
export interface AttemptDirIds {
  readonly workflowInstanceId: string;
  readonly taskId: string;
  readonly executionId: string;
  readonly retryCount: number;
  readonly taskDefName: string;
}

/**
 * The marker's content. Its keys are snake_case: the marker is an on-disk format that
 * operators and their tools read, kept stable whatever the code's own naming. Built on first
 * use: an executor imports this module before its first attempt, which reads no marker.
 */
export const attemptMarkerSchema = z.lazy(() =>
  z.object({
    workflow_instance_id: z.string(),
    task_id: z.string(),
    execution_id: z.string(),
    retry_count: z.number().int(),
    task_def_name: z.string(),
    owner_worker_id: z.string(),
    owner_pid: z.number().int(),
    owner_token: z.string(),
    started_at: z.string(),
    /**
     * The staging branch (and its repository), recorded just before the attempt creates it:
     * whoever collects the directory of an attempt whose process died deletes that branch.
     */
    staging_repository: z.string().optional(),
    staging_branch: z.string().optional(),
  })
);

/** The marker's content. */
export type AttemptMarker = z.infer<typeof attemptMarkerSchema>;

function segment(value: string): string {
  const cleaned = value.replace(/[^A-Za-z0-9_.-]/g, "_").slice(0, MAX_SEGMENT);
  // A segment of dots only would be harmless after the "task_id=" prefix, but keep names tame.
  return cleaned === "" || /^\.+$/.test(cleaned) ? "_" : cleaned;
}

/**
 * The attempt directory's name: `task_id=<seg>-exec=<seg>`, each segment reduced to
 * `[A-Za-z0-9_.-]` (other characters become `_`) and at most 80 characters.
 *
 * @example
 * ```ts
 * attemptDirName("t/1", "e1"); // "task_id=t_1-exec=e1"
 * ```
 */
export function attemptDirName(taskId: string, executionId: string): string {
  return `task_id=${segment(taskId)}-exec=${segment(executionId)}`;
}

/**
 * Creates the attempt directory under `root` (creating `root` if needed): fresh (an existing
 * directory of that name is an error), mode 0700, holding the marker. Returns its absolute
 * path. `adopt`, when given, may move a directory onto that path instead of creating it (and
 * says whether it did): it gets the same mode and a fresh marker.
 *
 * Requires `--allow-read` and `--allow-write` on `root`.
 *
 * @example
 * ```ts
 * import { newOwner } from "./owners.ts";
 *
 * const root = await Deno.makeTempDir();
 * const ids = {
 *   workflowInstanceId: "wf1", taskId: "t1", executionId: "e1", retryCount: 0,
 *   taskDefName: "normalize",
 * };
 * const dir = await prepareAttemptDir(root, ids, newOwner("w1")); // `${root}/task_id=t1-exec=e1`
 * ```
 */
export async function prepareAttemptDir(
  root: string,
  ids: AttemptDirIds,
  owner: WorkspaceOwner,
  options: { adopt?: (dir: string) => Promise<boolean> } = {},
): Promise<string> {
  await Deno.mkdir(root, { recursive: true });
  const dir = join(await Deno.realPath(root), attemptDirName(ids.taskId, ids.executionId));
  try {
    if (options.adopt !== undefined && await options.adopt(dir)) {
      // A directory moved here whole (the warm pool): whatever has the marker's name goes.
      await Deno.remove(join(dir, ATTEMPT_MARKER), { recursive: true }).catch((error) => {
        if (!(error instanceof Deno.errors.NotFound)) throw error;
      });
    } else {
      await Deno.mkdir(dir, { mode: 0o700 });
    }
  } catch (error) {
    if (error instanceof Deno.errors.AlreadyExists) {
      throw new Error(
        `attempt directory ${dir} already exists: another attempt with the same execution ` +
          "id ran here; use a fresh execution id",
        { cause: error },
      );
    }
    throw error;
  }
  await Deno.chmod(dir, 0o700);
  const marker: AttemptMarker = {
    workflow_instance_id: ids.workflowInstanceId,
    task_id: ids.taskId,
    execution_id: ids.executionId,
    retry_count: ids.retryCount,
    task_def_name: ids.taskDefName,
    owner_worker_id: owner.workerId,
    owner_pid: owner.pid,
    owner_token: owner.token,
    started_at: isoUtc(Date.now()),
  };
  await Deno.writeTextFile(join(dir, ATTEMPT_MARKER), JSON.stringify(marker, null, 2) + "\n", {
    createNew: true,
    mode: 0o600,
  });
  return dir;
}

/**
 * Records in the marker of `dir` the staging branch the attempt is about to create, so that
 * if the process dies before its own cleanup, whoever collects the directory deletes the
 * branch. The marker is replaced atomically (written beside it, then renamed).
 *
 * The file operations are synchronous (a few on a small file): the attempt rewrites the
 * marker while the snapshot after the task reads files in slices of the event loop, and an
 * async operation waits for a slice's end at each step (six steps held the staging branch
 * back by 7-16 ms in a run of 1,000 files). A task that could block them (a FIFO swapped in
 * for the marker) runs on the same event loop and could block it anyway.
 *
 * Requires `--allow-read` and `--allow-write` on `dir`.
 *
 * @example
 * ```ts
 * import { newOwner } from "./owners.ts";
 * const ids = { workflowInstanceId: "wf1", taskId: "t1", executionId: "e1", retryCount: 0 };
 * const dir = await prepareAttemptDir(await Deno.makeTempDir(), {
 *   ...ids,
 *   taskDefName: "step",
 * }, newOwner("w1"));
 * const branch = "perago-staging-wf1-step-seq-1-iteration-0-task-id-t1-retry-0-exec-e1";
 * await recordStagingBranch(dir, "lake", branch); // then: lakefs.createBranch("lake", branch, ref)
 * console.assert((await readMarker(dir))?.staging_branch === branch);
 * ```
 */
export function recordStagingBranch(
  dir: string,
  repository: string,
  branch: string,
): Promise<void> {
  try {
    recordStagingBranchSync(dir, repository, branch);
    return Promise.resolve();
  } catch (error) {
    return Promise.reject(error);
  }
}

function recordStagingBranchSync(dir: string, repository: string, branch: string): void {
  const marker = readMarkerSync(dir);
  if (marker === undefined) {
    throw new Error(`attempt directory ${dir} has no marker; it was removed under the attempt`);
  }
  const updated: AttemptMarker = {
    ...marker,
    staging_repository: repository,
    staging_branch: branch,
  };
  // Never write through whatever already has that name (a link the task made): remove it
  // (a link itself, never its target) and create the file afresh.
  const next = join(dir, `${ATTEMPT_MARKER}.next`);
  try {
    Deno.removeSync(next);
  } catch (error) {
    if (!(error instanceof Deno.errors.NotFound)) throw error;
  }
  Deno.writeTextFileSync(next, JSON.stringify(updated, null, 2) + "\n", {
    createNew: true,
    mode: 0o600,
  });
  Deno.renameSync(next, join(dir, ATTEMPT_MARKER));
}

/**
 * Reads and validates the marker of `dir`; `undefined` when there is none (or `dir` is not a
 * real directory). A marker that is not a regular file, or is malformed, is an error.
 */
export async function readMarker(dir: string): Promise<AttemptMarker | undefined> {
  const path = join(dir, ATTEMPT_MARKER);
  let info: Deno.FileInfo;
  try {
    const dirInfo = await Deno.lstat(dir);
    if (!dirInfo.isDirectory) return undefined;
    info = await Deno.lstat(path);
  } catch (error) {
    if (error instanceof Deno.errors.NotFound) return undefined;
    throw error;
  }
  assertMarkerFile(path, info);
  return parseMarker(path, await Deno.readTextFile(path));
}

/** {@linkcode readMarker} with synchronous file operations (see `recordStagingBranch`). */
function readMarkerSync(dir: string): AttemptMarker | undefined {
  const path = join(dir, ATTEMPT_MARKER);
  let info: Deno.FileInfo;
  try {
    if (!Deno.lstatSync(dir).isDirectory) return undefined;
    info = Deno.lstatSync(path);
  } catch (error) {
    if (error instanceof Deno.errors.NotFound) return undefined;
    throw error;
  }
  assertMarkerFile(path, info);
  return parseMarker(path, Deno.readTextFileSync(path));
}

/** Throws unless the marker's `lstat` is a regular file's (never read a FIFO or a link). */
function assertMarkerFile(path: string, info: Deno.FileInfo): void {
  if (!info.isFile) {
    throw new Error(`attempt marker ${path} is not a regular file; remove it by hand`);
  }
}

/** The marker in `text`, read from `path`; a malformed one is an error. */
function parseMarker(path: string, text: string): AttemptMarker {
  const parsed = attemptMarkerSchema.safeParse(JSON.parse(text));
  if (!parsed.success) {
    throw new Error(`attempt marker ${path} is malformed: ${z.prettifyError(parsed.error)}`);
  }
  return parsed.data;
}

/**
 * Removes an attempt directory, safely: only a real directory (never a symlink) that holds a
 * marker, and, when `expectedToken` is given, only if the marker names that owner token.
 * Links inside are removed, never followed. Returns whether it removed anything.
 *
 * Requires `--allow-read` and `--allow-write` on the directory.
 */
export async function removeAttemptDir(
  dir: string,
  options: { expectedToken?: string } = {},
): Promise<boolean> {
  let info: Deno.FileInfo;
  try {
    info = await Deno.lstat(dir);
  } catch (error) {
    if (error instanceof Deno.errors.NotFound) return false;
    throw error;
  }
  if (!info.isDirectory) return false;
  let marker: AttemptMarker | undefined;
  try {
    marker = await readMarker(dir);
  } catch {
    return false;
  }
  if (marker === undefined) return false;
  if (options.expectedToken !== undefined && marker.owner_token !== options.expectedToken) {
    return false;
  }
  await Deno.remove(dir, { recursive: true });
  return true;
}

/** Removals of trashed attempt directories still running in this process. */
const pendingRemovals = new Set<Promise<void>>();

/**
 * Takes an attempt directory off the attempt's critical path: renames it (one syscall,
 * whatever it holds) to `<root>/.perago-trash/<pid>-<name>` and removes it there in the
 * background; {@linkcode trashedDirsRemoved} waits for those removals. Nothing is lost (the
 * directory is only ever removed) and nothing leaks: a process that dies before its removal
 * ends leaves an entry named by its pid, which the workspace GC removes once that pid is
 * gone (`sweepAttemptDirs` in src/runtime/gc.ts). `dir` must be a directory of `root`
 * (same filesystem) that the caller owns; failures of the background removal go to
 * `onError`.
 *
 * Requires `--allow-read` and `--allow-write` on `root`.
 */
export async function trashAttemptDir(
  root: string,
  dir: string,
  onError: (error: unknown) => void = () => {},
): Promise<void> {
  const trash = join(root, TRASH_DIR_NAME);
  const name = `${Deno.pid}-${crypto.randomUUID().slice(0, 8)}-${basename(dir)}`;
  const target = join(trash, name);
  await renameIntoTrash(dir, trash, target);
  runInBackground(
    Deno.remove(target, { recursive: true })
      .then(() => removeTrashIfEmpty(trash))
      .catch((error) => {
        if (!(error instanceof Deno.errors.NotFound)) onError(error);
      }),
  );
}

/**
 * Renames `dir` to `target` in the `trash` folder, making the folder first. Another removal
 * that ends meanwhile removes the folder once it is empty, so the rename can find it gone:
 * then the folder is made again (a few times), as long as `dir` is still there.
 *
 * Requires `--allow-read` and `--allow-write` on both folders.
 */
export function renameIntoTrash(dir: string, trash: string, target: string): Promise<void> {
  // Synchronous: two short operations, which an exiting perago run waits for.
  for (let round = 1;; round++) {
    try {
      Deno.mkdirSync(trash, { recursive: true, mode: 0o700 });
      Deno.renameSync(dir, target);
      return Promise.resolve();
    } catch (error) {
      const trashGone = error instanceof Deno.errors.NotFound &&
        round < TRASH_RENAME_ROUNDS && exists(dir);
      if (!trashGone) return Promise.reject(error);
    }
  }
}

/** Whether `path` names anything (a link itself counts). */
function exists(path: string): boolean {
  try {
    Deno.lstatSync(path);
    return true;
  } catch {
    return false;
  }
}

/** How many times a rename into the trash is tried while the trash folder keeps vanishing. */
const TRASH_RENAME_ROUNDS = 5;

/**
 * Removes the `trash` folder when it is empty (a non-recursive remove refuses one that is
 * not; nothing is reported). Whoever empties it last takes it away; a process renaming into
 * it meanwhile makes it again ({@linkcode renameIntoTrash}).
 */
export function removeTrashIfEmpty(trash: string): Promise<void> {
  // Synchronous: one short operation, which an exiting perago run waits for.
  try {
    Deno.removeSync(trash);
  } catch { /* not empty, or gone */ }
  return Promise.resolve();
}

/**
 * Counts `work` (which must not reject) among the background work of attempt directories
 * that {@linkcode trashedDirsRemoved} waits for (removals, the warm pool's retirements).
 */
export function runInBackground(work: Promise<void>): void {
  const tracked: Promise<void> = work.finally(() => pendingRemovals.delete(tracked));
  pendingRemovals.add(tracked);
}

/**
 * Resolves when every removal {@linkcode trashAttemptDir} started in this process has ended,
 * and every warm pool retirement (a process about to exit waits for it; tests check an empty
 * workspace root after it).
 */
export async function trashedDirsRemoved(): Promise<void> {
  while (pendingRemovals.size > 0) await Promise.all([...pendingRemovals]);
}
