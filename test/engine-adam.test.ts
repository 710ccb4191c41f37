// Adam against torch.optim.Adam's formula computed by hand in float64, the
// optimizer state's exact resume through a safetensors file, and the EMA update.
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { noGrad, tensor, zeroGrad, type Tensor } from '../src/tensor/index.js';
import { Adam, emaUpdate } from '../src/optim/adam.js';
import { readSafetensors, writeSafetensors } from '../src/io/safetensors.js';
import { assertClose } from './helpers/numeric.js';

const f64 = (data: number[]) => tensor(data, undefined, { dtype: 'float64' });
const bytes = (t: Tensor) => Buffer.from(t.data().buffer);

/** torch.optim.Adam (no amsgrad) for one parameter, in plain float64. */
class ReferenceAdam {
  m: number[];
  v: number[];
  step = 0;
  constructor(n: number, private readonly o: { beta1: number; beta2: number; eps: number; weightDecay: number }) {
    this.m = new Array<number>(n).fill(0);
    this.v = new Array<number>(n).fill(0);
  }
  update(p: number[], grad: number[], lr: number): number[] {
    const { beta1, beta2, eps, weightDecay } = this.o;
    this.step += 1;
    const bc1 = 1 - beta1 ** this.step;
    const bc2 = 1 - beta2 ** this.step;
    return p.map((pi, i) => {
      const g = grad[i]! + weightDecay * pi;
      this.m[i] = beta1 * this.m[i]! + (1 - beta1) * g;
      this.v[i] = beta2 * this.v[i]! + (1 - beta2) * g * g;
      const denom = Math.sqrt(this.v[i]!) / Math.sqrt(bc2) + eps;
      return pi - (lr / bc1) * (this.m[i]! / denom);
    });
  }
}

// Loss Σ c·p² + Σ d·p → gradient 2·c·p + d (depends on p, so a wrong update compounds).
const C = [0.5, 2, 0.01, 1, 3];
const Dv = [0.1, -0.3, 0.002, 0, 1e-4];
const lossOf = (p: Tensor) => p.mul(p).mul(f64(C)).sum().add(p.mul(f64(Dv)).sum());
const gradOf = (p: number[]) => p.map((x, i) => 2 * C[i]! * x + Dv[i]!);

