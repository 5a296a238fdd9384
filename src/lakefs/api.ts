/**
 * The lakeFS seam: what perago needs from a lakeFS server, as an interface so the
 * workspace code and tests can use the HTTP client or a small in-memory implementation.
 *
 * @module
 */

/** A repository as lakeFS returns it. */
export interface Repository {
  id: string;
  creation_date: number;
  default_branch: string;
  storage_namespace: string;
  [extra: string]: unknown;
}

/** One entry of an object listing. */
export interface ObjectStats {
  path: string;
  path_type: "object" | "common_prefix";
  /** Hex MD5 of the content for API uploads. */
  checksum: string;
  size_bytes: number;
  mtime: number;
  physical_address: string;
  content_type?: string;
  metadata?: Record<string, string>;
  [extra: string]: unknown;
}

/** A branch reference. */
export interface Ref {
  id: string;
  commit_id: string;
}

/** A commit. `parents` is `[]` for the first commit of a repository. */
export interface Commit {
  id: string;
  parents: string[];
  committer: string;
  message: string;
  creation_date: number;
  meta_range_id: string;
  metadata?: Record<string, string>;
  [extra: string]: unknown;
}

/** Options of a listing. */
export interface ListObjectsOptions {
  prefix?: string;
  /** Listing starts after this path (exclusive). */
  after?: string;
  /** Page size; the server caps it at 1000. */
  amount?: number;
  /** Empty (default) = flat recursive listing. */
  delimiter?: string;
  signal?: AbortSignal;
}

/** One entry of a diff between two refs. */
export interface DiffEntry {
  /** `conflict` and `prefix_changed` appear only in some diff kinds; perago treats every entry as a change. */
  type: "added" | "removed" | "changed" | "conflict" | "prefix_changed";
  path: string;
  path_type: "object" | "common_prefix";
  size_bytes?: number;
  [extra: string]: unknown;
}

/** Options of {@linkcode LakeFsApi.diffRefs}. */
export interface DiffRefsOptions {
  /** Only paths under this prefix. */
  prefix?: string;
  /**
   * `two_dot` compares the two trees; `three_dot` (lakeFS's default) what changed on the right
   * since the merge base. @default "two_dot"
   */
  type?: "two_dot" | "three_dot";
  /** Page size; the server caps it at 1000. */
  amount?: number;
  signal?: AbortSignal;
}

/** Options of {@linkcode LakeFsApi.logCommits}. */
export interface LogCommitsOptions {
  /** The walk ends with this commit (included, as lakeFS's `stop_at` does). */
  stopAt?: string;
  /** Page size; the server caps it at 1000. */
  amount?: number;
  signal?: AbortSignal;
}

/** Options of {@linkcode LakeFsApi.revertCommit}. */
export interface RevertOptions {
  /** Message of the revert commit. @default lakeFS's "Revert <id>" */
  message?: string;
  /** Metadata of the revert commit. */
  metadata?: Record<string, string>;
  signal?: AbortSignal;
}

/** Options of a merge. */
export interface MergeOptions {
  message?: string;
  metadata?: Record<string, string>;
  strategy?: "dest-wins" | "source-wins";
  squashMerge?: boolean;
  allowEmpty?: boolean;
  signal?: AbortSignal;
  /** Timeout of each try of the merge request, ms. @default the client's request timeout */
  requestTimeoutMs?: number;
}

/** What a download wrote: its size and the hex MD5 of its bytes, hashed as they passed. */
export interface WrittenObject {
  size: number;
  md5: string;
  /** The hex SHA-256 of the same bytes, where the sink took it too. */
  sha256?: string;
}

/**
 * Where a download's bytes go (sync.ts makes sinks over a new file, which a worker thread reads
 * back and hashes once written). One try of a download writes every chunk (or pipes the body
 * into `writable`), then `finish`es; a failed try `abort`s.
 */
export interface ObjectSink {
  /**
   * Where a client may pipe the whole body instead of calling `write` per chunk: a file's
   * writable, into which Deno pipes a fetch body natively, with no JavaScript per chunk. The
   * pipe closes it when it ends, whatever the outcome.
   */
  readonly writable?: WritableStream<Uint8Array>;
  /**
   * Bytes the sink holds so far, read while a body is piped into `writable` (a stalled body
   * is told from a slow one by this growing).
   */
  written?(): Promise<number>;
  /**
   * Where a client reading the body itself may put the next bytes (see
   * {@linkcode ObjectSink.filled}): the sink's own memory, read into straight from the
   * socket; a promise while the sink wants the caller to wait (back-pressure). A client
   * uses `space` and `filled` when the sink has both and it can, else `writable` or `write`.
   */
  space?(): Uint8Array | Promise<Uint8Array>;
  /**
   * `n` bytes (at least one) were read into the start of the view `space` gave last. Throws
   * the sink's own error.
   */
  filled?(n: number): void;
  /**
   * Takes a chunk. Returns a promise when the caller should wait before the next chunk
   * (back-pressure), else `undefined`; the sink is done with the chunk's bytes once it
   * returned `undefined` or its promise settled, so the caller may reuse the buffer. Throws
   * or rejects with the sink's own error (a full disk...).
   */
  write(chunk: Uint8Array): Promise<void> | undefined;
  /** Closes the file; resolves with what was written. */
  finish(): Promise<WrittenObject>;
  /** Closes the file after a failed try; never throws. */
  abort(): void;
}

