/**
 * MD5 of object bodies while they stream in, without JavaScript copying their bytes: a body is
 * read from the socket straight into a slot of a memory shared with a hashing worker (see
 * `Http1Connections.getInto`), written to its file from there, and handed to the worker, which
 * hashes the slots of many bodies at once in the SIMD lanes of `_md5_lanes.ts`.
 *
 * Why: on the 2-core host of the sync bench (1,000 objects of 1 MiB, 8 at once, a demo lakeFS
 * beside it, files on tmpfs), a `fetch` body piped to its file and read back by a hashing
 * worker cost the process 1.9-2.3 s of CPU a GiB (0.55-0.6 of a plain fetch's speed); read into
 * shared slots over kept-alive connections, written from there and hashed in place, 1.3-1.6 s
 * (0.82-1.02 of the plain fetch, 0.88 in the median of six alternated runs): no read-back, no
 * stream machinery per chunk, one write per slot. Of what is left over the plain client, most is MD5 itself
 * (~0.5 s a GiB on the worker). Slots of 256 KiB measured better than 128 (more rounds, reads
 * and wake-ups) and no worse than 512; writes handed to other threads (async) cost more CPU
 * than they saved here, on tmpfs and on disk alike.
 *
 * Each lane is one stream of objects (one download at a time of the caller's pool): a ring of
 * slots of {@linkcode SLOT_BYTES}, filled in turn by the caller and hashed in turn by the
 * worker, so a lane reads its next slots while the worker hashes the ones before. Each call of
 * the module hashes a block of every lane at once, so the worker waits (a few ms at most) for
 * every taken lane to fill a slot before it hashes. Control words in a shared `Int32Array` say
 * which slot is full and which object it belongs to; the worker sleeps on them
 * (`Atomics.wait`), woken once per round of slots, and answers by message only what the caller
 * awaits (a digest; a slot freed while the caller waits for one). An object begun while fewer
 * lanes than a group of the module are taken is hashed alone with `node:crypto` (one large
 * object: ~0.5 GB/s against ~0.25 through the module with one lane of eight busy).
 *
 * @module
 */
import { MD5_INIT, MD5_TAIL_SOURCE, md5LanesStateBytes, md5LanesWasmBytes } from "./_md5_lanes.ts";
import type { ObjectSink, WrittenObject } from "./api.ts";

/**
 * Slots of a lane, filled and hashed in turn: enough that a lane rarely waits for the worker
 * (a wait costs the reading thread a message) while the worker waits for the others to fill:
 * against one demo lakeFS, eight measured 0.88 of a plain fetch in the median of six
 * alternated runs, four 0.76.
 */
const SLOTS = 8;
/** Bytes of a slot: a multiple of the MD5 block (64), so only an object's last slot has a tail. */
export const SLOT_BYTES = 256 * 1024;
/**
 * How long the worker waits for every lane reading a body to fill a slot before it hashes the
 * full ones alone (a lane without a slot costs as much as one with). Lanes reading from one
 * server fill a slot in well under this; a slower one leaves the core idle anyway.
 */
const WAIT_MS = 5;
/**
 * Lanes of one hasher at most: its memory is 2 MiB a lane (its slots); a download reading more
 * bodies at once reads the others another way.
 */
export const MAX_LANES = 16;
/** With fewer lanes taken than this, an object is hashed alone (see the worker's `head`). */
const SOLO_BELOW = 4;
/** The MD5 of no bytes. */
const EMPTY_MD5 = "d41d8cd98f00b204e9800998ecf8427e";
/** The SHA-256 of no bytes. */
const EMPTY_SHA256 = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";
/** Groups of four lanes of the MD5 module at most (see `_md5_lanes.ts`: three run fastest). */
const MAX_GROUPS = 3;

// Control words: the whole hasher's first, then each lane's, then each slot's.
const WAKE = 0; // bumped to wake the sleeping worker (it waits on it)
const CLOSED = 1;
/**
 * While the worker sleeps: how many lanes it waits for (each marked `WANTED_LANE`): the caller
 * wakes it once the last of them changed; -1: any change wakes it.
 */
