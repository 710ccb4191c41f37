// What SongUNet and DhariwalUNet share: the interface the preconditioner
// calls, the structural checks on their options, input validation in forward
// (so a patch size the network cannot take fails with a message naming the
// size and the divisor), label dropout and the dropout generator.
import { Module } from '../nn/module.js';
import { GeneratorRef, type RandomInit } from '../nn/init.js';
import { zeros } from '../tensor/creation.js';
import type { Generator } from '../tensor/random.js';
import type { Device, Tensor } from '../tensor/tensor.js';

/** Options common to both UNets (EDM's constructor arguments, camelCased). */
export interface UNetCommonOptions extends RandomInit {
  /** Nominal image resolution: names the levels (`64x64_…`) and places attention. */
  imgResolution: number;
  /** Channels of the network input (image + coordinate channels in Patch Diffusion). */
  inChannels: number;
  outChannels: number;
  /** Class-label width, 0 = unconditional. */
  labelDim?: number;
  /** Augmentation-label width, 0 = none. */
  augmentDim?: number;
  modelChannels?: number;
  channelMult?: readonly number[];
  channelMultEmb?: number;
  numBlocks?: number;
  /** Nominal resolutions (imgResolution >> level) whose blocks have self-attention. */
  attnResolutions?: readonly number[];
  dropout?: number;
  /** Probability of zeroing a sample's class label in training (classifier-free guidance). */
  labelDropout?: number;
}

const isPosInt = (v: unknown): v is number => typeof v === 'number' && Number.isInteger(v) && v > 0;
const isNonNegInt = (v: unknown): v is number => typeof v === 'number' && Number.isInteger(v) && v >= 0;

/** Throws one error listing every structural problem of the options. */
export function checkCommonOptions(what: string, o: Required<Omit<UNetCommonOptions, keyof RandomInit>>): void {
  const problems: string[] = [];
  if (!isPosInt(o.imgResolution)) problems.push(`img_resolution must be a positive integer, got ${o.imgResolution}`);
  if (!isPosInt(o.inChannels)) problems.push(`in_channels must be a positive integer, got ${o.inChannels}`);
  if (!isPosInt(o.outChannels)) problems.push(`out_channels must be a positive integer, got ${o.outChannels}`);
  if (!isNonNegInt(o.labelDim)) problems.push(`label_dim must be a non-negative integer, got ${o.labelDim}`);
  if (!isNonNegInt(o.augmentDim)) problems.push(`augment_dim must be a non-negative integer, got ${o.augmentDim}`);
  if (!isPosInt(o.modelChannels)) problems.push(`model_channels must be a positive integer, got ${o.modelChannels}`);
  if (!Array.isArray(o.channelMult) || o.channelMult.length === 0 || !o.channelMult.every(isPosInt))
    problems.push(`channel_mult must be a non-empty list of positive integers, got ${JSON.stringify(o.channelMult)}`);
  if (!isPosInt(o.channelMultEmb)) problems.push(`channel_mult_emb must be a positive integer, got ${o.channelMultEmb}`);
  if (!isNonNegInt(o.numBlocks)) problems.push(`num_blocks must be a non-negative integer, got ${o.numBlocks}`);
  if (!Array.isArray(o.attnResolutions) || !o.attnResolutions.every(isPosInt))
    problems.push(`attn_resolutions must be a list of positive integers, got ${JSON.stringify(o.attnResolutions)}`);
  if (!(typeof o.dropout === 'number' && o.dropout >= 0 && o.dropout < 1)) problems.push(`dropout must be in [0, 1), got ${o.dropout}`);
  if (!(typeof o.labelDropout === 'number' && o.labelDropout >= 0 && o.labelDropout <= 1))
    problems.push(`label_dropout must be in [0, 1], got ${o.labelDropout}`);
  if (isPosInt(o.imgResolution) && Array.isArray(o.channelMult) && o.channelMult.length > 0) {
    const m = 2 ** (o.channelMult.length - 1);
    if (o.imgResolution % m !== 0)
      problems.push(
        `img_resolution ${o.imgResolution} is not divisible by 2^(levels−1) = ${m}, which the ${o.channelMult.length} levels of ` +
          `channel_mult ${JSON.stringify(o.channelMult)} need (each level halves the resolution)`,
      );
  }
  if (problems.length) throw new Error(`${what}: invalid configuration:\n  - ${problems.join('\n  - ')}`);
}

/**
 * What SongUNet and DhariwalUNet share: the forward the preconditioner calls, their common options' checks,
 * input checks that name the size a network cannot take, and label dropout.
 */
