/**
 * Tree comparisons of the demo lakeFS server, with lakeFS's rules: two entries are the same
 * when their identity (size, checksum, user metadata, content type) is; a two-dot diff lists
 * every path whose identity differs between two trees; a three-dot diff ("compare") lists what
 * merging the right tree into the left one would change relative to their merge base, with
 * `conflict` where both sides changed a path differently; listings page by path with prefix,
 * exclusive `after` and an optional delimiter that folds paths into `prefix_changed` entries.
 *
 * @module
 */

/** One object version, as the state stores it. */
export interface EntryIdentity {
  checksum: string;
  size: number;
  contentType: string;
  metadata: Record<string, string>;
}

/** A tree: path to entry. */
export type Tree<E extends EntryIdentity = EntryIdentity> = Record<string, E>;

/** One difference: the entry shown is the right side's, or the left's for `removed`. */
export interface TreeDiff<E extends EntryIdentity = EntryIdentity> {
  type: "added" | "removed" | "changed" | "conflict";
  path: string;
  entry: E;
}

/** One line of a diff listing as lakeFS answers it. */
export type DiffLine =
  | { path: string; path_type: "object"; size_bytes: number; type: TreeDiff["type"] }
  | { path: string; path_type: "common_prefix"; type: "prefix_changed" };

function sameMetadata(a: Record<string, string>, b: Record<string, string>): boolean {
  const keys = Object.keys(a);
  if (keys.length !== Object.keys(b).length) return false;
  return keys.every((key) => Object.hasOwn(b, key) && a[key] === b[key]);
}

/** Whether two entries have the same identity (both missing counts as the same). */
export function sameEntry(a: EntryIdentity | undefined, b: EntryIdentity | undefined): boolean {
  if (a === undefined || b === undefined) return a === b;
  return a.checksum === b.checksum && a.size === b.size && a.contentType === b.contentType &&
    sameMetadata(a.metadata, b.metadata);
}

/** Whether two trees hold the same paths with the same identities. */
export function sameTree(a: Tree, b: Tree): boolean {
  const keys = Object.keys(a);
  if (keys.length !== Object.keys(b).length) return false;
  return keys.every((key) => Object.hasOwn(b, key) && sameEntry(a[key], b[key]));
}

function compare(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}

function get<E extends EntryIdentity>(tree: Tree<E>, path: string): E | undefined {
  return Object.hasOwn(tree, path) ? tree[path] : undefined;
}

/** The paths whose identity differs from `left` to `right`, sorted by path. */
export function diffTrees<E extends EntryIdentity>(left: Tree<E>, right: Tree<E>): TreeDiff<E>[] {
  const paths = [...new Set([...Object.keys(left), ...Object.keys(right)])].sort(compare);
  const diffs: TreeDiff<E>[] = [];
  for (const path of paths) {
    const l = get(left, path);
    const r = get(right, path);
    if (l && !r) diffs.push({ type: "removed", path, entry: l });
    else if (!l && r) diffs.push({ type: "added", path, entry: r });
    else if (l && r && !sameEntry(l, r)) diffs.push({ type: "changed", path, entry: r });
  }
  return diffs;
}

/**
 * What merging `right` into `left` changes on `left`, relative to the merge base `base`:
 * changes made only on the right side, and `conflict` for a path both sides changed to
 * different identities (changes made only on the left side are not listed).
 */
export function compareTrees<E extends EntryIdentity>(
  left: Tree<E>,
  right: Tree<E>,
  base: Tree<E>,
): TreeDiff<E>[] {
  const out: TreeDiff<E>[] = [];
  for (const diff of diffTrees(left, right)) {
    const b = get(base, diff.path);
    if (diff.type === "added") {
      // On the right, not on the left.
      if (!b) out.push(diff); // added on the right only
      else if (!sameEntry(b, diff.entry)) out.push({ ...diff, type: "conflict" }); // removed left, changed right
      // else: removed on the left only
    } else if (diff.type === "changed") {
      const l = get(left, diff.path)!;
      if (!b) out.push({ ...diff, type: "conflict" }); // added on both, differently
      else if (sameEntry(b, diff.entry)) continue; // changed on the left only
      else if (!sameEntry(b, l)) out.push({ ...diff, type: "conflict" }); // changed on both
      else out.push(diff); // changed on the right only
    } else if (b) {
      // Removed: on the left, not on the right.
      if (sameEntry(b, diff.entry)) out.push(diff); // removed on the right only
      else out.push({ ...diff, type: "conflict" }); // changed left, removed right
      // not in base: added on the left only
    }
  }
  return out;
}

/** The smallest string greater than every string starting with `prefix`. */
function upperBoundForPrefix(prefix: string): string {
  for (let i = prefix.length - 1; i >= 0; i--) {
    const code = prefix.charCodeAt(i);
    if (code < 0xffff) return prefix.slice(0, i) + String.fromCharCode(code + 1);
  }
  return prefix + "\uffff";
}

/**
 * One page of a diff listing: paths under `prefix`, after `after` (exclusive), at most
 * `amount`; with a delimiter, paths below the next delimiter fold into one `prefix_changed`
 * entry (and `after` skips everything starting with it).
 */
export function pageDiffs(
  diffs: TreeDiff[],
  options: { prefix: string; after: string; delimiter: string; amount: number },
): { page: DiffLine[]; hasMore: boolean } {
  const { prefix, after, delimiter, amount } = options;
  let start = prefix;
  if (after !== "" && after >= prefix) {
    start = delimiter === "" ? after : upperBoundForPrefix(after);
  }
  const page: DiffLine[] = [];
  let skipBelow: string | undefined;
  for (const diff of diffs) {
    const path = diff.path;
    if (path < start || path === after) continue;
    // Every path from `start` on sorts at or after `prefix`: the first one outside it ends it.
    if (!path.startsWith(prefix)) break;
    if (skipBelow !== undefined && path.startsWith(skipBelow)) continue;
    if (delimiter !== "") {
      const at = path.indexOf(delimiter, prefix.length);
      if (at >= 0) {
        const common = path.slice(0, at + delimiter.length);
        page.push({ path: common, path_type: "common_prefix", type: "prefix_changed" });
        skipBelow = common;
        if (page.length > amount) break;
        continue;
      }
    }
    page.push({ path, path_type: "object", size_bytes: diff.entry.size, type: diff.type });
    if (page.length > amount) break;
  }
  const hasMore = page.length > amount;
  return { page: hasMore ? page.slice(0, amount) : page, hasMore };
}
