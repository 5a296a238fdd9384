/**
 * Twelve MD5s at once: a WebAssembly module, emitted here instruction by instruction, that runs
 * the MD5 compression of independent streams in the 32-bit lanes of SIMD128 (as multi-buffer
 * MD5 does with AVX2), three groups of four lanes interleaved step by step. One MD5 is a serial
 * chain of dependent steps, so a core runs it far below its width: one group of four fills a
 * little of it (~1.1 GB/s on one core of the 2-core bench host), three groups side by side fill
 * more (~2.5 GB/s; two ~2.0; four spill registers and fall back to ~2.2). The module is built
 * from this source at run time (a few kB, well under a millisecond): no binary is committed.
 *
 * Only the working state of the groups (four vectors each) lives in registers: each block's
 * sixteen message words, transposed so that one vector holds word `w` of the four streams of a
 * group, go to scratch memory and are read back per step, and the chaining state stays in
 * memory between blocks. Keeping the message words in registers (48 vectors for three groups)
 * spills, and spilled locals measured slower than this layout.
 *
 * The module imports its memory (`env.memory`, shared, so the thread reading files and the one
 * hashing may share it) and exports `md5lanes(state, p0, ..., p<n-1>, blocks)`: for each lane
 * `i`, compress `blocks` 64-byte blocks starting at `p<i>` into lane `i` of the state. At
 * `state`: per group `g`, four 16-byte vectors A, B, C, D at `state + g * 64` (lane `i` of the
 * stream `4 * g + i`), then the message scratch, {@linkcode md5LanesStateBytes} in all.
 *
 * @module
 */

/** Per-step left-rotation amounts of MD5. */
const SHIFTS = [
  [7, 12, 17, 22],
  [5, 9, 14, 20],
  [4, 11, 16, 23],
  [6, 10, 15, 21],
];

/** MD5's additive constants: floor(abs(sin(i + 1)) * 2^32). */
const K = Array.from(
  { length: 64 },
  (_, i) => Math.floor(Math.abs(Math.sin(i + 1)) * 2 ** 32) >>> 0,
);

/** The initial MD5 state (A, B, C, D). */
export const MD5_INIT = [0x67452301, 0xefcdab89, 0x98badcfe, 0x10325476] as const;

/** Groups of four lanes the module runs by default (see the module doc for why three). */
export const MD5_GROUPS = 3;

/** Streams hashed at once by the default module. */
export const MD5_LANES = 4 * MD5_GROUPS;

/** Bytes the module uses at `state`: each group's state (64) and message scratch (256). */
export function md5LanesStateBytes(groups: number = MD5_GROUPS): number {
  return groups * (64 + 256);
}

function uleb(n: number): number[] {
  const out: number[] = [];
  do {
    let byte = n & 0x7f;
    n >>>= 7;
    if (n !== 0) byte |= 0x80;
    out.push(byte);
  } while (n !== 0);
  return out;
}

function sleb(n: number): number[] {
  const out: number[] = [];
  while (true) {
    const byte = n & 0x7f;
    n >>= 7;
    if ((n === 0 && (byte & 0x40) === 0) || (n === -1 && (byte & 0x40) !== 0)) {
      out.push(byte);
      return out;
    }
    out.push(byte | 0x80);
  }
}

function section(id: number, body: number[]): number[] {
  return [id, ...uleb(body.length), ...body];
}

function name(text: string): number[] {
  const bytes = [...new TextEncoder().encode(text)];
  return [...uleb(bytes.length), ...bytes];
}

// Instructions used (core and SIMD128 opcodes).
const I32 = 0x7f;
const V128 = 0x7b;
const LOCAL_GET = 0x20;
const LOCAL_SET = 0x21;
const LOCAL_TEE = 0x22;
const simd = (op: number) => [0xfd, ...uleb(op)];
const V128_LOAD = 0x00;
const V128_STORE = 0x0b;
const V128_CONST = 0x0c;
const I8X16_SHUFFLE = 0x0d;
const V128_NOT = 0x4d;
const V128_OR = 0x50;
const V128_XOR = 0x51;
const V128_BITSELECT = 0x52;
const I32X4_SHL = 0xab;
const I32X4_SHR_U = 0xad;
const I32X4_ADD = 0xae;

/**
 * The module's bytes, for `groups` groups of four lanes (its function takes `4 * groups`
 * pointers). Memory: imported as `env.memory`, shared, at most `maxPages` pages of 64 KiB (the
 * importer's memory must declare the same maximum).
 */
