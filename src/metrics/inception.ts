// Inception-v3 as used for FID (the TF "inception-2015-12-05" graph
// re-implemented in PyTorch by pytorch-fid / torch-fidelity), giving the
// 2048-d pool3 features. The weights cannot be downloaded here: the user
// supplies them (`--detector`).
//
// Architecture (pytorch-fid inception.py `fid_inception_v3`, torch-fidelity
// feature_extractor_inceptionv3.py): torchvision's Inception3 trunk with
// BasicConv2d = conv (no bias) · BatchNorm (eps 0.001) · ReLU and the FID
// block variants: FIDInceptionA/C/E_1 average-pool with count_include_pad=False,
// FIDInceptionE_2 (Mixed_7c) max-pools in its pool branch; global average pool
// → 2048 features. The 1008-way fc is not needed for FID/KID.
//
// Two preprocessings, because the two tool families differ and FID numbers
// are only comparable within one:
// - 'pytorch-fid' (pytorch-fid's InceptionV3 defaults): x/255, grey repeated
//   to RGB, torch's bilinear resize to 299×299 (align_corners=False, half-pixel
//   centres, no antialias), then 2x − 1. The default for pytorch-fid's own
//   weights file (.pth).
// - 'tf1' (EDM's/StyleGAN's detector and torch-fidelity): the uint8 values
//   resized with TF1's bilinear (align_corners=False and NO half-pixel offset:
//   source = dest·in/out), then (x − 128)/128. The default for safetensors
//   weights (this project's earlier convention).
// Never mix them, nor with clean-fid's PIL-bicubic mode.
//
// Accepted weight files, with the pytorch-fid / torch-fidelity state-dict names
// (Conv2d_1a_3x3, …, Mixed_7c, each BasicConv2d as `<name>.conv.weight`,
// `<name>.bn.{weight,bias,running_mean,running_var}`):
// - pytorch-fid's `pt_inception-2015-12-05-6726825d.pth` as distributed, or
//   any torch.save state dict with those names (zip or legacy format, optionally
//   gzipped), read without running pickle code (src/io/torch-file.ts);
// - safetensors (F32, F16, BF16 or F64; computed in float32).
// Also accepted and ignored: `fc.*` (the 1008-way classifier), `AuxLogits.*`
// and `*.num_batches_tracked`. One common prefix (e.g. `model.`) is stripped
// when every name carries it. Anything else, any missing name and any shape
// mismatch (e.g. a 1-channel first conv) is an error naming the tensors.
// EDM's detector (`inception-2015-12-05.pkl`, a TorchScript archive inside a
// pickle) is not read: use pytorch-fid's file (same weights; see README).
import { existsSync } from 'node:fs';
import { Module } from '../nn/module.js';
import { sniffFileKind } from '../io/file-kind.js';
import { readSafetensors } from '../io/safetensors.js';
import { readTorchFile, stateDictOf } from '../io/torch-file.js';
import { F, Generator, cat, noGrad, scope, tensor, type Device, type Tensor } from '../tensor/index.js';
import { BatchNorm2d, Conv2d } from './layers.js';
import { weightsSha256, type FeatureNetwork } from './feature-network.js';

/**
 * How images are prepared for Inception-v3: 'pytorch-fid' (pytorch-fid's) or 'tf1' (EDM's and
 * torch-fidelity's); FIDs compare only within one.
 */
export type InceptionPreprocessing = 'pytorch-fid' | 'tf1';
/** Every InceptionPreprocessing. */
export const INCEPTION_PREPROCESSINGS: readonly InceptionPreprocessing[] = ['pytorch-fid', 'tf1'];
/** The feature network's name per preprocessing: statistics made one way are never compared with the other. */
export const INCEPTION_NAMES: Record<InceptionPreprocessing, string> = { tf1: 'inception-v3-fid', 'pytorch-fid': 'inception-v3-pytorch-fid' };
const PREPROCESSING_TEXT: Record<InceptionPreprocessing, string> = {
  tf1: 'legacy_tf: grey→RGB, TF1 bilinear to 299 (align_corners=False), (x-128)/128',
  'pytorch-fid': 'pytorch-fid: x/255, grey→RGB, torch bilinear to 299 (align_corners=False), 2x-1',
};
/** The feature network's name with the 'tf1' preprocessing. */
export const INCEPTION_NAME = INCEPTION_NAMES.tf1;
/** The width of the pool3 features FID uses. */
export const INCEPTION_FEATURE_DIM = 2048;
/** Inception-v3's input side in pixels (images are resized to it). */
export const INCEPTION_RESOLUTION = 299;