const WANTED = 2;
const LANE_WORDS = 4;
const LANE_AT = 4;
const TAKEN = 0; // 1 while the lane is taken: the worker waits for it to fill a slot
const ABORTED = 1; // the object the caller gave up last (its slots are dropped unhashed)
const WAITING = 2; // 1 while the caller waits for a slot of the lane to be freed
const WANTED_LANE = 3; // 1 while the sleeping worker waits for this lane (see WANTED)
const SLOT_WORDS = 3;
const STATE = 0; // FREE (the caller's), FULL or FULL_LAST (the worker's)
const BYTES = 1;
const OBJECT = 2;
const FREE = 0;
const FULL = 1;
/** Full, and the object's last: its end may be marked on a slot already handed over. */
const FULL_LAST = 2;

// The worker's source is inline (a blob URL) so `deno compile` needs no extra include. It needs
// no permission: it reads nothing but the shared memory.
const WORKER_SOURCE = `
import { createHash } from "node:crypto";
const LANE_WORDS = ${LANE_WORDS}, LANE_AT = ${LANE_AT}, SLOT_WORDS = ${SLOT_WORDS}, SLOTS = ${SLOTS};
const TAKEN = ${TAKEN}, ABORTED = ${ABORTED}, WAITING = ${WAITING}, WANTED_LANE = ${WANTED_LANE};
const STATE = ${STATE}, BYTES = ${BYTES}, OBJECT = ${OBJECT};
const FREE = ${FREE}, FULL = ${FULL}, FULL_LAST = ${FULL_LAST};
const WAKE = ${WAKE}, CLOSED = ${CLOSED}, WANTED = ${WANTED};
const INIT = ${JSON.stringify(MD5_INIT)};
const SOLO_BELOW = ${SOLO_BELOW};
${MD5_TAIL_SOURCE}
let ctl, bytes, words, md5, lanesN, moduleLanes, slotBytes, scratch, stateAt, waitMs, sha256;
let slotAt;

function laneWord(i, w) { return LANE_AT + i * LANE_WORDS + w; }
function slotWord(i, s, w) { return LANE_AT + lanesN * LANE_WORDS + (i * SLOTS + s) * SLOT_WORDS + w; }
function stateIndex(i, w) { return (stateAt >> 2) + (i >> 2) * 16 + w * 4 + (i & 3); }

/** Tells the caller a slot of lane i is free when it waits for one. */
function tell(i) {
  if (Atomics.load(ctl, laneWord(i, WAITING)) === 1) {
    Atomics.store(ctl, laneWord(i, WAITING), 0);
    self.postMessage({ t: "free", lane: i });
  }
}

function free(i, s) {
  Atomics.store(ctl, slotWord(i, s, STATE), FREE);
  tell(i);
}

/**
 * Frees a slot hashed to its end unless the caller marked it its object's last meanwhile
 * (then false): the two race for the slot's state word.
 */
function freeUnlessLast(i, s) {
  if (Atomics.compareExchange(ctl, slotWord(i, s, STATE), FULL, FREE) !== FULL) return false;
  tell(i);
  return true;
}

/**
 * The lane's next full slot to hash, or -1. A slot of the object the caller gave up last is
 * dropped on the way; a slot of another object than the one hashed so far starts that object
 * afresh (an object given up earlier is never ended, so never answered).
 */
function head(lane, i) {
  for (;;) {
    const s = lane.next;
    if (Atomics.load(ctl, slotWord(i, s, STATE)) === FREE) return -1;
    const object = ctl[slotWord(i, s, OBJECT)];
    if (object === Atomics.load(ctl, laneWord(i, ABORTED))) {
      lane.solo = undefined;
      lane.sha = undefined;
      lane.object = 0;
      lane.pos = 0;
      lane.next = (s + 1) % SLOTS;
      free(i, s);
      continue;
    }
    if (lane.object !== object) {
      lane.object = object;
      lane.state = INIT.slice();
      lane.size = 0;
      lane.pos = 0;
      // With fewer lanes taken than a group has, a lane's object is hashed alone with
      // node:crypto (a stream at ~0.6 GB/s, where one lane of the module runs at a fraction of
      // its ~2 GB/s): a download of one large object, or the last ones of a download.
      lane.solo = takenLanes() < SOLO_BELOW ? createHash("md5") : undefined;
      lane.sha = sha256 ? createHash("sha256") : undefined;
    }
    return s;
  }
}

/** Pads the tail of the lane's last slot and answers the object's size and MD5. */
function finish(lane, i, s) {
  const tail = ctl[slotWord(i, s, BYTES)] - lane.pos;
  lane.size += tail;
  const hex = md5Tail(md5, bytes, words, scratch, stateAt, moduleLanes, lane.state, slotAt(i, s) + lane.pos, tail, lane.size);
  answer(lane, i, s, hex);
}

/** Frees the object's last slot and answers its size and digests. */
function answer(lane, i, s, md5) {
  const object = lane.object;
  const size = lane.size;
  const sha = lane.sha?.digest("hex");
  lane.solo = undefined;
  lane.sha = undefined;
  lane.object = 0;
  lane.pos = 0;
  lane.next = (s + 1) % SLOTS;
  free(i, s);
  self.postMessage({ t: "digest", lane: i, object, size, md5, sha256: sha });
}

/** Adds slot s of lane i, whole, to the lane's SHA-256 when it takes one (once per slot). */
function shaSlot(lane, i, s) {
  if (lane.sha === undefined) return;
  const from = slotAt(i, s);
  lane.sha.update(bytes.subarray(from, from + ctl[slotWord(i, s, BYTES)]));
}

/** Compresses n blocks of each given lane's head slot, moduleLanes at a time. */
function compress(ready, n) {
  const pointers = new Array(moduleLanes);
  for (let from = 0; from < ready.length; from += moduleLanes) {
    const batch = ready.slice(from, from + moduleLanes);
    for (let j = 0; j < moduleLanes; j++) {
      const r = batch[j];
      // A position without a lane hashes the first slot (in bounds for any n) into a state
      // nobody reads.
      pointers[j] = r === undefined ? 0 : slotAt(r.i, r.s) + r.lane.pos;
      if (r !== undefined) for (let w = 0; w < 4; w++) words[stateIndex(j, w)] = r.lane.state[w];
    }
    md5(stateAt, ...pointers, n);
    for (let j = 0; j < batch.length; j++) {
      const r = batch[j];
      for (let w = 0; w < 4; w++) r.lane.state[w] = words[stateIndex(j, w)];
      r.lane.pos += n * 64;
      r.lane.size += n * 64;
    }
  }
}

/** How many lanes are taken. */
function takenLanes() {
  let taken = 0;
  for (let i = 0; i < lanesN; i++) taken += Atomics.load(ctl, laneWord(i, TAKEN));
  return taken;
}

/** Hashes a solo lane's head slot whole (node:crypto); answers once its object's last is. */
function soloStep(lane, i, s) {
  const from = slotAt(i, s) + lane.pos;
  const to = slotAt(i, s) + ctl[slotWord(i, s, BYTES)];
  lane.solo.update(bytes.subarray(from, to));
  // A solo slot is hashed whole in one step (from its start).
  shaSlot(lane, i, s);
  lane.size += to - from;
  lane.pos += to - from;
  if (freeUnlessLast(i, s)) {
    lane.next = (s + 1) % SLOTS;
    lane.pos = 0;
    return;
  }
  answer(lane, i, s, lane.solo.digest("hex"));
}

/** Whether the lane's next slot is handed over. */
function full(lane, i) {
  return Atomics.load(ctl, slotWord(i, lane.next, STATE)) !== FREE;
}

function run() {
  const lanes = Array.from({ length: lanesN }, () => ({ next: 0, object: 0, pos: 0, size: 0, state: INIT.slice(), solo: undefined, sha: undefined }));
  let forced = false;
  for (;;) {
    if (Atomics.load(ctl, CLOSED) === 1) return;
    const ready = [];
    const reading = [];
    let n = Infinity;
    let finished = false;
    for (let i = 0; i < lanesN; i++) {
      const lane = lanes[i];
      const s = head(lane, i);
      if (s === -1) {
        // A solo lane is hashed on its own: the others never wait for it.
        if (lane.solo === undefined && Atomics.load(ctl, laneWord(i, TAKEN)) === 1) {
          reading.push(i);
        }
        continue;
      }
      if (lane.solo !== undefined) {
        soloStep(lane, i, s);
        finished = true;
        continue;
      }
      const left = ctl[slotWord(i, s, BYTES)] - lane.pos;
      if (left < 64) {
        // A slot hashed to its end (slots are whole blocks but an object's last): its bytes
        // go to the SHA-256 once, here, before the slot is freed or the object finished.
        shaSlot(lane, i, s);
        if (freeUnlessLast(i, s)) {
          lane.next = (s + 1) % SLOTS;
          lane.pos = 0;
        } else finish(lane, i, s);
        finished = true;
        continue;
      }
      ready.push({ lane, i, s });
      n = Math.min(n, left >>> 6);
    }
    if (finished) continue;
    if (ready.length > 0 && (reading.length === 0 || forced)) {
      compress(ready, n);
      forced = false;
      continue;
    }
    // Nothing to hash yet (any lane's change wakes the worker), or lanes still reading (woken
    // once each of them changed, or after waitMs: the full slots are then hashed without
    // them). The marks are set before the lanes are looked at again: a change the caller made
    // before seeing them is seen here, one made after wakes the worker.
    const wake = Atomics.load(ctl, WAKE);
    let changed = false;
    if (ready.length === 0) {
      Atomics.store(ctl, WANTED, -1);
      for (let i = 0; i < lanesN && !changed; i++) changed = full(lanes[i], i);
    } else {
      for (const i of reading) Atomics.store(ctl, laneWord(i, WANTED_LANE), 1);
      Atomics.store(ctl, WANTED, reading.length);
      for (const i of reading) {
        changed ||= full(lanes[i], i) || Atomics.load(ctl, laneWord(i, TAKEN)) === 0;
      }
    }
    const outcome = changed
      ? "not-equal"
      : Atomics.wait(ctl, WAKE, wake, ready.length > 0 ? waitMs : 1000);
    Atomics.store(ctl, WANTED, 0);
    for (const i of reading) Atomics.store(ctl, laneWord(i, WANTED_LANE), 0);
    if (outcome === "timed-out" && ready.length > 0) forced = true;
  }
}

self.onmessage = (event) => {
  const m = event.data;
  ctl = m.ctl;
  lanesN = m.lanes;
  moduleLanes = m.moduleLanes;
  slotBytes = m.slotBytes;
  scratch = m.scratch;
  stateAt = m.stateAt;
  waitMs = m.waitMs;
  sha256 = m.sha256;
  slotAt = (i, s) => (i * SLOTS + s) * slotBytes;
  bytes = new Uint8Array(m.memory.buffer);
  words = new Uint32Array(m.memory.buffer);
  md5 = new WebAssembly.Instance(new WebAssembly.Module(m.wasm), { env: { memory: m.memory } })
    .exports.md5lanes;
  self.onmessage = null;
  run();
  self.close();
};
`;

