// Structure and behaviour of the networks that the reference vectors do not
// pin down: fully convolutional patches and size errors, attention placement
// by nominal resolution, initialisation (reproducible from the seed, EDM's
// scales), dropout from the module's generator, config validation, and the
// building blocks (resampling, group count, embeddings, interleaved attention,
// preconditioning coefficients).
import { test, describe } from 'node:test';
import assert from 'node:assert/strict';
import { createNetwork, parseNetworkConfig, presetConfig, resolveNetworkConfig, type NetworkConfig } from '../src/networks/config.js';
import { Preconditioner } from '../src/networks/precond.js';
import { SongUNet } from '../src/networks/song-unet.js';
import { DhariwalUNet } from '../src/networks/dhariwal-unet.js';
import { Conv2d, GroupNorm, PositionalEmbedding, FourierEmbedding, interleavedSelfAttention, Linear, groupCount } from '../src/nn/layers.js';
import { F, Generator, cat, full, liveTensors, noGrad, scope, tensor, zeros, type Tensor } from '../src/tensor/index.js';
import { liveTensorsAfterGc } from './helpers/gc.js';

const tiny = (over: Partial<NetworkConfig> = {}): NetworkConfig =>
  parseNetworkConfig({
    model_type: 'SongUNet', img_resolution: 32, img_channels: 5, out_channels: 3, model_channels: 16,
    channel_mult: [1, 2, 2], num_blocks: 1, attn_resolutions: [16], dropout: 0, ...over,
  });
const maxDiff = (a: Tensor, b: Tensor) => scope(() => a.sub(b).abs().amax().item());

/** Full-image coordinates of the top-left size×size window of a res×res image: channel 0 = x (column), 1 = y (row). */
function coords(n: number, size: number, res: number): Tensor {
  return scope(() => {
    const line = tensor(Array.from({ length: size }, (_, k) => (k / (res - 1) - 0.5) * 2));
    const xs = line.reshape(1, 1, 1, size).expand(n, 1, size, size);
    const ys = line.reshape(1, 1, size, 1).expand(n, 1, size, size);
    return cat([xs, ys], 1).contiguous();
  });
}

describe('fully convolutional', () => {
  for (const model_type of ['SongUNet', 'DhariwalUNet'] as const) {
    test(`${model_type}: a patch 1/4 of the resolution works; a size not divisible by 2^(levels−1) is a clear error`, () => {
      const g = new Generator(1);
      const net = createNetwork(tiny({ model_type }), { generator: g });
      try {
        assert.equal(net.sizeMultiple, 4);
        noGrad(() =>
          scope(() => {
            for (const size of [8, 12, 32, 64]) {
              const D = net.forward(g.randn([2, 3, size, size]), 1.5, coords(2, size, 32));
              assert.deepEqual([...D.shape], [2, 3, size, size]);
              assert.ok(D.allFinite());
            }
            // Non-square works too.
            assert.deepEqual([...net.forward(g.randn([1, 3, 8, 16]), 1.5, g.randn([1, 2, 8, 16])).shape], [1, 3, 8, 16]);
            assert.throws(() => net.forward(g.randn([2, 3, 10, 10]), 1.5, g.randn([2, 2, 10, 10])), /10×10.*multiples of 2\^\(levels−1\) = 4/);
            assert.throws(() => net.forward(g.randn([2, 3, 8, 6]), 1.5, g.randn([2, 2, 8, 6])), /8×6/);
            // The UNet alone checks sizes too.
            assert.throws(() => net.model.forward(g.randn([1, 5, 6, 6]), zeros([1])), /6×6.*= 4/);
          }),
        );
      } finally {
        net.dispose();
      }
    });
  }

  test('channel mismatches and missing coordinates are clear errors', () => {
    const net = createNetwork(tiny(), { generator: new Generator(0) });
    try {
      noGrad(() =>
        scope(() => {
          const x = zeros([2, 3, 8, 8]);
          assert.throws(() => net.forward(x, 1), /5 input channels.*3 image channels \+ 2 coordinate channels.*no x_pos/);
          assert.throws(() => net.forward(zeros([2, 4, 8, 8]), 1, zeros([2, 2, 8, 8])), /x with 4 channels/);
          assert.throws(() => net.forward(x, 1, zeros([2, 2, 16, 16])), /x_pos must be \[2, 2, 8, 8\]/);
          assert.throws(() => net.forward(x, zeros([3]), zeros([2, 2, 8, 8])), /sigma must hold 1 or N = 2/);
          assert.throws(() => net.forward(x, 1, zeros([2, 2, 8, 8]), zeros([2, 10])), /unconditional/);
          assert.throws(() => net.forward(zeros([3, 8, 8]), 1), /\[N, C, H, W\]/);
        }),
      );
    } finally {
      net.dispose();
    }
  });

  test('forward inside a scope frees every intermediate tensor', () => {
    const net = createNetwork(tiny({ encoder_type: 'residual', decoder_type: 'skip', embedding_type: 'fourier' }), { generator: new Generator(0) });
    try {
      const x = zeros([1, 3, 8, 8]);
      const p = zeros([1, 2, 8, 8]);
      const before = liveTensorsAfterGc();
      noGrad(() => scope(() => void net.forward(x, 0.7, p)));
      assert.equal(liveTensors(), before);
      x.dispose();
      p.dispose();
    } finally {
      net.dispose();
    }
  });
});

