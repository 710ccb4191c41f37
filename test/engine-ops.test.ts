// The engine's ops against values computed by hand (or by plain JS loops for
// the convolutions): creation, the seeded generator, views and indexing,
// broadcasting math, reductions, linear algebra, the nn functions and the
// in-place updates.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import {
  F, Generator, arange, cat, full, linspace, ones, scalar, stack, tensor, where, zeros,
} from '../src/tensor/index.js';
import { assertClose, assertShape, pseudoRandom, referenceConv2d, referenceConvTranspose2d } from './helpers/numeric.js';

const f64 = (data: number[] | number[][] | number[][][] | number[][][][]) => tensor(data, undefined, { dtype: 'float64' });
const i64 = (data: number[] | number[][]) => tensor(data, undefined, { dtype: 'int64' });

describe('creation', () => {
  it('from typed arrays keeps the natural dtype and the exact values', () => {
    const a = tensor(new Float32Array([1.5, -2, 3.25, 0.1]), [2, 2]);
    assert.equal(a.dtype, 'float32');
    assertShape(a, [2, 2]);
    assert.deepEqual(a.toArray(), [1.5, -2, 3.25, Math.fround(0.1)]);

    const b = tensor(new Float64Array([0.1, -1e-300, 1e300]));
    assert.equal(b.dtype, 'float64');
    assert.deepEqual(b.toArray(), [0.1, -1e-300, 1e300]); // not squeezed through float32

    const big = 2n ** 53n + 1n; // not representable as a double
    const c = tensor(new BigInt64Array([big, -big, 0n]));
    assert.equal(c.dtype, 'int64');
    assert.deepEqual(Array.from(c.data() as BigInt64Array), [big, -big, 0n]);

    const d = tensor(new Uint8Array([0, 255, 7]));
    assert.equal(d.dtype, 'uint8');
    assert.deepEqual(d.toArray(), [0, 255, 7]);

    const e = tensor(new Int32Array([-5, 2 ** 31 - 1]));
    assert.equal(e.dtype, 'int32');
    assert.deepEqual(e.toArray(), [-5, 2 ** 31 - 1]);

    // An explicit dtype converts.
    const g = tensor(new Float64Array([1.7, -2.2]), [2], { dtype: 'int64' });
    assert.equal(g.dtype, 'int64');
    assert.deepEqual(g.toArray(), [1, -2]);
  });

  it('from nested arrays infers the shape (float32 by default)', () => {
    const a = tensor([[1, 2, 3], [4, 5, 6]]);
    assert.equal(a.dtype, 'float32');
    assertShape(a, [2, 3]);
    assert.deepEqual(a.toArray(), [1, 2, 3, 4, 5, 6]);

    const b = tensor([[[0.1]], [[0.2]]], undefined, { dtype: 'float64' });
    assertShape(b, [2, 1, 1]);
    assert.deepEqual(b.toArray(), [0.1, 0.2]);

    const c = tensor([[-3, 4], [5, -6]], undefined, { dtype: 'int64' });
    assert.equal(c.dtype, 'int64');
    assert.deepEqual(Array.from(c.data() as BigInt64Array), [-3n, 4n, 5n, -6n]);

    const d = tensor([255, 0, 17], undefined, { dtype: 'uint8' });
    assert.equal(d.dtype, 'uint8');
    assert.deepEqual(d.toArray(), [255, 0, 17]);

    const e = tensor([true, false, true], undefined, { dtype: 'bool' });
    assert.equal(e.dtype, 'bool');
    assert.deepEqual(e.toArray(), [1, 0, 1]);

    // An explicit shape reshapes the flat values.
    assertShape(tensor([1, 2, 3, 4, 5, 6], [3, 2]), [3, 2]);
    assert.throws(() => tensor([[1, 2], [3]]), /ragged/);
  });

  it('float16 and bfloat16 through .to(), rounded as IEEE half / bfloat16', () => {
    const src = tensor([1, 0.1, 65504, 1e5, -3, 2 ** -24]);
    const h = src.to('float16');
    assert.equal(h.dtype, 'float16');
    assertShape(h, [6]);
    // 0.1 → 0x2E66, 1e5 overflows half, 2^-24 is the smallest half subnormal.
    assert.deepEqual(h.toArray(), [1, 0.0999755859375, 65504, Infinity, -3, 2 ** -24]);
    const b = src.to('bfloat16');
    assert.equal(b.dtype, 'bfloat16');
    // 0.1 → 0x3DCD, 65504 → 65536, 1e5 → 0x47C3 = 99840 (round to nearest even).
    assert.deepEqual(b.toArray(), [1, 0.10009765625, 65536, 99840, -3, 2 ** -24]);
    // Back up to float64 is exact.
    assert.deepEqual(h.to('float64').toArray(), [1, 0.0999755859375, 65504, Infinity, -3, 2 ** -24]);
    // A dtype option on creation converts the same way, and raw bits come in as a Uint16Array.
    assert.deepEqual(tensor([0.1], undefined, { dtype: 'float16' }).toArray(), [0.0999755859375]);
    assert.deepEqual(tensor(new Uint16Array([0x3c00, 0xc000, 0x7c00]), [3], { dtype: 'float16' }).toArray(), [1, -2, Infinity]);
    assert.deepEqual(tensor(new Uint16Array([0x3f80, 0x3dcd]), [2], { dtype: 'bfloat16' }).toArray(), [1, 0.10009765625]);
    assert.throws(() => tensor(new Uint16Array(3)), /Uint16Array/);
  });

  it('zeros, ones, full, scalar', () => {
    const z = zeros([2, 3]);
    assert.equal(z.dtype, 'float32');
    assertShape(z, [2, 3]);
    assert.deepEqual(z.toArray(), [0, 0, 0, 0, 0, 0]);
    const o = ones([4], { dtype: 'int64' });
    assert.equal(o.dtype, 'int64');
    assert.deepEqual(o.toArray(), [1, 1, 1, 1]);
    const f = full([2, 2], 0.1, { dtype: 'float64' });
    assert.deepEqual(f.toArray(), [0.1, 0.1, 0.1, 0.1]);
    const s = scalar(3.5);
    assertShape(s, []);
    assert.equal(s.numel, 1);
    assert.equal(s.item(), 3.5);
    assertShape(zeros([0, 3]), [0, 3]);
    assert.deepEqual(zeros([0, 3]).toArray(), []);
  });

  it('arange and linspace', () => {
    const a = arange(0, 5);
    assert.equal(a.dtype, 'int64');
    assert.deepEqual(a.toArray(), [0, 1, 2, 3, 4]);
    assert.deepEqual(arange(5, 0, -2).toArray(), [5, 3, 1]);
    const b = arange(1, 2, 0.25);
    assert.equal(b.dtype, 'float32');
    assert.deepEqual(b.toArray(), [1, 1.25, 1.5, 1.75]);
    assert.equal(arange(0, 1, 0.1, { dtype: 'float64' }).numel, 10);
    assert.deepEqual(linspace(-1, 1, 5).toArray(), [-1, -0.5, 0, 0.5, 1]);
    assert.deepEqual(linspace(2, 3, 1).toArray(), [2]);
    const l = linspace(0, 1, 11, { dtype: 'float64' }).toArray();
    assert.equal(l.length, 11);
    assert.equal(l[0], 0);
    assert.equal(l[10], 1);
    assertClose(l, Array.from({ length: 11 }, (_, k) => k / 10), { atol: 1e-15, rtol: 0 });
  });
});

