// The Stable Diffusion VAE: diffusers' AutoencoderKL with DownEncoderBlock2D /
// UpDecoderBlock2D blocks and a single-head mid-block attention, under
// diffusers' parameter names (encoder.down_blocks.0.resnets.0.norm1.weight,
// encoder.mid_block.attentions.0.to_q.weight, quant_conv.weight, …), so that a
// user's diffusion_pytorch_model.safetensors loads 1:1 (autoencoder-kl-file.ts).
// Registration order follows diffusers' constructors, so stateDict() lists the
// names in the order of diffusers' state_dict().
//
// Inference only: encode and decode run without autograd. Images are float
// NCHW in [−1, 1]; encode returns the posterior's mean and clamped log-variance
// (diffusers' DiagonalGaussianDistribution), decode takes a raw latent (not
// multiplied by scaling_factor: see scaleLatents / unscaleLatents).
import { Module, ModuleList } from '../nn/module.js';
import { Conv2d, type Conv2dOptions } from '../nn/conv2d.js';
import { GroupNorm } from '../nn/group-norm.js';
import { Linear } from '../nn/linear.js';
import { attentionWeights } from '../nn/attention.js';
import type { RandomInit } from '../nn/init.js';
import { noGrad } from '../tensor/autograd.js';
import * as F from '../tensor/functional.js';
import type { Generator } from '../tensor/random.js';
import { scope } from '../tensor/scope.js';
import type { Tensor } from '../tensor/tensor.js';
import { named, stripUndefined } from './unet-base.js';

/** diffusers' AutoencoderKL constructor arguments, camelCased (those this port supports). */
export interface AutoencoderKLOptions extends RandomInit {
  inChannels?: number;
  outChannels?: number;
  /** Channels of each resolution level; every level but the last halves the resolution. */
  blockOutChannels?: readonly number[];
  /** Resnets per encoder block (decoder blocks have one more). */
  layersPerBlock?: number;
  latentChannels?: number;
  /** Groups of every GroupNorm (no tensor shape shows it). */
  normNumGroups?: number;
  /** Latents for the diffusion model are (z − shiftFactor)·scalingFactor. */
  scalingFactor?: number;
  /** diffusers' shift_factor (null there = 0 here). */
  shiftFactor?: number;
  useQuantConv?: boolean;
  usePostQuantConv?: boolean;
  midBlockAddAttention?: boolean;
}

/** An AutoencoderKL's complete configuration (every option set; diffusers' config.json in camel case). */
export type AutoencoderKLConfig = Required<Omit<AutoencoderKLOptions, keyof RandomInit>>;

/** The configuration of stabilityai/sd-vae-ft-ema (and of the other SD 1.x/2.x VAEs). */
export const AUTOENCODER_KL_DEFAULTS: AutoencoderKLConfig = {
  inChannels: 3,
  outChannels: 3,
  blockOutChannels: [128, 256, 512, 512],
  layersPerBlock: 2,
  latentChannels: 4,
  normNumGroups: 32,
  scalingFactor: 0.18215,
  shiftFactor: 0,
  useQuantConv: true,
  usePostQuantConv: true,
  midBlockAddAttention: true,
};

/** The encoder's diagonal Gaussian: mean and log-variance, each [N, latentChannels, h, w]. */
export interface GaussianPosterior {
  mean: Tensor;
  /** Clamped to [−30, 20] as diffusers' DiagonalGaussianDistribution. */
  logvar: Tensor;
}

/** Every convolution and linear layer is drawn as torch's defaults (U(±1/√fan_in) for weight and bias). */
interface LayerInit extends RandomInit {
  initMode: 'kaiming_uniform';
  initWeight: number;
  initBias: number;
}
const TORCH_DEFAULT_INIT = { initMode: 'kaiming_uniform', initWeight: 1 / Math.sqrt(3), initBias: 1 / Math.sqrt(3) } as const;

/** diffusers builds every norm of the VAE with eps 1e-6 and exactly norm_num_groups groups. */
function groupNorm(channels: number, groups: number): GroupNorm {
  return new GroupNorm(channels, { numGroups: groups, minChannelsPerGroup: 1, eps: 1e-6 });
}

/** ResnetBlock2D without a time embedding: norm1, SiLU, conv1, norm2, SiLU, conv2, plus the (1×1-projected) input. */
class ResnetBlock2D extends Module {
  readonly norm1: GroupNorm;
  readonly conv1: Conv2d;
  readonly norm2: GroupNorm;
  readonly conv2: Conv2d;
  readonly convShortcut: Conv2d | null = null;