type Pair = number | [number, number];

class BasicConv2d extends Module {
  readonly conv: Conv2d;
  readonly bn: BatchNorm2d;
  constructor(inC: number, outC: number, kernel: Pair, options: { stride?: Pair; padding?: Pair; generator?: Generator } = {}) {
    super();
    this.conv = this.registerModule('conv', new Conv2d(inC, outC, kernel, { ...options, bias: false }));
    this.bn = this.registerModule('bn', new BatchNorm2d(outC, 0.001));
  }
  forward(x: Tensor): Tensor {
    return this.bn.forward(this.conv.forward(x)).relu();
  }
}

abstract class Block extends Module {
  protected g?: Generator;
  protected conv(name: string, inC: number, outC: number, kernel: Pair, o: { stride?: Pair; padding?: Pair } = {}): BasicConv2d {
    return this.registerModule(name, new BasicConv2d(inC, outC, kernel, { ...o, ...(this.g ? { generator: this.g } : {}) }));
  }
  abstract forward(x: Tensor): Tensor;
}

const avgPool3 = (x: Tensor) => F.avgPool2d(x, 3, 1, 1, false);

/** FIDInceptionA: 35×35 block, avg-pool with count_include_pad=False. */
class InceptionA extends Block {
  readonly b1: BasicConv2d; readonly b5_1: BasicConv2d; readonly b5_2: BasicConv2d;
  readonly d1: BasicConv2d; readonly d2: BasicConv2d; readonly d3: BasicConv2d; readonly pool: BasicConv2d;
  constructor(inC: number, poolFeatures: number, g?: Generator) {
    super();
    if (g) this.g = g;
    this.b1 = this.conv('branch1x1', inC, 64, 1);
    this.b5_1 = this.conv('branch5x5_1', inC, 48, 1);
    this.b5_2 = this.conv('branch5x5_2', 48, 64, 5, { padding: 2 });
    this.d1 = this.conv('branch3x3dbl_1', inC, 64, 1);
    this.d2 = this.conv('branch3x3dbl_2', 64, 96, 3, { padding: 1 });
    this.d3 = this.conv('branch3x3dbl_3', 96, 96, 3, { padding: 1 });
    this.pool = this.conv('branch_pool', inC, poolFeatures, 1);
  }
  forward(x: Tensor): Tensor {
    return cat([
      this.b1.forward(x),
      this.b5_2.forward(this.b5_1.forward(x)),
      this.d3.forward(this.d2.forward(this.d1.forward(x))),
      this.pool.forward(avgPool3(x)),
    ], 1);
  }
}

/** InceptionB (Mixed_6a): grid reduction 35→17. */
class InceptionB extends Block {
  readonly b3: BasicConv2d; readonly d1: BasicConv2d; readonly d2: BasicConv2d; readonly d3: BasicConv2d;
  constructor(inC: number, g?: Generator) {
    super();
    if (g) this.g = g;
    this.b3 = this.conv('branch3x3', inC, 384, 3, { stride: 2 });
    this.d1 = this.conv('branch3x3dbl_1', inC, 64, 1);
    this.d2 = this.conv('branch3x3dbl_2', 64, 96, 3, { padding: 1 });
    this.d3 = this.conv('branch3x3dbl_3', 96, 96, 3, { stride: 2 });
  }
  forward(x: Tensor): Tensor {
    return cat([this.b3.forward(x), this.d3.forward(this.d2.forward(this.d1.forward(x))), F.maxPool2d(x, 3, 2)], 1);
  }
}

