// The Stable Diffusion VAE against diffusers' own AutoencoderKL: the fixtures
// in fixtures/vae (made by make_refs.py from diffusers' code on random weights,
// block_out_channels [8, 16, 16], norm_num_groups 4) give the posterior of an
// image batch and the decoding of a latent batch. Loading with strict names
// proves our names equal diffusers'; the legacy-name file, conv-shaped
// attention weights and a file without config.json must give the same
// numbers; wrong files fail with errors naming the tensor or the download.
import { test, describe } from 'node:test';
import assert from 'node:assert/strict';
import { copyFileSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { readSafetensors, writeSafetensors } from '../src/io/safetensors.js';
import { AutoencoderKL, loadAutoencoderKL, VAE_WEIGHTS_FILE, type GaussianPosterior } from '../src/networks/index.js';
import { Generator, full, scope, zeros, type Tensor } from '../src/tensor/index.js';

const DIR = fileURLToPath(new URL('../../test/fixtures/vae/', import.meta.url));
const WEIGHTS = join(DIR, VAE_WEIGHTS_FILE);
const LEGACY = join(DIR, 'diffusion_pytorch_model.legacy.safetensors');
const TOLERANCE = 1e-4;

/** max |a − b| / max |b|: robust to the last-bit differences of CPU kernels (AMD vs Intel, BLAS builds). */
function relMaxErr(a: Tensor, b: Tensor): { abs: number; rel: number } {
  assert.deepEqual([...a.shape], [...b.shape], 'shape');
  return scope(() => {
    const abs = a.sub(b).abs().amax().item();
    return { abs, rel: abs / b.abs().amax().item() };
  });
}
function assertClose(what: string, a: Tensor, b: Tensor, log: (s: string) => void): void {
  const e = relMaxErr(a, b);
  log(`${what}: max |diff| ${e.abs.toExponential(2)}, relative to max |ref| ${e.rel.toExponential(2)}`);
  assert.ok(e.rel < TOLERANCE, `${what}: relative error ${e.rel} ≥ ${TOLERANCE}`);
}
const maxDiff = (a: Tensor, b: Tensor) => scope(() => a.sub(b).abs().amax().item());

/** Every output for the fixture inputs. */
function outputs(vae: AutoencoderKL, refs: Map<string, Tensor>): { posterior: GaussianPosterior; std: Tensor; sample: Tensor; decoded: Tensor } {
  const posterior = vae.encode(refs.get('x')!);
  return { posterior, std: vae.std(posterior), sample: vae.sample(posterior, new Generator(1234)), decoded: vae.decode(refs.get('z')!) };
}

/** A scratch folder with a weights file made from the fixture by `edit` (and config.json unless told). */
function withEditedFile(edit: (t: Map<string, Tensor>) => void, fn: (file: string) => void, options: { config?: boolean; from?: string } = {}): void {
  const dir = mkdtempSync(join(tmpdir(), 'vae-test-'));
  try {
    const { tensors } = readSafetensors(options.from ?? WEIGHTS);
    edit(tensors);
    const file = join(dir, VAE_WEIGHTS_FILE);
    writeSafetensors(file, tensors);
    for (const t of tensors.values()) t.dispose();
    if (options.config !== false) copyFileSync(join(DIR, 'config.json'), join(dir, 'config.json'));
    fn(file);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

describe('AutoencoderKL vs diffusers', () => {
  const { tensors: refs, metadata } = readSafetensors(join(DIR, 'refs.safetensors'));

  test('names in diffusers order, parameter count, posterior, sample and decoding within 1e-4', (t) => {
    const vae = loadAutoencoderKL(WEIGHTS);
    try {
      assert.deepEqual([...vae.stateDict().keys()], JSON.parse(metadata.state_dict_names!));
      assert.equal(vae.parameterCount(), 83_679);
      assert.deepEqual(vae.config.blockOutChannels, [8, 16, 16]);
      assert.equal(vae.config.normNumGroups, 4);
      assert.equal(vae.downsampleFactor, 4);
      scope(() => {
        const o = outputs(vae, refs);
        const log = (s: string) => t.diagnostic(s);
        assertClose('mean', o.posterior.mean, refs.get('mean')!, log);
        assertClose('logvar', o.posterior.logvar, refs.get('logvar')!, log);
        assertClose('std', o.std, refs.get('std')!, log);
        assertClose('sample (seed 1234)', o.sample, refs.get('sample')!, log);
        assertClose('decoded', o.decoded, refs.get('decoded')!, log);
        // std and sample are dominated by the clamped channel 0 (std e^10): the unclamped channels on their own.
        assertClose('std, channels 2–3', o.std.narrow(1, 2, 2), refs.get('std')!.narrow(1, 2, 2), log);
        assertClose('sample, channels 2–3', o.sample.narrow(1, 2, 2), refs.get('sample')!.narrow(1, 2, 2), log);
        // The clamp: channel 0 lies above 20 and channel 1 below −30 before it.
        assert.equal(o.posterior.logvar.select(1, 0).sub(20).abs().amax().item(), 0);
        assert.equal(o.posterior.logvar.select(1, 1).add(30).abs().amax().item(), 0);
      });
    } finally {
      vae.dispose();
    }
  });

  test('legacy attention names (query, key, value, proj_attn), also as 1×1 conv weights, load to the same outputs', () => {
    const modern = loadAutoencoderKL(WEIGHTS);
    const legacy = loadAutoencoderKL(LEGACY);
    try {
      scope(() => {
        const mean = modern.encode(refs.get('x')!).mean;
        const decoded = modern.decode(refs.get('z')!);
        assert.equal(maxDiff(legacy.encode(refs.get('x')!).mean, mean), 0);
        assert.equal(maxDiff(legacy.decode(refs.get('z')!), decoded), 0);
        withEditedFile(
          (ts) => {
            for (const [name, v] of ts)
              if (/attentions\.0\.(query|key|value)\.weight$/.test(name)) ts.set(name, v.reshape(v.shape[0]!, v.shape[1]!, 1, 1));
              else if (/attentions\.0\.proj_attn\.weight$/.test(name)) ts.set(name, v.reshape(v.shape[0]!, v.shape[1]!, 1));
          },
          (file) => {
            const conv = loadAutoencoderKL(file);
            try {
              assert.equal(maxDiff(conv.encode(refs.get('x')!).mean, mean), 0);
              assert.equal(maxDiff(conv.decode(refs.get('z')!), decoded), 0);
            } finally {
              conv.dispose();
            }
          },
          { from: LEGACY },
        );
      });
    } finally {
      modern.dispose();
      legacy.dispose();
    }
  });

  test('without config.json the configuration comes from the shapes; norm_num_groups must then be given', () => {
    withEditedFile(
      () => {},
      (file) => {
        assert.throws(() => loadAutoencoderKL(file), (e: Error) => {
          assert.match(e.message, /inferred from the tensor shapes/);
          assert.match(e.message, /divisible by normNumGroups = 32/);
          assert.match(e.message, /config\.json beside the file or pass config\.normNumGroups/);
          return true;
        });
        const vae = loadAutoencoderKL(file, { config: { normNumGroups: 4 } });
        try {
          assert.deepEqual(vae.config.blockOutChannels, [8, 16, 16]);
          assert.equal(vae.config.layersPerBlock, 2);
          assert.equal(vae.config.latentChannels, 4);
          scope(() => assert.ok(relMaxErr(vae.decode(refs.get('z')!), refs.get('decoded')!).rel < TOLERANCE));
        } finally {
          vae.dispose();
        }
      },
      { config: false },
    );
  });

  test('a folder holding diffusion_pytorch_model.safetensors is accepted', () => {
    const vae = loadAutoencoderKL(DIR);
    try {
      assert.equal(vae.parameterCount(), 83_679);
    } finally {
      vae.dispose();
    }
  });
});

describe('AutoencoderKL file errors', () => {
  test('missing and unexpected names are listed with the file', () => {
    withEditedFile(
      (ts) => {
        ts.set('encoder.conv_inn.weight', ts.get('encoder.conv_in.weight')!);
        ts.delete('encoder.conv_in.weight');
      },
      (file) =>
        assert.throws(() => loadAutoencoderKL(file), (e: Error) => {
          assert.ok(e.message.startsWith(file), e.message);
          assert.match(e.message, /missing encoder\.conv_in\.weight/);
          assert.match(e.message, /unexpected encoder\.conv_inn\.weight/);
          return true;
        }),
    );
  });

  test('a wrong shape names the tensor, its shape and the expected one', () => {
    withEditedFile(
      (ts) => ts.set('decoder.mid_block.attentions.0.to_q.weight', zeros([16, 8])),
      (file) =>
        assert.throws(
          () => loadAutoencoderKL(file),
          /'decoder\.mid_block\.attentions\.0\.to_q\.weight' has shape \[16, 8\], expected \[16, 16\]/,
        ),
    );
    // The same through inference (no config.json): a config the other tensors contradict.
    withEditedFile(
      (ts) => ts.set('encoder.down_blocks.1.resnets.1.conv2.bias', zeros([15])),
      (file) =>
        assert.throws(
          () => loadAutoencoderKL(file, { config: { normNumGroups: 4 } }),
          /'encoder\.down_blocks\.1\.resnets\.1\.conv2\.bias' has shape \[15\], expected \[16\]/,
        ),
      { config: false },
    );
  });

  test('a missing file says where the VAE is downloaded and how to pass it', () => {
    for (const path of [join(tmpdir(), 'no-such-vae', VAE_WEIGHTS_FILE), mkdtempSync(join(tmpdir(), 'vae-empty-'))]) {
      assert.throws(() => loadAutoencoderKL(path), (e: Error) => {
        assert.match(e.message, /https:\/\/huggingface\.co\/stabilityai\/sd-vae-ft-ema/);
        assert.match(e.message, /diffusion_pytorch_model\.safetensors/);
        assert.match(e.message, /335 MB/);
        assert.match(e.message, /pass the path/);
        return true;
      });
      rmSync(path, { recursive: true, force: true });
    }
  });

  test('an unsupported config.json is refused naming the key', () => {
    const dir = mkdtempSync(join(tmpdir(), 'vae-config-'));
    try {
      copyFileSync(WEIGHTS, join(dir, VAE_WEIGHTS_FILE));
      const config = { _class_name: 'AutoencoderKL', block_out_channels: [8, 16, 16], layers_per_block: 2, norm_num_groups: 4,
        down_block_types: ['DownEncoderBlock2D', 'DownEncoderBlock2D', 'DownEncoderBlock2D'],
        up_block_types: ['UpDecoderBlock2D', 'AttnUpDecoderBlock2D', 'UpDecoderBlock2D'] };
      writeFileSync(join(dir, 'config.json'), JSON.stringify(config));
      assert.throws(() => loadAutoencoderKL(dir), /config\.json: unsupported AutoencoderKL config:[^]*'up_block_types'.*only UpDecoderBlock2D/);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe('AutoencoderKL module', () => {
  test('sample(): one randn of the mean\'s shape from the generator; reproducible; N(mean, std²)', () => {
    const vae = new AutoencoderKL({ blockOutChannels: [8], normNumGroups: 4, initialize: false });
    try {
      scope(() => {
        const posterior = { mean: full([4, 4, 32, 32], 3), logvar: full([4, 4, 32, 32], Math.log(4)) };
        const a = vae.sample(posterior, new Generator(7));
        const b = vae.sample(posterior, new Generator(7));
        const c = vae.sample(posterior, new Generator(8));
        assert.deepEqual([...a.shape], [4, 4, 32, 32]);
        assert.equal(maxDiff(a, b), 0);
        assert.ok(maxDiff(a, c) > 0.1);
        const eps = new Generator(7).randn([4, 4, 32, 32]);
        assert.ok(maxDiff(a, eps.mul(2).add(3)) < 1e-6);
        assert.ok(Math.abs(a.mean().item() - 3) < 0.05, `sample mean ${a.mean().item()}`);
        assert.ok(Math.abs(a.std().item() - 2) < 0.05, `sample std ${a.std().item()}`);
        assert.ok(maxDiff(vae.std(posterior), full([1], 2)) < 1e-6);
      });
    } finally {
      vae.dispose();
    }
  });

  test('the default configuration is sd-vae-ft-ema\'s (83,653,863 parameters, 248 tensors)', () => {
    const vae = new AutoencoderKL({ initialize: false });
    try {
      assert.equal(vae.parameterCount(), 83_653_863);
      assert.equal(vae.stateDict().size, 248);
      assert.equal(vae.config.scalingFactor, 0.18215);
      assert.equal(vae.downsampleFactor, 8);
    } finally {
      vae.dispose();
    }
  });

  test('random weights from a generator: reproducible, shapes through encode and decode, input checks', () => {
    const make = () => new AutoencoderKL({ blockOutChannels: [8, 16], layersPerBlock: 1, normNumGroups: 4, latentChannels: 2, generator: new Generator(3) });
    const vae = make();
    const again = make();
    try {
      scope(() => {
        const x = new Generator(0).rand([1, 3, 16, 24]).mul(2).sub(1);
        const p = vae.encode(x);
        assert.deepEqual([...p.mean.shape], [1, 2, 8, 12]);
        assert.deepEqual([...vae.decode(p.mean).shape], [1, 3, 16, 24]);
        assert.equal(maxDiff(again.encode(x).mean, p.mean), 0);
        assert.ok(maxDiff(vae.encode(x.double()).mean, p.mean) < 1e-6, 'float64 input is cast to the weights');
        assert.ok(maxDiff(vae.unscaleLatents(vae.scaleLatents(p.mean)), p.mean) < 1e-6);
        assert.throws(() => vae.encode(zeros([1, 4, 16, 16])), /encode: x must be \[N, 3, H, W\], got \[1,4,16,16\]/);
        assert.throws(() => vae.decode(zeros([1, 4, 4, 4])), /decode: z must be \[N, 2, H, W\]/);
        assert.throws(() => vae.encode(zeros([1, 3, 16, 16], { dtype: 'uint8' })), /floating tensor of images in \[−1, 1\], got uint8/);
        assert.throws(() => new AutoencoderKL({ blockOutChannels: [8, 12], normNumGroups: 8 }), /12 is not/);
      });
    } finally {
      vae.dispose();
      again.dispose();
    }
  });
});
