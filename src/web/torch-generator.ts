// libtorch's CPU random generator in plain JavaScript (no Node, no addon), so
// a web page draws the same noise for a seed as `generate` does in Node:
// the Mersenne Twister (mt19937, seeded as torch.Generator.manual_seed) and
// torch's CPU algorithms on top of it for the draws a sampler makes.
//
//   float32 randn of ≥ 16 values (torch's normal_fill): every value first gets
//   a uniform u = (r & 0xFFFFFF) / 2^24 from one 32-bit draw r; then each
//   block of 16 is Box–Muller transformed in place, value j with j + 8:
//   ρ = √(−2·ln(1 − u_j)), θ = 2π·u_{j+8}, x_j = ρ·cos θ, x_{j+8} = ρ·sin θ.
//   When the count is not a multiple of 16 the last 16 values are drawn
//   afresh (16 more uniforms) and transformed again.
//   randint(0, n): one 32-bit draw, r mod n (n < 2^32).
//
// libtorch computes the logarithm, cosine and sine with vectorised (SLEEF)
// or libm routines depending on the CPU, so the last bit can differ from
// these Math.* results: values agree to ~1e-6, not bit for bit.

const N = 624;
const M = 397;

/** mt19937 (32-bit), as std::mt19937 and at::mt19937. */
export class MersenneTwister {
  private readonly state = new Uint32Array(N);
  private index = N;

  constructor(seed: number) {
    const s = this.state;
    s[0] = seed >>> 0;
    for (let i = 1; i < N; i++) {
      const prev = s[i - 1]! ^ (s[i - 1]! >>> 30);
      // 1812433253 · prev + i, modulo 2^32, without losing bits to doubles.
      s[i] = (((((prev & 0xffff0000) >>> 16) * 1812433253) << 16) + (prev & 0x0000ffff) * 1812433253 + i) >>> 0;
    }
  }

  /** The next 32-bit output. */
  next(): number {
    const s = this.state;
    if (this.index >= N) {
      for (let k = 0; k < N; k++) {
        const y = (s[k]! & 0x80000000) | (s[(k + 1) % N]! & 0x7fffffff);
        s[k] = s[(k + M) % N]! ^ (y >>> 1) ^ (y & 1 ? 0x9908b0df : 0);
      }
      this.index = 0;
    }
    let y = s[this.index++]!;
    y ^= y >>> 11;
    y ^= (y << 7) & 0x9d2c5680;
    y ^= (y << 15) & 0xefc60000;
    y ^= y >>> 18;
    return y >>> 0;
  }
}

/** A seeded generator with torch's CPU draws (torch.Generator().manual_seed(seed) for seed < 2^32). */
export class TorchGenerator {
  private readonly mt: MersenneTwister;

  constructor(seed: number) {
    if (!Number.isSafeInteger(seed) || seed < 0) throw new Error(`seed must be a non-negative integer, got ${seed}`);
    this.mt = new MersenneTwister(seed % 2 ** 32);
  }

  /** A float32 uniform in [0, 1) from one draw (24 bits), as torch's uniform_real_distribution<float>. */
  private uniform(): number {
    return (this.mt.next() & 0xffffff) / 0x1000000;
  }

  /** torch.randn(count) in float32, for count ≥ 16 (the sizes a sampler's latents have). */
  randn(count: number): Float32Array {
    if (!Number.isInteger(count) || count < 16) throw new Error(`randn: this port covers torch's path for 16 or more values, got ${count}`);
    const out = new Float32Array(count);
    for (let i = 0; i < count; i++) out[i] = this.uniform();
    for (let i = 0; i + 16 <= count; i += 16) boxMuller16(out, i);
    if (count % 16 !== 0) {
      const at = count - 16;
      for (let i = 0; i < 16; i++) out[at + i] = this.uniform();
      boxMuller16(out, at);
    }
    return out;
  }

  /** torch.randint(0, high, []) (one value). */
  randint(high: number): number {
    if (!Number.isInteger(high) || high < 1 || high > 2 ** 32) throw new Error(`randint: high must be an integer in [1, 2^32], got ${high}`);
    return this.mt.next() % high;
  }
}

/** torch's normal_fill_16: values at..at+15 hold uniforms; transform them in place (float32 arithmetic where torch keeps float). */
function boxMuller16(data: Float32Array, at: number): void {
  for (let j = 0; j < 8; j++) {
    const u1 = Math.fround(1 - data[at + j]!);
    const u2 = data[at + j + 8]!;
    const radius = Math.fround(Math.sqrt(Math.fround(-2 * Math.fround(Math.log(u1)))));
    const theta = Math.fround(Math.fround(2 * Math.PI) * u2);
    data[at + j] = radius * Math.fround(Math.cos(theta));
    data[at + j + 8] = radius * Math.fround(Math.sin(theta));
  }
}
