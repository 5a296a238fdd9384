/**
 * Log retention: deletes rotated and current JSONL log files older than the retention period.
 *
 * @module
 */
import { join } from "../util/path.ts";

const LOG_FILE = /\.jsonl(?:\.\d+)?$/;

/**
 * Removes the files under `dir` (recursively) whose name ends in `.jsonl` (current and rotated
 * files) or `.jsonl.<n>` (rotated by earlier versions) and
 * whose modification time is older than `now - retentionMs`. Nothing else is touched: other
 * files, directories and symlinks stay. A missing `dir` is fine. Returns the removed paths.
 *
 * Requires `--allow-read` and `--allow-write` of `dir`.
 *
 * Its file system calls are synchronous (a few files per worker and rotation to list): Deno
 * runs each asynchronous one on a thread pool, whose first use costs a process memory it keeps,
 * and an idle executor runs this at start (with the mkdir of setupLogging and the task loader's
 * stat: idle executor 49.9 -> 49.6 MiB RSS when all three are synchronous, medians of 7
 * alternated runs).
 *
 * @example
 * ```ts
 * const dir = await Deno.makeTempDir();
 * await removeExpiredLogs(dir, 30 * 86_400_000); // files older than 30 days go
 * ```
 */
export async function removeExpiredLogs(
  dir: string,
  retentionMs: number,
  now: number = Date.now(),
): Promise<string[]> {
  const cutoff = now - retentionMs;
  const removed: string[] = [];
  let entries: Deno.DirEntry[];
  try {
    entries = [...Deno.readDirSync(dir)];
  } catch (error) {
    if (error instanceof Deno.errors.NotFound) return removed;
    throw error;
  }
  for (const entry of entries) {
    const path = join(dir, entry.name);
    if (entry.isDirectory) {
      removed.push(...await removeExpiredLogs(path, retentionMs, now));
    } else if (entry.isFile && LOG_FILE.test(entry.name)) {
      try {
        const info = Deno.lstatSync(path);
        if (info.mtime !== null && info.mtime.getTime() < cutoff) {
          Deno.removeSync(path);
          removed.push(path);
        }
      } catch (error) {
        // Another process may have removed or rotated it meanwhile.
        if (!(error instanceof Deno.errors.NotFound)) throw error;
      }
    }
  }
  return removed;
}
