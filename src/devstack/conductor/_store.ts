/**
 * Persistence of the demo Conductor state: one JSON file written atomically (temp file +
 * rename), saves coalesced so a burst of changes costs one write.
 *
 * @module
 */
import { join } from "node:path";
import { emptyState, type EngineState } from "./engine.ts";

const FILE = "conductor-state.json";

/** Loads the state from `dataDir`, or an empty state when there is none yet. */
export async function loadState(dataDir: string): Promise<EngineState> {
  await Deno.mkdir(dataDir, { recursive: true });
  let text: string;
  try {
    text = await Deno.readTextFile(join(dataDir, FILE));
  } catch (error) {
    if (error instanceof Deno.errors.NotFound) return emptyState();
    throw error;
  }
  try {
    const parsed = JSON.parse(text) as Partial<EngineState>;
    return { ...emptyState(), ...parsed };
  } catch (cause) {
    throw new Error(
      `demo Conductor: cannot read state ${
        join(dataDir, FILE)
      }: not valid JSON; delete it to start empty`,
      { cause },
    );
  }
}

/** Writes state snapshots to `dataDir`, at most one write in flight, the last one winning. */
export class StateSaver {
  readonly #path: string;
  readonly #snapshot: () => EngineState;
  #dirty = false;
  #running: Promise<void> | undefined;
  #lastError: unknown;

  constructor(dataDir: string, snapshot: () => EngineState) {
    this.#path = join(dataDir, FILE);
    this.#snapshot = snapshot;
  }

  /** Marks the state changed; a save follows soon. */
  schedule(): void {
    this.#dirty = true;
    if (!this.#running) this.#running = this.#loop();
  }

  /** Waits until every scheduled change is on disk. */
  async flush(): Promise<void> {
    while (this.#running) await this.#running;
    if (this.#lastError) {
      const error = this.#lastError;
      this.#lastError = undefined;
      throw error;
    }
  }

  async #loop(): Promise<void> {
    try {
      while (this.#dirty) {
        this.#dirty = false;
        const text = JSON.stringify(this.#snapshot());
        const temp = `${this.#path}.${crypto.randomUUID()}.tmp`;
        try {
          await Deno.writeTextFile(temp, text);
          await Deno.rename(temp, this.#path);
        } catch (error) {
          this.#lastError = error;
          await Deno.remove(temp).catch(() => {});
        }
      }
    } finally {
      this.#running = undefined;
    }
  }
}
