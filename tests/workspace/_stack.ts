/**
 * Workspace test stack: a {@linkcode TestStack} without Conductor (an in-process demo lakeFS,
 * or a real one), a client for it, a repository with seeded content, and a temp workspace
 * root; everything closed by `close()` or `await using`.
 */
import { join } from "node:path";
import type { FaultInjector } from "../../src/devstack/faults.ts";
import type { LakeFsServerHandle } from "../../src/devstack/lakefs/server.ts";
import { LakeFsClient } from "../../src/lakefs/client.ts";
import { LakeFsProtectedBranchError } from "../../src/lakefs/errors.ts";
import type {
  AttemptIdentity,
  AttemptOptions,
  CurrentTaskState,
} from "../../src/workspace/attempt.ts";
import { forEachConcurrent } from "../../src/util/pool.ts";
import type { RealLakeFs } from "../_real_servers.ts";
import { TestStack } from "../_stack.ts";

/** A repository on some lakeFS (demo or real), a client for it and a temp workspace root. */
export interface LakeStack extends AsyncDisposable {
  lakefs: LakeFsClient;
  repo: string;
  /** Temp dir holding the workspace root (`root`) and anything else a test wants. */
  tmp: string;
  root: string;
  /** Where the lakeFS is and the keys to it (for calls the client does not make). */
  access: { url: string; accessKeyId: string; secretAccessKey: string };
  close(): Promise<void>;
}

/** A {@linkcode LakeStack} on an in-process demo lakeFS, whose request counts tests read. */
export interface Stack extends LakeStack {
  server: LakeFsServerHandle;
}

let repoCounter = 0;

/** A {@linkcode LakeStack} on a fresh demo lakeFS (with `faults`, retrying `attempts` times). */
export async function startStack(
  options: { faults?: FaultInjector; attempts?: number } = {},
): Promise<Stack> {
  const base = await TestStack.start({
    dirPrefix: "perago-ws-test-",
    conductor: false,
    lakefs: {
      accessKeyId: "AKIATEST",
      secretAccessKey: "s3cr3t",
      ...(options.faults ? { faults: options.faults } : {}),
    },
  });
  // Faults off before the server closes, however the test ends.
  base.defer(() => options.faults?.reset());
  const stack = await lakeStackOn(base, {
    repo: `repo-${++repoCounter}-${crypto.randomUUID().slice(0, 8)}`,
    retry: { attempts: options.attempts ?? 3, baseDelayMs: 2, maxDelayMs: 20 },
  });
  return { ...stack, server: base.lakefsServer! };
}

/**
 * A fresh repository on a real lakeFS (`tests/_real_servers.ts`), with the same helpers as a
 * demo stack; the repository is deleted on close.
 */
export async function startRealStack(target: RealLakeFs): Promise<LakeStack> {
  const base = await TestStack.start({
    dirPrefix: "perago-ws-test-",
    servers: { lakefs: target },
    conductor: false,
  });
  return await lakeStackOn(base, { retry: { attempts: 3, baseDelayMs: 20, maxDelayMs: 200 } });
}

async function lakeStackOn(
  base: TestStack,
  options: { repo?: string; retry: { attempts: number; baseDelayMs: number; maxDelayMs: number } },
): Promise<LakeStack> {
  try {
    const repo = await base.createRepository(
      "ws-test",
      options.repo === undefined ? {} : { name: options.repo },
    );
    const lakefs = new LakeFsClient({
      endpointUrl: base.lakefs.url,
      accessKeyId: base.lakefs.accessKeyId,
      secretAccessKey: base.lakefs.secretAccessKey,
      retry: options.retry,
    });
    return {
      lakefs,
      repo,
      tmp: base.dir,
      root: join(base.dir, "ws"),
      access: {
        url: base.lakefs.url,
        accessKeyId: base.lakefs.accessKeyId,
        secretAccessKey: base.lakefs.secretAccessKey,
      },
      close: () => base.close(),
      [Symbol.asyncDispose]: () => base.close(),
    };
  } catch (error) {
    await base.close();
    throw error;
  }
}

/** Uploads `files` to `branch` (default main) and commits; returns the commit id. */
export async function seed(
  stack: LakeStack,
  files: Record<string, string | Uint8Array>,
  options: { branch?: string; deletes?: string[]; message?: string; concurrency?: number } = {},
): Promise<string> {
  const branch = options.branch ?? "main";
  const encoder = new TextEncoder();
  await forEachConcurrent(Object.entries(files), options.concurrency ?? 16, async ([path, c]) => {
    const bytes = typeof c === "string" ? encoder.encode(c) : c;
    await stack.lakefs.uploadObject(stack.repo, branch, path, () => Promise.resolve(bytes), {
      size: bytes.length,
    });
  });
  if (options.deletes?.length) {
    await stack.lakefs.deleteObjects(stack.repo, branch, options.deletes);
  }
  const commit = await stack.lakefs.commit(stack.repo, branch, options.message ?? "seed");
  return commit.id;
}

