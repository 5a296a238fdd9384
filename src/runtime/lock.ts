/**
 * The supervisor lock: one supervisor per workspace root, as the file
 * `<workspaceRoot>/.perago-supervisor.lock` created with O_EXCL and holding the owner's pid,
 * hostname and start time. A lock left by a dead process on this host is taken over.
 *
 * @module
 */
import { isPidAlive } from "./_pid.ts";

/** Name of the lock file inside the workspace root. */
export const LOCK_FILE_NAME = ".perago-supervisor.lock";

/** What the lock file holds. */
export interface LockInfo {
  pid: number;
  hostname: string;
  startedAt: string;
}

/** Thrown when another live supervisor holds the lock (or the lock cannot be judged). */
export class SupervisorLockError extends Error {
  override name = "SupervisorLockError";
  /** The holder, when the lock file could be read. */
  readonly holder: LockInfo | undefined;
  constructor(message: string, holder?: LockInfo, options?: ErrorOptions) {
    super(message, options);
    this.holder = holder;
  }
}

/** A held lock. `release()` is idempotent and removes the file only if it is still ours. */
export interface SupervisorLock {
  readonly path: string;
  readonly info: LockInfo;
  release(): Promise<void>;
}

/** Options of {@linkcode acquireSupervisorLock}; the defaults are this process. */
export interface AcquireLockOptions {
  /** @default Deno.pid */
  pid?: number;
  /** @default Deno.hostname() */
  hostname?: string;
  /** Liveness check of a pid on this host. @default kill(pid, 0) */
  isAlive?: (pid: number) => boolean;
}

/**
 * Takes the supervisor lock of `workspaceRoot` (which must exist). Requires read/write access
 * to the root, `--allow-sys=hostname` and `--allow-run` (for the liveness check).
 *
 * @throws {SupervisorLockError} when a live process holds it, or it belongs to another host.
 * @example
 * ```ts
 * const workspaceRoot = await Deno.makeTempDir();
 * const lock = await acquireSupervisorLock(workspaceRoot);
 * try {
 *   // supervise: a second supervisor on this root is refused until the release
 * } finally {
 *   await lock.release();
 * }
 * ```
 */
export async function acquireSupervisorLock(
  workspaceRoot: string,
  options: AcquireLockOptions = {},
): Promise<SupervisorLock> {
  const path = `${workspaceRoot.replace(/\/+$/, "")}/${LOCK_FILE_NAME}`;
  const isAlive = options.isAlive ?? isPidAlive;
  const info: LockInfo = {
    pid: options.pid ?? Deno.pid,
    hostname: options.hostname ?? Deno.hostname(),
    startedAt: new Date().toISOString(),
  };
  const body = new TextEncoder().encode(JSON.stringify(info) + "\n");
  for (let round = 0; round < 5; round++) {
    try {
      const file = await Deno.open(path, { createNew: true, write: true, mode: 0o644 });
      try {
        await file.write(body);
      } finally {
        file.close();
      }
      return makeLock(path, info);
    } catch (error) {
      if (!(error instanceof Deno.errors.AlreadyExists)) {
        throw new SupervisorLockError(
          `supervisor lock: cannot create ${path}: ${(error as Error).message}; ` +
            "check that the workspace root exists and is writable",
          undefined,
          { cause: error },
        );
      }
    }
    const holder = await readLock(path);
    if (holder === "missing") continue; // released meanwhile: try again
    if (holder === "unreadable") {
      // A lock being written right now is briefly empty; an old unreadable one is debris.
      const stat = await Deno.stat(path).catch(() => undefined);
      const ageMs = stat?.mtime ? Date.now() - stat.mtime.getTime() : 0;
      if (ageMs < 5_000) {
        throw new SupervisorLockError(
          `supervisor lock: ${path} is being written by another supervisor; ` +
            "retry in a few seconds",
        );
      }
    } else {
      if (holder.hostname !== info.hostname) {
        throw new SupervisorLockError(
          `supervisor lock: ${path} is held by pid ${holder.pid} on host ${holder.hostname} ` +
            `(since ${holder.startedAt}); one supervisor per workspace root: stop it, or if ` +
            "that host is gone, remove the lock file",
          holder,
        );
      }
      if (holder.pid === info.pid || isAlive(holder.pid)) {
        throw new SupervisorLockError(
          `supervisor lock: ${path} is held by running pid ${holder.pid} ` +
            `(since ${holder.startedAt}); one supervisor per workspace root: stop that ` +
            "supervisor or use another PERAGO_WORKSPACE_ROOT",
          holder,
        );
      }
    }
    // Stale: move it aside atomically (only one contender wins the rename), then retry.
    const aside = `${path}.stale-${info.pid}-${crypto.randomUUID()}`;
    try {
      await Deno.rename(path, aside);
      await Deno.remove(aside).catch(() => {});
    } catch (error) {
      if (!(error instanceof Deno.errors.NotFound)) throw error;
    }
  }
  throw new SupervisorLockError(
    `supervisor lock: could not take ${path} after several tries; another supervisor is ` +
      "starting on the same root",
  );
}

/** Reads a lock file: its info, `"missing"`, or `"unreadable"` (empty or not our format). */
export async function readLock(path: string): Promise<LockInfo | "missing" | "unreadable"> {
  let text: string;
  try {
    text = await Deno.readTextFile(path);
  } catch (error) {
    if (error instanceof Deno.errors.NotFound) return "missing";
    throw error;
  }
  try {
    const value = JSON.parse(text) as Partial<LockInfo>;
    if (
      typeof value.pid === "number" && typeof value.hostname === "string" &&
      typeof value.startedAt === "string"
    ) {
      return { pid: value.pid, hostname: value.hostname, startedAt: value.startedAt };
    }
  } catch {
    // fall through
  }
  return "unreadable";
}

function makeLock(path: string, info: LockInfo): SupervisorLock {
  let released = false;
  return {
    path,
    info,
    async release() {
      if (released) return;
      released = true;
      const current = await readLock(path);
      if (
        typeof current === "object" && current.pid === info.pid &&
        current.startedAt === info.startedAt
      ) {
        await Deno.remove(path).catch(() => {});
      }
    },
  };
}
