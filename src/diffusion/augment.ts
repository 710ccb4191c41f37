// EDM's non-leaking augmentation pipeline (training/augment.py, after Karras
// et al. 2020's ADA): each image is flipped, rotated, scaled, translated and
// recoloured with its own random parameters, and the parameters are returned
// as "augment labels" that the network sees (its map_augment layer), so it
// learns to tell augmented images apart and the sampler, which passes no
// labels, draws un-augmented ones: the augmentation does not leak.
//
// Every random draw happens in the official order, with the official shapes,
// from a generator the caller owns (the training stream), so a seed gives the
// official pipe's images and labels, and resume stays exact. The per-image
// transforms are composed in float64 on the host (tiny 3×3 and 4×4 matrices);
// the images are transformed on their device in float32 as the official:
// reflect padding, 2× upsampling with the sym6 wavelet, a bilinear affine
// resampling, and 2× downsampling with the same filter.
import { scope } from '../tensor/scope.js';
import { stack, tensor, where, zerosLike } from '../tensor/creation.js';
import { affineGrid, conv2d, gridSample, pad } from '../tensor/functional.js';
import type { Generator } from '../tensor/random.js';
import type { Device, Tensor } from '../tensor/tensor.js';

/** Probability multipliers (0 = off) and strengths; the names are augment.py's, camelCased. */
export interface AugmentOptions {
  /** Overall probability multiplier (train.py's --augment). */
  p: number;
  // Pixel blitting.
  xflip: number;
  yflip: number;
  rotateInt: number;
  translateInt: number;
  translateIntMax: number;
  // Geometric transformations.
  scale: number;
  rotateFrac: number;
  aniso: number;
  translateFrac: number;
  scaleStd: number;
  rotateFracMax: number;
  anisoStd: number;
  anisoRotateProb: number;
  translateFracStd: number;
  // Colour transformations.
  brightness: number;
  contrast: number;
  lumaflip: number;
  hue: number;
  saturation: number;
  brightnessStd: number;
  contrastStd: number;
  hueMax: number;
  saturationStd: number;
}

/** augment.py's constructor defaults: every augmentation off. */
export const AUGMENT_DEFAULTS: AugmentOptions = {
  p: 1,
  xflip: 0, yflip: 0, rotateInt: 0, translateInt: 0, translateIntMax: 0.125,
  scale: 0, rotateFrac: 0, aniso: 0, translateFrac: 0, scaleStd: 0.2, rotateFracMax: 1, anisoStd: 0.2, anisoRotateProb: 0.5, translateFracStd: 0.125,
  brightness: 0, contrast: 0, lumaflip: 0, hue: 0, saturation: 0, brightnessStd: 0.2, contrastStd: 0.5, hueMax: 1, saturationStd: 1,
};

/** What the official train.py builds for `--augment P`: geometric augmentations only, 9 label dimensions. */
export function trainPyAugmentOptions(p: number): AugmentOptions {
  return { ...AUGMENT_DEFAULTS, p, xflip: 1e8, yflip: 1, scale: 1, rotateFrac: 1, aniso: 1, translateFrac: 1 };
}

/** augment.py's snake_case keyword names, for snapshot metadata and error messages. */
export function augmentKwargs(o: AugmentOptions): Record<string, number> {
  return Object.fromEntries(Object.entries(o).map(([k, v]) => [k.replace(/[A-Z]/g, (c) => '_' + c.toLowerCase()), v]));
}

/** The sym6 wavelet's low-pass filter (the official resampling filter, 12 taps). */
const SYM6 = [
  0.015404109327027373, 0.0034907120842174702, -0.11799011114819057, -0.048311742585633, 0.4910559419267466, 0.787641141030194,
  0.3379294217276218, -0.07263752278646252, -0.021060292512300564, 0.04472490177066578, 0.0017677118642428036, -0.007800708325034148,
];

type Mat = number[]; // row-major square matrix

