/**
 * The directory of the executor lanes' sockets (process mode): a fresh private (0700) one per
 * supervisor in the system's temporary directory, named after the supervisor's pid, and
 * removed at stop; one left by a supervisor that was killed is removed by the next start.
 *
 * @module
 */
import { dirname, join } from "node:path";
import { getLogger } from "../log/logger.ts";
import { isPidAlive } from "./_pid.ts";

const PREFIX = "perago-lanes-";
/** `perago-lanes-<pid>-<random>`, as {@linkcode makeLaneDir} names them. */
const NAME = /^perago-lanes-(\d+)-[0-9a-f]+$/;

/** Options of {@linkcode makeLaneDir}. */
export interface LaneDirOptions {
  /** Where to make it. @default the system's temporary directory */
  tmpDir?: string;
}

/**
 * Makes the lanes' directory. It lives outside the workspace and log roots, where every
 * executor may write (there one could move another slot's socket aside and stand in for it).
 * `undefined` where lanes are not used: a compiled binary (its children's permissions are
 * fixed at compile time, so they cannot be narrowed to one socket each), a supervisor without
 * write access to the whole filesystem (the same flags run from source), Windows, or a
 * directory that cannot be made; attempts then pass through the supervisor.
 */
export async function makeLaneDir(options: LaneDirOptions = {}): Promise<string | undefined> {
  if (Deno.build.standalone === true || Deno.build.os === "windows") return undefined;
  // Under narrowed flags (such as a compiled binary's, run from source) the temporary
  // directory is not writable, and asking would prompt or fail the start.
  if (Deno.permissions.querySync({ name: "write" }).state !== "granted") return undefined;
  let dir: string;
  try {
    dir = await Deno.makeTempDir({
      prefix: `${PREFIX}${Deno.pid}-`,
      ...(options.tmpDir === undefined ? {} : { dir: options.tmpDir }),
    });
  } catch (error) {
    getLogger("runtime").info(
      "executor lanes off: cannot make their directory in the temporary directory " +
        "({message}); attempts pass through the supervisor",
      { message: (error as Error).message },
    );
    return undefined;
  }
  await removeDeadLaneDirs(dirname(dir));
  return dir;
}

/**
 * Removes the lane directories in `tmpDir` whose supervisor is gone (its pid is not alive):
 * only directories of this user named as {@linkcode makeLaneDir} names them. Best effort.
 */
export async function removeDeadLaneDirs(tmpDir: string): Promise<string[]> {
  const removed: string[] = [];
  const uid = Deno.uid();
  try {
    for await (const entry of Deno.readDir(tmpDir)) {
      const pid = NAME.exec(entry.name)?.[1];
      if (pid === undefined || !entry.isDirectory || isPidAlive(Number(pid))) continue;
      const path = join(tmpDir, entry.name);
      try {
        const stat = await Deno.lstat(path);
        if (!stat.isDirectory || (uid !== null && stat.uid !== uid)) continue;
        await Deno.remove(path, { recursive: true });
        removed.push(path);
      } catch { /* gone meanwhile, or not ours to remove */ }
    }
  } catch { /* the temporary directory cannot be listed: nothing to sweep */ }
  return removed;
}