/** FIDInceptionC: 17×17 block with factorised 7×7 convolutions. */
class InceptionC extends Block {
  readonly b1: BasicConv2d;
  readonly s1: BasicConv2d; readonly s2: BasicConv2d; readonly s3: BasicConv2d;
  readonly d1: BasicConv2d; readonly d2: BasicConv2d; readonly d3: BasicConv2d; readonly d4: BasicConv2d; readonly d5: BasicConv2d;
  readonly pool: BasicConv2d;
  constructor(inC: number, c7: number, g?: Generator) {
    super();
    if (g) this.g = g;
    this.b1 = this.conv('branch1x1', inC, 192, 1);
    this.s1 = this.conv('branch7x7_1', inC, c7, 1);
    this.s2 = this.conv('branch7x7_2', c7, c7, [1, 7], { padding: [0, 3] });
    this.s3 = this.conv('branch7x7_3', c7, 192, [7, 1], { padding: [3, 0] });
    this.d1 = this.conv('branch7x7dbl_1', inC, c7, 1);
    this.d2 = this.conv('branch7x7dbl_2', c7, c7, [7, 1], { padding: [3, 0] });
    this.d3 = this.conv('branch7x7dbl_3', c7, c7, [1, 7], { padding: [0, 3] });
    this.d4 = this.conv('branch7x7dbl_4', c7, c7, [7, 1], { padding: [3, 0] });
    this.d5 = this.conv('branch7x7dbl_5', c7, 192, [1, 7], { padding: [0, 3] });
    this.pool = this.conv('branch_pool', inC, 192, 1);
  }
  forward(x: Tensor): Tensor {
    const dbl = this.d5.forward(this.d4.forward(this.d3.forward(this.d2.forward(this.d1.forward(x)))));
    return cat([this.b1.forward(x), this.s3.forward(this.s2.forward(this.s1.forward(x))), dbl, this.pool.forward(avgPool3(x))], 1);
  }
}

/** InceptionD (Mixed_7a): grid reduction 17→8. */
class InceptionD extends Block {
  readonly a1: BasicConv2d; readonly a2: BasicConv2d;
  readonly s1: BasicConv2d; readonly s2: BasicConv2d; readonly s3: BasicConv2d; readonly s4: BasicConv2d;
  constructor(inC: number, g?: Generator) {
    super();
    if (g) this.g = g;
    this.a1 = this.conv('branch3x3_1', inC, 192, 1);
    this.a2 = this.conv('branch3x3_2', 192, 320, 3, { stride: 2 });
    this.s1 = this.conv('branch7x7x3_1', inC, 192, 1);
    this.s2 = this.conv('branch7x7x3_2', 192, 192, [1, 7], { padding: [0, 3] });
    this.s3 = this.conv('branch7x7x3_3', 192, 192, [7, 1], { padding: [3, 0] });
    this.s4 = this.conv('branch7x7x3_4', 192, 192, 3, { stride: 2 });
  }
  forward(x: Tensor): Tensor {
    return cat([
      this.a2.forward(this.a1.forward(x)),
      this.s4.forward(this.s3.forward(this.s2.forward(this.s1.forward(x)))),
      F.maxPool2d(x, 3, 2),
    ], 1);
  }
}