  constructor(inChannels: number, outChannels: number, groups: number, init: LayerInit) {
    super();
    this.norm1 = this.registerModule('norm1', groupNorm(inChannels, groups));
    this.conv1 = this.registerModule('conv1', new Conv2d(inChannels, outChannels, 3, init));
    this.norm2 = this.registerModule('norm2', groupNorm(outChannels, groups));
    this.conv2 = this.registerModule('conv2', new Conv2d(outChannels, outChannels, 3, init));
    if (inChannels !== outChannels) this.convShortcut = this.registerModule('conv_shortcut', new Conv2d(inChannels, outChannels, 1, init));
  }

  forward(x: Tensor): Tensor {
    return scope(() => {
      const h = this.conv1.forward(F.silu(this.norm1.forward(x)));
      const y = this.conv2.forward(F.silu(this.norm2.forward(h)));
      return (this.convShortcut ? this.convShortcut.forward(x) : x).add(y);
    });
  }
}

/** Downsample2D(use_conv, padding=0): pad right and bottom by one, then a stride-2 3×3 conv without padding. */
class Downsample2D extends Module {
  readonly conv: Conv2d;
  constructor(channels: number, init: LayerInit) {
    super();
    this.conv = this.registerModule('conv', new Conv2d(channels, channels, 3, init));
  }
  forward(x: Tensor): Tensor {
    // Our Conv2d pads symmetrically and has no stride, so the conv is called
    // here with its weights; the asymmetric pad is what makes an even side
    // exactly halve (as in the original LDM code).
    return scope(() => F.conv2d(F.pad(x, [0, 1, 0, 1]), this.conv.weight!, this.conv.bias, { stride: 2 }));
  }
}

/** Upsample2D(use_conv): nearest-neighbour ×2, then a 3×3 conv. */
class Upsample2D extends Module {
  readonly conv: Conv2d;
  constructor(channels: number, init: LayerInit) {
    super();
    this.conv = this.registerModule('conv', new Conv2d(channels, channels, 3, init));
  }
  forward(x: Tensor): Tensor {
    return scope(() => this.conv.forward(F.interpolate(x, [x.shape[2]! * 2, x.shape[3]! * 2], 'nearest')));
  }
}

/**
 * The mid-block Attention (diffusers' _from_deprecated_attn_block): GroupNorm,
 * then single-head self-attention over the H·W positions with q, k, v and the
 * output projection as Linear layers on the channel vector, scale 1/√C, and
 * the input added back.
 */
class MidBlockAttention extends Module {
  readonly groupNorm: GroupNorm;
  readonly toQ: Linear;
  readonly toK: Linear;
  readonly toV: Linear;
  readonly toOut: Linear;

  constructor(channels: number, groups: number, init: LayerInit) {
    super();
    this.groupNorm = this.registerModule('group_norm', groupNorm(channels, groups));
    this.toQ = this.registerModule('to_q', new Linear(channels, channels, init));
    this.toK = this.registerModule('to_k', new Linear(channels, channels, init));
    this.toV = this.registerModule('to_v', new Linear(channels, channels, init));
    // diffusers' to_out is a ModuleList [Linear, Dropout]; only the Linear has weights.
    const toOut = this.registerModule('to_out', new ModuleList<Linear>());
    this.toOut = toOut.push(new Linear(channels, channels, init));
  }

  forward(x: Tensor): Tensor {
    const [n, c, h, w] = x.shape as [number, number, number, number];
    return scope(() => {
      const tokens = this.groupNorm.forward(x).reshape(n, c, h * w).transpose(1, 2); // [N, L, C]
      const q = this.toQ.forward(tokens);
      const k = this.toK.forward(tokens);
      const v = this.toV.forward(tokens);
      // One head of width C: the fused kernel's default scale 1/√C is diffusers' scale.
      const a = F.fusedAttentionAvailable()
        ? F.scaledDotProductAttention(q.unsqueeze(1), k.unsqueeze(1), v.unsqueeze(1)).squeeze(1)
        : attentionWeights(q.transpose(1, 2), k.transpose(1, 2)).bmm(v);
      return this.toOut.forward(a).transpose(1, 2).reshape(n, c, h, w).add(x);
    });
  }
}

