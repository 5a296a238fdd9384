/**
 * The demo lakeFS server: an independent, small implementation of the lakeFS REST API (`/api/v1`)
 * that perago, lakectl and the official lakeFS SDKs can talk to. Repositories, branches with staged
 * changes, commits, three-way merges and objects stored by content hash (on disk, streamed, never
 * buffered whole). Fault injection via {@linkcode FaultInjector} (admin endpoint
 * `/_perago/faults`).
 *
 * Requires `--allow-net` (to listen) and `--allow-read`/`--allow-write` to the data directory
 * (or the system temp directory without one).
 *
 * @module
 */
import { createHash } from "node:crypto";
import { z } from "../../vendor/zod.ts";
import { basicAuthorization } from "../../util/http.ts";
import { FaultInjector } from "../faults.ts";
import { BlobStore } from "./_blobs.ts";
import { compareTrees, diffTrees, pageDiffs } from "./_diff.ts";
import { findPart, multipartBoundary, MultipartError } from "./_multipart.ts";
import {
  ApiError,
  type CommitRecord,
  type Entry,
  LakeFsState,
  MergeConflict,
  REPO_NAME,
  type RepoRecord,
  STORAGE_NAMESPACE,
} from "./_state.ts";
import { LakeFsServerStats } from "./_stats.ts";

export { LakeFsServerStats };

/** Options of {@linkcode startLakeFsServer}. */
export interface LakeFsServerOptions {
  /** Interface to listen on. @default "127.0.0.1" */
  hostname?: string;
  /** Port; 0 picks a free one. @default 0 */
  port?: number;
  /** Directory for state and object content; state survives restarts. @default in memory */
  dataDir?: string;
  /** The one accepted access key id (HTTP Basic user). */
  accessKeyId: string;
  /** Its secret access key (HTTP Basic password). */
  secretAccessKey: string;
  /** Fault switches. @default a new FaultInjector with everything off */
  faults?: FaultInjector;
}

/** A running demo lakeFS server. */
export interface LakeFsServerHandle extends AsyncDisposable {
  /** Base URL `http://127.0.0.1:PORT`, without `/api/v1`. */
  readonly url: string;
  readonly port: number;
  readonly faults: FaultInjector;
  /** Request counts per lakeFS operation id. */
  readonly stats: LakeFsServerStats;
  /** Stops listening (releasing paused requests) and, without a data dir, removes content (also
   * what `await using` calls on the way out). */
  close(): Promise<void>;
}

/**
 * Version reported by `/config/version`: the lakeFS release whose REST behaviour the demo
 * follows (the real server adds its build, `1.84.0-5c95b7e1c`).
 */
export const DEMO_LAKEFS_VERSION = "1.84.0";
/** User id of the single demo user (also the committer). */
export const DEMO_USER_ID = "admin";
const MAX_PATH_BYTES = 1024;
/** Largest page lakeFS serves; every listing reports it as `max_per_page`. */
const MAX_PER_PAGE = 1000;
const API = "/api/v1";

interface Ctx {
  request: Request;
  url: URL;
  params: Record<string, string>;
}

interface Route {
  method: string;
  pattern: string[];
  operation: string;
  auth: boolean;
  handle: (ctx: Ctx) => Response | Promise<Response>;
}

function json(status: number, body: unknown, headers: HeadersInit = {}): Response {
  return Response.json(body, { status, headers });
}

function apiError(status: number, message: string, extra: Record<string, unknown> = {}): Response {
  return json(status, { ...extra, message });
}

const noContent = () => new Response(null, { status: 204 });

// ---------------------------------------------------------------- request parsing

function queryInt(url: URL, name: string, min: number, max: number): number | undefined {
  const raw = url.searchParams.get(name);
  if (raw === null || raw === "") return undefined;
  if (!/^-?\d+$/.test(raw)) {
    throw new ApiError(
      400,
      `parameter "${name}" in query has an error: value ${raw}: an invalid integer: invalid syntax`,
    );
  }
  const value = Number(raw);
  if (value < min) {
    throw new ApiError(
      400,
      `parameter "${name}" in query has an error: number must be at least ${min}`,
    );
  }
  if (value > max) {
    throw new ApiError(
      400,
      `parameter "${name}" in query has an error: number must be at most ${max}`,
    );
  }
  return value;
}

function queryBool(url: URL, name: string): boolean {
  const raw = url.searchParams.get(name);
  if (raw === null || raw === "") return false;
  if (raw === "true") return true;
  if (raw === "false") return false;
  throw new ApiError(
    400,
    `parameter "${name}" in query has an error: value ${raw}: an invalid boolean: invalid syntax`,
  );
}

function requiredQuery(url: URL, name: string): string {
  const raw = url.searchParams.get(name);
  if (raw === null) {
    throw new ApiError(
      400,
      `parameter "${name}" in query has an error: value is required but missing`,
    );
  }
  return raw;
}

function objectPath(url: URL): string {
  const path = requiredQuery(url, "path");
  if (path === "") {
    throw new ApiError(400, 'parameter "path" in query has an error: empty value is not allowed');
  }
  if (new TextEncoder().encode(path).byteLength > MAX_PATH_BYTES) {
    throw new ApiError(400, `path: must be at most ${MAX_PATH_BYTES} bytes`);
  }
  return path;
}

function amountOf(url: URL): number {
  const amount = queryInt(url, "amount", -1, 1000);
  return amount === undefined || amount <= 0 ? 100 : amount;
}