describe('structure', () => {
  test('attention sits at NOMINAL resolutions (img_resolution >> level), whatever the patch size', () => {
    const net = createNetwork(tiny(), { initialize: false });
    try {
      const names = [...net.stateDict().keys()];
      const attn = names.filter((n) => n.endsWith('.qkv.weight')).map((n) => n.replace('.qkv.weight', ''));
      assert.deepEqual(attn, ['model.enc.16x16_block0', 'model.dec.8x8_in0', 'model.dec.16x16_block1']);
      // Encoder/decoder naming and the skip-connection widths: dec blocks take cout + popped skip.
      const sd = net.stateDict();
      assert.deepEqual([...sd.get('model.enc.32x32_conv.weight')!.shape], [16, 5, 3, 3]);
      assert.deepEqual([...sd.get('model.dec.8x8_block0.conv0.weight')!.shape], [32, 64, 3, 3]);
      assert.deepEqual([...sd.get('model.dec.32x32_block1.conv0.weight')!.shape], [16, 32, 3, 3]);
      assert.deepEqual([...sd.get('model.dec.32x32_aux_conv.weight')!.shape], [3, 16, 3, 3]);
      assert.deepEqual([...sd.get('model.enc.16x16_down.conv0.resample_filter')!.shape], [1, 1, 2, 2]);
      assert.deepEqual([...sd.get('model.map_layer0.weight')!.shape], [64, 16]);
    } finally {
      net.dispose();
    }
  });

  test('NCSN++/skip variants name their aux layers as the official code', () => {
    const enc = createNetwork(tiny({ encoder_type: 'skip', decoder_type: 'skip', embedding_type: 'fourier', channel_mult_noise: 2, resample_filter: [1, 3, 3, 1] }), { initialize: false });
    const res = createNetwork(tiny({ encoder_type: 'residual' }), { initialize: false });
    try {
      const a = [...enc.stateDict().keys()];
      for (const k of ['model.map_noise.freqs', 'model.enc.16x16_aux_down.resample_filter', 'model.enc.16x16_aux_skip.weight',
        'model.dec.16x16_aux_up.resample_filter', 'model.dec.8x8_aux_norm.weight', 'model.dec.8x8_aux_conv.weight', 'model.dec.32x32_aux_conv.bias'])
        assert.ok(a.includes(k), k);
      assert.deepEqual([...enc.stateDict().get('model.enc.16x16_aux_down.resample_filter')!.shape], [1, 1, 4, 4]);
      assert.ok([...res.stateDict().keys()].includes('model.enc.8x8_aux_residual.weight'));
      // Both run (skip decoder sums the per-level outputs).
      noGrad(() => scope(() => {
        for (const n of [enc, res]) assert.deepEqual([...n.forward(zeros([1, 3, 8, 8]), 2, zeros([1, 2, 8, 8])).shape], [1, 3, 8, 8]);
      }));
    } finally {
      enc.dispose();
      res.dispose();
    }
  });

  test('implicit_mlp stem: official Sequential names (0, 2, 4, 6) and it runs', () => {
    const net = createNetwork(tiny({ implicit_mlp: true }), { generator: new Generator(0) });
    try {
      const sd = net.stateDict();
      assert.deepEqual([...sd.get('model.enc.32x32_conv.0.weight')!.shape], [16, 5, 1, 1]);
      assert.deepEqual([...sd.get('model.enc.32x32_conv.6.weight')!.shape], [16, 16, 3, 3]);
      assert.equal(sd.has('model.enc.32x32_conv.weight'), false);
      noGrad(() => scope(() => assert.deepEqual([...net.forward(zeros([1, 3, 8, 8]), 1, zeros([1, 2, 8, 8])).shape], [1, 3, 8, 8])));
    } finally {
      net.dispose();
    }
  });

  test('ADM: heads = C/64, so blocks narrower than 64 channels get no attention (as EDM)', () => {
    const net = new DhariwalUNet({ imgResolution: 16, inChannels: 5, outChannels: 3, modelChannels: 32, channelMult: [1, 2], numBlocks: 1, attnResolutions: [16, 8], initialize: false });
    try {
      const attn = [...net.stateDict().keys()].filter((n) => n.endsWith('.qkv.weight'));
      // 16x16 blocks have 32 channels → 0 heads; 8x8 blocks have 64 → 1 head.
      assert.ok(attn.every((n) => !n.includes('16x16')), attn.join());
      assert.ok(attn.includes('dec.8x8_in0.qkv.weight'));
    } finally {
      net.dispose();
    }
  });
});

