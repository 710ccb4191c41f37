// DhariwalUNet: EDM's re-implementation of ADM (Dhariwal & Nichol, "Diffusion
// Models Beat GANs"), with parameter names equal to the official state dict:
// map_augment, map_layer0, map_layer1, map_label, enc.{R}x{R}_{conv|down|blockI},
// dec.{R}x{R}_{in0|in1|up|blockI}, out_norm, out_conv (R nominal, as SongUNet).
//
// Differences from SongUNet: positional embedding without endpoint and without
// the sin/cos swap; the class label is added AFTER the two mapping linears
// (noise → Linear → SiLU → Linear → + label → SiLU); blocks use adaptive
// scale/shift, skip_scale 1, eps 1e-5, pure-resample skips, heads = C/64
// (a block narrower than 64 channels gets no attention, as in EDM); weights
// and biases start at kaiming_uniform·√(1/3), "zero" layers at exactly 0.
import { Module, ModuleDict } from '../nn/module.js';
import { Conv2d } from '../nn/conv2d.js';
import { GroupNorm } from '../nn/group-norm.js';
import { Linear } from '../nn/linear.js';
import { PositionalEmbedding } from '../nn/embeddings.js';
import { UNetBlock, type UNetBlockOptions } from '../nn/unet-block.js';
import type { InitOptions, RandomInit } from '../nn/init.js';
import * as F from '../tensor/functional.js';
import { cat } from '../tensor/creation.js';
import { scope } from '../tensor/scope.js';
import type { Tensor } from '../tensor/tensor.js';
import { checkCommonOptions, named, stripUndefined, UNetBase, type UNetCommonOptions } from './unet-base.js';

/**
 * DhariwalUNet's constructor options: the options every U-Net here takes (the official `DhariwalUNet`
 * arguments in camel case).
 */
export type DhariwalUNetOptions = UNetCommonOptions;

/** The DhariwalUNet defaults of the official constructor. */
export const DHARIWAL_UNET_DEFAULTS: Required<Omit<DhariwalUNetOptions, keyof RandomInit | 'imgResolution' | 'inChannels' | 'outChannels'>> = {
  labelDim: 0,
  augmentDim: 0,
  modelChannels: 192,
  channelMult: [1, 2, 3, 4],
  channelMultEmb: 4,
  numBlocks: 3,
  attnResolutions: [32, 16, 8],
  dropout: 0.1,
  labelDropout: 0,
};

/** One step of the encoder, in order (what forward() runs; the ONNX exporter walks the same plan). */
export type DhariwalEncoderStep = { kind: 'conv'; module: Conv2d } | { kind: 'block'; module: UNetBlock };
/** One step of the decoder: a block, after concatenating the newest skip when `concat`. */
export type DhariwalDecoderStep = { module: UNetBlock; concat: boolean };

/**
 * EDM's ADM U-Net (the official DhariwalUNet, after Dhariwal & Nichol), its parameters named as the official
 * state dict.
 */
export class DhariwalUNet extends UNetBase {
  readonly mapNoise: PositionalEmbedding;
  readonly mapAugment: Linear | null = null;
  readonly mapLayer0: Linear;
  readonly mapLayer1: Linear;
  readonly mapLabel: Linear | null = null;
  readonly enc: ModuleDict;
  readonly dec: ModuleDict;
  readonly outNorm: GroupNorm;
  readonly outConv: Conv2d;
  readonly #encPlan: DhariwalEncoderStep[] = [];
  readonly #decPlan: DhariwalDecoderStep[] = [];