function matmul(a: Mat, b: Mat, n: number): Mat {
  const out = new Array<number>(n * n).fill(0);
  for (let i = 0; i < n; i++) for (let k = 0; k < n; k++) for (let j = 0; j < n; j++) out[i * n + j]! += a[i * n + k]! * b[k * n + j]!;
  return out;
}
const eye = (n: number): Mat => Array.from({ length: n * n }, (_, k) => (k % (n + 1) === 0 ? 1 : 0));
const translate2d = (tx: number, ty: number): Mat => [1, 0, tx, 0, 1, ty, 0, 0, 1];
const scale2d = (sx: number, sy: number): Mat => [sx, 0, 0, 0, sy, 0, 0, 0, 1];
const rotate2d = (t: number): Mat => [Math.cos(t), -Math.sin(t), 0, Math.sin(t), Math.cos(t), 0, 0, 0, 1];
const translate3d = (tx: number, ty: number, tz: number): Mat => [1, 0, 0, tx, 0, 1, 0, ty, 0, 0, 1, tz, 0, 0, 0, 1];
const scale3d = (sx: number, sy: number, sz: number): Mat => [sx, 0, 0, 0, 0, sy, 0, 0, 0, 0, sz, 0, 0, 0, 0, 1];
function rotate3d(v: readonly number[], t: number): Mat {
  const [x, y, z] = v as [number, number, number];
  const s = Math.sin(t), c = Math.cos(t), cc = 1 - c;
  return [
    x * x * cc + c, x * y * cc - z * s, x * z * cc + y * s, 0,
    y * x * cc + z * s, y * y * cc + c, y * z * cc - x * s, 0,
    z * x * cc - y * s, z * y * cc + x * s, z * z * cc + c, 0,
    0, 0, 0, 1,
  ];
}
/** a·aᵀ for a 4-vector. */
const outer4 = (a: readonly number[]): Mat => a.flatMap((ai) => a.map((aj) => ai * aj));

/** Round half to even, as torch.round. */
function roundHalfEven(x: number): number {
  const r = Math.round(x);
  return Math.abs(x % 1) === 0.5 && r % 2 !== 0 ? r - 1 : r;
}
/** Python's floor modulo (the official `%` on tensors). */
const floorMod = (a: number, m: number): number => ((a % m) + m) % m;

export interface AugmentResult {
  images: Tensor;
  /** Float32 [N, labelDim]: what the network's map_augment reads. */
  labels: Tensor;
}

export class AugmentPipe {
  readonly options: Readonly<AugmentOptions>;

  constructor(options: Partial<AugmentOptions> = {}) {
    const o = { ...AUGMENT_DEFAULTS, ...options };
    for (const [k, v] of Object.entries(augmentKwargs(o)))
      if (typeof v !== 'number' || !Number.isFinite(v) || v < 0) throw new Error(`augment: ${k} must be a finite number ≥ 0, got ${String(v)}`);
    if (o.p > 1) throw new Error(`augment: the probability p must be in [0, 1], got ${o.p}`);
    this.options = Object.freeze(o);
  }

  /** Width of the labels: the network's augment_dim (9 for train.py's set). */
  get labelDim(): number {
    const o = this.options;
    const on = (x: number, width: number) => (x > 0 ? width : 0);
    return (
      on(o.xflip, 1) + on(o.yflip, 1) + on(o.rotateInt, 2) + on(o.translateInt, 2) +
      on(o.scale, 1) + on(o.rotateFrac, 2) + on(o.aniso, 2) + on(o.translateFrac, 2) +
      on(o.brightness, 1) + on(o.contrast, 1) + on(o.lumaflip, 1) + on(o.hue, 2) + on(o.saturation, 1)
    );
  }

