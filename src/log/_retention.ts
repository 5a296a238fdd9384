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
    entries = await Array.fromAsync(Deno.readDir(dir));
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
        const info = await Deno.lstat(path);
        if (info.mtime !== null && info.mtime.getTime() < cutoff) {
          await Deno.remove(path);
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