export function md5LanesWasmBytes(
  maxPages: number,
  groups: number = MD5_GROUPS,
): Uint8Array<ArrayBuffer> {
  if (!Number.isInteger(groups) || groups < 1) {
    throw new RangeError(`md5 lanes: groups must be a positive integer, got ${groups}`);
  }
  const lanes = groups * 4;
  // Locals: params (state, p0..p<lanes-1>, blocks), then v128: a b c d per group, 8 temps.
  const STATE = 0;
  const BLOCKS = lanes + 1;
  const P = Array.from({ length: lanes }, (_, i) => 1 + i);
  const reg = (group: number) => lanes + 2 + group * 4;
  const TMP = lanes + 2 + groups * 4;
  const message = (group: number) => groups * 64 + group * 256;
  const code: number[] = [];
  const get = (local: number) => code.push(LOCAL_GET, ...uleb(local));
  const set = (local: number) => code.push(LOCAL_SET, ...uleb(local));
  const memarg = (align: number, offset: number) => code.push(...uleb(align), ...uleb(offset));
  const op = (opcode: number) => code.push(...simd(opcode));
  const i32 = (value: number) => code.push(0x41, ...sleb(value | 0));
  const splat = (value: number) => {
    op(V128_CONST);
    for (let lane = 0; lane < 4; lane++) {
      code.push(value & 0xff, (value >>> 8) & 0xff, (value >>> 16) & 0xff, (value >>> 24) & 0xff);
    }
  };
  // Two vectors' 32-bit words picked by index (0-3 from x, 4-7 from y).
  const shuffle = (x: number, y: number, words: number[]) => {
    get(x), get(y), op(I8X16_SHUFFLE);
    for (const word of words) for (let b = 0; b < 4; b++) code.push(word * 4 + b);
  };
  get(BLOCKS);
  code.push(0x45, 0x04, 0x40, 0x0f, 0x0b); // i32.eqz; if; return; end
  code.push(0x03, 0x40); // loop
  for (let group = 0; group < groups; group++) {
    for (let i = 0; i < 4; i++) {
      get(STATE), op(V128_LOAD), memarg(4, group * 64 + i * 16), set(reg(group) + i);
    }
    // Words 4q..4q+3 of the group's four streams, a 4x4 transpose per quarter block: word w
    // of every stream into one vector of the scratch.
    for (let q = 0; q < 4; q++) {
      for (let i = 0; i < 4; i++) {
        get(P[group * 4 + i]!), op(V128_LOAD), memarg(0, q * 16), set(TMP + i);
      }
      shuffle(TMP, TMP + 1, [0, 4, 1, 5]), set(TMP + 4);
      shuffle(TMP, TMP + 1, [2, 6, 3, 7]), set(TMP + 5);
      shuffle(TMP + 2, TMP + 3, [0, 4, 1, 5]), set(TMP + 6);
      shuffle(TMP + 2, TMP + 3, [2, 6, 3, 7]), set(TMP + 7);
      const columns: [number, number, number[]][] = [
        [4, 6, [0, 1, 4, 5]],
        [4, 6, [2, 3, 6, 7]],
        [5, 7, [0, 1, 4, 5]],
        [5, 7, [2, 3, 6, 7]],
      ];
      for (const [j, [x, y, words]] of columns.entries()) {
        get(STATE), shuffle(TMP + x, TMP + y, words);
        op(V128_STORE), memarg(4, message(group) + (q * 4 + j) * 16);
      }
    }
  }
  // 64 steps, each run for every group before the next; the roles of a, b, c, d rotate.
  const roles = Array.from({ length: groups }, (_, group) => {
    const A = reg(group);
    return [A, A + 1, A + 2, A + 3];
  });
  for (let step = 0; step < 64; step++) {
    const round = step >> 4;
    const g = round === 0
      ? step
      : round === 1
      ? (5 * step + 1) % 16
      : round === 2
      ? (3 * step + 5) % 16
      : (7 * step) % 16;
    const shift = SHIFTS[round]![step & 3]!;
    for (let group = 0; group < groups; group++) {
      const [a, b, c, d] = roles[group]!;
      // a + K + m first, then f: only f, one add and the rotation wait for the previous step.
      get(a!), splat(K[step]!), op(I32X4_ADD);
      get(STATE), op(V128_LOAD), memarg(4, message(group) + g * 16), op(I32X4_ADD);
      if (round === 0) {
        // (b & c) | (~b & d) = bitselect(c, d, b)
        get(c!), get(d!), get(b!), op(V128_BITSELECT);
      } else if (round === 1) {
        // (b & d) | (c & ~d) = bitselect(b, c, d)
        get(b!), get(c!), get(d!), op(V128_BITSELECT);
      } else if (round === 2) {
        get(c!), get(d!), op(V128_XOR), get(b!), op(V128_XOR);
      } else {
        // c ^ (b | ~d)
        get(d!), op(V128_NOT), get(b!), op(V128_OR), get(c!), op(V128_XOR);
      }
      op(I32X4_ADD);
      // rotl(x, s) = (x << s) | (x >>> (32 - s)); x kept in a (overwritten next).
      code.push(LOCAL_TEE, ...uleb(a!));
      i32(shift), op(I32X4_SHL), get(a!), i32(32 - shift), op(I32X4_SHR_U), op(V128_OR);
      get(b!), op(I32X4_ADD), set(a!);
      roles[group] = [d!, a!, b!, c!];
    }
  }
  // After 64 steps the roles are back where they started: state += a, b, c, d.
  for (let group = 0; group < groups; group++) {
    for (let i = 0; i < 4; i++) {
      get(STATE);
      get(STATE), op(V128_LOAD), memarg(4, group * 64 + i * 16);
      get(reg(group) + i), op(I32X4_ADD);
      op(V128_STORE), memarg(4, group * 64 + i * 16);
    }
  }
  for (const p of P) get(p), i32(64), code.push(0x6a), set(p); // p += 64
  // blocks -= 1; br_if loop (blocks != 0)
  get(BLOCKS), i32(1), code.push(0x6b, LOCAL_TEE, ...uleb(BLOCKS), 0x0d, 0x00);
  code.push(0x0b); // end loop
  code.push(0x0b); // end function
  const body = [1, ...uleb(groups * 4 + 8), V128, ...code];
  return new Uint8Array([
    0x00,
    0x61,
    0x73,
    0x6d,
    0x01,
    0x00,
    0x00,
    0x00,
    // type: (i32 x (lanes + 2)) -> ()
    ...section(1, [1, 0x60, ...uleb(lanes + 2), ...Array(lanes + 2).fill(I32), 0]),
    // import env.memory: shared, min 1, max maxPages
    ...section(2, [1, ...name("env"), ...name("memory"), 0x02, 0x03, 1, ...uleb(maxPages)]),
    ...section(3, [1, 0]),
    ...section(7, [1, ...name("md5lanes"), 0x00, 0]),
    ...section(10, [1, ...uleb(body.length), ...body]),
  ]);
}

