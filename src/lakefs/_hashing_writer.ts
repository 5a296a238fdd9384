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
 * The worker hashes with the four-lane MD5 of `_md5x4.ts` where WebAssembly SIMD runs: the ring
 * is the module's (shared) memory, and the worker hashes four streams' queued blocks per call,
 * ~1.1 GB/s on one core here against ~0.6 GB/s for `node:crypto` (which it falls back to).
 * Holding blocks until four streams have some is what makes lanes full, so a finished stream's
 * answer can wait a few milliseconds: `finishLater` lets the caller go on meanwhile.
 *
 * @module
 */
import { createHash } from "node:crypto";
import type { ObjectSink, WrittenObject } from "./api.ts";
import { md5x4WasmBytes } from "./_md5x4.ts";

/**
 * Hashing workers of one download: one core is left to the thread reading the network, up to
 * 4 others hash (one is ~1.1 GB/s of four-lane MD5, ~0.6 GB/s of node:crypto).
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

/**
 * Bytes after the ring in a SIMD worker's memory: four lanes' scratch blocks (a block
 * completed across two chunks, or a stream's padding), then the lanes' state vectors.
 */
const SCRATCH_BYTES = 64 * 1024;
/** Pages (64 KiB) of a SIMD worker's memory: the ring, then the scratch. */
const MEMORY_PAGES = (RING_BYTES + SCRATCH_BYTES) / 65536;

