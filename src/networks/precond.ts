// The preconditioners of EDM (Karras et al. 2022, Table 1) and Patch Diffusion:
//   D(x; σ, pos) = c_skip(σ)·x + c_out(σ)·F( concat[c_in(σ)·x, pos], c_noise(σ) )
// `kind` picks the coefficients, as the official classes do:
//   'edm' (EDMPrecond, Patch_EDMPrecond): c_skip = σd²/(σ²+σd²),
//         c_out = σ·σd/√(σ²+σd²), c_in = 1/√(σ²+σd²), c_noise = ln(σ)/4;
//   'vp'  (VPPrecond): c_skip = 1, c_out = −σ, c_in = 1/√(σ²+1),
//         c_noise = (M−1)·t(σ) with t the inverse of σ(t) = √(e^(β_d t²/2 + β_min t) − 1);
//   've'  (VEPrecond): c_skip = 1, c_out = σ, c_in = 1, c_noise = ln(σ/2).
// The coordinate channels (pos) are concatenated WITHOUT scaling; a network
// without them (EDM's own classes) takes no pos. All of this runs in float32
// (x is cast to float32, as the official; a float64 sampler state is accepted).
//
// Channel convention (mirrors the official constructor, which the training
// loop calls with img_channels = image channels + 2 and out_channels = image
// channels): `imgChannels` is the UNet's INPUT channel count, coordinates
// included (5 for RGB, 6 for SD latents), `outChannels` the image channels
// (3 or 4; defaults to imgChannels). The UNet is held as `model`, so state-dict
// names are `model.enc.…`, as in the official snapshots.
import { preconditioningTensors } from '../diffusion/edm.js';
import { Module } from '../nn/module.js';
import { applyPrecision, unetInputDtype, type Precision } from '../nn/precision.js';
import type { RandomInit } from '../nn/init.js';
import { cat, onesLike, scalar, tensor as tensorOf } from '../tensor/creation.js';
import { scope } from '../tensor/scope.js';
import type { Generator } from '../tensor/random.js';
import type { DType, Tensor } from '../tensor/tensor.js';
import { DhariwalUNet, type DhariwalUNetOptions } from './dhariwal-unet.js';
import { SongUNet, type SongUNetOptions } from './song-unet.js';
import type { UNetBase } from './unet-base.js';

/** The U-Net inside a preconditioner: SongUNet (DDPM++, NCSN++) or DhariwalUNet (ADM). */
export type ModelType = 'SongUNet' | 'DhariwalUNet';
/** Which family of coefficients: EDM's (also Patch Diffusion's), variance preserving or variance exploding. */
export type PrecondKind = 'edm' | 'vp' | 've';
export const PRECOND_KINDS: readonly PrecondKind[] = ['edm', 'vp', 've'];

/** VPPrecond's schedule constants (its class defaults). */
export const VP_DEFAULTS = { betaD: 19.9, betaMin: 0.1, M: 1000, epsilonT: 1e-5 } as const;
/** VEPrecond's supported σ range (its class defaults). */
export const VE_DEFAULTS = { sigmaMin: 0.02, sigmaMax: 100 } as const;

type ModelKwargs = Omit<SongUNetOptions & DhariwalUNetOptions, 'imgResolution' | 'inChannels' | 'outChannels' | 'labelDim' | keyof RandomInit>;

/** VPPrecond.sigma: σ(t) = √(exp(β_d·t²/2 + β_min·t) − 1), elementwise, in t's dtype. */
export function vpSigma(t: Tensor, betaD: number, betaMin: number): Tensor {
  return scope(() => t.square().mul(0.5 * betaD).add(t.mul(betaMin)).exp().sub(1).sqrt());
}
/** VPPrecond.sigma_inv: t(σ) = (√(β_min² + 2·β_d·ln(1 + σ²)) − β_min) / β_d. */
export function vpSigmaInv(sigma: Tensor, betaD: number, betaMin: number): Tensor {
  return scope(() => sigma.square().add(1).log().mul(2 * betaD).add(betaMin ** 2).sqrt().sub(betaMin).div(betaD));
}
/** VPPrecond's supported σ range, [σ(ε_t), σ(1)], computed in float32 as the official float(self.sigma(…)). */
export function vpSigmaRange(betaD: number, betaMin: number, epsilonT: number): [number, number] {
  return scope(() => vpSigma(tensorOf([epsilonT, 1]), betaD, betaMin).toArray() as number[]) as [number, number];
}

/**
 * The preconditioner's options (the official Patch_EDMPrecond / EDMPrecond / VPPrecond / VEPrecond arguments)
 * and its U-Net's.
 */