async function jsonBody<S extends z.ZodType>(
  request: Request,
  schema: S,
  optional = false,
): Promise<z.infer<S>> {
  const text = await request.text();
  if (text.trim() === "") {
    if (optional) return schema.parse({});
    throw new ApiError(400, "request body has an error: value is required but missing");
  }
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch {
    throw new ApiError(
      400,
      "request body has an error: failed to decode request body: invalid JSON",
    );
  }
  const parsed = schema.safeParse(value);
  if (!parsed.success) {
    const issue = parsed.error.issues[0];
    const where = issue?.path.length ? `property "${issue.path.join(".")}": ` : "";
    throw new ApiError(
      400,
      `request body has an error: doesn't match schema: ${where}${issue?.message ?? "invalid"}`,
    );
  }
  return parsed.data;
}

const stringMap = z.record(z.string(), z.string());
const repositoryCreation = z.object({
  name: z.string().regex(
    REPO_NAME,
    `string doesn't match the regular expression "${REPO_NAME.source}"`,
  ),
  storage_namespace: z.string().regex(
    STORAGE_NAMESPACE,
    `string doesn't match the regular expression "${STORAGE_NAMESPACE.source}"`,
  ),
  default_branch: z.string().optional(),
  sample_data: z.boolean().optional(),
  read_only: z.boolean().optional(),
  storage_id: z.string().optional(),
});
const branchCreation = z.object({
  name: z.string(),
  source: z.string(),
  force: z.boolean().optional(),
  hidden: z.boolean().optional(),
});
const protectionRule = z.object({ pattern: z.string().min(1) });
const protectionRules = z.array(protectionRule);
const tagCreation = z.object({
  id: z.string(),
  ref: z.string(),
  force: z.boolean().optional(),
});
const commitCreation = z.object({
  message: z.string(),
  metadata: stringMap.optional(),
  date: z.number().int().optional(),
  allow_empty: z.boolean().optional(),
  force: z.boolean().optional(),
});
const mergeBody = z.object({
  message: z.string().optional(),
  metadata: stringMap.optional(),
  strategy: z.string().optional(),
  force: z.boolean().optional(),
  allow_empty: z.boolean().optional(),
  squash_merge: z.boolean().optional(),
});
const revertBody = z.object({
  ref: z.string().min(1),
  parent_number: z.number().int().nonnegative(),
  force: z.boolean().optional(),
  allow_empty: z.boolean().optional(),
  commit_overrides: z.object({
    message: z.string().optional(),
    metadata: stringMap.optional(),
  }).optional(),
});
const cherryPickCreation = z.object({
  ref: z.string(),
  parent_number: z.number().int().optional(),
  force: z.boolean().optional(),
  commit_overrides: z.object({
    message: z.string().optional(),
    metadata: stringMap.optional(),
  }).optional(),
});
const resetCreation = z.object({
  type: z.enum(["object", "common_prefix", "reset"]),
  path: z.string().optional(),
  force: z.boolean().optional(),
});
const objectCopy = z.object({
  src_path: z.string().min(1),
  src_ref: z.string().optional(),
  force: z.boolean().optional(),
  shallow: z.boolean().optional(),
});
const pathList = z.object({ paths: z.array(z.string()), force: z.boolean().optional() });

// ---------------------------------------------------------------- answers

function repositoryJson(repo: RepoRecord) {
  return {
    id: repo.id,
    creation_date: repo.creation_date,
    default_branch: repo.default_branch,
    storage_namespace: repo.storage_namespace,
    read_only: false,
    storage_id: "",
  };
}

function commitJson(commit: CommitRecord) {
  return {
    id: commit.id,
    parents: commit.parents,
    committer: commit.committer,
    message: commit.message,
    creation_date: commit.creation_date,
    meta_range_id: commit.meta_range_id,
    metadata: commit.metadata,
    generation: commit.generation,
    version: 1,
  };
}

function physicalAddress(repo: RepoRecord, checksum: string): string {
  return `${repo.storage_namespace.replace(/\/+$/, "")}/data/${checksum}`;
}

function objectJson(repo: RepoRecord, path: string, entry: Entry) {
  return {
    path,
    path_type: "object" as const,
    physical_address: physicalAddress(repo, entry.checksum),
    checksum: entry.checksum,
    size_bytes: entry.size,
    mtime: entry.mtime,
    metadata: entry.metadata,
    content_type: entry.contentType,
  };
}

function pagination(hasMore: boolean, lastKey: string, results: number) {
  return {
    has_more: hasMore,
    next_offset: hasMore ? lastKey : "",
    results,
    max_per_page: MAX_PER_PAGE,
  };
}

/** Pages through sorted keys: prefix filter, exclusive `after`, `amount` per page. */
function paginate<T>(
  sorted: T[],
  keyOf: (item: T) => string,
  prefix: string,
  after: string,
  amount: number,
): { page: T[]; hasMore: boolean } {
  const page: T[] = [];
  for (const item of sorted) {
    const key = keyOf(item);
    if (!key.startsWith(prefix) || key <= after) continue;
    if (page.length === amount) return { page, hasMore: true };
    page.push(item);
  }
  return { page, hasMore: false };
}

function compare(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}

/**
 * The paths of a tree, sorted; kept per tree object. A commit's tree never changes once made
 * (a branch with staged changes gets a new object each time), so a listing paged 1,000 paths
 * at a time sorts a tree of 21,000 once instead of once a page: as lakeFS, whose pages cost
 * what they hold, not the tree's size.
 */
