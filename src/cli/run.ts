// deno-lint-ignore-file no-console
/**
 * `perago run <module> --input file.json [--dry-run]`: one local attempt of a task, without
 * Conductor (synthetic ids; the fence always finds the attempt current). Useful while writing
 * a task, and with `--dry-run` to see what a run would change without writing to lakeFS.
 *
 * @module
 */
import {
  configSecrets,
  loadRuntimeConfig,
  readProcessEnv,
  type RuntimeConfig,
} from "../config/config.ts";
import { moduleStem, resolveWorkerId } from "../config/worker_id.ts";
import type { LakeFsApi } from "../lakefs/api.ts";
import { LakeFsClient } from "../lakefs/client.ts";
import { ObjectCache, objectCacheDir } from "../lakefs/object_cache.ts";
import { WarmPool } from "../workspace/warm_pool.ts";
import { getLogger } from "../log/logger.ts";
import { setupLogging } from "../log/setup.ts";
import { loadTask } from "../task/loader.ts";
import {
  type AttemptIdentity,
  type AttemptOutcome,
  preloadWorkspacePhases,
  resolveInputRef,
  runAttempt,
} from "../workspace/attempt.ts";
import { countingLakeFs } from "../runtime/counting_lakefs.ts";
import { alwaysCurrent } from "../workspace/fence.ts";
import { trashedDirsRemoved } from "../workspace/attempt_dir.ts";
import { parseCommandArgs } from "./_args.ts";
import { startProgress } from "./_progress.ts";
import { UsageError } from "./_fail.ts";
import type { Command } from "./_command.ts";

const HELP = `Usage: perago run <module> --input <file.json> [--dry-run]

Runs one local attempt of the task in <module>, as a worker would for a Conductor task,
but without Conductor: the attempt gets local ids and its fence always passes.

The input file holds the Conductor task input:
  workspace tasks:       {"workspace": {"repository", "branch", "ref_type": "commit",
                          "ref"}, "params": {...}}  ("refType" instead of "ref_type"
                          also works, as perago for Python writes it)
  workspace-free tasks:  {"params": {...}}
A missing "workspace.ref" means the head commit of "workspace.branch".

A writable workspace task downloads its prefix, runs, and publishes its changes to the
branch (staging branch, squash merge), exactly as under "perago start".

Options:
  -i, --input <file>  the task input (JSON); required
      --dry-run       run the task but write nothing to lakeFS (no staging branch, no
                      commit); print what would be added, changed and removed
  -h, --help          show this help

Prints the outcome (status, published ref, result JSON, changes) on stdout; logs go to
stderr and to the JSONL log under PERAGO_LOG_ROOT. Exit code 0 when the attempt
COMPLETED, 1 otherwise. Ctrl-C cancels the attempt (it still cleans up).`;

async function readInput(path: string): Promise<unknown> {
  let text: string;
  try {
    text = await Deno.readTextFile(path);
  } catch (error) {
    throw new UsageError(
      `run: cannot read the input file ${path}: ${(error as Error).message}; check the path`,
    );
  }
  try {
    return JSON.parse(text);
  } catch (error) {
    throw new UsageError(
      `run: the input file ${path} is not valid JSON: ${(error as Error).message}`,
    );
  }
}

function formatSize(bytes: number): string {
  return bytes === 1 ? "1 byte" : `${bytes} bytes`;
}

/** Prints an outcome for people (stdout). */
function printOutcome(outcome: AttemptOutcome, dryRun: boolean, writable: boolean): void {
  console.log(`status: ${outcome.status}${dryRun ? " (dry run)" : ""}`);
  if (outcome.reasonForIncompletion !== undefined) {
    console.log(`reason: ${outcome.reasonForIncompletion}`);
  }
  if (outcome.publishedRef !== undefined) {
    const label = dryRun ? "input ref (nothing published)" : "published ref";
    console.log(`${label}: ${outcome.publishedRef}`);
  }
  if (outcome.changes !== undefined && (dryRun || writable)) {
    const { added, changed, removed } = outcome.changes;
    const total = added.length + changed.length + removed.length;
    const verb = dryRun ? "would change" : "changes";
    const summary = total === 0
      ? "none"
      : `${added.length} added, ${changed.length} changed, ${removed.length} removed`;
    console.log(`${verb}: ${summary}`);
    for (const entry of added) console.log(`  + ${entry.path} (${formatSize(entry.size)})`);
    for (const entry of changed) console.log(`  ~ ${entry.path} (${formatSize(entry.size)})`);
    for (const entry of removed) console.log(`  - ${entry.path} (${formatSize(entry.size)})`);
  }
  if (outcome.outputData !== undefined) {
    console.log(`result: ${JSON.stringify(outcome.outputData.result ?? null, null, 2)}`);
  }
  console.log(`duration: ${outcome.durationMs} ms`);
}