export abstract class UNetBase extends Module {
  readonly imgResolution: number;
  readonly inChannels: number;
  readonly outChannels: number;
  readonly labelDim: number;
  readonly augmentDim: number;
  readonly labelDropout: number;
  /** Number of resolution levels (channel_mult's length). */
  readonly levels: number;
  /** Input height and width must be multiples of this: 2^(levels − 1). */
  readonly sizeMultiple: number;
  /** Generator of dropout and label dropout, shared with every block. */
  protected readonly rng: GeneratorRef;

  protected constructor(o: { imgResolution: number; inChannels: number; outChannels: number; labelDim: number; augmentDim: number; labelDropout: number; levels: number; generator?: Generator }) {
    super();
    this.imgResolution = o.imgResolution;
    this.inChannels = o.inChannels;
    this.outChannels = o.outChannels;
    this.labelDim = o.labelDim;
    this.augmentDim = o.augmentDim;
    this.labelDropout = o.labelDropout;
    this.levels = o.levels;
    this.sizeMultiple = 2 ** (o.levels - 1);
    this.rng = new GeneratorRef(o.generator);
  }

  /** Replaces the generator used by dropout and label dropout (e.g. a per-run training generator). */
  setGenerator(generator: Generator): void {
    this.rng.generator = generator;
  }
  get generator(): Generator | undefined {
    return this.rng.generator;
  }

  /**
   * x [N, inChannels, H, W] (H, W multiples of sizeMultiple), noiseLabels [N]
   * or [1] (broadcast), classLabels [N or 1, labelDim] (zeros when omitted),
   * augmentLabels [N or 1, augmentDim] → [N, outChannels, H, W].
   */
  abstract forward(x: Tensor, noiseLabels: Tensor, classLabels?: Tensor | null, augmentLabels?: Tensor | null): Tensor;

  /** Checks every input, and returns the class labels to use (zeros [1, labelDim] when omitted), or null. */
  protected checkInputs(x: Tensor, noiseLabels: Tensor, classLabels: Tensor | null | undefined, augmentLabels: Tensor | null | undefined): Tensor | null {
    const name = this.constructor.name;
    if (x.ndim !== 4) throw new Error(`${name}: x must be [N, C, H, W], got [${x.shape}]`);
    const [n, c, h, w] = x.shape as [number, number, number, number];
    if (c !== this.inChannels) throw new Error(`${name}: x has ${c} channels but the network takes ${this.inChannels}`);
    const m = this.sizeMultiple;
    if (h < m || w < m || h % m !== 0 || w % m !== 0)
      throw new Error(
        `${name}: cannot take a ${h}×${w} input: height and width must be positive multiples of 2^(levels−1) = ${m} ` +
          `(the network has ${this.levels} resolution levels)`,
      );
    if (noiseLabels.ndim !== 1 || (noiseLabels.shape[0] !== n && noiseLabels.shape[0] !== 1))
      throw new Error(`${name}: noise labels must be [${n}] or [1], got [${noiseLabels.shape}]`);
    checkLabels(name, 'class labels', 'label_dim', classLabels, this.labelDim, n);
    checkLabels(name, 'augment labels', 'augment_dim', augmentLabels, this.augmentDim, n);
    if (this.labelDim === 0) return null;
    return classLabels ?? zeros([1, this.labelDim], { device: x.device });
  }

  /** In training with label_dropout > 0, zeroes each sample's label with that probability. */
  protected dropLabels(labels: Tensor, n: number, device: Device): Tensor {
    if (!this.training || !this.labelDropout) return labels;
    const g = this.rng.get(`${this.constructor.name} label dropout`);
    const keep = g.rand([n, 1], { device }).ge(this.labelDropout).to(labels.dtype);
    return labels.mul(keep);
  }
}

function checkLabels(net: string, what: string, key: string, labels: Tensor | null | undefined, dim: number, n: number): void {
  if (labels === null || labels === undefined) return;
  if (dim === 0) {
    if (labels.numel === 0) return;
    throw new Error(`${net}: ${what} were given but the network has ${key} = 0`);
  }
  if (labels.ndim !== 2 || labels.shape[1] !== dim || (labels.shape[0] !== n && labels.shape[0] !== 1))
    throw new Error(`${net}: ${what} must be [${n}, ${dim}] (or [1, ${dim}]) for ${key} = ${dim}, got [${labels.shape}]`);
}

/** Builds a sub-module, prefixing any construction error with its state-dict name. */
export function named<T>(name: string, make: () => T): T {
  try {
    return make();
  } catch (e) {
    throw new Error(`${name}: ${(e as Error).message}`);
  }
}

export function stripUndefined<T extends object>(o: T): Partial<T> {
  return Object.fromEntries(Object.entries(o).filter(([, v]) => v !== undefined)) as Partial<T>;
}
