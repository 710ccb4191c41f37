// Gradients of the ops the networks use, from libtorch's autograd through the
// binding, against central finite differences in float64 (relative error
// < 1e-6). Each loss weights the output with a fixed random tensor so that
// every output element contributes a different amount.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { F, tensor, type Tensor } from '../src/tensor/index.js';
import { checkGradients, finiteDifferenceGradients, randomTensor, relativeError } from './helpers/numeric.js';

const TOL = 1e-6;

/** Σ out ⊙ R for a fixed R of out's shape (seeded by the shape). */
function weightedSum(out: Tensor, seed = 99): Tensor {
  return out.mul(randomTensor(out.shape, seed)).sum();
}

describe('finite-difference helper', () => {
  it('recovers a known gradient and catches a wrong one', () => {
    // f(x) = Σ x³ → ∂f/∂x = 3x²
    const x = randomTensor([5], 1);
    const [fd] = finiteDifferenceGradients(([a]) => a!.pow(3).sum(), [x]);
    const exact = x.toArray().map((v) => 3 * v * v);
    assert.ok(relativeError(fd!, exact) < 1e-9);
    // A deliberately wrong autograd (gradient of Σ 2x³ compared with Σ x³) must fail the check.
    assert.throws(() =>
      checkGradients(
        (xs) => {
          const y = xs[0]!;
          // Forward value of Σ x³ but a backward that doubles: x³ + (x³ − detach(x³)).
          const c = y.pow(3);
          return c.add(c.sub(c.detach())).sum();
        },
        [x],
      ),
    );
  });
});

describe('gradients vs central finite differences (float64)', () => {
  it('conv2d with groups, stride and padding: input, weight, bias', () => {
    const x = randomTensor([2, 4, 6, 5], 1);
    const w = randomTensor([6, 2, 3, 3], 2, 0.5);
    const b = randomTensor([6], 3);
    for (const opt of [
      { groups: 2, stride: 2 as const, padding: 1 as const },
      { groups: 1, stride: [1, 2] as [number, number], padding: [2, 0] as [number, number] },
      { groups: 2, stride: 1 as const, padding: 1 as const, dilation: 2 as const },
    ]) {
      const wk = opt.groups === 1 ? randomTensor([6, 4, 3, 3], 4, 0.5) : w;
      const errs = checkGradients((xs) => weightedSum(F.conv2d(xs[0]!, xs[1]!, xs[2]!, opt)), [x, wk, b], {
        names: ['conv input', 'conv weight', 'conv bias'],
        tolerance: TOL,
      });
      assert.equal(errs.length, 3);
    }
  });

  it('convTranspose2d (stride 2, groups 2): input, weight, bias', () => {
    const x = randomTensor([1, 4, 3, 3], 5);
    const w = randomTensor([4, 2, 3, 3], 6, 0.5);
    const b = randomTensor([4], 7);
    checkGradients((xs) => weightedSum(F.convTranspose2d(xs[0]!, xs[1]!, xs[2]!, { stride: 2, padding: 1, outputPadding: 1, groups: 2 })), [x, w, b], {
      names: ['convT input', 'convT weight', 'convT bias'],
      tolerance: TOL,
    });
  });

  it('groupNorm: input, weight, bias', () => {
    const x = randomTensor([2, 6, 3, 3], 8, 2).add(0.3);
    const w = randomTensor([6], 9).add(1);
    const b = randomTensor([6], 10);
    checkGradients((xs) => weightedSum(F.groupNorm(xs[0]!, 3, xs[1]!, xs[2]!, 1e-5)), [x, w, b], {
      names: ['groupNorm input', 'groupNorm weight', 'groupNorm bias'],
      tolerance: TOL,
    });
  });

  it('linear: input, weight, bias', () => {
    const x = randomTensor([3, 5], 11);
    const w = randomTensor([4, 5], 12);
    const b = randomTensor([4], 13);
    checkGradients((xs) => weightedSum(F.linear(xs[0]!, xs[1]!, xs[2]!)), [x, w, b], {
      names: ['linear input', 'linear weight', 'linear bias'],
      tolerance: TOL,
    });
  });

  it('silu, softmax, interpolate and pooling', () => {
    const x = randomTensor([1, 2, 4, 4], 14, 2);
    checkGradients((xs) => weightedSum(F.silu(xs[0]!)), [x], { names: ['silu'], tolerance: TOL });
    checkGradients((xs) => weightedSum(F.softmax(xs[0]!, -1)), [x], { names: ['softmax'], tolerance: TOL });
    checkGradients((xs) => weightedSum(F.interpolate(xs[0]!, [8, 8], 'bilinear')), [x], { names: ['bilinear'], tolerance: TOL });
    checkGradients((xs) => weightedSum(F.avgPool2d(xs[0]!, 2)), [x], { names: ['avgPool2d'], tolerance: TOL });
  });

  it('a softmax attention block: q, k, v from a 1×1 conv, softmax(qᵀk/√d), v·wᵀ', () => {
    const N = 2;
    const C = 4;
    const H = 3;
    const W = 2;
    const x = randomTensor([N, C, H, W], 15);
    const wqkv = randomTensor([3 * C, C, 1, 1], 16, 0.7);
    const bqkv = randomTensor([3 * C], 17, 0.2);
    const attention = ([xi, wi, bi]: Tensor[]): Tensor => {
      const qkv = F.conv2d(xi!, wi!, bi!).reshape(N, 3, C, H * W); // [N, 3, C, HW]
      const [q, k, v] = [0, 1, 2].map((s) => qkv.select(1, s)); // each [N, C, HW]
      const logits = q!.transpose(1, 2).bmm(k!).div(Math.sqrt(C)); // [N, HW(q), HW(k)]
      const w = F.softmax(logits, 2);
      const a = v!.bmm(w.transpose(1, 2)); // [N, C, HWq]: a[c, q] = Σ_k v[c, k] w[q, k]
      return weightedSum(a.reshape(N, C, H, W));
    };
    checkGradients(attention, [x, wqkv, bqkv], { names: ['attention input', 'qkv weight', 'qkv bias'], tolerance: TOL });
  });

  it('a weighted denoising loss λ(σ)·(D − y)² summed (EDM preconditioning)', () => {
    const N = 3;
    const sigmaData = 0.5;
    const y = randomTensor([N, 2, 4, 4], 18);
    const n = randomTensor([N, 2, 4, 4], 19);
    const sigmaValues = [0.2, 1.3, 4.0];
    const w = randomTensor([2, 2, 3, 3], 20, 0.4);
    const b = randomTensor([2], 21, 0.1);
    const loss = ([yi, wi, bi, sigma]: Tensor[]): Tensor => {
      const s = sigma!.reshape(N, 1, 1, 1);
      const s2 = s.square();
      const d2 = sigmaData * sigmaData;
      const cSkip = s2.add(d2).reciprocal().mul(d2);
      const cOut = s.mul(sigmaData).mul(s2.add(d2).rsqrt());
      const cIn = s2.add(d2).rsqrt();
      const noisy = yi!.add(n.mul(s));
      const Fx = F.silu(F.conv2d(noisy.mul(cIn), wi!, bi!, { padding: 1 }));
      const D = noisy.mul(cSkip).add(Fx.mul(cOut));
      const lambda = s2.add(d2).div(s.mul(sigmaData).square());
      return lambda.mul(D.sub(yi!).square()).sum();
    };
    const sigma = tensor(sigmaValues, undefined, { dtype: 'float64' });
    checkGradients(loss, [y, w, b, sigma], { names: ['clean image', 'weight', 'bias', 'sigma'], tolerance: TOL });
  });
});