/** Reads every object under `prefix` at `ref` as text. */
export async function readTree(
  stack: LakeStack,
  ref: string,
  prefix = "",
): Promise<Record<string, string>> {
  const out: Record<string, string> = {};
  for await (const entry of stack.lakefs.listObjects(stack.repo, ref, { prefix })) {
    if (entry.path_type !== "object") continue;
    const body = await stack.lakefs.getObject(stack.repo, ref, entry.path);
    out[entry.path] = await new Response(body).text();
  }
  return out;
}

/** Names of every branch of the repository. */
export async function branchNames(stack: LakeStack): Promise<string[]> {
  const names = await Array.fromAsync(stack.lakefs.listBranches(stack.repo), (ref) => ref.id);
  return names.sort();
}

/** A synthetic attempt identity. */
export function identity(overrides: Partial<AttemptIdentity> = {}): AttemptIdentity {
  return {
    workflowInstanceId: "wf-1",
    taskId: "task-1",
    retryCount: 0,
    referenceTaskName: "step_ref",
    seq: 1,
    iteration: 0,
    taskDefName: "t",
    ...overrides,
  };
}

/**
 * The options of one `runAttempt` of `task` over main of the stack's repository at `ref` with
 * `params`: a synthetic identity, the stack's workspace root and client, owner `test0000`,
 * reasons up to 500 characters, a fence that always finds the attempt current. `overrides`
 * win (a fence of the given `attempt` unless `loadCurrentAttempt` is given too).
 */
export function attemptOptions(
  stack: LakeStack,
  task: AttemptOptions["task"],
  ref: string,
  params: Record<string, unknown>,
  overrides: Partial<AttemptOptions> = {},
): AttemptOptions {
  const attempt = overrides.attempt ?? identity();
  return {
    task,
    input: {
      workspace: { repository: stack.repo, branch: "main", ref_type: "commit", ref },
      params,
    },
    attempt,
    workspaceRoot: stack.root,
    ownerWorkerId: "test0000",
    failureReasonMaxLength: 500,
    lakefs: stack.lakefs,
    loadCurrentAttempt: fenceFor(attempt).load,
    ...overrides,
  };
}

/** A fence that always finds the attempt current (optionally overridden per call). */
export function fenceFor(
  attempt: AttemptIdentity,
  answers: Partial<CurrentTaskState>[] = [],
): { load: (signal: AbortSignal) => Promise<CurrentTaskState>; calls: number } {
  const fence = {
    calls: 0,
    load: (_signal: AbortSignal) => {
      const override = answers[fence.calls] ?? {};
      fence.calls++;
      return Promise.resolve({
        status: "IN_PROGRESS",
        workflowInstanceId: attempt.workflowInstanceId,
        taskId: attempt.taskId,
        retryCount: attempt.retryCount,
        ...override,
      });
    },
  };
  return fence;
}

/** Entries of a directory (names), `[]` when missing. */
export async function listDir(path: string): Promise<string[]> {
  const names: string[] = [];
  try {
    for await (const entry of Deno.readDir(path)) names.push(entry.name);
  } catch (error) {
    if (!(error instanceof Deno.errors.NotFound)) throw error;
  }
  return names.sort();
}

/**
 * Protects `branch` with a lakeFS branch protection rule, then waits (up to 30 s) until the
 * server refuses a hard reset there: a real lakeFS applies new rules after a few seconds.
 */
export async function protectBranch(stack: LakeStack, branch = "main"): Promise<void> {
  const { url, accessKeyId, secretAccessKey } = stack.access;
  const response = await fetch(
    `${url}/api/v1/repositories/${stack.repo}/settings/branch_protection`,
    {
      method: "PUT",
      headers: {
        authorization: `Basic ${btoa(`${accessKeyId}:${secretAccessKey}`)}`,
        "content-type": "application/json",
      },
      body: JSON.stringify([{ pattern: branch }]),
    },
  );
  await response.body?.cancel();
  if (response.status !== 204) throw new Error(`protecting ${branch}: HTTP ${response.status}`);
  const deadline = Date.now() + 30_000;
  for (;;) {
    const head = (await stack.lakefs.getBranch(stack.repo, branch)).commit_id;
    try {
      // A hard reset to the head changes nothing where the rule is not applied yet.
      await stack.lakefs.hardReset(stack.repo, branch, head);
    } catch (error) {
      if (error instanceof LakeFsProtectedBranchError) return;
      throw error;
    }
    if (Date.now() > deadline) throw new Error(`branch ${branch} never became protected`);
    await new Promise((resolve) => setTimeout(resolve, 200));
  }
}
