/**
 * Sinks for downloads (`ObjectSink`): each chunk is hashed (MD5) and written to its file as it
 * arrives, so a download is verified without reading the file back.
 *
 * {@linkcode HashingWriters} splits the work three ways so no one thread carries it all: the
 * calling thread reads the network and copies each chunk into a shared ring, a worker thread
 * hashes from the ring (up to {@linkcode MAX_HASH_WORKERS}), and the file is created and
 * written with Deno's async file ops, which run on its blocking pool beside both. Measured on
 * 1,000 objects of 1 MiB, 8 at once, against a demo lakeFS on the same 2-core host: a worker
 * that also created and wrote the files was busy 88 % of the download (MD5 2.1 s, creating
 * 1,000 files 1.1 s, writing 0.6 s) while the reading thread idled 70 % waiting for it.
 * {@linkcode fileSink} hashes and writes on the calling thread (tests, and hosts where a worker
 * cannot start).
 *
 * @module
 */
import { createHash } from "node:crypto";
import type { ObjectSink, WrittenObject } from "./api.ts";

/**
 * Hashing workers of one download: one core is left to the thread reading the network, up to
 * 4 others hash (one is ~550 MB/s of MD5).
 */
export const MAX_HASH_WORKERS = Math.max(1, Math.min(4, (navigator.hardwareConcurrency ?? 2) - 1));

/**
 * Each worker's ring: a `SharedArrayBuffer` the reading thread copies chunks into and the
 * worker hashes from. Transferring each chunk instead left every dead chunk to the worker's
 * garbage collector (a 64 MiB object peaked at +65 MiB); the ring bounds what is in flight to
 * its size, whatever the object's, and allocates nothing per chunk.
 */
const RING_BYTES = 4 * 1024 * 1024;
/** Chunks are copied in pieces of at most this. */
const PIECE_BYTES = 256 * 1024;
/**
 * The worker says how far it got each time it passed this many more bytes of its ring. A
 * writer waits only when the ring holds more than `RING_BYTES - 2 * PIECE_BYTES`, so the
 * worker always has enough queued to pass the next mark and wake it.
 */
const FREE_BYTES = 256 * 1024;

// The worker's source is inline (a blob URL) so `deno compile` needs no extra include. It
// only hashes: it touches no file, so it needs no permission.
const WORKER_SOURCE = `
import { createHash } from "node:crypto";
const FREE_BYTES = ${FREE_BYTES};
const hashes = new Map();
let ring;
let freed = 0;
self.onmessage = (event) => {
  const m = event.data;
  if (m.t === "ring") { ring = new Uint8Array(m.buffer); return; }
  if (m.t === "drain") {
    // Messages are handled in order: every open, chunk and abort before this one is done.
    self.postMessage({ t: "drained", id: m.id });
    return;
  }
  if (m.t === "open") { hashes.set(m.id, { hash: createHash("md5"), size: 0 }); return; }
  const state = hashes.get(m.id);
  if (m.t === "chunk") {
    if (state !== undefined) {
      state.hash.update(ring.subarray(m.off, m.off + m.len));
      state.size += m.len;
    }
    // The ring's bytes up to this chunk's end are free again, whatever happened to them.
    if (m.end - freed >= FREE_BYTES) {
      freed = m.end;
      self.postMessage({ t: "freed", upTo: freed });
    }
    return;
  }
  if (state === undefined) return;
  hashes.delete(m.id);
  if (m.t === "finish") {
    self.postMessage({ t: "done", id: m.id, size: state.size, md5: state.hash.digest("hex") });
  }
};
`;

type FromWorker =
  | { t: "drained"; id: number }
  | { t: "freed"; upTo: number }
  | { t: "done"; id: number; size: number; md5: string };

/** A worker and its ring: `head` is where the next chunk goes, `tail` what it freed. */
interface Slot {
  readonly worker: Worker;
  readonly ring: Uint8Array;
  active: number;
  head: number;
  tail: number;
  /** Writers waiting for the ring to free space. */
  waiting: (() => void)[];
}

interface SinkState {
  readonly slot: Slot;
  /** Closes the sink's file (once; later calls do nothing, never throw). */
  readonly closeFile: () => void;
  error: Error | undefined;
  done: PromiseWithResolvers<WrittenObject> | undefined;
}