const sortedPathsOf = new WeakMap<Record<string, Entry>, readonly string[]>();

function sortedPaths(tree: Record<string, Entry>): readonly string[] {
  let paths = sortedPathsOf.get(tree);
  if (paths === undefined) {
    paths = Object.keys(tree).sort(compare);
    sortedPathsOf.set(tree, paths);
  }
  return paths;
}

/** The index of the first of the sorted `paths` at or after `from`. */
function firstAtOrAfter(paths: readonly string[], from: string): number {
  let low = 0;
  let high = paths.length;
  while (low < high) {
    const middle = (low + high) >>> 1;
    if (paths[middle]! < from) low = middle + 1;
    else high = middle;
  }
  return low;
}

function parseRange(
  header: string,
  size: number,
): { start: number; end: number } | "bad" | undefined {
  const match = /^bytes=(\d*)-(\d*)$/.exec(header.trim());
  if (!match) return undefined;
  const [, from = "", to = ""] = match;
  if (from === "" && to === "") return undefined;
  if (from === "") {
    const n = Number(to);
    if (n === 0 || size === 0) return "bad";
    return { start: Math.max(0, size - n), end: size - 1 };
  }
  const start = Number(from);
  if (start >= size) return "bad";
  const end = to === "" ? size - 1 : Math.min(Number(to), size - 1);
  if (end < start) return "bad";
  return { start, end };
}

function metadataFromHeaders(headers: Headers): Record<string, string> {
  const metadata: Record<string, string> = {};
  for (const [key, value] of headers) {
    const lower = key.toLowerCase();
    if (lower.startsWith("x-lakefs-meta-")) metadata[lower.slice("x-lakefs-meta-".length)] = value;
    else if (lower.startsWith("x-lakefs-internal-")) {
      metadata["::lakefs::" + lower.slice("x-lakefs-internal-".length)] = value;
    }
  }
  return metadata;
}

async function* emptyBody(): AsyncGenerator<Uint8Array> {}

// ---------------------------------------------------------------- the server

/**
 * Starts the demo lakeFS server.
 *
 * @example
 * ```ts
 * const lakefs = await startLakeFsServer({ port: 0, accessKeyId: "AKIA", secretAccessKey: "s3cr3t" });
 * // LAKECTL_SERVER_ENDPOINT_URL=lakefs.url
 * await lakefs.close();
 * ```
 */
export async function startLakeFsServer(
  options: LakeFsServerOptions,
): Promise<LakeFsServerHandle> {
  if (!options.accessKeyId || !options.secretAccessKey) {
    throw new TypeError("demo lakeFS: accessKeyId and secretAccessKey are required");
  }
  const faults = options.faults ?? new FaultInjector();
  const stats = new LakeFsServerStats();
  const state = new LakeFsState(options.dataDir);
  await state.load();
  const tempRoot = options.dataDir === undefined
    ? await Deno.makeTempDir({ prefix: "perago-lakefs-" })
    : undefined;
  const blobs = new BlobStore(options.dataDir ?? tempRoot!);
  await blobs.init();
  const expectedAuth = basicAuthorization(options.accessKeyId, options.secretAccessKey);
  const routes = buildRoutes(state, blobs, options.accessKeyId);
  const match = (request: Request, url: URL) => matchRoute(routes, request, url);

  const matched = new WeakMap<Request, { route: Route; ctx: Ctx } | Response>();

  const wrapped = faults.wrap((request: Request) =>
    handleRoute(matched.get(request) ?? match(request, new URL(request.url)), expectedAuth)
  );

  const server = Deno.serve({
    hostname: options.hostname ?? "127.0.0.1",
    port: options.port ?? 0,
    onListen: () => {},
    onError: (error) =>
      apiError(500, `internal error: ${error instanceof Error ? error.message : error}`),
  }, async (request, info) => {
    try {
      const url = new URL(request.url);
      if (url.pathname === "/_perago/faults") {
        stats.record("faults");
      } else {
        const found = match(request, url);
        matched.set(request, found);
        stats.record(
          found instanceof Response
            ? "unknown"
            : request.method === "HEAD"
            ? "headObject"
            : found.route.operation,
        );
      }
      return await wrapped(request, info);
    } catch (error) {
      return apiError(500, `internal error: ${error instanceof Error ? error.message : error}`);
    }
  });

  const port = server.addr.port;
  const hostname = options.hostname ?? "127.0.0.1";
  let closed: Promise<void> | undefined;
  return {
    url: `http://${hostname.includes(":") ? `[${hostname}]` : hostname}:${port}`,
    port,
    faults,
    stats,
    close() {
      closed ??= (async () => {
        if (faults.settings.paused) faults.set({ paused: false });
        await server.shutdown();
        await state.persist().catch(() => {});
        if (tempRoot) await Deno.remove(tempRoot, { recursive: true }).catch(() => {});
      })();
      return closed;
    },
    [Symbol.asyncDispose](this: { close(): Promise<void> }) {
      return this.close();
    },
  };
}

/** Runs a matched route (checking auth where it needs it); errors become lakeFS answers. */
async function handleRoute(
  found: { route: Route; ctx: Ctx } | Response,
  expectedAuth: string,
): Promise<Response> {
  if (found instanceof Response) return found;
  const { route, ctx } = found;
  try {
    if (route.auth && ctx.request.headers.get("authorization") !== expectedAuth) {
      return apiError(401, "error authenticating request");
    }
    return await route.handle(ctx);
  } catch (error) {
    if (error instanceof MergeConflict) return json(409, error.extra);
    if (error instanceof ApiError) return apiError(error.status, error.message, error.extra);
    if (error instanceof MultipartError) return apiError(400, error.message);
    return apiError(500, `internal error: ${error instanceof Error ? error.message : error}`);
  }
}