describe('Adam', () => {
  for (const weightDecay of [0, 0.1]) {
    it(`matches the bias-corrected formula over 5 steps with a changing lr (weightDecay ${weightDecay})`, () => {
      const options = { beta1: 0.8, beta2: 0.95, eps: 1e-3, weightDecay }; // a large eps makes its placement visible
      const start = [0.3, -1.2, 2, 0.7, -0.05];
      const p = f64(start).requiresGrad_();
      const frozen = f64([9, 9]).requiresGrad_(); // never gets a gradient: must not move
      const adam = new Adam([p, frozen], { lr: 0.1, ...options });
      const ref = new ReferenceAdam(start.length, options);
      let expected = [...start];
      const lrs = [0.1, 0.05, 0.2, 0.01, 0.1];
      lrs.forEach((lr, k) => {
        zeroGrad([p, frozen]);
        lossOf(p).backward();
        assertClose(p.grad!, gradOf(expected), { atol: 1e-15, rtol: 1e-14, message: `grad at step ${k + 1}` });
        if (k % 2 === 0) adam.step(lr);
        else {
          adam.lr = lr; // the other way to change it
          adam.step();
        }
        expected = ref.update(expected, gradOf(expected), lr);
        assertClose(p, expected, { atol: 1e-15, rtol: 1e-13, message: `param after step ${k + 1}` });
        assertClose(adam.state().expAvg[0]!, ref.m, { atol: 1e-16, rtol: 1e-13, message: `exp_avg after step ${k + 1}` });
        assertClose(adam.state().expAvgSq[0]!, ref.v, { atol: 1e-18, rtol: 1e-13, message: `exp_avg_sq after step ${k + 1}` });
      });
      assert.equal(adam.stepCount, 5);
      assert.equal(adam.state().step, 5);
      assert.deepEqual(frozen.toArray(), [9, 9]);
      // The update must differ from one with eps inside the bias correction, i.e. eps placement is tested.
      const misplaced = (() => {
        let q = [...start];
        const m = new Array<number>(5).fill(0);
        const v = new Array<number>(5).fill(0);
        lrs.forEach((lr, k) => {
          const g = gradOf(q).map((gi, i) => gi + weightDecay * q[i]!);
          const t = k + 1;
          q = q.map((qi, i) => {
            m[i] = 0.8 * m[i]! + 0.2 * g[i]!;
            v[i] = 0.95 * v[i]! + 0.05 * g[i]! ** 2;
            return qi - (lr / (1 - 0.8 ** t)) * (m[i]! / ((Math.sqrt(v[i]!) + 1e-3) / Math.sqrt(1 - 0.95 ** t)));
          });
        });
        return q;
      })();
      assert.ok(misplaced.some((q, i) => Math.abs(q - expected[i]!) > 1e-6), 'test data cannot tell eps placements apart');
    });
  }

  it('float32 parameters follow the same formula (to float32 precision)', () => {
    const start = [0.3, -1.2, 2, 0.7, -0.05];
    const p = tensor(start).requiresGrad_();
    const adam = new Adam([p], { lr: 0.05 });
    const ref = new ReferenceAdam(5, { beta1: 0.9, beta2: 0.999, eps: 1e-8, weightDecay: 0 });
    let expected = [...start];
    for (let k = 0; k < 5; k++) {
      zeroGrad([p]);
      p.mul(p).mul(tensor(C)).sum().add(p.mul(tensor(Dv)).sum()).backward();
      adam.step();
      expected = ref.update(expected, gradOf(expected), 0.05);
    }
    assertClose(p, expected, { atol: 1e-6, rtol: 1e-5 });
  });

  it('rejects invalid hyper-parameters and mismatched state', () => {
    const p = f64([1]).requiresGrad_();
    assert.throws(() => new Adam([p], { lr: -1 }), /lr/);
    assert.throws(() => new Adam([p], { beta1: 1 }), /beta1/);
    assert.throws(() => new Adam([p], { beta2: -0.1 }), /beta2/);
    const adam = new Adam([p]);
    assert.throws(() => adam.loadState({ step: 1, expAvg: [], expAvgSq: [] }), /loadState/);
  });

  describe('state save → safetensors → load resumes bit for bit', () => {
    let dir: string;
    before(() => {
      dir = mkdtempSync(join(tmpdir(), 'engine-adam-'));
    });
    after(() => rmSync(dir, { recursive: true, force: true }));

    it('a resumed run equals an uninterrupted one', () => {
      const lrs = [0.02, 0.05, 0.03, 0.01, 0.04, 0.02];
      const opts = { lr: 0.02, beta1: 0.85, beta2: 0.99, eps: 1e-8, weightDecay: 0.01 };
      const makeParams = () => [
        f64([0.3, -1.2, 2, 0.7, -0.05]).requiresGrad_(),
        tensor([[0.1, 0.2, -0.3], [1.5, -2.5, 0.25]]).requiresGrad_(), // a float32 parameter too
      ];
      const trainStep = (params: Tensor[], adam: Adam, k: number) => {
        zeroGrad(params);
        const [p, q] = params as [Tensor, Tensor];
        lossOf(p).add(q.double().square().mul(q.double().sin()).sum()).backward();
        adam.step(lrs[k]);
      };

      // Uninterrupted reference run.
      const refParams = makeParams();
      const refAdam = new Adam(refParams, opts);
      for (let k = 0; k < lrs.length; k++) trainStep(refParams, refAdam, k);

      // Interrupted run: 3 steps, save everything, throw it away, load, 3 more steps.
      const file = join(dir, 'training-state.safetensors');
      {
        const params = makeParams();
        const adam = new Adam(params, opts);
        for (let k = 0; k < 3; k++) trainStep(params, adam, k);
        const state = adam.state();
        const entries: Record<string, Tensor> = {};
        params.forEach((p, i) => (entries[`net.${i}`] = p));
        state.expAvg.forEach((t, i) => (entries[`adam.exp_avg.${i}`] = t));
        state.expAvgSq.forEach((t, i) => (entries[`adam.exp_avg_sq.${i}`] = t));
        writeSafetensors(file, entries, { step: String(state.step) });
        adam.dispose();
        params.forEach((p) => p.dispose());
      }
      const loaded = readSafetensors(file);
      assert.equal(loaded.metadata.step, '3');
      const get = (name: string) => {
        const t = loaded.tensors.get(name);
        assert.ok(t, `${name} missing from the saved state`);
        return t;
      };
      const params = [get('net.0').clone().requiresGrad_(), get('net.1').clone().requiresGrad_()];
      assert.equal(params[1]!.dtype, 'float32');
      const adam = new Adam(params, opts);
      adam.loadState({
        step: Number(loaded.metadata.step),
        expAvg: [get('adam.exp_avg.0'), get('adam.exp_avg.1')],
        expAvgSq: [get('adam.exp_avg_sq.0'), get('adam.exp_avg_sq.1')],
      });
      assert.equal(adam.stepCount, 3);
      for (let k = 3; k < lrs.length; k++) trainStep(params, adam, k);

      params.forEach((p, i) => assert.ok(bytes(p).equals(bytes(refParams[i]!)), `parameter ${i} differs from the uninterrupted run`));
      adam.state().expAvg.forEach((t, i) => assert.ok(bytes(t).equals(bytes(refAdam.state().expAvg[i]!)), `exp_avg ${i} differs`));
      adam.state().expAvgSq.forEach((t, i) => assert.ok(bytes(t).equals(bytes(refAdam.state().expAvgSq[i]!)), `exp_avg_sq ${i} differs`));
      // And without loadState (moments zero, step 0) the run would differ: the comparison has teeth.
      const fresh = [get('net.0').clone().requiresGrad_(), get('net.1').clone().requiresGrad_()];
      const freshAdam = new Adam(fresh, opts);
      for (let k = 3; k < lrs.length; k++) trainStep(fresh, freshAdam, k);
      assert.ok(!bytes(fresh[0]!).equals(bytes(refParams[0]!)));
    });
  });
});