describe('initialisation', () => {
  test('same seed → identical weights; another seed → different', () => {
    const cfg = tiny({ embedding_type: 'fourier', channel_mult_noise: 2, encoder_type: 'residual', label_dim: 4 });
    const a = createNetwork(cfg, { generator: new Generator(123) });
    const b = createNetwork(cfg, { generator: new Generator(123) });
    const c = createNetwork(cfg, { generator: new Generator(124) });
    try {
      const sa = a.stateDict();
      const sb = b.stateDict();
      const sc = c.stateDict();
      let differing = 0;
      for (const [k, t] of sa) {
        assert.equal(maxDiff(t, sb.get(k)!), 0, k);
        if (maxDiff(t, sc.get(k)!) > 0) differing++;
      }
      assert.ok(differing > 10);
      assert.ok(maxDiff(sa.get('model.map_noise.freqs')!, sc.get('model.map_noise.freqs')!) > 0);
    } finally {
      a.dispose();
      b.dispose();
      c.dispose();
    }
  });

  test('SongUNet: xavier_uniform, zero biases, init_zero 1e-5, qkv ×√0.2, Fourier freqs ~N(0, 16²)', () => {
    const net = new SongUNet({ imgResolution: 16, inChannels: 5, outChannels: 3, modelChannels: 32, channelMult: [1, 2], numBlocks: 1, attnResolutions: [8], embeddingType: 'fourier', channelMultNoise: 8, generator: new Generator(5) });
    try {
      const sd = net.stateDict();
      const bound = (fi: number, fo: number) => Math.sqrt(6 / (fi + fo));
      const amax = (k: string) => scope(() => sd.get(k)!.abs().amax().item());
      const w0 = amax('enc.16x16_block0.conv0.weight');
      assert.ok(w0 <= bound(32 * 9, 32 * 9) && w0 > 0.95 * bound(32 * 9, 32 * 9));
      const c1 = amax('enc.16x16_block0.conv1.weight');
      assert.ok(c1 <= 1e-5 * bound(32 * 9, 32 * 9) && c1 > 0.9e-5 * bound(32 * 9, 32 * 9));
      const qkv = amax('dec.8x8_in0.qkv.weight');
      assert.ok(qkv <= Math.sqrt(0.2) * bound(64, 192) * (1 + 1e-6) && qkv > 0.9 * Math.sqrt(0.2) * bound(64, 192));
      for (const [k, t] of sd) if (k.endsWith('.bias') && !k.includes('norm')) assert.equal(scope(() => t.abs().amax().item()), 0, k);
      const freqs = sd.get('map_noise.freqs')!;
      assert.equal(freqs.numel, 128);
      const std = scope(() => freqs.std().item());
      assert.ok(std > 12 && std < 20, `freqs std ${std}`);
    } finally {
      net.dispose();
    }
  });

  test('DhariwalUNet: kaiming_uniform·√(1/3) weights and NON-zero biases; init_zero layers exactly 0', () => {
    const net = new DhariwalUNet({ imgResolution: 16, inChannels: 5, outChannels: 3, modelChannels: 64, channelMult: [1, 2], numBlocks: 1, attnResolutions: [8], labelDim: 10, augmentDim: 9, generator: new Generator(5) });
    try {
      const sd = net.stateDict();
      const amax = (k: string) => scope(() => sd.get(k)!.abs().amax().item());
      const b = Math.sqrt(1 / 3) * Math.sqrt(3 / (64 * 9));
      assert.ok(amax('enc.16x16_block0.conv0.weight') <= b && amax('enc.16x16_block0.conv0.weight') > 0.95 * b);
      assert.ok(amax('enc.16x16_block0.conv0.bias') > 0.5 * b, 'ADM biases start non-zero');
      for (const k of ['enc.16x16_block0.conv1.weight', 'enc.16x16_block0.conv1.bias', 'dec.8x8_in0.proj.weight', 'out_conv.weight', 'out_conv.bias', 'map_augment.weight'])
        assert.equal(amax(k), 0, k);
      // map_label: kaiming_normal × √label_dim → std ≈ √(1/10)·√10 = 1.
      const std = scope(() => sd.get('map_label.weight')!.std().item());
      assert.ok(std > 0.85 && std < 1.15, `map_label std ${std}`);
    } finally {
      net.dispose();
    }
  });

  test('initialize: false draws nothing and needs no generator; initialising without one is an error', () => {
    assert.throws(() => createNetwork(tiny()), /generator/);
    const g = new Generator(9);
    const before = g.rand([1]).item();
    const g2 = new Generator(9);
    const net = createNetwork(tiny({ embedding_type: 'fourier' }), { generator: g2, initialize: false });
    try {
      assert.equal(g2.rand([1]).item(), before, 'the generator was not advanced');
    } finally {
      net.dispose();
    }
  });
});

