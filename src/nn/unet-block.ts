// EDM's UNetBlock: the residual block shared by DDPM++, NCSN++ and ADM, with
// optional 2× up/down-sampling and optional self-attention. Parameter names:
// norm0, conv0, affine, norm1, conv1, skip (when the shape changes), and
// norm2, qkv, proj (with attention).
//
// forward(x, emb):
//   h = conv0(silu(norm0(x)))                        (conv0 resamples first)
//   adaptive:  h = silu(shift + norm1(h)·(scale + 1)), [scale, shift] = affine(emb)
//   otherwise: h = silu(norm1(h + affine(emb)))
//   h = conv1(dropout(h));  h = (h + skip(x)) · skipScale
//   attention: h = (proj(attn(qkv(norm2(h)))) + h) · skipScale
import { Module } from './module.js';
import { Conv2d } from './conv2d.js';
import { GroupNorm } from './group-norm.js';
import { Linear } from './linear.js';
import { interleavedSelfAttention } from './attention.js';
import { asDType } from './dtype.js';
import { GeneratorRef, type InitOptions, type RandomInit } from './init.js';
import * as F from '../tensor/functional.js';
import { scope } from '../tensor/scope.js';
import type { Tensor } from '../tensor/tensor.js';

export interface UNetBlockOptions extends RandomInit {
  inChannels: number;
  outChannels: number;
  embChannels: number;
  up?: boolean;
  down?: boolean;
  attention?: boolean;
  /** Heads when attention is on; default outChannels // channelsPerHead (0 heads = no attention, as EDM). */
  numHeads?: number;
  channelsPerHead?: number;
  dropout?: number;
  skipScale?: number;
  eps?: number;
  resampleFilter?: readonly number[];
  /** Give an up/down block with unchanged width a 1×1 skip conv (true in SongUNet) instead of a pure resample. */
  resampleProj?: boolean;
  adaptiveScale?: boolean;
  init?: InitOptions;
  initZero?: InitOptions;
  initAttn?: InitOptions;
  /** Generator for dropout; shared with the network so it can be replaced later. */
  dropoutGenerator?: GeneratorRef;
}

export class UNetBlock extends Module {
  readonly inChannels: number;
  readonly outChannels: number;
  readonly embChannels: number;
  readonly numHeads: number;
  readonly dropout: number;
  readonly skipScale: number;
  readonly adaptiveScale: boolean;
  readonly norm0: GroupNorm;
  readonly conv0: Conv2d;
  readonly affine: Linear;
  readonly norm1: GroupNorm;
  readonly conv1: Conv2d;
  readonly skip: Conv2d | null = null;
  readonly norm2: GroupNorm | null = null;
  readonly qkv: Conv2d | null = null;
  readonly proj: Conv2d | null = null;
  readonly #rng: GeneratorRef;

  constructor(o: UNetBlockOptions) {
    super();
    const up = o.up ?? false;
    const down = o.down ?? false;
    this.inChannels = o.inChannels;
    this.outChannels = o.outChannels;
    this.embChannels = o.embChannels;
    this.numHeads = !o.attention ? 0 : (o.numHeads ?? Math.floor(o.outChannels / (o.channelsPerHead ?? 64)));
    this.dropout = o.dropout ?? 0;
    if (!(this.dropout >= 0 && this.dropout < 1)) throw new Error(`UNetBlock: dropout must be in [0, 1), got ${this.dropout}`);
    this.skipScale = o.skipScale ?? 1;
    this.adaptiveScale = o.adaptiveScale ?? true;
    this.#rng = o.dropoutGenerator ?? new GeneratorRef(o.generator);
    const rng: RandomInit = { generator: o.generator, initialize: o.initialize };
    const init = { ...(o.init ?? {}), ...rng };
    const initZero = { ...(o.initZero ?? { initWeight: 0 }), ...rng };
    const initAttn = { ...(o.initAttn ?? o.init ?? {}), ...rng };
    const eps = o.eps ?? 1e-5;
    const resampleFilter = o.resampleFilter ?? [1, 1];

    // Registration (and random-draw) order follows the official constructor.
    this.norm0 = this.registerModule('norm0', new GroupNorm(o.inChannels, { eps }));
    this.conv0 = this.registerModule('conv0', new Conv2d(o.inChannels, o.outChannels, 3, { up, down, resampleFilter, ...init }));
    this.affine = this.registerModule('affine', new Linear(o.embChannels, o.outChannels * (this.adaptiveScale ? 2 : 1), init));
    this.norm1 = this.registerModule('norm1', new GroupNorm(o.outChannels, { eps }));
    this.conv1 = this.registerModule('conv1', new Conv2d(o.outChannels, o.outChannels, 3, initZero));
    if (o.outChannels !== o.inChannels || up || down) {
      const kernel = o.resampleProj || o.outChannels !== o.inChannels ? 1 : 0;
      this.skip = this.registerModule('skip', new Conv2d(o.inChannels, o.outChannels, kernel, { up, down, resampleFilter, ...init }));
    }
    if (this.numHeads) {
      if (o.outChannels % this.numHeads !== 0)
        throw new Error(`UNetBlock: ${o.outChannels} channels cannot be split into ${this.numHeads} attention heads`);
      this.norm2 = this.registerModule('norm2', new GroupNorm(o.outChannels, { eps }));
      this.qkv = this.registerModule('qkv', new Conv2d(o.outChannels, o.outChannels * 3, 1, initAttn));
      this.proj = this.registerModule('proj', new Conv2d(o.outChannels, o.outChannels, 1, initZero));
    }
  }

  /** x [N, in, H, W], emb [N or 1, embChannels] → [N, out, H', W'] (H' = 2H up, H/2 down). */
  forward(x: Tensor, emb: Tensor): Tensor {
    return scope(() => {
      const orig = x;
      let h = this.conv0.forward(F.silu(this.norm0.forward(x)));
      const params = asDType(this.affine.forward(emb).unsqueeze(2).unsqueeze(3), h.dtype);
      if (this.adaptiveScale) {
        const [scale, shift] = params.chunk(2, 1) as [Tensor, Tensor];
        h = F.silu(shift.add(this.norm1.forward(h).mul(scale.add(1))));
      } else {
        h = F.silu(this.norm1.forward(h.add(params)));
      }
      if (this.training && this.dropout > 0) h = F.dropout(h, this.dropout, this.#rng.get('UNetBlock'));
      h = this.conv1.forward(h);
      h = h.add(this.skip ? this.skip.forward(orig) : orig);
      if (this.skipScale !== 1) h = h.mul(this.skipScale);
      if (this.numHeads) {
        const a = interleavedSelfAttention(this.qkv!.forward(this.norm2!.forward(h)), this.numHeads);
        h = this.proj!.forward(a).add(h);
        if (this.skipScale !== 1) h = h.mul(this.skipScale);
      }
      return h;
    });
  }
}
