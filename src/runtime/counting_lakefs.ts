/**
 * A {@linkcode LakeFsApi} decorator that counts what an attempt moves: objects and bytes
 * downloaded and uploaded, and whether lakeFS answered. The executor derives its metrics
 * from it and `perago run` its progress line, without a hook inside the attempt.
 *
 * @module
 */
import type { LakeFsApi, ObjectStats } from "../lakefs/api.ts";
import { LakeFsError } from "../lakefs/errors.ts";

/** What moved so far. */
export interface TransferCounts {
  downloadedObjects: number;
  downloadedBytes: number;
  uploadedObjects: number;
  uploadedBytes: number;
}

/** Options of {@linkcode countingLakeFs}. */
export interface CountingOptions {
  /** Called after each object moved (progress displays). */
  onTransfer?: (counts: Readonly<TransferCounts>) => void;
  /** Called after each request: `ok` when lakeFS answered (any answer but 429/5xx). */
  onContact?: (ok: boolean, error?: unknown) => void;
}

/** Whether an error means lakeFS did not answer usefully (network, timeout, 429, 5xx). */
export function lakeFsUnreachable(error: unknown): boolean {
  if (!(error instanceof LakeFsError)) return !(error instanceof DOMException);
  return error.status === 0 || error.status === 429 || error.status >= 500;
}

/**
 * Wraps `inner`; `counts` is updated as objects move.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { MemoryLakeFs } from "../testing/memory_lakefs.ts";
 *
 * const lakefs = new MemoryLakeFs();
 * const commit = await lakefs.seedRepository("docs", { "docs/a.txt": "alpha\n" });
 * const { api, counts } = countingLakeFs(lakefs);
 * await new Response(await api.getObject("docs", commit.id, "docs/a.txt")).text();
 * assert.equal(counts.downloadedBytes, 6);
 * ```
 */
export function countingLakeFs(
  inner: LakeFsApi,
  options: CountingOptions = {},
): { api: LakeFsApi; counts: Readonly<TransferCounts> } {
  const counts: TransferCounts = {
    downloadedObjects: 0,
    downloadedBytes: 0,
    uploadedObjects: 0,
    uploadedBytes: 0,
  };
  const downloaded = (bytes: number) => {
    counts.downloadedObjects++;
    counts.downloadedBytes += bytes;
    options.onTransfer?.(counts);
  };
  const { contact, call } = contactReporter(options.onContact);

  const overrides: Partial<LakeFsApi> = {
    async *listObjects(repo, ref, listOptions) {
      try {
        yield* inner.listObjects(repo, ref, listOptions);
        contact(true);
      } catch (error) {
        contact(!lakeFsUnreachable(error), error);
        throw error;
      }
    },
    async getObject(repo, ref, path, signal) {
      const body = await call(() => inner.getObject(repo, ref, path, signal));
      let bytes = 0;
      return body.pipeThrough(
        new TransformStream<Uint8Array, Uint8Array>({
          transform(chunk, controller) {
            bytes += chunk.byteLength;
            controller.enqueue(chunk);
          },
          flush: () => downloaded(bytes),
        }),
      );
    },
    async uploadObject(repo, branch, path, body, uploadOptions) {
      const stats: ObjectStats = await call(() =>
        inner.uploadObject(repo, branch, path, body, uploadOptions)
      );
      counts.uploadedObjects++;
      counts.uploadedBytes += stats.size_bytes ?? uploadOptions?.size ?? 0;
      options.onTransfer?.(counts);
      return stats;
    },
    createBranch: (...args) => call(() => inner.createBranch(...args)),
    getBranch: (...args) => call(() => inner.getBranch(...args)),
    commit: (...args) => call(() => inner.commit(...args)),
    merge: (...args) => call(() => inner.merge(...args)),
  };
  if (inner.getObjectBytes !== undefined) {
    const whole = inner.getObjectBytes.bind(inner);
    overrides.getObjectBytes = async (repo, ref, path, readOptions) => {
      const data = await call(() => whole(repo, ref, path, readOptions));
      downloaded(data.byteLength);
      return data;
    };
  }
  if (inner.downloadObject !== undefined) {
    const fast = inner.downloadObject.bind(inner);
    overrides.downloadObject = async (repo, ref, path, open, signal, options) => {
      const written = await call(() => fast(repo, ref, path, open, signal, options));
      downloaded(written.size);
      return written;
    };
  }
  return { api: withOverrides(inner, overrides), counts };
}

/**
 * Reports to `onContact` whether lakeFS answered: `contact` directly, `call` around a request.
 * An observer that throws never breaks the attempt.
 */
function contactReporter(onContact: CountingOptions["onContact"]) {
  const contact = (ok: boolean, error?: unknown) => {
    try {
      onContact?.(ok, error);
    } catch {
      // an observer never breaks the attempt
    }
  };
  async function call<T>(fn: () => Promise<T>): Promise<T> {
    try {
      const value = await fn();
      contact(true);
      return value;
    } catch (error) {
      contact(!lakeFsUnreachable(error), error);
      throw error;
    }
  }
  return { contact, call };
}

/**
 * `inner` with the methods of `overrides` in place of its own; everything else goes to
 * `inner` untouched (methods added to the seam keep working).
 */
function withOverrides(inner: LakeFsApi, overrides: Partial<LakeFsApi>): LakeFsApi {
  return new Proxy(inner, {
    get(target, property, receiver) {
      if (Object.hasOwn(overrides, property)) {
        return overrides[property as keyof LakeFsApi];
      }
      const value = Reflect.get(target, property, receiver);
      return typeof value === "function" ? value.bind(target) : value;
    },
  });
}
