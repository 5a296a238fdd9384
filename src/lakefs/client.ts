/**
 * The lakeFS HTTP client (`/api/v1`, HTTP Basic auth), implementing {@linkcode LakeFsApi}.
 *
 * Every request has a timeout, is retried with capped exponential backoff and jitter on network
 * errors, timeouts, 429 and 5xx (honouring `Retry-After`), and validates the answer with zod:
 * a malformed answer becomes a {@linkcode LakeFsError} naming the call. Object bodies stream in
 * both directions; nothing buffers a whole file.
 *
 * Requires `--allow-net` to the lakeFS host.
 *
 * @module
 */
import type { z } from "../vendor/zod.ts";
import {
  basicAuthorization,
  paginate,
  parseJsonAnswer,
  readAtMost,
  RequestTimer,
  requestUrl,
  type RetryPolicy,
  retryTransient,
  revealSecret,
  type SecretInput,
  serverMessageOf,
} from "../util/http.ts";
import { parseRetryAfterMs } from "../util/retry.ts";
import { streamingPost } from "./_stream_upload.ts";
import { type Http1Answer, type Http1BodyTarget, Http1Connections } from "../util/http1.ts";
import type {
  Commit,
  DiffEntry,
  DiffRefsOptions,
  LakeFsApi,
  ListObjectsOptions,
  LogCommitsOptions,
  MergeOptions,
  ObjectConnections,
  ObjectSink,
  ObjectStats,
  Ref,
  Repository,
  RevertOptions,
  WrittenObject,
} from "./api.ts";
import {
  commitListSchema,
  commitSchema,
  diffListSchema,
  mergeResultSchema,
  objectErrorListSchema,
  objectStatsListSchema,
  objectStatsSchema,
  refListSchema,
  refSchema,
  repositorySchema,
} from "./_schemas.ts";
import {
  LakeFsConflictError,
  LakeFsError,
  lakeFsErrorFor,
  LakeFsNoChangesError,
  LakeFsNotFoundError,
} from "./errors.ts";

export type { SecretInput };

/** Retry tuning of {@linkcode LakeFsClient}. */
export interface LakeFsRetryOptions {
  /** Total tries per call, including the first. @default 5 */
  attempts?: number;
  /** First backoff in ms; doubles each retry (full jitter). @default 200 */
  baseDelayMs?: number;
  /** Upper bound of one backoff, and of an honoured `Retry-After`, in ms. @default 10_000 */
  maxDelayMs?: number;
}

/** Options of {@linkcode LakeFsClient}. */
export interface LakeFsClientOptions {
  /** Server URL, with or without the `/api/v1` suffix (added when missing, like lakectl). */
  endpointUrl: string;
  /** Access key id (HTTP Basic user). */
  accessKeyId: string;
  /** Secret access key (HTTP Basic password); never appears in errors. */
  secretAccessKey: SecretInput;
  /**
   * Timeout of one try in ms: until the answer is read for JSON calls; for object bodies the
   * longest pause between two chunks. @default 30_000
   */
  requestTimeoutMs?: number;
  /** Retry tuning. */
  retry?: LakeFsRetryOptions;
  /** `User-Agent` header. @default "perago-lakefs-client" */
  userAgent?: string;
  /**
   * Whether no proxy is set in the environment, as the process that made these options found
   * it (`proxyInEnvironment` of util/http1.ts), for a process that may not read its own (an
   * executor): small reads then go over kept-alive connections (see `openConnections`).
   * @default this process's own environment decides
   */
  noProxy?: boolean | undefined;
}

/** Largest number of paths one bulk delete request may carry (lakeFS limit). */
export const MAX_DELETE_PATHS = 1000;

/**
 * Normalises a lakeFS endpoint to its API base: strips trailing slashes and appends `/api/v1`
 * when missing, as lakectl does.
 *
 * @throws {TypeError} when the URL is not http(s).
 * @example
 * ```ts
 * normalizeEndpoint("http://localhost:8000/"); // "http://localhost:8000/api/v1"
 * normalizeEndpoint("http://localhost:8000/api/v1"); // unchanged
 * ```
 */
export function normalizeEndpoint(url: string): string {
  let parsed: URL;
  try {
    parsed = new URL(url.trim());
  } catch {
    throw new TypeError(
      `lakeFS endpoint: not a URL: ${JSON.stringify(url)}; use e.g. http://localhost:8000`,
    );
  }
  if (parsed.protocol !== "http:" && parsed.protocol !== "https:") {
    throw new TypeError(`lakeFS endpoint: scheme must be http or https, got ${parsed.protocol}`);
  }
  if (parsed.username !== "" || parsed.password !== "") {
    throw new TypeError("lakeFS endpoint: must not contain credentials; use the key id/secret");
  }
  let path = parsed.pathname.replace(/\/+$/, "");
  if (!path.endsWith("/api/v1")) path += "/api/v1";
  return `${parsed.protocol}//${parsed.host}${path}`;
}

/** What a request sends. */
interface RequestSpec {
  operation: string;
  method: string;
  /** Path below the API base, segments already encoded. */
  path: string;
  query?: Record<string, string | number | boolean | undefined>;
  json?: unknown;
  upload?: {
    body: () => Promise<ReadableStream<Uint8Array> | Uint8Array>;
    size?: number;
    contentType: string;
  };
  signal?: AbortSignal | undefined;
  /** Timeout of one try of this call, ms. @default the client's `requestTimeoutMs` */
  timeoutMs?: number | undefined;
}

const encode = encodeURIComponent;

/**
 * `value` encoded as `URLSearchParams` encodes a parameter (form encoding: only letters,
 * digits and `*-._` kept, a space as `+`), without building a URL: parsing one per request
 * was a tenth of a small object read's CPU.
 */