/**
 * The source of `md5Tail(md5, bytes, words, scratch, stateAt, moduleLanes, state, from, tail,
 * size)`, for the hashing workers' inline sources: pads the last `tail` (< 64) bytes of a stream
 * of `size` bytes, found at `from` in `bytes`, in the scratch at `scratch`, compresses them into
 * `state` (its four words) with the module `md5` in lane 0 of the state at `stateAt` (the other
 * lanes hash the scratch into states nobody reads) and returns the MD5 in hex.
 */
export const MD5_TAIL_SOURCE = `
function md5Tail(md5, bytes, words, scratch, stateAt, moduleLanes, state, from, tail, size) {
  // MD5's padding: 0x80, zeros, the length in bits (64-bit little-endian) ending a block.
  const blocks = tail < 56 ? 1 : 2;
  const pad = bytes.subarray(scratch, scratch + blocks * 64);
  pad.fill(0);
  pad.set(bytes.subarray(from, from + tail));
  pad[tail] = 0x80;
  const bits = size * 8;
  const view = new DataView(bytes.buffer, scratch + blocks * 64 - 8, 8);
  view.setUint32(0, bits % 0x100000000, true);
  view.setUint32(4, Math.floor(bits / 0x100000000), true);
  // Word w of lane 0 is at stateAt + w * 16.
  const at = stateAt >> 2;
  for (let w = 0; w < 4; w++) words[at + w * 4] = state[w];
  md5(stateAt, ...new Array(moduleLanes).fill(scratch), blocks);
  let hex = "";
  for (let w = 0; w < 4; w++) {
    const word = words[at + w * 4];
    for (let b = 0; b < 4; b++) hex += ((word >>> (b * 8)) & 0xff).toString(16).padStart(2, "0");
  }
  return hex;
}
`;