describe('dropout and label dropout', () => {
  test('dropout masks come from the module generator: reproducible, active only in training', () => {
    const net = createNetwork(tiny({ dropout: 0.5 }), { generator: new Generator(3) });
    try {
      // Make the residual branches matter: conv1 is ~1e-5 at init.
      noGrad(() => { for (const [k, p] of net.namedParameters()) if (/(conv1|aux_conv|proj)\.weight$/.test(k)) p.mul_(1e4); });
      const g = new Generator(11);
      const x = g.randn([2, 3, 8, 8]);
      const pos = g.randn([2, 2, 8, 8]);
      noGrad(() =>
        scope(() => {
          net.eval();
          const e1 = net.forward(x, 1, pos);
          const e2 = net.forward(x, 1, pos);
          assert.equal(maxDiff(e1, e2), 0);
          net.train();
          net.setGenerator(new Generator(77));
          const t1 = net.forward(x, 1, pos);
          const t2 = net.forward(x, 1, pos);
          net.setGenerator(new Generator(77));
          const t1again = net.forward(x, 1, pos);
          assert.equal(maxDiff(t1, t1again), 0, 'same generator seed → same masks');
          assert.ok(maxDiff(t1, t2) > 1e-4, 'masks advance');
          assert.ok(maxDiff(t1, e1) > 1e-4, 'dropout acts in training');
        }),
      );
    } finally {
      net.dispose();
    }
  });

  for (const model_type of ['SongUNet', 'DhariwalUNet'] as const) {
    test(`${model_type}: label_dropout 1 in training equals zero labels; eval keeps labels`, () => {
      const base = { img_resolution: 16, img_channels: 5, out_channels: 3, model_channels: 16, channel_mult: [1, 2], num_blocks: 1, attn_resolutions: [], dropout: 0, label_dim: 4, label_dropout: 1, model_type };
      const net = createNetwork(parseNetworkConfig(base), { generator: new Generator(2) });
      try {
        noGrad(() => { for (const [k, p] of net.namedParameters()) if (/conv1\.weight|aux_conv\.weight|out_conv\.weight/.test(k)) p.copy_(scope(() => new Generator(4).randn([...p.shape]).mul(0.05))); });
        const g = new Generator(8);
        const x = g.randn([3, 3, 8, 8]);
        const pos = g.randn([3, 2, 8, 8]);
        const labels = F.pad(full([3, 1], 1), [0, 3]);
        noGrad(() =>
          scope(() => {
            net.eval();
            const withLabels = net.forward(x, 0.5, pos, labels);
            const zeroLabels = net.forward(x, 0.5, pos, zeros([3, 4]));
            assert.ok(maxDiff(withLabels, zeroLabels) > 1e-4);
            net.train();
            const dropped = net.forward(x, 0.5, pos, labels);
            assert.ok(maxDiff(dropped, zeroLabels) < 1e-6);
          }),
        );
      } finally {
        net.dispose();
      }
    });
  }
});

