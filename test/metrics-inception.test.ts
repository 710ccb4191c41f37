import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { writeSafetensors } from '../src/io/safetensors.js';
import { Generator, noGrad, scope, tensor, zeros, type Tensor } from '../src/tensor/index.js';
import { InceptionV3, loadInception, preprocessForInception, tf1BilinearMatrix } from '../src/metrics/inception.js';

// One random network with the FID Inception names, written once to a temp file.
const dir = mkdtempSync(join(tmpdir(), 'pd-inception-'));
const net = new InceptionV3(new Generator(0));
const state = net.stateDict();
const file = (name: string, entries: Map<string, Tensor>) => {
  const p = join(dir, name);
  writeSafetensors(p, entries);
  return p;
};
const goodPath = file('good.safetensors', state);

test.after(() => {
  net.dispose();
  rmSync(dir, { recursive: true, force: true });
});

test('the FID Inception-v3 trunk has torchvision\'s parameter count and names', () => {
  // torchvision inception_v3: 27,161,264 parameters = trunk + AuxLogits (3,326,696) + fc 2048→1000 (2,049,000).
  assert.equal(net.parameterCount(), 27_161_264 - 3_326_696 - 2_049_000);
  for (const name of [
    'Conv2d_1a_3x3.conv.weight', 'Conv2d_1a_3x3.bn.running_var', 'Mixed_5b.branch5x5_1.conv.weight', 'Mixed_6a.branch3x3.conv.weight',
    'Mixed_6e.branch7x7dbl_5.bn.bias', 'Mixed_7a.branch7x7x3_4.conv.weight', 'Mixed_7c.branch3x3dbl_3b.bn.running_mean', 'Mixed_7c.branch_pool.conv.weight',
  ])
    assert.ok(state.has(name), name);
  assert.ok(![...state.keys()].some((k) => k.endsWith('.bias') && k.includes('.conv.')), 'convolutions have no bias');
  assert.deepEqual(state.get('Mixed_7c.branch_pool.conv.weight')!.shape, [192, 2048, 1, 1]);
  assert.equal(net.stem[0]!.bn.eps, 0.001);
});

test('loads a safetensors file and gives [N, 2048] features equal to the in-memory network', () => {
  const inc = loadInception(goodPath);
  try {
    assert.equal(inc.sha256.length, 64);
    assert.equal(inc.dim, 2048);
    scope(() => {
      const g = new Generator(1);
      const grey = g.randint(0, 256, [2, 1, 32, 32]).to('uint8');
      const f = inc.features(grey);
      assert.deepEqual(f.shape, [2, 2048]);
      assert.ok(f.allFinite());
      assert.ok(f.abs().sum().item() > 0);
      const direct = noGrad(() => net.forward(preprocessForInception(grey)));
      assert.ok(f.sub(direct).abs().amax().item() <= 1e-5 * Math.max(1, direct.abs().amax().item()));
      // Grey is repeated to 3 channels: the same image as RGB gives the same features.
      const rgb = preprocessForInception(grey.expand(2, 3, 32, 32).contiguous());
      assert.equal(rgb.sub(preprocessForInception(grey)).abs().amax().item(), 0);
      assert.throws(() => inc.features(zeros([1, 2, 32, 32], { dtype: 'uint8' })), /1 or 3 channels/);
    });
  } finally {
    inc.dispose();
  }
});

test('fc.*, num_batches_tracked and a common prefix are accepted; missing and unknown names are errors', () => {
  scope(() => {
    const extra = new Map(state);
    extra.set('fc.weight', zeros([1008, 2048]));
    extra.set('fc.bias', zeros([1008]));
    extra.set('Conv2d_1a_3x3.bn.num_batches_tracked', zeros([], { dtype: 'int64' }));
    const withFc = loadInception(file('fc.safetensors', extra));
    assert.ok(withFc.ignored.includes('fc.weight'));
    const plain = loadInception(goodPath);
    assert.equal(withFc.sha256, plain.sha256, 'ignored tensors do not change the weights hash');
    withFc.dispose();
    plain.dispose();

    const prefixed = new Map([...state].map(([k, v]) => [`model.${k}`, v]));
    loadInception(file('prefixed.safetensors', prefixed)).dispose();

    const missing = new Map(state);
    missing.delete('Mixed_6b.branch7x7_2.conv.weight');
    assert.throws(() => loadInception(file('missing.safetensors', missing)), /missing 1 tensor\(s\): Mixed_6b\.branch7x7_2\.conv\.weight/);

    const unknown = new Map(state);
    unknown.set('Mixed_8a.conv.weight', zeros([1]));
    assert.throws(() => loadInception(file('unknown.safetensors', unknown)), /unexpected 1 tensor\(s\): Mixed_8a\.conv\.weight/);

    assert.throws(() => loadInception(join(dir, 'nope.safetensors')), /not found/);
  });
});

test('a first convolution with the wrong channel count is rejected', () => {
  scope(() => {
    const grey = new Map(state);
    grey.set('Conv2d_1a_3x3.conv.weight', zeros([32, 1, 3, 3]));
    assert.throws(() => loadInception(file('grey.safetensors', grey)), /Conv2d_1a_3x3\.conv\.weight.*\[32,1,3,3\].*\[32,3,3,3\]/);
  });
});

test('TF1 bilinear resize: source = dest·in/out, no half-pixel offset', () => {
  // 2 → 4: sources 0, 0.5, 1, 1.5 (clamped to the last pixel).
  assert.deepEqual(Array.from(tf1BilinearMatrix(2, 4)), [1, 0, 0.5, 0.5, 0, 1, 0, 1]);
  scope(() => {
    const x = tensor(Uint8Array.from([0, 100, 200, 250]), [1, 1, 2, 2], { dtype: 'uint8' });
    const p = preprocessForInception(x);
    assert.deepEqual(p.shape, [1, 3, 299, 299]);
    // Output pixel (0, 0) samples source (0, 0) exactly: (0 − 128)/128.
    assert.equal(p.select(2, 0).select(2, 0).toArray()[0], -1);
  });
});