  /** Augments images [N, C, H, W] (float32, values in any range) with draws from `generator`. */
  apply(images: Tensor, generator: Generator): AugmentResult {
    if (images.ndim !== 4) throw new Error(`augment: images must be [N, C, H, W], got [${images.shape}]`);
    const o = this.options;
    const [N, C, H, W] = images.shape as [number, number, number, number];
    const device = images.device;
    const labels: number[][] = []; // columns, each N values
    const draw = {
      rand: (shape: number[]) => scope(() => floats(generator.rand(shape))),
      randn: (shape: number[]) => scope(() => floats(generator.randn(shape))),
      randint: (high: number, shape: number[]) => scope(() => floats(generator.randint(0, high, shape))),
    };
    // torch.where(rand < mult·p, w, 0): the threshold is compared in float32, as torch does with a Python float.
    const gate = (w: number[], u: number[], prob: number) => w.map((x, k) => (u[k]! < Math.fround(prob) ? x : 0));

    return scope(() => {
      let x = images;

      // ---- pixel blitting ------------------------------------------------------------------
      if (o.xflip > 0) {
        const w = gate(draw.randint(2, [N, 1, 1, 1]), draw.rand([N, 1, 1, 1]), o.xflip * o.p);
        x = where(mask(w.map((v) => v === 1), device), x.flip(3), x);
        labels.push(w);
      }
      if (o.yflip > 0) {
        const w = gate(draw.randint(2, [N, 1, 1, 1]), draw.rand([N, 1, 1, 1]), o.yflip * o.p);
        x = where(mask(w.map((v) => v === 1), device), x.flip(2), x);
        labels.push(w);
      }
      if (o.rotateInt > 0) {
        if (H !== W) throw new Error(`augment: integer rotation needs square images, got ${H}×${W}`);
        const w = gate(draw.randint(4, [N, 1, 1, 1]), draw.rand([N, 1, 1, 1]), o.rotateInt * o.p);
        x = where(mask(w.map((v) => v === 1 || v === 2), device), x.flip(3), x);
        x = where(mask(w.map((v) => v === 2 || v === 3), device), x.flip(2), x);
        x = where(mask(w.map((v) => v === 1 || v === 3), device), x.transpose(2, 3), x);
        labels.push(w.map((v) => (v === 1 || v === 2 ? 1 : 0)), w.map((v) => (v === 2 || v === 3 ? 1 : 0)));
      }
      if (o.translateInt > 0) {
        if (H < 2 || W < 2) throw new Error(`augment: integer translation needs images of at least 2×2, got ${H}×${W}`);
        const r = draw.rand([2, N, 1, 1, 1]).map((v) => Math.fround(Math.fround(v * 2) - 1));
        const u = draw.rand([1, N, 1, 1, 1]);
        const w0 = gate(r.slice(0, N), u, o.translateInt * o.p);
        const w1 = gate(r.slice(N), u, o.translateInt * o.p);
        const sx = Math.fround(W * o.translateIntMax), sy = Math.fround(H * o.translateIntMax);
        const tx = w0.map((v) => roundHalfEven(Math.fround(v * sx)));
        const ty = w1.map((v) => roundHalfEven(Math.fround(v * sy)));
        // Reflecting integer shift as one gather over the flattened batch.
        const index = new Int32Array(N * C * H * W);
        let at = 0;
        for (let b = 0; b < N; b++)
          for (let c = 0; c < C; c++)
            for (let yy = 0; yy < H; yy++) {
              const ys = H - 1 - Math.abs(H - 1 - floorMod(yy + ty[b]!, H * 2 - 2));
              for (let xx = 0; xx < W; xx++) {
                const xs = W - 1 - Math.abs(W - 1 - floorMod(xx - tx[b]!, W * 2 - 2));
                index[at++] = ((b * C + c) * H + ys) * W + xs;
              }
            }
        x = x.flatten().indexSelect(0, onDevice(tensor(index, [index.length], { dtype: 'int64' }), device)).reshape(N, C, H, W);
        labels.push(tx.map((v) => Math.fround(v / sx)), ty.map((v) => Math.fround(v / sy)));
      }

      // ---- geometric transformations: parameters -------------------------------------------
      const geometric = o.scale > 0 || o.rotateFrac > 0 || o.aniso > 0 || o.translateFrac > 0;
      let gInv: Mat[] = Array.from({ length: N }, () => eye(3));
      const compose = (m: (k: number) => Mat) => (gInv = gInv.map((g, k) => matmul(g, m(k), 3)));
      if (o.scale > 0) {
        const w = gate(draw.randn([N]), draw.rand([N]), o.scale * o.p);
        compose((k) => {
          const s = 2 ** (w[k]! * o.scaleStd);
          return scale2d(1 / s, 1 / s);
        });
        labels.push(w);
      }
      if (o.rotateFrac > 0) {
        const r = draw.rand([N]).map((v) => (v * 2 - 1) * (Math.PI * o.rotateFracMax));
        const w = gate(r, draw.rand([N]), o.rotateFrac * o.p);
        compose((k) => rotate2d(w[k]!)); // rotate2d_inv(−w)
        labels.push(w.map((v) => Math.cos(v) - 1), w.map((v) => Math.sin(v)));
      }
      if (o.aniso > 0) {
        const wRaw = draw.randn([N]);
        const rRaw = draw.rand([N]).map((v) => (v * 2 - 1) * Math.PI);
        const w = gate(wRaw, draw.rand([N]), o.aniso * o.p);
        const r = gate(rRaw, draw.rand([N]), o.anisoRotateProb);
        compose((k) => {
          const s = 2 ** (w[k]! * o.anisoStd);
          return matmul(matmul(rotate2d(-r[k]!), scale2d(1 / s, s), 3), rotate2d(r[k]!), 3);
        });
        labels.push(w.map((v, k) => v * Math.cos(r[k]!)), w.map((v, k) => v * Math.sin(r[k]!)));
      }
      if (o.translateFrac > 0) {
        const raw = draw.randn([2, N]);
        const u = draw.rand([1, N]);
        const w0 = gate(raw.slice(0, N), u, o.translateFrac * o.p);
        const w1 = gate(raw.slice(N), u, o.translateFrac * o.p);
        compose((k) => translate2d(-w0[k]! * W * o.translateFracStd, -w1[k]! * H * o.translateFracStd));
        labels.push(w0, w1);
      }
      if (geometric) x = resample(x, gInv);

      // ---- colour transformations ----------------------------------------------------------
      const colour = o.brightness > 0 || o.contrast > 0 || o.lumaflip > 0 || o.hue > 0 || o.saturation > 0;
      let m: Mat[] = Array.from({ length: N }, () => eye(4));
      const pre = (f: (k: number) => Mat) => (m = m.map((mk, k) => matmul(f(k), mk, 4)));
      const luma = [1, 1, 1, 0].map((v) => v / Math.sqrt(3));
      const lumaOuter = outer4(luma);
      if (o.brightness > 0) {
        const w = gate(draw.randn([N]), draw.rand([N]), o.brightness * o.p);
        pre((k) => translate3d(w[k]! * o.brightnessStd, w[k]! * o.brightnessStd, w[k]! * o.brightnessStd));
        labels.push(w);
      }
      if (o.contrast > 0) {
        const w = gate(draw.randn([N]), draw.rand([N]), o.contrast * o.p);
        pre((k) => {
          const c = 2 ** (w[k]! * o.contrastStd);
          return scale3d(c, c, c);
        });
        labels.push(w);
      }
      if (o.lumaflip > 0) {
        const w = gate(draw.randint(2, [N, 1, 1]), draw.rand([N, 1, 1]), o.lumaflip * o.p);
        pre((k) => eye(4).map((v, j) => v - 2 * lumaOuter[j]! * w[k]!));
        labels.push(w);
      }
      if (o.hue > 0) {
        const r = draw.rand([N]).map((v) => (v * 2 - 1) * (Math.PI * o.hueMax));
        const w = gate(r, draw.rand([N]), o.hue * o.p);
        pre((k) => rotate3d(luma, w[k]!));
        labels.push(w.map((v) => Math.cos(v) - 1), w.map((v) => Math.sin(v)));
      }
      if (o.saturation > 0) {
        const w = gate(draw.randn([N, 1, 1]), draw.rand([N, 1, 1]), o.saturation * o.p);
        pre((k) => {
          const s = 2 ** (w[k]! * o.saturationStd);
          return lumaOuter.map((v, j) => v + (eye(4)[j]! - v) * s);
        });
        labels.push(w);
      }
      if (colour) x = recolour(x, m);

      const labelData = new Float32Array(N * labels.length);
      labels.forEach((column, j) => column.forEach((v, k) => (labelData[k * labels.length + j] = v)));
      return { images: x, labels: onDevice(tensor(labelData, [N, labels.length]), device) };
    });
  }
}