/** UNetMidBlock2D: resnet, then (attention, resnet); diffusers registers `attentions` before `resnets`. */
class UNetMidBlock2D extends Module {
  readonly attentions: ModuleList<MidBlockAttention>;
  readonly resnets: ModuleList<ResnetBlock2D>;

  constructor(channels: number, groups: number, addAttention: boolean, init: LayerInit) {
    super();
    this.attentions = this.registerModule('attentions', new ModuleList<MidBlockAttention>());
    this.resnets = this.registerModule('resnets', new ModuleList<ResnetBlock2D>());
    this.resnets.push(new ResnetBlock2D(channels, channels, groups, init));
    if (addAttention) this.attentions.push(new MidBlockAttention(channels, groups, init));
    this.resnets.push(new ResnetBlock2D(channels, channels, groups, init));
  }

  forward(x: Tensor): Tensor {
    return scope(() => {
      let h = this.resnets.items[0]!.forward(x);
      for (const a of this.attentions.items) h = a.forward(h);
      return this.resnets.items[1]!.forward(h);
    });
  }
}

/** DownEncoderBlock2D / UpDecoderBlock2D: resnets, then an optional resampler (its list named downsamplers / upsamplers). */
class ResampleBlock extends Module {
  readonly resnets: ModuleList<ResnetBlock2D>;
  readonly resample: Downsample2D | Upsample2D | null = null;

  constructor(kind: 'down' | 'up', inChannels: number, outChannels: number, layers: number, resample: boolean, groups: number, init: LayerInit) {
    super();
    this.resnets = this.registerModule('resnets', new ModuleList<ResnetBlock2D>());
    for (let i = 0; i < layers; i++) this.resnets.push(new ResnetBlock2D(i === 0 ? inChannels : outChannels, outChannels, groups, init));
    if (resample) {
      const list = this.registerModule(kind === 'down' ? 'downsamplers' : 'upsamplers', new ModuleList<Downsample2D | Upsample2D>());
      this.resample = list.push(kind === 'down' ? new Downsample2D(outChannels, init) : new Upsample2D(outChannels, init));
    }
  }

  forward(x: Tensor): Tensor {
    return scope(() => {
      let h = x;
      for (const r of this.resnets.items) h = r.forward(h);
      return this.resample ? this.resample.forward(h) : h;
    });
  }
}

/** diffusers' Encoder with double_z: image → [N, 2·latentChannels, H/f, W/f] (mean and log-variance stacked). */
class Encoder extends Module {
  readonly convIn: Conv2d;
  readonly downBlocks: ModuleList<ResampleBlock>;
  readonly midBlock: UNetMidBlock2D;
  readonly convNormOut: GroupNorm;
  readonly convOut: Conv2d;

  constructor(o: AutoencoderKLConfig, init: LayerInit) {
    super();
    const ch = o.blockOutChannels;
    const last = ch[ch.length - 1]!;
    this.convIn = this.registerModule('conv_in', new Conv2d(o.inChannels, ch[0]!, 3, init));
    this.downBlocks = this.registerModule('down_blocks', new ModuleList<ResampleBlock>());
    ch.forEach((cout, i) => {
      const cin = i === 0 ? ch[0]! : ch[i - 1]!;
      this.downBlocks.push(new ResampleBlock('down', cin, cout, o.layersPerBlock, i < ch.length - 1, o.normNumGroups, init));
    });
    this.midBlock = this.registerModule('mid_block', new UNetMidBlock2D(last, o.normNumGroups, o.midBlockAddAttention, init));
    this.convNormOut = this.registerModule('conv_norm_out', groupNorm(last, o.normNumGroups));
    this.convOut = this.registerModule('conv_out', new Conv2d(last, 2 * o.latentChannels, 3, init));
  }

  forward(x: Tensor): Tensor {
    return scope(() => {
      let h = this.convIn.forward(x);
      for (const b of this.downBlocks.items) h = b.forward(h);
      h = this.midBlock.forward(h);
      return this.convOut.forward(F.silu(this.convNormOut.forward(h)));
    });
  }
}

/** diffusers' Decoder: latent → image; up blocks run from the last level to the first, each with layersPerBlock + 1 resnets. */
class Decoder extends Module {
  readonly convIn: Conv2d;
  readonly upBlocks: ModuleList<ResampleBlock>;
  readonly midBlock: UNetMidBlock2D;
  readonly convNormOut: GroupNorm;
  readonly convOut: Conv2d;

