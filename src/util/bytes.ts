/**
 * Joining byte chunks, without `node:buffer` (which most processes of perago do not otherwise
 * load).
 *
 * @module
 */

/**
 * `chunks` one after another in one new array of `size` bytes (by default their total
 * length; a smaller size keeps only the first `size` bytes).
 *
 * @example
 * ```ts
 * concatBytes([new Uint8Array([1, 2]), new Uint8Array([3])]); // Uint8Array [1, 2, 3]
 * concatBytes([new Uint8Array([1, 2]), new Uint8Array([3])], 2); // Uint8Array [1, 2]
 * ```
 */
export function concatBytes(
  chunks: readonly Uint8Array[],
  size: number = chunks.reduce((total, chunk) => total + chunk.length, 0),
): Uint8Array<ArrayBuffer> {
  const out = new Uint8Array(size);
  let at = 0;
  for (const chunk of chunks) {
    if (at >= size) break;
    const take = Math.min(chunk.length, size - at);
    out.set(take === chunk.length ? chunk : chunk.subarray(0, take), at);
    at += take;
  }
  return out;
}