/** Values of a (small) tensor as numbers. */
function floats(t: Tensor): number[] {
  return Array.from(t.data() as ArrayLike<number | bigint>, Number);
}

function onDevice(t: Tensor, device: Device): Tensor {
  return device === 'cpu' ? t : t.to(device);
}

/** A boolean [N, 1, 1, 1] tensor from per-image flags. */
function mask(flags: readonly boolean[], device: Device): Tensor {
  return onDevice(tensor(Uint8Array.from(flags, Number), [flags.length, 1, 1, 1], { dtype: 'bool' }), device);
}

/** A depthwise 1-D filter along W ('x') or H ('y') as conv2d weights [C, 1, 1, K] / [C, 1, K, 1]. */
function filterWeights(taps: readonly number[], channels: number, axis: 'x' | 'y', device: Device): Tensor {
  const data = new Float32Array(channels * taps.length);
  for (let c = 0; c < channels; c++) data.set(taps, c * taps.length);
  return onDevice(tensor(data, axis === 'x' ? [channels, 1, 1, taps.length] : [channels, 1, taps.length, 1]), device);
}

/**
 * Applies per-image inverse transforms gInv (pixel units, origin at the image
 * centre) as augment.py does: reflect-pad enough for the transformed corners,
 * upsample 2× with the sym6 filter, resample bilinearly, downsample 2×, crop.
 */