function formEncode(value: string): string {
  try {
    return encodeURIComponent(value)
      .replace(/[!'()~]/g, (c) => `%${c.charCodeAt(0).toString(16).toUpperCase()}`)
      .replaceAll("%20", "+");
  } catch {
    // A lone surrogate: URLSearchParams replaces it, encodeURIComponent throws.
    return new URLSearchParams({ v: value }).toString().slice(2);
  }
}

/** How many of the destination's latest commits a retried merge searches for its own. */
const MERGE_RECONCILE_DEPTH = 100;

/** Statuses whose answer has no body (a `Response` refuses one). */
const NULL_BODY_STATUSES = new Set([101, 204, 205, 304]);

/**
 * HTTP client of the lakeFS API.
 *
 * @example
 * ```ts ignore
 * const lakefs = new LakeFsClient({
 *   endpointUrl: Deno.env.get("LAKECTL_SERVER_ENDPOINT_URL") ?? "http://127.0.0.1:8000",
 *   accessKeyId: Deno.env.get("LAKECTL_CREDENTIALS_ACCESS_KEY_ID") ?? "",
 *   secretAccessKey: Deno.env.get("LAKECTL_CREDENTIALS_SECRET_ACCESS_KEY") ?? "",
 * });
 * for await (const entry of lakefs.listObjects("repo", "main", { prefix: "data/" })) {
 *   console.log(entry.path, entry.checksum);
 * }
 * ```
 */
export class LakeFsClient implements LakeFsApi {
  /** The API base URL (ends with `/api/v1`). */
  readonly baseUrl: string;
  readonly #accessKeyId: string;
  readonly #secret: SecretInput;
  readonly #timeoutMs: number;
  readonly #retry: RetryPolicy;
  readonly #userAgent: string;
  #authorizationHeader: { secret: string; header: string } | undefined;
  readonly #origin: string;
  readonly #noProxy: boolean | undefined;
  /** The path of {@linkcode baseUrl} (`/api/v1`). */
  readonly #basePath: string;

  constructor(options: LakeFsClientOptions) {
    this.baseUrl = normalizeEndpoint(options.endpointUrl);
    const base = new URL(this.baseUrl);
    this.#origin = base.origin;
    this.#basePath = base.pathname.replace(/\/+$/, "");
    if (typeof options.accessKeyId !== "string" || options.accessKeyId === "") {
      throw new TypeError("lakeFS client: accessKeyId is required");
    }
    this.#accessKeyId = options.accessKeyId;
    this.#secret = options.secretAccessKey;
    this.#timeoutMs = positive("requestTimeoutMs", options.requestTimeoutMs ?? 30_000);
    this.#retry = Object.freeze({
      attempts: positive("retry.attempts", options.retry?.attempts ?? 5),
      baseDelayMs: nonNegative("retry.baseDelayMs", options.retry?.baseDelayMs ?? 200),
      maxDelayMs: nonNegative("retry.maxDelayMs", options.retry?.maxDelayMs ?? 10_000),
    });
    this.#userAgent = options.userAgent ?? "perago-lakefs-client";
    this.#noProxy = options.noProxy;
  }

  // ---------------------------------------------------------------- repositories

  /**
   * Creates a repository. If a retried request finds the repository already there with the
   * same storage namespace and default branch (the first try succeeded but its answer was
   * lost), that repository is returned instead of a conflict.
   */
  async createRepository(
    name: string,
    storageNamespace: string,
    defaultBranch = "main",
    signal?: AbortSignal,
  ): Promise<Repository> {
    const spec: RequestSpec = {
      operation: "createRepository",
      method: "POST",
      path: "/repositories",
      json: { name, storage_namespace: storageNamespace, default_branch: defaultBranch },
      signal,
    };
    return await this.#call(spec, async (attempt) => {
      try {
        return await this.#json(spec, [201], repositorySchema) as Repository;
      } catch (error) {
        if (attempt > 1 && error instanceof LakeFsConflictError) {
          const existing = await this.getRepository(name, signal);
          if (
            existing.storage_namespace === storageNamespace &&
            existing.default_branch === defaultBranch
          ) return existing;
        }
        throw error;
      }
    });
  }

  /** Reads a repository; {@linkcode LakeFsNotFoundError} when missing. */
  async getRepository(name: string, signal?: AbortSignal): Promise<Repository> {
    return await this.#get(
      "getRepository",
      `/repositories/${encode(name)}`,
      repositorySchema,
      signal,
    ) as Repository;
  }

  // ---------------------------------------------------------------- objects

  /** All objects (and, with a delimiter, common prefixes) under a prefix, page by page. */
  listObjects(
    repo: string,
    ref: string,
    options: ListObjectsOptions = {},
  ): AsyncIterable<ObjectStats> {
    return this.#paginate(
      "listObjects",
      objectStatsListSchema,
      `/repositories/${encode(repo)}/refs/${encode(ref)}/objects/ls`,
      { prefix: options.prefix, delimiter: options.delimiter },
      options,
    ) as AsyncIterable<ObjectStats>;
  }

  /**
   * Streams an object. The first chunk is read before returning (inside the retry loop), so a
   * connection dropped before any data is retried; later stalls longer than the request
   * timeout abort the stream.
   */
  async getObject(
    repo: string,
    ref: string,
    path: string,
    signal?: AbortSignal,
  ): Promise<ReadableStream<Uint8Array>> {
    const spec = objectSpec(repo, ref, path, signal);
    return await this.#call(spec, async () => {
      const tryControl = this.#tryControl(signal);
      try {
        const response = await this.#send(spec, tryControl);
        if (response.status !== 200) {
          throw await this.#httpError(spec, response);
        }
        if (response.body === null) {
          tryControl.done();
          return new ReadableStream<Uint8Array>({ start: (c) => c.close() });
        }
        const reader = response.body.getReader();
        const first = await this.#readChunk(reader);
        reader.releaseLock();
        return this.#idleTimedStream(spec, response.body, first, tryControl);
      } catch (error) {
        tryControl.done();
        throw this.#wrapTransport(spec, error, tryControl);
      }
    });
  }

  /**
   * Kept-alive HTTP/1.1 connections for a batch of {@linkcode getObjectBytes} calls (see
   * `util/http1.ts`: a fraction of `fetch`'s CPU per small read); `undefined` for an
   * `https:` endpoint or with a proxy in the environment (or one that cannot be ruled out:
   * see `noProxy` of the options), where `fetch` carries them.
   */
  openConnections(): ObjectConnections | undefined {
    return Http1Connections.for(
      new URL(this.baseUrl),
      this.#noProxy === undefined ? {} : { noProxy: this.#noProxy },
    );
  }

  /**
   * Reads a small object whole (see {@linkcode LakeFsApi.getObjectBytes}): one request, the
   * body collected in memory up to `maxBytes + 1` bytes, transport failures anywhere in the
   * body retried like any call. Each try, head and body, ends within the request timeout:
   * progress does not restart it (a server sending a byte now and then would otherwise hold
   * the read for `maxBytes` timeouts).
   */
  async getObjectBytes(
    repo: string,
    ref: string,
    path: string,
    options: {
      maxBytes: number;
      signal?: AbortSignal;
      connections?: ObjectConnections | undefined;
    },
  ): Promise<Uint8Array> {
    const spec = objectSpec(repo, ref, path, options.signal);
    const connections = options.connections instanceof Http1Connections &&
        options.connections.origin === this.#origin
      ? options.connections
      : undefined;
    return await this.#call(spec, async () => {
      const tryControl = this.#tryControl(options.signal);
      try {
        if (connections !== undefined) {
          const answer = await connections.get(
            `${this.#basePath}${spec.path}?path=${formEncode(path)}`,
            this.#headers(),
            {
              signal: tryControl.signal,
              maxBodyBytes: options.maxBytes + 1,
            },
          );
          // No Accept-Encoding was sent, yet a body may come coded: fetch decodes it.
          const coded = (answer.headers.get("content-encoding") ?? "identity") !== "identity";
          if (answer.status === 200 && !coded) return answer.body;
          // A redirect or a coded body is left to fetch, which follows or decodes it; any
          // other status is an error.
          if (answer.status !== 200 && (answer.status < 300 || answer.status >= 400)) {
            throw await this.#answerError(spec, answer);
          }
        }
        const response = await this.#send(spec, tryControl);
        if (response.status !== 200) throw await this.#httpError(spec, response);
        if (response.body === null) return new Uint8Array(0);
        // A plain body announced within the limit is read in one native call (the connection
        // delivers no more than it announced): about half the CPU of reading it chunk by chunk
        // from JavaScript, which counts when thousands of small objects are fetched.
        const length = Number(response.headers.get("content-length") ?? Number.NaN);
        if (
          Number.isInteger(length) && length <= options.maxBytes &&
          (response.headers.get("content-encoding") ?? "identity") === "identity"
        ) {
          return await response.bytes();
        }
        return await readAtMost(response.body, options.maxBytes + 1);
      } catch (error) {
        throw this.#wrapTransport(spec, error, tryControl);
      } finally {
        tryControl.done();
      }
    });
  }

  /** The error of a kept-alive connection's answer, as `#httpError` makes a `Response`'s. */
  async #answerError(spec: RequestSpec, answer: Http1Answer): Promise<Error> {
    return await this.#httpError(
      spec,
      new Response(NULL_BODY_STATUSES.has(answer.status) ? null : answer.body, {
        status: answer.status,
        statusText: answer.statusText,
        // The one header the error reads (a value Headers refuses never gets there).
        headers: {
          "retry-after": (answer.headers.get("retry-after") ?? "").replace(/[\0\r\n]/g, ""),
        },
      }),
    );
  }

  /**
   * Downloads an object into the sink `open` gives (see {@linkcode LakeFsApi.downloadObject}):
   * the body piped into the sink's `writable` when it has one, else chunk by chunk into
   * `write`; returns what the sink wrote. With `connections` (see {@linkcode openConnections})
   * and a sink offering `space` and `filled`, a body framed by its length is read over them
   * straight into the sink's memory (`Http1Connections.getInto`); a redirect, a coded body or
   * another framing goes through `fetch` as above. The whole download is retried on transport
   * errors, with a fresh `open()` per try (the failed try's sink is aborted); the sink's own
   * errors, and `open`'s, are not retried. The idle timeout is the longest time no byte
   * arrives.
   */
  async downloadObject(
    repo: string,
    ref: string,
    path: string,
    open: () => Promise<ObjectSink>,
    signal?: AbortSignal,
    options: { connections?: ObjectConnections | undefined } = {},
  ): Promise<WrittenObject> {
    const spec = objectSpec(repo, ref, path, signal);
    const pollMs = Math.max(10, Math.min(1000, Math.floor(this.#timeoutMs / 4)));
    const connections = options.connections instanceof Http1Connections &&
        options.connections.origin === this.#origin
      ? options.connections
      : undefined;
    return await this.#call(spec, async () => {
      const tryControl = this.#tryControl(signal);
      let monitor: ReturnType<typeof setInterval> | undefined;
      let localError: { error: unknown } | undefined;
      let sink: ObjectSink | undefined;
      const local = async <T>(fn: () => Promise<T> | T): Promise<T> => {
        try {
          return await fn();
        } catch (error) {
          localError = { error };
          throw error;
        }
      };
      try {
        if (connections !== undefined) {
          // A chunk restarts the idle timer through a flag the monitor reads.
          let progressed = false;
          monitor = setInterval(() => {
            if (progressed) tryControl.restart();
            progressed = false;
          }, pollMs);
          const answer = await connections.getInto(
            `${this.#basePath}${spec.path}?path=${formEncode(path)}`,
            this.#headers(),
            {
              signal: tryControl.signal,
              maxBodyBytes: 0,
              onProgress: () => progressed = true,
              target: async (_length, headers) => {
                // No Accept-Encoding was sent, yet a body may come coded: fetch decodes it.
                if ((headers.get("content-encoding") ?? "identity") !== "identity") return;
                const opened = await local(open);
                sink = opened;
                return sinkTarget(opened, (error) => localError = { error });
              },
            },
          );
          clearInterval(monitor);
          if (answer.streamed && sink !== undefined) {
            const target = sink;
            sink = undefined;
            return await local(() => target.finish());
          }
          // A redirect (fetch follows it) or a body framed otherwise or coded goes through
          // fetch; any other status is an error.
          if (answer.status !== 200 && (answer.status < 300 || answer.status >= 400)) {
            throw await this.#answerError(spec, answer);
          }
        }
        const response = await this.#send(spec, tryControl);
        if (response.status !== 200) throw await this.#httpError(spec, response);
        try {
          sink = await local(open);
        } catch (error) {
          await response.body?.cancel().catch(() => {});
          throw error;
        }
        const writable = sink.writable;
        if (response.body !== null && writable !== undefined) {
          // The body piped into the sink natively. The bytes it holds growing restarts the idle
          // timer; the pipe follows the try's signal, so a timeout ends it.
          const target = sink;
          let seen = 0;
          let ended = false;
          monitor = setInterval(() => {
            target.written?.().then((size) => {
              if (size > seen && !ended) tryControl.restart();
              seen = Math.max(seen, size);
            }, () => {});
          }, pollMs);
          try {
            await response.body.pipeTo(writable, { signal: tryControl.signal });
          } catch (error) {
            if (isFileError(error)) localError = { error };
            throw error;
          } finally {
            ended = true;
          }
        } else if (response.body !== null) {
          // A chunk restarts the idle timer through a flag the monitor reads: cheaper than a
          // timer per chunk. The fetch follows the try's signal, so a timeout errors the read.
          let progressed = false;
          monitor = setInterval(() => {
            if (progressed) tryControl.restart();
            progressed = false;
          }, pollMs);
          // Read into one buffer, reused (the sink is done with it when write settles): a
          // new array per chunk left tens of MiB of dead chunks to the garbage collector.
          const reader = response.body.getReader({ mode: "byob" });
          let buffer = new Uint8Array(DOWNLOAD_BUFFER_BYTES);
          try {
            while (true) {
              const { done, value } = await reader.read(buffer);
              if (done || value === undefined) break;
              buffer = new Uint8Array(value.buffer);
              progressed = true;
              let wait: Promise<void> | undefined;
              try {
                wait = sink.write(value);
                if (wait !== undefined) await wait;
              } catch (error) {
                localError = { error };
                throw error;
              }
            }
          } catch (error) {
            await reader.cancel(error).catch(() => {});
            throw error;
          }
        }
        const target = sink;
        sink = undefined;
        return await local(() => target.finish());
      } catch (error) {
        sink?.abort();
        if (localError !== undefined && localError.error === error) throw error;
        throw this.#wrapTransport(spec, error, tryControl);
      } finally {
        clearInterval(monitor);
        tryControl.done();
      }
    });
  }

  /** Uploads one object as a raw `application/octet-stream` body (streamed). */
  async uploadObject(
    repo: string,
    branch: string,
    path: string,
    body: () => Promise<ReadableStream<Uint8Array> | Uint8Array>,
    options: { size?: number; contentType?: string; signal?: AbortSignal } = {},
  ): Promise<ObjectStats> {
    const spec: RequestSpec = {
      operation: "uploadObject",
      method: "POST",
      path: `/repositories/${encode(repo)}/branches/${encode(branch)}/objects`,
      query: { path },
      upload: {
        body,
        contentType: options.contentType ?? "application/octet-stream",
        ...(options.size === undefined ? {} : { size: options.size }),
      },
      signal: options.signal,
    };
    return await this.#call(spec, () => this.#json(spec, [201], objectStatsSchema)) as ObjectStats;
  }

  /** Deletes one object (no error when it is missing). */
  async deleteObject(
    repo: string,
    branch: string,
    path: string,
    signal?: AbortSignal,
  ): Promise<void> {
    const spec: RequestSpec = {
      operation: "deleteObject",
      method: "DELETE",
      path: `/repositories/${encode(repo)}/branches/${encode(branch)}/objects`,
      query: { path },
      signal,
    };
    await this.#deleteIdempotently(spec);
  }

  /**
   * Deletes many objects in requests of at most 1,000 paths. Throws a {@linkcode LakeFsError}
   * listing the first failures when the server reports per-path errors.
   */
  async deleteObjects(
    repo: string,
    branch: string,
    paths: string[],
    signal?: AbortSignal,
  ): Promise<void> {
    for (let start = 0; start < paths.length; start += MAX_DELETE_PATHS) {
      const chunk = paths.slice(start, start + MAX_DELETE_PATHS);
      const spec: RequestSpec = {
        operation: "deleteObjects",
        method: "POST",
        path: `/repositories/${encode(repo)}/branches/${encode(branch)}/objects/delete`,
        json: { paths: chunk },
        signal,
      };
      const result = await this.#call(
        spec,
        () => this.#json(spec, [200, 204], objectErrorListSchema.optional()),
      );
      const errors = result?.errors ?? [];
      if (errors.length > 0) {
        const shown = errors.slice(0, 3).map((e) =>
          `${JSON.stringify(e.path ?? "")}: ${e.status_code} ${e.message}`
        ).join("; ");
        throw new LakeFsError({
          operation: "deleteObjects",
          status: 200,
          serverMessage: `${errors.length} path(s) not deleted: ${shown}`,
        });
      }
    }
  }

  // ---------------------------------------------------------------- branches

  /**
   * Creates a branch from `source` (a branch, commit id or other ref) and returns the source
   * commit id. When a retried request gets 409 (the first try created the branch but its
   * answer was lost), the existing branch counts as created if it points at the commit
   * `source` resolves to; otherwise the {@linkcode LakeFsConflictError} stands.
   */
  async createBranch(
    repo: string,
    name: string,
    source: string,
    signal?: AbortSignal,
  ): Promise<string> {
    const spec: RequestSpec = {
      operation: "createBranch",
      method: "POST",
      path: `/repositories/${encode(repo)}/branches`,
      json: { name, source },
      signal,
    };
    return await this.#call(spec, async (attempt) => {
      try {
        const text = (await this.#text(spec, [201])).trim();
        // Some servers JSON-encode the string; accept both.
        const id = text.startsWith('"') ? JSON.parse(text) as unknown : text;
        if (typeof id !== "string" || id === "") {
          throw new LakeFsError({
            operation: "createBranch",
            status: 201,
            serverMessage: "empty commit id",
          }, `lakeFS createBranch returned an unexpected body: ${text.slice(0, 100)}`);
        }
        return id;
      } catch (error) {
        if (attempt > 1 && error instanceof LakeFsConflictError) {
          const [existing, wanted] = await Promise.all([
            this.getBranch(repo, name, signal),
            this.getCommit(repo, source, signal),
          ]);
          if (existing.commit_id === wanted.id) return wanted.id;
        }
        throw error;
      }
    });
  }

  /** Reads a branch: its id and head commit id. */
  async getBranch(repo: string, name: string, signal?: AbortSignal): Promise<Ref> {
    return await this.#get(
      "getBranch",
      `/repositories/${encode(repo)}/branches/${encode(name)}`,
      refSchema,
      signal,
    );
  }

  /** All branches (optionally under a name prefix), page by page. */
  async *listBranches(
    repo: string,
    options: { prefix?: string; signal?: AbortSignal } = {},
  ): AsyncIterable<Ref> {
    const pages = this.#paginate(
      "listBranches",
      refListSchema,
      `/repositories/${encode(repo)}/branches`,
      { prefix: options.prefix },
      { signal: options.signal },
    );
    for await (const ref of pages) yield { id: ref.id, commit_id: ref.commit_id };
  }

  /**
   * Deletes a branch. A retried request that finds the branch gone (the first try deleted it)
   * succeeds.
   */
  async deleteBranch(repo: string, name: string, signal?: AbortSignal): Promise<void> {
    const spec: RequestSpec = {
      operation: "deleteBranch",
      method: "DELETE",
      path: `/repositories/${encode(repo)}/branches/${encode(name)}`,
      signal,
    };
    await this.#deleteIdempotently(spec);
  }

  /**
   * Points `branch` at `ref` (the branch must have no uncommitted changes).
   * `options.requestTimeoutMs` replaces the client's timeout of each try of this request.
   */
  async hardReset(
    repo: string,
    branch: string,
    ref: string,
    signal?: AbortSignal,
    options: { requestTimeoutMs?: number } = {},
  ): Promise<void> {
    const spec: RequestSpec = {
      operation: "hardReset",
      method: "PUT",
      path: `/repositories/${encode(repo)}/branches/${encode(branch)}/hard_reset`,
      query: { ref },
      signal,
      timeoutMs: optionalTimeout(options.requestTimeoutMs),
    };
    await this.#call(spec, () => this.#empty(spec, [204]));
  }

  // ---------------------------------------------------------------- commits and merges

  /**
   * Commits the staged changes of `branch`; {@linkcode LakeFsNoChangesError} when there are
   * none. When a retried request gets "no changes" and the branch head is a commit with this
   * message and metadata (the first try committed but its answer was lost), that commit is
   * returned.
   */
  async commit(
    repo: string,
    branch: string,
    message: string,
    options: { metadata?: Record<string, string>; allowEmpty?: boolean; signal?: AbortSignal } = {},
  ): Promise<Commit> {
    const spec: RequestSpec = {
      operation: "commit",
      method: "POST",
      path: `/repositories/${encode(repo)}/branches/${encode(branch)}/commits`,
      json: {
        message,
        metadata: options.metadata ?? {},
        ...(options.allowEmpty ? { allow_empty: true } : {}),
      },
      signal: options.signal,
    };
    return await this.#call(spec, async (attempt) => {
      try {
        return await this.#json(spec, [201], commitSchema) as Commit;
      } catch (error) {
        if (attempt > 1 && error instanceof LakeFsNoChangesError) {
          const head = await this.getCommit(repo, branch, options.signal);
          if (
            head.message === message &&
            sameMetadata(head.metadata ?? {}, options.metadata ?? {})
          ) return head;
        }
        throw error;
      }
    });
  }

  /** Reads a commit by id or by any ref that resolves to one. */
  async getCommit(repo: string, ref: string, signal?: AbortSignal): Promise<Commit> {
    return await this.#get(
      "getCommit",
      `/repositories/${encode(repo)}/commits/${encode(ref)}`,
      commitSchema,
      signal,
    ) as Commit;
  }

  /**
   * Merges `source` into the branch `destination` and returns the resulting commit id.
   * 409 conflict -> {@linkcode LakeFsConflictError}; nothing to merge ->
   * {@linkcode LakeFsNoChangesError}; 429 "Too many attempts" and 503 are retried.
   *
   * A merge is not idempotent: lakeFS merges a squash source again as a second commit. So
   * before a retry re-sends, the destination's recent history is searched for a commit with
   * this message and (a superset of) this metadata: when the earlier try merged but its answer
   * was lost, that commit is returned and nothing is merged twice. Give metadata that is unique
   * to the merge (perago's include the execution id) for this to be exact.
   */
  async merge(
    repo: string,
    source: string,
    destination: string,
    options: MergeOptions = {},
  ): Promise<string> {
    const spec: RequestSpec = {
      operation: "merge",
      method: "POST",
      path: `/repositories/${encode(repo)}/refs/${encode(source)}/merge/${encode(destination)}`,
      json: {
        ...(options.message === undefined ? {} : { message: options.message }),
        ...(options.metadata === undefined ? {} : { metadata: options.metadata }),
        ...(options.strategy === undefined ? {} : { strategy: options.strategy }),
        ...(options.squashMerge ? { squash_merge: true } : {}),
        ...(options.allowEmpty ? { allow_empty: true } : {}),
      },
      signal: options.signal,
      timeoutMs: optionalTimeout(options.requestTimeoutMs),
    };
    const recognisable = options.message !== undefined;
    return await this.#call(spec, async (attempt) => {
      if (attempt > 1 && recognisable) {
        const landed = await this.#findLandedMerge(repo, destination, options);
        if (landed !== undefined) return landed;
      }
      const result = await this.#json(spec, [200], mergeResultSchema);
      return result.reference;
    });
  }

  /**
   * A commit among the destination's latest {@linkcode MERGE_RECONCILE_DEPTH} whose message
   * is `options.message` and whose metadata holds every key of `options.metadata`.
   */
  async #findLandedMerge(
    repo: string,
    destination: string,
    options: MergeOptions,
  ): Promise<string | undefined> {
    const wanted = options.metadata ?? {};
    let seen = 0;
    const log = this.logCommits(repo, destination, {
      amount: MERGE_RECONCILE_DEPTH,
      ...(options.signal === undefined ? {} : { signal: options.signal }),
    });
    for await (const commit of log) {
      const metadata = commit.metadata ?? {};
      if (
        commit.message === options.message &&
        Object.entries(wanted).every(([key, value]) => metadata[key] === value)
      ) return commit.id;
      if (++seen >= MERGE_RECONCILE_DEPTH) return undefined;
    }
    return undefined;
  }

  /**
   * The differences between two refs under an optional prefix, in path order. perago asks for
   * `two_dot` (the two trees compared) unless told otherwise.
   */
  diffRefs(
    repo: string,
    left: string,
    right: string,
    options: DiffRefsOptions = {},
  ): AsyncIterable<DiffEntry> {
    return this.#paginate(
      "diffRefs",
      diffListSchema,
      `/repositories/${encode(repo)}/refs/${encode(left)}/diff/${encode(right)}`,
      {
        prefix: options.prefix === "" ? undefined : options.prefix,
        type: options.type ?? "two_dot",
      },
      options,
    ) as AsyncIterable<DiffEntry>;
  }

  /** The commits reachable from `ref`, newest first; with `stopAt`, up to that commit. */
  logCommits(repo: string, ref: string, options: LogCommitsOptions = {}): AsyncIterable<Commit> {
    return this.#paginate(
      "logCommits",
      commitListSchema,
      `/repositories/${encode(repo)}/refs/${encode(ref)}/commits`,
      { stop_at: options.stopAt },
      options,
    ) as AsyncIterable<Commit>;
  }

  /**
   * Reverts the single-parent commit `ref` on `branch` (a new commit undoing its changes).
   * 409 (later commits changed the same paths) -> {@linkcode LakeFsConflictError}. Not retried
   * after a lost answer: a second revert would undo the changes twice, so a transport failure
   * is reported as it is.
   */
  async revertCommit(
    repo: string,
    branch: string,
    ref: string,
    options: RevertOptions = {},
  ): Promise<void> {
    const overrides = {
      ...(options.message === undefined ? {} : { message: options.message }),
      ...(options.metadata === undefined ? {} : { metadata: options.metadata }),
    };
    const spec: RequestSpec = {
      operation: "revertCommit",
      method: "POST",
      path: `/repositories/${encode(repo)}/branches/${encode(branch)}/revert`,
      json: {
        ref,
        parent_number: 0,
        ...(Object.keys(overrides).length === 0 ? {} : { commit_overrides: overrides }),
      },
      signal: options.signal,
    };
    await this.#empty(spec, [204, 200]);
  }

  // ---------------------------------------------------------------- plumbing

  /** A GET answered 200 with a JSON body `schema` accepts, retried like any call. */
  async #get<S extends z.ZodType>(
    operation: string,
    path: string,
    schema: S,
    signal: AbortSignal | undefined,
  ): Promise<z.infer<S>> {
    const spec: RequestSpec = { operation, method: "GET", path, signal };
    return await this.#call(spec, () => this.#json(spec, [200], schema));
  }

  /** Runs one call, retrying transient errors. `fn` gets the 1-based try number. */
  #call<T>(spec: RequestSpec, fn: (attempt: number) => Promise<T>): Promise<T> {
    return retryTransient(fn, this.#retry, spec.signal);
  }

  /**
   * Walks a paginated listing of `path` (GET, `query` plus `after` and `amount`): one request
   * per page (each retried like any call), the results yielded in order. A page that says
   * `has_more` without a new `next_offset` would loop forever, so it is an error naming the
   * call.
   */
  #paginate<T>(
    operation: string,
    schema: z.ZodType<{ pagination: { has_more: boolean; next_offset: string }; results: T[] }>,
    path: string,
    query: RequestSpec["query"],
    range: {
      after?: string | undefined;
      amount?: number | undefined;
      signal?: AbortSignal | undefined;
    },
  ): AsyncIterable<T> {
    return paginate(
      async (after) => {
        const spec: RequestSpec = {
          operation,
          method: "GET",
          path,
          query: {
            ...query,
            after: after === "" ? undefined : after,
            amount: range.amount ?? 1000,
          },
          signal: range.signal,
        };
        const page = await this.#call(spec, () => this.#json(spec, [200], schema));
        return {
          results: page.results,
          hasMore: page.pagination.has_more,
          next: page.pagination.next_offset,
        };
      },
      range.after ?? "",
      () =>
        new LakeFsError({
          operation,
          status: 200,
          serverMessage: "has_more without a new next_offset (the listing would loop)",
        }, `lakeFS ${operation} returned an unexpected body: has_more without a new next_offset`),
    );
  }

  /** One try of a JSON call: send, check status, read and validate the body. */
  async #json<S extends z.ZodType>(
    spec: RequestSpec,
    ok: number[],
    schema: S,
  ): Promise<z.infer<S>> {
    const text = await this.#text(spec, ok);
    const answer = parseJsonAnswer(text, schema, { emptyIsUndefined: true });
    if (answer.ok) return answer.data;
    throw answer.notJson
      ? this.#badBody(spec, `not JSON: ${answer.detail}`, answer.cause)
      : this.#badBody(spec, answer.detail);
  }

  /** One try of a call answered with no body worth reading. */
  async #empty(spec: RequestSpec, ok: number[]): Promise<void> {
    await this.#text(spec, ok);
  }

  /** One try: send, check the status, read the whole (small) body as text. */
  async #text(spec: RequestSpec, ok: number[]): Promise<string> {
    const tryControl = this.#tryControl(spec.signal, spec.timeoutMs);
    try {
      const response = await this.#send(spec, tryControl);
      if (!ok.includes(response.status)) throw await this.#httpError(spec, response);
      return await response.text();
    } catch (error) {
      throw this.#wrapTransport(spec, error, tryControl);
    } finally {
      tryControl.done();
    }
  }

  /** Sends one HTTP request. */
  async #send(spec: RequestSpec, tryControl: RequestTimer): Promise<Response> {
    const signal = tryControl.signal;
    const url = requestUrl(this.baseUrl, spec.path, spec.query);
    // A plain record: fetch makes its own Headers from it (a Headers made here was copied).
    const headers = this.#headers();
    let body: BodyInit | undefined;
    if (spec.json !== undefined) {
      headers["content-type"] = "application/json";
      body = JSON.stringify(spec.json);
    } else if (spec.upload) {
      headers["content-type"] = spec.upload.contentType;
      let source = await spec.upload.body();
      const size = spec.upload.size;
      if (!(source instanceof Uint8Array) && size !== undefined && size <= SMALL_UPLOAD_MAX_BYTES) {
        // Read whole (one byte more than announced, so a file that grew is caught by the
        // caller's size check): one fetch, and no node:http loaded for a small change.
        source = await readAtMost(source, size + 1, () => tryControl.restart());
      }
      if (source instanceof Uint8Array) {
        body = source as Uint8Array<ArrayBuffer>;
      } else {
        if (spec.upload.size !== undefined) {
          headers["content-length"] = String(spec.upload.size);
        }
        // The timeout of an upload is the longest pause between two chunks sent.
        return await streamingPost(
          url,
          new Headers(headers),
          source,
          signal,
          () => tryControl.restart(),
        );
      }
    }
    return await fetch(url, { method: spec.method, headers, body: body ?? null, signal });
  }

  /** The headers of every request. */
  #headers(): Record<string, string> {
    return {
      "accept": "application/json",
      "authorization": this.#authorization(),
      "user-agent": this.#userAgent,
    };
  }

  /**
   * The `authorization` header, encoded again only when the revealed secret changes:
   * encoding it on every request was most of a small download's header work (node's Buffer,
   * in a profile of 1,000 object reads).
   */
  #authorization(): string {
    const secret = revealSecret(this.#secret);
    if (this.#authorizationHeader?.secret !== secret) {
      this.#authorizationHeader = {
        secret,
        header: basicAuthorization(this.#accessKeyId, secret),
      };
    }
    return this.#authorizationHeader.header;
  }

  /** Builds the error for an unexpected HTTP status (429 and 5xx are transient). */
  async #httpError(spec: RequestSpec, response: Response): Promise<LakeFsError> {
    // A body that fails to arrive is a transport failure (a dropped connection), which the
    // caller's catch turns into a retryable error; it must not pass as this status.
    const text = await response.text();
    const message = serverMessageOf(text) || response.statusText || "(no message)";
    return lakeFsErrorFor({
      operation: spec.operation,
      status: response.status,
      serverMessage: message,
      retryAfterMs: parseRetryAfterMs(response.headers.get("retry-after")),
    });
  }

  #badBody(spec: RequestSpec, detail: string, cause?: unknown): LakeFsError {
    return new LakeFsError({
      operation: spec.operation,
      status: 0,
      serverMessage: `unexpected body: ${detail}`,
      cause,
    }, `lakeFS ${spec.operation} returned an unexpected body: ${detail}`);
  }

  /**
   * Turns a transport failure of one try into a transient {@linkcode LakeFsError}; leaves
   * LakeFsErrors and the caller's own abort unchanged.
   */
  #wrapTransport(spec: RequestSpec, error: unknown, tryControl: RequestTimer): unknown {
    if (error instanceof LakeFsError) return error;
    if (spec.signal?.aborted) return spec.signal.reason;
    const timedOut = tryControl.timedOut;
    const detail = timedOut
      ? `timed out after ${tryControl.timeoutMs} ms`
      : `network error: ${error instanceof Error ? error.message : String(error)}`;
    return new LakeFsError({
      operation: spec.operation,
      status: 0,
      serverMessage: detail,
      transient: true,
      cause: error,
    });
  }

  /** A per-try abort controller with a restartable timer, combined with the caller's signal. */
  #tryControl(callerSignal: AbortSignal | undefined, timeoutMs?: number): RequestTimer {
    return new RequestTimer(timeoutMs ?? this.#timeoutMs, callerSignal, "lakeFS");
  }

  async #readChunk(
    reader: ReadableStreamDefaultReader<Uint8Array>,
  ): Promise<ReadableStreamReadResult<Uint8Array>> {
    try {
      return await reader.read();
    } catch (error) {
      await reader.cancel(error).catch(() => {});
      throw error;
    }
  }

  /**
   * Sends a DELETE expecting 204. A retry that finds the target gone (404) succeeds: the
   * try whose answer was lost deleted it (older servers answer 404 for a missing object too).
   */
  async #deleteIdempotently(spec: RequestSpec): Promise<void> {
    await this.#call(spec, async (attempt) => {
      try {
        await this.#empty(spec, [204]);
      } catch (error) {
        if (!(attempt > 1 && error instanceof LakeFsNotFoundError)) throw error;
      }
    });
  }

  /**
   * Re-emits an object body after its first chunk. The try's timer keeps running and restarts
   * on every chunk (only the time is noted, no promise per chunk): when no chunk arrives
   * within the request timeout, the try's signal ends the pipe and the stream errors with a
   * {@linkcode LakeFsError}; the caller's signal ends it the same way (the try's signal
   * follows it). The body is piped with back-pressure (high-water marks of one
   * chunk), so at most a few chunks are held whatever the consumer's pace.
   */
  #idleTimedStream(
    spec: RequestSpec,
    body: ReadableStream<Uint8Array>,
    first: ReadableStreamReadResult<Uint8Array>,
    tryControl: RequestTimer,
  ): ReadableStream<Uint8Array> {
    const timeoutMs = this.#timeoutMs;
    const relay = new TransformStream<Uint8Array, Uint8Array>({
      start: (controller) => {
        if (!first.done) controller.enqueue(first.value);
      },
      transform: (chunk, controller) => {
        tryControl.restart();
        controller.enqueue(chunk);
      },
    });
    tryControl.restart();
    if (first.done) {
      tryControl.done();
      void body.cancel().catch(() => {});
      void relay.writable.close().catch(() => {});
      return relay.readable;
    }
    // The pipe follows the try's signal itself: aborting the fetch alone does not always end
    // a body being piped (Deno 2.9: about one in four timed-out reads under load left the pipe
    // pending for good, and the reader waiting with it).
    body.pipeTo(relay.writable, { preventAbort: true, signal: tryControl.signal }).then(
      () => tryControl.done(),
      async (error) => {
        tryControl.done();
        const reason = tryControl.timedOut
          ? new LakeFsError({
            operation: spec.operation,
            status: 0,
            serverMessage: `body stalled for ${timeoutMs} ms`,
            cause: error,
          })
          : spec.signal?.aborted
          ? spec.signal.reason
          : error;
        await relay.writable.abort(reason).catch(() => {});
      },
    );
    return relay.readable;
  }
}