/**
 * lakeFS for a workspace task, counting what moves for the progress line.
 *
 * @throws {UsageError} when lakeFS is not configured.
 */
function localLakeFs(
  config: RuntimeConfig,
  taskName: string,
  progress: ReturnType<typeof startProgress>,
): LakeFsApi {
  if (config.lakefs === undefined) {
    throw new UsageError(
      `run: task ${JSON.stringify(taskName)} is a workspace task and needs lakeFS: set ` +
        "LAKECTL_SERVER_ENDPOINT_URL, LAKECTL_CREDENTIALS_ACCESS_KEY_ID and " +
        "LAKECTL_CREDENTIALS_SECRET_ACCESS_KEY (in .env or the environment)",
    );
  }
  return countingLakeFs(
    new LakeFsClient({
      endpointUrl: config.lakefs.endpointUrl,
      accessKeyId: config.lakefs.accessKeyId,
      secretAccessKey: config.lakefs.secretAccessKey,
    }),
    { onTransfer: (counts) => progress.counts(counts) },
  ).api;
}

/** The input with its `workspace.ref` resolved (a missing ref is the branch's head). */
async function withInputRef(
  lakefs: LakeFsApi,
  input: unknown,
  signal: AbortSignal,
): Promise<unknown> {
  const workspace = workspaceOf(input);
  if (workspace === undefined) return input;
  return {
    ...(input as Record<string, unknown>),
    workspace: await resolveInputRef(lakefs, workspace, signal),
  };
}

/**
 * The head commit of the input's branch when its `workspace.ref` is missing, read before the
 * task is known to need it; `undefined` when there is nothing to read or the read failed
 * (`withInputRef` then reads it again and reports the failure).
 */
async function readHeadEarly(config: RuntimeConfig, input: unknown): Promise<string | undefined> {
  const workspace = workspaceOf(input);
  if (
    config.lakefs === undefined || workspace === undefined ||
    (workspace.ref !== undefined && workspace.ref !== null) ||
    typeof workspace.repository !== "string" || typeof workspace.branch !== "string"
  ) {
    return undefined;
  }
  // One short try: any failure is left to the read that follows, with its retries.
  const client = new LakeFsClient({
    endpointUrl: config.lakefs.endpointUrl,
    accessKeyId: config.lakefs.accessKeyId,
    secretAccessKey: config.lakefs.secretAccessKey,
    requestTimeoutMs: 5_000,
    retry: { attempts: 1 },
  });
  try {
    return (await client.getBranch(workspace.repository, workspace.branch)).commit_id;
  } catch {
    return undefined;
  }
}

/** The input's `workspace` object, if it has one. */
function workspaceOf(input: unknown): Record<string, unknown> | undefined {
  if (typeof input !== "object" || input === null || Array.isArray(input)) return undefined;
  const workspace = (input as Record<string, unknown>).workspace;
  return typeof workspace === "object" && workspace !== null && !Array.isArray(workspace)
    ? workspace as Record<string, unknown>
    : undefined;
}

/** The input with `head` as its `workspace.ref` (unchanged without a head). */
function withRef(input: unknown, head: string | undefined): unknown {
  const workspace = workspaceOf(input);
  if (head === undefined || workspace === undefined) return input;
  return { ...(input as Record<string, unknown>), workspace: { ...workspace, ref: head } };
}

/** The identity of a local attempt: fresh `local-` ids, retry 0. */
function localAttempt(taskName: string): AttemptIdentity {
  const local = crypto.randomUUID().replaceAll("-", "").slice(0, 12);
  return {
    workflowInstanceId: `local-${local}`,
    taskId: `local-${local}`,
    retryCount: 0,
    referenceTaskName: taskName,
    seq: 0,
    iteration: 0,
    taskDefName: taskName,
  };
}