describe('Generator', () => {
  it('matches torch: manual_seed(42); randn(4) and rand(4)', () => {
    const g = new Generator(42);
    const r = g.randn([4]);
    assert.equal(r.dtype, 'float32');
    assert.deepEqual(r.toArray(), [0.33669036626815796, 0.12880940735340118, 0.23446236550807953, 0.23033303022384644]);
    // torch.manual_seed(42); torch.rand(4) → [0.8823, 0.9150, 0.3829, 0.9593]
    assertClose(new Generator(42).rand([4]), [0.8823, 0.915, 0.3829, 0.9593], { atol: 6e-5, rtol: 0 });
    // torch.manual_seed(0); torch.randn(3, dtype=torch.float64) → [1.5410, -0.2934, -2.1788]
    const d = new Generator(0).randn([3], { dtype: 'float64' });
    assert.equal(d.dtype, 'float64');
    assertClose(d, [1.541, -0.2934, -2.1788], { atol: 6e-5, rtol: 0 });
  });

  it('same seed → same numbers, different seeds → different numbers', () => {
    const a = new Generator(123).randn([64]).toArray();
    const b = new Generator(123).randn([64]).toArray();
    const c = new Generator(124).randn([64]).toArray();
    assert.deepEqual(a, b);
    assert.notDeepEqual(a, c);
    assert.ok(a.every((v, k) => v !== c[k]), 'different seeds should differ everywhere');
    // Successive draws continue the stream rather than repeating it.
    const g = new Generator(123);
    const first = g.randn([64]).toArray();
    const second = g.randn([64]).toArray();
    assert.deepEqual(first, a);
    assert.notDeepEqual(second, first);
  });

  it('state save / restore resumes the exact stream (including the cached normal sample)', () => {
    const g = new Generator(7);
    g.randn([1]); // an odd draw leaves the Box–Muller partner cached in the state
    g.randn([3], { dtype: 'float64' });
    const state = g.getState();
    assert.ok(state instanceof Uint8Array && state.length > 0);
    const draw = (gen: Generator) => [
      ...gen.randn([5]).toArray(),
      ...gen.randn([1], { dtype: 'float64' }).toArray(),
      ...gen.rand([3]).toArray(),
      ...gen.randint(0, 1000, [4]).toArray(),
      ...gen.randperm(6).toArray(),
      ...gen.randn([40]).toArray(),
    ];
    const expected = draw(g);
    g.setState(state);
    assert.deepEqual(draw(g), expected);
    // The state also moves the stream into a generator made with another seed.
    const other = new Generator(999);
    other.setState(state);
    assert.deepEqual(draw(other), expected);
    // And getState does not disturb the stream.
    const h = new Generator(5);
    const ref = new Generator(5);
    h.getState();
    assert.deepEqual(h.randn([8]).toArray(), ref.randn([8]).toArray());
  });

  it('rand, randint and randperm ranges', () => {
    const g = new Generator(3);
    const u = g.rand([1000]).toArray();
    assert.ok(u.every((v) => v >= 0 && v < 1));
    const mean = u.reduce((a, b) => a + b, 0) / u.length;
    assert.ok(Math.abs(mean - 0.5) < 0.05, `rand mean ${mean}`);
    const r = g.randint(-2, 3, [1000]);
    assert.equal(r.dtype, 'int64');
    const rv = r.toArray();
    assert.ok(rv.every((v) => Number.isInteger(v) && v >= -2 && v < 3));
    assert.deepEqual([...new Set(rv)].sort((a, b) => a - b), [-2, -1, 0, 1, 2]);
    const p = g.randperm(10).toArray();
    assert.deepEqual([...p].sort((a, b) => a - b), [0, 1, 2, 3, 4, 5, 6, 7, 8, 9]);
    const n = g.randn([20000]).toArray();
    const m = n.reduce((a, b) => a + b, 0) / n.length;
    const v = n.reduce((a, b) => a + (b - m) ** 2, 0) / n.length;
    assert.ok(Math.abs(m) < 0.03 && Math.abs(v - 1) < 0.05, `randn mean ${m} var ${v}`);
  });
});

