/**
 * Attempt-directory owners: each attempt gets a random owner token, registered as active for
 * as long as the attempt runs. The runtime's workspace GC never deletes a directory whose
 * marker names an active token of this process. The registry is process-local.
 *
 * @module
 */

/** Who owns an attempt directory: written into its marker. */
export interface WorkspaceOwner {
  readonly workerId: string;
  readonly pid: number;
  /** Random, unique per attempt. */
  readonly token: string;
}

const active = new Set<string>();

/**
 * Makes a new owner for `workerId` in this process with a fresh random token.
 *
 * @example
 * ```ts
 * const owner = newOwner("featuresBuild0001");
 * registerOwner(owner);
 * try {
 *   isOwnerActive(owner.token); // true while the attempt runs
 * } finally {
 *   unregisterOwner(owner);
 * }
 * ```
 */
export function newOwner(workerId: string): WorkspaceOwner {
  return Object.freeze({ workerId, pid: Deno.pid, token: crypto.randomUUID() });
}

/** Marks `owner`'s token as active in this process. */
export function registerOwner(owner: WorkspaceOwner): void {
  active.add(owner.token);
}

/** Removes `owner`'s token from the active set (idempotent). */
export function unregisterOwner(owner: WorkspaceOwner): void {
  active.delete(owner.token);
}

/** Whether `token` belongs to an attempt running in this process. */
export function isOwnerActive(token: string): boolean {
  return active.has(token);
}

/** How many owners are active (for tests and diagnostics). */
export function activeOwnerCount(): number {
  return active.size;
}