function resample(images: Tensor, gInvIn: Mat[]): Tensor {
  const [N, C, H, W] = images.shape as [number, number, number, number];
  const device = images.device;
  const hzPad = Math.floor(SYM6.length / 4);
  const cx = (W - 1) / 2, cy = (H - 1) / 2;

  // Margins: how far the transformed corners reach outside the image, plus the filter's reach.
  const corners = [[-cx, -cy], [cx, -cy], [cx, cy], [-cx, cy]] as const;
  let [x0, y0, x1, y1] = [-Infinity, -Infinity, -Infinity, -Infinity];
  for (const g of gInvIn)
    for (const [px, py] of corners) {
      const tx = g[0]! * px + g[1]! * py + g[2]!;
      const ty = g[3]! * px + g[4]! * py + g[5]!;
      x0 = Math.max(x0, -tx); y0 = Math.max(y0, -ty); x1 = Math.max(x1, tx); y1 = Math.max(y1, ty);
    }
  const clampTo = (v: number, hi: number) => Math.ceil(Math.min(Math.max(v, 0), hi));
  const mx0 = clampTo(x0 + hzPad * 2 - cx, W - 1), my0 = clampTo(y0 + hzPad * 2 - cy, H - 1);
  const mx1 = clampTo(x1 + hzPad * 2 - cx, W - 1), my1 = clampTo(y1 + hzPad * 2 - cy, H - 1);

  let x = pad(images, [mx0, mx1, my0, my1], 'reflect');
  let gInv = gInvIn.map((g) => matmul(translate2d((mx0 - mx1) / 2, (my0 - my1) / 2), g, 3));

  // Upsample 2×: interleave zeros, then the (reversed) filter along each axis.
  const up = [...SYM6].reverse();
  const upPad = Math.floor((SYM6.length + 1) / 2);
  const [, , hp, wp] = x.shape as [number, number, number, number];
  x = stack([x, zerosLike(x)], 4).reshape(N, C, hp, 2 * wp).narrow(3, 0, 2 * wp - 1);
  x = conv2d(x, filterWeights(up, C, 'x', device), null, { padding: [0, upPad], groups: C });
  x = stack([x, zerosLike(x)], 3).reshape(N, C, 2 * hp, x.shape[3]!).narrow(2, 0, 2 * hp - 1);
  x = conv2d(x, filterWeights(up, C, 'y', device), null, { padding: [upPad, 0], groups: C });
  gInv = gInv.map((g) => matmul(matmul(scale2d(2, 2), g, 3), scale2d(0.5, 0.5), 3));
  gInv = gInv.map((g) => matmul(matmul(translate2d(-0.5, -0.5), g, 3), translate2d(0.5, 0.5), 3));

  // Resample: affine_grid works in normalised [−1, 1] coordinates of input and output.
  const outH = (H + hzPad * 2) * 2, outW = (W + hzPad * 2) * 2;
  const [inH, inW] = [x.shape[2]!, x.shape[3]!];
  const theta = new Float32Array(N * 6);
  gInv.forEach((g, k) => {
    const t = matmul(matmul(scale2d(2 / inW, 2 / inH), g, 3), scale2d(outW / 2, outH / 2), 3);
    theta.set(t.slice(0, 6), k * 6);
  });
  const grid = affineGrid(onDevice(tensor(theta, [N, 2, 3]), device), [N, C, outH, outW], false);
  x = gridSample(x, grid, 'bilinear', 'zeros', false);

  // Downsample 2× and crop the padding.
  const downPad = Math.floor((SYM6.length - 1) / 2);
  x = conv2d(x, filterWeights(SYM6, C, 'x', device), null, { stride: [1, 2], padding: [0, downPad], groups: C });
  x = x.narrow(3, hzPad, x.shape[3]! - 2 * hzPad);
  x = conv2d(x, filterWeights(SYM6, C, 'y', device), null, { stride: [2, 1], padding: [downPad, 0], groups: C });
  return x.narrow(2, hzPad, x.shape[2]! - 2 * hzPad);
}

