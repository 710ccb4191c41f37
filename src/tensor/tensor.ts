// The typed face of a libtorch tensor. Ops are thin calls into the addon;
// shape, dtype and device checks happen in libtorch, and their errors come
// back as JS Errors naming the op and the shapes involved.
import { native, type TensorHandle } from './native.js';
import { scope, trackInScope } from './scope.js';
import type { DType, Device, TypedArray } from './engine-types.js';
export type { DType, Device, TypedArray } from './engine-types.js';

/** A plain number where an op takes a tensor or a number (broadcast as a scalar). */
export type Scalar = number;

/** Typed array class used to carry each dtype's raw bytes across the binding. */
const storageArray: Record<DType, { new (buffer: ArrayBuffer): TypedArray }> = {
  float32: Float32Array,
  float64: Float64Array,
  float16: Uint16Array,
  bfloat16: Uint16Array,
  int64: BigInt64Array,
  int32: Int32Array,
  uint8: Uint8Array,
  bool: Uint8Array,
};

/**
 * A libtorch tensor (at::Tensor) seen from JS, as torch.Tensor: an n-dimensional array of one DType on one
 * Device. Made by the factory functions (tensor, zeros, arange, a Generator's draws, …) and returned by every op.
 * Ops leave their inputs unchanged and return a new Tensor, save the in-place ones (name ending in `_`), which
 * return `this`. Shapes broadcast as in PyTorch; libtorch's shape, dtype and device errors are thrown as Errors.
 *
 * Each Tensor owns a native handle, and the garbage collector frees it only late, as a safety net: free it
 * with dispose() when you own it (parameters, state kept across steps), or make it inside scope(), which frees
 * the temporaries when it ends (src/tensor/scope.ts). Views (reshape, view, permute, slice, select, expand,
 * split, …) are handles of their own on their base's storage: the memory goes when the last of them is freed.
 */
export class Tensor {
  /** @internal the addon's handle; do not use outside src/tensor. */
  readonly handle: TensorHandle;
  #shape: number[] | undefined;

  /** @internal tensors are made by the factory functions and ops, not by `new`. */
  constructor(handle: TensorHandle) {
    this.handle = handle;
    trackInScope(this);
  }

  // ---- metadata -------------------------------------------------------------------

