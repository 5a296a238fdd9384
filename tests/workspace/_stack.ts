/**
 * Test helper: an in-process demo lakeFS server, a client for it, a repository with seeded
 * content, and a temp workspace root; everything closed by `close()`.
 */
import { join } from "node:path";
import type { FaultInjector } from "../../src/devstack/faults.ts";
import { type LakeFsServerHandle, startLakeFsServer } from "../../src/devstack/lakefs/server.ts";
import { LakeFsClient } from "../../src/lakefs/client.ts";
import type { AttemptIdentity, CurrentTaskState } from "../../src/workspace/attempt.ts";
import { forEachConcurrent } from "../../src/util/pool.ts";
import { createTestRepository, deleteTestRepository, type RealLakeFs } from "../_real_servers.ts";

/** A repository on some lakeFS (demo or real), a client for it and a temp workspace root. */
export interface LakeStack {
  lakefs: LakeFsClient;
  repo: string;
  /** Temp dir holding the workspace root (`root`) and anything else a test wants. */
  tmp: string;
  root: string;
  close(): Promise<void>;
}

/** A {@linkcode LakeStack} on an in-process demo lakeFS, whose request counts tests read. */
export interface Stack extends LakeStack {
  server: LakeFsServerHandle;
}

let repoCounter = 0;

export async function startStack(
  options: { faults?: FaultInjector; attempts?: number } = {},
): Promise<Stack> {
  const server = await startLakeFsServer({
    accessKeyId: "AKIATEST",
    secretAccessKey: "s3cr3t",
    ...(options.faults ? { faults: options.faults } : {}),
  });
  const tmp = await Deno.makeTempDir({ prefix: "perago-ws-test-" });
  const lakefs = new LakeFsClient({
    endpointUrl: server.url,
    accessKeyId: "AKIATEST",
    secretAccessKey: "s3cr3t",
    retry: { attempts: options.attempts ?? 3, baseDelayMs: 2, maxDelayMs: 20 },
  });
  const repo = `repo-${++repoCounter}-${crypto.randomUUID().slice(0, 8)}`;
  await lakefs.createRepository(repo, `local://${repo}`, "main");
  return {
    server,
    lakefs,
    repo,
    tmp,
    root: join(tmp, "ws"),
    async close() {
      await server.close();
      await Deno.remove(tmp, { recursive: true });
    },
  };
}

/**
 * A fresh repository on a real lakeFS (`tests/_real_servers.ts`), with the same helpers as a
 * demo stack; the repository is deleted on close.
 */
export async function startRealStack(target: RealLakeFs): Promise<LakeStack> {
  const repo = await createTestRepository(target, "ws-test");
  const tmp = await Deno.makeTempDir({ prefix: "perago-ws-test-" });
  const lakefs = new LakeFsClient({
    endpointUrl: target.url,
    accessKeyId: target.accessKeyId,
    secretAccessKey: target.secretAccessKey,
    retry: { attempts: 3, baseDelayMs: 20, maxDelayMs: 200 },
  });
  return {
    lakefs,
    repo,
    tmp,
    root: join(tmp, "ws"),
    async close() {
      await deleteTestRepository(target, repo);
      await Deno.remove(tmp, { recursive: true });
    },
  };
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