/** FIDInceptionE_1 (avg-pool, count_include_pad=False) and FIDInceptionE_2 (max-pool). */
class InceptionE extends Block {
  readonly b1: BasicConv2d;
  readonly t1: BasicConv2d; readonly t2a: BasicConv2d; readonly t2b: BasicConv2d;
  readonly d1: BasicConv2d; readonly d2: BasicConv2d; readonly d3a: BasicConv2d; readonly d3b: BasicConv2d;
  readonly pool: BasicConv2d;
  constructor(inC: number, readonly poolKind: 'avg' | 'max', g?: Generator) {
    super();
    if (g) this.g = g;
    this.b1 = this.conv('branch1x1', inC, 320, 1);
    this.t1 = this.conv('branch3x3_1', inC, 384, 1);
    this.t2a = this.conv('branch3x3_2a', 384, 384, [1, 3], { padding: [0, 1] });
    this.t2b = this.conv('branch3x3_2b', 384, 384, [3, 1], { padding: [1, 0] });
    this.d1 = this.conv('branch3x3dbl_1', inC, 448, 1);
    this.d2 = this.conv('branch3x3dbl_2', 448, 384, 3, { padding: 1 });
    this.d3a = this.conv('branch3x3dbl_3a', 384, 384, [1, 3], { padding: [0, 1] });
    this.d3b = this.conv('branch3x3dbl_3b', 384, 384, [3, 1], { padding: [1, 0] });
    this.pool = this.conv('branch_pool', inC, 192, 1);
  }
  forward(x: Tensor): Tensor {
    const t = this.t1.forward(x);
    const d = this.d2.forward(this.d1.forward(x));
    const pooled = this.poolKind === 'avg' ? avgPool3(x) : F.maxPool2d(x, 3, 1, 1);
    return cat([
      this.b1.forward(x),
      cat([this.t2a.forward(t), this.t2b.forward(t)], 1),
      cat([this.d3a.forward(d), this.d3b.forward(d)], 1),
      this.pool.forward(pooled),
    ], 1);
  }
}

/** The FID Inception-v3 trunk up to the 2048-d pool3 features. */
export class InceptionV3 extends Module {
  readonly stem: BasicConv2d[];
  readonly blocks: Block[];

  /** With a generator the weights are He-normal random (for tests); without, zeros to be loaded. */
  constructor(generator?: Generator) {
    super();
    const g = generator ? { generator } : {};
    const c = (name: string, inC: number, outC: number, k: Pair, o: { stride?: Pair; padding?: Pair } = {}) =>
      this.registerModule(name, new BasicConv2d(inC, outC, k, { ...o, ...g }));
    this.stem = [
      c('Conv2d_1a_3x3', 3, 32, 3, { stride: 2 }),
      c('Conv2d_2a_3x3', 32, 32, 3),
      c('Conv2d_2b_3x3', 32, 64, 3, { padding: 1 }),
      c('Conv2d_3b_1x1', 64, 80, 1),
      c('Conv2d_4a_3x3', 80, 192, 3),
    ];
    const b = <B extends Block>(name: string, m: B) => this.registerModule(name, m);
    this.blocks = [
      b('Mixed_5b', new InceptionA(192, 32, generator)),
      b('Mixed_5c', new InceptionA(256, 64, generator)),
      b('Mixed_5d', new InceptionA(288, 64, generator)),
      b('Mixed_6a', new InceptionB(288, generator)),
      b('Mixed_6b', new InceptionC(768, 128, generator)),
      b('Mixed_6c', new InceptionC(768, 160, generator)),
      b('Mixed_6d', new InceptionC(768, 160, generator)),
      b('Mixed_6e', new InceptionC(768, 192, generator)),
      b('Mixed_7a', new InceptionD(768, generator)),
      b('Mixed_7b', new InceptionE(1280, 'avg', generator)),
      b('Mixed_7c', new InceptionE(2048, 'max', generator)),
    ];
    this.eval();
  }

  /** pool3 features [N, 2048] of normalised input [N, 3, 299, 299]. */
  forward(x: Tensor): Tensor {
    return scope(() => this.forwardBlocks(x)[3].flatten(1));
  }

  /**
   * The outputs of pytorch-fid's four blocks: 64×73×73 (after the first max
   * pool), 192×35×35, 768×17×17 and the pooled 2048×1×1, for checking a port
   * stage by stage.
   */
  forwardBlocks(x: Tensor): [Tensor, Tensor, Tensor, Tensor] {
    const [c1a, c2a, c2b, c3b, c4a] = this.stem as [BasicConv2d, BasicConv2d, BasicConv2d, BasicConv2d, BasicConv2d];
    const b0 = F.maxPool2d(c2b.forward(c2a.forward(c1a.forward(x))), 3, 2);
    const b1 = F.maxPool2d(c4a.forward(c3b.forward(b0)), 3, 2);
    let h = b1;
    for (const block of this.blocks.slice(0, 8)) h = block.forward(h);
    const b2 = h;
    for (const block of this.blocks.slice(8)) h = block.forward(h);
    return [b0, b1, b2, F.adaptiveAvgPool2d(h, 1)];
  }
}

