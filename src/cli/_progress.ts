/**
 * A one-line progress display on stderr for `perago run` and `perago dev --seed`: the phase,
 * the objects and bytes downloaded and staged, the elapsed time; redrawn at most ten times a
 * second, only when stderr is a terminal (otherwise every method does nothing, so piped
 * output and CI logs stay quiet). Log lines go above it through {@linkcode Progress.write}.
 *
 * @module
 */

/** What moved so far (see `countingLakeFs`). */
export interface ProgressCounts {
  downloadedObjects: number;
  downloadedBytes: number;
  uploadedObjects: number;
  uploadedBytes: number;
}

/** A progress display. */
export interface Progress {
  /** Whether anything is drawn (stderr is a terminal). */
  readonly active: boolean;
  /** The current step, e.g. `download`. */
  phase(name: string): void;
  /** The latest transfer counts. */
  counts(counts: Readonly<ProgressCounts>): void;
  /** Writes whole lines (logs) above the progress line. */
  write(bytes: Uint8Array): void;
  /** Clears the line and stops redrawing; idempotent. */
  stop(): void;
}

/** Where the display draws (stderr; tests give a fake terminal). */
export interface ProgressStream {
  writeSync(bytes: Uint8Array): number;
  isTerminal(): boolean;
}

const SPINNER = ["⠋", "⠙", "⠹", "⠸", "⠼", "⠴", "⠦", "⠧", "⠇", "⠏"];
const CLEAR = "\r\x1b[2K";

/** `1.5 MiB`, `12 KiB`, `830 B`. */
export function formatBytes(bytes: number): string {
  const units = ["B", "KiB", "MiB", "GiB", "TiB"];
  let value = bytes;
  let unit = 0;
  while (value >= 1024 && unit < units.length - 1) {
    value /= 1024;
    unit++;
  }
  return unit === 0 ? `${bytes} B` : `${value.toFixed(value < 10 ? 1 : 0)} ${units[unit]}`;
}

/**
 * Starts a display labelled `label` (e.g. the task name).
 *
 * @example
 * ```ts
 * const progress = startProgress("normalize_text");
 * progress.phase("download");
 * progress.stop();
 * ```
 */
export function startProgress(
  label: string,
  options: { stream?: ProgressStream; intervalMs?: number } = {},
): Progress {
  const stream = options.stream ?? Deno.stderr;
  const put = streamWriter(stream);
  if (!isTerminal(stream)) {
    return {
      active: false,
      phase() {},
      counts() {},
      write: put,
      stop() {},
    };
  }
  const state: LineState = {
    label,
    started: performance.now(),
    phase: "starting",
    counts: { downloadedObjects: 0, downloadedBytes: 0, uploadedObjects: 0, uploadedBytes: 0 },
    tick: 0,
  };
  let stopped = false;
  const draw = () => put(`${CLEAR}${progressLine(state)}`);
  const timer = setInterval(() => {
    state.tick++;
    draw();
  }, options.intervalMs ?? 100);
  draw();
  return {
    active: true,
    phase(name) {
      state.phase = name;
      draw();
    },
    counts(next) {
      state.counts = { ...next };
    },
    write(bytes) {
      if (stopped) return put(bytes);
      put(CLEAR);
      put(bytes);
      draw();
    },
    stop() {
      if (stopped) return;
      stopped = true;
      clearInterval(timer);
      put(CLEAR);
    },
  };
}

/** Whether `stream` is a terminal (a stream that cannot tell is not). */
function isTerminal(stream: ProgressStream): boolean {
  try {
    return stream.isTerminal();
  } catch {
    return false;
  }
}

/** Writes text or bytes whole to `stream`; a closed terminal never breaks the run. */
function streamWriter(stream: ProgressStream): (text: string | Uint8Array) => void {
  const encoder = new TextEncoder();
  return (text) => {
    const bytes = typeof text === "string" ? encoder.encode(text) : text;
    try {
      let written = 0;
      while (written < bytes.length) written += stream.writeSync(bytes.subarray(written));
    } catch {
      // a closed terminal never breaks the run
    }
  };
}

/** What the progress line shows. */
interface LineState {
  label: string;
  /** `performance.now()` at the start. */
  started: number;
  phase: string;
  counts: ProgressCounts;
  /** Redraws so far (turns the spinner). */
  tick: number;
}

/** The progress line: spinner, label, phase, what moved (once it moves), elapsed seconds. */
function progressLine(state: LineState): string {
  const { counts, phase } = state;
  const seconds = ((performance.now() - state.started) / 1000).toFixed(1);
  const parts = [`${SPINNER[state.tick % SPINNER.length]} ${state.label}: ${phase}`];
  if (counts.downloadedObjects > 0 || phase === "download") {
    parts.push(`↓ ${counts.downloadedObjects} objects ${formatBytes(counts.downloadedBytes)}`);
  }
  if (counts.uploadedObjects > 0 || phase === "stage") {
    parts.push(`↑ ${counts.uploadedObjects} staged ${formatBytes(counts.uploadedBytes)}`);
  }
  parts.push(`${seconds} s`);
  return parts.join("  ");
}