/**
 * Stream uploads up to this size (as announced) are read into memory and sent by `fetch`;
 * larger ones stream through `node:http` (`_stream_upload.ts`).
 */
const SMALL_UPLOAD_MAX_BYTES = 256 * 1024;

/** The buffer a download reads its body into (one per download in flight). */
const DOWNLOAD_BUFFER_BYTES = 256 * 1024;

/**
 * Whether a failed pipe into a sink failed on the file's side (a full disk, a file removed):
 * the sink's error, not retried. A body that stops arrives as a `TypeError`, an abort or a
 * timeout as a `DOMException`, a dropped connection as one of the connection errors.
 */
function isFileError(error: unknown): boolean {
  if (!(error instanceof Error) || error instanceof TypeError) return false;
  if (typeof DOMException === "function" && error instanceof DOMException) return false;
  const e = Deno.errors;
  for (
    const transport of [
      e.ConnectionReset,
      e.ConnectionAborted,
      e.ConnectionRefused,
      e.NotConnected,
      e.BrokenPipe,
      e.UnexpectedEof,
      e.TimedOut,
      e.Interrupted,
      e.Http,
    ]
  ) {
    if (error instanceof transport) return false;
  }
  return error instanceof e.NotFound || error instanceof e.PermissionDenied ||
    error instanceof e.BadResource || error instanceof e.NotCapable ||
    /os error/.test(error.message);
}

