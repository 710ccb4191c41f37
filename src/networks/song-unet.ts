// SongUNet: EDM's re-implementation of the DDPM++ and NCSN++ architectures
// (Song et al., "Score-Based Generative Modeling through SDEs"), with
// parameter and buffer names equal to the official state dict:
// map_noise[.freqs], map_label, map_augment, map_layer0, map_layer1,
// enc.{R}x{R}_{conv|down|blockI|aux_down|aux_skip|aux_residual},
// dec.{R}x{R}_{in0|in1|up|blockI|aux_up|aux_norm|aux_conv}, where R is the
// NOMINAL resolution img_resolution >> level. Attention is placed by that
// nominal resolution, so on a smaller patch the "16x16" attention blocks see a
// smaller map. Fully convolutional: any input whose sides are multiples of
// 2^(levels−1) works.
import { Module, ModuleDict } from '../nn/module.js';
import { Conv2d } from '../nn/conv2d.js';
import { GroupNorm } from '../nn/group-norm.js';
import { Linear } from '../nn/linear.js';
import { FourierEmbedding, PositionalEmbedding } from '../nn/embeddings.js';
import { UNetBlock, type UNetBlockOptions } from '../nn/unet-block.js';
import type { InitOptions, RandomInit } from '../nn/init.js';
import * as F from '../tensor/functional.js';
import { cat } from '../tensor/creation.js';
import { scope } from '../tensor/scope.js';
import type { Tensor } from '../tensor/tensor.js';
import { checkCommonOptions, named, stripUndefined, UNetBase, type UNetCommonOptions } from './unet-base.js';

/** The noise embedding: 'positional' (DDPM++) or 'fourier' (NCSN++). */
export type EmbeddingType = 'positional' | 'fourier';
/** SongUNet's encoder: 'standard' (DDPM++), 'skip' or 'residual' (NCSN++), as the official `encoder_type`. */
export type EncoderType = 'standard' | 'skip' | 'residual';
/** SongUNet's decoder: 'standard' (DDPM++ and NCSN++) or 'skip', as the official `decoder_type`. */
export type DecoderType = 'standard' | 'skip';

/**
 * SongUNet's constructor options (the official `SongUNet` arguments in camel case); unset ones take
 * SONG_UNET_DEFAULTS.
 */
export interface SongUNetOptions extends UNetCommonOptions {
  /** 'positional' for DDPM++, 'fourier' for NCSN++. */
  embeddingType?: EmbeddingType;
  /** Noise-embedding width as a multiple of model_channels: 1 for DDPM++, 2 for NCSN++. */
  channelMultNoise?: number;
  /** 'standard' for DDPM++, 'residual' for NCSN++. */
  encoderType?: EncoderType;
  /** 'standard' for DDPM++ and NCSN++. */
  decoderType?: DecoderType;
  /** [1,1] for DDPM++, [1,3,3,1] for NCSN++. */
  resampleFilter?: readonly number[];
  /** Patch Diffusion's optional coordinate-encoding stem (1×1, SiLU, 1×1, SiLU, 1×1, SiLU, 3×3). */
  implicitMlp?: boolean;
}

/** The SongUNet defaults of the official constructor. */
export const SONG_UNET_DEFAULTS: Required<Omit<SongUNetOptions, keyof RandomInit | 'imgResolution' | 'inChannels' | 'outChannels'>> = {
  labelDim: 0,
  augmentDim: 0,
  modelChannels: 128,
  channelMult: [1, 2, 2, 2],
  channelMultEmb: 4,
  numBlocks: 4,
  attnResolutions: [16],
  dropout: 0.1,
  labelDropout: 0,
  embeddingType: 'positional',
  channelMultNoise: 1,
  encoderType: 'standard',
  decoderType: 'standard',
  resampleFilter: [1, 1],
  implicitMlp: false,
};

type ResolvedSongOptions = Required<Omit<SongUNetOptions, keyof RandomInit>>;

