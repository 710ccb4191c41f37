// Tensor handles and the GC: a disposed handle keeps reading as disposed
// while new tensors come and go; a tensor that leaves the outermost scope, or
// is kept, is freed by the GC once unreachable and not while referenced; and
// a finaliser never frees a tensor that is not its own.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { Generator, keep, liveTensors, ones, scope, tensor, type Tensor } from '../src/tensor/index.js';
import { gc } from './helpers/gc.js';

/** Makes garbage of `count` tensors without keeping a reference (GC-owned, outside any scope). */
function makeGarbage(count: number): void {
  for (let k = 0; k < count; k++) ones([4]);
}

describe('tensor handles', () => {
  it('a disposed handle stays disposed while many new tensors come and go', () => {
    const stale = tensor([1, 2, 3]);
    stale.dispose();
    // Many short-lived tensors (a handle pool that recycled boxes would hand the freed one out again).
    const fresh = scope(() => {
      for (let k = 0; k < 50; k++) ones([2]).add(1);
      return tensor([7, 8]);
    });
    assert.equal(stale.isDisposed, true);
    assert.throws(() => stale.add(1), /dispose/);
    assert.throws(() => stale.toArray(), /dispose/);
    assert.equal(String(stale), 'Tensor(disposed)');
    stale.dispose(); // still idempotent
    assert.deepEqual(fresh.toArray(), [7, 8], 'the stale handle did not touch any newer tensor');
    fresh.dispose();
  });

  it('a tensor returned from the outermost scope is freed by the GC once unreachable', () => {
    const before = liveTensors();
    (() => {
      scope(() => ones([1000]).mul(2));
    })();
    assert.equal(liveTensors(), before + 1, 'the returned tensor is alive until collected');
    gc();
    gc();
    assert.equal(liveTensors(), before, 'its handle got a finaliser when it left the scope');
  });

  it('tensors made in a scope and freed by it are not left to the GC', () => {
    const before = liveTensors();
    scope(() => {
      for (let k = 0; k < 20; k++) ones([8]).add(1);
    });
    assert.equal(liveTensors(), before);
  });

  it('a kept tensor survives the GC while referenced, then is freed by it', () => {
    const before = liveTensors();
    let kept: Tensor | null = scope(() => {
      keep(ones([3]).mul(5)); // no reference kept outside the scope
      ones([3]); // garbage the scope frees
      return null;
    }) ?? null;
    assert.equal(kept, null);
    assert.equal(liveTensors(), before + 1, 'kept outlives its scope');
    gc();
    assert.equal(liveTensors(), before, 'no reference left: the GC freed it');
    kept = scope(() => keep(ones([2]).mul(3)));
    gc();
    assert.deepEqual(kept.toArray(), [3, 3], 'a referenced kept tensor is not collected');
    kept.dispose();
  });

  it('the finaliser of an explicitly disposed GC-owned handle does not free the box’s next tensor', () => {
    const gen = new Generator(0);
    for (let round = 0; round < 5; round++) {
      // GC-owned handles, disposed by hand, then dropped: their finalisers run at the next GC.
      for (let k = 0; k < 100; k++) gen.randn([4]).dispose();
      // New tensors that may take the same boxes, if recycling ignored pending finalisers.
      const survivors = scope(() => Array.from({ length: 100 }, (_, k) => tensor([k])));
      makeGarbage(100);
      gc();
      gc();
      survivors.forEach((t, k) => assert.deepEqual(t.toArray(), [k], `round ${round}: tensor ${k} intact after GC`));
      for (const t of survivors) t.dispose();
    }
  });
});