/** Applies per-image 4×4 colour matrices (homogeneous RGB) to RGB or grey images. */
function recolour(images: Tensor, m: Mat[]): Tensor {
  const [N, C, H, W] = images.shape as [number, number, number, number];
  const device = images.device;
  const flat = images.reshape(N, C, H * W);
  if (C === 3) {
    const lin = new Float32Array(N * 9), off = new Float32Array(N * 3);
    m.forEach((mk, k) => {
      for (let i = 0; i < 3; i++) {
        for (let j = 0; j < 3; j++) lin[k * 9 + i * 3 + j] = mk[i * 4 + j]!;
        off[k * 3 + i] = mk[i * 4 + 3]!;
      }
    });
    return onDevice(tensor(lin, [N, 3, 3]), device).matmul(flat).add(onDevice(tensor(off, [N, 3, 1]), device)).reshape(N, C, H, W);
  }
  if (C === 1) {
    // The grey version: the mean of the RGB rows, its colour gains summed.
    const gain = new Float32Array(N), off = new Float32Array(N);
    m.forEach((mk, k) => {
      let g = 0, b = 0;
      for (let i = 0; i < 3; i++) {
        g += (mk[i * 4]! + mk[i * 4 + 1]! + mk[i * 4 + 2]!) / 3;
        b += mk[i * 4 + 3]! / 3;
      }
      gain[k] = g;
      off[k] = b;
    });
    return flat.mul(onDevice(tensor(gain, [N, 1, 1]), device)).add(onDevice(tensor(off, [N, 1, 1]), device)).reshape(N, C, H, W);
  }
  throw new Error(`augment: colour transformations need RGB (3 channels) or grey (1 channel) images, got ${C} channels`);
}
