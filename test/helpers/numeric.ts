// Shared numeric helpers for the engine tests: element-wise closeness with a
// readable failure message, relative errors, central finite differences and
// the matching autograd gradients, and naive reference implementations of the
// ops whose results are too long to write out by hand.
import assert from 'node:assert/strict';
import { noGrad, scope, tensor, type Tensor } from '../../src/tensor/index.js';

/** Flat numbers of a tensor or array-like. */
export function values(x: Tensor | ArrayLike<number>): number[] {
  if (isTensor(x)) return x.toArray();
  return Array.from(x);
}

function isTensor(x: unknown): x is Tensor {
  return typeof x === 'object' && x !== null && 'handle' in x && typeof (x as Tensor).toArray === 'function';
}

/**
 * Asserts |actual − expected| ≤ atol + rtol·|expected| element by element
 * (NaN matches NaN, ±Infinity must match exactly), and that lengths agree.
 */
export function assertClose(
  actual: Tensor | ArrayLike<number>,
  expected: ArrayLike<number>,
  { atol = 1e-6, rtol = 1e-6, message = '' }: { atol?: number; rtol?: number; message?: string } = {},
): void {
  const a = values(actual);
  const e = Array.from(expected);
  assert.equal(a.length, e.length, `${message} length ${a.length} != expected ${e.length}`);
  for (let i = 0; i < a.length; i++) {
    const x = a[i]!;
    const y = e[i]!;
    if (Number.isNaN(y)) {
      assert.ok(Number.isNaN(x), `${message} [${i}]: got ${x}, expected NaN`);
      continue;
    }
    if (!Number.isFinite(y)) {
      assert.equal(x, y, `${message} [${i}]: got ${x}, expected ${y}`);
      continue;
    }
    const tol = atol + rtol * Math.abs(y);
    assert.ok(Math.abs(x - y) <= tol, `${message} [${i}]: got ${x}, expected ${y} (|diff| ${Math.abs(x - y)} > ${tol})\n  actual:   [${a.slice(0, 16).join(', ')}${a.length > 16 ? ', …' : ''}]\n  expected: [${e.slice(0, 16).join(', ')}${e.length > 16 ? ', …' : ''}]`);
  }
}

/** Asserts a tensor's shape. */
export function assertShape(t: Tensor, shape: readonly number[], message = ''): void {
  assert.deepEqual([...t.shape], [...shape], `${message} shape`);
}

/** ‖a − b‖₂ / ‖b‖₂ (absolute when ‖b‖ is zero). */
export function relativeError(a: ArrayLike<number>, b: ArrayLike<number>): number {
  assert.equal(a.length, b.length, 'relativeError: lengths differ');
  let num = 0;
  let den = 0;
  for (let i = 0; i < a.length; i++) {
    num += (a[i]! - b[i]!) ** 2;
    den += b[i]! ** 2;
  }
  return den === 0 ? Math.sqrt(num) : Math.sqrt(num / den);
}

/** A deterministic pseudo-random float64 array (no libtorch involved), values in [-1, 1). */
export function pseudoRandom(n: number, seed: number): Float64Array {
  let s = (seed * 2654435761 + 1) >>> 0;
  const out = new Float64Array(n);
  for (let i = 0; i < n; i++) {
    // xorshift32
    s ^= s << 13;
    s >>>= 0;
    s ^= s >>> 17;
    s ^= s << 5;
    s >>>= 0;
    out[i] = (s / 4294967296) * 2 - 1;
  }
  return out;
}

/** A float64 tensor of the given shape filled by `pseudoRandom`, scaled. */
export function randomTensor(shape: readonly number[], seed: number, scale = 1): Tensor {
  const n = shape.reduce((a, b) => a * b, 1);
  return tensor(pseudoRandom(n, seed).map((v) => v * scale), shape, { dtype: 'float64' });
}

/** A scalar-valued function of several tensors (the gradient checks' subject). */
export type ScalarFn = (inputs: Tensor[]) => Tensor;

/**
 * ∂f/∂inputs by central differences, (f(x+h) − f(x−h)) / 2h for every element
 * of every input (float64 inputs). All intermediate tensors are freed.
 */
export function finiteDifferenceGradients(f: ScalarFn, inputs: readonly Tensor[], h = 1e-6): Float64Array[] {
  const bases = inputs.map((t) => {
    assert.equal(t.dtype, 'float64', 'finite differences need float64 inputs');
    return Float64Array.from(t.data() as Float64Array);
  });
  const evalAt = (k: number, perturbed: Float64Array): number =>
    noGrad(() =>
      scope(() => {
        const args = inputs.map((t, j) => (j === k ? tensor(perturbed, t.shape, { dtype: 'float64' }) : t));
        const out = f(args);
        assert.equal(out.numel, 1, 'the checked function must return a scalar');
        return out.item();
      }),
    );
  return bases.map((base, k) => {
    const grad = new Float64Array(base.length);
    const work = Float64Array.from(base);
    for (let i = 0; i < base.length; i++) {
      work[i] = base[i]! + h;
      const plus = evalAt(k, work);
      work[i] = base[i]! - h;
      const minus = evalAt(k, work);
      work[i] = base[i]!;
      grad[i] = (plus - minus) / (2 * h);
    }
    return grad;
  });
}

/** ∂f/∂inputs by libtorch's autograd (inputs cloned as leaves that require grad). */
export function autogradGradients(f: ScalarFn, inputs: readonly Tensor[]): Float64Array[] {
  return scope(() => {
    const leaves = inputs.map((t) => t.clone().requiresGrad_(true));
    const out = f(leaves);
    out.backward();
    return leaves.map((l, k) => {
      const g = l.grad;
      assert.ok(g !== null, `input ${k} received no gradient`);
      return Float64Array.from(g.data() as Float64Array);
    });
  });
}

