/**
 * The liveness and readiness verdicts behind `/healthz` and `/readyz`, computed from plain
 * inputs so the rules are testable without a runtime:
 *
 * - live: the supervisor is starting, running or draining, and its broker is alive;
 * - ready: running (not starting, not draining), every executor up, Conductor reached
 *   recently (the last contact succeeded, within the window), and lakeFS likewise when a
 *   workspace task is served.
 *
 * @module
 */

/** The last outcomes of talking to one server. */
export class ContactTracker {
  #okAt: number | undefined;
  #failing = false;
  #error: string | undefined;

  /** A request got an answer from the server (any answer but a transient failure). */
  ok(now = Date.now()): void {
    this.#okAt = now;
    this.#failing = false;
  }

  /** A request failed to reach the server (network error, 5xx, 429). */
  failed(detail: string): void {
    this.#failing = true;
    this.#error = detail;
  }

  /** Why the server does not count as reached, or `undefined` when it does. */
  problem(windowMs: number, now = Date.now()): string | undefined {
    if (this.#failing) return `unreachable: ${this.#error}`;
    if (this.#okAt === undefined) return "not contacted yet";
    if (now - this.#okAt > windowMs) {
      return `not reached for ${Math.round((now - this.#okAt) / 1000)} s`;
    }
    return undefined;
  }
}

/** What the verdicts are made of. */
export interface HealthInputs {
  /** The supervisor's lifecycle state. */
  state: "starting" | "running" | "draining" | "stopped" | "failed";
  brokerAlive: boolean;
  executorsUp: number;
  executorSlots: number;
  /** `undefined` when Conductor was reached recently, else why not. */
  conductorProblem: string | undefined;
  /** `undefined` when lakeFS was reached recently or is not needed, else why not. */
  lakefsProblem: string | undefined;
}

/** A probe's answer. */
export interface ProbeVerdict {
  ok: boolean;
  /** Why not, one line each (empty when ok). */
  reasons: string[];
}

/**
 * The liveness verdict.
 *
 * @example
 * ```ts
 * liveness({
 *   state: "running", brokerAlive: true, executorsUp: 2, executorSlots: 2,
 *   conductorProblem: undefined, lakefsProblem: undefined,
 * }); // { ok: true, reasons: [] }
 * ```
 */
export function liveness(inputs: HealthInputs): ProbeVerdict {
  const reasons: string[] = [];
  if (inputs.state === "stopped" || inputs.state === "failed") {
    reasons.push(`supervisor ${inputs.state}`);
  }
  if (!inputs.brokerAlive && inputs.state !== "starting") reasons.push("broker not running");
  return { ok: reasons.length === 0, reasons };
}

/** The readiness verdict (see the module doc). */
export function readiness(inputs: HealthInputs): ProbeVerdict {
  const reasons = [...liveness(inputs).reasons];
  if (inputs.state === "starting") reasons.push("starting");
  if (inputs.state === "draining") reasons.push("draining: not taking new tasks");
  if (inputs.executorsUp < inputs.executorSlots) {
    reasons.push(`executors up: ${inputs.executorsUp} of ${inputs.executorSlots}`);
  }
  if (inputs.conductorProblem !== undefined) {
    reasons.push(`conductor ${inputs.conductorProblem}`);
  }
  if (inputs.lakefsProblem !== undefined) reasons.push(`lakefs ${inputs.lakefsProblem}`);
  return { ok: reasons.length === 0, reasons: [...new Set(reasons)] };
}