/** Patch Diffusion's implicit-MLP stem; children named 0, 2, 4, 6 as in the official torch.nn.Sequential. */
export class ImplicitMlpStem extends Module {
  readonly convs: Conv2d[];
  constructor(cin: number, cout: number, init: InitOptions & RandomInit) {
    super();
    this.convs = [
      this.registerModule('0', new Conv2d(cin, cout, 1, init)),
      this.registerModule('2', new Conv2d(cout, cout, 1, init)),
      this.registerModule('4', new Conv2d(cout, cout, 1, init)),
      this.registerModule('6', new Conv2d(cout, cout, 3, init)),
    ];
  }
  forward(x: Tensor): Tensor {
    return scope(() => {
      let h = x;
      this.convs.forEach((c, i) => {
        h = c.forward(i === 0 ? h : F.silu(h));
      });
      return h;
    });
  }
}

/** One step of the encoder, in order (what forward() runs; the ONNX exporter walks the same plan). */
export type SongEncoderStep =
  | { kind: 'conv'; module: Conv2d | ImplicitMlpStem }
  | { kind: 'block'; module: UNetBlock }
  | { kind: 'aux_down'; module: Conv2d }
  | { kind: 'aux_skip'; module: Conv2d }
  | { kind: 'aux_residual'; module: Conv2d };
/** One step of the decoder, in order. */
export type SongDecoderStep =
  | { kind: 'block'; module: UNetBlock; concat: boolean }
  | { kind: 'aux_up'; module: Conv2d }
  | { kind: 'aux_norm'; module: GroupNorm }
  | { kind: 'aux_conv'; module: Conv2d };

/**
 * EDM's DDPM++ and NCSN++ U-Net (the official SongUNet), its parameters named as the official state dict, so
 * official weights load 1:1.
 */
export class SongUNet extends UNetBase {
  readonly embeddingType: EmbeddingType;
  readonly encoderType: EncoderType;
  readonly decoderType: DecoderType;
  readonly mapNoise: PositionalEmbedding | FourierEmbedding;
  readonly mapLabel: Linear | null = null;
  readonly mapAugment: Linear | null = null;
  readonly mapLayer0: Linear;
  readonly mapLayer1: Linear;
  readonly enc: ModuleDict;
  readonly dec: ModuleDict;
  readonly #encPlan: SongEncoderStep[] = [];
  readonly #decPlan: SongDecoderStep[] = [];

