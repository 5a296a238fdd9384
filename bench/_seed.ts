/**
 * Seeding a benchmark's repository: a data set of files written locally (`writeDataSet`) and
 * staged on a branch with perago's own uploader (`uploadFiles`), as the sync and warm benches
 * both do.
 *
 * ```ts ignore
 * const files = await writeDataSet(join(tempDir, "small"), {
 *   label: "small",
 *   count: 2_000,
 *   bytes: 4096,
 *   seed: 1e6,
 * });
 * await uploadFiles(client, "bench", "main", files, { concurrency: 16, signal });
 * ```
 *
 * @module
 */
import type { LakeFsClient } from "../src/lakefs/client.ts";
import { stageChanges } from "../src/lakefs/sync.ts";
import { writeManyFiles } from "./_common.ts";

/** A local file to upload as `key`. */
export interface LocalFile {
  key: string;
  path: string;
  size: number;
}

/** A data set: `count` files of `bytes` each, their content from `seed`, keys under `label/`. */
export interface DataSetShape {
  label: string;
  count: number;
  bytes: number;
  seed: number;
}

/**
 * Writes the data set under `dir` (`<group>/f<i>.bin`, 100 files a folder) and returns its
 * files keyed `<label>/<path under dir>`.
 */
export async function writeDataSet(dir: string, set: DataSetShape): Promise<LocalFile[]> {
  const paths = await writeManyFiles(dir, set.count, set.bytes, set.seed);
  return paths.map((path) => ({
    key: `${set.label}/${path.slice(dir.length + 1)}`,
    path,
    size: set.bytes,
  }));
}

/** Stages `files` on `branch` of `repo` with perago's `stageChanges`, `concurrency` at once. */
export async function uploadFiles(
  client: LakeFsClient,
  repo: string,
  branch: string,
  files: readonly LocalFile[],
  options: { concurrency: number; signal: AbortSignal },
): Promise<void> {
  await stageChanges(client, {
    repo,
    branch,
    deletes: [],
    concurrency: options.concurrency,
    signal: options.signal,
    uploads: files.map(({ key, path, size }) => ({
      key,
      size,
      open: async () => (await Deno.open(path)).readable,
    })),
  });
}
