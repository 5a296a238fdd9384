/**
 * The versioned state of the demo lakeFS server: repositories, commits (each with its full
 * tree), branches with staged changes, and the merge logic. Errors are {@linkcode ApiError}s
 * carrying the HTTP status and message lakeFS would answer. With a data directory, state is
 * persisted as JSON written atomically (commits once each, the mutable part after every
 * change).
 *
 * @module
 */
import { createHash } from "node:crypto";
import { join } from "node:path";
import { sameEntry, sameTree } from "./_diff.ts";

/** An error the server answers with `{"message"}` and this status. */
export class ApiError extends Error {
  override name = "ApiError";
  /** The HTTP status of the answer. */
  readonly status: number;
  /** Extra fields of the error body (e.g. `reference` of a conflicting merge). */
  readonly extra: Record<string, unknown>;
  constructor(status: number, message: string, extra: Record<string, unknown> = {}) {
    super(message);
    this.status = status;
    this.extra = extra;
  }
}

/**
 * A three-way merge found paths both sides changed to different versions: lakeFS answers 409
 * with `{"reference": ""}` and no message.
 */
export class MergeConflict extends ApiError {
  override name = "MergeConflict";
  /** The conflicting paths (first few), for the demo's own debugging. */
  readonly paths: string[];
  constructor(paths: string[]) {
    super(409, `conflict found: ${paths.slice(0, 5).join(", ")}`, { reference: "" });
    this.paths = paths;
  }
}

/** One object version. */
export interface Entry {
  checksum: string;
  size: number;
  mtime: number;
  contentType: string;
  metadata: Record<string, string>;
}

/** A stored commit. */
export interface CommitRecord {
  id: string;
  parents: string[];
  committer: string;
  message: string;
  creation_date: number;
  meta_range_id: string;
  metadata: Record<string, string>;
  generation: number;
  /**
   * Creation time in microseconds, strictly increasing per server: the log lists newest first
   * by it, as lakeFS does by its nanosecond creation time. Missing in state written before it
   * existed (then `creation_date` stands in).
   */
  seq?: number;
  tree: Record<string, Entry>;
}

/** A branch: head commit plus staged changes (`null` = staged deletion). */
export interface BranchRecord {
  commitId: string;
  staged: Record<string, Entry | null>;
}

/** A repository. */
export interface RepoRecord {
  id: string;
  creation_date: number;
  default_branch: string;
  storage_namespace: string;
  branches: Record<string, BranchRecord>;
  /** Tag name -> commit id (missing in state written before tags existed). */
  tags?: Record<string, string>;
  /** Branch protection rules: glob patterns of branch names (missing = none). */
  protection?: string[];
  commitIds: string[];
}

interface PersistedState {
  version: 1;
  repos: Record<string, RepoRecord>;
}

/** Repository name rule of lakeFS. */
export const REPO_NAME = /^[a-z0-9][a-z0-9-]{2,62}$/;
/** Branch name rule of lakeFS. */
export const BRANCH_NAME = /^\w[-\w]*$/;
/** Storage namespace rule of lakeFS's OpenAPI schema. */
export const STORAGE_NAMESPACE = /^(s3|gs|https?|mem|local|transient):\/\/.*$/;

/**
 * Whether `name` matches a branch protection `pattern`: `*` any run of characters, `?` one,
 * everything else itself (the glob lakeFS compiles the patterns with, without separators).
 */
function globMatch(pattern: string, name: string): boolean {
  const source = [...pattern].map((c) =>
    c === "*" ? ".*" : c === "?" ? "." : c.replace(/[.+^${}()|[\]\\]/g, "\\$&")
  ).join("");
  return new RegExp(`^${source}$`, "s").test(name);
}

