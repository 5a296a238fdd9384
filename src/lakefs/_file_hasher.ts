/**
 * Verifying downloaded files without JavaScript touching their bytes on the way in: the
 * download pipes the response body into the file (Deno moves the bytes natively, as a plain
 * `fetch().body.pipeTo(file.writable)` does), then a worker thread reads the file back, counts
 * its bytes and hashes it (MD5, twelve files at once in the SIMD lanes of `_md5_lanes.ts`, once
 * twelve are waiting or the download said no more are coming; SHA-256 too for a download that
 * asks).
 *
 * Why read back instead of hashing the chunks as they arrive: on the 2-core host of the sync
 * bench (1,000 objects of 1 MiB, 8 at once, a demo lakeFS beside it), reading every chunk into
 * JavaScript, copying it into a hashing worker's ring and posting a message per chunk cost the
 * downloading thread 1.2 s of CPU per GiB against 0.5 s for the native pipe, and the process
 * 4.5 s against 3.5 s with the read-back (a file just written is read from the page cache:
 * 1 GiB in about 0.1 s of CPU here); the lakeFS server beside it gets the difference. The
 * bytes hashed are the bytes in the file, which is what the task will read.
 *
 * {@linkcode FileHashers} is one download's workers; where a worker cannot start, files are
 * hashed on the calling thread (node:crypto, async reads). {@linkcode pipedFileSink} is the
 * sink a download writes through; {@linkcode fileSink} hashes chunks as they arrive on the
 * calling thread, for a client used on its own.
 *
 * @module
 */
import { createHash } from "node:crypto";
import type { ObjectSink, WrittenObject } from "./api.ts";
import {
  MD5_INIT,
  MD5_LANES,
  MD5_TAIL_SOURCE,
  md5LanesStateBytes,
  md5LanesWasmBytes,
} from "./_md5_lanes.ts";

/**
 * Hashing workers of one download: one core is left to the thread reading the network, up to
 * 4 others hash (one is ~2.5 GB/s of twelve-lane MD5 on this host's cores).
 */
export const MAX_HASH_WORKERS = Math.max(1, Math.min(4, (navigator.hardwareConcurrency ?? 2) - 1));

/** Each lane's read buffer in the worker's memory. */
const REGION_BYTES = 256 * 1024;
/** After the regions: padding blocks of a finished file, then the module's state and scratch. */
const SCRATCH_BYTES = 64 * 1024;
/** Pages (64 KiB) of a worker's memory. */
const MEMORY_PAGES = (MD5_LANES * REGION_BYTES + SCRATCH_BYTES) / 65536;
/** See the worker's `SOLO_MIN_BYTES`. */
const SOLO_MIN_BYTES = 4 * 1024 * 1024;
/**
 * Files given to a worker before the next one starts (up to {@linkcode MAX_HASH_WORKERS}):
 * enough to keep its lanes full, so a second worker starts only once the first has a backlog.
 */
const FILES_PER_WORKER = 2 * MD5_LANES;
/**
 * How long fewer files than lanes wait for more before they are hashed anyway (a lane without
 * a file costs as much as one with). Files arriving fast enough to keep a core busy fill the
 * lanes well within it; slower ones leave the core idle anyway.
 */
const WAIT_MS = 50;

if (md5LanesStateBytes() + 1024 > SCRATCH_BYTES) throw new Error("hasher: scratch too small");