/** The route of a request, with its path parameters, or the error answer (404, 405, 400). */
function matchRoute(
  routes: readonly Route[],
  request: Request,
  url: URL,
): { route: Route; ctx: Ctx } | Response {
  if (!url.pathname.startsWith(API + "/") && url.pathname !== API) {
    return apiError(404, `path not found: ${url.pathname}`);
  }
  let segments: string[];
  try {
    segments = url.pathname.slice(API.length).split("/").filter((s, i) => i > 0 || s !== "")
      .map((s) => decodeURIComponent(s));
  } catch {
    return apiError(400, "invalid path encoding");
  }
  let pathMatched = false;
  for (const route of routes) {
    const params = routeParams(route.pattern, segments);
    if (params === undefined) continue;
    pathMatched = true;
    if (request.method === "HEAD") {
      if (route.operation !== "getObject") continue;
    } else if (route.method !== request.method) continue;
    return { route, ctx: { request, url, params } };
  }
  return pathMatched
    ? apiError(405, "method not allowed")
    : apiError(404, "no matching operation was found");
}

/** The `:name` parameters of `segments` when they fit `pattern` (no empty parameter). */
function routeParams(
  pattern: readonly string[],
  segments: readonly string[],
): Record<string, string> | undefined {
  if (pattern.length !== segments.length) return undefined;
  const params: Record<string, string> = {};
  for (let i = 0; i < segments.length; i++) {
    const part = pattern[i]!;
    const seg = segments[i]!;
    if (part.startsWith(":")) {
      if (seg === "") return undefined;
      params[part.slice(1)] = seg;
    } else if (part !== seg) return undefined;
  }
  return params;
}