/** Whether lakeFS accepts `name` as a tag id (git's ref name rules, `~` allowed, no `/`). */
function validTagName(name: string): boolean {
  return name !== "" && name !== "@" && !name.endsWith(".") && !name.endsWith(".lock") &&
    !name.includes("/") && !name.includes("..") && !name.includes("@{") &&
    // deno-lint-ignore no-control-regex
    !/[\x00-\x20\x7f^:?*[\\]/.test(name);
}

const now = () => Math.floor(Date.now() / 1000);

/** Merge strategy names as lakeFS records them in a merge commit's metadata. */
const MERGE_STRATEGY_KEY = ".lakefs.merge.strategy";

/** A commit's place in the log: newer first (creation time, then the larger id). */
function newerFirst(a: CommitRecord, b: CommitRecord): number {
  const at = a.seq ?? a.creation_date * 1e6;
  const bt = b.seq ?? b.creation_date * 1e6;
  if (at !== bt) return bt - at;
  return a.id < b.id ? 1 : a.id > b.id ? -1 : 0;
}

function sha256Hex(text: string): string {
  return createHash("sha256").update(text).digest("hex");
}

/** What a tree's meta range id digests: each path with its entry's identity. */
function treeDigestInput(tree: Record<string, Entry>): string {
  return JSON.stringify(
    Object.keys(tree).sort().map((k) => {
      const e = tree[k]!;
      const metadata = Object.keys(e.metadata).sort().map((m) => [m, e.metadata[m]]);
      return [k, e.checksum, e.size, e.contentType, metadata];
    }),
  );
}

async function writeAtomic(path: string, text: string): Promise<void> {
  const tmp = `${path}.${crypto.randomUUID()}.tmp`;
  await Deno.writeTextFile(tmp, text);
  await Deno.rename(tmp, path);
}

/** All repositories, commits and branches of one server. */
export class LakeFsState {
  readonly #repos = new Map<string, RepoRecord>();
  readonly #commits = new Map<string, CommitRecord>();
  readonly #repoCommits = new Map<string, Set<string>>();
  readonly #dataDir: string | undefined;
  #unsavedCommits: CommitRecord[] = [];
  #lastSeq = 0;
  #dirty = false;
  #chain: Promise<void> = Promise.resolve();

  constructor(dataDir?: string) {
    this.#dataDir = dataDir;
  }

  /** Loads persisted state (no-op in memory). */
  async load(): Promise<void> {
    if (!this.#dataDir) return;
    await Deno.mkdir(join(this.#dataDir, "commits"), { recursive: true });
    let text: string;
    try {
      text = await Deno.readTextFile(join(this.#dataDir, "state.json"));
    } catch (error) {
      if (error instanceof Deno.errors.NotFound) return;
      throw error;
    }
    const state = JSON.parse(text) as PersistedState;
    for (const repo of Object.values(state.repos)) {
      this.#repos.set(repo.id, repo);
      this.#repoCommits.set(repo.id, new Set(repo.commitIds));
      for (const id of repo.commitIds) {
        const commit = JSON.parse(
          await Deno.readTextFile(join(this.#dataDir, "commits", `${id}.json`)),
        ) as CommitRecord;
        this.#commits.set(commit.id, commit);
        this.#lastSeq = Math.max(this.#lastSeq, commit.seq ?? 0);
      }
    }
  }

  /** Persists the state after a change; resolves when it is on disk (no-op in memory). */
  persist(): Promise<void> {
    if (!this.#dataDir) return Promise.resolve();
    const dir = this.#dataDir;
    this.#dirty = true;
    const run = this.#chain.then(async () => {
      if (!this.#dirty) return;
      this.#dirty = false;
      const commits = this.#unsavedCommits;
      this.#unsavedCommits = [];
      for (const commit of commits) {
        await writeAtomic(join(dir, "commits", `${commit.id}.json`), JSON.stringify(commit));
      }
      const state: PersistedState = { version: 1, repos: Object.fromEntries(this.#repos) };
      await writeAtomic(join(dir, "state.json"), JSON.stringify(state));
    });
    this.#chain = run.catch(() => {});
    return run;
  }

  // ------------------------------------------------------------------ repositories

  /** Lists repositories sorted by id. */
  listRepositories(): RepoRecord[] {
    return [...this.#repos.values()].sort((a, b) => a.id < b.id ? -1 : a.id > b.id ? 1 : 0);
  }

  /** Creates a repository with an initial commit on its default branch. */
  createRepository(
    name: string,
    storageNamespace: string,
    defaultBranch: string,
    committer: string,
  ): RepoRecord {
    if (this.#repos.has(name)) throw new ApiError(409, "error creating repository: not unique");
    const repo: RepoRecord = {
      id: name,
      creation_date: now(),
      default_branch: defaultBranch,
      storage_namespace: storageNamespace,
      branches: {},
      commitIds: [],
    };
    this.#repoCommits.set(name, new Set());
    // lakeFS records no committer on the first commit.
    void committer;
    const commit = this.#newCommit(repo, [], "", "Repository created", {}, {});
    this.#addCommit(repo, commit);
    repo.branches[defaultBranch] = { commitId: commit.id, staged: {} };
    this.#repos.set(name, repo);
    return repo;
  }

  /** A repository or 404. */
  repo(name: string): RepoRecord {
    const repo = this.#repos.get(name);
    if (!repo) throw new ApiError(404, "repository not found");
    return repo;
  }

  /** Deletes a repository (its commits stay on disk until overwritten). */
  deleteRepository(name: string): void {
    this.repo(name);
    this.#repos.delete(name);
    this.#repoCommits.delete(name);
  }

  // ------------------------------------------------------------------ refs

  /** A branch or 404. */
  branch(repo: RepoRecord, name: string): BranchRecord {
    const branch = Object.hasOwn(repo.branches, name) ? repo.branches[name] : undefined;
    if (!branch) throw new ApiError(404, "branch not found");
    return branch;
  }

  /** A commit of this repository or 404. */
  commit(repo: RepoRecord, id: string): CommitRecord {
    const commit = this.#commits.get(id);
    if (!commit || !this.#has(repo, id)) throw new ApiError(404, "commit not found");
    return commit;
  }

  /**
   * Resolves a ref (branch name, tag, commit id or unique prefix of at least 6 hex digits, with
   * optional `~N` / `^N` suffixes) to a commit; 404 with `notFound` (the message lakeFS gives
   * for the operation) when nothing matches.
   */
  resolveCommit(repo: RepoRecord, ref: string, notFound = `${ref}: not found`): CommitRecord {
    const match = /^(.*?)((?:[~^]\d*)*)$/.exec(ref);
    const base = match?.[1] ?? ref;
    const suffix = match?.[2] ?? "";
    let commit: CommitRecord | undefined;
    const tags = repo.tags ?? {};
    if (Object.hasOwn(repo.branches, base)) {
      commit = this.#commits.get(repo.branches[base]!.commitId);
    } else if (Object.hasOwn(tags, base)) {
      commit = this.#commits.get(tags[base]!);
    } else if (this.#has(repo, base)) {
      commit = this.#commits.get(base);
    } else if (/^[0-9a-f]{6,}$/.test(base)) {
      const found = repo.commitIds.filter((id) => id.startsWith(base));
      if (found.length === 1) commit = this.#commits.get(found[0]!);
    }
    if (!commit) throw new ApiError(404, notFound);
    for (const op of suffix.matchAll(/([~^])(\d*)/g)) {
      const n = op[2] === "" ? 1 : Number(op[2]);
      if (op[1] === "~") {
        for (let i = 0; i < n; i++) commit = this.#parent(repo, commit, 0, notFound);
      } else if (n > 0) {
        commit = this.#parent(repo, commit, n - 1, notFound);
      }
    }
    return commit;
  }

  #parent(repo: RepoRecord, commit: CommitRecord, index: number, notFound: string): CommitRecord {
    const id = commit.parents[index];
    if (id === undefined) throw new ApiError(404, notFound);
    return this.commit(repo, id);
  }

  /** The tree seen at a ref: a branch includes its staged changes. */
  view(repo: RepoRecord, ref: string): Record<string, Entry> {
    if (Object.hasOwn(repo.branches, ref)) return this.branchView(repo, ref);
    return this.resolveCommit(repo, ref, "not found").tree;
  }

  /** A branch's head tree with its staged changes applied. */
  branchView(repo: RepoRecord, name: string): Record<string, Entry> {
    const branch = this.branch(repo, name);
    const base = this.commit(repo, branch.commitId).tree;
    const staged = Object.entries(branch.staged);
    if (staged.length === 0) return base;
    const tree: Record<string, Entry> = { ...base };
    for (const [path, entry] of staged) {
      if (entry === null) delete tree[path];
      else tree[path] = entry;
    }
    return tree;
  }

  /** Creates a branch at the commit `source` resolves to; returns that commit id. */
  createBranch(repo: RepoRecord, name: string, source: string): string {
    if (!BRANCH_NAME.test(name)) {
      throw new ApiError(
        400,
        "argument branch: branch id: invalid value: validation error: branch id must consist " +
          "of letters, digits, underscores and dashes, and cannot start with a dash",
      );
    }
    const commit = this.resolveCommit(repo, source, `source reference '${source}': not found`);
    if (Object.hasOwn(repo.branches, name)) {
      throw new ApiError(409, "branch already exists: not unique");
    }
    repo.branches[name] = { commitId: commit.id, staged: {} };
    return commit.id;
  }

  /** Deletes a branch: 403 for the default branch, 404 when missing. */
  deleteBranch(repo: RepoRecord, name: string): void {
    this.branch(repo, name);
    if (name === repo.default_branch) {
      throw new ApiError(403, "cannot delete repository default branch");
    }
    delete repo.branches[name];
  }

  /** Points a branch at `ref`; staged changes stay staged (as in lakeFS). */
  hardReset(repo: RepoRecord, name: string, ref: string): void {
    const branch = this.branch(repo, name);
    this.checkUnprotected(repo, name, "protected branch");
    branch.commitId = this.resolveCommit(repo, ref, `hard-reset ${name} to ${ref}: not found`).id;
  }

  // ------------------------------------------------------------------ branch protection

  /** The branch protection patterns of a repository. */
  protectionRules(repo: RepoRecord): string[] {
    return [...(repo.protection ?? [])];
  }

  /** Replaces the branch protection patterns of a repository. */
  setProtectionRules(repo: RepoRecord, patterns: string[]): void {
    repo.protection = [...patterns];
  }

  /**
   * Throws lakeFS's 403 when `branchName` matches a protection pattern: writes to its staging
   * area, commits and hard resets are refused there, merges, reverts and cherry-picks are not.
   */
  checkUnprotected(repo: RepoRecord, branchName: string, message: string): void {
    if ((repo.protection ?? []).some((pattern) => globMatch(pattern, branchName))) {
      throw new ApiError(403, message);
    }
  }

  // ------------------------------------------------------------------ tags

  /** The tags of a repository, sorted by name, with their commit ids. */
  listTags(repo: RepoRecord): [string, string][] {
    return Object.entries(repo.tags ?? {}).sort(([a], [b]) => a < b ? -1 : a > b ? 1 : 0);
  }

  /** A tag's commit id or 404. */
  tag(repo: RepoRecord, name: string): string {
    const tags = repo.tags ?? {};
    if (!Object.hasOwn(tags, name)) throw new ApiError(404, "tag not found");
    return tags[name]!;
  }

  /**
   * Creates a tag at the commit `ref` resolves to; returns that commit id. lakeFS checks the
   * name like git's ref names (no `/`, `..`, `@{`, spaces or `^:?*[\`, not `@`, not ending in
   * `.` or `.lock`), refuses a branch's name and an existing tag (even with `force`).
   */
  createTag(repo: RepoRecord, name: string, ref: string): string {
    if (!validTagName(name)) {
      throw new ApiError(400, "argument tagID: tag id: invalid value: validation error");
    }
    if (Object.hasOwn(repo.branches, name)) {
      throw new ApiError(409, `branch name ${name}: conflict found`);
    }
    const commit = this.resolveCommit(repo, ref, "not found");
    const tags = repo.tags ??= {};
    if (Object.hasOwn(tags, name)) throw new ApiError(409, "tag already exists: not unique");
    tags[name] = commit.id;
    return commit.id;
  }

  /** Deletes a tag; 404 when missing. */
  deleteTag(repo: RepoRecord, name: string): void {
    this.tag(repo, name);
    delete repo.tags![name];
  }

  // ------------------------------------------------------------------ objects

  /** Stages an object version. */
  stage(repo: RepoRecord, branchName: string, path: string, entry: Entry | null): void {
    const branch = this.branch(repo, branchName);
    const base = this.commit(repo, branch.commitId).tree;
    if (entry === null && !Object.hasOwn(base, path)) delete branch.staged[path];
    else branch.staged[path] = entry;
  }

  /** Drops staged changes: all (`reset`), one path (`object`) or under a prefix. */
  resetStaged(
    repo: RepoRecord,
    branchName: string,
    type: "object" | "common_prefix" | "reset",
    path: string,
  ): void {
    const branch = this.branch(repo, branchName);
    this.checkUnprotected(repo, branchName, "cannot write to protected branch");
    if (type === "reset") {
      branch.staged = {};
      return;
    }
    for (const key of Object.keys(branch.staged)) {
      if (type === "object" ? key === path : key.startsWith(path)) delete branch.staged[key];
    }
  }

  // ------------------------------------------------------------------ commits

  /** Commits a branch's staged changes; 400 "commit: no changes" when there are none. */
  commitBranch(
    repo: RepoRecord,
    branchName: string,
    message: string,
    metadata: Record<string, string>,
    committer: string,
    options: { allowEmpty?: boolean; date?: number } = {},
  ): CommitRecord {
    const branch = this.branch(repo, branchName);
    this.checkUnprotected(repo, branchName, "cannot commit to protected branch");
    const parent = this.commit(repo, branch.commitId);
    const tree = this.branchView(repo, branchName);
    if (!options.allowEmpty && sameTree(tree, parent.tree)) {
      throw new ApiError(400, "commit: no changes");
    }
    const commit = this.#newCommit(
      repo,
      [parent.id],
      committer,
      message,
      metadata,
      tree,
      options.date,
    );
    this.#addCommit(repo, commit);
    branch.commitId = commit.id;
    branch.staged = {};
    return commit;
  }

  /**
   * The commits reachable from `start` as lakeFS walks them: a queue ordered newest first
   * (creation time, then the larger id), each commit's unvisited parents (only the first with
   * `firstParent`) joining it; commits created before `since` (seconds) are left out, and
   * their ancestors are not walked through them.
   */
  *walk(
    repo: RepoRecord,
    start: CommitRecord,
    options: { firstParent?: boolean; since?: number } = {},
  ): Generator<CommitRecord> {
    const since = options.since;
    const tooOld = (c: CommitRecord) => since !== undefined && c.creation_date < since;
    const queue: CommitRecord[] = tooOld(start) ? [] : [start];
    const visited = new Set<string>();
    while (queue.length > 0) {
      queue.sort(newerFirst);
      const commit = queue.shift()!;
      yield commit;
      const parents = options.firstParent ? commit.parents.slice(0, 1) : commit.parents;
      for (const id of parents) {
        if (visited.has(id)) continue;
        visited.add(id);
        const parent = this.commit(repo, id);
        if (!tooOld(parent)) queue.push(parent);
      }
    }
  }

  /** Merges `sourceRef` into branch `destName`; returns the new commit. */
  merge(
    repo: RepoRecord,
    sourceRef: string,
    destName: string,
    committer: string,
    options: {
      message?: string;
      metadata?: Record<string, string>;
      strategy?: string;
      squash?: boolean;
      allowEmpty?: boolean;
    },
  ): CommitRecord {
    const strategy = options.strategy ?? "";
    if (!["", "dest-wins", "source-wins"].includes(strategy)) {
      throw new ApiError(400, "argument strategy: invalid value: validation error");
    }
    const dest = this.branch(repo, destName);
    const destHead = this.commit(repo, dest.commitId);
    // Dirty means a staged change that differs from the head (an identical upload is none).
    if (!sameTree(this.branchView(repo, destName), destHead.tree)) {
      throw new ApiError(400, "uncommitted changes (dirty branch)");
    }
    const source = this.resolveCommit(
      repo,
      sourceRef,
      `update branch ${destName}: get commit by ref ${sourceRef}: not found`,
    );
    const base = this.#mergeBase(repo, source, destHead);
    if (!base) throw new ApiError(400, "no merge base");
    // Nothing to merge when the source holds what the base holds, even if the destination
    // differs; a source whose changes the destination already has still makes a commit.
    if (!options.allowEmpty && sameTree(source.tree, base.tree)) {
      throw new ApiError(400, `update branch ${destName}: no changes`);
    }
    const { tree, conflicts } = threeWay(base.tree, source.tree, destHead.tree, strategy);
    if (conflicts.length > 0) throw new MergeConflict(conflicts);
    const commit = this.#newCommit(
      repo,
      options.squash ? [destHead.id] : [destHead.id, source.id],
      committer,
      options.message ?? `Merge '${sourceRef}' into '${destName}'`,
      { ...options.metadata, [MERGE_STRATEGY_KEY]: strategy || "default" },
      tree,
      undefined,
      Math.max(destHead.generation, source.generation) + 1,
    );
    this.#addCommit(repo, commit);
    dest.commitId = commit.id;
    // Staged entries identical to the old head (the only kind a merge allows) are dropped, as
    // lakeFS drops the staging area it sealed for the merge.
    dest.staged = {};
    return commit;
  }

  /**
   * Adds a commit to branch `branchName` that undoes commit `ref`: a three-way merge of its
   * parent's tree (the `parentNumber`th, 1-based; 0 for a single-parent commit) onto the
   * head, with the commit itself as the base. As lakeFS: an unknown ref is 404, a merge
   * commit without a parent number 409, a parent number out of range 400, a dirty branch 400,
   * later changes to the same paths 409 "update branch: conflict found", and a revert that
   * changes nothing 400 "update branch: no changes" unless `allowEmpty`.
   */
  revert(
    repo: RepoRecord,
    branchName: string,
    ref: string,
    committer: string,
    options: {
      parentNumber: number;
      message?: string;
      metadata?: Record<string, string>;
      allowEmpty?: boolean;
    },
  ): CommitRecord {
    const target = this.resolveCommit(repo, ref, `get commit from ref ${ref}: not found`);
    if (target.parents.length > 1 && options.parentNumber <= 0) {
      throw new ApiError(409, "must specify 1-based parent number for reverting merge commit");
    }
    if (options.parentNumber > target.parents.length) {
      throw new ApiError(
        400,
        `given commit does not have the given parent number: parent ${options.parentNumber}`,
      );
    }
    const parentId = target.parents[Math.max(0, options.parentNumber - 1)];
    const branch = this.branch(repo, branchName);
    const head = this.commit(repo, branch.commitId);
    // Dirty means a staged change that differs from the head (an identical upload is none).
    if (!sameTree(this.branchView(repo, branchName), head.tree)) {
      throw new ApiError(400, "uncommitted changes (dirty branch)");
    }
    // The first commit has no parent: reverting it merges the empty tree.
    const parentTree = parentId === undefined ? {} : this.commit(repo, parentId).tree;
    const noChanges = () => new ApiError(400, "update branch: no changes");
    if (!options.allowEmpty && sameTree(parentTree, target.tree)) throw noChanges();
    const { tree, conflicts } = threeWay(target.tree, parentTree, head.tree, "");
    if (conflicts.length > 0) throw new ApiError(409, "update branch: conflict found");
    if (!options.allowEmpty && sameTree(tree, head.tree)) throw noChanges();
    const commit = this.#newCommit(
      repo,
      [head.id],
      committer,
      options.message ?? `Revert ${ref}`,
      options.metadata ?? {},
      tree,
    );
    this.#addCommit(repo, commit);
    branch.commitId = commit.id;
    // Staged entries identical to the old head are dropped, as lakeFS drops the sealed area.
    branch.staged = {};
    return commit;
  }

  /**
   * Applies the change `ref` made (against its parent `parentNumber`, 1 unless given; a merge
   * commit needs one) onto `branchName` as a new commit with `ref`'s message and metadata (or
   * the overrides) plus `cherry-pick-origin` and `cherry-pick-committer`. As in lakeFS, a
   * change the branch already has still makes a commit; a conflict is a 409, a dirty branch a
   * 400.
   */
  cherryPick(
    repo: RepoRecord,
    branchName: string,
    ref: string,
    committer: string,
    options: { parentNumber?: number; message?: string; metadata?: Record<string, string> },
  ): CommitRecord {
    const branch = this.branch(repo, branchName);
    const { parentNumber } = options;
    if (parentNumber !== undefined && parentNumber <= 0) {
      throw new ApiError(
        400,
        "argument parentNumber: value should be greater than 0: invalid value: validation error",
      );
    }
    const target = this.resolveCommit(repo, ref, `get commit from ref ${ref}: not found`);
    if (target.parents.length > 1 && parentNumber === undefined) {
      throw new ApiError(400, "must specify 1-based parent number for cherry-picking merge commit");
    }
    const number = parentNumber ?? 1;
    const parentId = target.parents[number - 1];
    if (parentId === undefined) {
      throw new ApiError(
        400,
        `parent ${number}: given commit does not have the given parent number`,
      );
    }
    const head = this.commit(repo, branch.commitId);
    if (!sameTree(this.branchView(repo, branchName), head.tree)) {
      throw new ApiError(400, "uncommitted changes (dirty branch)");
    }
    const parentTree = this.commit(repo, parentId).tree;
    const { tree, conflicts } = threeWay(parentTree, target.tree, head.tree, "");
    if (conflicts.length > 0) throw new ApiError(409, "update branch: conflict found");
    const metadata = options.metadata !== undefined && Object.keys(options.metadata).length > 0
      ? options.metadata
      : target.metadata;
    const commit = this.#newCommit(
      repo,
      [head.id],
      committer,
      options.message || target.message,
      { ...metadata, "cherry-pick-origin": target.id, "cherry-pick-committer": committer },
      tree,
    );
    this.#addCommit(repo, commit);
    branch.commitId = commit.id;
    branch.staged = {};
    return commit;
  }

  #ancestors(repo: RepoRecord, commit: CommitRecord): Set<string> {
    const seen = new Set<string>();
    const stack = [commit];
    while (stack.length > 0) {
      const c = stack.pop()!;
      if (seen.has(c.id)) continue;
      seen.add(c.id);
      for (const p of c.parents) stack.push(this.commit(repo, p));
    }
    return seen;
  }

  /** The best common ancestor of two commits (highest generation), if any. */
  mergeBase(repo: RepoRecord, a: CommitRecord, b: CommitRecord): CommitRecord | undefined {
    return this.#mergeBase(repo, a, b);
  }

  #mergeBase(repo: RepoRecord, a: CommitRecord, b: CommitRecord): CommitRecord | undefined {
    const fromA = this.#ancestors(repo, a);
    let best: CommitRecord | undefined;
    for (const id of this.#ancestors(repo, b)) {
      if (!fromA.has(id)) continue;
      const c = this.commit(repo, id);
      if (!best || c.generation > best.generation) best = c;
    }
    return best;
  }

  #newCommit(
    repo: RepoRecord,
    parents: string[],
    committer: string,
    message: string,
    metadata: Record<string, string>,
    tree: Record<string, Entry>,
    date?: number,
    generation = parents.reduce(
      (max, id) => Math.max(max, (this.#commits.get(id)?.generation ?? 0) + 1),
      1,
    ),
  ): CommitRecord {
    const creationDate = date ?? now();
    const metaRangeId = Object.keys(tree).length === 0 ? "" : sha256Hex(treeDigestInput(tree));
    this.#lastSeq = Math.max(this.#lastSeq + 1, Date.now() * 1000);
    const id = sha256Hex(JSON.stringify([
      repo.id,
      parents,
      committer,
      message,
      metadata,
      creationDate,
      metaRangeId,
      crypto.randomUUID(),
    ]));
    return {
      id,
      parents,
      committer,
      message,
      creation_date: creationDate,
      meta_range_id: metaRangeId,
      metadata,
      generation,
      seq: date === undefined ? this.#lastSeq : date * 1e6,
      tree,
    };
  }

  #has(repo: RepoRecord, id: string): boolean {
    return this.#repoCommits.get(repo.id)?.has(id) ?? false;
  }

  #addCommit(repo: RepoRecord, commit: CommitRecord): void {
    this.#commits.set(commit.id, commit);
    this.#repoCommits.get(repo.id)?.add(commit.id);
    repo.commitIds.push(commit.id);
    this.#unsavedCommits.push(commit);
  }
}

/**
 * The three-way merge of two trees: a path changed on one side only takes that side; changed
 * on both sides to different entries it conflicts unless a strategy picks a side.
 */
function threeWay(
  base: Record<string, Entry>,
  source: Record<string, Entry>,
  dest: Record<string, Entry>,
  strategy: string,
): { tree: Record<string, Entry>; conflicts: string[] } {
  const tree: Record<string, Entry> = {};
  const paths = new Set([...Object.keys(base), ...Object.keys(source), ...Object.keys(dest)]);
  const conflicts: string[] = [];
  for (const path of paths) {
    const b = base[path];
    const s = source[path];
    const d = dest[path];
    let chosen: Entry | undefined;
    if (sameEntry(s, d)) chosen = s;
    else if (sameEntry(s, b)) chosen = d;
    else if (sameEntry(d, b)) chosen = s;
    else if (strategy === "source-wins") chosen = s;
    else if (strategy === "dest-wins") chosen = d;
    else {
      conflicts.push(path);
      continue;
    }
    if (chosen) tree[path] = chosen;
  }
  return { tree, conflicts };
}