/** `perago run`. */
export const command: Command = {
  help: HELP,
  async run(args) {
    const { positionals, values } = parseCommandArgs("run", args, {
      input: { type: "string", short: "i" },
      "dry-run": { type: "boolean", default: false },
    });
    if (positionals.length !== 1) {
      throw new UsageError('run: expected exactly one task module; run "perago run --help"');
    }
    if (values.input === undefined) {
      throw new UsageError('run: --input <file.json> is required; run "perago run --help"');
    }
    const moduleTarget = positionals[0]!;
    const dryRun = values["dry-run"] === true;
    const config = await loadRuntimeConfig(moduleTarget);
    // The input is read, and the head of its branch asked for, while the task module loads
    // and logging starts; errors are reported in the same order as before (task, input).
    const inputRead = readInput(values.input);
    inputRead.catch(() => {}); // awaited below
    const headRead = inputRead.then((read) => readHeadEarly(config, read), () => undefined);
    const { task } = await loadTask(moduleTarget);
    // The attempt's workspace code loads while logging starts and the head read finishes.
    if (task.workspace !== undefined) preloadWorkspacePhases();
    let input = await inputRead;

    const workerId = resolveWorkerId(moduleTarget, readProcessEnv());
    // At a terminal: the phase and what moved, on one line under the log lines.
    const progress = startProgress(task.name);
    const logging = await setupLogging({
      ...(progress.active ? { consoleWrite: (bytes: Uint8Array) => progress.write(bytes) } : {}),
      logRoot: config.logRoot,
      moduleName: moduleStem(moduleTarget),
      workerId,
      maxFileBytes: config.logFileMaxSizeBytes,
      retentionMs: config.logRetentionMs,
      secrets: configSecrets(config),
      level: config.debug ? "debug" : "info",
    });
    const controller = new AbortController();
    const onSignal = () => controller.abort(new Error("interrupted (SIGINT)"));
    Deno.addSignalListener("SIGINT", onSignal);
    try {
      const lakefs = task.workspace === undefined
        ? undefined
        : localLakeFs(config, task.name, progress);
      if (lakefs !== undefined) {
        input = withRef(input, await headRead);
        input = await withInputRef(lakefs, input, controller.signal);
      }
      const attempt = localAttempt(task.name);
      // The host's object cache: a re-run copies what an earlier run (or a worker on this
      // workspace root) already downloaded.
      const downloadCache = config.objectCacheMaxBytes > 0 && lakefs !== undefined
        ? new ObjectCache({
          dir: objectCacheDir(config.workspaceRoot),
          maxBytes: config.objectCacheMaxBytes,
          onError: (message) => getLogger("run").warn("object cache: {message}", { message }),
        })
        : undefined;
      // The warm pool: a re-run starts from the directory an earlier run left (this process
      // holds its own until it exits, when no code of its task can run any more).
      const warmPool = config.warmPoolDirs > 0 && lakefs !== undefined
        ? new WarmPool({
          root: config.workspaceRoot,
          maxDirs: config.warmPoolDirs,
          maxBytes: config.warmPoolMaxBytes,
          onError: (message) => getLogger("run").warn("{message}", { message }),
          // This process's exit waits for the retirement: reads are left to the next run, and
          // the directory is described while the publication waits on lakeFS.
          readAtClaim: true,
          describeWhilePublishing: true,
        })
        : undefined;
      const outcome = await runAttempt({
        task,
        input,
        attempt,
        workspaceRoot: config.workspaceRoot,
        ownerWorkerId: workerId,
        failureReasonMaxLength: config.failureReasonMaxLength,
        ...(lakefs === undefined ? {} : { lakefs }),
        ...(downloadCache === undefined ? {} : { downloadCache }),
        ...(warmPool === undefined ? {} : { warmPool }),
        // No Conductor: the local attempt is always the current one.
        loadCurrentAttempt: alwaysCurrent(attempt),
        signal: controller.signal,
        dryRun,
        refStyle: config.workspaceRefStyle,
        onPhase: (phase) => progress.phase(phase),
        // The outcome is printed first; the process exits once the directory is gone.
        removeDirInBackground: true,
      });
      progress.stop();
      printOutcome(outcome, dryRun, task.workspace !== undefined && !task.workspace.readOnly);
      await trashedDirsRemoved();
      return outcome.status === "COMPLETED" ? 0 : 1;
    } finally {
      progress.stop();
      Deno.removeSignalListener("SIGINT", onSignal);
      await logging.dispose();
    }
  },
};