let workerUrl: string | undefined;

/**
 * The hashing worker of one download and its lanes. {@linkcode StreamHasher.create} gives
 * `undefined` where it cannot run (no WebAssembly SIMD, shared memory or workers): the caller
 * then hashes another way. {@linkcode StreamHasher.close} ends the worker; objects not yet
 * hashed then reject.
 *
 * @example
 * ```ts
 * const hasher = StreamHasher.create(1)!;
 * try {
 *   const lane = hasher.lane()!;
 *   const bytes = new TextEncoder().encode("abc");
 *   lane.begin();
 *   const space = await lane.space();
 *   space.set(bytes);
 *   lane.filled(bytes.length);
 *   await lane.end(); // { size: 3, md5: "900150983cd24fb0d6963f7d28e17f72" }
 * } finally {
 *   hasher.close();
 * }
 * ```
 */
export class StreamHasher {
  readonly #worker: Worker;
  readonly #ctl: Int32Array<SharedArrayBuffer>;
  /** @internal The control words. */
  get ctl(): Int32Array<SharedArrayBuffer> {
    return this.#ctl;
  }
  readonly #bytes: Uint8Array;
  readonly #lanes: HashLane[] = [];
  readonly #free: HashLane[] = [];
  /** Whether objects' SHA-256 is taken too (see {@linkcode StreamHasher.create}). */
  readonly sha256: boolean;
  #closed = false;
  #failure: Error | undefined;
  #releaseTimer: ReturnType<typeof setTimeout> | undefined;

