// Parameter counts of the paper's configurations, built (zero-filled, no
// forward) from the presets, against the official constructor's counts
// (replicating EDM's training/networks.py) and, for NCSN++, against a count
// derived by hand from the official constructor.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { countParameters, createNetwork, presetConfig, type NetworkConfig } from '../src/networks/config.js';
import { liveTensors } from '../src/tensor/index.js';
import { liveTensorsAfterGc } from './helpers/gc.js';

const ddpmpp = (res: number, extra: Partial<NetworkConfig> = {}) => presetConfig('ddpmpp', { imgResolution: res, overrides: extra });

test('DDPM++ 64×64, cres 1,2,2,2, in 5 (CelebA/FFHQ/AFHQ-64) = 61,806,723; with augment 61,807,875', () => {
  assert.equal(countParameters(ddpmpp(64, { channel_mult: [1, 2, 2, 2] })), 61_806_723);
  assert.equal(countParameters(presetConfig('ddpmpp', { imgResolution: 64, augmentDim: 9, overrides: { channel_mult: [1, 2, 2, 2] } })), 61_807_875);
  // EDM's own FFHQ-64 network (3 input channels, augment): 61,805,571 (EDM's published 61.80M).
  assert.equal(
    countParameters({ ...presetConfig('ddpmpp', { imgResolution: 64, augmentDim: 9, overrides: { channel_mult: [1, 2, 2, 2] } }), img_channels: 3 }),
    61_805_571,
  );
});

test('DDPM++ train.py default cres [2,2,2] at 64×64 = 55,735,043 (and the same at 32×32)', () => {
  assert.equal(countParameters(ddpmpp(64)), 55_735_043);
  // Every level has 256 channels, so moving attention between levels changes no count.
  assert.equal(countParameters(ddpmpp(32)), 55_735_043);
  // The two coordinate channels add 2·128·9 weights to the first conv only.
  assert.equal(countParameters(ddpmpp(64)) - countParameters({ ...ddpmpp(64), img_channels: 3 }), 2 * 128 * 9);
});

test('NCSN++ [2,2,2] at 32×32 and 64×64 = 56,402,435 (DDPM++ + the derived NCSN++ extras)', () => {
  // From the official constructor, NCSN++ differs from DDPM++ [2,2,2] (model_channels 128, in 5) by
  //  - map_layer0 reading a 256-wide noise embedding instead of 128:       +128·512
  //  - the residual encoder's aux_residual 3×3 convs with bias, one per level > 0:
  //      level 1: caux = 5 → 256:                                           +5·256·9 + 256
  //      level 2: caux = 256 → 256:                                         +256·256·9 + 256
  //  - the Fourier frequencies are a buffer, the [1,3,3,1] filter changes no count.
  const derived = 55_735_043 + 128 * 512 + (5 * 256 * 9 + 256) + (256 * 256 * 9 + 256);
  assert.equal(derived, 56_402_435);
  const n32 = countParameters(presetConfig('ncsnpp', { imgResolution: 32 }));
  const n64 = countParameters(presetConfig('ncsnpp', { imgResolution: 64 }));
  assert.equal(n32, derived);
  assert.equal(n64, derived);
  // With augment labels, map_augment maps 9 → 256 (noise channels), not 9 → 128.
  assert.equal(countParameters(presetConfig('ncsnpp', { imgResolution: 32, augmentDim: 9 })) - n32, 9 * 256);
});

test('ADM latent 32×32, in 6, out 4: 279,631,108 unconditional, 280,399,108 with 1000 classes', () => {
  const before = liveTensorsAfterGc();
  const uncond = presetConfig('adm', { imgResolution: 32, imageChannels: 4 });
  assert.equal(uncond.img_channels, 6);
  assert.equal(uncond.out_channels, 4);
  assert.equal(countParameters(uncond), 279_631_108);
  const net = createNetwork(presetConfig('adm', { imgResolution: 32, imageChannels: 4, labelDim: 1000 }), { initialize: false });
  try {
    assert.equal(net.parameterCount(), 280_399_108);
    // The class embedding is a bias-free Linear(1000 → 768).
    assert.deepEqual([...net.stateDict().get('model.map_label.weight')!.shape], [768, 1000]);
    assert.equal(net.stateDict().has('model.map_label.bias'), false);
  } finally {
    net.dispose();
  }
  assert.equal(liveTensors(), before, 'building and disposing leaks no tensors');
});

test('EDM ImageNet-64 ADM (in 3, 1000 classes) = 295.90M, as EDM publishes', () => {
  const n = countParameters({ ...presetConfig('adm', { imgResolution: 64, labelDim: 1000 }), img_channels: 3 });
  assert.equal(Math.round(n / 1e4) / 100, 295.9);
});
