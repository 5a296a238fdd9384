/**
 * An in-memory {@linkcode LakeFsApi}: repositories, branches with staged changes, commits and
 * merges kept in this process, object contents in a map. It uses the versioning model of the
 * demo lakeFS server (src/devstack/lakefs/_state.ts), so refs, commits, hard resets, squash
 * merges and their errors behave as they do there (and as lakeFS answers them), without a
 * socket. `perago/testing` runs attempts against it; tests can too.
 *
 * Contents are held whole in memory: meant for the small file sets of tests, not for data.
 *
 * @module
 */
import { createHash } from "node:crypto";
import { concatBytes } from "../util/bytes.ts";
import type {
  Commit,
  DiffEntry,
  DiffRefsOptions,
  LakeFsApi,
  ListObjectsOptions,
  LogCommitsOptions,
  MergeOptions,
  ObjectStats,
  Ref,
  Repository,
  RevertOptions,
} from "../lakefs/api.ts";
import { lakeFsErrorFor } from "../lakefs/errors.ts";
import {
  ApiError,
  type CommitRecord,
  type Entry,
  LakeFsState,
  REPO_NAME,
  STORAGE_NAMESPACE,
} from "../devstack/lakefs/_state.ts";
import { diffTrees } from "../devstack/lakefs/_diff.ts";

/** Content of a seeded file: text (written as UTF-8) or bytes. */
export type FileContent = string | Uint8Array;

/** The committer name of every commit this store makes. */
const COMMITTER = "perago-testing";
function compare(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}

function md5Hex(bytes: Uint8Array): string {
  return createHash("md5").update(bytes).digest("hex");
}

function toBytes(content: FileContent): Uint8Array {
  return typeof content === "string" ? new TextEncoder().encode(content) : content.slice();
}

async function readAll(body: ReadableStream<Uint8Array> | Uint8Array): Promise<Uint8Array> {
  if (body instanceof Uint8Array) return body.slice();
  return concatBytes(await Array.fromAsync(body));
}

function toCommit(record: CommitRecord): Commit {
  return {
    id: record.id,
    parents: [...record.parents],
    committer: record.committer,
    message: record.message,
    creation_date: record.creation_date,
    meta_range_id: record.meta_range_id,
    metadata: { ...record.metadata },
  };
}

/**
 * A lakeFS in memory, for tests: every {@linkcode LakeFsApi} call answered from this
 * process, errors as the HTTP client throws them (`LakeFsNotFoundError`,
 * `LakeFsConflictError`, `LakeFsNoChangesError`, ...). Needs no permission at all.
 *
 * @example
 * ```ts
 * const lakefs = new MemoryLakeFs();
 * const commit = await lakefs.seedRepository("docs", { "docs/a.txt": "alpha\n" });
 * new TextDecoder().decode(lakefs.readFile("docs", commit.id, "docs/a.txt")); // "alpha\n"
 * ```
 */
export class MemoryLakeFs implements LakeFsApi {
  readonly #state = new LakeFsState();
  /** Object contents by hex MD5 (content-addressed, like the demo server's blob store). */
  readonly #blobs = new Map<string, Uint8Array>();

