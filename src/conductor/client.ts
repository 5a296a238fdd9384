/**
 * The HTTP client of the Conductor REST API: polling, task results, task look-ups,
 * metadata, workflows. Every call has a timeout, answers are validated with zod, and safe
 * calls are retried with backoff and jitter.
 *
 * Requires `--allow-net` to the Conductor host.
 *
 * @module
 */
import type { z } from "../vendor/zod.ts";
import { VERSION } from "../version.ts";
import {
  parseJsonAnswer,
  RequestTimer,
  requestUrl,
  type RetryPolicy,
  retryTransient,
  revealSecret,
  type SecretInput,
  serverMessageOf,
} from "../util/http.ts";
import { parseRetryAfterMs } from "../util/retry.ts";
import type {
  ConductorApi,
  PollOptions,
  StartWorkflowOptions,
  Task,
  TaskDef,
  TaskResult,
  Workflow,
  WorkflowDef,
} from "./api.ts";
import { ConductorError, ConductorNotFoundError } from "./errors.ts";
import {
  taskDefSchema,
  taskListSchema,
  taskSchema,
  tokenSchema,
  workflowSchema,
} from "./_schemas.ts";

export type { SecretInput };

/** Options of {@linkcode ConductorClient}. */
export interface ConductorClientOptions {
  /** Server URL, with or without the `/api` suffix, e.g. `http://127.0.0.1:8080`. */
  serverUrl: string;
  /** Orkes-style application key id; with `authSecret`, enables token auth. */
  authKey?: string | undefined;
  /** Orkes-style application key secret. Never appears in errors or logs. */
  authSecret?: SecretInput | undefined;
  /** Timeout of one HTTP request in ms (long polls get their poll time on top). @default 30000 */
  requestTimeoutMs?: number;
  /** Backoff of retried calls. @default {attempts: 4, baseDelayMs: 250, maxDelayMs: 5000} */
  retry?: { attempts?: number; baseDelayMs?: number; maxDelayMs?: number };
  /** User-Agent header. @default `perago/<version>` */
  userAgent?: string;
  /** fetch implementation, for tests. @default globalThis.fetch */
  fetch?: typeof fetch;
}

interface RequestSpec<T> {
  operation: string;
  method: "GET" | "POST" | "PUT" | "DELETE";
  path: string;
  query?: Record<string, string | number | undefined>;
  body?: unknown;
  /** `text` for text/plain bodies. */
  bodyType?: "json" | "text";
  signal?: AbortSignal | undefined;
  timeoutMs?: number;
  /** Retry transient failures (network, 429, 5xx). */
  retry: boolean;
  /** Parses a successful answer (status 2xx); `text` is the raw body. */
  parse: (text: string, status: number) => T;
  /** Statuses handled by `parse` instead of throwing. */
  accept?: number[];
}

/**
 * Whether `error` says the server has no such endpoint (an older Conductor asked for
 * `update-v2`): 405/501, or Spring's answer for an unmapped route, which Conductor 3.21
 * sends as a 404 ("No static resource ...") or a 500 ("Request method 'POST' is not
 * supported"). A 404 about the task or workflow ("No such ...") is not one.
 */
function lacksEndpoint(error: unknown): boolean {
  if (!(error instanceof ConductorError) || error.status === undefined) return false;
  if (error.status === 405 || error.status === 501) return true;
  if (error.status !== 404 && error.status !== 500) return false;
  return /not supported|no static resource|no handler found|no endpoint/i.test(
    error.serverMessage ?? "",
  );
}

/** Turns `serverUrl` into the API base (`.../api`) and the root (for `/health`). */
export function normaliseConductorUrl(serverUrl: string): { apiBase: string; root: string } {
  let url: URL;
  try {
    url = new URL(serverUrl);
  } catch (cause) {
    throw new TypeError(`Conductor server URL is invalid: ${serverUrl}; give http(s)://host:port`, {
      cause,
    });
  }
  if (url.protocol !== "http:" && url.protocol !== "https:") {
    throw new TypeError(`Conductor server URL must be http(s): ${serverUrl}`);
  }
  url.search = "";
  url.hash = "";
  let path = url.pathname.replace(/\/+$/, "");
  if (path.endsWith("/api")) path = path.slice(0, -4);
  const root = `${url.origin}${path}`;
  return { apiBase: `${root}/api`, root };
}

