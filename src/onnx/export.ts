// ONNX export of the preconditioned denoiser
//   D(x; σ, pos, labels) = c_skip(σ)·x + c_out(σ)·F(concat[c_in(σ)·x, pos], c_noise(σ), labels)
// built by walking our module tree (Preconditioner → SongUNet / DhariwalUNet →
// UNetBlock → Conv2d, GroupNorm, Linear, embeddings) and writing, for each
// module, the ONNX operators its forward() runs, in the same order and with
// the same constants, so onnxruntime computes the same numbers up to float32
// rounding.
//
// Graph interface: inputs `x` [N, C, H, W], `sigma` [N], `x_pos` [N, 2, H, W]
// (only for a network with coordinate channels) and `class_labels`
// [N, label_dim] (only for a conditional network), all float32; output
// `denoised` [N, C, H, W]. N, H and W are dynamic (H and W must be multiples
// of the metadata's size_multiple), so one file samples any batch and canvas.
//
// Opset 17 (IR version 8): every operator used here (Add Sub Mul Div Sqrt
// Reciprocal Log Neg Cos Sin Sigmoid Concat Reshape Shape Unsqueeze Transpose
// MatMul Gemm Softmax Gather Split ReduceMean Conv ConvTranspose AveragePool
// Resize) has a kernel for that opset in onnxruntime's CPU/WASM execution
// provider and in both of onnxruntime-web's WebGPU providers (the JS one's
// operator table and the native one's kernel registry). GroupNormalization
// (opset 18/21) is not in the WebGPU list, so group normalisation is written
// out as Reshape → ReduceMean → Sub → Mul → ReduceMean → Add → Sqrt → Div →
// Reshape → affine. Dropout and label dropout are the identity (evaluation);
// augmentation labels are not an input (sampling passes none, which is what
// the network's forward does without them).
import { Module } from '../nn/module.js';
import { Conv2d } from '../nn/conv2d.js';
import { GroupNorm } from '../nn/group-norm.js';
import { Linear } from '../nn/linear.js';
import { FourierEmbedding, PositionalEmbedding } from '../nn/embeddings.js';
import { UNetBlock } from '../nn/unet-block.js';
import { Preconditioner } from '../networks/precond.js';
import { ImplicitMlpStem, SongUNet } from '../networks/song-unet.js';
import { DhariwalUNet } from '../networks/dhariwal-unet.js';
import { basename } from 'node:path';
import { DiffusionModel } from '../model/diffusion-model.js';
import type { SnapshotInfo } from '../model/snapshot.js';
import { scope } from '../tensor/scope.js';
import type { Tensor } from '../tensor/tensor.js';
import { GraphBuilder, toGraphProto, type Value } from './graph.js';
import { encodeModel, type ModelProto } from './proto.js';

/** The ONNX operator set the export targets (see the header). */
export const ONNX_OPSET = 17;
/** The IR version that goes with opset 17. */
export const ONNX_IR_VERSION = 8;
/** Identifies our export in metadata_props['format']. */
export const ONNX_FORMAT = 'patch-diffusion/onnx-denoiser@1';
/** The operators an export may contain: each is in onnxruntime-web's WebGPU operator table for opset 17. */
export const ONNX_OPS_USED = [
  'Add', 'AveragePool', 'Concat', 'Conv', 'ConvTranspose', 'Cos', 'Div', 'Gather', 'Gemm', 'Log', 'MatMul', 'Mul', 'Neg',
  'Reciprocal', 'ReduceMean', 'Reshape', 'Resize', 'Shape', 'Sigmoid', 'Sin', 'Softmax', 'Split', 'Sqrt', 'Sub', 'Transpose', 'Unsqueeze',
] as const;
/** protobuf cannot encode a message of 2 GiB or more; ONNX's external-data files are not written here. */
const MAX_MODEL_BYTES = 2 ** 31 - 2 ** 20;

/** A layer (or option) the exporter cannot write as ONNX; `layer` is its module path (state-dict prefix). */
export class OnnxExportError extends Error {
  constructor(readonly layer: string, why: string) {
    super(`ONNX export: ${layer || '(the network)'}: ${why}`);
    this.name = 'OnnxExportError';
  }
}

export interface ExportOptions {
  /** Extra metadata_props (strings), e.g. the snapshot's dataset and kimg. */
  metadata?: Record<string, string>;
  /** producer_version (default: this package's). */
  producerVersion?: string;
  /** doc_string of the model. */
  doc?: string;
}