export interface PreconditionerOptions extends RandomInit {
  /** The coefficients (default 'edm'). */
  kind?: PrecondKind;
  /** Training resolution in pixels (the latent resolution for a latent network). */
  imgResolution: number;
  /** Network input channels: image channels + 2 coordinate channels (official `img_channels`). */
  imgChannels: number;
  /** Image channels the network predicts; default imgChannels. */
  outChannels?: number;
  /** Classes of a class-conditional network (default 0: unconditional). */
  labelDim?: number;
  /** Run the UNet in float16 on CUDA (weights stay float32); ignored on the CPU, as the official. */
  useFp16?: boolean;
  /** 'edm' and 've': the supported σ range (VP derives it from its schedule). */
  sigmaMin?: number;
  sigmaMax?: number;
  /** 'edm' only. */
  sigmaData?: number;
  /** 'vp' only: the schedule σ(t) = √(exp(β_d·t²/2 + β_min·t) − 1), t ∈ [ε_t, 1], and DDPM's step count M. */
  betaD?: number;
  betaMin?: number;
  M?: number;
  epsilonT?: number;
  /** Default 'DhariwalUNet' for 'edm', 'SongUNet' for 'vp'/'ve', as the official classes. */
  modelType?: ModelType;
  /** Options of the UNet (model_channels, channel_mult, …, camelCased). */
  model?: ModelKwargs;
}

/** The preconditioning coefficients at a σ: D(x; σ) = c_skip·x + c_out·F(c_in·x, c_noise). */
export interface PreconditionerCoefficients {
  cSkip: Tensor;
  cOut: Tensor;
  cIn: Tensor;
  cNoise: Tensor;
}

/**
 * The preconditioned denoiser D(x; σ, pos) = c_skip·x + c_out·F(concat[c_in·x, pos], c_noise) around a U-Net
 * held as `model`: EDM's and Patch Diffusion's coefficients ('edm'), or VP's or VE's (`kind`).
 */
export class Preconditioner extends Module {
  readonly kind: PrecondKind;
  readonly imgResolution: number;
  readonly imgChannels: number;
  readonly outChannels: number;
  readonly labelDim: number;
  readonly useFp16: boolean;
  readonly sigmaMin: number;
  readonly sigmaMax: number;
  readonly sigmaData: number;
  readonly betaD: number;
  readonly betaMin: number;
  readonly M: number;
  readonly epsilonT: number;
  readonly modelType: ModelType;
  readonly model: UNetBase;

  constructor(o: PreconditionerOptions) {
    super();
    this.kind = o.kind ?? 'edm';
    if (!PRECOND_KINDS.includes(this.kind)) throw new Error(`preconditioner: kind must be one of ${PRECOND_KINDS.join(', ')}, got ${JSON.stringify(this.kind)}`);
    this.imgResolution = o.imgResolution;
    this.imgChannels = o.imgChannels;
    this.outChannels = o.outChannels ?? o.imgChannels;
    this.labelDim = o.labelDim ?? 0;
    this.useFp16 = o.useFp16 ?? false;
    this.sigmaData = o.sigmaData ?? 0.5;
    this.betaD = o.betaD ?? VP_DEFAULTS.betaD;
    this.betaMin = o.betaMin ?? VP_DEFAULTS.betaMin;
    this.M = o.M ?? VP_DEFAULTS.M;
    this.epsilonT = o.epsilonT ?? VP_DEFAULTS.epsilonT;
    if (this.kind === 'vp') {
      if (!(this.betaD > 0) || !(this.betaMin >= 0) || !(this.M > 1) || !(this.epsilonT > 0 && this.epsilonT < 1))
        throw new Error(`VPPrecond: need beta_d > 0, beta_min ≥ 0, M > 1 and 0 < epsilon_t < 1, got ${this.betaD}, ${this.betaMin}, ${this.M}, ${this.epsilonT}`);
      // float(self.sigma(epsilon_t)) and float(self.sigma(1)), in float32 as the official.
      [this.sigmaMin, this.sigmaMax] = vpSigmaRange(this.betaD, this.betaMin, this.epsilonT);
    } else {
      this.sigmaMin = o.sigmaMin ?? (this.kind === 've' ? VE_DEFAULTS.sigmaMin : 0);
      this.sigmaMax = o.sigmaMax ?? (this.kind === 've' ? VE_DEFAULTS.sigmaMax : Infinity);
    }
    this.modelType = o.modelType ?? (this.kind === 'edm' ? 'DhariwalUNet' : 'SongUNet');
    if (!(this.sigmaData > 0)) throw new Error(`${this.className}: sigma_data must be positive, got ${this.sigmaData}`);
    const common = {
      ...(o.model ?? {}),
      imgResolution: o.imgResolution,
      inChannels: o.imgChannels,
      outChannels: this.outChannels,
      labelDim: this.labelDim,
      generator: o.generator,
      initialize: o.initialize,
    };
    let model: UNetBase;
    if (this.modelType === 'SongUNet') model = new SongUNet(common);
    else if (this.modelType === 'DhariwalUNet') {
      const song = ['embeddingType', 'channelMultNoise', 'encoderType', 'decoderType', 'resampleFilter', 'implicitMlp'] as const;
      const stray = song.filter((k) => (o.model as Record<string, unknown> | undefined)?.[k] !== undefined);
      if (stray.length) throw new Error(`${this.className}: ${stray.join(', ')} ${stray.length > 1 ? 'are SongUNet options' : 'is a SongUNet option'}, not valid for DhariwalUNet`);
      model = new DhariwalUNet(common);
    } else throw new Error(`${this.className}: model_type must be 'SongUNet' or 'DhariwalUNet', got ${JSON.stringify(this.modelType)}`);
    this.model = this.registerModule('model', model);
  }