describe('config', () => {
  test('validation names every problem before building', () => {
    assert.throws(() => parseNetworkConfig({ model_type: 'SongUNet', img_resolution: 20, img_channels: 5, channel_mult: [1, 2, 2, 2] }), /img_resolution 20 is not divisible by 2\^\(levels−1\) = 8/);
    assert.throws(() => parseNetworkConfig({ model_type: 'DhariwalUNet', img_resolution: 32, img_channels: 5, embedding_type: 'fourier' }), /embedding_type is a SongUNet option/);
    assert.throws(() => parseNetworkConfig({ model_type: 'SongUNet', img_resolution: 32, img_channels: 5, chanel_mult: [1] }), /unknown key 'chanel_mult'/);
    assert.throws(() => parseNetworkConfig({ model_type: 'SongUNet', img_resolution: 32, img_channels: 3, out_channels: 5 }), /out_channels \(5\) exceeds img_channels/);
    assert.throws(() => parseNetworkConfig({ model_type: 'SongUNet', img_resolution: 32, img_channels: 5, encoder_type: 'fancy', dropout: 1.5 }), /encoder_type must be one of[\s\S]*dropout must be in/);
    assert.throws(() => parseNetworkConfig({ img_channels: 5 }), /img_resolution is required/);
    // A GroupNorm that cannot split its channels is named by its state-dict path.
    assert.throws(() => createNetwork(tiny({ model_channels: 130 }), { initialize: false }), /enc\.32x32_block0: GroupNorm: 130 channels/);
    assert.throws(() => createNetwork(tiny({ model_channels: 3 }), { initialize: false }), /map_noise: PositionalEmbedding/);
    assert.throws(() => createNetwork(tiny({ resample_filter: [1, 2, 1] }), { initialize: false }), /resample_filter/);
  });

  test('ddpmpp-cpu preset: 1,261,123 parameters; trains on 8×8, 16×16 and 32×32 patches of 32×32 images', () => {
    const cfg = presetConfig('ddpmpp-cpu', { imgResolution: 32 });
    const net = createNetwork(cfg, { generator: new Generator(0) });
    try {
      assert.equal(net.parameterCount(), 1_261_123);
      net.train();
      const g = new Generator(1);
      for (const size of [8, 16, 32]) {
        scope(() => {
          const D = net.forward(g.randn([2, 3, size, size]), g.rand([2]).add(0.1), coords(2, size, 32));
          assert.deepEqual([...D.shape], [2, 3, size, size]);
          D.square().mean().backward();
        });
      }
      assert.ok(net.parameters().every((p) => scope(() => p.grad !== null && p.grad.allFinite())));
    } finally {
      net.dispose();
    }
  });

  test('presets follow train.py; resolve fills the official defaults', () => {
    const d = resolveNetworkConfig(presetConfig('ddpmpp', { imgResolution: 64 }));
    assert.equal(d.img_channels, 5);
    assert.equal(d.out_channels, 3);
    assert.deepEqual(d.channel_mult, [2, 2, 2]);
    assert.equal(d.num_blocks, 4);
    assert.deepEqual(d.attn_resolutions, [16]);
    assert.equal(d.dropout, 0.13);
    const n = resolveNetworkConfig(presetConfig('ncsnpp', { imgResolution: 64 }));
    assert.equal(n.embedding_type, 'fourier');
    assert.equal(n.encoder_type, 'residual');
    assert.deepEqual(n.resample_filter, [1, 3, 3, 1]);
    assert.equal(n.channel_mult_noise, 2);
    const a = resolveNetworkConfig(presetConfig('adm', { imgResolution: 32, imageChannels: 4 }));
    assert.equal(a.model_type, 'DhariwalUNet');
    assert.equal(a.num_blocks, 3);
    assert.deepEqual(a.attn_resolutions, [32, 16, 8]);
    assert.equal(a.sigma_max, Infinity);
  });
});