  private constructor(
    worker: Worker,
    ctl: Int32Array<SharedArrayBuffer>,
    memory: WebAssembly.Memory,
    lanes: number,
    sha256: boolean,
  ) {
    this.#worker = worker;
    this.sha256 = sha256;
    this.#ctl = ctl;
    this.#bytes = new Uint8Array(memory.buffer);
    for (let i = 0; i < lanes; i++) {
      const lane = new HashLane(this, i);
      this.#lanes.push(lane);
      this.#free.push(lane);
    }
    worker.onmessage = (event: MessageEvent<FromWorker>) => {
      const m = event.data;
      const lane = this.#lanes[m.lane];
      if (lane === undefined) return;
      if (m.t === "free") lane.wake();
      else {
        lane.digest(m.object, {
          size: m.size,
          md5: m.md5,
          ...(m.sha256 === undefined ? {} : { sha256: m.sha256 }),
        });
      }
    };
    worker.onerror = (event) => {
      event.preventDefault();
      this.#fail(new Error(`download: the hashing worker failed: ${event.message}`));
    };
  }

  /**
   * A hasher with `lanes` lanes (one per body read at once), its worker started; `undefined`
   * where it cannot run here. With `sha256`, each object's SHA-256 is taken too (in the
   * worker, each slot once its MD5 is done), for a caller that needs it of the file it wrote
   * (a snapshot), where reading the file back would cost it again.
   */
  static create(lanes: number, options: { sha256?: boolean } = {}): StreamHasher | undefined {
    if (!Number.isInteger(lanes) || lanes < 1 || lanes > MAX_LANES) {
      throw new RangeError(
        `StreamHasher: lanes must be an integer from 1 to ${MAX_LANES}, got ${lanes}`,
      );
    }
    const sha256 = options.sha256 === true;
    const groups = Math.min(MAX_GROUPS, Math.ceil(lanes / 4));
    const slotsEnd = lanes * SLOTS * SLOT_BYTES;
    // After the slots: a finished object's padding blocks (128 bytes), then the module's state.
    const scratch = slotsEnd;
    const stateAt = scratch + 1024;
    const pages = Math.ceil((stateAt + md5LanesStateBytes(groups)) / 65536);
    let worker: Worker | undefined;
    try {
      const wasm = md5LanesWasmBytes(pages, groups);
      if (!WebAssembly.validate(wasm)) return undefined;
      const memory = new WebAssembly.Memory({ initial: pages, maximum: pages, shared: true });
      const ctl = new Int32Array(
        new SharedArrayBuffer((LANE_AT + lanes * LANE_WORDS + lanes * SLOTS * SLOT_WORDS) * 4),
      );
      workerUrl ??= URL.createObjectURL(new Blob([WORKER_SOURCE], { type: "text/javascript" }));
      worker = new Worker(workerUrl, { type: "module" });
      worker.postMessage({
        ctl,
        memory,
        wasm,
        lanes,
        moduleLanes: groups * 4,
        slotBytes: SLOT_BYTES,
        scratch,
        stateAt,
        waitMs: WAIT_MS,
        sha256,
      });
      return new StreamHasher(worker, ctl, memory, lanes, sha256);
    } catch {
      worker?.terminate();
      return undefined;
    }
  }