// The worker's source is inline (a blob URL) so `deno compile` needs no extra include. It
// reads the files it is given (the download's own, just written): workers inherit the
// process's permissions, and a download already has read access to its target directory.
//
// Lanes, each a file being hashed: a lane reads its file into its region, and one call of the
// module compresses as many blocks as every busy lane has. Fewer busy lanes than the module has
// run only once the files waited WAIT_MS for company (until a lane finishes, when they wait
// again), or once the caller said no more are coming for now (`flush`, until the worker is
// idle).
const WORKER_SOURCE = `
import { createHash } from "node:crypto";
const LANES = ${MD5_LANES};
const REGION = ${REGION_BYTES};
const SCRATCH = LANES * REGION;
const STATE_AT = SCRATCH + 1024;
const INIT = ${JSON.stringify(MD5_INIT)};
${MD5_TAIL_SOURCE}
/** Lane bytes (busy or not) hashed before the worker looks at its messages again. */
const SLICE_BYTES = 16 * 1024 * 1024;
let waitMs = ${WAIT_MS};
/** Whether each file's SHA-256 is taken too (the download's choice, see FileHashers). */
let sha256 = false;
/**
 * A file at least this large, alone once the wait is over, is hashed with node:crypto (one
 * stream at ~0.6 GB/s, where one lane runs at 1/LANES of the module's ~2.5).
 */
const SOLO_MIN_BYTES = ${SOLO_MIN_BYTES};
let md5, bytes, words;
const queue = [];
/** The file being hashed alone (node:crypto), if any: it runs to its end before the lanes. */
let solo;
const lanes = new Array(LANES).fill(undefined);
const pointers = new Array(LANES).fill(0);
let timer;
/** Set once files waited WAIT_MS: lanes run part-empty until one of them finishes. */
let forced = false;
/** Set by a flush: lanes run part-empty until the worker is idle. */
let flushing = false;
let scheduled = false;

function answer(job, message) {
  self.postMessage({ id: job.id, ...message });
}

function fail(lane, error) {
  try { lane.file.close(); } catch { /* closed */ }
  answer(lane.job, { error: error instanceof Error ? error.message : String(error) });
}

/** The word at state index w (A..D) of lane i. */
function stateIndex(i, w) {
  return (STATE_AT >> 2) + (i >> 2) * 16 + w * 4 + (i & 3);
}

function fill() {
  for (let i = 0; i < LANES; i++) {
    while (lanes[i] === undefined && queue.length > 0) {
      const job = queue.shift();
      let file;
      try {
        file = Deno.openSync(job.path, { read: true });
      } catch (error) {
        answer(job, { error: error instanceof Error ? error.message : String(error) });
        continue;
      }
      lanes[i] = {
        job, file, state: INIT.slice(), size: 0, pos: 0, avail: 0, eof: false,
        sha: sha256 ? createHash("sha256") : undefined,
      };
    }
  }
}

function refill(lane, i) {
  const base = i * REGION;
  if (lane.pos > 0) {
    bytes.copyWithin(base, base + lane.pos, base + lane.avail);
    lane.avail -= lane.pos;
    lane.pos = 0;
  }
  while (lane.avail < REGION) {
    const n = lane.file.readSync(bytes.subarray(base + lane.avail, base + REGION));
    if (n === null) { lane.eof = true; break; }
    lane.sha?.update(bytes.subarray(base + lane.avail, base + lane.avail + n));
    lane.avail += n;
    lane.size += n;
  }
}

function finish(lane, i) {
  const hex = md5Tail(md5, bytes, words, SCRATCH, STATE_AT, LANES, lane.state, i * REGION + lane.pos, lane.avail - lane.pos, lane.size);
  lane.file.close();
  answer(lane.job, { size: lane.size, md5: hex, sha256: lane.sha?.digest("hex") });
}

function waitForCompany() {
  timer ??= setTimeout(() => { timer = undefined; forced = true; schedule(); }, waitMs);
}

// Hashes while every lane has a file (or, forced, while any has), or until a slice is done:
// then it yields, so new files and aborts are seen.
function pump() {
  scheduled = false;
  let budget = SLICE_BYTES;
  while (budget > 0) {
    if (solo === undefined && (forced || flushing) && queue.length === 1 && lanes.every((l) => l === undefined)) {
      solo = startSolo(queue[0]);
      if (solo !== undefined) queue.shift();
    }
    if (solo !== undefined) {
      budget -= soloStep();
      continue;
    }
    fill();
    let busy = 0;
    for (const lane of lanes) if (lane !== undefined) busy++;
    if (busy === 0) {
      forced = false;
      flushing = false;
      return;
    }
    if (busy < LANES && !forced && !flushing) return waitForCompany();
    if (busy === LANES && timer !== undefined) {
      // The wait is over: a timer left from it would force the next one short.
      clearTimeout(timer);
      timer = undefined;
    }
    let finished = false;
    for (let i = 0; i < LANES; i++) {
      const lane = lanes[i];
      if (lane === undefined) continue;
      try {
        if (!lane.eof && lane.avail - lane.pos < REGION / 4) refill(lane, i);
        if (lane.eof && lane.avail - lane.pos < 64) {
          finish(lane, i);
          lanes[i] = undefined;
          finished = true;
        }
      } catch (error) {
        fail(lane, error);
        lanes[i] = undefined;
        finished = true;
      }
    }
    if (finished) {
      forced = false;
      continue;
    }
    let n = Infinity;
    for (let i = 0; i < LANES; i++) {
      const lane = lanes[i];
      if (lane === undefined) {
        pointers[i] = 0;
        continue;
      }
      n = Math.min(n, (lane.avail - lane.pos) >>> 6);
      pointers[i] = i * REGION + lane.pos;
      for (let w = 0; w < 4; w++) words[stateIndex(i, w)] = lane.state[w];
    }
    // A lane without a file hashes whatever its pointer reads (region 0, in bounds for any n)
    // into a state nobody reads.
    md5(STATE_AT, ...pointers, n);
    for (let i = 0; i < LANES; i++) {
      const lane = lanes[i];
      if (lane === undefined) continue;
      for (let w = 0; w < 4; w++) lane.state[w] = words[stateIndex(i, w)];
      lane.pos += n * 64;
    }
    budget -= n * 64 * LANES;
  }
  schedule();
}

/** The solo state of a large lone file, or undefined (small, or gone: the lanes then see it). */
function startSolo(job) {
  let file;
  try {
    file = Deno.openSync(job.path, { read: true });
    if (file.statSync().size < SOLO_MIN_BYTES) {
      file.close();
      return undefined;
    }
  } catch {
    try { file?.close(); } catch { /* closed */ }
    return undefined;
  }
  return {
    job, file, hash: createHash("md5"), sha: sha256 ? createHash("sha256") : undefined,
    size: 0, buffer: new Uint8Array(REGION),
  };
}

/** Hashes one region of the solo file; answers once it ends. Returns the bytes read. */
function soloStep() {
  const s = solo;
  let n;
  try {
    n = s.file.readSync(s.buffer);
    if (n !== null) {
      s.hash.update(s.buffer.subarray(0, n));
      s.sha?.update(s.buffer.subarray(0, n));
      s.size += n;
      return n;
    }
    s.file.close();
    answer(s.job, { size: s.size, md5: s.hash.digest("hex"), sha256: s.sha?.digest("hex") });
  } catch (error) {
    fail(s, error);
  }
  solo = undefined;
  forced = false;
  return 64;
}

// Without the SIMD module: one file at a time, node:crypto.
function pumpScalar() {
  scheduled = false;
  const job = queue.shift();
  if (job === undefined) return;
  let file;
  try {
    file = Deno.openSync(job.path, { read: true });
    const hash = createHash("md5");
    const sha = sha256 ? createHash("sha256") : undefined;
    const buffer = new Uint8Array(REGION);
    let size = 0;
    while (true) {
      const n = file.readSync(buffer);
      if (n === null) break;
      hash.update(buffer.subarray(0, n));
      sha?.update(buffer.subarray(0, n));
      size += n;
    }
    answer(job, { size, md5: hash.digest("hex"), sha256: sha?.digest("hex") });
  } catch (error) {
    answer(job, { error: error instanceof Error ? error.message : String(error) });
  } finally {
    try { file?.close(); } catch { /* closed */ }
  }
  schedule();
}

function schedule() {
  if (scheduled) return;
  scheduled = true;
  setTimeout(md5 === undefined ? pumpScalar : pump, 0);
}

self.onmessage = (event) => {
  const m = event.data;
  if (m.t === "init") {
    waitMs = m.waitMs;
    sha256 = m.sha256;
    if (m.memory !== undefined) {
      md5 = new WebAssembly.Instance(new WebAssembly.Module(m.wasm), {
        env: { memory: m.memory },
      }).exports.md5lanes;
      bytes = new Uint8Array(m.memory.buffer);
      words = new Uint32Array(m.memory.buffer);
    }
    return;
  }
  if (m.t === "hash") {
    queue.push({ id: m.id, path: m.path });
    let busy = 0;
    for (const lane of lanes) if (lane !== undefined) busy++;
    if (md5 === undefined || forced || flushing || queue.length + busy >= LANES) schedule();
    else waitForCompany();
    return;
  }
  if (m.t === "flush") {
    flushing = true;
    schedule();
    return;
  }
  if (m.t === "abort") {
    if (solo !== undefined && solo.job.id === m.id) {
      try { solo.file.close(); } catch { /* closed */ }
      solo = undefined;
    }
    const at = queue.findIndex((job) => job.id === m.id);
    if (at >= 0) queue.splice(at, 1);
    const i = lanes.findIndex((lane) => lane !== undefined && lane.job.id === m.id);
    if (i >= 0) {
      try { lanes[i].file.close(); } catch { /* closed */ }
      lanes[i] = undefined;
    }
  }
};
`;