function buildRoutes(state: LakeFsState, blobs: BlobStore, accessKeyId: string): Route[] {
  const routes: Route[] = [];
  const add = (
    method: string,
    path: string,
    operation: string,
    handle: Route["handle"],
    auth = true,
  ) => routes.push({ method, pattern: path.split("/").slice(1), operation, auth, handle });
  const started = Math.floor(Date.now() / 1000);
  const storageConfig = {
    blockstore_type: "local",
    blockstore_namespace_example: "local://example-bucket/",
    blockstore_namespace_ValidityRegex: "^local://",
    default_namespace_prefix: "local://",
    pre_sign_support: false,
    pre_sign_support_ui: false,
    import_support: false,
    import_validity_regex: "^local://",
    pre_sign_multipart_upload: false,
  };
  const versionConfig = {
    version: DEMO_LAKEFS_VERSION,
    // lakectl warns about an enterprise server for any other context.
    version_context: "lakeFS",
    upgrade_recommended: false,
  };

  // ---- service
  add("GET", "/healthcheck", "healthCheck", () => noContent(), false);
  add("GET", "/setup_lakefs", "getSetupState", () => json(200, { state: "initialized" }), false);
  add("GET", "/user", "getCurrentUser", () =>
    json(200, {
      user: { id: DEMO_USER_ID, creation_date: started, email: "", friendly_name: "" },
    }));
  add("GET", "/config", "getConfig", () =>
    json(200, {
      version_config: versionConfig,
      storage_config: storageConfig,
    }));
  add("GET", "/config/version", "getLakeFSVersion", () => json(200, versionConfig));
  add("GET", "/config/storage", "getStorageConfig", () => json(200, storageConfig));
  void accessKeyId;

  // ---- repositories
  add("GET", "/repositories", "listRepositories", ({ url }) => {
    const amount = amountOf(url);
    const { page, hasMore } = paginate(
      state.listRepositories(),
      (r) => r.id,
      url.searchParams.get("prefix") ?? "",
      url.searchParams.get("after") ?? "",
      amount,
    );
    return json(200, {
      pagination: pagination(hasMore, page.at(-1)?.id ?? "", page.length),
      results: page.map(repositoryJson),
    });
  });
  add("POST", "/repositories", "createRepository", async ({ request, url }) => {
    queryBool(url, "bare");
    const body = await jsonBody(request, repositoryCreation);
    const repo = state.createRepository(
      body.name,
      body.storage_namespace,
      body.default_branch || "main",
      DEMO_USER_ID,
    );
    await state.persist();
    return json(201, repositoryJson(repo));
  });
  add(
    "GET",
    "/repositories/:repo",
    "getRepository",
    ({ params }) => json(200, repositoryJson(state.repo(params.repo!))),
  );
  add("DELETE", "/repositories/:repo", "deleteRepository", async ({ params }) => {
    state.deleteRepository(params.repo!);
    await state.persist();
    return noContent();
  });

  // ---- branches
  add("GET", "/repositories/:repo/branches", "listBranches", ({ params, url }) => {
    const repo = state.repo(params.repo!);
    const amount = amountOf(url);
    const names = Object.keys(repo.branches).sort(compare);
    const { page, hasMore } = paginate(
      names,
      (n) => n,
      url.searchParams.get("prefix") ?? "",
      url.searchParams.get("after") ?? "",
      amount,
    );
    return json(200, {
      pagination: pagination(hasMore, page.at(-1) ?? "", page.length),
      results: page.map((id) => ({ id, commit_id: repo.branches[id]!.commitId })),
    });
  });
  add("POST", "/repositories/:repo/branches", "createBranch", async ({ params, request }) => {
    const repo = state.repo(params.repo!);
    const body = await jsonBody(request, branchCreation);
    const commitId = state.createBranch(repo, body.name, body.source);
    await state.persist();
    return new Response(commitId, {
      status: 201,
      headers: { "content-type": "text/plain; charset=utf-8" },
    });
  });
  // ---- branch protection (the settings form with an ETag, and the older rule-by-rule form)
  const protectionEtag = (repo: RepoRecord) => {
    const rules = state.protectionRules(repo);
    return rules.length === 0
      ? ""
      : createHash("sha256").update(JSON.stringify(rules)).digest("hex");
  };
  const protectionJson = (repo: RepoRecord) =>
    state.protectionRules(repo).map((pattern) => ({ pattern }));
  add(
    "GET",
    "/repositories/:repo/settings/branch_protection",
    "internalGetBranchProtectionRules",
    ({ params }) => {
      const repo = state.repo(params.repo!);
      const answer = json(200, protectionJson(repo));
      answer.headers.set("etag", protectionEtag(repo));
      return answer;
    },
  );
  add(
    "PUT",
    "/repositories/:repo/settings/branch_protection",
    "internalSetBranchProtectionRules",
    async ({ params, request }) => {
      const repo = state.repo(params.repo!);
      const body = await jsonBody(request, protectionRules);
      const ifMatch = request.headers.get("if-match")?.trim() ?? "";
      if (ifMatch !== "" && ifMatch !== protectionEtag(repo)) {
        throw new ApiError(412, "Precondition failed");
      }
      state.setProtectionRules(repo, body.map((rule) => rule.pattern));
      await state.persist();
      return noContent();
    },
  );
  add(
    "GET",
    "/repositories/:repo/branch_protection",
    "getBranchProtectionRules",
    ({ params }) => json(200, protectionJson(state.repo(params.repo!))),
  );
  add(
    "POST",
    "/repositories/:repo/branch_protection",
    "createBranchProtectionRulePreflight",
    async ({ params, request }) => {
      const repo = state.repo(params.repo!);
      const { pattern } = await jsonBody(request, protectionRule);
      const rules = state.protectionRules(repo);
      // A pattern that is there already is no change (204 all the same).
      if (!rules.includes(pattern)) state.setProtectionRules(repo, [...rules, pattern]);
      await state.persist();
      return noContent();
    },
  );
  add(
    "DELETE",
    "/repositories/:repo/branch_protection",
    "deleteBranchProtectionRule",
    async ({ params, request }) => {
      const repo = state.repo(params.repo!);
      const { pattern } = await jsonBody(request, protectionRule);
      const rules = state.protectionRules(repo);
      // lakeFS answers a pattern it does not have with an empty 404.
      if (!rules.includes(pattern)) return new Response(null, { status: 404 });
      state.setProtectionRules(repo, rules.filter((rule) => rule !== pattern));
      await state.persist();
      return noContent();
    },
  );

  // ---- tags
  add("GET", "/repositories/:repo/tags", "listTags", ({ params, url }) => {
    const repo = state.repo(params.repo!);
    const { page, hasMore } = paginate(
      state.listTags(repo),
      ([name]) => name,
      url.searchParams.get("prefix") ?? "",
      url.searchParams.get("after") ?? "",
      amountOf(url),
    );
    return json(200, {
      pagination: pagination(hasMore, page.at(-1)?.[0] ?? "", page.length),
      results: page.map(([id, commitId]) => ({ id, commit_id: commitId })),
    });
  });
  add("POST", "/repositories/:repo/tags", "createTag", async ({ params, request }) => {
    const repo = state.repo(params.repo!);
    const body = await jsonBody(request, tagCreation);
    const commitId = state.createTag(repo, body.id, body.ref);
    await state.persist();
    return json(201, { id: body.id, commit_id: commitId });
  });
  add("GET", "/repositories/:repo/tags/:tag", "getTag", ({ params }) => {
    const repo = state.repo(params.repo!);
    return json(200, { id: params.tag, commit_id: state.tag(repo, params.tag!) });
  });
  add("DELETE", "/repositories/:repo/tags/:tag", "deleteTag", async ({ params, url }) => {
    queryBool(url, "force");
    state.deleteTag(state.repo(params.repo!), params.tag!);
    await state.persist();
    return noContent();
  });
  add("GET", "/repositories/:repo/branches/:branch", "getBranch", ({ params }) => {
    const repo = state.repo(params.repo!);
    const branch = state.branch(repo, params.branch!);
    return json(200, { id: params.branch, commit_id: branch.commitId });
  });
  add("DELETE", "/repositories/:repo/branches/:branch", "deleteBranch", async ({ params, url }) => {
    queryBool(url, "force");
    state.deleteBranch(state.repo(params.repo!), params.branch!);
    await state.persist();
    return noContent();
  });
  add("PUT", "/repositories/:repo/branches/:branch", "resetBranch", async ({ params, request }) => {
    const repo = state.repo(params.repo!);
    const body = await jsonBody(request, resetCreation);
    state.resetStaged(repo, params.branch!, body.type, body.path ?? "");
    await state.persist();
    return noContent();
  });
  add(
    "PUT",
    "/repositories/:repo/branches/:branch/hard_reset",
    "hardResetBranch",
    async ({ params, url }) => {
      const ref = requiredQuery(url, "ref");
      queryBool(url, "force");
      state.hardReset(state.repo(params.repo!), params.branch!, ref);
      await state.persist();
      return noContent();
    },
  );

  // ---- commits
  add(
    "POST",
    "/repositories/:repo/branches/:branch/commits",
    "commit",
    async ({ params, request }) => {
      const repo = state.repo(params.repo!);
      state.branch(repo, params.branch!);
      const body = await jsonBody(request, commitCreation);
      const commit = state.commitBranch(
        repo,
        params.branch!,
        body.message,
        body.metadata ?? {},
        DEMO_USER_ID,
        {
          ...(body.allow_empty === undefined ? {} : { allowEmpty: body.allow_empty }),
          ...(body.date === undefined ? {} : { date: body.date }),
        },
      );
      await state.persist();
      return json(201, commitJson(commit));
    },
  );
  add("GET", "/repositories/:repo/commits/:commit", "getCommit", ({ params }) => {
    const repo = state.repo(params.repo!);
    return json(200, commitJson(state.resolveCommit(repo, params.commit!, "commit not found")));
  });
  add("GET", "/repositories/:repo/refs/:ref/commits", "logCommits", ({ params, url }) => {
    const repo = state.repo(params.repo!);
    const amount = amountOf(url);
    const limit = queryBool(url, "limit");
    const firstParent = queryBool(url, "first_parent");
    const sinceRaw = url.searchParams.get("since");
    let since: number | undefined;
    if (sinceRaw !== null && sinceRaw !== "") {
      const ms = Date.parse(sinceRaw);
      if (Number.isNaN(ms)) {
        throw new ApiError(
          400,
          `parameter "since" in query has an error: value ${sinceRaw}: an invalid date-time`,
        );
      }
      since = Math.floor(ms / 1000);
    }
    const start = state.resolveCommit(repo, params.ref!, "ref: not found");
    const stopAtRef = url.searchParams.get("stop_at") ?? "";
    const stopAt = stopAtRef === ""
      ? undefined
      : state.resolveCommit(repo, stopAtRef, "stop_at: not found").id;
    const afterRef = url.searchParams.get("after") ?? "";
    const after = afterRef === ""
      ? undefined
      : state.resolveCommit(repo, afterRef, "from ref: not found").id;
    const objects = url.searchParams.getAll("objects").filter((p) => p !== "");
    const prefixes = url.searchParams.getAll("prefixes").filter((p) => p !== "");
    // With paths, only single-parent commits that change one of them (against their parent).
    const touchesPaths = (commit: CommitRecord): boolean => {
      if (objects.length === 0 && prefixes.length === 0) return true;
      if (commit.parents.length !== 1) return false;
      const changed = diffTrees(state.commit(repo, commit.parents[0]!).tree, commit.tree)
        .map((d) => d.path);
      return objects.some((o) => changed.includes(o)) ||
        prefixes.some((p) => changed.some((path) => path.startsWith(p)));
    };
    const found: CommitRecord[] = [];
    let skipping = after !== undefined;
    for (
      const commit of state.walk(repo, start, {
        firstParent,
        ...since === undefined ? {} : { since },
      })
    ) {
      if (skipping) {
        if (commit.id === after) skipping = false;
        continue;
      }
      if (!touchesPaths(commit)) continue;
      found.push(commit);
      if (
        (limit && found.length >= amount) || found.length >= amount + 1 || commit.id === stopAt
      ) break;
    }
    const hasMore = found.length > amount;
    const page = hasMore ? found.slice(0, amount) : found;
    return json(200, {
      pagination: pagination(hasMore, page.at(-1)?.id ?? "", page.length),
      results: page.map(commitJson),
    });
  });
  add(
    "POST",
    "/repositories/:repo/branches/:branch/revert",
    "revertBranch",
    async ({ params, request }) => {
      const repo = state.repo(params.repo!);
      const body = await jsonBody(request, revertBody, true);
      const overrides = body.commit_overrides ?? {};
      state.revert(repo, params.branch!, body.ref, DEMO_USER_ID, {
        parentNumber: body.parent_number,
        ...(body.allow_empty ? { allowEmpty: true } : {}),
        ...(overrides.message ? { message: overrides.message } : {}),
        ...(overrides.metadata ? { metadata: overrides.metadata } : {}),
      });
      await state.persist();
      return new Response(null, { status: 204 });
    },
  );
  add(
    "POST",
    "/repositories/:repo/branches/:branch/cherry-pick",
    "cherryPick",
    async ({ params, request }) => {
      const repo = state.repo(params.repo!);
      const body = await jsonBody(request, cherryPickCreation);
      const overrides = body.commit_overrides ?? {};
      const commit = state.cherryPick(repo, params.branch!, body.ref, DEMO_USER_ID, {
        ...(body.parent_number === undefined ? {} : { parentNumber: body.parent_number }),
        ...(overrides.message ? { message: overrides.message } : {}),
        ...(overrides.metadata ? { metadata: overrides.metadata } : {}),
      });
      await state.persist();
      return json(201, commitJson(commit));
    },
  );
  add(
    "POST",
    "/repositories/:repo/refs/:source/merge/:dest",
    "mergeIntoBranch",
    async ({ params, request }) => {
      const repo = state.repo(params.repo!);
      const body = await jsonBody(request, mergeBody, true);
      const commit = state.merge(repo, params.source!, params.dest!, DEMO_USER_ID, {
        ...(body.message ? { message: body.message } : {}),
        ...(body.metadata ? { metadata: body.metadata } : {}),
        ...(body.strategy ? { strategy: body.strategy } : {}),
        ...(body.squash_merge ? { squash: true } : {}),
        ...(body.allow_empty ? { allowEmpty: true } : {}),
      });
      await state.persist();
      return json(200, { reference: commit.id });
    },
  );

  // ---- diffs
  const diffPage = (diffs: ReturnType<typeof diffTrees>, url: URL): Response => {
    const amount = amountOf(url);
    const { page, hasMore } = pageDiffs(diffs, {
      prefix: url.searchParams.get("prefix") ?? "",
      after: url.searchParams.get("after") ?? "",
      delimiter: url.searchParams.get("delimiter") ?? "",
      amount,
    });
    return json(200, {
      pagination: pagination(hasMore, page.at(-1)?.path ?? "", page.length),
      results: page,
    });
  };
  add("GET", "/repositories/:repo/branches/:branch/diff", "diffBranch", ({ params, url }) => {
    const repo = state.repo(params.repo!);
    const branch = state.branch(repo, params.branch!);
    return diffPage(
      diffTrees(state.commit(repo, branch.commitId).tree, state.branchView(repo, params.branch!)),
      url,
    );
  });
  add("GET", "/repositories/:repo/refs/:left/diff/:right", "diffRefs", ({ params, url }) => {
    const repo = state.repo(params.repo!);
    const type = url.searchParams.get("type") ?? "three_dot";
    if (type !== "two_dot" && type !== "three_dot") {
      throw new ApiError(
        400,
        `parameter "type" in query has an error: value is not one of the allowed values ["two_dot","three_dot"]`,
      );
    }
    const resolve = (ref: string) =>
      state.resolveCommit(repo, ref, `get commit by ref ${ref}: not found`);
    const left = resolve(params.left!);
    const right = resolve(params.right!);
    if (type === "two_dot") return diffPage(diffTrees(left.tree, right.tree), url);
    // three_dot (the default): what merging right into left would change on left.
    const base = state.mergeBase(repo, right, left) ?? left;
    return diffPage(compareTrees(left.tree, right.tree, base.tree), url);
  });

  // ---- objects
  const findEntry = (repo: RepoRecord, ref: string, path: string): Entry => {
    const tree = state.view(repo, ref);
    const entry = Object.hasOwn(tree, path) ? tree[path] : undefined;
    if (!entry) throw new ApiError(404, "not found");
    return entry;
  };

  add(
    "GET",
    "/repositories/:repo/refs/:ref/objects",
    "getObject",
    async ({ params, url, request }) => {
      const repo = state.repo(params.repo!);
      const path = objectPath(url);
      let entry: Entry;
      try {
        entry = findEntry(repo, params.ref!, path);
      } catch (error) {
        if (request.method === "HEAD" && error instanceof ApiError) {
          return new Response(null, { status: error.status });
        }
        throw error;
      }
      const headers = new Headers({
        "content-type": entry.contentType,
        "etag": `"${entry.checksum}"`,
        "last-modified": new Date(entry.mtime * 1000).toUTCString(),
        "accept-ranges": "bytes",
      });
      const rangeHeader = request.headers.get("range");
      const range = rangeHeader === null ? undefined : parseRange(rangeHeader, entry.size);
      if (range === "bad") {
        headers.set("content-range", `bytes */${entry.size}`);
        headers.set("content-type", "application/json");
        return new Response(JSON.stringify({ message: "Requested Range Not Satisfiable" }), {
          status: 416,
          headers,
        });
      }
      if (range) {
        headers.set("content-range", `bytes ${range.start}-${range.end}/${entry.size}`);
        headers.set("content-length", String(range.end - range.start + 1));
        if (request.method === "HEAD") return new Response(null, { status: 206, headers });
        return new Response(await blobs.open(entry.checksum, range.start, range.end), {
          status: 206,
          headers,
        });
      }
      headers.set("content-length", String(entry.size));
      if (request.method === "HEAD") return new Response(null, { status: 200, headers });
      return new Response(await blobs.open(entry.checksum), { status: 200, headers });
    },
  );
  add("GET", "/repositories/:repo/refs/:ref/objects/stat", "statObject", ({ params, url }) => {
    const repo = state.repo(params.repo!);
    const path = objectPath(url);
    queryBool(url, "user_metadata");
    queryBool(url, "presign");
    return json(200, objectJson(repo, path, findEntry(repo, params.ref!, path)));
  });
  add("GET", "/repositories/:repo/refs/:ref/objects/ls", "listObjects", ({ params, url }) => {
    const repo = state.repo(params.repo!);
    const amount = amountOf(url);
    // user_metadata defaults to true; listings carry metadata only when there is some.
    const userMetadata = url.searchParams.get("user_metadata") === null ||
      queryBool(url, "user_metadata");
    queryBool(url, "presign");
    const prefix = url.searchParams.get("prefix") ?? "";
    const after = url.searchParams.get("after") ?? "";
    const delimiter = url.searchParams.get("delimiter") ?? "";
    const tree = state.view(repo, params.ref!);
    const paths = sortedPaths(tree);
    const results: unknown[] = [];
    let last = "";
    let lastPrefix: string | undefined;
    let hasMore = false;
    // Every path before the first one past both `prefix` and `after` would be skipped below
    // (a folded key is a prefix of its path, so it sorts at or before it).
    for (let i = firstAtOrAfter(paths, after > prefix ? after : prefix); i < paths.length; i++) {
      const path = paths[i]!;
      if (!path.startsWith(prefix)) {
        // Sorted: once past the paths under the prefix, none follows.
        if (path > prefix) break;
        continue;
      }
      let key = path;
      let common = false;
      if (delimiter !== "") {
        const at = path.indexOf(delimiter, prefix.length);
        if (at >= 0) {
          key = path.slice(0, at + delimiter.length);
          common = true;
        }
      }
      if (key <= after || key === lastPrefix) continue;
      if (results.length === amount) {
        hasMore = true;
        break;
      }
      if (common) {
        lastPrefix = key;
        results.push({
          path: key,
          path_type: "common_prefix",
          physical_address: "",
          checksum: "",
          mtime: 0,
        });
      } else {
        const { metadata, ...stats } = objectJson(repo, path, tree[path]!);
        results.push(
          userMetadata && Object.keys(metadata).length > 0 ? { ...stats, metadata } : stats,
        );
      }
      last = key;
    }
    return json(200, { pagination: pagination(hasMore, last, results.length), results });
  });
  add(
    "POST",
    "/repositories/:repo/branches/:branch/objects",
    "uploadObject",
    async ({ params, url, request }) => {
      const repo = state.repo(params.repo!);
      const branchName = params.branch!;
      if (!Object.hasOwn(repo.branches, branchName)) {
        throw new ApiError(404, `branch '${branchName}' not found`);
      }
      state.checkUnprotected(repo, branchName, "cannot write to protected branch");
      const path = objectPath(url);
      const ifNoneMatch = request.headers.get("if-none-match");
      // lakeFS supports only `If-None-Match: *` (create only) and answers others 501.
      if (ifNoneMatch !== null && ifNoneMatch.trim() !== "*") {
        throw new ApiError(501, "Not Implemented");
      }
      const exists = () => Object.hasOwn(state.branchView(repo, branchName), path);
      if (ifNoneMatch !== null && exists()) throw new ApiError(412, "path already exists");
      const boundary = multipartBoundary(request.headers.get("content-type"));
      let content: AsyncIterable<Uint8Array>;
      let contentType: string;
      if (boundary !== undefined) {
        if (!request.body) throw new ApiError(400, "multipart: empty body");
        const part = await findPart(request.body, boundary, "content");
        if (!part) throw new ApiError(400, "missing content part in multipart body");
        content = part.content;
        contentType = part.info.contentType ?? "application/octet-stream";
      } else {
        content = request.body ?? emptyBody();
        contentType = request.headers.get("content-type") || "application/octet-stream";
      }
      const blob = await blobs.put(content);
      // The repository or branch may have gone, or the path appeared, while the body streamed.
      const current = state.repo(params.repo!);
      state.branch(current, branchName);
      if (ifNoneMatch !== null && exists()) throw new ApiError(412, "path already exists");
      const entry: Entry = {
        checksum: blob.checksum,
        size: blob.size,
        mtime: Math.floor(Date.now() / 1000),
        contentType,
        metadata: metadataFromHeaders(request.headers),
      };
      state.stage(current, branchName, path, entry);
      await state.persist();
      return json(201, objectJson(current, path, entry));
    },
  );
  add(
    "POST",
    "/repositories/:repo/branches/:branch/objects/copy",
    "copyObject",
    async ({ params, url, request }) => {
      const repo = state.repo(params.repo!);
      state.branch(repo, params.branch!);
      state.checkUnprotected(repo, params.branch!, "cannot write to protected branch");
      const destPath = requiredQuery(url, "dest_path");
      if (destPath === "") throw new ApiError(400, "dest_path: required value");
      const body = await jsonBody(request, objectCopy);
      const source = findEntry(repo, body.src_ref ?? params.branch!, body.src_path);
      const entry: Entry = { ...source, mtime: Math.floor(Date.now() / 1000) };
      state.stage(repo, params.branch!, destPath, entry);
      await state.persist();
      return json(201, objectJson(repo, destPath, entry));
    },
  );
  add(
    "DELETE",
    "/repositories/:repo/branches/:branch/objects",
    "deleteObject",
    async ({ params, url }) => {
      const repo = state.repo(params.repo!);
      state.branch(repo, params.branch!);
      const path = objectPath(url);
      queryBool(url, "force");
      state.checkUnprotected(repo, params.branch!, "cannot write to protected branch");
      state.stage(repo, params.branch!, path, null);
      await state.persist();
      return noContent();
    },
  );
  add(
    "POST",
    "/repositories/:repo/branches/:branch/objects/delete",
    "deleteObjects",
    async ({ params, request }) => {
      const repo = state.repo(params.repo!);
      state.branch(repo, params.branch!);
      const body = await jsonBody(request, pathList);
      if (body.paths.length > 1000) {
        throw new ApiError(400, "request size exceeded, max paths is set to 1000");
      }
      const errors: { path: string; status_code: number; message: string }[] = [];
      for (const path of body.paths) {
        if (path === "" || new TextEncoder().encode(path).byteLength > MAX_PATH_BYTES) {
          errors.push({ path, status_code: 400, message: "invalid path" });
          continue;
        }
        try {
          state.checkUnprotected(repo, params.branch!, "cannot write to protected branch");
        } catch (error) {
          if (!(error instanceof ApiError)) throw error;
          errors.push({ path, status_code: error.status, message: error.message });
          continue;
        }
        state.stage(repo, params.branch!, path, null);
      }
      await state.persist();
      return json(200, { errors });
    },
  );
  return routes;
}