describe('views and indexing', () => {
  const base = () => arange(0, 24).reshape(2, 3, 4); // x[i][j][k] = 12i + 4j + k

  it('reshape, view, flatten, squeeze/unsqueeze keep row-major order', () => {
    const x = base();
    assertShape(x, [2, 3, 4]);
    const r = x.reshape(4, -1);
    assertShape(r, [4, 6]);
    assert.deepEqual(r.toArray(), Array.from({ length: 24 }, (_, k) => k));
    assertShape(x.view(6, 4), [6, 4]);
    assertShape(x.flatten(1), [2, 12]);
    assertShape(x.unsqueeze(1), [2, 1, 3, 4]);
    assertShape(x.unsqueeze(1).squeeze(1), [2, 3, 4]);
  });

  it('permute and transpose', () => {
    const x = base();
    const p = x.permute(2, 0, 1); // p[k][i][j] = x[i][j][k]
    assertShape(p, [4, 2, 3]);
    const expected: number[] = [];
    for (let k = 0; k < 4; k++) for (let i = 0; i < 2; i++) for (let j = 0; j < 3; j++) expected.push(12 * i + 4 * j + k);
    assert.deepEqual(p.toArray(), expected);
    assert.equal(p.isContiguous, false);
    assert.deepEqual(p.contiguous().toArray(), expected);
    const t = tensor([[1, 2, 3], [4, 5, 6]]).transpose(0, 1);
    assertShape(t, [3, 2]);
    assert.deepEqual(t.toArray(), [1, 4, 2, 5, 3, 6]);
  });

  it('slice, narrow, select, flip', () => {
    const x = base();
    assert.deepEqual(x.slice(2, 1, 3).toArray(), [1, 2, 5, 6, 9, 10, 13, 14, 17, 18, 21, 22]);
    assert.deepEqual(x.slice(2, 0, undefined, 2).toArray(), [0, 2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 22]);
    assert.deepEqual(x.slice(1, -1).toArray(), [8, 9, 10, 11, 20, 21, 22, 23]); // negative start counts from the end
    assert.deepEqual(x.narrow(1, 1, 2).toArray(), [4, 5, 6, 7, 8, 9, 10, 11, 16, 17, 18, 19, 20, 21, 22, 23]);
    assert.deepEqual(x.select(0, 1).select(0, 2).toArray(), [20, 21, 22, 23]);
    assert.deepEqual(tensor([1, 2, 3]).flip(0).toArray(), [3, 2, 1]);
  });

  it('cat and stack', () => {
    const a = tensor([[1, 2], [3, 4]]);
    const b = tensor([[5, 6]]);
    const c0 = cat([a, b], 0);
    assertShape(c0, [3, 2]);
    assert.deepEqual(c0.toArray(), [1, 2, 3, 4, 5, 6]);
    const c1 = cat([a, tensor([[7], [8]])], 1);
    assertShape(c1, [2, 3]);
    assert.deepEqual(c1.toArray(), [1, 2, 7, 3, 4, 8]);
    const s0 = stack([a, a.mul(10)], 0);
    assertShape(s0, [2, 2, 2]);
    assert.deepEqual(s0.toArray(), [1, 2, 3, 4, 10, 20, 30, 40]);
    const s2 = stack([tensor([1, 2]), tensor([3, 4])], 1);
    assertShape(s2, [2, 2]);
    assert.deepEqual(s2.toArray(), [1, 3, 2, 4]);
  });

  it('expand, repeat, split, chunk', () => {
    const e = tensor([[1], [2]]).expand(2, 3);
    assertShape(e, [2, 3]);
    assert.deepEqual(e.toArray(), [1, 1, 1, 2, 2, 2]);
    assert.deepEqual(tensor([1, 2]).expand(2, 2).toArray(), [1, 2, 1, 2]);
    assert.deepEqual(tensor([1, 2]).repeat(2).toArray(), [1, 2, 1, 2]);
    const parts = arange(0, 5).split(2);
    assert.deepEqual(parts.map((p) => p.toArray()), [[0, 1], [2, 3], [4]]);
    const chunks = arange(0, 6).reshape(2, 3).chunk(3, 1);
    assert.deepEqual(chunks.map((c) => c.toArray()), [[0, 3], [1, 4], [2, 5]]);
  });

  it('gather, indexSelect, maskedFill, where', () => {
    const x = tensor([[10, 11, 12], [20, 21, 22]]);
    const g = x.gather(1, i64([[2, 0], [1, 1]]));
    assertShape(g, [2, 2]);
    assert.deepEqual(g.toArray(), [12, 10, 21, 21]);
    const g0 = x.gather(0, i64([[1, 0, 1]]));
    assert.deepEqual(g0.toArray(), [20, 11, 22]);
    assert.deepEqual(x.indexSelect(1, i64([2, 2, 0])).toArray(), [12, 12, 10, 22, 22, 20]);
    assert.deepEqual(x.indexSelect(0, i64([1])).toArray(), [20, 21, 22]);
    const mask = tensor([[true, false, true], [false, false, true]], undefined, { dtype: 'bool' });
    assert.deepEqual(x.maskedFill(mask, -1).toArray(), [-1, 11, -1, 20, 21, -1]);
    assert.deepEqual(where(mask, x, zeros([2, 3])).toArray(), [10, 0, 12, 0, 0, 22]);
  });
});