export interface ExportResult {
  /** The .onnx file's bytes. */
  bytes: Uint8Array;
  /** Graph inputs in order, with their dims (strings are dynamic). */
  inputs: { name: string; dims: (number | string)[] }[];
  output: { name: string; dims: (number | string)[] };
  metadata: Record<string, string>;
  /** Operator types in the graph, sorted. */
  opTypes: string[];
  nodeCount: number;
  /** Float32 values stored in the model (weights, filters, frequencies). */
  storedValues: number;
}

/** Float32 values of a tensor (copied to the CPU and float32 when needed). */
function floats(t: Tensor): Float32Array {
  return scope(() => {
    const c = t.dtype === 'float32' && t.device === 'cpu' ? t : t.to({ dtype: 'float32', device: 'cpu' });
    return c.data() as Float32Array;
  });
}

type Ctor<T> = abstract new (...args: never[]) => T;

class Exporter {
  readonly g = new GraphBuilder();
  readonly #paths = new Map<Module, string>();
  #storedValues = 0;
  #resizeScales: Value | null = null;

  constructor(root: Module) {
    const walk = (m: Module, prefix: string) => {
      this.#paths.set(m, prefix);
      for (const [name, child] of m.children()) walk(child, prefix ? `${prefix}.${name}` : name);
    };
    walk(root, '');
  }

  pathOf(m: unknown, fallback: string): string {
    return (m instanceof Module && this.#paths.get(m)) || fallback;
  }

  /** Checks that the module at `path` is a `cls` the exporter knows, naming it otherwise. */
  expect<T>(m: unknown, cls: Ctor<T>, path: string, what: string): T {
    if (m instanceof cls) return m;
    const kind = m === null || m === undefined ? String(m) : `a ${(m as object).constructor?.name ?? typeof m}`;
    throw new OnnxExportError(path, `is ${kind}; the exporter expects ${what} here and has no ONNX form for anything else`);
  }

  /** Runs `fn` with the builder's node names scoped to module path `path`. */
  within<T>(path: string, fn: () => T): T {
    const saved = this.g.scope;
    this.g.scope = path;
    try {
      return fn();
    } finally {
      this.g.scope = saved;
    }
  }

  weight(path: string, name: string, t: Tensor, dims: readonly number[] = t.shape): Value {
    const data = floats(t);
    this.#storedValues += data.length;
    return this.g.weight(`${path}.${name}`, data, dims);
  }
  constantFloats(name: string, data: Float32Array, dims: readonly number[]): Value {
    this.#storedValues += data.length;
    return this.g.weight(name, data, dims);
  }
  get storedValues(): number {
    return this.#storedValues;
  }

  // ---- layers ------------------------------------------------------------------------------

  linear(m: unknown, path: string, x: Value): Value {
    const l = this.expect(m, Linear, path, 'a Linear');
    return this.within(path, () => {
      const w = this.weight(path, 'weight', l.weight);
      const inputs = [x, w];
      if (l.bias) inputs.push(this.weight(path, 'bias', l.bias));
      return this.g.op('Gemm', inputs, { transB: 1 });
    });
  }

  groupNorm(m: unknown, path: string, x: Value): Value {
    const n = this.expect(m, GroupNorm, path, 'a GroupNorm');
    return this.within(path, () => {
      const g = this.g;
      const xr = g.reshape(x, g.int64s([0, n.numGroups, -1])); // [N, G, C/G·H·W]
      const centred = g.sub(xr, g.reduceMean(xr, [2]));
      const variance = g.reduceMean(g.mul(centred, centred), [2]);
      const normed = g.div(centred, g.sqrt(g.add(variance, g.scalar(n.eps))));
      const y = g.reshape(normed, g.shape(x));
      const c = n.numChannels;
      return g.add(g.mul(y, this.weight(path, 'weight', n.weight, [c, 1, 1])), this.weight(path, 'bias', n.bias, [c, 1, 1]));
    });
  }

  /** The depthwise FIR filter of a resampling Conv2d, [channels, 1, f, f], times `scale`. */
  #depthwiseFilter(path: string, c: Conv2d, channels: number, scale: number): { value: Value; size: number } {
    const f = scope(() => floats(scale === 1 ? c.resampleFilter! : c.resampleFilter!.mul(scale)));
    const size = c.resampleFilter!.shape[3]!;
    const data = new Float32Array(channels * f.length);
    for (let k = 0; k < channels; k++) data.set(f, k * f.length);
    return { value: this.constantFloats(`${path}.resample_filter${scale === 1 ? '' : `_x${scale}`}`, data, [channels, 1, size, size]), size };
  }

