// The typed face of a libtorch tensor. Ops are thin calls into the addon;
// shape, dtype and device checks happen in libtorch, and their errors come
// back as JS Errors naming the op and the shapes involved.
import { native, type TensorHandle } from './native.js';
import { scope, trackInScope } from './scope.js';

export type DType = 'float32' | 'float64' | 'float16' | 'bfloat16' | 'int64' | 'int32' | 'uint8' | 'bool';
export type Device = 'cpu' | 'cuda' | `cuda:${number}`;
export type Scalar = number;
export type TypedArray = Float32Array | Float64Array | BigInt64Array | Int32Array | Uint8Array | Uint16Array;

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
  get ndim(): number {
    return this.shape.length;
  }
  get numel(): number {
    return this.shape.reduce((a, b) => a * b, 1);
  }
  get dtype(): DType {
    return native.dtype(this.handle);
  }
  get device(): Device {
    return native.device(this.handle);
  }
  get requiresGrad(): boolean {
    return native.requiresGrad(this.handle);
  }
  get isDisposed(): boolean {
    return native.isDisposed(this.handle);
  }
  get isContiguous(): boolean {
    return native.isContiguous(this.handle);
  }
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
  /** The value of a one-element tensor. */
  item(): number {
    return native.item(this.handle);
  }

  // ---- conversion ------------------------------------------------------------------------

  to(target: DType | Device | { dtype?: DType; device?: Device }): Tensor {
    const spec = typeof target === 'string' ? (isDType(target) ? { dtype: target } : { device: target }) : target;
    return wrap(native.to(this.handle, spec.dtype, spec.device));
  }
  float(): Tensor {
    return this.to('float32');
  }
  double(): Tensor {
    return this.to('float64');
  }
  clone(): Tensor {
    return wrap(native.clone(this.handle));
  }
  detach(): Tensor {
    return wrap(native.detach(this.handle));
  }
  contiguous(): Tensor {
    return wrap(native.contiguous(this.handle));
  }
  /** Copy in channels-last memory order (same shape, NHWC strides). */
  channelsLast(): Tensor {
    return wrap(native.contiguousChannelsLast(this.handle));
  }

  // ---- views, shape, indexing ---------------------------------------------------------------

  reshape(...shape: number[]): Tensor {
    return wrap(native.reshape(this.handle, shape));
  }
  view(...shape: number[]): Tensor {
    return wrap(native.view(this.handle, shape));
  }
  permute(...dims: number[]): Tensor {
    return wrap(native.permute(this.handle, dims));
  }
  transpose(dim0: number, dim1: number): Tensor {
    return wrap(native.transpose(this.handle, dim0, dim1));
  }
  /** Elements start..end (exclusive, negatives count from the end) with a step, along `dim`. */
  slice(dim: number, start?: number, end?: number, step = 1): Tensor {
    return wrap(native.slice(this.handle, dim, start ?? null, end ?? null, step));
  }
  narrow(dim: number, start: number, length: number): Tensor {
    return wrap(native.narrow(this.handle, dim, start, length));
  }
  select(dim: number, index: number): Tensor {
    return wrap(native.select(this.handle, dim, index));
  }
  squeeze(dim: number): Tensor {
    return wrap(native.squeeze(this.handle, dim));
  }
  unsqueeze(dim: number): Tensor {
    return wrap(native.unsqueeze(this.handle, dim));
  }
  flatten(startDim = 0, endDim = -1): Tensor {
    return wrap(native.flatten(this.handle, startDim, endDim));
  }
  expand(...shape: number[]): Tensor {
    return wrap(native.expand(this.handle, shape));
  }
  repeat(...times: number[]): Tensor {
    return wrap(native.repeat(this.handle, times));
  }
  flip(...dims: number[]): Tensor {
    return wrap(native.flip(this.handle, dims));
  }
  split(size: number, dim = 0): Tensor[] {
    return wrapAll(native.split(this.handle, size, dim));
  }
  chunk(chunks: number, dim = 0): Tensor[] {
    return wrapAll(native.chunk(this.handle, chunks, dim));
  }
  indexSelect(dim: number, index: Tensor): Tensor {
    return wrap(native.indexSelect(this.handle, dim, index.handle));
  }
  gather(dim: number, index: Tensor): Tensor {
    return wrap(native.gather(this.handle, dim, index.handle));
  }
  maskedFill(mask: Tensor, value: number): Tensor {
    return wrap(native.maskedFill(this.handle, mask.handle, value));
  }

  // ---- element-wise math (broadcasting) --------------------------------------------------------

  add(other: Tensor | Scalar, alpha = 1): Tensor {
    return wrap(native.add(this.handle, operand(other), alpha));
  }
  sub(other: Tensor | Scalar, alpha = 1): Tensor {
    return wrap(native.sub(this.handle, operand(other), alpha));
  }
  /** other − this, for a number `other`. */
  rsub(other: Scalar): Tensor {
    return wrap(native.rsub(this.handle, other));
  }
  mul(other: Tensor | Scalar): Tensor {
    return wrap(native.mul(this.handle, operand(other)));
  }
  div(other: Tensor | Scalar): Tensor {
    return wrap(native.div(this.handle, operand(other)));
  }
  pow(exponent: Tensor | Scalar): Tensor {
    return wrap(native.pow(this.handle, operand(exponent)));
  }
  fmod(other: Tensor | Scalar): Tensor {
    return wrap(native.fmod(this.handle, operand(other)));
  }
  maximum(other: Tensor): Tensor {
    return wrap(native.maximum(this.handle, other.handle));
  }
  minimum(other: Tensor): Tensor {
    return wrap(native.minimum(this.handle, other.handle));
  }
  eq(other: Tensor | Scalar): Tensor {
    return wrap(native.eq(this.handle, operand(other)));
  }
  ne(other: Tensor | Scalar): Tensor {
    return wrap(native.ne(this.handle, operand(other)));
  }
  lt(other: Tensor | Scalar): Tensor {
    return wrap(native.lt(this.handle, operand(other)));
  }
  le(other: Tensor | Scalar): Tensor {
    return wrap(native.le(this.handle, operand(other)));
  }
  gt(other: Tensor | Scalar): Tensor {
    return wrap(native.gt(this.handle, operand(other)));
  }
  ge(other: Tensor | Scalar): Tensor {
    return wrap(native.ge(this.handle, operand(other)));
  }
  logicalAnd(other: Tensor): Tensor {
    return wrap(native.logicalAnd(this.handle, other.handle));
  }
  logicalNot(): Tensor {
    return wrap(native.logicalNot(this.handle));
  }
  neg(): Tensor {
    return wrap(native.neg(this.handle));
  }
  abs(): Tensor {
    return wrap(native.abs(this.handle));
  }
  exp(): Tensor {
    return wrap(native.exp(this.handle));
  }
  log(): Tensor {
    return wrap(native.log(this.handle));
  }
  sqrt(): Tensor {
    return wrap(native.sqrt(this.handle));
  }
  rsqrt(): Tensor {
    return wrap(native.rsqrt(this.handle));
  }
  square(): Tensor {
    return wrap(native.square(this.handle));
  }
  reciprocal(): Tensor {
    return wrap(native.reciprocal(this.handle));
  }
  sin(): Tensor {
    return wrap(native.sin(this.handle));
  }
  cos(): Tensor {
    return wrap(native.cos(this.handle));
  }
  tanh(): Tensor {
    return wrap(native.tanh(this.handle));
  }
  sigmoid(): Tensor {
    return wrap(native.sigmoid(this.handle));
  }
  relu(): Tensor {
    return wrap(native.relu(this.handle));
  }
  silu(): Tensor {
    return wrap(native.silu(this.handle));
  }
  floor(): Tensor {
    return wrap(native.floor(this.handle));
  }
  ceil(): Tensor {
    return wrap(native.ceil(this.handle));
  }
  round(): Tensor {
    return wrap(native.round(this.handle));
  }
  trunc(): Tensor {
    return wrap(native.trunc(this.handle));
  }
  sign(): Tensor {
    return wrap(native.sign(this.handle));
  }
  isfinite(): Tensor {
    return wrap(native.isfinite(this.handle));
  }
  isnan(): Tensor {
    return wrap(native.isnan(this.handle));
  }
  clamp(min?: number, max?: number): Tensor {
    return wrap(native.clamp(this.handle, min ?? null, max ?? null));
  }
  nanToNum(nan = 0, posinf = 3.4028234663852886e38, neginf = -3.4028234663852886e38): Tensor {
    return wrap(native.nanToNum(this.handle, nan, posinf, neginf));
  }
  /** True when no element is NaN or ±Inf. */
  allFinite(): boolean {
    return native.allFinite(this.handle);
  }

  // ---- reductions (no dims = over all elements) ------------------------------------------------

  sum(dims: number | number[] = [], keepdim = false): Tensor {
    return wrap(native.sum(this.handle, dimList(dims), keepdim));
  }
  mean(dims: number | number[] = [], keepdim = false): Tensor {
    return wrap(native.mean(this.handle, dimList(dims), keepdim));
  }
  prod(): Tensor {
    return wrap(native.prod(this.handle));
  }
  /** Variance; unbiased (N−1) by default, as torch. */
  var(dims: number | number[] = [], unbiased = true, keepdim = false): Tensor {
    return wrap(native.variance(this.handle, dimList(dims), unbiased, keepdim));
  }
  std(dims: number | number[] = [], unbiased = true, keepdim = false): Tensor {
    return wrap(native.std(this.handle, dimList(dims), unbiased, keepdim));
  }
  amax(dims: number | number[] = [], keepdim = false): Tensor {
    return wrap(native.amax(this.handle, dimList(dims), keepdim));
  }
  amin(dims: number | number[] = [], keepdim = false): Tensor {
    return wrap(native.amin(this.handle, dimList(dims), keepdim));
  }
  argmax(dim: number, keepdim = false): Tensor {
    return wrap(native.argmax(this.handle, dim, keepdim));
  }
  logsumexp(dims: number | number[], keepdim = false): Tensor {
    return wrap(native.logsumexp(this.handle, dimList(dims), keepdim));
  }
  cumsum(dim: number): Tensor {
    return wrap(native.cumsum(this.handle, dim));
  }
  /** Frobenius / L2 norm of all elements. */
  norm(): Tensor {
    return wrap(native.norm(this.handle));
  }
  sort(dim = -1, descending = false): { values: Tensor; indices: Tensor } {
    const [values, indices] = wrapAll(native.sort(this.handle, dim, descending));
    return { values: values!, indices: indices! };
  }

  // ---- linear algebra ------------------------------------------------------------------------------

  matmul(other: Tensor): Tensor {
    return wrap(native.matmul(this.handle, other.handle));
  }
  mm(other: Tensor): Tensor {
    return wrap(native.mm(this.handle, other.handle));
  }
  bmm(other: Tensor): Tensor {
    return wrap(native.bmm(this.handle, other.handle));
  }

  // ---- in-place ops (return this, for chaining) ----------------------------------------------------

  copy_(source: Tensor): this {
    native.copy_(this.handle, source.handle);
    return this;
  }
  zero_(): this {
    native.zero_(this.handle);
    return this;
  }
  fill_(value: number): this {
    native.fill_(this.handle, value);
    return this;
  }
  mul_(other: Tensor | Scalar): this {
    native.mul_(this.handle, operand(other));
    return this;
  }
  add_(other: Tensor | Scalar, alpha = 1): this {
    native.add_(this.handle, operand(other), alpha);
    return this;
  }
  /** this += weight · (end − this). */
  lerp_(end: Tensor, weight: Tensor | Scalar): this {
    native.lerp_(this.handle, end.handle, operand(weight));
    return this;
  }
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
  nanToNum_(nan = 0, posinf = 3.4028234663852886e38, neginf = -3.4028234663852886e38): this {
    native.nanToNum_(this.handle, nan, posinf, neginf);
    return this;
  }

  // ---- autograd ---------------------------------------------------------------------------------------

  requiresGrad_(flag = true): this {
    native.setRequiresGrad(this.handle, flag);
    return this;
  }
  get isLeaf(): boolean {
    return native.isLeaf(this.handle);
  }
  /** The accumulated gradient, or null when backward has not reached this tensor. */
  get grad(): Tensor | null {
    const g = native.grad(this.handle);
    return g === null ? null : wrap(g);
  }
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
export function isDType(name: string): name is DType {
  return dtypes.has(name);
}