describe('element-wise math', () => {
  it('broadcasts binary ops', () => {
    const a = tensor([[1], [2]]); // [2,1]
    const b = tensor([10, 20, 30]); // [3]
    const s = a.add(b);
    assertShape(s, [2, 3]);
    assert.deepEqual(s.toArray(), [11, 21, 31, 12, 22, 32]);
    assert.deepEqual(a.sub(b).toArray(), [-9, -19, -29, -8, -18, -28]);
    assert.deepEqual(a.sub(b, 0.5).toArray(), [-4, -9, -14, -3, -8, -13]);
    assert.deepEqual(a.add(b, 2).toArray(), [21, 41, 61, 22, 42, 62]);
    assert.deepEqual(a.mul(b).toArray(), [10, 20, 30, 20, 40, 60]);
    assert.deepEqual(b.div(a).toArray(), [10, 20, 30, 5, 10, 15]);
    assert.deepEqual(a.pow(tensor([1, 2, 3])).toArray(), [1, 1, 1, 2, 4, 8]);
    assert.deepEqual(tensor([1, 5, 3]).maximum(tensor([4, 2, 3])).toArray(), [4, 5, 3]);
    assert.deepEqual(tensor([1, 5, 3]).minimum(tensor([4, 2, 3])).toArray(), [1, 2, 3]);
    // Shapes that do not broadcast are an error, not a silent result.
    assert.throws(() => tensor([1, 2]).add(tensor([1, 2, 3])), /add/);
  });

  it('scalars and unary ops', () => {
    const x = f64([1, 4, 9]);
    assert.deepEqual(x.add(1).toArray(), [2, 5, 10]);
    assert.deepEqual(x.mul(0.5).toArray(), [0.5, 2, 4.5]);
    assert.deepEqual(x.div(2).toArray(), [0.5, 2, 4.5]);
    assert.deepEqual(x.rsub(10).toArray(), [9, 6, 1]);
    assert.deepEqual(x.pow(0.5).toArray(), [1, 2, 3]);
    assert.deepEqual(x.sqrt().toArray(), [1, 2, 3]);
    assert.deepEqual(x.rsqrt().toArray(), [1, 0.5, 1 / 3]);
    assert.deepEqual(x.neg().toArray(), [-1, -4, -9]);
    assert.deepEqual(x.square().toArray(), [1, 16, 81]);
    assert.deepEqual(x.reciprocal().toArray(), [1, 0.25, 1 / 9]);
    assertClose(x.log(), [0, Math.log(4), Math.log(9)], { atol: 1e-15, rtol: 1e-15 });
    assertClose(f64([0, 1, -1]).exp(), [1, Math.E, 1 / Math.E], { atol: 1e-15, rtol: 1e-15 });
    assertClose(f64([0, 1, -2]).tanh(), [0, Math.tanh(1), Math.tanh(-2)], { atol: 1e-15, rtol: 1e-15 });
    assertClose(f64([0, 2]).sigmoid(), [0.5, 1 / (1 + Math.exp(-2))], { atol: 1e-15, rtol: 1e-15 });
    assertClose(f64([0.5, 2]).sin(), [Math.sin(0.5), Math.sin(2)], { atol: 1e-15, rtol: 1e-15 });
    assertClose(f64([0.5, 2]).cos(), [Math.cos(0.5), Math.cos(2)], { atol: 1e-15, rtol: 1e-15 });
    assert.deepEqual(f64([-2.5, -0.4, 0.4, 2.5, 3.5]).round().toArray(), [-2, -0, 0, 2, 4]); // half to even
    assert.deepEqual(f64([-2.5, 2.5]).floor().toArray(), [-3, 2]);
    assert.deepEqual(f64([-2.5, 2.5]).ceil().toArray(), [-2, 3]);
    assert.deepEqual(f64([-2.5, 2.5]).trunc().toArray(), [-2, 2]);
    assert.deepEqual(f64([-2.5, 0, 2.5]).sign().toArray(), [-1, 0, 1]);
    assert.deepEqual(f64([-2.5, 2.5]).abs().toArray(), [2.5, 2.5]);
    assert.deepEqual(f64([-3, 0.5, 3]).relu().toArray(), [0, 0.5, 3]);
    assert.deepEqual(f64([-3, 0.5, 3]).clamp(-1, 1).toArray(), [-1, 0.5, 1]);
    assert.deepEqual(f64([-3, 0.5, 3]).clamp(0).toArray(), [0, 0.5, 3]);
    assert.deepEqual(f64([7, -7]).fmod(3).toArray(), [1, -1]);
    assert.deepEqual(f64([NaN, Infinity, -Infinity, 1]).nanToNum(0, 9, -9).toArray(), [0, 9, -9, 1]);
    assert.equal(f64([1, Infinity]).allFinite(), false);
    assert.equal(f64([1, 2]).allFinite(), true);
  });

  it('comparisons give bool tensors', () => {
    const a = tensor([1, 2, 3]);
    const gt = a.gt(2);
    assert.equal(gt.dtype, 'bool');
    assert.deepEqual(gt.toArray(), [0, 0, 1]);
    assert.deepEqual(a.ge(2).toArray(), [0, 1, 1]);
    assert.deepEqual(a.lt(tensor([2, 2, 2])).toArray(), [1, 0, 0]);
    assert.deepEqual(a.le(2).toArray(), [1, 1, 0]);
    assert.deepEqual(a.eq(2).toArray(), [0, 1, 0]);
    assert.deepEqual(a.ne(2).toArray(), [1, 0, 1]);
    assert.deepEqual(a.gt(1).logicalAnd(a.lt(3)).toArray(), [0, 1, 0]);
    assert.deepEqual(a.gt(1).logicalNot().toArray(), [1, 0, 0]);
    assert.deepEqual(f64([NaN, 1]).isnan().toArray(), [1, 0]);
    assert.deepEqual(f64([NaN, 1, -Infinity]).isfinite().toArray(), [0, 1, 0]);
  });
});

