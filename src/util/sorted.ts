/**
 * Walking lists sorted by a string key (UTF-16 code unit order, JavaScript's `<`) with cursors
 * instead of a Map of one of them: snapshots, a download's listing and an upload plan hold
 * tens of thousands of entries, and one Map of them costs a few ms and as many objects.
 *
 * @module
 */

/** Whether the keys of `list` are strictly increasing. */
export function isSortedBy<T>(list: readonly T[], keyOf: (item: T) => string): boolean {
  for (let i = 1; i < list.length; i++) {
    if (!(keyOf(list[i - 1]!) < keyOf(list[i]!))) return false;
  }
  return true;
}

/**
 * A lookup of `list` (sorted by `keyOf`) for keys asked in increasing order: one cursor moves
 * forward through the list, so a whole pass costs one walk of it. A key asked out of order, or
 * a list out of order, is only missed (`undefined`), never answered with another entry.
 *
 * @example
 * ```ts
 * const find = cursorLookup([{ k: "a" }, { k: "c" }], (item) => item.k);
 * find("a"); // { k: "a" }
 * find("b"); // undefined
 * find("c"); // { k: "c" }
 * ```
 */
export function cursorLookup<T>(
  list: readonly T[],
  keyOf: (item: T) => string,
): (key: string) => T | undefined {
  let at = 0;
  return (key) => {
    while (at < list.length && keyOf(list[at]!) < key) at++;
    const item = list[at];
    return item !== undefined && keyOf(item) === key ? item : undefined;
  };
}

/**
 * Calls `visit` once per key found in `a` or in `b`, in key order, with the entry each holds
 * at that key (`undefined` where one has none), following both lists with one cursor each. A
 * list whose keys are not strictly increasing is sorted first (a copy).
 *
 * @example
 * ```ts
 * const pairs: string[] = [];
 * forEachPair([{ k: "a" }, { k: "b" }], [{ k: "b" }, { k: "c" }], (item) => item.k, (x, y) => {
 *   pairs.push(`${x?.k ?? "-"}${y?.k ?? "-"}`);
 * });
 * pairs; // ["a-", "bb", "-c"]
 * ```
 */
export function forEachPair<A, B>(
  a: readonly A[],
  b: readonly B[],
  keyOf: (item: A | B) => string,
  visit: (inA: A | undefined, inB: B | undefined) => void,
): void {
  const left = sortedBy(a, keyOf);
  const right = sortedBy(b, keyOf);
  let i = 0;
  let j = 0;
  while (i < left.length || j < right.length) {
    const x = left[i];
    const y = right[j];
    if (y === undefined || (x !== undefined && keyOf(x) < keyOf(y))) {
      visit(x, undefined);
      i++;
    } else if (x === undefined || keyOf(y) < keyOf(x)) {
      visit(undefined, y);
      j++;
    } else {
      visit(x, y);
      i++;
      j++;
    }
  }
}

/** `list` when its keys are strictly increasing, else a copy sorted by them. */
function sortedBy<T>(list: readonly T[], keyOf: (item: T) => string): readonly T[] {
  if (isSortedBy(list, keyOf)) return list;
  return [...list].sort((x, y) => {
    const kx = keyOf(x);
    const ky = keyOf(y);
    return kx < ky ? -1 : kx > ky ? 1 : 0;
  });
}