  constructor(o: AutoencoderKLConfig, init: LayerInit) {
    super();
    const reversed = [...o.blockOutChannels].reverse();
    const deepest = reversed[0]!;
    this.convIn = this.registerModule('conv_in', new Conv2d(o.latentChannels, deepest, 3, init));
    // diffusers registers the (then empty) up_blocks list before mid_block.
    this.upBlocks = this.registerModule('up_blocks', new ModuleList<ResampleBlock>());
    this.midBlock = this.registerModule('mid_block', new UNetMidBlock2D(deepest, o.normNumGroups, o.midBlockAddAttention, init));
    reversed.forEach((cout, i) => {
      const cin = i === 0 ? deepest : reversed[i - 1]!;
      this.upBlocks.push(new ResampleBlock('up', cin, cout, o.layersPerBlock + 1, i < reversed.length - 1, o.normNumGroups, init));
    });
    const first = o.blockOutChannels[0]!;
    this.convNormOut = this.registerModule('conv_norm_out', groupNorm(first, o.normNumGroups));
    this.convOut = this.registerModule('conv_out', new Conv2d(first, o.outChannels, 3, init));
  }

  forward(z: Tensor): Tensor {
    return scope(() => {
      let h = this.midBlock.forward(this.convIn.forward(z));
      for (const b of this.upBlocks.items) h = b.forward(h);
      return this.convOut.forward(F.silu(this.convNormOut.forward(h)));
    });
  }
}

/**
 * The Stable Diffusion VAE (diffusers' AutoencoderKL) under diffusers' parameter names, for inference:
 * `encode` images to latents, `decode` latents to images, both in [−1, 1].
 */
export class AutoencoderKL extends Module {
  readonly config: AutoencoderKLConfig;
  /** Image side / latent side: 2^(levels − 1). */
  readonly downsampleFactor: number;
  readonly encoder: Encoder;
  readonly decoder: Decoder;
  readonly quantConv: Conv2d | null = null;
  readonly postQuantConv: Conv2d | null = null;

  /**
   * Random weights need `{ generator }` (drawn as torch's default init);
   * `{ initialize: false }` allocates zeros for weights that are loaded next.
   */
  constructor(options: AutoencoderKLOptions = {}) {
    super();
    const o: AutoencoderKLConfig = { ...AUTOENCODER_KL_DEFAULTS, ...stripUndefined(options) };
    o.blockOutChannels = [...o.blockOutChannels];
    checkAutoencoderKLConfig(o);
    this.config = o;
    this.downsampleFactor = 2 ** (o.blockOutChannels.length - 1);
    const init: LayerInit = { ...TORCH_DEFAULT_INIT, generator: options.generator, initialize: options.initialize };
    this.encoder = this.registerModule('encoder', named('encoder', () => new Encoder(o, init)));
    this.decoder = this.registerModule('decoder', named('decoder', () => new Decoder(o, init)));
    const conv1x1 = (c: number, opts: Conv2dOptions) => new Conv2d(c, c, 1, opts);
    if (o.useQuantConv) this.quantConv = this.registerModule('quant_conv', conv1x1(2 * o.latentChannels, init));
    if (o.usePostQuantConv) this.postQuantConv = this.registerModule('post_quant_conv', conv1x1(o.latentChannels, init));
    this.eval();
  }