describe('reductions', () => {
  const x = () => f64([[1, 2, 3], [4, 5, 7]]);

  it('sum and mean over all and over dims, with keepdim', () => {
    assert.equal(x().sum().item(), 22);
    assertShape(x().sum(), []);
    assert.deepEqual(x().sum(0).toArray(), [5, 7, 10]);
    assert.deepEqual(x().sum(1).toArray(), [6, 16]);
    assertShape(x().sum(1, true), [2, 1]);
    assert.deepEqual(x().sum([0, 1]).toArray(), [22]);
    assert.equal(x().mean().item(), 22 / 6);
    assert.deepEqual(x().mean(0).toArray(), [2.5, 3.5, 5]);
    assert.deepEqual(x().mean(-1).toArray(), [2, 16 / 3]);
    assertShape(x().mean([0], true), [1, 3]);
  });

  it('var (unbiased by default) and std', () => {
    const v = f64([1, 2, 3, 4]);
    assertClose(v.var(), [5 / 3], { atol: 1e-15 });
    assertClose(v.var([], false), [1.25], { atol: 1e-15 });
    assertClose(v.std(), [Math.sqrt(5 / 3)], { atol: 1e-15 });
    // Row variances of [[1,2,3],[4,5,7]]: means 2 and 16/3.
    assertClose(x().var(1), [1, ((4 - 16 / 3) ** 2 + (5 - 16 / 3) ** 2 + (7 - 16 / 3) ** 2) / 2], { atol: 1e-14 });
    assertClose(x().var(0, false), [2.25, 2.25, 4], { atol: 1e-14 });
    assertShape(x().var(1, true, true), [2, 1]);
  });

  it('amax, amin, argmax, prod, cumsum, logsumexp, norm, sort', () => {
    assert.deepEqual(x().amax().toArray(), [7]);
    assert.deepEqual(x().amax(0).toArray(), [4, 5, 7]);
    assert.deepEqual(x().amin(1).toArray(), [1, 4]);
    assert.deepEqual(x().argmax(1).toArray(), [2, 2]);
    assert.deepEqual(f64([3, 9, 1]).argmax(0).toArray(), [1]);
    assert.equal(x().prod().item(), 840);
    assert.deepEqual(x().cumsum(1).toArray(), [1, 3, 6, 4, 9, 16]);
    assertClose(f64([1, 2, 3]).logsumexp(0), [Math.log(Math.exp(1) + Math.exp(2) + Math.exp(3))], { atol: 1e-14 });
    assertClose(f64([3, 4]).norm(), [5], { atol: 1e-15 });
    const { values, indices } = f64([3, 1, 2]).sort();
    assert.deepEqual(values.toArray(), [1, 2, 3]);
    assert.deepEqual(indices.toArray(), [1, 2, 0]);
    assert.deepEqual(f64([3, 1, 2]).sort(0, true).values.toArray(), [3, 2, 1]);
  });
});

describe('linear algebra', () => {
  it('matmul, mm, bmm', () => {
    const a = f64([[1, 2], [3, 4]]);
    const b = f64([[5, 6], [7, 8]]);
    assert.deepEqual(a.matmul(b).toArray(), [19, 22, 43, 50]);
    assert.deepEqual(a.mm(b).toArray(), [19, 22, 43, 50]);
    // matrix · vector, and batch broadcasting
    assert.deepEqual(a.matmul(f64([1, -1])).toArray(), [-1, -1]);
    const batch = stack([a, b]); // [2,2,2]
    const prod = batch.matmul(f64([[1, 0], [0, 2]]));
    assertShape(prod, [2, 2, 2]);
    assert.deepEqual(prod.toArray(), [1, 4, 3, 8, 5, 12, 7, 16]);
    const bm = batch.bmm(stack([b, a]));
    assert.deepEqual(bm.toArray(), [19, 22, 43, 50, 23, 34, 31, 46]);
    // 2×3 · 3×1
    assert.deepEqual(f64([[1, 2, 3], [4, 5, 6]]).matmul(f64([[1], [0], [-1]])).toArray(), [-2, -2]);
  });

  it('linear = x·wᵀ + b', () => {
    const x = f64([[1, 2, 3], [-1, 0, 1]]);
    const w = f64([[1, 0, 0], [0, 1, 1], [2, -1, 0.5]]);
    const b = f64([0.5, -1, 0]);
    const y = F.linear(x, w, b);
    assertShape(y, [2, 3]);
    assert.deepEqual(y.toArray(), [1.5, 4, 1.5, -0.5, 0, -1.5]);
    assert.deepEqual(F.linear(x, w).toArray(), [1, 5, 1.5, -1, 1, -1.5]);
  });
});