function parseJson<S extends z.ZodType>(
  operation: string,
  schema: S,
  text: string,
  status: number,
): z.output<S> {
  const answer = parseJsonAnswer(text, schema);
  if (answer.ok) return answer.data;
  throw new ConductorError({
    operation,
    status,
    serverMessage: answer.notJson
      ? `malformed JSON answer (${answer.detail})`
      : `unexpected answer shape (${answer.detail})`,
    transient: false,
    cause: answer.cause,
  });
}

/**
 * A `parse` for answers that may be empty: Conductor answers "nothing" (no task to hand out, no
 * such definition) with an empty 204 or an empty body, which becomes `whenEmpty`.
 */
function parseJsonOrEmpty<S extends z.ZodType, E>(
  operation: string,
  schema: S,
  whenEmpty: E,
): (text: string, status: number) => z.output<S> | E {
  return (text, status) =>
    status === 204 || text.trim() === "" ? whenEmpty : parseJson(operation, schema, text, status);
}

/**
 * {@linkcode ConductorApi} over HTTP.
 *
 * Retry policy: GETs, `updateTask` and the idempotent metadata upserts are retried on network
 * errors, 429 and 5xx. `pollBatch` is **not** retried: a poll whose answer was lost has
 * already marked its tasks IN_PROGRESS, so the caller's next poll is the retry and the lost
 * tasks come back after their response timeout. `startWorkflow` and `addTaskLog` are not
 * retried either (a repeat would start a second workflow or log twice).
 *
 * @example
 * ```ts ignore
 * const client = new ConductorClient({ serverUrl: "http://127.0.0.1:8080/api" });
 * const tasks = await client.pollBatch("my_task", { count: 2, timeoutMs: 1000, workerId: "w1" });
 * ```
 */
export class ConductorClient implements ConductorApi {
  readonly #apiBase: string;
  readonly #root: string;
  readonly #authKey: string | undefined;
  readonly #authSecret: SecretInput | undefined;
  readonly #requestTimeoutMs: number;
  readonly #retry: RetryPolicy;
  readonly #userAgent: string;
  readonly #fetch: typeof fetch;
  #token: string | undefined;
  /** Whether the server has `update-v2`: unknown until it answers. */
  #updateV2: boolean | undefined;
  #tokenPromise: Promise<string> | undefined;