  constructor(options: SongUNetOptions) {
    const o = { ...SONG_UNET_DEFAULTS, ...stripUndefined(options) } as ResolvedSongOptions;
    checkCommonOptions('SongUNet', o);
    checkSongOptions(o);
    super({ ...o, levels: o.channelMult.length });
    this.embeddingType = o.embeddingType;
    this.encoderType = o.encoderType;
    this.decoderType = o.decoderType;
    const rng: RandomInit = { generator: options.generator, initialize: options.initialize };
    const embChannels = o.modelChannels * o.channelMultEmb;
    const noiseChannels = o.modelChannels * o.channelMultNoise;
    const init: InitOptions & RandomInit = { initMode: 'xavier_uniform', ...rng };
    const initZero: InitOptions = { initMode: 'xavier_uniform', initWeight: 1e-5 };
    const initAttn: InitOptions = { initMode: 'xavier_uniform', initWeight: Math.sqrt(0.2) };
    const resampleFilter = [...o.resampleFilter];
    const block = (name: string, extra: Pick<UNetBlockOptions, 'inChannels' | 'outChannels'> & Partial<UNetBlockOptions>): UNetBlock =>
      named(name, () =>
        new UNetBlock({
          embChannels, numHeads: 1, dropout: o.dropout, skipScale: Math.sqrt(0.5), eps: 1e-6,
          resampleFilter, resampleProj: true, adaptiveScale: false,
          init, initZero, initAttn, dropoutGenerator: this.rng, ...rng, ...extra,
        }),
      );

    // Mapping (registration and random-draw order as the official constructor).
    this.mapNoise = this.registerModule(
      'map_noise',
      named('map_noise', () =>
        o.embeddingType === 'positional' ? new PositionalEmbedding(noiseChannels, { endpoint: true }) : new FourierEmbedding(noiseChannels, rng),
      ),
    );
    if (o.labelDim) this.mapLabel = this.registerModule('map_label', new Linear(o.labelDim, noiseChannels, init));
    if (o.augmentDim) this.mapAugment = this.registerModule('map_augment', new Linear(o.augmentDim, noiseChannels, { ...init, bias: false }));
    this.mapLayer0 = this.registerModule('map_layer0', new Linear(noiseChannels, embChannels, init));
    this.mapLayer1 = this.registerModule('map_layer1', new Linear(embChannels, embChannels, init));

    // Encoder.
    this.enc = this.registerModule('enc', new ModuleDict());
    const addEnc = (name: string, entry: SongEncoderStep) => {
      this.enc.set(name, entry.module);
      this.#encPlan.push(entry);
    };
    const skipChannels: number[] = [];
    let cout = o.inChannels;
    let caux = o.inChannels;
    o.channelMult.forEach((mult, level) => {
      const res = o.imgResolution >> level;
      if (level === 0) {
        const cin = cout;
        cout = o.modelChannels;
        const stem = o.implicitMlp ? new ImplicitMlpStem(cin, cout, init) : new Conv2d(cin, cout, 3, init);
        addEnc(`${res}x${res}_conv`, { kind: 'conv', module: stem });
        skipChannels.push(cout);
      } else {
        addEnc(`${res}x${res}_down`, { kind: 'block', module: block(`enc.${res}x${res}_down`, { inChannels: cout, outChannels: cout, down: true }) });
        skipChannels.push(cout);
        if (o.encoderType === 'skip') {
          addEnc(`${res}x${res}_aux_down`, { kind: 'aux_down', module: new Conv2d(caux, caux, 0, { down: true, resampleFilter }) });
          addEnc(`${res}x${res}_aux_skip`, { kind: 'aux_skip', module: new Conv2d(caux, cout, 1, init) });
        }
        if (o.encoderType === 'residual') {
          addEnc(`${res}x${res}_aux_residual`, {
            kind: 'aux_residual',
            module: new Conv2d(caux, cout, 3, { down: true, resampleFilter, fusedResample: true, ...init }),
          });
          caux = cout;
        }
      }
      for (let idx = 0; idx < o.numBlocks; idx++) {
        const cin = cout;
        cout = o.modelChannels * mult;
        const attention = o.attnResolutions.includes(res);
        addEnc(`${res}x${res}_block${idx}`, { kind: 'block', module: block(`enc.${res}x${res}_block${idx}`, { inChannels: cin, outChannels: cout, attention }) });
        skipChannels.push(cout);
      }
    });

    // Decoder.
    this.dec = this.registerModule('dec', new ModuleDict());
    const addDec = (name: string, entry: SongDecoderStep) => {
      this.dec.set(name, entry.module);
      this.#decPlan.push(entry);
    };
    const last = o.channelMult.length - 1;
    for (let level = last; level >= 0; level--) {
      const mult = o.channelMult[level]!;
      const res = o.imgResolution >> level;
      if (level === last) {
        addDec(`${res}x${res}_in0`, { kind: 'block', concat: false, module: block(`dec.${res}x${res}_in0`, { inChannels: cout, outChannels: cout, attention: true }) });
        addDec(`${res}x${res}_in1`, { kind: 'block', concat: false, module: block(`dec.${res}x${res}_in1`, { inChannels: cout, outChannels: cout }) });
      } else {
        addDec(`${res}x${res}_up`, { kind: 'block', concat: false, module: block(`dec.${res}x${res}_up`, { inChannels: cout, outChannels: cout, up: true }) });
      }
      for (let idx = 0; idx <= o.numBlocks; idx++) {
        const cin = cout + skipChannels.pop()!;
        cout = o.modelChannels * mult;
        const attention = idx === o.numBlocks && o.attnResolutions.includes(res);
        addDec(`${res}x${res}_block${idx}`, {
          kind: 'block', concat: true, module: block(`dec.${res}x${res}_block${idx}`, { inChannels: cin, outChannels: cout, attention }),
        });
      }
      if (o.decoderType === 'skip' || level === 0) {
        if (o.decoderType === 'skip' && level < last)
          addDec(`${res}x${res}_aux_up`, { kind: 'aux_up', module: new Conv2d(o.outChannels, o.outChannels, 0, { up: true, resampleFilter }) });
        addDec(`${res}x${res}_aux_norm`, { kind: 'aux_norm', module: named(`dec.${res}x${res}_aux_norm`, () => new GroupNorm(cout, { eps: 1e-6 })) });
        addDec(`${res}x${res}_aux_conv`, { kind: 'aux_conv', module: new Conv2d(cout, o.outChannels, 3, { ...initZero, ...rng }) });
      }
    }
    if (skipChannels.length !== 0) throw new Error(`SongUNet: internal error: ${skipChannels.length} skip connections left unused`);
  }