describe('nn functions', () => {
  it('conv2d on a hand-computed case (padding 1)', () => {
    // [[1,2],[3,4]] ⊛ ones(2×2), zero padding 1 → every 2×2 window sum.
    const x = f64([[[[1, 2], [3, 4]]]]);
    const w = ones([1, 1, 2, 2], { dtype: 'float64' });
    const y = F.conv2d(x, w, f64([0.5]), { padding: 1 });
    assertShape(y, [1, 1, 3, 3]);
    assert.deepEqual(y.toArray(), [1.5, 3.5, 2.5, 4.5, 10.5, 6.5, 3.5, 7.5, 4.5]);
    // A non-symmetric kernel shows conv2d is cross-correlation (no flip): w = [[1,0],[0,-1]].
    const w2 = f64([[[[1, 0], [0, -1]]]]);
    assert.deepEqual(F.conv2d(x, w2).toArray(), [1 - 4]);
  });

  it('conv2d with groups on a hand-computed case', () => {
    // Two channels, groups=2: channel 0 is convolved with its own 1×1 kernel (×2),
    // channel 1 with another (×-1); each output sees only its group's input.
    const x = f64([[[[1, 2], [3, 4]], [[5, 6], [7, 8]]]]);
    const w = f64([[[[2]]], [[[-1]]]]); // [2, 1, 1, 1]
    const y = F.conv2d(x, w, null, { groups: 2 });
    assert.deepEqual(y.toArray(), [2, 4, 6, 8, -5, -6, -7, -8]);
    // groups=1 with the same weights reshaped to [1,2,1,1] mixes both channels.
    const y1 = F.conv2d(x, w.reshape(1, 2, 1, 1));
    assert.deepEqual(y1.toArray(), [2 - 5, 4 - 6, 6 - 7, 8 - 8]);
  });

  it('conv2d with groups, stride, padding and dilation matches a reference loop', () => {
    const xs = [2, 4, 7, 6];
    const ws = [6, 2, 3, 3];
    const xd = pseudoRandom(xs.reduce((a, b) => a * b), 1);
    const wd = pseudoRandom(ws.reduce((a, b) => a * b), 2);
    const bd = pseudoRandom(6, 3);
    for (const opt of [
      { stride: [1, 1], padding: [1, 1], dilation: [1, 1], groups: 2 },
      { stride: [2, 1], padding: [0, 2], dilation: [1, 1], groups: 2 },
      { stride: [1, 2], padding: [2, 1], dilation: [2, 1], groups: 2 },
    ]) {
      const ref = referenceConv2d(xd, xs, wd, ws, bd, opt);
      const y = F.conv2d(tensor(xd, xs), tensor(wd, ws), tensor(bd), {
        stride: opt.stride as [number, number], padding: opt.padding as [number, number], dilation: opt.dilation as [number, number], groups: opt.groups,
      });
      assertShape(y, ref.shape, JSON.stringify(opt));
      assertClose(y, ref.data, { atol: 1e-12, rtol: 1e-12, message: JSON.stringify(opt) });
    }
    // float32 gives the same within float32 rounding.
    const ref = referenceConv2d(xd, xs, wd, ws, bd, { padding: [1, 1], groups: 2 });
    const y32 = F.conv2d(tensor(Float32Array.from(xd), xs), tensor(Float32Array.from(wd), ws), tensor(Float32Array.from(bd)), { padding: 1, groups: 2 });
    assertClose(y32, ref.data, { atol: 1e-5, rtol: 1e-5 });
  });

  it('convTranspose2d: hand-computed and against a reference loop', () => {
    const x = f64([[[[1, 2], [3, 4]]]]);
    const w = ones([1, 1, 2, 2], { dtype: 'float64' });
    assert.deepEqual(F.convTranspose2d(x, w).toArray(), [1, 3, 2, 4, 10, 6, 3, 7, 4]);
    // Stride 2 scatters each input into its own 2×2 block.
    assert.deepEqual(F.convTranspose2d(x, w, null, { stride: 2 }).toArray(), [1, 1, 2, 2, 1, 1, 2, 2, 3, 3, 4, 4, 3, 3, 4, 4]);
    const xs = [2, 4, 3, 4];
    const ws = [4, 3, 3, 3]; // groups 2 → 6 output channels
    const xd = pseudoRandom(xs.reduce((a, b) => a * b), 4);
    const wd = pseudoRandom(ws.reduce((a, b) => a * b), 5);
    const bd = pseudoRandom(6, 6);
    const opt = { stride: [2, 2], padding: [1, 1], outputPadding: [1, 0], groups: 2 };
    const ref = referenceConvTranspose2d(xd, xs, wd, ws, bd, opt);
    const y = F.convTranspose2d(tensor(xd, xs), tensor(wd, ws), tensor(bd), { stride: 2, padding: 1, outputPadding: [1, 0], groups: 2 });
    assertShape(y, ref.shape);
    assertClose(y, ref.data, { atol: 1e-12, rtol: 1e-12 });
  });

  it('groupNorm normalises each group over channels × space', () => {
    const data = [1, 2, 3, 4, 10, 20, 30, 60]; // [1, 4, 1, 2], groups 2 → {1,2,3,4}, {10,20,30,60}
    const x = tensor(data, [1, 4, 1, 2], { dtype: 'float64' });
    const eps = 1e-5;
    const expected: number[] = [];
    for (const g of [data.slice(0, 4), data.slice(4)]) {
      const m = g.reduce((a, b) => a + b) / 4;
      const v = g.reduce((a, b) => a + (b - m) ** 2, 0) / 4; // biased, as GroupNorm
      expected.push(...g.map((e) => (e - m) / Math.sqrt(v + eps)));
    }
    assertClose(F.groupNorm(x, 2), expected, { atol: 1e-12 });
    const w = f64([1, 2, 3, 4]);
    const b = f64([0, 1, 0, -1]);
    const affine = expected.map((e, k) => e * [1, 2, 3, 4][Math.floor(k / 2)]! + [0, 1, 0, -1][Math.floor(k / 2)]!);
    assertClose(F.groupNorm(x, 2, w, b, eps), affine, { atol: 1e-12 });
    // groups = channels normalises each channel alone.
    const perChannel = F.groupNorm(x, 4).toArray();
    assertClose(perChannel, [-1, 1, -1, 1, -1, 1, -1, 1], { atol: 1e-3 });
  });

  it('silu, softmax, logSoftmax, gelu, leakyRelu', () => {
    const x = f64([-2, 0, 1.5]);
    assertClose(F.silu(x), [-2 / (1 + Math.exp(2)), 0, 1.5 / (1 + Math.exp(-1.5))], { atol: 1e-15 });
    const z = Math.exp(1) + Math.exp(2) + Math.exp(3);
    assertClose(F.softmax(f64([1, 2, 3]), 0), [Math.exp(1) / z, Math.exp(2) / z, Math.exp(3) / z], { atol: 1e-15 });
    // Along dim 1 of a matrix, each row sums to one; large inputs do not overflow.
    const s = F.softmax(f64([[1000, 1000], [0, Math.log(3)]]), 1);
    assertClose(s, [0.5, 0.5, 0.25, 0.75], { atol: 1e-15 });
    assertClose(F.softmax(f64([[1, 3], [2, 4]]), 0), [1 / (1 + Math.E ** 1), 1 / (1 + Math.E ** 1), Math.E / (1 + Math.E), Math.E / (1 + Math.E)], { atol: 1e-15 });
    assertClose(F.logSoftmax(f64([1, 2, 3]), 0), [1 - Math.log(z), 2 - Math.log(z), 3 - Math.log(z)], { atol: 1e-14 });
    const erf1 = 0.8427007929497149; // erf(1/√2 · √2) = erf(1)
    assertClose(F.gelu(f64([Math.SQRT2])), [Math.SQRT2 * 0.5 * (1 + erf1)], { atol: 1e-12 });
    assert.deepEqual(F.leakyRelu(f64([-2, 3]), 0.1).toArray(), [-0.2, 3]);
  });

  it('dropout: p=0 is the identity, the mask is reproducible, kept values are scaled by 1/(1−p)', () => {
    const x = new Generator(1).randn([4000]).add(3); // away from zero so dropped entries are recognisable
    const xv = x.toArray();
    assert.deepEqual(F.dropout(x, 0, new Generator(0)).toArray(), xv);

    const p = 0.3;
    const a = F.dropout(x, p, new Generator(11)).toArray();
    const b = F.dropout(x, p, new Generator(11)).toArray();
    const c = F.dropout(x, p, new Generator(12)).toArray();
    assert.deepEqual(a, b, 'same generator seed, same mask');
    assert.notDeepEqual(a, c, 'another seed, another mask');
    let kept = 0;
    for (let i = 0; i < a.length; i++) {
      if (a[i] === 0) continue;
      kept++;
      assertClose([a[i]!], [xv[i]! / (1 - p)], { atol: 0, rtol: 1e-6, message: `kept element ${i}` });
    }
    const fraction = kept / a.length;
    assert.ok(Math.abs(fraction - (1 - p)) < 0.03, `fraction kept ${fraction}, expected ≈ ${1 - p}`);
    // The mean is preserved in expectation.
    const meanIn = xv.reduce((s, v) => s + v, 0) / xv.length;
    const meanOut = a.reduce((s, v) => s + v, 0) / a.length;
    assert.ok(Math.abs(meanOut - meanIn) / meanIn < 0.05);
    // Gradients flow through kept elements only, with the same scale.
    const leaf = tensor([1, 2, 3, 4, 5, 6, 7, 8]).requiresGrad_();
    const out = F.dropout(leaf, 0.5, new Generator(3));
    out.sum().backward();
    const ov = out.toArray();
    assert.deepEqual(leaf.grad!.toArray(), ov.map((v) => (v === 0 ? 0 : 2)));
    assert.throws(() => F.dropout(x, 1, new Generator(0)), /dropout probability/);
  });

  it('interpolate: nearest and bilinear (align_corners both ways)', () => {
    const x = f64([[[[0, 1], [2, 3]]]]);
    const n = F.interpolate(x, [4, 4], 'nearest');
    assertShape(n, [1, 1, 4, 4]);
    assert.deepEqual(n.toArray(), [0, 0, 1, 1, 0, 0, 1, 1, 2, 2, 3, 3, 2, 2, 3, 3]);
    assert.deepEqual(F.interpolate(n, [2, 2], 'nearest').toArray(), [0, 1, 2, 3]);
    const ac = F.interpolate(x, [3, 3], 'bilinear', true);
    assert.deepEqual(ac.toArray(), [0, 0.5, 1, 1, 1.5, 2, 2, 2.5, 3]);
    // align_corners=false: source = (dst + 0.5)·(in/out) − 0.5, clamped at the edges.
    const row = F.interpolate(f64([[[[0, 1]]]]), [1, 4], 'bilinear', false);
    assert.deepEqual(row.toArray(), [0, 0.25, 0.75, 1]);
  });

  it('avgPool2d, maxPool2d, adaptiveAvgPool2d, pad', () => {
    const x = arange(0, 16, 1, { dtype: 'float64' }).reshape(1, 1, 4, 4);
    assert.deepEqual(F.avgPool2d(x, 2).toArray(), [2.5, 4.5, 10.5, 12.5]);
    assert.deepEqual(F.maxPool2d(x, 2).toArray(), [5, 7, 13, 15]);
    assert.deepEqual(F.maxPool2d(x, 3, 1).toArray(), [10, 11, 14, 15]);
    // Padding: count_include_pad divides by the full window, the other way by the real elements.
    const one = ones([1, 1, 2, 2], { dtype: 'float64' });
    assert.deepEqual(F.avgPool2d(one, 2, 2, 1, true).toArray(), [0.25, 0.25, 0.25, 0.25]);
    assert.deepEqual(F.avgPool2d(one, 2, 2, 1, false).toArray(), [1, 1, 1, 1]);
    assert.deepEqual(F.adaptiveAvgPool2d(x, 1).toArray(), [7.5]);
    assert.deepEqual(F.pad(f64([[[[1, 2], [3, 4]]]]), [1, 0, 0, 1], 'constant', 9).toArray(), [9, 1, 2, 9, 3, 4, 9, 9, 9]);
    assert.deepEqual(F.pad(f64([[[[1, 2, 3]]]]), [2, 1, 0, 0], 'reflect').toArray(), [3, 2, 1, 2, 3, 2]);
    assert.deepEqual(F.pad(f64([[[[1, 2, 3]]]]), [2, 1, 0, 0], 'replicate').toArray(), [1, 1, 1, 2, 3, 3]);
  });
});

