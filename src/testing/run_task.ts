/**
 * `runTask`: one attempt of a task in a unit test, through the production attempt
 * (`runAttempt`: input, params and result validation, guardrails, snapshots and change
 * detection, staging and publication, outcome mapping, reason cut) against an in-memory
 * lakeFS and a fence that always finds the attempt current. No server, no network.
 *
 * @module
 */
import type { z } from "../vendor/zod.ts";
import { checkRelativeKey } from "../workspace/safe_path.ts";
import { type AttemptIdentity, runAttempt } from "../workspace/attempt.ts";
import { alwaysCurrent } from "../workspace/fence.ts";
import { TASK_BRAND, type TaskDefinition } from "../task/types.ts";
import { type FileContent, MemoryLakeFs } from "./memory_lakefs.ts";

/** The Conductor identity a test may give its attempt (the rest is filled in). */
export interface RunTaskAttempt {
  /** @default "test-workflow" */
  workflowInstanceId?: string;
  /** @default "test-task" */
  taskId?: string;
  /** Which retry this attempt is (0 = first try). @default 0 */
  retryCount?: number;
  /** @default the task's name */
  referenceTaskName?: string;
}

/** Options of {@linkcode runTask}. */
export interface RunTaskOptions<P extends z.ZodType = z.ZodType> {
  /**
   * The repository before the attempt: repository path -> content (text is written as
   * UTF-8). Every path must lie under the task's prefix, since an attempt downloads nothing
   * else. Workspace tasks only. @default {}
   */
  files?: Readonly<Record<string, FileContent>>;
  /**
   * The task's `params` input, checked by its schema as in production (cast to test a bad
   * input). @default {}
   */
  params?: z.input<P>;
  /**
   * The input's `workspace.prefix`: narrows the attempt's scope below the task's prefix, as a
   * workflow does for one partition (`"data/part=07/"`). Files outside it stay on the branch
   * but are not downloaded. @default the task's prefix
   */
  prefix?: string;
  /** The attempt's Conductor ids, e.g. `{ retryCount: 1 }` to test a retry. */
  attempt?: RunTaskAttempt;
  /** `PERAGO_FAILURE_REASON_MAX_LENGTH`: the reason is cut to this. @default 500 */
  failureReasonMaxLength?: number;
  /** Cancels the attempt: the task sees it as `ctx.signal`. */
  signal?: AbortSignal;
}

/** What files a task added, changed and removed: repository paths, sorted. */
export interface TaskChanges {
  added: string[];
  changed: string[];
  removed: string[];
}

/** The outcome of {@linkcode runTask}. */
export interface TaskRun<R extends z.ZodType = z.ZodType> {
  /** The status Conductor would receive. */
  status: "COMPLETED" | "FAILED" | "FAILED_WITH_TERMINAL_ERROR";
  /** The validated result (COMPLETED only), as JSON would carry it. */
  result: z.output<R> | undefined;
  /** `reasonForIncompletion`: `<ErrorName>: <message>`, cut (failed attempts only). */
  reason: string | undefined;
  /**
   * What the attempt found changed in the workspace (writable tasks that got past their
   * guardrails); empty for read-only and workspace-free tasks. Published only when
   * `status` is COMPLETED.
   */
  changes: TaskChanges;
  /** The whole `outputData` (`{workspace, result}` or `{result}`), COMPLETED only. */
  output: Record<string, unknown> | undefined;
  /**
   * A file of the branch after the attempt, as UTF-8 text: what a following task would
   * download. `undefined` when there is no such file. A failed or read-only attempt leaves
   * the branch as `files` seeded it.
   */
  read(path: string): string | undefined;
  /** Like {@linkcode TaskRun.read}, as bytes. */
  readBytes(path: string): Uint8Array | undefined;
  /** Every file path of the branch after the attempt, sorted. */
  paths(): string[];
}

const REPOSITORY = "perago-test";
const BRANCH = "main";

function checkFiles(task: TaskDefinition, files: Readonly<Record<string, FileContent>>): void {
  const spec = task.workspace;
  const paths = Object.keys(files);
  if (spec === undefined) {
    if (paths.length > 0) {
      throw new TypeError(
        `runTask: task ${JSON.stringify(task.name)} has no workspace, so it takes params ` +
          "only; drop files",
      );
    }
    return;
  }
  for (const path of paths) {
    try {
      checkRelativeKey(path);
    } catch (error) {
      throw new TypeError(`runTask: ${(error as Error).message}`, { cause: error });
    }
    if (!path.startsWith(spec.prefix)) {
      throw new TypeError(
        `runTask: file ${JSON.stringify(path)} is outside the prefix ` +
          `${JSON.stringify(spec.prefix)} of task ${JSON.stringify(task.name)}: an attempt ` +
          "downloads only the prefix; give repository paths under it",
      );
    }
    const content = files[path];
    if (typeof content !== "string" && !(content instanceof Uint8Array)) {
      throw new TypeError(
        `runTask: file ${JSON.stringify(path)} must be a string or a Uint8Array`,
      );
    }
  }
}

function paths(entries: readonly { path: string }[] | undefined): string[] {
  return (entries ?? []).map((entry) => entry.path).sort((a, b) => a < b ? -1 : a > b ? 1 : 0);
}

