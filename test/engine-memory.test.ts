// Deterministic freeing: scopes free everything they created except what they
// return, nested scopes hand results outwards, an exception still frees, and
// dispose is idempotent with a clear error on use afterwards.
//
// Every tensor made here is disposed (explicitly or by a scope) or kept
// referenced, so GC finalisers (deferred or run from the GC itself) cannot
// change liveTensors() under a test.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { F, Generator, cat, externalMemoryReported, keep, liveTensors, noGrad, ones, scope, tensor, zeroGrad, zeros, type Tensor } from '../src/tensor/index.js';
import { Adam, emaUpdate } from '../src/optim/adam.js';
import { liveTensorsAfterGc } from './helpers/gc.js';

/** Asserts that `fn` leaves exactly `delta` more live tensors than before. */
function liveDelta<T>(fn: () => T): { result: T; delta: number } {
  const before = liveTensorsAfterGc();
  const result = fn();
  return { result, delta: liveTensors() - before };
}

describe('scope', () => {
  it('frees every tensor created inside except the returned one', () => {
    let a!: Tensor;
    let b!: Tensor;
    const { result, delta } = liveDelta(() =>
      scope(() => {
        a = ones([100]);
        b = a.add(1);
        const c = b.mul(2).sum();
        b.reshape(10, 10).transpose(0, 1); // a view, also freed
        return c;
      }),
    );
    assert.equal(delta, 1, 'only the returned tensor survives');
    assert.equal(result.item(), 400);
    assert.equal(a.isDisposed, true);
    assert.equal(b.isDisposed, true);
    assert.equal(result.isDisposed, false);
    result.dispose();
  });

  it('keeps tensors returned inside arrays, plain objects and Maps; returns non-tensor values as they are', () => {
    const { result, delta } = liveDelta(() =>
      scope(() => {
        const x = ones([2]);
        const y = x.add(1);
        const z = y.add(1);
        x.mul(5); // garbage
        return { list: [x, { deep: y }], map: new Map([['z', z]]), n: 3 };
      }),
    );
    assert.equal(delta, 3);
    assert.equal(result.n, 3);
    assert.deepEqual(result.list[0]!.toString().includes('[2]'), true);
    assert.deepEqual((result.list[1] as { deep: Tensor }).deep.toArray(), [2, 2]);
    assert.deepEqual(result.map.get('z')!.toArray(), [3, 3]);
    const { delta: d2 } = liveDelta(() => scope(() => 7));
    assert.equal(d2, 0);
    for (const t of [result.list[0] as Tensor, (result.list[1] as { deep: Tensor }).deep, result.map.get('z')!]) t.dispose();
  });

  it('nested scopes: an inner result belongs to the outer scope', () => {
    let inner!: Tensor;
    let innerGarbage!: Tensor;
    const before = liveTensorsAfterGc();
    const outer = scope(() => {
      const base = ones([3]);
      inner = scope(() => {
        innerGarbage = base.mul(10);
        return base.add(innerGarbage);
      });
      assert.equal(innerGarbage.isDisposed, true, 'inner scope freed its garbage at once');
      assert.equal(inner.isDisposed, false);
      assert.equal(liveTensors() - before, 2, 'base and the inner result are alive inside the outer scope');
      return inner.mul(2);
    });
    assert.equal(inner.isDisposed, true, 'the inner result was freed by the outer scope, which did not return it');
    assert.deepEqual(outer.toArray(), [22, 22, 22]);
    assert.equal(liveTensors() - before, 1);
    outer.dispose();
    assert.equal(liveTensors(), before);
  });

  it('an inner result returned by the outer scope too survives both', () => {
    const before = liveTensorsAfterGc();
    const r = scope(() => scope(() => ones([2]).add(1)));
    assert.equal(liveTensors() - before, 1);
    assert.deepEqual(r.toArray(), [2, 2]);
    r.dispose();
  });

  it('an exception inside a scope frees its tensors and propagates', () => {
    const before = liveTensorsAfterGc();
    const made: Tensor[] = [];
    assert.throws(
      () =>
        scope(() => {
          made.push(ones([10]), zeros([10]));
          made.push(made[0]!.add(made[1]!));
          made[0]!.matmul(ones([3, 3])); // throws: shapes do not match
          return made[2];
        }),
      /matmul/,
    );
    assert.equal(liveTensors(), before);
    assert.ok(made.every((t) => t.isDisposed));
    // The scope stack is intact afterwards: a tensor made outside any scope is not freed by a later scope.
    const outside = ones([1]);
    scope(() => {
      ones([1]);
    });
    assert.equal(outside.isDisposed, false);
    outside.dispose();
    // An exception in a nested scope frees the inner scope's tensors; the outer scope can catch and continue.
    const result = scope(() => {
      const kept = ones([2]);
      try {
        scope(() => {
          ones([5]);
          throw new Error('inner failure');
        });
      } catch {
        /* handled */
      }
      return kept;
    });
    assert.equal(liveTensors(), before + 1);
    result.dispose();
  });

  it('rejects an async function (its tensors would escape) and frees what it made', () => {
    const before = liveTensorsAfterGc();
    assert.throws(() => scope((async () => ones([1])) as unknown as () => Tensor), /synchronous/);
    assert.equal(liveTensors(), before);
  });

  it('keep() lets a tensor outlive its scope', () => {
    const before = liveTensorsAfterGc();
    let kept!: Tensor;
    scope(() => {
      kept = keep(ones([4]));
      ones([4]);
    });
    assert.equal(kept.isDisposed, false);
    assert.equal(liveTensors(), before + 1);
    kept.dispose();
  });

  it('a training loop in scopes does not accumulate tensors', () => {
    const w = keep(tensor([[0.1, -0.2], [0.3, 0.4]]).requiresGrad_());
    const ema = scope(() => w.detach().clone());
    const adam = new Adam([w], { lr: 0.01 });
    const gen = new Generator(0);
    const step = () =>
      scope(() => {
        zeroGrad([w]);
        const x = gen.randn([8, 2]);
        const loss = F.linear(x, w).sub(x).square().mean();
        loss.backward();
        adam.step();
        noGrad(() => emaUpdate([ema], [w], 0.9));
        return loss.item();
      });
    for (let k = 0; k < 5; k++) step();
    const before = liveTensorsAfterGc();
    let last = Infinity;
    for (let k = 0; k < 200; k++) last = step();
    assert.equal(liveTensors(), before, 'live tensors grew during training');
    assert.ok(Number.isFinite(last));
    adam.dispose();
    w.dispose();
    ema.dispose();
  });
});