describe('in-place ops', () => {
  it('lerp_, copy_, mul_, add_, addcmul_, addcdiv_ change the tensor itself', () => {
    const a = f64([1, 2, 4]);
    const view = a.reshape(3); // shares storage: in-place updates must show through it
    assert.equal(a.lerp_(f64([3, 2, 0]), 0.25), a);
    assert.deepEqual(a.toArray(), [1.5, 2, 3]);
    assert.deepEqual(view.toArray(), [1.5, 2, 3]);
    a.lerp_(f64([0, 0, 0]), f64([1, 0, 0.5]));
    assert.deepEqual(a.toArray(), [0, 2, 1.5]);
    a.copy_(f64([7, 8, 9]));
    assert.deepEqual(view.toArray(), [7, 8, 9]);
    a.copy_(tensor([1, 2, 3])); // converts the source dtype
    assert.equal(a.dtype, 'float64');
    a.copy_(f64([5])); // broadcasts
    assert.deepEqual(a.toArray(), [5, 5, 5]);
    a.copy_(f64([1, 2, 3]));
    a.mul_(2);
    assert.deepEqual(a.toArray(), [2, 4, 6]);
    a.mul_(f64([1, 0.5, -1]));
    assert.deepEqual(a.toArray(), [2, 2, -6]);
    a.add_(1);
    assert.deepEqual(a.toArray(), [3, 3, -5]);
    a.add_(f64([1, 2, 3]), -2);
    assert.deepEqual(a.toArray(), [1, -1, -11]);
    a.addcmul_(f64([1, 2, 3]), f64([4, 5, 6]), 0.5);
    assert.deepEqual(a.toArray(), [3, 4, -2]);
    a.addcdiv_(f64([1, 2, 3]), f64([4, 8, 2]), 2);
    assert.deepEqual(a.toArray(), [3.5, 4.5, 1]);
    assert.deepEqual(view.toArray(), [3.5, 4.5, 1]);
    a.zero_();
    assert.deepEqual(a.toArray(), [0, 0, 0]);
    a.fill_(2.5);
    assert.deepEqual(view.toArray(), [2.5, 2.5, 2.5]);
    a.clamp_(undefined, 1);
    assert.deepEqual(a.toArray(), [1, 1, 1]);
    const n = f64([NaN, -Infinity]);
    n.nanToNum_(0, 1, -1);
    assert.deepEqual(n.toArray(), [0, -1]);
  });
});