  conv2d(m: unknown, path: string, x: Value): Value {
    const c = this.expect(m, Conv2d, path, 'a Conv2d');
    return this.within(path, () => {
      const g = this.g;
      const w = c.weight ? this.weight(path, 'weight', c.weight) : null;
      // The bias goes into the convolution that ends the layer, or (fused down-sampling) is added after it as [C, 1, 1].
      const bias = (dims?: number[]) => (c.bias ? this.weight(path, 'bias', c.bias, dims) : null);
      const k = c.kernel;
      const wPad = w ? Math.floor(k / 2) : 0;
      const fSize = c.resampleFilter ? c.resampleFilter.shape[3]! : 0;
      const fPad = c.resampleFilter ? Math.floor((fSize - 1) / 2) : 0;
      const pads = (p: number) => [p, p, p, p];
      const weighted = (y: Value, padding: number, bias: Value | null) =>
        g.op('Conv', bias ? [y, w!, bias] : [y, w!], { kernel_shape: [k, k], pads: pads(padding), strides: [1, 1], group: 1 });
      const box = c.resampleFilter !== null && fSize === 2 && new Set(floats(c.resampleFilter)).size === 1;
      const firUp = (y: Value, channels: number, padding: number) => {
        const f = this.#depthwiseFilter(path, c, channels, 4);
        return g.op('ConvTranspose', [y, f.value], { kernel_shape: [f.size, f.size], pads: pads(padding), strides: [2, 2], group: channels });
      };
      const firDown = (y: Value, channels: number, padding: number) => {
        const f = this.#depthwiseFilter(path, c, channels, 1);
        return g.op('Conv', [y, f.value], { kernel_shape: [f.size, f.size], pads: pads(padding), strides: [2, 2], group: channels });
      };

      if (c.fusedResample && c.up && w) return weighted(firUp(x, c.inChannels, Math.max(fPad - wPad, 0)), Math.max(wPad - fPad, 0), bias());
      if (c.fusedResample && c.down && w) {
        const y = firDown(weighted(x, wPad + fPad, null), c.outChannels, 0);
        const b = bias([c.outChannels, 1, 1]);
        return b ? g.add(y, b) : y;
      }
      let y = x;
      if (c.up) {
        if (box) {
          this.#resizeScales ??= this.constantFloats('resize_scales_2x', new Float32Array([1, 1, 2, 2]), [4]);
          y = g.op('Resize', [y, '', this.#resizeScales], { mode: 'nearest', coordinate_transformation_mode: 'asymmetric', nearest_mode: 'floor' });
        } else y = firUp(y, c.inChannels, fPad);
      }
      if (c.down) {
        if (box) y = g.op('AveragePool', [y], { kernel_shape: [2, 2], strides: [2, 2] });
        else y = firDown(y, c.inChannels, fPad);
      }
      return w ? weighted(y, wPad, bias()) : y;
    });
  }

  /** EDM's interleaved multi-head self-attention: qkv [N, 3C, H, W] → [N, C, H, W] (shaped like `like`). */
  attention(path: string, qkv: Value, like: Value, channels: number, heads: number): Value {
    return this.within(`${path}.attention`, () => {
      const g = this.g;
      const d = channels / heads;
      const parts = g.reshape(qkv, g.int64s([0, heads, d, 3, -1])); // [N, heads, d, 3, L]
      const q = g.gather(parts, 0, 3); // [N, heads, d, L]
      const k = g.gather(parts, 1, 3);
      const v = g.gather(parts, 2, 3);
      const logits = g.matmul(g.transpose(q, [0, 1, 3, 2]), g.div(k, g.scalar(Math.sqrt(d)))); // [N, heads, Lq, Lk]
      const w = g.softmax(logits, 3);
      const a = g.matmul(v, g.transpose(w, [0, 1, 3, 2])); // a[c, i] = Σ_j w[i, j]·v[c, j]
      return g.reshape(a, g.shape(like));
    });
  }

  unetBlock(m: unknown, path: string, x: Value, emb: Value): Value {
    const blk = this.expect(m, UNetBlock, path, 'a UNetBlock');
    const g = this.g;
    let h = this.conv2d(blk.conv0, `${path}.conv0`, this.within(path, () => g.silu(this.groupNorm(blk.norm0, `${path}.norm0`, x))));
    const params = this.within(path, () => g.unsqueeze(this.linear(blk.affine, `${path}.affine`, emb), [2, 3]));
    if (blk.adaptiveScale) {
      const [scale, shift] = this.within(path, () => g.split(params, [blk.outChannels, blk.outChannels], 1)) as [Value, Value];
      const normed = this.groupNorm(blk.norm1, `${path}.norm1`, h);
      h = this.within(path, () => g.silu(g.add(shift, g.mul(normed, g.add(scale, g.scalar(1))))));
    } else {
      const summed = this.within(path, () => g.add(h, params));
      h = this.within(path, () => g.silu(this.groupNorm(blk.norm1, `${path}.norm1`, summed)));
    }
    // Dropout: the identity in evaluation.
    h = this.conv2d(blk.conv1, `${path}.conv1`, h);
    const skip = blk.skip ? this.conv2d(blk.skip, `${path}.skip`, x) : x;
    h = this.within(path, () => g.add(h, skip));
    if (blk.skipScale !== 1) h = this.within(path, () => g.mul(h, g.scalar(blk.skipScale)));
    if (blk.numHeads) {
      const qkv = this.conv2d(blk.qkv, `${path}.qkv`, this.groupNorm(blk.norm2, `${path}.norm2`, h));
      const a = this.attention(path, qkv, h, blk.outChannels, blk.numHeads);
      const hIn = h;
      h = this.within(path, () => g.add(this.conv2d(blk.proj, `${path}.proj`, a), hIn));
      if (blk.skipScale !== 1) h = this.within(path, () => g.mul(h, g.scalar(blk.skipScale)));
    }
    return h;
  }

  /** The noise embedding's two halves, cos(x·f) and sin(x·f), each [N, C/2]. */
  noiseEmbedding(m: unknown, path: string, noise: Value): { cos: Value; sin: Value } {
    let freqs: Float32Array;
    if (m instanceof PositionalEmbedding) freqs = scope(() => floats(m.frequencies()));
    else if (m instanceof FourierEmbedding) freqs = scope(() => floats(m.freqs.mul(2 * Math.PI)));
    else {
      this.expect(m, PositionalEmbedding, path, 'a PositionalEmbedding or FourierEmbedding');
      throw new Error('unreachable');
    }
    return this.within(path, () => {
      const f = this.constantFloats(`${path}.frequencies`, freqs, [1, freqs.length]);
      const xf = this.g.mul(this.g.unsqueeze(noise, [1]), f); // outer(x, f)
      return { cos: this.g.cos(xf), sin: this.g.sin(xf) };
    });
  }

  implicitMlp(m: ImplicitMlpStem, path: string, x: Value): Value {
    let h = x;
    m.convs.forEach((c, i) => {
      const input = i === 0 ? h : this.within(path, () => this.g.silu(h));
      h = this.conv2d(c, this.pathOf(c, `${path}.${2 * i}`), input);
    });
    return h;
  }

  songUNet(u: SongUNet, path: string, x: Value, noise: Value, labels: Value | null): Value {
    const g = this.g;
    const p = (m: unknown, name: string) => this.pathOf(m, `${path}.${name}`);
    // Mapping: the embedding as [sin, cos] (SongUNet's flip of the halves).
    const e = this.noiseEmbedding(u.mapNoise, p(u.mapNoise, 'map_noise'), noise);
    let emb = this.within(p(u.mapNoise, 'map_noise'), () => g.concat([e.sin, e.cos], 1));
    if (u.labelDim) {
      const scaled = this.within(`${path}.map_label`, () => g.mul(labels!, g.scalar(Math.sqrt(u.labelDim))));
      const mapped = this.linear(u.mapLabel, p(u.mapLabel, 'map_label'), scaled);
      emb = this.within(`${path}.map_label`, () => g.add(emb, mapped));
    }
    emb = this.within(`${path}.map_layer0`, () => g.silu(this.linear(u.mapLayer0, p(u.mapLayer0, 'map_layer0'), emb)));
    emb = this.within(`${path}.map_layer1`, () => g.silu(this.linear(u.mapLayer1, p(u.mapLayer1, 'map_layer1'), emb)));

    // Encoder.
    const skips: Value[] = [];
    let h = x;
    let aux = x;
    for (const step of u.encoderPlan) {
      const sp = p(step.module, `enc.${step.kind}`);
      switch (step.kind) {
        case 'aux_down':
          aux = this.conv2d(step.module, sp, aux);
          break;
        case 'aux_skip': {
          const s = this.conv2d(step.module, sp, aux);
          h = this.within(sp, () => g.add(h, s));
          skips[skips.length - 1] = h;
          break;
        }
        case 'aux_residual': {
          const r = this.conv2d(step.module, sp, aux);
          h = this.within(sp, () => g.div(g.add(h, r), g.scalar(Math.SQRT2)));
          skips[skips.length - 1] = h;
          aux = h;
          break;
        }
        case 'block':
          h = this.unetBlock(step.module, sp, h, emb);
          skips.push(h);
          break;
        case 'conv':
          h = step.module instanceof ImplicitMlpStem ? this.implicitMlp(step.module, sp, h) : this.conv2d(step.module, sp, h);
          skips.push(h);
          break;
        default:
          throw new OnnxExportError(sp, `encoder step '${(step as { kind: string }).kind}' has no ONNX form`);
      }
    }

    // Decoder.
    let out: Value | null = null;
    let tmp: Value | null = null;
    for (const step of u.decoderPlan) {
      const sp = p(step.module, `dec.${step.kind}`);
      switch (step.kind) {
        case 'aux_up':
          out = this.conv2d(step.module, sp, out!);
          break;
        case 'aux_norm':
          tmp = this.groupNorm(step.module, sp, h);
          break;
        case 'aux_conv': {
          const t = tmp!;
          tmp = this.conv2d(step.module, sp, this.within(sp, () => g.silu(t)));
          const prev: Value | null = out;
          const cur: Value = tmp;
          out = prev ? this.within(sp, () => g.add(cur, prev)) : cur;
          break;
        }
        case 'block': {
          if (step.concat) {
            const skip = skips.pop()!;
            const hh = h;
            h = this.within(sp, () => g.concat([hh, skip], 1));
          }
          h = this.unetBlock(step.module, sp, h, emb);
          break;
        }
        default:
          throw new OnnxExportError(sp, `decoder step '${(step as { kind: string }).kind}' has no ONNX form`);
      }
    }
    if (out === null) throw new OnnxExportError(path, 'the decoder produced no output (no aux_conv layer)');
    return out;
  }

  dhariwalUNet(u: DhariwalUNet, path: string, x: Value, noise: Value, labels: Value | null): Value {
    const g = this.g;
    const p = (m: unknown, name: string) => this.pathOf(m, `${path}.${name}`);
    // Mapping: noise → Linear → SiLU → Linear → + label → SiLU (embedding as [cos, sin]).
    const e = this.noiseEmbedding(u.mapNoise, p(u.mapNoise, 'map_noise'), noise);
    let emb = this.within(p(u.mapNoise, 'map_noise'), () => g.concat([e.cos, e.sin], 1));
    emb = this.within(`${path}.map_layer0`, () => g.silu(this.linear(u.mapLayer0, p(u.mapLayer0, 'map_layer0'), emb)));
    emb = this.linear(u.mapLayer1, p(u.mapLayer1, 'map_layer1'), emb);
    if (u.labelDim) {
      const mapped = this.linear(u.mapLabel, p(u.mapLabel, 'map_label'), labels!);
      const prev = emb;
      emb = this.within(`${path}.map_label`, () => g.add(prev, mapped));
    }
    const e2 = emb;
    emb = this.within(`${path}.map_layer1`, () => g.silu(e2));

    const skips: Value[] = [];
    let h = x;
    for (const step of u.encoderPlan) {
      const sp = p(step.module, 'enc');
      h = step.kind === 'block' ? this.unetBlock(step.module, sp, h, emb) : this.conv2d(step.module, sp, h);
      skips.push(h);
    }
    for (const step of u.decoderPlan) {
      const sp = p(step.module, 'dec');
      if (step.concat) {
        const skip = skips.pop()!;
        const hh = h;
        h = this.within(sp, () => g.concat([hh, skip], 1));
      }
      h = this.unetBlock(step.module, sp, h, emb);
    }
    const normed = this.groupNorm(u.outNorm, p(u.outNorm, 'out_norm'), h);
    return this.conv2d(u.outConv, p(u.outConv, 'out_conv'), this.within(`${path}.out_norm`, () => g.silu(normed)));
  }
}

/** The metadata_props a web page needs to drive the model. */
export function denoiserMetadata(net: Preconditioner, inputs: string[]): Record<string, string> {
  return {
    format: ONNX_FORMAT,
    opset: String(ONNX_OPSET),
    inputs: JSON.stringify(inputs),
    output: 'denoised',
    precond: net.kind,
    precond_class: net.className,
    model_type: net.modelType,
    resolution: String(net.imgResolution),
    image_channels: String(net.outChannels),
    position_channels: String(net.positionChannels),
    label_dim: String(net.labelDim),
    size_multiple: String(net.sizeMultiple),
    sigma_min: String(net.sigmaMin),
    sigma_max: String(net.sigmaMax),
    sigma_data: String(net.sigmaData),
    ...(net.kind === 'vp' ? { beta_d: String(net.betaD), beta_min: String(net.betaMin), M: String(net.M), epsilon_t: String(net.epsilonT) } : {}),
  };
}

/**
 * Writes the network's preconditioned denoiser as an ONNX model (see the
 * header for its interface). Throws OnnxExportError naming the layer when a
 * module is not one the exporter can write.
 */
export function exportDenoiser(net: Preconditioner, options: ExportOptions = {}): ExportResult {
  if (!(net instanceof Preconditioner))
    throw new OnnxExportError('', `expected a Preconditioner (the EDM/VP/VE-preconditioned network), got ${(net as object)?.constructor?.name}`);
  const ex = new Exporter(net);
  const g = ex.g;
  const C = net.outChannels;
  const pc = net.positionChannels;
  const imageDims = ['N', C, 'H', 'W'];
  const x = g.input('x', imageDims, 'the noisy image x, float32 [N, C, H, W]; H and W multiples of size_multiple');
  const sigma = g.input('sigma', ['N'], 'the noise level σ of each sample, float32 [N]');
  const inputs = [{ name: 'x', dims: imageDims }, { name: 'sigma', dims: ['N'] as (number | string)[] }];
  let xPos: Value | null = null;
  if (pc > 0) {
    const dims = ['N', pc, 'H', 'W'];
    xPos = g.input('x_pos', dims, 'the coordinate channels (column, row in [−1, 1] of the training grid), float32 [N, 2, H, W], unscaled');
    inputs.push({ name: 'x_pos', dims });
  }
  let labels: Value | null = null;
  if (net.labelDim > 0) {
    const dims = ['N', net.labelDim];
    labels = g.input('class_labels', dims, 'one-hot class labels, float32 [N, label_dim] (zeros: unconditional, as the network without labels)');
    inputs.push({ name: 'class_labels', dims });
  }

  // Coefficients, in the preconditioner's op order (σ as [N, 1, 1, 1]).
  const { cSkip, cOut, cIn, cNoise } = ex.within('precond', () => {
    const s = g.reshape(sigma, g.int64s([-1, 1, 1, 1]));
    if (net.kind === 'edm') {
      const sd = net.sigmaData;
      const denom = g.add(g.mul(s, s), g.scalar(sd * sd));
      const root = g.sqrt(denom);
      return {
        cSkip: g.mul(g.reciprocal(denom), g.scalar(sd * sd)),
        cOut: g.div(g.mul(s, g.scalar(sd)), root),
        cIn: g.reciprocal(root),
        cNoise: g.div(g.log(s), g.scalar(4)),
      };
    }
    if (net.kind === 'vp') {
      const t = g.div(
        g.sub(g.sqrt(g.add(g.mul(g.log(g.add(g.mul(s, s), g.scalar(1))), g.scalar(2 * net.betaD)), g.scalar(net.betaMin ** 2))), g.scalar(net.betaMin)),
        g.scalar(net.betaD),
      );
      return { cSkip: null, cOut: g.neg(s), cIn: g.reciprocal(g.sqrt(g.add(g.mul(s, s), g.scalar(1)))), cNoise: g.mul(t, g.scalar(net.M - 1)) };
    }
    if (net.kind === 've') return { cSkip: null, cOut: s, cIn: null, cNoise: g.log(g.mul(s, g.scalar(0.5))) };
    throw new OnnxExportError('', `preconditioner kind '${String(net.kind)}' has no ONNX form (known: edm, vp, ve)`);
  });
  const { xIn, noise } = ex.within('precond', () => {
    const scaled = cIn ? g.mul(cIn, x) : x; // c_in = 1 (VE) multiplies exactly, so it is left out
    return { xIn: xPos ? g.concat([scaled, xPos], 1) : scaled, noise: g.reshape(cNoise, g.int64s([-1])) };
  });

  const model = net.model as unknown;
  const modelPath = 'model';
  let fx: Value;
  if (model instanceof SongUNet) fx = ex.songUNet(model, modelPath, xIn, noise, labels);
  else if (model instanceof DhariwalUNet) fx = ex.dhariwalUNet(model, modelPath, xIn, noise, labels);
  else {
    const name = model === null || model === undefined ? String(model) : ((model as object).constructor?.name ?? typeof model);
    throw new OnnxExportError(modelPath, `is a ${name}; the exporter writes SongUNet (DDPM++, NCSN++) and DhariwalUNet (ADM) networks only`);
  }
  const denoised = ex.within('precond', () => g.add(cSkip ? g.mul(cSkip, x) : x, g.mul(cOut, fx))); // c_skip = 1 (VP, VE) is exact
  g.output(denoised, 'denoised', imageDims, 'the denoised image D(x; σ), float32 [N, C, H, W]');

  const inputNames = inputs.map((i) => i.name);
  const metadata = { ...denoiserMetadata(net, inputNames), ...(options.metadata ?? {}) };
  const proto: ModelProto = {
    irVersion: ONNX_IR_VERSION,
    opsetImport: [{ domain: '', version: ONNX_OPSET }],
    producerName: 'patch-diffusion',
    producerVersion: options.producerVersion ?? '0.1.0',
    docString: options.doc ?? `${net.className} (${net.modelType}) denoiser D(x; σ${pc ? ', x_pos' : ''}${net.labelDim ? ', class_labels' : ''})`,
    graph: toGraphProto(g, `${net.className}_${net.modelType}`),
    metadataProps: Object.entries(metadata).map(([key, value]) => ({ key, value })),
  };
  const weightBytes = g.initializers.reduce((s, t) => s + t.rawData.byteLength, 0);
  if (weightBytes > MAX_MODEL_BYTES)
    throw new OnnxExportError('', `the weights take ${(weightBytes / 2 ** 30).toFixed(2)} GiB, over protobuf's 2 GiB limit for one .onnx file`);
  const bytes = encodeModel(proto);
  const opTypes = [...new Set(g.nodes.map((n) => n.opType))].sort();
  const unexpected = opTypes.filter((t) => !(ONNX_OPS_USED as readonly string[]).includes(t));
  if (unexpected.length) throw new Error(`ONNX export: internal error: operators outside the checked set: ${unexpected.join(', ')}`);
  return {
    bytes,
    inputs,
    output: { name: 'denoised', dims: imageDims },
    metadata,
    opTypes,
    nodeCount: g.nodes.length,
    storedValues: ex.storedValues,
  };
}

/**
 * Exports a loaded model's network with what its snapshot says of itself added to metadata_props:
 * `network` (the config JSON), `dataset` (JSON), `kimg`, `latent` (JSON, for a latent-space network) and
 * `source` (the snapshot's file name). A model handed over by training has no snapshot: its export carries
 * the network's own metadata only. The model stays the caller's to dispose.
 */
export function exportModel(model: DiffusionModel, options: ExportOptions = {}): ExportResult {
  const info = model.info;
  return exportDenoiser(model.net, {
    ...options,
    metadata: {
      ...(info
        ? {
            network: JSON.stringify(info.network),
            dataset: JSON.stringify(info.dataset),
            kimg: String(info.kimg),
            ...(info.latent ? { latent: JSON.stringify(info.latent) } : {}),
          }
        : {}),
      ...(model.path ? { source: basename(model.path) } : {}),
      ...(options.metadata ?? {}),
    },
  });
}

/**
 * Exports a snapshot (our .safetensors or an official .pkl, or a run directory's newest): `DiffusionModel.load`
 * on the CPU, without a latent network's VAE (the ONNX graph is the denoiser alone), then `exportModel`.
 */
export function exportSnapshot(pathOrDir: string): ExportResult & { path: string; info: SnapshotInfo } {
  const model = DiffusionModel.load(pathOrDir, { device: 'cpu', vae: false });
  try {
    return { ...exportModel(model), path: model.path!, info: model.info! };
  } finally {
    model.dispose();
  }
}