  constructor(options: ConductorClientOptions) {
    const { apiBase, root } = normaliseConductorUrl(options.serverUrl);
    this.#apiBase = apiBase;
    this.#root = root;
    if ((options.authKey === undefined) !== (options.authSecret === undefined)) {
      throw new TypeError("Conductor auth: give both authKey and authSecret, or neither");
    }
    this.#authKey = options.authKey;
    this.#authSecret = options.authSecret;
    const timeout = options.requestTimeoutMs ?? 30_000;
    if (!(timeout > 0)) throw new RangeError(`requestTimeoutMs must be > 0, got ${timeout}`);
    this.#requestTimeoutMs = timeout;
    this.#retry = Object.freeze({
      attempts: options.retry?.attempts ?? 4,
      baseDelayMs: options.retry?.baseDelayMs ?? 250,
      maxDelayMs: options.retry?.maxDelayMs ?? 5_000,
    });
    this.#userAgent = options.userAgent ?? `perago/${VERSION}`;
    this.#fetch = options.fetch ?? globalThis.fetch.bind(globalThis);
  }

  /** The API base URL, ending in `/api`. */
  get apiBase(): string {
    return this.#apiBase;
  }

  /** `GET /api/tasks/poll/batch/{taskType}`; `[]` when nothing is queued. Not retried. */
  async pollBatch(taskType: string, options: PollOptions): Promise<Task[]> {
    if (!Number.isInteger(options.count) || options.count < 1) {
      throw new RangeError(`pollBatch: count must be an integer >= 1, got ${options.count}`);
    }
    if (!(options.timeoutMs >= 0)) {
      throw new RangeError(`pollBatch: timeoutMs must be >= 0, got ${options.timeoutMs}`);
    }
    return await this.#request({
      operation: "pollBatch",
      method: "GET",
      path: `/tasks/poll/batch/${encodeURIComponent(taskType)}`,
      query: {
        count: options.count,
        timeout: options.timeoutMs,
        workerid: options.workerId,
        domain: options.domain,
      },
      signal: options.signal,
      // The server holds a long poll for up to timeoutMs: the request must outlive it.
      timeoutMs: this.#requestTimeoutMs + options.timeoutMs,
      retry: false,
      accept: [204],
      parse: parseJsonOrEmpty("pollBatch", taskListSchema, []),
    });
  }

  /** `POST /api/tasks`; returns the task id the server echoes. Retried on transient errors. */
  async updateTask(result: TaskResult, signal?: AbortSignal): Promise<string> {
    return await this.#request(this.#updateSpec(result, signal));
  }

  /**
   * `POST /api/tasks/update-v2`: the update, and the next task of the type (`undefined` when
   * none). Retried on transient errors like {@linkcode updateTask}. Until the endpoint has
   * answered once, an answer saying the server lacks it (405, or Spring's "not supported" /
   * "No static resource") switches this client to plain updates for good.
   */
  async updateTaskV2(result: TaskResult, signal?: AbortSignal): Promise<Task | undefined> {
    const plain = async () => {
      await this.#requestWithAuth(this.#updateSpec(result, signal));
      return undefined;
    };
    if (this.#updateV2 === false) return await retryTransient(plain, this.#retry, signal);
    return await retryTransient(
      async () => {
        if (this.#updateV2 === false) return await plain();
        try {
          const next = await this.#requestWithAuth({
            operation: "updateTaskV2",
            method: "POST",
            path: "/tasks/update-v2",
            body: result,
            signal,
            retry: true,
            accept: [204],
            parse: parseJsonOrEmpty("updateTaskV2", taskSchema, undefined),
          });
          this.#updateV2 = true;
          return next;
        } catch (error) {
          if (this.#updateV2 === undefined && lacksEndpoint(error)) {
            this.#updateV2 = false;
            return await plain();
          }
          throw error;
        }
      },
      this.#retry,
      signal,
    );
  }

  #updateSpec(result: TaskResult, signal: AbortSignal | undefined): RequestSpec<string> {
    return {
      operation: "updateTask",
      method: "POST",
      path: "/tasks",
      body: result,
      signal,
      retry: true,
      parse: (text) => text.trim() || result.taskId,
    };
  }

  /** `GET /api/tasks/{taskId}`; throws {@linkcode ConductorNotFoundError} when unknown. */
  async getTask(taskId: string, signal?: AbortSignal): Promise<Task> {
    return await this.#request({
      operation: "getTask",
      method: "GET",
      path: `/tasks/${encodeURIComponent(taskId)}`,
      signal,
      retry: true,
      accept: [204],
      parse: (text, status) => {
        // Conductor 3.21.14 answers an unknown id with an empty 204.
        if (status === 204 || text.trim() === "") {
          throw new ConductorNotFoundError({
            operation: "getTask",
            status: 404,
            serverMessage: `no task ${taskId}`,
          });
        }
        return parseJson("getTask", taskSchema, text, status);
      },
    });
  }

  /** `POST /api/tasks/{taskId}/log` (text body). Not retried. */
  async addTaskLog(taskId: string, line: string, signal?: AbortSignal): Promise<void> {
    await this.#request({
      operation: "addTaskLog",
      method: "POST",
      path: `/tasks/${encodeURIComponent(taskId)}/log`,
      body: line,
      bodyType: "text",
      signal,
      retry: false,
      parse: () => undefined,
    });
  }

  /** `GET /api/metadata/taskdefs/{name}`; `undefined` on 404. */
  async getTaskDef(name: string, signal?: AbortSignal): Promise<TaskDef | undefined> {
    try {
      return await this.#request({
        operation: "getTaskDef",
        method: "GET",
        path: `/metadata/taskdefs/${encodeURIComponent(name)}`,
        signal,
        retry: true,
        accept: [204],
        parse: parseJsonOrEmpty("getTaskDef", taskDefSchema, undefined),
      });
    } catch (error) {
      if (error instanceof ConductorNotFoundError) return undefined;
      throw error;
    }
  }

  /** `POST /api/metadata/taskdefs` (array). */
  async registerTaskDefs(defs: TaskDef[], signal?: AbortSignal): Promise<void> {
    await this.#request({
      operation: "registerTaskDefs",
      method: "POST",
      path: "/metadata/taskdefs",
      body: defs,
      signal,
      retry: true,
      parse: () => undefined,
    });
  }

  /** `PUT /api/metadata/taskdefs` (one, upsert). */
  async updateTaskDef(def: TaskDef, signal?: AbortSignal): Promise<void> {
    await this.#request({
      operation: "updateTaskDef",
      method: "PUT",
      path: "/metadata/taskdefs",
      body: def,
      signal,
      retry: true,
      parse: () => undefined,
    });
  }

  /** `POST /api/metadata/workflow` (one; the server refuses an existing name+version). */
  async registerWorkflowDef(def: WorkflowDef, signal?: AbortSignal): Promise<void> {
    await this.#request({
      operation: "registerWorkflowDef",
      method: "POST",
      path: "/metadata/workflow",
      body: def,
      signal,
      retry: false,
      parse: () => undefined,
    });
  }

  /** `PUT /api/metadata/workflow` (upsert a list). */
  async upsertWorkflowDefs(defs: WorkflowDef[], signal?: AbortSignal): Promise<void> {
    await this.#request({
      operation: "upsertWorkflowDefs",
      method: "PUT",
      path: "/metadata/workflow",
      body: defs,
      signal,
      retry: true,
      parse: () => undefined,
    });
  }

  /**
   * `POST /api/workflow/{name}` -> workflow id; with `taskToDomain` or `correlationId`, a
   * StartWorkflowRequest to `POST /api/workflow`. Not retried (a repeat starts another).
   */
  async startWorkflow(
    name: string,
    input: Record<string, unknown>,
    options: StartWorkflowOptions = {},
  ): Promise<string> {
    const asRequest = options.taskToDomain !== undefined || options.correlationId !== undefined;
    return await this.#request({
      operation: "startWorkflow",
      method: "POST",
      path: asRequest ? "/workflow" : `/workflow/${encodeURIComponent(name)}`,
      query: asRequest ? {} : { version: options.version },
      body: asRequest
        ? {
          name,
          ...(options.version === undefined ? {} : { version: options.version }),
          input,
          ...(options.taskToDomain === undefined ? {} : { taskToDomain: options.taskToDomain }),
          ...(options.correlationId === undefined ? {} : { correlationId: options.correlationId }),
        }
        : input,
      signal: options.signal,
      retry: false,
      parse: (text, status) => {
        const id = text.trim();
        if (id === "") {
          throw new ConductorError({
            operation: "startWorkflow",
            status,
            serverMessage: "empty workflow id",
            transient: false,
          });
        }
        return id;
      },
    });
  }

  /** `GET /api/workflow/{id}?includeTasks=true`; {@linkcode ConductorNotFoundError} on 404. */
  async getWorkflow(workflowId: string, signal?: AbortSignal): Promise<Workflow> {
    return await this.#request({
      operation: "getWorkflow",
      method: "GET",
      path: `/workflow/${encodeURIComponent(workflowId)}`,
      query: { includeTasks: "true" },
      signal,
      retry: true,
      parse: (text, status) => parseJson("getWorkflow", workflowSchema, text, status),
    });
  }

  /** `GET /health` -> true when 200; false when the server is down or unhealthy. */
  async health(signal?: AbortSignal): Promise<boolean> {
    const timer = new RequestTimer(this.#requestTimeoutMs, signal, "Conductor");
    try {
      const response = await this.#fetch(`${this.#root}/health`, {
        headers: { "user-agent": this.#userAgent },
        signal: timer.signal,
      });
      await response.body?.cancel();
      return response.status === 200;
    } catch (error) {
      if (signal?.aborted) throw signal.reason;
      void error;
      return false;
    } finally {
      timer.done();
    }
  }

  async #request<T>(spec: RequestSpec<T>): Promise<T> {
    const once = () => this.#requestWithAuth(spec);
    if (!spec.retry) return await once();
    return await retryTransient(once, this.#retry, spec.signal);
  }

  async #requestWithAuth<T>(spec: RequestSpec<T>): Promise<T> {
    if (this.#authKey === undefined) return await this.#send(spec, undefined);
    const token = await this.#getToken(spec.signal);
    try {
      return await this.#send(spec, token);
    } catch (error) {
      if (error instanceof ConductorError && error.status === 401) {
        // Expired or revoked token: fetch a fresh one once.
        if (this.#token === token) this.#token = undefined;
        return await this.#send(spec, await this.#getToken(spec.signal));
      }
      throw error;
    }
  }

  async #getToken(signal: AbortSignal | undefined): Promise<string> {
    if (this.#token !== undefined) return this.#token;
    if (!this.#tokenPromise) {
      this.#tokenPromise = this.#send({
        operation: "token",
        method: "POST",
        path: "/token",
        body: { keyId: this.#authKey, keySecret: revealSecret(this.#authSecret ?? "") },
        retry: false,
        signal: undefined,
        parse: (text, status) => parseJson("token", tokenSchema, text, status).token,
      }, undefined).then((token) => {
        this.#token = token;
        return token;
      }).finally(() => {
        this.#tokenPromise = undefined;
      });
    }
    const pending = this.#tokenPromise;
    if (!signal) return await pending;
    return await Promise.race([
      pending,
      new Promise<never>((_, reject) => {
        if (signal.aborted) reject(signal.reason);
        signal.addEventListener("abort", () => reject(signal.reason), { once: true });
      }),
    ]);
  }

  async #send<T>(spec: RequestSpec<T>, token: string | undefined): Promise<T> {
    const url = requestUrl(this.#apiBase, spec.path, spec.query, { omitEmpty: true });
    const headers: Record<string, string> = {
      "user-agent": this.#userAgent,
      accept: "application/json, text/plain, */*",
    };
    if (token !== undefined) headers["x-authorization"] = token;
    let body: string | undefined;
    if (spec.body !== undefined) {
      if (spec.bodyType === "text") {
        body = String(spec.body);
        headers["content-type"] = "text/plain";
      } else {
        body = JSON.stringify(spec.body);
        headers["content-type"] = "application/json";
      }
    }
    const timeoutMs = spec.timeoutMs ?? this.#requestTimeoutMs;
    const timer = new RequestTimer(timeoutMs, spec.signal, "Conductor");
    let response: Response;
    let text: string;
    try {
      response = await this.#fetch(url, {
        method: spec.method,
        headers,
        ...(body !== undefined ? { body } : {}),
        signal: timer.signal,
      });
      text = await response.text();
    } catch (cause) {
      if (spec.signal?.aborted) throw spec.signal.reason;
      const timedOut = timer.timedOut;
      throw new ConductorError({
        operation: spec.operation,
        serverMessage: timedOut
          ? `no answer within ${timeoutMs} ms; check that the server at ${this.#root} is up`
          : `network error (${
            (cause as Error)?.message ?? cause
          }); check CONDUCTOR_SERVER_URL ${this.#root} and that the server is up`,
        transient: true,
        cause,
      });
    } finally {
      timer.done();
    }
    const status = response.status;
    if ((status >= 200 && status < 300) || spec.accept?.includes(status)) {
      return spec.parse(text, status);
    }
    const details = { operation: spec.operation, status, serverMessage: serverMessageOf(text) };
    if (status === 404) throw new ConductorNotFoundError(details);
    throw new ConductorError({
      ...details,
      retryAfterMs: parseRetryAfterMs(response.headers.get("retry-after")),
    });
  }
}