  /** Runs one operation, turning the model's status errors into the client's errors. */
  #call<T>(operation: string, signal: AbortSignal | undefined, fn: () => T): T {
    signal?.throwIfAborted();
    try {
      return fn();
    } catch (error) {
      if (error instanceof ApiError) {
        throw lakeFsErrorFor({ operation, status: error.status, serverMessage: error.message });
      }
      throw error;
    }
  }

  /** {@linkcode MemoryLakeFs.#call} as a promise: errors reject, as the HTTP client's do. */
  #async<T>(operation: string, signal: AbortSignal | undefined, fn: () => T): Promise<T> {
    try {
      return Promise.resolve(this.#call(operation, signal, fn));
    } catch (error) {
      return Promise.reject(error);
    }
  }

  #stats(repo: string, path: string, entry: Entry): ObjectStats {
    return {
      path,
      path_type: "object",
      checksum: entry.checksum,
      size_bytes: entry.size,
      mtime: entry.mtime,
      physical_address: `memory://${repo}/${entry.checksum}`,
      content_type: entry.contentType,
      metadata: { ...entry.metadata },
    };
  }

  #store(bytes: Uint8Array, contentType: string): Entry {
    const checksum = md5Hex(bytes);
    if (!this.#blobs.has(checksum)) this.#blobs.set(checksum, bytes);
    return {
      checksum,
      size: bytes.byteLength,
      mtime: Math.floor(Date.now() / 1000),
      contentType,
      metadata: {},
    };
  }

  createRepository(
    name: string,
    storageNamespace: string,
    defaultBranch = "main",
    signal?: AbortSignal,
  ): Promise<Repository> {
    return this.#async("createRepository", signal, () => {
      if (!REPO_NAME.test(name)) {
        throw new ApiError(400, `repository name must match ${REPO_NAME.source}: ${name}`);
      }
      if (!STORAGE_NAMESPACE.test(storageNamespace)) {
        throw new ApiError(400, `storage namespace must match ${STORAGE_NAMESPACE.source}`);
      }
      const record = this.#state.createRepository(
        name,
        storageNamespace,
        defaultBranch,
        COMMITTER,
      );
      return this.#repository(record.id);
    });
  }

  #repository(name: string): Repository {
    const record = this.#state.repo(name);
    return {
      id: record.id,
      creation_date: record.creation_date,
      default_branch: record.default_branch,
      storage_namespace: record.storage_namespace,
    };
  }

  getRepository(name: string, signal?: AbortSignal): Promise<Repository> {
    return this.#async("getRepository", signal, () => this.#repository(name));
  }

  async *listObjects(
    repo: string,
    ref: string,
    options: ListObjectsOptions = {},
  ): AsyncIterable<ObjectStats> {
    const prefix = options.prefix ?? "";
    const after = options.after ?? "";
    const delimiter = options.delimiter ?? "";
    const tree = this.#call(
      "listObjects",
      options.signal,
      () => this.#state.view(this.#state.repo(repo), ref),
    );
    let lastPrefix: string | undefined;
    for (const path of Object.keys(tree).sort(compare)) {
      options.signal?.throwIfAborted();
      if (!path.startsWith(prefix)) continue;
      const at = delimiter === "" ? -1 : path.indexOf(delimiter, prefix.length);
      const key = at < 0 ? path : path.slice(0, at + delimiter.length);
      if (key <= after || key === lastPrefix) continue;
      if (at >= 0) {
        lastPrefix = key;
        yield {
          path: key,
          path_type: "common_prefix",
          checksum: "",
          size_bytes: 0,
          mtime: 0,
          physical_address: "",
        };
      } else {
        yield this.#stats(repo, path, tree[path]!);
      }
    }
  }

  getObject(
    repo: string,
    ref: string,
    path: string,
    signal?: AbortSignal,
  ): Promise<ReadableStream<Uint8Array>> {
    return this.#async(
      "getObject",
      signal,
      () => ReadableStream.from([this.#read(repo, ref, path).slice()]),
    );
  }

  #read(repo: string, ref: string, path: string): Uint8Array {
    const entry = this.#state.view(this.#state.repo(repo), ref)[path];
    const bytes = entry === undefined ? undefined : this.#blobs.get(entry.checksum);
    if (bytes === undefined) throw new ApiError(404, "object not found: not found");
    return bytes;
  }

  async uploadObject(
    repo: string,
    branch: string,
    path: string,
    body: () => Promise<ReadableStream<Uint8Array> | Uint8Array>,
    options: { size?: number; contentType?: string; signal?: AbortSignal } = {},
  ): Promise<ObjectStats> {
    this.#call("uploadObject", options.signal, () => {
      this.#state.branch(this.#state.repo(repo), branch);
      if (path === "") {
        throw new ApiError(
          400,
          'parameter "path" in query has an error: empty value is not allowed',
        );
      }
    });
    const bytes = await readAll(await body());
    return this.#call("uploadObject", options.signal, () => {
      const record = this.#state.repo(repo);
      const entry = this.#store(bytes, options.contentType ?? "application/octet-stream");
      this.#state.stage(record, branch, path, entry);
      return this.#stats(repo, path, entry);
    });
  }

  deleteObject(repo: string, branch: string, path: string, signal?: AbortSignal): Promise<void> {
    return this.#async("deleteObject", signal, () => {
      this.#state.stage(this.#state.repo(repo), branch, path, null);
    });
  }

  deleteObjects(
    repo: string,
    branch: string,
    paths: string[],
    signal?: AbortSignal,
  ): Promise<void> {
    return this.#async("deleteObjects", signal, () => {
      const record = this.#state.repo(repo);
      this.#state.branch(record, branch);
      for (const path of paths) this.#state.stage(record, branch, path, null);
    });
  }

  createBranch(repo: string, name: string, source: string, signal?: AbortSignal): Promise<string> {
    return this.#async("createBranch", signal, () => {
      return this.#state.createBranch(this.#state.repo(repo), name, source);
    });
  }

  getBranch(repo: string, name: string, signal?: AbortSignal): Promise<Ref> {
    return this.#async("getBranch", signal, () => {
      const branch = this.#state.branch(this.#state.repo(repo), name);
      return { id: name, commit_id: branch.commitId };
    });
  }

  async *listBranches(
    repo: string,
    options: { prefix?: string; signal?: AbortSignal } = {},
  ): AsyncIterable<Ref> {
    const prefix = options.prefix ?? "";
    const branches = this.#call("listBranches", options.signal, () => {
      const record = this.#state.repo(repo);
      return Object.entries(record.branches)
        .filter(([name]) => name.startsWith(prefix))
        .map(([name, branch]) => ({ id: name, commit_id: branch.commitId }))
        .sort((a, b) => compare(a.id, b.id));
    });
    yield* branches;
  }

  deleteBranch(repo: string, name: string, signal?: AbortSignal): Promise<void> {
    return this.#async("deleteBranch", signal, () => {
      this.#state.deleteBranch(this.#state.repo(repo), name);
    });
  }

  hardReset(repo: string, branch: string, ref: string, signal?: AbortSignal): Promise<void> {
    return this.#async("hardReset", signal, () => {
      this.#state.hardReset(this.#state.repo(repo), branch, ref);
    });
  }

  commit(
    repo: string,
    branch: string,
    message: string,
    options: { metadata?: Record<string, string>; allowEmpty?: boolean; signal?: AbortSignal } = {},
  ): Promise<Commit> {
    return this.#async("commit", options.signal, () => {
      const record = this.#state.commitBranch(
        this.#state.repo(repo),
        branch,
        message,
        { ...options.metadata },
        COMMITTER,
        options.allowEmpty === undefined ? {} : { allowEmpty: options.allowEmpty },
      );
      return toCommit(record);
    });
  }

  getCommit(repo: string, ref: string, signal?: AbortSignal): Promise<Commit> {
    return this.#async("getCommit", signal, () => {
      return toCommit(this.#state.resolveCommit(this.#state.repo(repo), ref));
    });
  }

  merge(
    repo: string,
    source: string,
    destination: string,
    options: MergeOptions = {},
  ): Promise<string> {
    return this.#async("merge", options.signal, () => {
      const record = this.#state.merge(
        this.#state.repo(repo),
        source,
        destination,
        COMMITTER,
        {
          ...(options.message === undefined ? {} : { message: options.message }),
          ...(options.metadata === undefined ? {} : { metadata: { ...options.metadata } }),
          ...(options.strategy === undefined ? {} : { strategy: options.strategy }),
          ...(options.squashMerge === undefined ? {} : { squash: options.squashMerge }),
          ...(options.allowEmpty === undefined ? {} : { allowEmpty: options.allowEmpty }),
        },
      );
      return record.id;
    });
  }

  async *diffRefs(
    repo: string,
    left: string,
    right: string,
    options: DiffRefsOptions = {},
  ): AsyncIterable<DiffEntry> {
    const prefix = options.prefix ?? "";
    const diffs = this.#call("diffRefs", options.signal, () => {
      const record = this.#state.repo(repo);
      const to = this.#state.resolveCommit(record, right);
      let from = this.#state.resolveCommit(record, left);
      if (options.type === "three_dot") from = this.#state.mergeBase(record, from, to) ?? from;
      return diffTrees(from.tree, to.tree)
        .filter((diff) => diff.path.startsWith(prefix))
        .map((diff): DiffEntry => ({
          type: diff.type,
          path: diff.path,
          path_type: "object",
          size_bytes: diff.entry.size,
        }));
    });
    yield* diffs;
  }

  async *logCommits(
    repo: string,
    ref: string,
    options: LogCommitsOptions = {},
  ): AsyncIterable<Commit> {
    const commits = this.#call("logCommits", options.signal, () => {
      const record = this.#state.repo(repo);
      const stopAt = options.stopAt === undefined
        ? undefined
        : this.#state.resolveCommit(record, options.stopAt).id;
      const found: CommitRecord[] = [];
      for (const commit of this.#state.walk(record, this.#state.resolveCommit(record, ref))) {
        found.push(commit);
        if (commit.id === stopAt) break;
      }
      return found;
    });
    for (const commit of commits) yield toCommit(commit);
  }

  revertCommit(
    repo: string,
    branch: string,
    ref: string,
    options: RevertOptions = {},
  ): Promise<void> {
    return this.#async("revertCommit", options.signal, () => {
      this.#state.revert(this.#state.repo(repo), branch, ref, COMMITTER, {
        parentNumber: 0,
        ...(options.message === undefined ? {} : { message: options.message }),
        ...(options.metadata === undefined ? {} : { metadata: { ...options.metadata } }),
      });
    });
  }

  // ------------------------------------------------------------------ test helpers

  /**
   * Creates `repo` (default branch `branch`) and commits `files` on it; returns that commit.
   * Paths are object keys as given (the store, like lakeFS, does not judge them).
   *
   * @example
   * ```ts
   * const lakefs = new MemoryLakeFs();
   * await lakefs.seedRepository("docs", { "docs/a.txt": "alpha\n" }, { branch: "main" });
   * ```
   */
  async seedRepository(
    repo: string,
    files: Readonly<Record<string, FileContent>>,
    options: { branch?: string; message?: string } = {},
  ): Promise<Commit> {
    const branch = options.branch ?? "main";
    await this.createRepository(repo, `local://${repo}`, branch);
    for (const [path, content] of Object.entries(files)) {
      const bytes = toBytes(content);
      await this.uploadObject(repo, branch, path, () => Promise.resolve(bytes), {
        size: bytes.byteLength,
      });
    }
    return await this.commit(repo, branch, options.message ?? "seed files", { allowEmpty: true });
  }

  /**
   * The content of `path` at `ref` (a branch, with its staged changes, or a commit id), or
   * `undefined` when there is no such object. Throws `LakeFsNotFoundError` for an unknown
   * repository or ref.
   */
  readFile(repo: string, ref: string, path: string): Uint8Array | undefined {
    return this.#call("readFile", undefined, () => {
      const entry = this.#state.view(this.#state.repo(repo), ref)[path];
      const bytes = entry === undefined ? undefined : this.#blobs.get(entry.checksum);
      return bytes?.slice();
    });
  }

  /** Every object path at `ref` under `prefix` (default: all), sorted. */
  listPaths(repo: string, ref: string, prefix = ""): string[] {
    return this.#call("listPaths", undefined, () => {
      const tree = this.#state.view(this.#state.repo(repo), ref);
      return Object.keys(tree).filter((path) => path.startsWith(prefix)).sort(compare);
    });
  }
}
