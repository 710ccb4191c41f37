// A small deterministic PRNG for data order (shuffles, subsets, x-flip walks).
//
// Why our own: data order must be identical across runs, machines and Node
// versions, and its state must round-trip through JSON so training can resume
// exactly. Math.random() has neither property. The generator is xoshiro128**
// (Blackman & Vigna), seeded through splitmix32; both use only 32-bit integer
// arithmetic (Math.imul, >>>), so no BigInt and the state is four uint32s.

/** JSON-serialisable generator state. */
export interface RngState {
  readonly s: readonly [number, number, number, number];
}

const TWO_32 = 4294967296;

/** One splitmix32 step: a good 32-bit mixer used to expand seeds into state. */
export function splitmix32(x: number): number {
  let z = (x + 0x9e3779b9) | 0;
  z = Math.imul(z ^ (z >>> 16), 0x21f0aaad);
  z = Math.imul(z ^ (z >>> 15), 0x735a2d97);
  return (z ^ (z >>> 15)) >>> 0;
}

function rotl(x: number, k: number): number {
  return (x << k) | (x >>> (32 - k));
}

function checkSeed(value: number, what: string): void {
  if (!Number.isSafeInteger(value) || value < 0) {
    throw new RangeError(`${what} must be a non-negative safe integer, got ${value}`);
  }
}

/**
 * A small deterministic generator for data order (xoshiro128** seeded through splitmix32): the same numbers
 * on every machine and Node version, with a state of four uint32s that round-trips through JSON.
 */
export class Rng {
  private s0 = 0;
  private s1 = 0;
  private s2 = 0;
  private s3 = 0;

  /**
   * A generator for (seed, stream). Different streams of one seed are
   * independent sequences: the sampler uses the epoch number as stream so each
   * epoch's permutation can be rebuilt on resume without replaying earlier ones.
   */
  constructor(seed: number = 0, stream: number = 0) {
    checkSeed(seed, 'Rng seed');
    checkSeed(stream, 'Rng stream');
    // Fold both 53-bit numbers into the mixer, 32 bits at a time.
    const words = [seed >>> 0, Math.floor(seed / TWO_32) >>> 0, stream >>> 0, Math.floor(stream / TWO_32) >>> 0];
    let h = 0x243f6a88;
    for (const w of words) h = splitmix32(h ^ w);
    const out: number[] = [];
    for (let i = 0; i < 4; i++) {
      h = splitmix32(h + i);
      out.push(h);
    }
    this.s0 = out[0]!;
    this.s1 = out[1]!;
    this.s2 = out[2]!;
    this.s3 = out[3]!;
    // xoshiro must never be all-zero; splitmix output makes that astronomically
    // unlikely, but make it impossible.
    if ((this.s0 | this.s1 | this.s2 | this.s3) === 0) this.s0 = 1;
  }

  /** Next uniform uint32. */
  nextU32(): number {
    const result = Math.imul(rotl(Math.imul(this.s1, 5), 7), 9) >>> 0;
    const t = this.s1 << 9;
    this.s2 ^= this.s0;
    this.s3 ^= this.s1;
    this.s1 ^= this.s2;
    this.s0 ^= this.s3;
    this.s2 ^= t;
    this.s3 = rotl(this.s3, 11);
    return result;
  }

  /** Uniform float in [0, 1) with 53 random bits. */
  nextFloat(): number {
    const hi = this.nextU32() >>> 5; // 27 bits
    const lo = this.nextU32() >>> 6; // 26 bits
    return (hi * 67108864 + lo) / 9007199254740992;
  }

  /** Uniform integer in [0, n), unbiased (rejects the short top range), for 1 <= n <= 2^32. */
  nextInt(n: number): number {
    if (!Number.isInteger(n) || n < 1 || n > TWO_32) throw new RangeError(`Rng.nextInt: n must be an integer in [1, 2^32], got ${n}`);
    // Values below `threshold` would make r % n favour small results.
    const threshold = (TWO_32 - n) % n;
    for (;;) {
      const r = this.nextU32();
      if (r >= threshold) return r % n;
    }
  }

  /** In-place Fisher–Yates shuffle. */
  shuffle<T extends { length: number; [i: number]: unknown }>(array: T): T {
    for (let i = array.length - 1; i > 0; i--) {
      const j = this.nextInt(i + 1);
      const tmp = array[i];
      array[i] = array[j];
      array[j] = tmp;
    }
    return array;
  }

  getState(): RngState {
    return { s: [this.s0 >>> 0, this.s1 >>> 0, this.s2 >>> 0, this.s3 >>> 0] };
  }

  setState(state: RngState): void {
    const s = state?.s;
    if (!Array.isArray(s) || s.length !== 4 || !s.every((v) => Number.isInteger(v) && v >= 0 && v < TWO_32)) {
      throw new TypeError('Rng.setState: expected { s: [four uint32 integers] }');
    }
    if ((s[0] | s[1] | s[2] | s[3]) === 0) throw new TypeError('Rng.setState: an all-zero state is invalid for xoshiro128**');
    this.s0 = s[0] | 0;
    this.s1 = s[1] | 0;
    this.s2 = s[2] | 0;
    this.s3 = s[3] | 0;
  }

  static fromState(state: RngState): Rng {
    const r = new Rng(0);
    r.setState(state);
    return r;
  }
}

/** A seeded permutation of 0..n-1 (Fisher–Yates). */
export function permutation(n: number, seed: number, stream: number = 0): Uint32Array {
  const p = new Uint32Array(n);
  for (let i = 0; i < n; i++) p[i] = i;
  new Rng(seed, stream).shuffle(p);
  return p;
}