  #precision: Precision = 'fp32';
  #channelsLast = false;

  /**
   * How the UNet computes: `precision` 'bf16' runs its convolutions and
   * matrix products in bfloat16, 'fp16' its whole image path in float16 as
   * the official use_fp16 (src/nn/precision.ts; the output is float32
   * either way), `channelsLast` keeps its activations in NHWC memory order,
   * which oneDNN's convolutions prefer. Neither changes the weights.
   */
  setCompute(o: { precision?: Precision; channelsLast?: boolean }): this {
    if (o.precision !== undefined) {
      applyPrecision(this.model, o.precision);
      this.#precision = o.precision;
    }
    if (o.channelsLast !== undefined) this.#channelsLast = o.channelsLast;
    return this;
  }
  get precision(): Precision {
    return this.#precision;
  }
  get channelsLast(): boolean {
    return this.#channelsLast;
  }

  /** Input sides must be multiples of this (2^(levels−1)). */
  get sizeMultiple(): number {
    return this.model.sizeMultiple;
  }
  /** Number of coordinate channels the network expects next to the image (imgChannels − outChannels, 2 in Patch Diffusion). */
  get positionChannels(): number {
    return this.imgChannels - this.outChannels;
  }

  /** Replaces the generator of dropout and label dropout. */
  setGenerator(generator: Generator): void {
    this.model.setGenerator(generator);
  }

  /** The official class name of this preconditioner. */
  get className(): string {
    if (this.kind === 'vp') return 'VPPrecond';
    if (this.kind === 've') return 'VEPrecond';
    return this.positionChannels > 0 ? 'Patch_EDMPrecond' : 'EDMPrecond';
  }

  /** The coefficients for σ (any shape; float32, same shape), with the official op order. */
  coefficients(sigma: Tensor): PreconditionerCoefficients {
    const sd = this.sigmaData;
    if (this.kind === 'vp')
      return scope(() => ({
        cSkip: onesLike(sigma),
        cOut: sigma.neg(),
        cIn: sigma.square().add(1).sqrt().reciprocal(),
        cNoise: vpSigmaInv(sigma, this.betaD, this.betaMin).mul(this.M - 1),
      }));
    if (this.kind === 've')
      return scope(() => ({ cSkip: onesLike(sigma), cOut: sigma.clone(), cIn: onesLike(sigma), cNoise: sigma.mul(0.5).log() }));
    return scope(() => preconditioningTensors(sigma, sd));
  }

