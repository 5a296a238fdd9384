/**
 * Four MD5s at once: a WebAssembly module, emitted here instruction by instruction, that runs
 * the MD5 compression of four independent streams in the four 32-bit lanes of SIMD128 (as
 * multi-buffer MD5 does with AVX2). One MD5 is a serial chain of dependent steps, so a core
 * runs it far below its width; four chains side by side fill it. The module is built from this
 * source at run time (a few kB, well under a millisecond): no binary is committed.
 *
 * The module imports its memory (`env.memory`, shared, so a ring the reading thread writes
 * into is the memory the hashing thread reads) and exports
 * `md5x4(state, p0, p1, p2, p3, blocks)`: for each lane `i`, compress `blocks` 64-byte blocks
 * starting at `p<i>` into lane `i` of the state at `state` (four 16-byte vectors A, B, C, D,
 * lane `i` of each holding that stream's word).
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

/** Bytes of one lane's state vector block: A, B, C, D of four lanes. */
export const MD5X4_STATE_BYTES = 64;

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
const V128_NOT = 0x4d;
const V128_OR = 0x50;
const V128_XOR = 0x51;
const V128_BITSELECT = 0x52;
const V128_LOAD32_LANE = 0x56;
const V128_LOAD32_ZERO = 0x5c;
const I32X4_SHL = 0xab;
const I32X4_SHR_U = 0xad;
const I32X4_ADD = 0xae;

/**
 * Groups of four lanes run interleaved: one (two, eight streams, measured no faster: the
 * sixteen vector registers then spill).
 */
const GROUPS = 1;

/**
 * The module's bytes. Memory: imported as `env.memory`, shared, at most `maxPages` pages of
 * 64 KiB (the importer's memory must declare the same maximum).
 */
export function md5x4WasmBytes(maxPages: number): Uint8Array<ArrayBuffer> {
  const groups = GROUPS;
  const lanes = groups * 4;
  // Locals: params (state, p0..p<lanes-1>, blocks), then per group v128 a b c d, saved a b c
  // d, m0..m15.
  const STATE = 0, BLOCKS = lanes + 1;
  const P = Array.from({ length: lanes }, (_, i) => 1 + i);
  const base = (group: number) => lanes + 2 + group * 24;
  const code: number[] = [];
  const get = (local: number) => code.push(LOCAL_GET, ...uleb(local));
  const set = (local: number) => code.push(LOCAL_SET, ...uleb(local));
  const memarg = (align: number, offset: number) => [...uleb(align), ...uleb(offset)];
  const op = (opcode: number) => code.push(...simd(opcode));
  const splat = (value: number) => {
    op(V128_CONST);
    for (let lane = 0; lane < 4; lane++) {
      code.push(value & 0xff, (value >>> 8) & 0xff, (value >>> 16) & 0xff, (value >>> 24) & 0xff);
    }
  };
  const i32 = (value: number) => code.push(0x41, ...sleb(value | 0));
  for (let group = 0; group < groups; group++) {
    for (let i = 0; i < 4; i++) {
      get(STATE), op(V128_LOAD), code.push(...memarg(4, group * 64 + i * 16)), set(base(group) + i);
    }
  }
  get(BLOCKS);
  code.push(0x45, 0x04, 0x40, 0x0f, 0x0b); // i32.eqz; if; return; end
  code.push(0x03, 0x40); // loop
  for (let group = 0; group < groups; group++) {
    const M = base(group) + 8;
    // Word w of each lane's block into that lane of m<w>.
    for (let w = 0; w < 16; w++) {
      get(P[group * 4]!), op(V128_LOAD32_ZERO), code.push(...memarg(0, w * 4));
      for (let lane = 1; lane < 4; lane++) {
        set(M + w), get(P[group * 4 + lane]!), get(M + w);
        op(V128_LOAD32_LANE), code.push(...memarg(0, w * 4), lane);
      }
      set(M + w);
    }
    for (let i = 0; i < 4; i++) get(base(group) + i), set(base(group) + 4 + i);
  }
  // 64 steps; the roles of a, b, c, d rotate each step.
  const roles = Array.from({ length: groups }, (_, group) => {
    const A = base(group);
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
      const M = base(group) + 8;
      // a + K + m first, then f: only f, one add and the rotation wait for the previous step.
      get(a!), splat(K[step]!), op(I32X4_ADD), get(M + g), op(I32X4_ADD);
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
  for (let group = 0; group < groups; group++) {
    const A = base(group);
    for (let i = 0; i < 4; i++) get(A + i), get(A + 4 + i), op(I32X4_ADD), set(A + i);
  }
  for (const p of P) get(p), i32(64), code.push(0x6a), set(p); // p += 64
  // blocks -= 1; br_if loop (blocks != 0)
  get(BLOCKS), i32(1), code.push(0x6b, LOCAL_TEE, ...uleb(BLOCKS), 0x0d, 0x00);
  code.push(0x0b); // end loop
  for (let group = 0; group < groups; group++) {
    for (let i = 0; i < 4; i++) {
      get(STATE),
        get(base(group) + i),
        op(V128_STORE),
        code.push(...memarg(4, group * 64 + i * 16));
    }
  }
  code.push(0x0b); // end function
  const body = [1, ...uleb(groups * 24), V128, ...code];
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
    ...section(7, [1, ...name("md5x4"), 0x00, 0]),
    ...section(10, [1, ...uleb(body.length), ...body]),
  ]);
}