/** The GET of an object's content (`getObject`). */
function objectSpec(
  repo: string,
  ref: string,
  path: string,
  signal: AbortSignal | undefined,
): RequestSpec {
  return {
    operation: "getObject",
    method: "GET",
    path: `/repositories/${encode(repo)}/refs/${encode(ref)}/objects`,
    query: { path },
    signal,
  };
}

function optionalTimeout(value: number | undefined): number | undefined {
  return value === undefined ? undefined : positive("requestTimeoutMs", value);
}

function positive(name: string, value: number): number {
  if (!(typeof value === "number" && value > 0)) {
    throw new RangeError(`lakeFS client: ${name} must be a positive number, got ${value}`);
  }
  return value;
}

function nonNegative(name: string, value: number): number {
  if (!(typeof value === "number" && value >= 0)) {
    throw new RangeError(`lakeFS client: ${name} must be a non-negative number, got ${value}`);
  }
  return value;
}

function sameMetadata(a: Record<string, string>, b: Record<string, string>): boolean {
  const keys = Object.keys(b);
  return keys.length === Object.keys(a).length && keys.every((k) => a[k] === b[k]);
}

/**
 * A sink as the body target of a kept-alive connection's read: its own `space` and `filled`
 * when it has them, else a buffer of this read's handed to its `write` after each read. Each
 * error of the sink's is told to `onError` (the sink's own, never retried) before it is thrown.
 */
function sinkTarget(sink: ObjectSink, onError: (error: unknown) => void): Http1BodyTarget {
  const own = <T>(fn: () => T): T => {
    try {
      const value = fn();
      if (!(value instanceof Promise)) return value;
      return value.catch((error: unknown) => {
        onError(error);
        throw error;
      }) as T;
    } catch (error) {
      onError(error);
      throw error;
    }
  };
  const { space, filled } = sink;
  if (space !== undefined && filled !== undefined) {
    return {
      space: () => own(() => space.call(sink)),
      filled: (n) => own(() => filled.call(sink, n)),
    };
  }
  const buffer = new Uint8Array(DOWNLOAD_BUFFER_BYTES);
  return {
    space: () => buffer,
    filled: (n) => own(() => sink.write(buffer.subarray(0, n))),
  };
}