  /** The encoder's steps in the order forward() runs them. */
  get encoderPlan(): readonly Readonly<SongEncoderStep>[] {
    return this.#encPlan;
  }
  /** The decoder's steps in the order forward() runs them. */
  get decoderPlan(): readonly Readonly<SongDecoderStep>[] {
    return this.#decPlan;
  }

  override forward(x: Tensor, noiseLabels: Tensor, classLabels?: Tensor | null, augmentLabels?: Tensor | null): Tensor {
    return scope(() => {
      const labels = this.checkInputs(x, noiseLabels, classLabels, augmentLabels);
      const n = x.shape[0]!;

      // Mapping: the noise embedding is reordered to [sin, cos].
      let emb = this.mapNoise.forward(noiseLabels);
      const m = emb.shape[0]!;
      emb = emb.reshape(m, 2, -1).flip(1).reshape(m, -1);
      if (this.mapLabel && labels) {
        const kept = this.dropLabels(labels, n, x.device);
        emb = emb.add(this.mapLabel.forward(kept.mul(Math.sqrt(this.labelDim))));
      }
      if (this.mapAugment && augmentLabels) emb = emb.add(this.mapAugment.forward(augmentLabels));
      emb = F.silu(this.mapLayer0.forward(emb));
      emb = F.silu(this.mapLayer1.forward(emb));

      // Encoder.
      const skips: Tensor[] = [];
      let h = x;
      let aux = x;
      for (const e of this.#encPlan) {
        switch (e.kind) {
          case 'aux_down':
            aux = e.module.forward(aux);
            break;
          case 'aux_skip':
            h = h.add(e.module.forward(aux));
            skips[skips.length - 1] = h;
            break;
          case 'aux_residual':
            h = h.add(e.module.forward(aux)).div(Math.SQRT2);
            skips[skips.length - 1] = h;
            aux = h;
            break;
          case 'block':
            h = e.module.forward(h, emb);
            skips.push(h);
            break;
          case 'conv':
            h = e.module.forward(h);
            skips.push(h);
            break;
        }
      }

      // Decoder.
      let out: Tensor | null = null;
      let tmp: Tensor | null = null;
      for (const e of this.#decPlan) {
        switch (e.kind) {
          case 'aux_up':
            out = e.module.forward(out!);
            break;
          case 'aux_norm':
            tmp = e.module.forward(h);
            break;
          case 'aux_conv':
            tmp = e.module.forward(F.silu(tmp!));
            out = out ? tmp.add(out) : tmp;
            break;
          case 'block':
            if (e.concat) h = cat([h, skips.pop()!], 1);
            h = e.module.forward(h, emb);
            break;
        }
      }
      return out!;
    });
  }
}

function checkSongOptions(o: ResolvedSongOptions): void {
  const problems: string[] = [];
  if (o.embeddingType !== 'positional' && o.embeddingType !== 'fourier')
    problems.push(`embedding_type must be 'positional' or 'fourier', got ${JSON.stringify(o.embeddingType)}`);
  if (!['standard', 'skip', 'residual'].includes(o.encoderType as string))
    problems.push(`encoder_type must be 'standard', 'skip' or 'residual', got ${JSON.stringify(o.encoderType)}`);
  if (!['standard', 'skip'].includes(o.decoderType as string)) problems.push(`decoder_type must be 'standard' or 'skip', got ${JSON.stringify(o.decoderType)}`);
  if (!Number.isInteger(o.channelMultNoise) || o.channelMultNoise < 1)
    problems.push(`channel_mult_noise must be a positive integer, got ${o.channelMultNoise}`);
  const rf = o.resampleFilter as readonly number[];
  if (!Array.isArray(rf) || rf.length < 2 || rf.length % 2 !== 0 || !rf.every((v) => Number.isFinite(v)))
    problems.push(`resample_filter must be an even number of finite taps such as [1,1] or [1,3,3,1], got ${JSON.stringify(rf)}`);
  if (problems.length) throw new Error(`SongUNet: invalid configuration:\n  - ${problems.join('\n  - ')}`);
}