describe('building blocks', () => {
  test('Conv2d resampling: [1,1] down = 2×2 average, up = nearest ×2; [1,3,3,1] filter = outer/64', () => {
    const g = new Generator(0);
    const x = g.randn([2, 3, 8, 8]);
    const down = new Conv2d(3, 3, 0, { down: true });
    const up = new Conv2d(3, 3, 0, { up: true });
    const fir = new Conv2d(3, 3, 0, { down: true, resampleFilter: [1, 3, 3, 1] });
    scope(() => {
      assert.ok(maxDiff(down.forward(x), F.avgPool2d(x, 2)) < 1e-6);
      assert.ok(maxDiff(up.forward(x), F.interpolate(x, [16, 16], 'nearest')) < 1e-6);
      const f = fir.stateDict().get('resample_filter')!;
      const taps = [1, 3, 3, 1];
      assert.deepEqual(Array.from(f.data() as Float32Array), taps.flatMap((a) => taps.map((b) => Math.fround((a * b) / 64))));
      assert.deepEqual([...fir.forward(x).shape], [2, 3, 4, 4]);
      // Fused down-sampling conv (NCSN++ aux_residual) halves the size too.
      const fused = new Conv2d(3, 4, 3, { down: true, fusedResample: true, resampleFilter: taps, generator: g });
      assert.deepEqual([...fused.forward(x).shape], [2, 4, 4, 4]);
      const fusedUp = new Conv2d(3, 4, 3, { up: true, fusedResample: true, resampleFilter: taps, generator: g });
      assert.deepEqual([...fusedUp.forward(x).shape], [2, 4, 16, 16]);
    });
    // No resampling → no resample_filter entry (EDM registers None, which the state dict omits).
    assert.deepEqual([...new Conv2d(3, 4, 3, { generator: g }).stateDict().keys()], ['weight', 'bias']);
  });

  test('GroupNorm groups = min(32, C // 4)', () => {
    assert.equal(groupCount(5), 1);
    assert.equal(groupCount(32), 8);
    assert.equal(groupCount(128), 32);
    assert.equal(groupCount(384), 32);
    assert.equal(new GroupNorm(96).numGroups, 24);
    assert.throws(() => new GroupNorm(3), /GroupNorm: 3 channels/);
  });

  test('PositionalEmbedding: endpoint frequencies (1/10000)^(k/(C/2−1)); layout [cos, sin]', () => {
    const e = new PositionalEmbedding(128, { endpoint: true });
    const f = e.frequencies().toArray();
    assert.equal(f[0], 1);
    assert.ok(Math.abs(f[63]! - 1e-4) < 1e-9);
    const adm = new PositionalEmbedding(192).frequencies().toArray();
    assert.ok(Math.abs(adm[96 - 1]! - Math.pow(1e-4, 95 / 96)) < 1e-9);
    const out = e.forward(tensor([0.5])).toArray();
    assert.ok(Math.abs(out[1]! - Math.cos(0.5 * f[1]!)) < 1e-6);
    assert.ok(Math.abs(out[64 + 1]! - Math.sin(0.5 * f[1]!)) < 1e-6);
    const fe = new FourierEmbedding(8, { generator: new Generator(0) });
    const fo = fe.forward(tensor([0.25])).toArray();
    const freqs = fe.freqs.toArray();
    assert.ok(Math.abs(fo[0]! - Math.cos(2 * Math.PI * freqs[0]! * 0.25)) < 1e-4);
    assert.ok(Math.abs(fo[4]! - Math.sin(2 * Math.PI * freqs[0]! * 0.25)) < 1e-4);
  });

  test('attention reads q, k, v interleaved per channel (3c, 3c+1, 3c+2) and softmaxes over keys', () => {
    // N=1, C=2 (one head), H=1, W=3 tokens.
    const g = new Generator(3);
    const qkv = g.randn([1, 6, 1, 3]);
    const v = Array.from(qkv.data() as Float32Array);
    const at = (ch: number, t: number) => v[ch * 3 + t]!;
    const expected: number[] = [];
    for (let c = 0; c < 2; c++)
      for (let i = 0; i < 3; i++) {
        const logits = [0, 1, 2].map((j) => (at(0, i) * at(1, j) + at(3, i) * at(4, j)) / Math.sqrt(2));
        const mx = Math.max(...logits);
        const w = logits.map((l) => Math.exp(l - mx));
        const s = w.reduce((a, b) => a + b, 0);
        expected.push(w.reduce((acc, wj, j) => acc + (wj / s) * at(3 * c + 2, j), 0));
      }
    const a = interleavedSelfAttention(qkv, 1);
    assert.deepEqual([...a.shape], [1, 2, 1, 3]);
    const got = a.toArray();
    for (let k = 0; k < 6; k++) assert.ok(Math.abs(got[k]! - expected[k]!) < 1e-5, `${got[k]} vs ${expected[k]}`);
  });

  test('Linear: EDM layout weight [out, in]; bias optional', () => {
    const l = new Linear(3, 2, { generator: new Generator(0), initMode: 'xavier_uniform' });
    assert.deepEqual([...l.weight.shape], [2, 3]);
    assert.deepEqual([...l.forward(zeros([4, 3])).shape], [4, 2]);
    assert.equal(new Linear(3, 2, { bias: false, generator: new Generator(0) }).bias, null);
  });

  test('preconditioning coefficients (golden values from the EDM formulas)', () => {
    const net = new Preconditioner({ imgResolution: 16, imgChannels: 5, outChannels: 3, modelType: 'SongUNet', initialize: false, model: { modelChannels: 16, channelMult: [1], numBlocks: 1 } });
    try {
      const cases: [number, number, number, number, number][] = [
        [0.002, 0.999984, 0.001999984, 1.999984, -1.553652],
        [0.5, 0.5, 0.353553, 1.414214, -0.173287],
        [80, 3.906097e-5, 0.49999, 0.0124998, 1.095507],
      ];
      for (const [s, skip, out, cin, noise] of cases) {
        const c = net.coefficients(tensor([s]));
        const close = (t: Tensor, want: number) => Math.abs(t.item() - want) <= 1e-5 * Math.max(1, Math.abs(want)) + 1e-9;
        assert.ok(close(c.cSkip, skip), `c_skip(${s}) = ${c.cSkip.item()}`);
        assert.ok(close(c.cOut, out), `c_out(${s}) = ${c.cOut.item()}`);
        assert.ok(close(c.cIn, cin), `c_in(${s}) = ${c.cIn.item()}`);
        assert.ok(close(c.cNoise, noise), `c_noise(${s}) = ${c.cNoise.item()}`);
      }
      assert.equal(net.sigmaData, 0.5);
      assert.equal(net.positionChannels, 2);
    } finally {
      net.dispose();
    }
  });

  test('D = c_skip·x + c_out·F with the coordinates concatenated unscaled after c_in·x', () => {
    const net = createNetwork(tiny(), { generator: new Generator(21) });
    try {
      const g = new Generator(4);
      const x = g.randn([2, 3, 8, 8]);
      const pos = g.randn([2, 2, 8, 8]);
      const sigma = tensor([0.3, 7]);
      noGrad(() =>
        scope(() => {
          const D = net.forward(x, sigma, pos);
          const s = sigma.reshape(-1, 1, 1, 1);
          const { cSkip, cOut, cIn, cNoise } = net.coefficients(s);
          const Fx = net.model.forward(cat([cIn.mul(x), pos], 1), cNoise.flatten());
          assert.ok(maxDiff(D, cSkip.mul(x).add(cOut.mul(Fx))) < 1e-6);
        }),
      );
    } finally {
      net.dispose();
    }
  });
});