/**
 * The [out, in] matrix of TF1's bilinear resize with align_corners=False
 * (torch-fidelity's interpolate_bilinear_2d_like_tensorflow1x): output pixel o
 * samples source position o·in/out, between floor and min(floor+1, in−1).
 */
export function tf1BilinearMatrix(inSize: number, outSize: number): Float32Array {
  const m = new Float32Array(outSize * inSize);
  const scale = inSize / outSize;
  for (let o = 0; o < outSize; o++) {
    const src = o * scale;
    const i0 = Math.min(Math.floor(src), inSize - 1);
    const i1 = Math.min(i0 + 1, inSize - 1);
    const f = src - i0;
    m[o * inSize + i0]! += 1 - f;
    m[o * inSize + i1]! += f;
  }
  return m;
}

/** TF1-style bilinear resize of float images [N, C, H, W] to [N, C, outH, outW], as two matrix products. */
export function resizeBilinearTf1(x: Tensor, outH: number, outW: number): Tensor {
  const [, , h, w] = x.shape as [number, number, number, number];
  return scope(() => {
    const dev = x.device;
    const ry = tensor(tf1BilinearMatrix(h, outH), [outH, h], { device: dev });
    const rxT = tensor(tf1BilinearMatrix(w, outW), [outW, w], { device: dev }).transpose(0, 1);
    return ry.matmul(x).matmul(rxT);
  });
}

/** uint8 [N, 1|3, H, W] → float [N, 3, 299, 299], in the given preprocessing (default 'tf1'). */
export function preprocessForInception(images: Tensor, mode: InceptionPreprocessing = 'tf1'): Tensor {
  if (images.ndim !== 4) throw new Error(`inception: expected images [N, C, H, W], got [${images.shape}]`);
  const [n, c, h, w] = images.shape as [number, number, number, number];
  if (c !== 1 && c !== 3) throw new Error(`inception: images must have 1 or 3 channels, got ${c}`);
  const R = INCEPTION_RESOLUTION;
  return scope(() => {
    let x = images.float();
    if (c === 1) x = x.expand(n, 3, h, w);
    if (mode === 'pytorch-fid') {
      x = x.div(255);
      if (h !== R || w !== R) x = F.interpolate(x.contiguous(), [R, R], 'bilinear', false);
      return x.mul(2).sub(1);
    }
    if (h !== R || w !== R) x = resizeBilinearTf1(x, R, R);
    return x.sub(128).div(128);
  });
}

const IGNORED = [/^fc\./, /^AuxLogits\./, /\.num_batches_tracked$/];

/** Maps a file's tensors onto the network's names: strips a common prefix, drops the ignorable ones, lists unknown/missing. */
export function matchInceptionState(
  file: Map<string, Tensor>,
  expected: ReadonlySet<string>,
  source: string,
): { used: Map<string, Tensor>; ignored: string[] } {
  const anchor = 'Conv2d_1a_3x3.conv.weight';
  let prefix = '';
  if (!file.has(anchor)) {
    const hit = [...file.keys()].find((k) => k.endsWith(`.${anchor}`));
    if (hit) {
      const p = hit.slice(0, hit.length - anchor.length);
      if ([...file.keys()].every((k) => k.startsWith(p))) prefix = p;
    }
  }
  const used = new Map<string, Tensor>();
  const ignored: string[] = [];
  const unknown: string[] = [];
  for (const [full, t] of file) {
    const name = full.slice(prefix.length);
    if (expected.has(name)) used.set(name, t);
    else if (IGNORED.some((re) => re.test(name))) ignored.push(full);
    else unknown.push(full);
  }
  const missing = [...expected].filter((k) => !used.has(k));
  const show = (xs: string[]) => xs.slice(0, 6).join(', ') + (xs.length > 6 ? `, … (${xs.length} in all)` : '');
  if (missing.length || unknown.length) {
    const parts: string[] = [];
    if (missing.length) parts.push(`missing ${missing.length} tensor(s): ${show(missing)}`);
    if (unknown.length) parts.push(`unexpected ${unknown.length} tensor(s): ${show(unknown)}`);
    throw new Error(
      `${source} does not hold FID Inception-v3 weights with pytorch-fid/torch-fidelity names: ${parts.join('; ')}. ` +
        `Expected names like 'Conv2d_1a_3x3.conv.weight' and 'Mixed_7c.branch_pool.bn.running_var' (see src/metrics/inception.ts for the conversion).`,
    );
  }
  return { used, ignored };
}