/** What perago needs from lakeFS. Object bodies stream; nothing buffers a whole file. */
export interface LakeFsApi {
  createRepository(
    name: string,
    storageNamespace: string,
    defaultBranch?: string,
    signal?: AbortSignal,
  ): Promise<Repository>;
  getRepository(name: string, signal?: AbortSignal): Promise<Repository>;
  /** All objects under the options' prefix, page by page (pagination handled inside). */
  listObjects(repo: string, ref: string, options?: ListObjectsOptions): AsyncIterable<ObjectStats>;
  /** Streams an object's content; throws `LakeFsNotFoundError` when missing. */
  getObject(
    repo: string,
    ref: string,
    path: string,
    signal?: AbortSignal,
  ): Promise<ReadableStream<Uint8Array>>;
  /**
   * Optional fast path of {@linkcode LakeFsApi.getObject} for small objects: the whole content
   * in memory, the body read inside the call's retries (a dropped connection mid-body is
   * retried). A body longer than `maxBytes` is cut at `maxBytes + 1` bytes, so the caller
   * sees it is too long without holding it whole.
   */
  getObjectBytes?(
    repo: string,
    ref: string,
    path: string,
    options: {
      maxBytes: number;
      signal?: AbortSignal;
      connections?: ObjectConnections | undefined;
    },
  ): Promise<Uint8Array>;
  /**
   * Optional: connections for a batch of {@linkcode LakeFsApi.getObjectBytes} calls (passed
   * as their `connections`), kept alive between the calls until the caller closes them;
   * `undefined` when the implementation has none to offer (the calls then work without).
   */
  openConnections?(): ObjectConnections | undefined;
  /**
   * Optional fast path of {@linkcode LakeFsApi.getObject} for downloads to disk: pipes an
   * object's content into the sink's `writable` when it has one, else hands each chunk to its
   * `write` (the sink comes from `open`, called once per try; each call must give a sink over
   * an empty file), and returns what the sink says it wrote. With `connections` (see
   * {@linkcode LakeFsApi.openConnections}) and a sink offering `space` and `filled`, the body
   * may be read straight into the sink's memory over them. A sink's errors are the caller's,
   * never retried. Implementations without it are read through `getObject`.
   */
  downloadObject?(
    repo: string,
    ref: string,
    path: string,
    open: () => Promise<ObjectSink>,
    signal?: AbortSignal,
    options?: { connections?: ObjectConnections | undefined },
  ): Promise<WrittenObject>;
  /**
   * Uploads one object. `body` is a stream factory so a retry can reopen the source;
   * `size` (when known) is sent as Content-Length.
   */
  uploadObject(
    repo: string,
    branch: string,
    path: string,
    body: () => Promise<ReadableStream<Uint8Array> | Uint8Array>,
    options?: { size?: number; contentType?: string; signal?: AbortSignal },
  ): Promise<ObjectStats>;
  /** Deletes one object (204 also when missing). */
  deleteObject(repo: string, branch: string, path: string, signal?: AbortSignal): Promise<void>;
  /**
   * Deletes any number of objects (the HTTP client sends them in requests of at most
   * `MAX_DELETE_PATHS`, the server's limit); throws on per-path errors.
   */
  deleteObjects(repo: string, branch: string, paths: string[], signal?: AbortSignal): Promise<void>;
  /** Creates a branch; returns the source commit id. */
  createBranch(repo: string, name: string, source: string, signal?: AbortSignal): Promise<string>;
  getBranch(repo: string, name: string, signal?: AbortSignal): Promise<Ref>;
  listBranches(
    repo: string,
    options?: { prefix?: string; signal?: AbortSignal },
  ): AsyncIterable<Ref>;
  deleteBranch(repo: string, name: string, signal?: AbortSignal): Promise<void>;
  /** `options.requestTimeoutMs`: timeout of each try of the request, ms. */
  hardReset(
    repo: string,
    branch: string,
    ref: string,
    signal?: AbortSignal,
    options?: { requestTimeoutMs?: number },
  ): Promise<void>;
  /** Commits staged changes; throws `LakeFsNoChangesError` on 400 "no changes". */
  commit(
    repo: string,
    branch: string,
    message: string,
    options?: { metadata?: Record<string, string>; allowEmpty?: boolean; signal?: AbortSignal },
  ): Promise<Commit>;
  getCommit(repo: string, ref: string, signal?: AbortSignal): Promise<Commit>;
  /** Merges `source` into `destination`; returns the resulting commit id. */
  merge(repo: string, source: string, destination: string, options?: MergeOptions): Promise<string>;
  /** The differences between two refs, in path order, page by page. */
  diffRefs(
    repo: string,
    left: string,
    right: string,
    options?: DiffRefsOptions,
  ): AsyncIterable<DiffEntry>;
  /** The commits reachable from `ref`, newest first, page by page. */
  logCommits(repo: string, ref: string, options?: LogCommitsOptions): AsyncIterable<Commit>;
  /**
   * Adds a commit to `branch` that undoes the changes of the (single-parent) commit `ref`;
   * 409 when later commits changed the same paths.
   */
  revertCommit(repo: string, branch: string, ref: string, options?: RevertOptions): Promise<void>;
}

/**
 * Connections kept open for a batch of small object reads (see
 * {@linkcode LakeFsApi.openConnections}); closed once by whoever opened them.
 */
export interface ObjectConnections {
  /** Closes every connection; reads still using them fail. */
  close(): void;
}