  /** Sizes of each dimension (cached: no op here changes a tensor's shape in place). */
  get shape(): readonly number[] {
    return (this.#shape ??= native.shape(this.handle));
  }
  /** Number of dimensions (0 for a scalar). */
  get ndim(): number {
    return this.shape.length;
  }
  /** Number of elements: the product of the shape (1 for a scalar). */
  get numel(): number {
    return this.shape.reduce((a, b) => a * b, 1);
  }
  /** The element type. */
  get dtype(): DType {
    return native.dtype(this.handle);
  }
  /** Where the storage lives: 'cpu' or 'cuda:N'. */
  get device(): Device {
    return native.device(this.handle);
  }
  /** Whether autograd records the ops on this tensor (torch's requires_grad). */
  get requiresGrad(): boolean {
    return native.requiresGrad(this.handle);
  }
  /** Whether dispose() has freed this handle (every other use then throws). */
  get isDisposed(): boolean {
    return native.isDisposed(this.handle);
  }
  /** Whether the elements lie densely in row-major order (torch's is_contiguous()). */
  get isContiguous(): boolean {
    return native.isContiguous(this.handle);
  }
  /** Shape, dtype and (off the CPU) device: "Tensor[2, 3] float32 on cuda:0", or "Tensor(disposed)". */
  toString(): string {
    return this.isDisposed ? 'Tensor(disposed)' : (native.describe(this.handle));
  }

  /** @internal see ScopedResource.releasedToGc. */
  releasedToGc(): void {
    native.accountExternal(this.handle);
  }

  /**
   * Frees the native memory now (if no view shares it). Idempotent. For
   * tensors that outlive a scope (owned state: parameters, moments, caches);
   * temporaries are freed by scope() instead (src/tensor/scope.ts).
   */
  dispose(): void {
    native.dispose(this.handle);
    this.#shape = undefined; // so that `shape` after dispose throws like every other use
  }

  // ---- reading data back -------------------------------------------------------------

  /** A copy of the values in the dtype's natural typed array (float16/bfloat16 as float32). */
  data(): TypedArray {
    const dtype = this.dtype;
    if (dtype === 'float16' || dtype === 'bfloat16') return scope(() => wrap(native.to(this.handle, 'float32')).data());
    return new storageArray[dtype](native.toBuffer(this.handle));
  }
  /** A copy of the values as a flat array of numbers (int64 converted with Number()). */
  toArray(): number[] {
    const d = this.data();
    return d instanceof BigInt64Array ? Array.from(d, Number) : Array.from(d as ArrayLike<number>);
  }
  /** The value of a one-element tensor as a number, whatever its dtype (throws for any other size). */
  item(): number {
    return native.item(this.handle);
  }

  // ---- conversion ------------------------------------------------------------------------

  /**
   * Converted to a dtype and/or moved to a device (a string names either), as torch's Tensor.to: a new tensor,
   * which shares this one's storage when nothing changes. Autograd records it.
   */
  to(target: DType | Device | { dtype?: DType; device?: Device }): Tensor {
    const spec = typeof target === 'string' ? (isDType(target) ? { dtype: target } : { device: target }) : target;
    return wrap(native.to(this.handle, spec.dtype, spec.device));
  }
  /** As to('float32'). */
  float(): Tensor {
    return this.to('float32');
  }
  /** As to('float64'). */
  double(): Tensor {
    return this.to('float64');
  }
  /** A copy with storage of its own (recorded by autograd, as torch.clone). */
  clone(): Tensor {
    return wrap(native.clone(this.handle));
  }
  /** The same storage, cut from the autograd graph (requiresGrad false), as torch's detach(). */
  detach(): Tensor {
    return wrap(native.detach(this.handle));
  }
  /** The values in row-major order: a copy when the strides are not, else this storage. */
  contiguous(): Tensor {
    return wrap(native.contiguous(this.handle));
  }
  /** Copy in channels-last memory order (same shape, NHWC strides). */
  channelsLast(): Tensor {
    return wrap(native.contiguousChannelsLast(this.handle));
  }

  // ---- views, shape, indexing ---------------------------------------------------------------

  /** The same elements in `shape` (one size may be −1): a view when the strides allow it, else a copy (torch.reshape). */
  reshape(...shape: number[]): Tensor {
    return wrap(native.reshape(this.handle, shape));
  }
  /** A view of the same storage in `shape` (one size may be −1); throws where the strides do not allow one (torch's view). */
  view(...shape: number[]): Tensor {
    return wrap(native.view(this.handle, shape));
  }
  /** A view with the dimensions reordered: permute(0, 2, 3, 1) turns [N, C, H, W] into [N, H, W, C]. */
  permute(...dims: number[]): Tensor {
    return wrap(native.permute(this.handle, dims));
  }
  /** A view with two dimensions swapped. */
  transpose(dim0: number, dim1: number): Tensor {
    return wrap(native.transpose(this.handle, dim0, dim1));
  }
  /** Elements start..end (exclusive, negatives count from the end) with a step, along `dim`. */
  slice(dim: number, start?: number, end?: number, step = 1): Tensor {
    return wrap(native.slice(this.handle, dim, start ?? null, end ?? null, step));
  }
  /** A view of `length` elements from `start` along `dim`. */
  narrow(dim: number, start: number, length: number): Tensor {
    return wrap(native.narrow(this.handle, dim, start, length));
  }
  /** A view of entry `index` along `dim`, which it removes (x[:, i] is x.select(1, i)). */
  select(dim: number, index: number): Tensor {
    return wrap(native.select(this.handle, dim, index));
  }
  /** A view without dimension `dim` when its size is 1 (else the same shape). */
  squeeze(dim: number): Tensor {
    return wrap(native.squeeze(this.handle, dim));
  }
  /** A view with a new dimension of size 1 at `dim`. */
  unsqueeze(dim: number): Tensor {
    return wrap(native.unsqueeze(this.handle, dim));
  }
  /** Dimensions startDim..endDim (inclusive) merged into one: a view where the strides allow it. */
  flatten(startDim = 0, endDim = -1): Tensor {
    return wrap(native.flatten(this.handle, startDim, endDim));
  }
  /** A view broadcast to `shape`: size-1 dimensions repeated without copying (−1 keeps a size), as torch's expand. */
  expand(...shape: number[]): Tensor {
    return wrap(native.expand(this.handle, shape));
  }
  /** A copy tiled `times[k]` times along dimension k (torch's repeat). */
  repeat(...times: number[]): Tensor {
    return wrap(native.repeat(this.handle, times));
  }
  /** A copy with the order reversed along `dims`. */
  flip(...dims: number[]): Tensor {
    return wrap(native.flip(this.handle, dims));
  }
  /** Views of `size` entries each along `dim` (the last may be shorter). */
  split(size: number, dim = 0): Tensor[] {
    return wrapAll(native.split(this.handle, size, dim));
  }
  /** Up to `chunks` views of (nearly) equal size along `dim`. */
  chunk(chunks: number, dim = 0): Tensor[] {
    return wrapAll(native.chunk(this.handle, chunks, dim));
  }
  /** A copy of the entries at the positions in the 1-D int64 `index` along `dim` (torch.index_select). */
  indexSelect(dim: number, index: Tensor): Tensor {
    return wrap(native.indexSelect(this.handle, dim, index.handle));
  }
  /** out[…i…] = this[…index[…i…]…] along `dim`, for an int64 `index` with as many dimensions (torch.gather). */
  gather(dim: number, index: Tensor): Tensor {
    return wrap(native.gather(this.handle, dim, index.handle));
  }
  /** A copy with `value` where the bool `mask` (broadcast) is true. */
  maskedFill(mask: Tensor, value: number): Tensor {
    return wrap(native.maskedFill(this.handle, mask.handle, value));
  }

  // ---- element-wise math (broadcasting) --------------------------------------------------------

  /** this + alpha · other, elementwise with broadcasting (a number acts as a scalar). */
  add(other: Tensor | Scalar, alpha = 1): Tensor {
    return wrap(native.add(this.handle, operand(other), alpha));
  }
  /** this − alpha · other. */
  sub(other: Tensor | Scalar, alpha = 1): Tensor {
    return wrap(native.sub(this.handle, operand(other), alpha));
  }
  /** other − this, for a number `other`. */
  rsub(other: Scalar): Tensor {
    return wrap(native.rsub(this.handle, other));
  }
  /** this · other, elementwise. */
  mul(other: Tensor | Scalar): Tensor {
    return wrap(native.mul(this.handle, operand(other)));
  }
  /** this / other, true division (integer inputs give a float result). */
  div(other: Tensor | Scalar): Tensor {
    return wrap(native.div(this.handle, operand(other)));
  }
  /** this raised to `exponent`, elementwise. */
  pow(exponent: Tensor | Scalar): Tensor {
    return wrap(native.pow(this.handle, operand(exponent)));
  }
  /** Remainder of this / other with the sign of this (C's fmod, torch.fmod). */
  fmod(other: Tensor | Scalar): Tensor {
    return wrap(native.fmod(this.handle, operand(other)));
  }
  /** Elementwise larger of this and other (NaN if either is). */
  maximum(other: Tensor): Tensor {
    return wrap(native.maximum(this.handle, other.handle));
  }
  /** Elementwise smaller of this and other (NaN if either is). */
  minimum(other: Tensor): Tensor {
    return wrap(native.minimum(this.handle, other.handle));
  }
  /** this == other, elementwise, as a bool tensor. */
  eq(other: Tensor | Scalar): Tensor {
    return wrap(native.eq(this.handle, operand(other)));
  }
  /** this != other, as a bool tensor. */
  ne(other: Tensor | Scalar): Tensor {
    return wrap(native.ne(this.handle, operand(other)));
  }
  /** this < other, as a bool tensor. */
  lt(other: Tensor | Scalar): Tensor {
    return wrap(native.lt(this.handle, operand(other)));
  }
  /** this <= other, as a bool tensor. */
  le(other: Tensor | Scalar): Tensor {
    return wrap(native.le(this.handle, operand(other)));
  }
  /** this > other, as a bool tensor. */
  gt(other: Tensor | Scalar): Tensor {
    return wrap(native.gt(this.handle, operand(other)));
  }
  /** this >= other, as a bool tensor. */
  ge(other: Tensor | Scalar): Tensor {
    return wrap(native.ge(this.handle, operand(other)));
  }
  /** Elementwise AND of the truth values (non-zero is true), as a bool tensor. */
  logicalAnd(other: Tensor): Tensor {
    return wrap(native.logicalAnd(this.handle, other.handle));
  }
  /** Elementwise NOT of the truth values, as a bool tensor. */
  logicalNot(): Tensor {
    return wrap(native.logicalNot(this.handle));
  }
  /** −x, elementwise. */
  neg(): Tensor {
    return wrap(native.neg(this.handle));
  }
  /** |x|, elementwise. */
  abs(): Tensor {
    return wrap(native.abs(this.handle));
  }
  /** eˣ, elementwise. */
  exp(): Tensor {
    return wrap(native.exp(this.handle));
  }
  /** Natural logarithm, elementwise. */
  log(): Tensor {
    return wrap(native.log(this.handle));
  }
  /** √x, elementwise. */
  sqrt(): Tensor {
    return wrap(native.sqrt(this.handle));
  }
  /** 1/√x, elementwise. */
  rsqrt(): Tensor {
    return wrap(native.rsqrt(this.handle));
  }
  /** x², elementwise. */
  square(): Tensor {
    return wrap(native.square(this.handle));
  }
  /** 1/x, elementwise. */
  reciprocal(): Tensor {
    return wrap(native.reciprocal(this.handle));
  }
  /** Sine (radians), elementwise. */
  sin(): Tensor {
    return wrap(native.sin(this.handle));
  }
  /** Cosine (radians), elementwise. */
  cos(): Tensor {
    return wrap(native.cos(this.handle));
  }
  /** Hyperbolic tangent, elementwise. */
  tanh(): Tensor {
    return wrap(native.tanh(this.handle));
  }
  /** 1 / (1 + e⁻ˣ), elementwise. */
  sigmoid(): Tensor {
    return wrap(native.sigmoid(this.handle));
  }
  /** max(x, 0), elementwise. */
  relu(): Tensor {
    return wrap(native.relu(this.handle));
  }
  /** x · sigmoid(x), elementwise (SiLU, swish). */
  silu(): Tensor {
    return wrap(native.silu(this.handle));
  }
  /** Rounded down, elementwise. */
  floor(): Tensor {
    return wrap(native.floor(this.handle));
  }
  /** Rounded up, elementwise. */
  ceil(): Tensor {
    return wrap(native.ceil(this.handle));
  }
  /** Rounded to the nearest integer, halves to even (as torch.round). */
  round(): Tensor {
    return wrap(native.round(this.handle));
  }
  /** Rounded towards zero, elementwise. */
  trunc(): Tensor {
    return wrap(native.trunc(this.handle));
  }
  /** −1, 0 or 1 by the sign of each element. */
  sign(): Tensor {
    return wrap(native.sign(this.handle));
  }
  /** Bool tensor: true where the element is neither NaN nor ±Inf. */
  isfinite(): Tensor {
    return wrap(native.isfinite(this.handle));
  }
  /** Bool tensor: true where the element is NaN. */
  isnan(): Tensor {
    return wrap(native.isnan(this.handle));
  }
  /** Values limited to [min, max]; either bound may be left out. */
  clamp(min?: number, max?: number): Tensor {
    return wrap(native.clamp(this.handle, min ?? null, max ?? null));
  }
  /**
   * NaN replaced by `nan`, +Inf by `posinf`, −Inf by `neginf` (by default float32's largest finite values), as torch.nan_to_num.
   */
  nanToNum(nan = 0, posinf = 3.4028234663852886e38, neginf = -3.4028234663852886e38): Tensor {
    return wrap(native.nanToNum(this.handle, nan, posinf, neginf));
  }
  /** True when no element is NaN or ±Inf. */
  allFinite(): boolean {
    return native.allFinite(this.handle);
  }

  // ---- reductions (no dims = over all elements) ------------------------------------------------

  /** Sum over `dims` (all elements when none), which are dropped unless `keepdim`. */
  sum(dims: number | number[] = [], keepdim = false): Tensor {
    return wrap(native.sum(this.handle, dimList(dims), keepdim));
  }
  /** Mean over `dims` (all elements when none), which are dropped unless `keepdim`. */
  mean(dims: number | number[] = [], keepdim = false): Tensor {
    return wrap(native.mean(this.handle, dimList(dims), keepdim));
  }
  /** Product of all elements, as a 0-dimensional tensor. */
  prod(): Tensor {
    return wrap(native.prod(this.handle));
  }
  /** Variance; unbiased (N−1) by default, as torch. */
  var(dims: number | number[] = [], unbiased = true, keepdim = false): Tensor {
    return wrap(native.variance(this.handle, dimList(dims), unbiased, keepdim));
  }
  /** Standard deviation over `dims` (all when none); unbiased (N−1) by default, as torch. */
  std(dims: number | number[] = [], unbiased = true, keepdim = false): Tensor {
    return wrap(native.std(this.handle, dimList(dims), unbiased, keepdim));
  }
  /** Maximum over `dims` (all when none): values only, as torch.amax. */
  amax(dims: number | number[] = [], keepdim = false): Tensor {
    return wrap(native.amax(this.handle, dimList(dims), keepdim));
  }
  /** Minimum over `dims` (all when none): values only, as torch.amin. */
  amin(dims: number | number[] = [], keepdim = false): Tensor {
    return wrap(native.amin(this.handle, dimList(dims), keepdim));
  }
  /** int64 position of the largest value along `dim`. */
  argmax(dim: number, keepdim = false): Tensor {
    return wrap(native.argmax(this.handle, dim, keepdim));
  }
  /** log Σ exp(x) over `dims`, computed without overflow. */
  logsumexp(dims: number | number[], keepdim = false): Tensor {
    return wrap(native.logsumexp(this.handle, dimList(dims), keepdim));
  }
  /** Running sum along `dim`. */
  cumsum(dim: number): Tensor {
    return wrap(native.cumsum(this.handle, dim));
  }
  /** Frobenius / L2 norm of all elements. */
  norm(): Tensor {
    return wrap(native.norm(this.handle));
  }
  /** The values sorted along `dim` (ascending unless `descending`) and their int64 positions in this tensor. */
  sort(dim = -1, descending = false): { values: Tensor; indices: Tensor } {
    const [values, indices] = wrapAll(native.sort(this.handle, dim, descending));
    return { values: values!, indices: indices! };
  }

  // ---- linear algebra ------------------------------------------------------------------------------

  /** Matrix product with torch.matmul's rules: 1-D vectors, 2-D matrices, and batches broadcast over leading dimensions. */
  matmul(other: Tensor): Tensor {
    return wrap(native.matmul(this.handle, other.handle));
  }
  /** Product of two matrices: [n, k] · [k, m] → [n, m]. */
  mm(other: Tensor): Tensor {
    return wrap(native.mm(this.handle, other.handle));
  }
  /** Batched matrix product: [b, n, k] · [b, k, m] → [b, n, m]. */
  bmm(other: Tensor): Tensor {
    return wrap(native.bmm(this.handle, other.handle));
  }

  // ---- in-place ops (return this, for chaining) ----------------------------------------------------

  /** Copies `source`'s values into this tensor (broadcast, converted to its dtype and device). */
  copy_(source: Tensor): this {
    native.copy_(this.handle, source.handle);
    return this;
  }
  /** Sets every element to 0. */
  zero_(): this {
    native.zero_(this.handle);
    return this;
  }
  /** Sets every element to `value`. */
  fill_(value: number): this {
    native.fill_(this.handle, value);
    return this;
  }
  /** this ·= other. */
  mul_(other: Tensor | Scalar): this {
    native.mul_(this.handle, operand(other));
    return this;
  }
  /** this += alpha · other. */
  add_(other: Tensor | Scalar, alpha = 1): this {
    native.add_(this.handle, operand(other), alpha);
    return this;
  }
  /** this += weight · (end − this). */
  lerp_(end: Tensor, weight: Tensor | Scalar): this {
    native.lerp_(this.handle, end.handle, operand(weight));
    return this;
  }
  /** Limits the values to [min, max] in place; either bound may be left out. */
  clamp_(min?: number, max?: number): this {
    native.clamp_(this.handle, min ?? null, max ?? null);
    return this;
  }
  /** this += value · a · b. */
  addcmul_(a: Tensor, b: Tensor, value = 1): this {
    native.addcmul_(this.handle, a.handle, b.handle, value);
    return this;
  }
  /** this += value · a / b. */
  addcdiv_(a: Tensor, b: Tensor, value = 1): this {
    native.addcdiv_(this.handle, a.handle, b.handle, value);
    return this;
  }
  /** nanToNum in place. */
  nanToNum_(nan = 0, posinf = 3.4028234663852886e38, neginf = -3.4028234663852886e38): this {
    native.nanToNum_(this.handle, nan, posinf, neginf);
    return this;
  }

  // ---- autograd ---------------------------------------------------------------------------------------

  /** Turns autograd's recording for this (leaf) tensor on or off, as torch's requires_grad_. */
  requiresGrad_(flag = true): this {
    native.setRequiresGrad(this.handle, flag);
    return this;
  }
  /** Whether no recorded op made this tensor (parameters and inputs): backward fills the .grad of leaves only. */
  get isLeaf(): boolean {
    return native.isLeaf(this.handle);
  }
  /**
   * The accumulated gradient, or null when backward has not reached this tensor. Each read is a new handle on
   * the gradient: free it (dispose() or a scope), which frees the handle, not the gradient.
   */
  get grad(): Tensor | null {
    const g = native.grad(this.handle);
    return g === null ? null : wrap(g);
  }
  /** Makes backward keep the gradient of this non-leaf tensor in .grad too (torch's retain_grad). */
  retainGrad(): this {
    native.retainGrad(this.handle);
    return this;
  }
  /** Backpropagates from this tensor (a scalar, or with an explicit upstream gradient). */
  backward(gradient?: Tensor): void {
    native.backward(this.handle, gradient?.handle ?? null);
  }
}

/** @internal wraps a fresh handle from the addon. */
export function wrap(handle: TensorHandle): Tensor {
  return new Tensor(handle);
}
/** @internal */
export function wrapAll(handles: TensorHandle[]): Tensor[] {
  return handles.map(wrap);
}

function operand(x: Tensor | Scalar): TensorHandle | number {
  return typeof x === 'number' ? x : x.handle;
}

function dimList(dims: number | number[]): number[] {
  return typeof dims === 'number' ? [dims] : dims;
}

const dtypes = new Set<string>(['float32', 'float64', 'float16', 'bfloat16', 'int64', 'int32', 'uint8', 'bool']);
/** Whether `name` is a DType (a type guard, for dtypes read from files or the command line). */
export function isDType(name: string): name is DType {
  return dtypes.has(name);
}