describe('emaUpdate', () => {
  it('beta 0 copies exactly, beta 0.5 lands halfway, beta 0.9 follows ema = net + β·(ema − net)', () => {
    const netValues = [5, -1, 0.3, 1e-30, 123456.789];
    const emaValues = [1, 2, 3, 0.1, -7];
    const net = f64(netValues).requiresGrad_();
    const net32 = tensor([0.1, 0.2]).requiresGrad_();

    const ema = f64(emaValues);
    const ema32 = tensor([1, 1]);
    emaUpdate([ema, ema32], [net, net32], 0);
    assert.ok(bytes(ema).equals(bytes(net)), 'beta 0 must copy bit for bit');
    assert.ok(bytes(ema32).equals(bytes(net32)));
    assert.equal(ema.requiresGrad, false, 'the EMA does not join the graph');

    const half = f64(emaValues);
    emaUpdate([half], [net], 0.5);
    assertClose(half, emaValues.map((e, i) => (e + netValues[i]!) / 2), { atol: 0, rtol: 1e-15 });

    const slow = f64(emaValues);
    emaUpdate([slow], [net], 0.9);
    assertClose(slow, emaValues.map((e, i) => netValues[i]! + 0.9 * (e - netValues[i]!)), { atol: 1e-300, rtol: 1e-14 });

    const one = f64(emaValues);
    emaUpdate([one], [net], 1);
    assert.deepEqual(one.toArray(), emaValues, 'beta 1 keeps the EMA');
    assert.deepEqual(net.toArray(), netValues, 'the network is not modified');
    assert.throws(() => emaUpdate([ema], [net, net32], 0.5), /emaUpdate/);
  });

  it('works inside noGrad and on parameters that have gradients', () => {
    const net = f64([1, 2]).requiresGrad_();
    net.sum().backward();
    const ema = f64([0, 0]);
    noGrad(() => emaUpdate([ema], [net], 0.75));
    assert.deepEqual(ema.toArray(), [0.25, 0.5]);
    assert.deepEqual(net.grad!.toArray(), [1, 1]);
  });
});
