// Autograd through the binding: requiring grad, backward, accumulation,
// zeroGrad, the no-grad scope and the NaN/Inf gradient scrub.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { isGradEnabled, noGrad, ones, sanitizeGradients, tensor, zeroGrad } from '../src/tensor/index.js';

const f64 = (data: number[]) => tensor(data, undefined, { dtype: 'float64' });

describe('autograd', () => {
  it('requiresGrad, leaves and backward on a scalar', () => {
    const x = f64([1, 2, 3]);
    assert.equal(x.requiresGrad, false);
    assert.equal(x.requiresGrad_(), x);
    assert.equal(x.requiresGrad, true);
    assert.equal(x.isLeaf, true);
    assert.equal(x.grad, null, 'no gradient before backward');
    const y = x.mul(x).mul(f64([1, 10, 100])).sum(); // Σ c·x²
    assert.equal(y.requiresGrad, true);
    assert.equal(y.isLeaf, false);
    y.backward();
    assert.deepEqual(x.grad!.toArray(), [2, 40, 600]); // 2·c·x
    // A tensor that does not require grad gets no gradient.
    const c = f64([1, 1, 1]);
    const z = x.mul(c).sum();
    zeroGrad([x]);
    z.backward();
    assert.equal(c.grad, null);
    assert.deepEqual(x.grad!.toArray(), [1, 1, 1]);
    // requiresGrad_(false) turns it off again.
    assert.equal(f64([1]).requiresGrad_(true).requiresGrad_(false).requiresGrad, false);
  });

  it('backward on a non-scalar needs an explicit gradient', () => {
    const x = f64([1, 2, 3]).requiresGrad_();
    const y = x.mul(2);
    assert.throws(() => y.backward(), (e: Error) => e instanceof Error && /scalar/.test(e.message) && /backward/.test(e.message));
    // With a gradient it works (a vector-Jacobian product).
    const y2 = x.mul(x);
    y2.backward(f64([1, 0.5, -1]));
    assert.deepEqual(x.grad!.toArray(), [2, 2, -6]);
    // backward on something that does not require grad is an error too.
    assert.throws(() => f64([1]).sum().backward(), /does not require grad/);
  });

  it('gradients accumulate across backward calls until zeroGrad sets them to none', () => {
    const w = f64([0.5, -1]).requiresGrad_();
    const loss = () => w.mul(f64([3, 4])).sum();
    loss().backward();
    assert.deepEqual(w.grad!.toArray(), [3, 4]);
    loss().backward();
    assert.deepEqual(w.grad!.toArray(), [6, 8], 'second backward adds to the first');
    w.mul(w).sum().backward();
    assert.deepEqual(w.grad!.toArray(), [7, 6]);
    const other = f64([1]).requiresGrad_();
    zeroGrad([w, other]); // `other` never had a gradient: no error
    assert.equal(w.grad, null, 'zeroGrad sets the gradient to none, not to zeros');
    assert.equal(other.grad, null);
    loss().backward();
    assert.deepEqual(w.grad!.toArray(), [3, 4], 'after zeroGrad the gradient starts afresh');
  });

  it('a gradient handle taken before zeroGrad keeps its values', () => {
    const w = f64([1, 2]).requiresGrad_();
    w.sum().backward();
    const g = w.grad!;
    zeroGrad([w]);
    assert.deepEqual(g.toArray(), [1, 1]);
  });

  it('noGrad: results do not require grad; nested scopes restore the previous mode', () => {
    const x = f64([1, 2]).requiresGrad_();
    assert.equal(isGradEnabled(), true);
    const inside = noGrad(() => {
      assert.equal(isGradEnabled(), false);
      const r = x.mul(3);
      assert.equal(r.requiresGrad, false);
      const nested = noGrad(() => x.add(1));
      assert.equal(isGradEnabled(), false, 'inner noGrad leaves the outer one in force');
      assert.equal(nested.requiresGrad, false);
      return r;
    });
    assert.equal(isGradEnabled(), true, 'grad mode restored after noGrad');
    assert.equal(inside.requiresGrad, false);
    assert.throws(() => inside.sum().backward(), /does not require grad/);
    assert.equal(x.mul(3).requiresGrad, true);
    // The mode is restored even when the body throws.
    assert.throws(() =>
      noGrad(() => {
        throw new Error('boom');
      }),
    /boom/);
    assert.equal(isGradEnabled(), true);
    // And returns its value.
    assert.equal(noGrad(() => 42), 42);
  });

  it('in-place updates of parameters are allowed inside noGrad only', () => {
    const p = f64([1, 2]).requiresGrad_();
    assert.throws(() => p.add_(1), /in-place/);
    noGrad(() => p.add_(1));
    assert.deepEqual(p.toArray(), [2, 3]);
    assert.equal(p.requiresGrad, true);
  });

  it('detach cuts the graph; retainGrad keeps an intermediate gradient', () => {
    const x = f64([2]).requiresGrad_();
    const y = x.mul(x).retainGrad();
    const z = y.mul(3).add(x.mul(x).detach().mul(100));
    z.sum().backward();
    assert.deepEqual(x.grad!.toArray(), [12]); // d(3x²)/dx, the detached term contributes nothing
    assert.deepEqual(y.grad!.toArray(), [3]);
  });

  it('sanitizeGradients: NaN → 0, +Inf → 1e5, −Inf → −1e5, returns the number of affected parameters', () => {
    const a = f64([1, 2, 3, 4]).requiresGrad_();
    const b = f64([1, 2]).requiresGrad_();
    const c = f64([5]).requiresGrad_();
    const none = f64([1]).requiresGrad_(); // no gradient at all: skipped
    a.mul(f64([NaN, Infinity, -Infinity, 0.5])).sum().add(b.mul(f64([1.5, -2])).sum()).add(c.mul(f64([NaN])).sum()).backward();
    assert.equal(sanitizeGradients([a, b, c, none]), 2);
    assert.deepEqual(a.grad!.toArray(), [0, 1e5, -1e5, 0.5]);
    assert.deepEqual(b.grad!.toArray(), [1.5, -2], 'finite gradients are untouched');
    assert.deepEqual(c.grad!.toArray(), [0]);
    assert.equal(none.grad, null);
    assert.equal(sanitizeGradients([a, b, c, none]), 0, 'nothing left to fix');
    // Custom replacement values, and float32 parameters.
    const d = ones([3]).requiresGrad_();
    d.mul(tensor([NaN, Infinity, -Infinity])).sum().backward();
    assert.equal(sanitizeGradients([d], 7, 8, -9), 1);
    assert.deepEqual(d.grad!.toArray(), [7, 8, -9]);
  });

  it('sanitizeGradients: finite gradients whose sum overflows are not counted or changed', () => {
    const big = ones([4]).requiresGrad_(); // float32: 4 × 3e38 overflows the sum, not the values
    big.mul(tensor([3e38, 3e38, 3e38, 3e38])).sum().backward();
    const before = big.grad!.toArray();
    assert.equal(sanitizeGradients([big]), 0);
    assert.deepEqual(big.grad!.toArray(), before);
  });
});
