// The web page's sampler pieces in plain JS: the copy of libtorch's CPU generator
// against libtorch itself: the same seed gives the same noise (to ~1e-6: the
// transcendental functions may round differently) and the same integers, in
// the order a sampler draws them (latents, then a class).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { MersenneTwister, TorchGenerator } from '../src/web/torch-generator.js';
import { Generator } from '../src/tensor/index.js';
import { generateImages, SeedGenerators, toUint8 } from '../src/diffusion/sampler.js';
import { createNetwork, presetConfig } from '../src/networks/config.js';
import { noGrad, scope, tensor, type Tensor } from '../src/tensor/index.js';
import { toRgba, webSample, type WebDenoiser } from '../src/web/sampler.js';

test('mt19937 matches the C++ standard\'s check value (the 10000th output of seed 5489 is 4123659995)', () => {
  const mt = new MersenneTwister(5489);
  let v = 0;
  for (let i = 0; i < 10000; i++) v = mt.next();
  assert.equal(v, 4123659995);
});

for (const seed of [0, 7, 123456789, 2 ** 32 + 5]) {
  test(`seed ${seed}: randn of 16, 17, 48 and 3·32·32 values and randint equal libtorch's`, () => {
    const js = new TorchGenerator(seed);
    const lt = new Generator(seed % 2 ** 32);
    for (const n of [16, 17, 48, 3 * 32 * 32]) {
      const a = js.randn(n);
      const t = lt.randn([n]);
      const b = t.data() as Float32Array;
      t.dispose();
      let worst = 0;
      for (let i = 0; i < n; i++) worst = Math.max(worst, Math.abs(a[i]! - b[i]!));
      assert.ok(worst < 1e-5, `n = ${n}: differs by ${worst}`);
      const r = lt.randint(0, 10, []);
      assert.equal(js.randint(10), r.item());
      r.dispose();
    }
  });
}

test('a page drawing latents then a class per seed gets generate\'s draws', () => {
  const seeds = [3, 1000];
  const node = new SeedGenerators(seeds);
  const latents = node.randn([3, 8, 8]);
  const classes = node.randint(10);
  const all = latents.data() as Float32Array;
  seeds.forEach((seed, k) => {
    const g = new TorchGenerator(seed);
    const mine = g.randn(3 * 8 * 8);
    for (let i = 0; i < mine.length; i++) assert.ok(Math.abs(mine[i]! - all[k * 192 + i]!) < 1e-5);
    assert.equal(g.randint(10), classes[k]);
  });
  latents.dispose();
});

test('sizes below 16 are refused (torch takes another path there)', () => {
  assert.throws(() => new TorchGenerator(0).randn(8), /16 or more values, got 8/);
});

// ---- the page's sampler -------------------------------------------------------------------

test('the page\'s Heun sampler gives generate\'s images for the same network and seeds (conditional, with guidance, on a larger canvas)', async () => {
  const config = presetConfig('ddpmpp-cpu', { imgResolution: 8, imageChannels: 3, labelDim: 3, overrides: { model_channels: 8, channel_mult: [1, 2], attn_resolutions: [4] } });
  const net = createNetwork(config, { generator: new Generator(4) }).eval();
  const forward = (x: Tensor, s: Tensor, pos: Tensor | null, labels?: Tensor | null) => net.forward(x, s, pos, labels ?? null);
  const page: WebDenoiser = async (x, sigma, pos, labels, shape) =>
    noGrad(() =>
      scope(() => {
        const [n, , h, w] = shape;
        const d = forward(tensor(x, [...shape]), tensor(sigma, [n]), pos ? tensor(pos, [n, 2, h, w]) : null, labels ? tensor(labels, [n, 3]) : null);
        return Float32Array.from(d.data() as Float32Array);
      }),
    );
  for (const o of [{ cfg: null, imageSize: 8 }, { cfg: 1.5, imageSize: 16 }]) {
    const seeds = [11, 12, 13];
    const node = noGrad(() => generateImages(forward, { seeds, channels: 3, resolution: 8, labelDim: 3, numSteps: 4, cfg: o.cfg, imageSize: o.imageSize }));
    const expected = toUint8(node.images);
    node.images.dispose();
    const web = await webSample(page, { seeds, channels: 3, resolution: 8, coordinates: true, labelDim: 3, numSteps: 4, cfg: o.cfg, imageSize: o.imageSize });
    assert.deepEqual(web.classes, node.classes);
    const rgba = toRgba(web.images, seeds.length, 3, web.size);
    let worst = 0;
    rgba.forEach((img, k) => {
      for (let p = 0; p < web.size * web.size; p++)
        for (let ch = 0; ch < 3; ch++) worst = Math.max(worst, Math.abs(img[p * 4 + ch]! - expected.data[((k * web.size * web.size) + p) * 3 + ch]!));
    });
    assert.ok(worst <= 1, `cfg ${o.cfg}, canvas ${o.imageSize}: pixels differ by ${worst} levels`);
  }
  net.dispose();
});