interface Slot {
  readonly worker: Worker;
  pending: number;
}

interface Job {
  readonly slot: Slot | undefined;
  readonly done: PromiseWithResolvers<WrittenObject>;
}

/**
 * The hashing workers of one download: {@linkcode FileHashers.hash} reads a written file back
 * and resolves with its size and MD5 (and its SHA-256, made with `sha256`).
 * {@linkcode FileHashers.close} terminates the workers (hashes still pending then reject).
 *
 * @example
 * ```ts
 * const path = await Deno.makeTempFile();
 * await Deno.writeTextFile(path, "abc");
 * const hashers = new FileHashers();
 * try {
 *   await hashers.hash(path); // { size: 3, md5: "900150983cd24fb0d6963f7d28e17f72" }
 * } finally {
 *   hashers.close();
 * }
 * ```
 */
export class FileHashers {
  readonly #slots: Slot[] = [];
  readonly #jobs = new Map<number, Job>();
  readonly #simd: boolean;
  readonly #waitMs: number;
  readonly #sha256: boolean;
  #url: string | undefined;
  #nextId = 1;
  #closed = false;
  /** Set once a worker failed to start: files are then hashed on this thread. */
  #noWorkers = false;

  /**
   * `simd: false` hashes with node:crypto in the worker even where the many-lane module runs;
   * `workers: false` hashes on the calling thread (tests compare the three). `waitMs`: how long
   * fewer files than lanes wait for more before they are hashed anyway (default 50).
   * `sha256`: each file's SHA-256 is taken too, from the same reads (for a download whose
   * caller snapshots the files next, which then need not read them again).
   */
  constructor(
    options: { simd?: boolean; workers?: boolean; waitMs?: number; sha256?: boolean } = {},
  ) {
    this.#simd = options.simd ?? true;
    this.#sha256 = options.sha256 === true;
    this.#waitMs = options.waitMs ?? WAIT_MS;
    if (!(this.#waitMs >= 0)) throw new RangeError(`FileHashers: waitMs ${this.#waitMs} < 0`);
    this.#noWorkers = options.workers === false;
  }

  /**
   * The size and MD5 (and SHA-256, made with `sha256`) of the file at `path` as it is now (the
   * caller wrote it and closed it). Rejects when it cannot be read, when `signal` aborts, or
   * when the hashers close first.
   */
  hash(path: string, signal?: AbortSignal): Promise<WrittenObject> {
    if (this.#closed) return Promise.reject(new Error("download: cancelled"));
    if (signal?.aborted) return Promise.reject(signal.reason);
    const slot = this.#pick();
    if (slot === undefined) return hashHere(path, this.#sha256, signal);
    const id = this.#nextId++;
    const job: Job = { slot, done: Promise.withResolvers<WrittenObject>() };
    this.#jobs.set(id, job);
    slot.pending++;
    slot.worker.postMessage({ t: "hash", id, path });
    if (signal !== undefined) {
      const onAbort = () => {
        slot.worker.postMessage({ t: "abort", id });
        this.#settle(id, { error: signal.reason });
      };
      signal.addEventListener("abort", onAbort, { once: true });
      job.done.promise.then(
        () => signal.removeEventListener("abort", onAbort),
        () => signal.removeEventListener("abort", onAbort),
      );
    }
    return job.done.promise;
  }

  #settle(id: number, outcome: { value: WrittenObject } | { error: unknown }): void {
    const job = this.#jobs.get(id);
    if (job === undefined) return;
    this.#jobs.delete(id);
    if (job.slot !== undefined) job.slot.pending--;
    if ("value" in outcome) job.done.resolve(outcome.value);
    else job.done.reject(outcome.error);
  }

  /** How many hashing workers run now (0 before the first file or {@linkcode start}). */
  get workers(): number {
    return this.#slots.length;
  }

  /**
   * Starts the first worker now when none runs yet, so that its start (a thread, its module,
   * the WebAssembly compile: some 50 ms on a busy 2-core host) overlaps the download of the
   * first file it will hash instead of delaying that file's check: a download calls it as a
   * large object's request goes out. A no-op once a worker runs, without workers, or closed.
   */
  start(): void {
    if (this.#closed || this.#noWorkers || this.#slots.length > 0) return;
    this.#spawn();
  }

  /**
   * The first worker with room ({@linkcode FILES_PER_WORKER}: one worker's lanes fill before a
   * second one shares the files); a new one while all are busy and the limit allows; else the
   * least busy.
   */
  #pick(): Slot | undefined {
    if (this.#noWorkers) return undefined;
    let best: Slot | undefined;
    for (const slot of this.#slots) {
      if (slot.pending < FILES_PER_WORKER) return slot;
      if (best === undefined || slot.pending < best.pending) best = slot;
    }
    if (best !== undefined && this.#slots.length >= MAX_HASH_WORKERS) return best;
    return this.#spawn() ?? best;
  }

  /**
   * A new worker, initialised and listened to; `undefined` (and no more tries) where workers
   * cannot start (a host or permission without them): files are then hashed on this thread.
   */
  #spawn(): Slot | undefined {
    let worker: Worker;
    try {
      this.#url ??= URL.createObjectURL(new Blob([WORKER_SOURCE], { type: "text/javascript" }));
      worker = new Worker(this.#url, { type: "module" });
    } catch {
      this.#noWorkers = this.#slots.length === 0;
      return undefined;
    }
    const wasm = this.#simd ? md5Module() : undefined;
    if (wasm !== undefined) {
      const memory = new WebAssembly.Memory({
        initial: MEMORY_PAGES,
        maximum: MEMORY_PAGES,
        shared: true,
      });
      worker.postMessage({ t: "init", memory, wasm, waitMs: this.#waitMs, sha256: this.#sha256 });
    } else worker.postMessage({ t: "init", waitMs: this.#waitMs, sha256: this.#sha256 });
    const slot: Slot = { worker, pending: 0 };
    worker.onmessage = (event: MessageEvent<FromWorker>) => {
      const m = event.data;
      if (m.error !== undefined) {
        this.#settle(m.id, { error: new Error(`download: cannot hash the file: ${m.error}`) });
      } else {
        const value = { size: m.size, md5: m.md5 };
        this.#settle(m.id, {
          value: m.sha256 === undefined ? value : { ...value, sha256: m.sha256 },
        });
      }
    };
    worker.onerror = (event) => {
      event.preventDefault();
      const error = new Error(`download: the hashing worker failed: ${event.message}`);
      for (const [id, job] of this.#jobs) if (job.slot === slot) this.#settle(id, { error });
    };
    this.#slots.push(slot);
    return slot;
  }

  /**
   * Tells the workers no more files are coming for now: what they hold is hashed without
   * waiting for files to fill their lanes (a download calls it once its last file is written).
   */
  flush(): void {
    for (const { worker } of this.#slots) worker.postMessage({ t: "flush" });
  }

  /** Terminates the workers; hashes still pending reject. Later `hash` calls reject. */
  close(): void {
    this.#closed = true;
    for (const { worker } of this.#slots) worker.terminate();
    this.#slots.length = 0;
    if (this.#url !== undefined) URL.revokeObjectURL(this.#url);
    this.#url = undefined;
    const error = new Error("download: cancelled");
    for (const id of [...this.#jobs.keys()]) this.#settle(id, { error });
  }
}

type FromWorker =
  | { id: number; error: string; size?: undefined; md5?: undefined }
  | { id: number; error?: undefined; size: number; md5: string; sha256?: string };

/** Hashes a file on this thread (where no worker can start); with `sha256`, that digest too. */
async function hashHere(
  path: string,
  sha256: boolean,
  signal?: AbortSignal,
): Promise<WrittenObject> {
  using file = await Deno.open(path, { read: true });
  const hash = createHash("md5");
  const sha = sha256 ? createHash("sha256") : undefined;
  const buffer = new Uint8Array(REGION_BYTES);
  let size = 0;
  while (true) {
    signal?.throwIfAborted();
    const n = await file.read(buffer);
    if (n === null) break;
    hash.update(buffer.subarray(0, n));
    sha?.update(buffer.subarray(0, n));
    size += n;
  }
  const md5 = hash.digest("hex");
  return sha === undefined ? { size, md5 } : { size, md5, sha256: sha.digest("hex") };
}

let md5Bytes: Uint8Array<ArrayBuffer> | null | undefined;

/**
 * The many-lane MD5 module's bytes for the workers' memory, built once; `undefined` where
 * WebAssembly SIMD (or shared memory) is unavailable: the workers then hash with node:crypto.
 */
function md5Module(): Uint8Array<ArrayBuffer> | undefined {
  if (md5Bytes === undefined) {
    md5Bytes = null;
    try {
      const bytes = md5LanesWasmBytes(MEMORY_PAGES);
      if (WebAssembly.validate(bytes) && typeof SharedArrayBuffer === "function") {
        md5Bytes = bytes;
      }
    } catch {
      // No WebAssembly: the scalar path.
    }
  }
  return md5Bytes ?? undefined;
}

/** A sink of {@linkcode pipedFileSink}: it always has a `writable`. */
export interface PipedFileSink extends ObjectSink {
  readonly writable: WritableStream<Uint8Array>;
  written(): Promise<number>;
}

/**
 * A sink over an open, empty `file` (it takes ownership): the client pipes the body into its
 * `writable` (or, a client without that, `write`s chunk by chunk), and `finish` closes the
 * file and returns `verify()`, the read-back's size and MD5.
 *
 * @example
 * ```ts
 * const path = await Deno.makeTempFile();
 * const hashers = new FileHashers();
 * const sink = pipedFileSink(await Deno.open(path, { write: true }), () => hashers.hash(path));
 * await ReadableStream.from([new TextEncoder().encode("abc")]).pipeTo(sink.writable!);
 * await sink.finish(); // { size: 3, md5: "900150983cd24fb0d6963f7d28e17f72" }
 * hashers.close();
 * ```
 */
export function pipedFileSink(
  file: Deno.FsFile,
  verify: () => Promise<WrittenObject>,
): PipedFileSink {
  let closed = false;
  const close = () => {
    if (closed) return;
    closed = true;
    try {
      file.close();
    } catch {
      // Closed already: the pipe into `writable` closes it when it ends, whatever the outcome.
    }
  };
  return {
    get writable() {
      return file.writable;
    },
    async written() {
      return (await file.stat()).size;
    },
    async write(chunk) {
      let written = 0;
      while (written < chunk.length) written += await file.write(chunk.subarray(written));
    },
    finish() {
      close();
      return verify();
    },
    abort: close,
  };
}

/**
 * A sink writing `file` on the calling thread (synchronous writes of each chunk), hashing as
 * it goes; `finish` closes the file.
 *
 * @example
 * ```ts
 * const sink = fileSink(await Deno.open(await Deno.makeTempFile(), { write: true }));
 * sink.write(new TextEncoder().encode("abc"));
 * await sink.finish(); // { size: 3, md5: "900150983cd24fb0d6963f7d28e17f72" }
 * ```
 */
export function fileSink(file: Deno.FsFile): ObjectSink {
  const hash = createHash("md5");
  let size = 0;
  let closed = false;
  const close = () => {
    if (closed) return;
    closed = true;
    file.close();
  };
  return {
    write(chunk) {
      hash.update(chunk);
      let written = 0;
      while (written < chunk.length) written += file.writeSync(chunk.subarray(written));
      size += chunk.length;
      return undefined;
    },
    finish() {
      close();
      return Promise.resolve({ size, md5: hash.digest("hex") });
    },
    abort() {
      try {
        close();
      } catch {
        // Already closed.
      }
    },
  };
}