  /**
   * A free lane (one per body read at once), or `undefined` when every lane is taken (the
   * caller reads that body another way). Throws once the hasher ended.
   */
  lane(): HashLane | undefined {
    if (this.failure !== undefined) throw this.failure;
    const lane = this.#free.pop();
    lane?.take();
    return lane;
  }

  /**
   * Gives a lane back: its objects still hashing keep their answers coming, one still open is
   * given up. The worker waits for a taken lane to fill a slot before it hashes the others'
   * (each call hashes every lane's blocks at once); one given back is no longer waited for
   * from the next turn of the event loop on, unless taken again by then: a caller between two
   * objects gives it back and takes it again at once.
   */
  release(lane: HashLane): void {
    if (this.#free.includes(lane)) return;
    lane.abort();
    this.#free.push(lane);
    this.#releaseTimer ??= setTimeout(() => {
      this.#releaseTimer = undefined;
      if (this.#closed) return;
      for (const free of this.#free) free.give();
    }, 0);
  }

  /** Ends the worker; objects not yet hashed reject, and later calls throw. */
  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    clearTimeout(this.#releaseTimer);
    Atomics.store(this.#ctl, CLOSED, 1);
    Atomics.add(this.#ctl, WAKE, 1);
    Atomics.notify(this.#ctl, WAKE);
    this.#worker.terminate();
    this.#fail(new Error("download: cancelled"));
  }

  #fail(error: Error): void {
    this.#failure ??= error;
    for (const lane of this.#lanes) lane.fail(this.#failure);
  }

  /** @internal The failure that ended the hasher, if any. */
  get failure(): Error | undefined {
    return this.#closed ? (this.#failure ?? new Error("download: cancelled")) : this.#failure;
  }

  /** @internal Control word `index`. */
  word(index: number): number {
    return Atomics.load(this.#ctl, index);
  }

  /** @internal Sets control word `index`. */
  set(index: number, value: number): void {
    Atomics.store(this.#ctl, index, value);
  }

  /**
   * @internal Tells the worker lane `i` changed; wakes it when it sleeps waiting for any
   * change, or for this lane and no other still (a wake-up costs both threads a system call:
   * one per round of slots, not one per slot).
   */
  poke(i: number): void {
    const ctl = this.#ctl;
    const wanted = Atomics.load(ctl, WANTED);
    if (wanted === 0) return;
    if (
      wanted === -1
        ? Atomics.compareExchange(ctl, WANTED, -1, 0) === -1
        : Atomics.exchange(ctl, this.laneWord(i, WANTED_LANE), 0) === 1 &&
          Atomics.sub(ctl, WANTED, 1) === 1
    ) {
      Atomics.add(ctl, WAKE, 1);
      Atomics.notify(ctl, WAKE);
    }
  }

  /** @internal The slot `s` of lane `i`, from byte `from`. */
  view(i: number, s: number, from: number): Uint8Array {
    const start = (i * SLOTS + s) * SLOT_BYTES;
    return this.#bytes.subarray(start + from, start + SLOT_BYTES);
  }

  /** @internal Index of lane `i`'s control word `w`. */
  laneWord(i: number, w: number): number {
    return LANE_AT + i * LANE_WORDS + w;
  }

  /** @internal Index of the control word `w` of lane `i`'s slot `s`. */
  slotWord(i: number, s: number, w: number): number {
    return LANE_AT + this.#lanes.length * LANE_WORDS + (i * SLOTS + s) * SLOT_WORDS + w;
  }
}

/**
 * One stream of objects through a {@linkcode StreamHasher}: an object's bytes go in by
 * {@linkcode space} and {@linkcode filled}, in order, then {@linkcode end} resolves with their
 * size and MD5; {@linkcode abort} gives an object up (its bytes are dropped unhashed). One
 * object at a time; the next may begin while the last is still hashing.
 */
export class HashLane {
  readonly #hasher: StreamHasher;
  readonly #index: number;
  /** The slot being filled (of {@linkcode SLOTS}, in turn) and the bytes in it. */
  #slot = 0;
  #at = 0;
  /** The current object's number (from 1); `#open` while its bytes come in. */
  #object = 0;
  #open = false;
  /** Slots of the open object handed to the worker. */
  #handed = 0;
  #write: ((bytes: Uint8Array) => void) | undefined;
  readonly #digests = new Map<number, PromiseWithResolvers<WrittenObject>>();
  #waiter: PromiseWithResolvers<void> | undefined;

  /** @internal */
  constructor(hasher: StreamHasher, index: number) {
    this.#hasher = hasher;
    this.#index = index;
  }

  /**
   * Begins an object (giving up one still open). `write` takes its bytes in order, a slot's
   * worth at a time (the last part at {@linkcode end}), before they are hashed: the caller's
   * file gets the bytes hashed, one write per slot. Its error is thrown by the call that
   * wrote (the object is then the caller's to {@linkcode abort}).
   */
  begin(write?: (bytes: Uint8Array) => void): void {
    this.#throwIfFailed();
    if (this.#open) this.abort();
    this.#object++;
    this.#open = true;
    this.#at = 0;
    this.#handed = 0;
    this.#write = write;
  }

  /**
   * Where the object's next bytes go: the rest of the slot being filled; a promise while that
   * slot still waits to be hashed.
   */
  space(): Uint8Array | Promise<Uint8Array> {
    this.#throwIfFailed();
    if (!this.#open) throw new Error("HashLane: space() without begin()");
    if (this.#slotFull()) return this.#whenFree().then(() => this.space());
    return this.#hasher.view(this.#index, this.#slot, this.#at);
  }

  /** `n` bytes were written at the start of the view {@linkcode space} gave last. */
  filled(n: number): void {
    if (!this.#open) throw new Error("HashLane: filled() without begin()");
    if (!(Number.isInteger(n) && n > 0 && this.#at + n <= SLOT_BYTES)) {
      throw new RangeError(`HashLane: ${n} bytes do not fit the slot`);
    }
    this.#at += n;
    if (this.#at === SLOT_BYTES) {
      this.#write?.(this.#hasher.view(this.#index, this.#slot, 0));
      this.#submit(FULL);
      this.#hasher.poke(this.#index);
    }
  }

  /**
   * Ends the object: resolves with the size and MD5 (and the SHA-256 when the hasher takes
   * it) of every byte given since it began (an object given no byte is empty), once the
   * worker hashed them. The lane takes the next object at once.
   */
  end(): Promise<WrittenObject> {
    const failure = this.#hasher.failure;
    if (failure !== undefined) return Promise.reject(failure);
    if (!this.#open) return Promise.reject(new Error("HashLane: end() without begin()"));
    if (this.#handed === 0 && this.#at === 0) {
      this.#close();
      this.#hasher.poke(this.#index);
      return Promise.resolve({
        size: 0,
        md5: EMPTY_MD5,
        ...(this.#hasher.sha256 ? { sha256: EMPTY_SHA256 } : {}),
      });
    }
    if (this.#at > 0) {
      try {
        this.#write?.(this.#hasher.view(this.#index, this.#slot, 0).subarray(0, this.#at));
      } catch (error) {
        this.abort();
        return Promise.reject(error);
      }
    }
    const object = this.#object;
    const digest = Promise.withResolvers<WrittenObject>();
    this.#digests.set(object, digest);
    const h = this.#hasher;
    const i = this.#index;
    if (this.#at > 0) {
      // The slot being filled was free when space() gave it.
      this.#submit(FULL_LAST);
    } else if (
      Atomics.compareExchange(
        h.ctl,
        h.slotWord(i, (this.#slot + SLOTS - 1) % SLOTS, STATE),
        FULL,
        FULL_LAST,
      ) !==
        FULL
    ) {
      // The object's last slot was hashed and freed already, and the one before it too (the
      // worker takes a lane's slots in turn): the end goes in an empty slot.
      this.#submit(FULL_LAST);
    }
    this.#close();
    h.poke(i);
    return digest.promise;
  }

  /** Gives the open object up: its bytes are dropped unhashed. Never throws. */
  abort(): void {
    if (!this.#open) return;
    this.#hasher.set(this.#hasher.laneWord(this.#index, ABORTED), this.#object);
    this.#close();
    this.#hasher.poke(this.#index);
  }

  /** @internal Taken by a caller: the worker waits for its slots. */
  take(): void {
    this.#hasher.set(this.#hasher.laneWord(this.#index, TAKEN), 1);
  }

  /** @internal Given back for good: the worker no longer waits for it. */
  give(): void {
    if (this.#hasher.word(this.#hasher.laneWord(this.#index, TAKEN)) === 0) return;
    this.#hasher.set(this.#hasher.laneWord(this.#index, TAKEN), 0);
    this.#hasher.poke(this.#index);
  }

  /** @internal The worker freed a slot this lane waits for. */
  wake(): void {
    const waiter = this.#waiter;
    this.#waiter = undefined;
    waiter?.resolve();
  }

  /** @internal The worker's answer for `object`. */
  digest(object: number, written: WrittenObject): void {
    const digest = this.#digests.get(object);
    this.#digests.delete(object);
    digest?.resolve(written);
  }

  /** @internal The hasher ended: everything pending rejects. */
  fail(error: Error): void {
    for (const digest of this.#digests.values()) digest.reject(error);
    this.#digests.clear();
    const waiter = this.#waiter;
    this.#waiter = undefined;
    waiter?.reject(error);
  }

  /** No object open: the worker no longer waits for this lane to fill a slot. */
  #close(): void {
    this.#open = false;
    this.#at = 0;
    this.#write = undefined;
  }

  #throwIfFailed(): void {
    const failure = this.#hasher.failure;
    if (failure !== undefined) throw failure;
  }

  #slotFull(): boolean {
    return this.#hasher.word(this.#hasher.slotWord(this.#index, this.#slot, STATE)) !== FREE;
  }

  /** Resolves once the worker freed a slot of this lane (checked again by the caller). */
  #whenFree(): Promise<void> {
    const failure = this.#hasher.failure;
    if (failure !== undefined) return Promise.reject(failure);
    this.#waiter ??= Promise.withResolvers<void>();
    const waiting = this.#waiter.promise;
    this.#hasher.set(this.#hasher.laneWord(this.#index, WAITING), 1);
    // Freed between the check and the flag: the worker saw no flag, so no message comes.
    if (!this.#slotFull()) {
      this.#hasher.set(this.#hasher.laneWord(this.#index, WAITING), 0);
      this.wake();
    }
    return waiting;
  }

  /** Hands the slot being filled to the worker (state `FULL` or `FULL_LAST`), moves to the other. */
  #submit(state: number): void {
    const h = this.#hasher;
    const i = this.#index;
    const s = this.#slot;
    h.set(h.slotWord(i, s, BYTES), this.#at);
    h.set(h.slotWord(i, s, OBJECT), this.#object);
    h.set(h.slotWord(i, s, STATE), state);
    this.#handed++;
    this.#slot = (s + 1) % SLOTS;
    this.#at = 0;
  }
}

/**
 * A sink over an open, empty `file` (it takes ownership) hashing through `lane`: a client reads
 * the body into the lane's slots (`space`, `filled`) or hands it chunk by chunk (`write`, which
 * copies), each slot is written to the file and then hashed; `finish` writes the rest, closes
 * the file and resolves with the size and MD5 of what was written, once hashed. A sink begins
 * an object on the lane (one sink at a time per lane). A body past `maxBytes` is refused
 * (`tooLong()`, or a RangeError) before its bytes are written: a server cannot fill the disk
 * past what the listing announced.
 *
 * @example
 * ```ts
 * const hasher = StreamHasher.create(1)!;
 * const path = await Deno.makeTempFile();
 * const sink = laneFileSink(await Deno.open(path, { write: true }), hasher.lane()!);
 * await sink.write(new TextEncoder().encode("abc"));
 * await sink.finish(); // { size: 3, md5: "900150983cd24fb0d6963f7d28e17f72" }
 * hasher.close();
 * ```
 */
export function laneFileSink(
  file: Deno.FsFile,
  lane: HashLane,
  options: { maxBytes?: number; tooLong?: () => Error } = {},
): ObjectSink {
  const maxBytes = options.maxBytes ?? Number.POSITIVE_INFINITY;
  let size = 0;
  const count = (n: number) => {
    size += n;
    if (size > maxBytes) {
      throw options.tooLong?.() ?? new RangeError(`download: more than ${maxBytes} bytes`);
    }
  };
  let closed = false;
  const close = () => {
    if (closed) return;
    closed = true;
    file.close();
  };
  lane.begin((bytes) => {
    let written = 0;
    while (written < bytes.length) written += file.writeSync(bytes.subarray(written));
  });
  const write = (chunk: Uint8Array): Promise<void> | undefined => {
    let at = 0;
    while (at < chunk.length) {
      const offered = lane.space();
      if (!(offered instanceof Uint8Array)) {
        const rest = chunk.subarray(at);
        return offered.then(() => write(rest));
      }
      const n = Math.min(offered.length, chunk.length - at);
      count(n);
      offered.set(chunk.subarray(at, at + n));
      lane.filled(n);
      at += n;
    }
    return undefined;
  };
  return {
    space: () => lane.space(),
    filled: (n) => {
      count(n);
      lane.filled(n);
    },
    write,
    finish() {
      const hashed = lane.end();
      close();
      return hashed;
    },
    abort() {
      lane.abort();
      try {
        close();
      } catch {
        // Already closed.
      }
    },
  };
}

type FromWorker =
  | { t: "free"; lane: number }
  | { t: "digest"; lane: number; object: number; size: number; md5: string; sha256?: string };