describe('reading data back', () => {
  it('toArray, data and item', () => {
    const t = tensor([[1.5, 2], [3, 4]]);
    assert.ok(t.data() instanceof Float32Array);
    assert.deepEqual(t.toArray(), [1.5, 2, 3, 4]);
    assert.ok(tensor([1], undefined, { dtype: 'float64' }).data() instanceof Float64Array);
    assert.ok(i64([1]).data() instanceof BigInt64Array);
    assert.ok(tensor([1], undefined, { dtype: 'bool' }).data() instanceof Uint8Array);
    assert.ok(tensor([1], undefined, { dtype: 'int32' }).data() instanceof Int32Array);
    assert.deepEqual(i64([-7, 9]).toArray(), [-7, 9]);
    assert.equal(t.sum().item(), 10.5);
    assert.equal(tensor([[42]]).item(), 42);
    assert.equal(i64([-7]).item(), -7);
    assert.equal(tensor([true], undefined, { dtype: 'bool' }).item(), 1);
    // data() of a non-contiguous view is in logical (row-major) order.
    assert.deepEqual(t.transpose(0, 1).toArray(), [1.5, 3, 2, 4]);
    // data() returns a copy: changing it does not change the tensor.
    const d = t.data();
    d[0] = 100;
    assert.equal(t.toArray()[0], 1.5);
    // metadata
    assert.equal(t.ndim, 2);
    assert.equal(t.numel, 4);
    assert.equal(t.device, 'cpu');
    assert.match(t.toString(), /\[2, 2\] float32/);
  });
});