/**
 * Compares autograd with central differences for every input; fails with the
 * worst relative error (‖g_ad − g_fd‖ / ‖g_fd‖) when it exceeds `tolerance`.
 * Returns the relative error of each input.
 */
export function checkGradients(
  f: ScalarFn,
  inputs: readonly Tensor[],
  { tolerance = 1e-6, h = 1e-6, names }: { tolerance?: number; h?: number; names?: string[] } = {},
): number[] {
  const numeric = finiteDifferenceGradients(f, inputs, h);
  const analytic = autogradGradients(f, inputs);
  return numeric.map((fd, k) => {
    const ad = analytic[k]!;
    const name = names?.[k] ?? `input ${k}`;
    // A zero gradient everywhere would make the comparison vacuous.
    assert.ok(fd.some((v) => Math.abs(v) > 1e-8), `${name}: finite-difference gradient is all zero (test is vacuous)`);
    const err = relativeError(ad, fd);
    assert.ok(err < tolerance, `${name}: autograd vs finite differences relative error ${err.toExponential(3)} ≥ ${tolerance}`);
    return err;
  });
}

// ---- naive reference ops (plain JS loops, float64) ---------------------------------------

/** Reference conv2d on NCHW arrays; weight [O, C/groups, KH, KW]. */
export function referenceConv2d(
  x: ArrayLike<number>, xShape: readonly number[],
  w: ArrayLike<number>, wShape: readonly number[],
  bias: ArrayLike<number> | null,
  { stride = [1, 1], padding = [0, 0], dilation = [1, 1], groups = 1 }: { stride?: number[]; padding?: number[]; dilation?: number[]; groups?: number } = {},
): { data: number[]; shape: number[] } {
  const [N, C, H, W] = xShape as [number, number, number, number];
  const [O, Cg, KH, KW] = wShape as [number, number, number, number];
  const [sh, sw] = stride as [number, number];
  const [ph, pw] = padding as [number, number];
  const [dh, dw] = dilation as [number, number];
  assert.equal(Cg * groups, C);
  const OH = Math.floor((H + 2 * ph - dh * (KH - 1) - 1) / sh) + 1;
  const OW = Math.floor((W + 2 * pw - dw * (KW - 1) - 1) / sw) + 1;
  const Og = O / groups;
  const out = new Array<number>(N * O * OH * OW).fill(0);
  for (let n = 0; n < N; n++)
    for (let o = 0; o < O; o++) {
      const g = Math.floor(o / Og);
      for (let oy = 0; oy < OH; oy++)
        for (let ox = 0; ox < OW; ox++) {
          let acc = bias ? bias[o]! : 0;
          for (let c = 0; c < Cg; c++)
            for (let ky = 0; ky < KH; ky++)
              for (let kx = 0; kx < KW; kx++) {
                const iy = oy * sh - ph + ky * dh;
                const ix = ox * sw - pw + kx * dw;
                if (iy < 0 || iy >= H || ix < 0 || ix >= W) continue;
                const ci = g * Cg + c;
                acc += x[((n * C + ci) * H + iy) * W + ix]! * w[((o * Cg + c) * KH + ky) * KW + kx]!;
              }
          out[((n * O + o) * OH + oy) * OW + ox] = acc;
        }
    }
  return { data: out, shape: [N, O, OH, OW] };
}

/** Reference transposed conv2d on NCHW arrays; weight [C, O/groups, KH, KW]. */
export function referenceConvTranspose2d(
  x: ArrayLike<number>, xShape: readonly number[],
  w: ArrayLike<number>, wShape: readonly number[],
  bias: ArrayLike<number> | null,
  { stride = [1, 1], padding = [0, 0], outputPadding = [0, 0], dilation = [1, 1], groups = 1 }:
  { stride?: number[]; padding?: number[]; outputPadding?: number[]; dilation?: number[]; groups?: number } = {},
): { data: number[]; shape: number[] } {
  const [N, C, H, W] = xShape as [number, number, number, number];
  const [Cw, Og, KH, KW] = wShape as [number, number, number, number];
  assert.equal(Cw, C);
  const [sh, sw] = stride as [number, number];
  const [ph, pw] = padding as [number, number];
  const [oph, opw] = outputPadding as [number, number];
  const [dh, dw] = dilation as [number, number];
  const O = Og * groups;
  const Cg = C / groups;
  const OH = (H - 1) * sh - 2 * ph + dh * (KH - 1) + oph + 1;
  const OW = (W - 1) * sw - 2 * pw + dw * (KW - 1) + opw + 1;
  const out = new Array<number>(N * O * OH * OW).fill(0);
  for (let n = 0; n < N; n++)
    for (let c = 0; c < C; c++) {
      const g = Math.floor(c / Cg);
      for (let iy = 0; iy < H; iy++)
        for (let ix = 0; ix < W; ix++) {
          const v = x[((n * C + c) * H + iy) * W + ix]!;
          for (let oo = 0; oo < Og; oo++)
            for (let ky = 0; ky < KH; ky++)
              for (let kx = 0; kx < KW; kx++) {
                const oy = iy * sh - ph + ky * dh;
                const ox = ix * sw - pw + kx * dw;
                if (oy < 0 || oy >= OH || ox < 0 || ox >= OW) continue;
                const o = g * Og + oo;
                out[((n * O + o) * OH + oy) * OW + ox]! += v * w[((c * Og + oo) * KH + ky) * KW + kx]!;
              }
        }
    }
  if (bias)
    for (let n = 0; n < N; n++)
      for (let o = 0; o < O; o++)
        for (let k = 0; k < OH * OW; k++) out[(n * O + o) * OH * OW + k]! += bias[o]!;
  return { data: out, shape: [N, O, OH, OW] };
}