  constructor(options: DhariwalUNetOptions) {
    const o = { ...DHARIWAL_UNET_DEFAULTS, ...stripUndefined(options) } as Required<Omit<DhariwalUNetOptions, keyof RandomInit>>;
    checkCommonOptions('DhariwalUNet', o);
    if (o.modelChannels % 2 !== 0) throw new Error(`DhariwalUNet: model_channels must be even (positional embedding), got ${o.modelChannels}`);
    super({ ...o, levels: o.channelMult.length });
    const rng: RandomInit = { generator: options.generator, initialize: options.initialize };
    const embChannels = o.modelChannels * o.channelMultEmb;
    const init: InitOptions & RandomInit = { initMode: 'kaiming_uniform', initWeight: Math.sqrt(1 / 3), initBias: Math.sqrt(1 / 3), ...rng };
    const initZero: InitOptions = { initMode: 'kaiming_uniform', initWeight: 0, initBias: 0 };
    const block = (name: string, extra: Pick<UNetBlockOptions, 'inChannels' | 'outChannels'> & Partial<UNetBlockOptions>): UNetBlock =>
      named(name, () =>
        new UNetBlock({
          embChannels, channelsPerHead: 64, dropout: o.dropout, init, initZero, dropoutGenerator: this.rng, ...rng, ...extra,
        }),
      );

    const add = <M extends Module>(dict: ModuleDict, name: string, m: M): M => {
      dict.set(name, m);
      return m;
    };

    // Mapping (registration and random-draw order as the official constructor).
    this.mapNoise = this.registerModule('map_noise', new PositionalEmbedding(o.modelChannels));
    if (o.augmentDim)
      this.mapAugment = this.registerModule('map_augment', new Linear(o.augmentDim, o.modelChannels, { ...initZero, ...rng, bias: false }));
    this.mapLayer0 = this.registerModule('map_layer0', new Linear(o.modelChannels, embChannels, init));
    this.mapLayer1 = this.registerModule('map_layer1', new Linear(embChannels, embChannels, init));
    if (o.labelDim)
      this.mapLabel = this.registerModule(
        'map_label',
        new Linear(o.labelDim, embChannels, { initMode: 'kaiming_normal', initWeight: Math.sqrt(o.labelDim), bias: false, ...rng }),
      );

    // Encoder.
    this.enc = this.registerModule('enc', new ModuleDict());
    const skipChannels: number[] = [];
    let cout = o.inChannels;
    o.channelMult.forEach((mult, level) => {
      const res = o.imgResolution >> level;
      if (level === 0) {
        const cin = cout;
        cout = o.modelChannels * mult;
        const conv = add(this.enc, `${res}x${res}_conv`, new Conv2d(cin, cout, 3, init));
        this.#encPlan.push({ kind: 'conv', module: conv });
      } else {
        const down = add(this.enc, `${res}x${res}_down`, block(`enc.${res}x${res}_down`, { inChannels: cout, outChannels: cout, down: true }));
        this.#encPlan.push({ kind: 'block', module: down });
      }
      skipChannels.push(cout);
      for (let idx = 0; idx < o.numBlocks; idx++) {
        const cin = cout;
        cout = o.modelChannels * mult;
        const attention = o.attnResolutions.includes(res);
        const b = add(this.enc, `${res}x${res}_block${idx}`, block(`enc.${res}x${res}_block${idx}`, { inChannels: cin, outChannels: cout, attention }));
        this.#encPlan.push({ kind: 'block', module: b });
        skipChannels.push(cout);
      }
    });

    // Decoder.
    this.dec = this.registerModule('dec', new ModuleDict());
    const last = o.channelMult.length - 1;
    for (let level = last; level >= 0; level--) {
      const mult = o.channelMult[level]!;
      const res = o.imgResolution >> level;
      if (level === last) {
        const in0 = add(this.dec, `${res}x${res}_in0`, block(`dec.${res}x${res}_in0`, { inChannels: cout, outChannels: cout, attention: true }));
        const in1 = add(this.dec, `${res}x${res}_in1`, block(`dec.${res}x${res}_in1`, { inChannels: cout, outChannels: cout }));
        this.#decPlan.push({ module: in0, concat: false }, { module: in1, concat: false });
      } else {
        const up = add(this.dec, `${res}x${res}_up`, block(`dec.${res}x${res}_up`, { inChannels: cout, outChannels: cout, up: true }));
        this.#decPlan.push({ module: up, concat: false });
      }
      for (let idx = 0; idx <= o.numBlocks; idx++) {
        const cin = cout + skipChannels.pop()!;
        cout = o.modelChannels * mult;
        const attention = o.attnResolutions.includes(res);
        const b = add(this.dec, `${res}x${res}_block${idx}`, block(`dec.${res}x${res}_block${idx}`, { inChannels: cin, outChannels: cout, attention }));
        this.#decPlan.push({ module: b, concat: true });
      }
    }
    if (skipChannels.length !== 0) throw new Error(`DhariwalUNet: internal error: ${skipChannels.length} skip connections left unused`);
    this.outNorm = this.registerModule('out_norm', named('out_norm', () => new GroupNorm(cout)));
    this.outConv = this.registerModule('out_conv', new Conv2d(cout, o.outChannels, 3, { ...initZero, ...rng }));
  }

  /** The encoder's steps in the order forward() runs them. */
  get encoderPlan(): readonly Readonly<DhariwalEncoderStep>[] {
    return this.#encPlan;
  }
  /** The decoder's steps in the order forward() runs them. */
  get decoderPlan(): readonly Readonly<DhariwalDecoderStep>[] {
    return this.#decPlan;
  }

  override forward(x: Tensor, noiseLabels: Tensor, classLabels?: Tensor | null, augmentLabels?: Tensor | null): Tensor {
    return scope(() => {
      const labels = this.checkInputs(x, noiseLabels, classLabels, augmentLabels);
      const n = x.shape[0]!;

      // Mapping: noise (+ augment) → Linear → SiLU → Linear → + label → SiLU.
      let emb = this.mapNoise.forward(noiseLabels);
      if (this.mapAugment && augmentLabels) emb = emb.add(this.mapAugment.forward(augmentLabels));
      emb = F.silu(this.mapLayer0.forward(emb));
      emb = this.mapLayer1.forward(emb);
      if (this.mapLabel && labels) emb = emb.add(this.mapLabel.forward(this.dropLabels(labels, n, x.device)));
      emb = F.silu(emb);

      // Encoder.
      const skips: Tensor[] = [];
      let h = x;
      for (const e of this.#encPlan) {
        h = e.kind === 'block' ? e.module.forward(h, emb) : e.module.forward(h);
        skips.push(h);
      }

      // Decoder.
      for (const e of this.#decPlan) {
        if (e.concat) h = cat([h, skips.pop()!], 1);
        h = e.module.forward(h, emb);
      }
      return this.outConv.forward(F.silu(this.outNorm.forward(h)));
    });
  }
}
