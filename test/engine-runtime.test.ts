// What the runtime says about itself (engineInfo), the op profiler, and the
// thread count that follows the free cores.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
  F, Generator, adaptThreads, describeEngine, engineInfo, followFreeCores, getNumThreads, opFamilies, opFamily, othersBusyCores, profileOps,
  setNumThreads, threadsFor, useThreads,
} from '../src/tensor/index.js';

test('engineInfo names the libtorch version, its BLAS and the CPU', () => {
  const e = engineInfo();
  assert.match(e.version, /^\d+\.\d+\.\d+/);
  assert.ok(e.major === 1 || e.major === 2, `libtorch major ${e.major}`);
  assert.ok(e.library === null || /libtorch_cpu\.so/.test(e.library), String(e.library));
  assert.notEqual(e.blas, '');
  assert.match(e.atenCapability, /^(DEFAULT|AVX2|AVX512|\S+)$/);
  assert.ok(describeEngine(e).startsWith(`libtorch ${e.version} `));
});

test('the op profiler times convolutions forward and backward, and groups them by family', () => {
  const g = new Generator(0);
  const x = g.randn([2, 3, 8, 8]);
  const w = g.randn([4, 3, 3, 3]).requiresGrad_();
  const { ops } = profileOps(() => F.conv2d(x, w, null, { padding: 1 }).square().sum().backward());
  const families = new Map(opFamilies(ops).map((f) => [f.family, f]));
  assert.ok(families.get('conv forward')!.calls >= 1, JSON.stringify(ops.map((o) => o.name)));
  assert.ok(families.get('conv backward')!.calls >= 1, JSON.stringify(ops.map((o) => o.name)));
  for (const o of ops) assert.ok(o.selfMs >= 0 && o.selfMs <= o.totalMs + 1e-9, `${o.name}: self ${o.selfMs} > total ${o.totalMs}`);
  // Nothing is recorded once stopped: a second session starts from zero.
  const again = profileOps(() => x.add(1));
  assert.ok(again.ops.every((o) => !/conv/.test(o.name)));
});

test('op families by name', () => {
  assert.equal(opFamily('aten::mkldnn_convolution'), 'conv forward');
  assert.equal(opFamily('bwd aten::convolution_backward'), 'conv backward');
  assert.equal(opFamily('bwd aten::bmm'), 'attention');
  assert.equal(opFamily('aten::_softmax'), 'attention');
  assert.equal(opFamily('aten::addmm'), 'linear');
  assert.equal(opFamily('bwd aten::native_group_norm_backward'), 'norm');
  assert.equal(opFamily('aten::silu'), 'elementwise');
  assert.equal(opFamily('pd::adamStep'), 'optimizer');
  assert.equal(opFamily('pd::emaUpdate'), 'ema');
});

test('threads for the free cores: a core counts as taken above ~60% use by others', () => {
  assert.equal(threadsFor(2, 0), 2);
  assert.equal(threadsFor(2, 0.5), 2);
  assert.equal(threadsFor(2, 1.0), 1);
  assert.equal(threadsFor(2, 2.5), 1, 'never fewer than one');
  assert.equal(threadsFor(16, 3.2), 13);
  const a = { wallMs: 0, machineBusySec: 10, ownSec: 5 };
  const b = { wallMs: 2000, machineBusySec: 14, ownSec: 7 }; // 4 s busy in 2 s, 2 s of them ours
  assert.equal(othersBusyCores(a, b), 1);
});

test('following the free cores starts at the maximum and keeps a count in range; a fixed count stays', () => {
  const before = getNumThreads();
  try {
    followFreeCores(2, 0);
    assert.equal(getNumThreads(), 2);
    const n = adaptThreads();
    assert.ok(n === 1 || n === 2);
    useThreads(1);
    for (let k = 0; k < 3; k++) assert.equal(adaptThreads(), 1);
  } finally {
    followFreeCores(null);
    setNumThreads(before);
  }
});