/**
 * The hashing workers of one download; {@linkcode HashingWriters.close} lets them finish what
 * they were sent, then terminates them (sinks still open then fail, their files closed).
 *
 * @example
 * ```ts
 * const writers = new HashingWriters();
 * try {
 *   const sink = await writers.open(await Deno.makeTempFile(), { createNew: false });
 *   await sink.write(new TextEncoder().encode("abc"));
 *   const written = await sink.finish(); // { size: 3, md5: "900150983cd24fb0d6963f7d28e17f72" }
 * } finally {
 *   await writers.close();
 * }
 * ```
 */
export class HashingWriters {
  readonly #slots: Slot[] = [];
  readonly #sinks = new Map<number, SinkState>();
  readonly #drains = new Map<number, () => void>();
  #url: string | undefined;
  #nextId = 1;
  #closed = false;

  /**
   * A sink over the file at `path`: created (`createNew`: an existing path, even a symlink,
   * fails with `Deno.errors.AlreadyExists`, mode 0600) or truncated. Each `write` starts the
   * chunk's file write (an async op, off the calling thread), copies the chunk into a
   * worker's ring for hashing meanwhile, and returns a promise settled when both are done.
   */
  async open(path: string, options: { createNew: boolean }): Promise<ObjectSink> {
    if (this.#closed) throw new Error("download: cancelled");
    const file = await Deno.open(
      path,
      options.createNew
        ? { write: true, createNew: true, mode: 0o600 }
        : { write: true, truncate: true },
    );
    let fileOpen = true;
    const closeFile = () => {
      if (!fileOpen) return;
      fileOpen = false;
      try {
        file.close();
      } catch {
        // Already closed.
      }
    };
    if (this.#closed) {
      closeFile();
      throw new Error("download: cancelled");
    }
    const slot = this.#pick();
    const id = this.#nextId++;
    const state: SinkState = { slot, closeFile, error: undefined, done: undefined };
    this.#sinks.set(id, state);
    slot.active++;
    slot.worker.postMessage({ t: "open", id });
    const put = (piece: Uint8Array): boolean => {
      const at = slot.head % RING_BYTES;
      // A piece never wraps: the end of the ring is skipped when it does not fit there.
      const skip = at + piece.length > RING_BYTES ? RING_BYTES - at : 0;
      if (slot.head + skip + alignUp(piece.length) - slot.tail > RING_BYTES - PIECE_BYTES) {
        return false;
      }
      slot.head += skip;
      const off = slot.head % RING_BYTES;
      slot.ring.set(piece, off);
      // The next piece starts aligned: V8 copies into shared memory byte by byte when the
      // offsets are not (0.2 s of CPU per GiB on the reading thread), word by word when they are.
      slot.head += alignUp(piece.length);
      slot.worker.postMessage({ t: "chunk", id, off, len: piece.length, end: slot.head });
      return true;
    };
    const copyFrom = async (chunk: Uint8Array, from: number): Promise<void> => {
      for (let offset = from; offset < chunk.length; offset += PIECE_BYTES) {
        const piece = chunk.subarray(offset, offset + PIECE_BYTES);
        while (!put(piece)) {
          if (state.error !== undefined) throw state.error;
          await new Promise<void>((resolve) => slot.waiting.push(resolve));
        }
      }
      if (state.error !== undefined) throw state.error;
    };
    const writeFile = async (chunk: Uint8Array): Promise<void> => {
      let written = 0;
      while (written < chunk.length) written += await file.write(chunk.subarray(written));
    };
    return {
      write: (chunk) => {
        if (state.error !== undefined) throw state.error;
        // The write op reads the chunk on another thread while this one copies it: both
        // only read it, and the caller keeps it until the returned promise settles.
        const written = writeFile(chunk);
        for (let offset = 0; offset < chunk.length; offset += PIECE_BYTES) {
          if (!put(chunk.subarray(offset, offset + PIECE_BYTES))) {
            return settleBoth(written, copyFrom(chunk, offset));
          }
        }
        return written;
      },
      finish: async () => {
        try {
          if (state.error !== undefined) throw state.error;
          fileOpen = false;
          file.close();
          state.done = Promise.withResolvers<WrittenObject>();
          slot.worker.postMessage({ t: "finish", id });
          return await state.done.promise;
        } finally {
          closeFile();
          this.#release(id);
        }
      },
      abort: () => {
        closeFile();
        if (!this.#sinks.has(id)) return;
        slot.worker.postMessage({ t: "abort", id });
        this.#release(id);
      },
    };
  }

  #release(id: number): void {
    const state = this.#sinks.get(id);
    if (state === undefined) return;
    this.#sinks.delete(id);
    state.slot.active--;
  }

  /** The least busy worker; a new one while all are busy and the limit allows. */
  #pick(): Slot {
    let best = this.#slots[0];
    for (const slot of this.#slots) {
      if (best === undefined || slot.active < best.active) best = slot;
    }
    if (best !== undefined && (best.active === 0 || this.#slots.length >= MAX_HASH_WORKERS)) {
      return best;
    }
    this.#url ??= URL.createObjectURL(new Blob([WORKER_SOURCE], { type: "text/javascript" }));
    const worker = new Worker(this.#url, { type: "module" });
    const buffer = new SharedArrayBuffer(RING_BYTES);
    const slot: Slot = {
      worker,
      ring: new Uint8Array(buffer),
      active: 0,
      head: 0,
      tail: 0,
      waiting: [],
    };
    worker.postMessage({ t: "ring", buffer });
    worker.onmessage = (event: MessageEvent<FromWorker>) => this.#answer(slot, event.data);
    worker.onerror = (event) => {
      event.preventDefault();
      const error = new Error(`download: the hashing worker failed: ${event.message}`);
      for (const state of this.#sinks.values()) if (state.slot === slot) fail(state, error);
      wake(slot);
    };
    this.#slots.push(slot);
    return slot;
  }

  #answer(slot: Slot, message: FromWorker): void {
    if (message.t === "drained") {
      this.#drains.get(message.id)?.();
      this.#drains.delete(message.id);
      return;
    }
    if (message.t === "freed") {
      slot.tail = message.upTo;
      wake(slot);
      return;
    }
    this.#sinks.get(message.id)?.done?.resolve({ size: message.size, md5: message.md5 });
  }

  /**
   * Terminates the workers; sinks still open fail and their files are closed. Each worker
   * first finishes the messages it was sent (at most `drainMs`). Later `open`s fail.
   */
  async close(drainMs = 5_000): Promise<void> {
    this.#closed = true;
    const slots = [...this.#slots];
    const drains = slots.map(({ worker }) => {
      const id = this.#nextId++;
      const drained = Promise.withResolvers<void>();
      this.#drains.set(id, drained.resolve);
      worker.postMessage({ t: "drain", id });
      return drained.promise;
    });
    let timer: ReturnType<typeof setTimeout> | undefined;
    await Promise.race([
      Promise.all(drains),
      new Promise<void>((resolve) => timer = setTimeout(resolve, drainMs)),
    ]);
    clearTimeout(timer);
    this.#drains.clear();
    for (const { worker } of slots) worker.terminate();
    this.#slots.length = 0;
    if (this.#url !== undefined) URL.revokeObjectURL(this.#url);
    this.#url = undefined;
    const error = new Error("download: cancelled");
    for (const state of this.#sinks.values()) {
      fail(state, error);
      state.closeFile();
    }
    this.#sinks.clear();
    for (const slot of slots) wake(slot);
  }
}

/** Waits for both, then throws the first one's error, else the second's. */
async function settleBoth(first: Promise<void>, second: Promise<void>): Promise<void> {
  const [a, b] = await Promise.allSettled([first, second]);
  if (a.status === "rejected") throw a.reason;
  if (b.status === "rejected") throw b.reason;
}

/** `n` rounded up to a multiple of 64 (a cache line, and a word for V8's shared-memory copy). */
function alignUp(n: number): number {
  return Math.ceil(n / 64) * 64;
}

function wake(slot: Slot): void {
  const waiting = slot.waiting;
  slot.waiting = [];
  for (const resolve of waiting) resolve();
}

function fail(state: SinkState, error: Error): void {
  state.error = error;
  state.done?.reject(error);
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