describe('dispose', () => {
  it('is idempotent and counted once', () => {
    const before = liveTensorsAfterGc();
    const t = ones([1000]);
    assert.equal(liveTensors(), before + 1);
    t.dispose();
    assert.equal(liveTensors(), before);
    t.dispose();
    t.dispose();
    assert.equal(liveTensors(), before);
    assert.equal(t.isDisposed, true);
    assert.equal(t.toString(), 'Tensor(disposed)');
  });

  it('use after dispose throws an Error that mentions dispose', () => {
    const t = tensor([1, 2, 3]);
    const other = tensor([1, 1, 1]);
    assert.equal(t.numel, 3); // caches the shape before dispose
    t.dispose();
    const uses: [string, () => unknown][] = [
      ['add', () => t.add(1)],
      ['add as the second operand', () => other.add(t)],
      ['data', () => t.data()],
      ['toArray', () => t.toArray()],
      ['sum', () => t.sum()],
      ['item', () => t.item()],
      ['shape of a fresh view', () => t.reshape(3)],
      ['dtype', () => t.dtype],
      ['shape (cached before dispose)', () => t.shape],
      ['numel', () => t.numel],
      ['conv2d', () => F.conv2d(t.reshape(1, 1, 1, 3), ones([1, 1, 1, 1]))],
      ['cat list entry', () => cat([other, t])],
      ['in-place target', () => t.add_(1)],
      ['in-place source', () => other.copy_(t)],
      ['backward', () => t.backward()],
    ];
    scope(() => {
      for (const [what, use] of uses) {
        assert.throws(use, (e: unknown) => e instanceof Error && /dispose/.test(e.message), `${what} after dispose`);
      }
    });
    other.dispose();
  });

  it('disposing a view leaves its base usable, and disposing the base leaves the view usable', () => {
    const base = tensor([1, 2, 3, 4]);
    const view = base.reshape(2, 2);
    view.dispose();
    assert.deepEqual(base.toArray(), [1, 2, 3, 4]);
    const view2 = base.reshape(2, 2);
    base.dispose();
    assert.deepEqual(view2.toArray(), [1, 2, 3, 4]);
    view2.dispose();
  });

  it('a gradient handle is a separate tensor that can be disposed on its own', () => {
    const before = liveTensorsAfterGc();
    const p = ones([3]).requiresGrad_();
    scope(() => p.mul(2).sum().backward());
    assert.equal(liveTensors(), before + 1);
    const g = p.grad!;
    assert.equal(liveTensors(), before + 2);
    g.dispose();
    assert.deepEqual(scope(() => p.grad!.toArray()), [2, 2, 2], 'the parameter still has its gradient');
    p.dispose();
    assert.equal(liveTensors(), before);
  });
});

// V8 hears of a tensor's native bytes only when the GC is the one to free it:
// reporting the scoped ones made V8 run a mark-compact every training step
// (bench/train-step.ts measured +5–9% from the GC thread stalling OpenMP).
describe('native memory reported to V8', () => {
  const MB = 1 << 20;
  const external = externalMemoryReported;
  const big = () => zeros([4 * MB / 4]); // 4 MiB of float32

  it('counts a tensor made outside any scope, and gives it back on dispose', () => {
    const before = external();
    const t = big();
    assert.ok(external() - before >= 4 * MB, `external grew by ${(external() - before) / MB} MiB`);
    t.dispose();
    assert.ok(Math.abs(external() - before) < MB, 'dispose gave the bytes back');
  });

  it('does not count tensors a scope owns, but counts the one it returns and those it keeps', () => {
    const before = external();
    let during = 0;
    let kept!: Tensor;
    const returned = scope(() => {
      for (let k = 0; k < 8; k++) big();
      kept = keep(big());
      during = external() - before;
      return big();
    });
    assert.ok(during >= 4 * MB && during < 5 * MB, `inside: only the kept tensor is counted (${during / MB} MiB)`);
    const after = external() - before;
    assert.ok(after >= 8 * MB && after < 9 * MB, `after: kept + returned are counted (${after / MB} MiB)`);
    kept.dispose();
    returned.dispose();
    assert.ok(Math.abs(external() - before) < MB);
  });

  it('a result handed to an enclosing scope is counted only when it leaves the outermost one', () => {
    const before = external();
    const out = scope(() => {
      const inner = scope(() => big());
      assert.ok(external() - before < MB, 'still owned by the outer scope');
      return inner;
    });
    assert.ok(external() - before >= 4 * MB);
    out.dispose();
  });
});