// The worker's source is inline (a blob URL) so `deno compile` needs no extra include. It
// only hashes: it touches no file, so it needs no permission.
//
// With the four-lane MD5 module (`md5x4`), a chunk is not hashed when it arrives: each
// stream queues its whole 64-byte blocks (a block split across two chunks is copied whole
// into the stream's carry) and a batch runs once four streams have blocks queued, each lane
// one stream, for as many blocks as the shortest has. Fewer than four lanes run only when
// something waits for them: a stream finishing, a drain, or the ring more than half full
// (the reading thread waits for space before it is full, so it always gets it).
const WORKER_SOURCE = `
import { createHash } from "node:crypto";
const FREE_BYTES = ${FREE_BYTES};
const RING_BYTES = ${RING_BYTES};
const SCRATCH = RING_BYTES;
const STATE_AT = RING_BYTES + 1024;
const INIT = [0x67452301, 0xefcdab89, 0x98badcfe, 0x10325476];
let ring, words, md5x4;
let freed = 0;
const scalar = new Map();
const streams = new Map();
// Streams with blocks queued, oldest first.
const ready = new Set();
// The ring's chunks in order: a chunk is free once its blocks are hashed (left === 0).
const chunks = [];
let chunkHead = 0;
let freedTo = 0;
let lastEnd = 0;

function enqueue(s, m) {
  const chunk = { end: m.end, left: 0, stream: s };
  chunks.push(chunk);
  lastEnd = m.end;
  if (s === undefined) return;
  s.size += m.len;
  let at = m.off, rest = m.len;
  if (s.carryLen > 0) {
    const k = Math.min(64 - s.carryLen, rest);
    s.carry.set(ring.subarray(at, at + k), s.carryLen);
    s.carryLen += k;
    at += k;
    rest -= k;
    if (s.carryLen === 64) {
      s.items.push({ off: -1, blocks: 1, done: 0, block: s.carry.slice(), chunk });
      s.queued++;
      chunk.left++;
      s.carryLen = 0;
    }
  }
  const blocks = rest >>> 6;
  if (blocks > 0) {
    s.items.push({ off: at, blocks, done: 0, block: undefined, chunk });
    s.queued += blocks;
    chunk.left++;
  }
  const tail = rest & 63;
  if (tail > 0) {
    s.carry.set(ring.subarray(at + blocks * 64, at + rest), 0);
    s.carryLen = tail;
  }
  if (s.head < s.items.length) ready.add(s);
}

// One batch: "first" (when given) and the ready streams with the most blocks queued, up to
// four, one a lane. Taking the longest queues keeps them even, so a stream that finishes has
// others to share its last batches with.
function batch(first) {
  const lanes = first === undefined ? [] : [first];
  const others = [];
  for (const s of ready) if (s !== first) others.push(s);
  if (others.length > 4 - lanes.length) {
    others.sort((x, y) => (y.finishing - x.finishing) || (y.queued - x.queued));
  }
  for (const s of others) {
    if (lanes.length === 4) break;
    lanes.push(s);
  }
  let n = Infinity;
  for (const s of lanes) {
    const item = s.items[s.head];
    n = Math.min(n, item.blocks - item.done);
  }
  const p = [0, 0, 0, 0];
  for (let i = 0; i < lanes.length; i++) {
    const s = lanes[i];
    const item = s.items[s.head];
    if (item.off < 0) {
      ring.set(item.block, SCRATCH + i * 128);
      p[i] = SCRATCH + i * 128;
    } else p[i] = item.off + item.done * 64;
    for (let w = 0; w < 4; w++) words[(STATE_AT >> 2) + w * 4 + i] = s.state[w];
  }
  // A lane without a stream hashes whatever its pointer reads (the ring's start, in bounds
  // for any n a batch can have) into a state nobody reads.
  md5x4(STATE_AT, p[0], p[1], p[2], p[3], n);
  for (let i = 0; i < lanes.length; i++) {
    const s = lanes[i];
    for (let w = 0; w < 4; w++) s.state[w] = words[(STATE_AT >> 2) + w * 4 + i];
    const item = s.items[s.head];
    item.done += n;
    s.queued -= n;
    if (item.done === item.blocks) {
      item.chunk.left--;
      s.items[s.head++] = undefined;
      if (s.head === s.items.length) {
        s.items.length = 0;
        s.head = 0;
        ready.delete(s);
      }
    }
  }
}

// Hashes while four streams have blocks queued; while the ring is more than half full, the
// stream holding its oldest chunk goes first (with three others), until that chunk is free.
function run() {
  while (ready.size >= 4) batch(undefined);
  release();
  while (lastEnd - freedTo > RING_BYTES / 2 && chunkHead < chunks.length) {
    batch(chunks[chunkHead].stream);
    release();
  }
}

function release() {
  while (chunkHead < chunks.length && chunks[chunkHead].left === 0) {
    freedTo = chunks[chunkHead++].end;
  }
  if (chunkHead > 1024) {
    chunks.splice(0, chunkHead);
    chunkHead = 0;
  }
  if (freedTo - freed >= FREE_BYTES) {
    freed = freedTo;
    self.postMessage({ t: "freed", upTo: freed });
  }
}

// Streams whose sink finished, hashed as lanes of the next batches (first in line); each is
// answered once its last block is hashed.
const finishing = new Set();
let finishTimer;
/** How long a finished stream waits for three others to share its batches before it runs alone. */
const FINISH_WAIT_MS = 5;

function settle(force) {
  if (force || streams.size + finishing.size < 4) {
    for (const s of finishing) { while (s.head < s.items.length) batch(s); }
  }
  for (const s of finishing) {
    if (s.head < s.items.length) continue;
    finishing.delete(s);
    self.postMessage({ t: "done", id: s.id, size: s.size, md5: digest(s) });
  }
  release();
  if (finishing.size === 0) {
    clearTimeout(finishTimer);
    finishTimer = undefined;
  } else if (finishTimer === undefined) {
    finishTimer = setTimeout(() => {
      finishTimer = undefined;
      settle(true);
    }, FINISH_WAIT_MS);
  }
}

function digest(s) {
  // MD5's padding: 0x80, zeros, the length in bits (64-bit little-endian) ending a block.
  const blocks = s.carryLen < 56 ? 1 : 2;
  const pad = ring.subarray(SCRATCH, SCRATCH + blocks * 64);
  pad.fill(0);
  pad.set(s.carry.subarray(0, s.carryLen));
  pad[s.carryLen] = 0x80;
  const bits = s.size * 8;
  const view = new DataView(ring.buffer, SCRATCH + blocks * 64 - 8, 8);
  view.setUint32(0, bits % 0x100000000, true);
  view.setUint32(4, Math.floor(bits / 0x100000000), true);
  for (let w = 0; w < 4; w++) words[(STATE_AT >> 2) + w * 4] = s.state[w];
  md5x4(STATE_AT, SCRATCH, 0, 0, 0, blocks);
  let hex = "";
  for (let w = 0; w < 4; w++) {
    const word = words[(STATE_AT >> 2) + w * 4];
    for (let b = 0; b < 4; b++) hex += ((word >>> (b * 8)) & 0xff).toString(16).padStart(2, "0");
  }
  return hex;
}

function drop(s) {
  for (let i = s.head; i < s.items.length; i++) s.items[i].chunk.left--;
  ready.delete(s);
}

self.onmessage = (event) => {
  const m = event.data;
  if (m.t === "ring") {
    if (m.memory !== undefined) {
      const instance = new WebAssembly.Instance(new WebAssembly.Module(m.wasm), {
        env: { memory: m.memory },
      });
      md5x4 = instance.exports.md5x4;
      ring = new Uint8Array(m.memory.buffer);
      words = new Uint32Array(m.memory.buffer);
    } else ring = new Uint8Array(m.buffer);
    return;
  }
  if (md5x4 === undefined) return scalarMessage(m);
  if (m.t === "drain") {
    settle(true);
    while (ready.size > 0) batch(undefined);
    release();
    self.postMessage({ t: "drained", id: m.id });
    return;
  }
  if (m.t === "open") {
    streams.set(m.id, {
      state: INIT.slice(), carry: new Uint8Array(64), carryLen: 0, size: 0, items: [], head: 0,
      queued: 0, finishing: 0, id: m.id,
    });
    return;
  }
  const s = streams.get(m.id);
  if (m.t === "chunk") {
    enqueue(s, m);
    run();
    if (finishing.size > 0) settle(false);
    else release();
    return;
  }
  if (s === undefined) return;
  streams.delete(m.id);
  if (m.t === "finish") {
    s.finishing = 1;
    finishing.add(s);
    run();
    settle(false);
  } else {
    drop(s);
    release();
  }
};

// Without the SIMD module: each chunk hashed as it arrives (node:crypto).
function scalarMessage(m) {
  if (m.t === "drain") {
    // Messages are handled in order: every open, chunk and abort before this one is done.
    self.postMessage({ t: "drained", id: m.id });
    return;
  }
  if (m.t === "open") { scalar.set(m.id, { hash: createHash("md5"), size: 0 }); return; }
  const state = scalar.get(m.id);
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
  scalar.delete(m.id);
  if (m.t === "finish") {
    self.postMessage({ t: "done", id: m.id, size: state.size, md5: state.hash.digest("hex") });
  }
}
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

/** A sink of {@linkcode HashingWriters}. */
export interface HashingSink extends ObjectSink {
  /**
   * Like `finish`, without waiting for the worker: closes the file now and returns what was
   * written, settled once the worker hashed the last bytes. A worker may hold a finished
   * stream's last blocks for a few milliseconds to hash them beside other streams' blocks,
   * so a caller with more objects to download moves on meanwhile.
   */
  finishLater(): Promise<WrittenObject>;
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
  readonly #simd: boolean;

  /**
   * `simd: false` hashes with node:crypto, one chunk at a time, even where the four-lane
   * module runs (tests compare the two).
   */
  constructor(options: { simd?: boolean } = {}) {
    this.#simd = options.simd ?? true;
  }

  /**
   * A sink over the file at `path`: created (`createNew`: an existing path, even a symlink,
   * fails with `Deno.errors.AlreadyExists`, mode 0600) or truncated. Each `write` starts the
   * chunk's file write (an async op, off the calling thread), copies the chunk into a
   * worker's ring for hashing meanwhile, and returns a promise settled when both are done.
   */
  async open(path: string, options: { createNew: boolean }): Promise<HashingSink> {
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
      finishLater: () => {
        try {
          if (state.error !== undefined) throw state.error;
          fileOpen = false;
          file.close();
        } catch (error) {
          closeFile();
          this.#release(id);
          throw error;
        }
        state.done = Promise.withResolvers<WrittenObject>();
        slot.worker.postMessage({ t: "finish", id });
        return state.done.promise.finally(() => this.#release(id));
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

  /**
   * The least busy worker; a new one while all are busy and the limit allows. A four-lane
   * worker is busy only with four streams: it needs four to fill its lanes.
   */
  #pick(): Slot {
    let best = this.#slots[0];
    for (const slot of this.#slots) {
      if (best === undefined || slot.active < best.active) best = slot;
    }
    const lanes = this.#simd && md5x4Module() !== undefined ? 4 : 1;
    if (best !== undefined && (best.active < lanes || this.#slots.length >= MAX_HASH_WORKERS)) {
      return best;
    }
    this.#url ??= URL.createObjectURL(new Blob([WORKER_SOURCE], { type: "text/javascript" }));
    const worker = new Worker(this.#url, { type: "module" });
    const wasm = this.#simd ? md5x4Module() : undefined;
    let buffer: SharedArrayBuffer;
    if (wasm !== undefined) {
      const memory = new WebAssembly.Memory({
        initial: MEMORY_PAGES,
        maximum: MEMORY_PAGES,
        shared: true,
      });
      buffer = memory.buffer as unknown as SharedArrayBuffer;
      worker.postMessage({ t: "ring", memory, wasm });
    } else {
      buffer = new SharedArrayBuffer(RING_BYTES);
      worker.postMessage({ t: "ring", buffer });
    }
    const slot: Slot = {
      worker,
      ring: new Uint8Array(buffer, 0, RING_BYTES),
      active: 0,
      head: 0,
      tail: 0,
      waiting: [],
    };
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

let md5x4Bytes: Uint8Array<ArrayBuffer> | null | undefined;

/**
 * The four-lane MD5 module's bytes for the workers' memory, built once; `undefined` where
 * WebAssembly SIMD (or shared memory) is unavailable: the workers then hash with node:crypto.
 */
function md5x4Module(): Uint8Array<ArrayBuffer> | undefined {
  if (md5x4Bytes === undefined) {
    md5x4Bytes = null;
    try {
      const bytes = md5x4WasmBytes(MEMORY_PAGES);
      if (WebAssembly.validate(bytes) && typeof SharedArrayBuffer === "function") {
        md5x4Bytes = bytes;
      }
    } catch {
      // No WebAssembly: the scalar path.
    }
  }
  return md5x4Bytes ?? undefined;
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