  /** Images [N, inChannels, H, W] in [−1, 1] → the posterior over latents [N, latentChannels, H/f, W/f]. */
  encode(x: Tensor): GaussianPosterior {
    this.#checkInput('encode', 'x', x, this.config.inChannels);
    return noGrad(() =>
      scope(() => {
        let moments = this.encoder.forward(this.#asWeightDType(x));
        if (this.quantConv) moments = this.quantConv.forward(moments);
        const [mean, logvar] = moments.chunk(2, 1) as [Tensor, Tensor];
        return { mean: mean.contiguous(), logvar: logvar.clamp(-30, 20) };
      }),
    );
  }

  /** The posterior's standard deviation, exp(logvar / 2). */
  std(posterior: GaussianPosterior): Tensor {
    return noGrad(() => scope(() => posterior.logvar.mul(0.5).exp()));
  }

  /**
   * mean + std·ε with ε ~ N(0, I) drawn from `generator` in one call of the
   * mean's shape and dtype: with a Generator seeded s, the same latent as
   * diffusers' latent_dist.sample(torch.Generator().manual_seed(s)).
   */
  sample(posterior: GaussianPosterior, generator: Generator): Tensor {
    const { mean, logvar } = posterior;
    if (mean.shape.length !== logvar.shape.length || mean.shape.some((d, k) => d !== logvar.shape[k]))
      throw new Error(`AutoencoderKL.sample: mean [${mean.shape}] and logvar [${logvar.shape}] must have the same shape`);
    return noGrad(() =>
      scope(() => {
        const eps = generator.randn(mean.shape, { dtype: mean.dtype, device: mean.device });
        return mean.add(this.std(posterior).mul(eps));
      }),
    );
  }

  /** Latents [N, latentChannels, h, w] (raw, not scaled) → images [N, outChannels, h·f, w·f], roughly in [−1, 1]. */
  decode(z: Tensor): Tensor {
    this.#checkInput('decode', 'z', z, this.config.latentChannels);
    return noGrad(() =>
      scope(() => {
        const input = this.#asWeightDType(z);
        return this.decoder.forward(this.postQuantConv ? this.postQuantConv.forward(input) : input);
      }),
    );
  }

  /** A raw latent → the diffusion model's latent, (z − shift_factor)·scaling_factor (as diffusers' pipelines). */
  scaleLatents(z: Tensor): Tensor {
    return scope(() => (this.config.shiftFactor ? z.sub(this.config.shiftFactor) : z).mul(this.config.scalingFactor));
  }
  /** The diffusion model's latent → a raw latent for decode: z / scaling_factor + shift_factor. */
  unscaleLatents(z: Tensor): Tensor {
    return scope(() => {
      const raw = z.div(this.config.scalingFactor);
      return this.config.shiftFactor ? raw.add(this.config.shiftFactor) : raw;
    });
  }

  /** Checks rank, channels and dtype (any floating dtype: it is cast to the weights'). */
  #checkInput(method: string, what: string, t: Tensor, channels: number): void {
    if (t.ndim !== 4 || t.shape[1] !== channels)
      throw new Error(`AutoencoderKL.${method}: ${what} must be [N, ${channels}, H, W], got [${t.shape}]`);
    if (!['float32', 'float64', 'float16', 'bfloat16'].includes(t.dtype))
      throw new Error(
        `AutoencoderKL.${method}: ${what} must be a floating tensor${method === 'encode' ? ' of images in [−1, 1]' : ''}, got ${t.dtype}`,
      );
  }
  #asWeightDType(t: Tensor): Tensor {
    const dtype = this.encoder.convIn.weight!.dtype;
    return t.dtype === dtype ? t : t.to(dtype);
  }
}

const isPosInt = (v: unknown): v is number => typeof v === 'number' && Number.isInteger(v) && v > 0;

/** Throws one error listing every problem of a configuration. */
export function checkAutoencoderKLConfig(o: AutoencoderKLConfig): void {
  const problems: string[] = [];
  for (const key of ['inChannels', 'outChannels', 'layersPerBlock', 'latentChannels', 'normNumGroups'] as const)
    if (!isPosInt(o[key])) problems.push(`${key} must be a positive integer, got ${JSON.stringify(o[key])}`);
  const ch = o.blockOutChannels;
  if (!Array.isArray(ch) || ch.length === 0 || !ch.every(isPosInt))
    problems.push(`blockOutChannels must be a non-empty list of positive integers, got ${JSON.stringify(ch)}`);
  else if (isPosInt(o.normNumGroups)) {
    const bad = ch.filter((c) => c % o.normNumGroups !== 0);
    if (bad.length)
      problems.push(`every entry of blockOutChannels ${JSON.stringify(ch)} must be divisible by normNumGroups = ${o.normNumGroups} (GroupNorm), but ${bad.join(', ')} ${bad.length > 1 ? 'are' : 'is'} not`);
  }
  if (!(typeof o.scalingFactor === 'number' && Number.isFinite(o.scalingFactor) && o.scalingFactor !== 0))
    problems.push(`scalingFactor must be a finite non-zero number, got ${JSON.stringify(o.scalingFactor)}`);
  if (!(typeof o.shiftFactor === 'number' && Number.isFinite(o.shiftFactor))) problems.push(`shiftFactor must be a finite number, got ${JSON.stringify(o.shiftFactor)}`);
  for (const key of ['useQuantConv', 'usePostQuantConv', 'midBlockAddAttention'] as const)
    if (typeof o[key] !== 'boolean') problems.push(`${key} must be true or false, got ${JSON.stringify(o[key])}`);
  if (problems.length) throw new Error(`AutoencoderKL: invalid configuration:\n  - ${problems.join('\n  - ')}`);
}