  /**
   * D(x; σ). x [N, C, H, W] (float32 or float64; computed in float32), σ a
   * number, a 0-dim tensor, [1], [N] or [N,1,1,1] (a single σ is broadcast over
   * the batch, as the official sampler's call with a 0-dim σ, and gives
   * exactly the result of N equal σ), xPos
   * [N, imgChannels − C, H, W] the raw coordinate channels, classLabels
   * [N or 1, labelDim] (zeros when omitted), augmentLabels [N or 1, augment_dim].
   * Returns float32 [N, outChannels, H, W].
   */
  forward(
    x: Tensor,
    sigma: Tensor | number,
    xPos?: Tensor | null,
    classLabels?: Tensor | null,
    augmentLabels?: Tensor | null,
    options: { forceFp32?: boolean } = {},
  ): Tensor {
    return scope(() => {
      if (x.ndim !== 4) throw new Error(`${this.className}: x must be [N, C, H, W], got [${x.shape}]`);
      const [n, c, h, w] = x.shape as [number, number, number, number];
      const device = x.device;
      const xf = x.dtype === 'float32' ? x : x.to('float32');

      // σ → [M, 1, 1, 1] float32 with M ∈ {1, N}.
      const s = typeof sigma === 'number' ? scalar(sigma, { device }) : sigma;
      if (s.numel !== 1 && s.numel !== n)
        throw new Error(`${this.className}: sigma must hold 1 or N = ${n} values, got shape [${s.shape}]`);
      // A single σ is expanded to one per sample before anything is computed
      // from it, so every accepted form of σ feeds the network the same [N]
      // noise input: a [1] input would take other BLAS kernels in the
      // mapping network (gemv for gemm) and round differently on some CPUs.
      let sig = s.reshape(-1, 1, 1, 1);
      if (sig.dtype !== 'float32' || sig.device !== x.device) sig = sig.to({ dtype: 'float32', device });
      if (sig.shape[0] !== n) sig = sig.expand(n, 1, 1, 1).contiguous();

      // Inputs of the UNet.
      const pc = xPos ? xPos.shape[1]! : 0;
      if (xPos) {
        if (xPos.ndim !== 4 || xPos.shape[0] !== n || xPos.shape[2] !== h || xPos.shape[3] !== w)
          throw new Error(`${this.className}: x_pos must be [${n}, ${this.positionChannels}, ${h}, ${w}] to match x [${x.shape}], got [${xPos.shape}]`);
      }
      if (c !== this.outChannels || c + pc !== this.imgChannels)
        throw new Error(
          `${this.className}: the network takes ${this.imgChannels} input channels (img_channels) = ${this.outChannels} image channels ` +
            `+ ${this.positionChannels} coordinate channels; got x with ${c} channels and ${xPos ? `x_pos with ${pc}` : 'no x_pos'}`,
        );
      const m = this.sizeMultiple;
      if (h < m || w < m || h % m !== 0 || w % m !== 0)
        throw new Error(
          `${this.className}: cannot take a ${h}×${w} input (patch): its sides must be positive multiples of 2^(levels−1) = ${m} ` +
            `for this ${this.model.levels}-level network`,
        );
      let labels: Tensor | null = null;
      if (this.labelDim === 0) {
        if (classLabels && classLabels.numel > 0)
          throw new Error(`${this.className}: class labels were given but the network is unconditional (label_dim 0)`);
      } else if (classLabels) {
        if (classLabels.shape[classLabels.ndim - 1] !== this.labelDim || classLabels.numel % this.labelDim !== 0)
          throw new Error(`${this.className}: class labels must have width label_dim = ${this.labelDim}, got shape [${classLabels.shape}]`);
        labels = classLabels.reshape(-1, this.labelDim);
        if (labels.shape[0] !== n && labels.shape[0] !== 1)
          throw new Error(`${this.className}: class labels must be given for 1 or N = ${n} samples, got shape [${classLabels.shape}]`);
        if (labels.dtype !== 'float32' || labels.device !== x.device) labels = labels.to({ dtype: 'float32', device });
      }
      // The official use_fp16 applies on CUDA only; --precision fp16 on any device.
      const dtype: DType = options.forceFp32 ? 'float32' : (unetInputDtype(this.#precision) ?? (this.useFp16 && device.startsWith('cuda') ? 'float16' : 'float32'));

      const { cSkip, cOut, cIn, cNoise } = this.coefficients(sig);
      const scaled = cIn.mul(xf);
      let xIn = xPos ? cat([scaled, xPos.dtype === 'float32' ? xPos : xPos.to('float32')], 1) : scaled;
      if (dtype !== 'float32') xIn = xIn.to(dtype);
      if (this.#channelsLast) xIn = xIn.channelsLast();
      // Class and augment labels stay float32, as the official forward passes them: the embedding path is float32 under fp16 too.
      const aug = augmentLabels && augmentLabels.dtype !== 'float32' ? augmentLabels.to('float32') : augmentLabels;
      const fx = this.model.forward(xIn, cNoise.flatten(), labels, aug);
      const expected = this.#precision === 'bf16' ? 'bfloat16' : dtype;
      if (fx.dtype !== dtype && fx.dtype !== expected) throw new Error(`${this.className}: the UNet returned ${fx.dtype}, expected ${expected}`);
      return cSkip.mul(xf).add(cOut.mul(fx.dtype === 'float32' ? fx : fx.to('float32')));
    });
  }

  /** The official round_sigma: the identity. */
  roundSigma(sigma: Tensor): Tensor {
    return sigma;
  }
}
