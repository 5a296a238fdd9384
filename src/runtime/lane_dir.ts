/**
 * The directory of the executor lanes' sockets (process mode). Run from source with write
 * access to the whole filesystem: a fresh private (0700) one per supervisor in the system's
 * temporary directory, named after the supervisor's pid, and removed at stop; one left by a
 * supervisor that was killed is removed by the next start. A compiled binary, or the same
 * narrowed flags run from source: the fixed directory {@linkcode WORKSPACE_LANE_DIR} of the
 * workspace root (one supervisor per root, by its lock), used only when every slot's socket
 * there is granted read, write and `unix:` net access (scripts/compile.ts bakes
 * {@linkcode BAKED_LANE_SLOTS} of them: Deno grants `unix:` sockets by exact path, never by
 * prefix, so the path cannot carry a pid); a socket a killed supervisor left there is replaced
 * when the next broker listens, and the attempt-directory sweeps keep the directory (it has no
 * attempt marker and is not named `task_id=...`).
 *
 * In a compiled binary every executor holds the baked union, write access to the whole
 * workspace root included, so flags cannot keep one executor from another slot's socket: a
 * task could move it aside and stand in for the broker towards that slot's next executor
 * (learning its lane secret), or take that lane and be handed its attempts. It gains nothing
 * its own lane does not give it: attempts of the same task types, run with the same
 * permissions, modules and lakeFS credential; no Conductor secret crosses a lane, and it can
 * already change every attempt directory of the root.
 *
 * @module
 */
import { dirname, join } from "node:path";
import { getLogger } from "../log/logger.ts";
import { isPidAlive } from "./_pid.ts";

const PREFIX = "perago-lanes-";
/** `perago-lanes-<pid>-<random>`, as {@linkcode makeLaneDir} names them. */
const NAME = /^perago-lanes-(\d+)-[0-9a-f]+$/;

/** Name of the lanes' directory inside the workspace root (compiled binary, narrowed flags). */
export const WORKSPACE_LANE_DIR = ".perago-lanes";

/**
 * How many slots' lane sockets scripts/compile.ts grants: with `-j` above it, attempts pass
 * through the supervisor.
 */
export const BAKED_LANE_SLOTS = 64;

/** The longest Unix socket path (`sun_path` holds 108 bytes with the final NUL). */
const MAX_SOCKET_PATH = 107;

/** Whether `path` is too long for a Unix socket (counted in bytes). */
function tooLong(path: string): boolean {
  return new TextEncoder().encode(path).length > MAX_SOCKET_PATH;
}

/** Options of {@linkcode makeLaneDir}. */
export interface LaneDirOptions {
  /** Where to make it. @default the system's temporary directory */
  tmpDir?: string;
  /** The workspace root: where the lanes live when the temporary directory is not writable. */
  workspaceRoot?: string;
  /** The executors' slots (`-j`). @default 1 */
  slots?: number;
  /** @default Deno.build.standalone */
  standalone?: boolean;
}

/** The lane socket of each slot in `dir`. */
export function laneSocketPaths(dir: string, slots: number): string[] {
  return Array.from({ length: slots }, (_, slot) => join(dir, `${slot}.sock`));
}

/**
 * The `unix:` net grants of the lane sockets in the workspace root that scripts/compile.ts
 * bakes; none where the paths would be too long for a Unix socket.
 */
export function bakedLaneNet(workspaceRoot: string): string[] {
  const paths = laneSocketPaths(join(workspaceRoot, WORKSPACE_LANE_DIR), BAKED_LANE_SLOTS);
  return paths.some(tooLong) ? [] : paths.map((path) => `unix:${path}`);
}

/**
 * Makes the lanes' directory. From source with write access to the whole filesystem it lives
 * in the temporary directory, outside the workspace and log roots where every executor may
 * write (there one could move another slot's socket aside and stand in for it; from source
 * each executor may reach its own socket only). Otherwise (a compiled binary, whose children
 * all hold the baked union, or its flags run from source) it is
 * {@linkcode WORKSPACE_LANE_DIR} in the workspace root, when every slot's socket there is
 * granted. `undefined` where lanes are not used: Windows, sockets not granted (more slots
 * than were baked, a workspace root too long for a socket path), or a directory that cannot
 * be made; attempts then pass through the supervisor.
 */
export async function makeLaneDir(options: LaneDirOptions = {}): Promise<string | undefined> {
  if (Deno.build.os === "windows") return undefined;
  const standalone = options.standalone ?? Deno.build.standalone === true;
  // Under narrowed flags (such as a compiled binary's, run from source) the temporary
  // directory is not writable, and asking would prompt or fail the start.
  if (standalone || Deno.permissions.querySync({ name: "write" }).state !== "granted") {
    return options.workspaceRoot === undefined
      ? undefined
      : await makeWorkspaceLaneDir(options.workspaceRoot, options.slots ?? 1);
  }
  let dir: string;
  try {
    dir = await Deno.makeTempDir({
      prefix: `${PREFIX}${Deno.pid}-`,
      ...(options.tmpDir === undefined ? {} : { dir: options.tmpDir }),
    });
  } catch (error) {
    return lanesOff(
      `cannot make their directory in the temporary directory (${(error as Error).message})`,
    );
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

/** Logs why the lanes are not used (attempts then pass through the supervisor): `undefined`. */
function lanesOff(why: string): undefined {
  getLogger("runtime").info("executor lanes off: {why}; attempts pass through the supervisor", {
    why,
  });
  return undefined;
}

/**
 * {@linkcode WORKSPACE_LANE_DIR} of the workspace root, private (0700), when every slot's
 * socket in it is granted read, write and `unix:` net access; else `undefined` (logged).
 */
async function makeWorkspaceLaneDir(
  workspaceRoot: string,
  slots: number,
): Promise<string | undefined> {
  const dir = join(workspaceRoot, WORKSPACE_LANE_DIR);
  const paths = laneSocketPaths(dir, slots);
  if (paths.some(tooLong)) {
    return lanesOff(`the lane socket paths in ${dir} are longer than ${MAX_SOCKET_PATH} bytes`);
  }
  const granted = paths.every((path) =>
    Deno.permissions.querySync({ name: "net", host: `unix:${path}` }).state === "granted" &&
    Deno.permissions.querySync({ name: "read", path }).state === "granted" &&
    Deno.permissions.querySync({ name: "write", path }).state === "granted"
  );
  if (!granted) {
    return lanesOff(
      `the lane sockets of ${slots} slot(s) in ${dir} are not all granted (a compiled ` +
        `binary grants ${BAKED_LANE_SLOTS})`,
    );
  }
  try {
    await Deno.mkdir(workspaceRoot, { recursive: true });
    await Deno.mkdir(dir, { recursive: true, mode: 0o700 });
    if (!(await Deno.lstat(dir)).isDirectory) return lanesOff(`${dir} is not a directory`);
    // Only its owner may change its mode: one of another user's fails here.
    await Deno.chmod(dir, 0o700);
  } catch (error) {
    return lanesOff(`cannot make ${dir} (${(error as Error).message})`);
  }
  getLogger("runtime").info("executor lanes in {dir}", { dir });
  return dir;
}