/**
 * Runs one attempt of `task` the way a worker does, on a private temporary directory filled
 * from `files`, and returns what Conductor would receive plus what the attempt changed. The
 * directory is removed afterwards, also when the task fails or throws.
 *
 * The attempt is production's own: input and params validation, pre guardrails, `run`, result
 * validation, post guardrails; for writable tasks the snapshots, the staging branch, the fence
 * and the squash merge, all against an in-memory lakeFS. A `TaskTerminalError` or a failed pre
 * guardrail gives FAILED_WITH_TERMINAL_ERROR; anything else thrown, FAILED. A read-only task
 * that writes fails (`ReadOnlyWorkspaceError`): a worker would drop its writes silently.
 *
 * Requires `--allow-read` and `--allow-write` on the temporary directory (and read of the
 * task's modules); no network, no environment.
 *
 * @throws {TypeError} for a `task` not made by `defineTask`, `files` outside the task's
 *   prefix, or `files` given to a workspace-free task.
 * @example
 * ```ts
 * import { defineTask, z } from "perago";
 * import { runTask } from "perago/testing";
 *
 * const normalize = defineTask({
 *   name: "normalize", ownerEmail: "docs@example.com", description: "CRLF to LF in docs/a.txt",
 *   params: z.object({}), result: z.object({}), workspace: { prefix: "docs/" },
 *   async run(_params, ctx) {
 *     const path = `${ctx.workspace}/docs/a.txt`;
 *     await Deno.writeTextFile(path, (await Deno.readTextFile(path)).replaceAll("\r\n", "\n"));
 *     return {};
 *   },
 * });
 * const run = await runTask(normalize, { files: { "docs/a.txt": "a\r\n" } });
 * run.status; // "COMPLETED"
 * run.changes.changed; // ["docs/a.txt"]
 * run.read("docs/a.txt"); // "a\n"
 * ```
 */
export async function runTask<P extends z.ZodType, R extends z.ZodType>(
  task: TaskDefinition<P, R>,
  options: RunTaskOptions<P> = {},
): Promise<TaskRun<R>> {
  if (typeof task !== "object" || task === null || task[TASK_BRAND] !== true) {
    throw new TypeError(
      "runTask: the first argument must be a task made by defineTask (a task module's " +
        "default export)",
    );
  }
  const definition = task as unknown as TaskDefinition;
  if (options.prefix !== undefined && definition.workspace === undefined) {
    throw new TypeError(
      `runTask: task ${JSON.stringify(definition.name)} has no workspace, so it takes no ` +
        "prefix; drop prefix",
    );
  }
  const files = options.files ?? {};
  checkFiles(definition, files);
  const lakefs = new MemoryLakeFs();
  const input = await taskInput(definition, lakefs, files, options);
  const attempt = attemptIdentity(definition, options);
  const workspaceRoot = await Deno.makeTempDir({ prefix: "perago-test-" });
  try {
    const outcome = await runAttempt({
      task: definition,
      input,
      attempt,
      workspaceRoot,
      ownerWorkerId: "perago-test",
      failureReasonMaxLength: options.failureReasonMaxLength ?? 500,
      lakefs,
      // No Conductor: this attempt owns its task for as long as it runs.
      loadCurrentAttempt: alwaysCurrent(attempt),
      verifyReadOnly: true,
      ...(options.signal === undefined ? {} : { signal: options.signal }),
    });
    const readBytes = (path: string) =>
      definition.workspace === undefined ? undefined : lakefs.readFile(REPOSITORY, BRANCH, path);
    return {
      status: outcome.status,
      result: outcome.outputData?.result as z.output<R> | undefined,
      reason: outcome.reasonForIncompletion,
      changes: {
        added: paths(outcome.changes?.added),
        changed: paths(outcome.changes?.changed),
        removed: paths(outcome.changes?.removed),
      },
      output: outcome.outputData,
      read(path) {
        const bytes = readBytes(path);
        return bytes === undefined ? undefined : new TextDecoder().decode(bytes);
      },
      readBytes,
      paths: () => definition.workspace === undefined ? [] : lakefs.listPaths(REPOSITORY, BRANCH),
    };
  } finally {
    await Deno.remove(workspaceRoot, { recursive: true });
  }
}

/**
 * The Conductor task input of the run: the params, and for a workspace task the workspace
 * reference of `files` committed to a fresh in-memory repository.
 */
async function taskInput(
  definition: TaskDefinition,
  lakefs: MemoryLakeFs,
  files: Readonly<Record<string, FileContent>>,
  options: RunTaskOptions<z.ZodType>,
): Promise<Record<string, unknown>> {
  const params = options.params ?? {};
  if (definition.workspace === undefined) return { params };
  const seeded = await lakefs.seedRepository(REPOSITORY, files, { branch: BRANCH });
  return {
    workspace: {
      repository: REPOSITORY,
      branch: BRANCH,
      ref_type: "commit",
      ref: seeded.id,
      ...(options.prefix === undefined ? {} : { prefix: options.prefix }),
    },
    params,
  };
}

/** The attempt's identity: the first try of a test task unless `options.attempt` says else. */
function attemptIdentity(
  definition: TaskDefinition,
  options: RunTaskOptions<z.ZodType>,
): AttemptIdentity {
  return {
    workflowInstanceId: options.attempt?.workflowInstanceId ?? "test-workflow",
    taskId: options.attempt?.taskId ?? "test-task",
    retryCount: options.attempt?.retryCount ?? 0,
    referenceTaskName: options.attempt?.referenceTaskName ?? definition.name,
    seq: 1,
    iteration: 0,
    taskDefName: definition.name,
  };
}