/** Inception-v3 loaded from the user's weights file as a feature network. */
export interface LoadedInception extends FeatureNetwork {
  readonly model: InceptionV3;
  readonly path: string;
  readonly mode: InceptionPreprocessing;
  /** File entries that were accepted but not used (fc.*, AuxLogits.*, num_batches_tracked). */
  readonly ignored: readonly string[];
}

/**
 * Loads FID Inception-v3 weights from a torch .pth/.pt (e.g. pytorch-fid's
 * published file) or a safetensors file (see the file comment for what is
 * accepted). `preprocessing` defaults to 'pytorch-fid' for torch files and
 * 'tf1' for safetensors.
 */
export function loadInception(path: string, options: { device?: Device; preprocessing?: InceptionPreprocessing } = {}): LoadedInception {
  if (!existsSync(path)) throw new Error(`Inception weights not found: ${path}`);
  const torchFile = sniffFileKind(path) !== 'other';
  const tensors = torchFile ? stateDictOf(readTorchFile(path), path) : readSafetensors(path).tensors;
  const mode = options.preprocessing ?? (torchFile ? 'pytorch-fid' : 'tf1');
  if (!INCEPTION_PREPROCESSINGS.includes(mode)) throw new Error(`unknown Inception preprocessing '${mode}' (known: ${INCEPTION_PREPROCESSINGS.join(', ')})`);
  try {
    const model = new InceptionV3();
    const expected = new Set(model.stateDict().keys());
    const { used, ignored } = matchInceptionState(tensors, expected, path);
    for (const [name, t] of used)
      if (!['float32', 'float16', 'bfloat16', 'float64'].includes(t.dtype)) throw new Error(`${path}: tensor '${name}' has dtype ${t.dtype}; expected a float type`);
    const sha256 = weightsSha256(used);
    try {
      model.loadStateDict(used);
    } catch (e) {
      model.dispose();
      throw new Error(`${path}: ${(e as Error).message} (is this the 3-channel FID Inception-v3?)`);
    }
    if (options.device && options.device !== 'cpu') model.to({ device: options.device });
    return inceptionNetwork(model, { path, sha256, ignored, mode });
  } finally {
    for (const t of tensors.values()) t.dispose();
  }
}

/** Wraps an InceptionV3 as a FeatureNetwork (uint8 images in, [N, 2048] out). */
export function inceptionNetwork(model: InceptionV3, info: { path: string; sha256: string; ignored?: string[]; mode?: InceptionPreprocessing }): LoadedInception {
  model.eval();
  const mode = info.mode ?? 'tf1';
  const device = () => model.stem[0]!.conv.weight.device;
  return {
    name: INCEPTION_NAMES[mode],
    sha256: info.sha256,
    dim: INCEPTION_FEATURE_DIM,
    preprocessing: PREPROCESSING_TEXT[mode],
    model,
    path: info.path,
    mode,
    ignored: info.ignored ?? [],
    features: (images) => noGrad(() => scope(() => model.forward(preprocessForInception(images.to({ device: device() }), mode)))),
    dispose: () => model.dispose(),
  };
}
