// Making tensors: from JS arrays and typed arrays, constants and ranges.
import { native } from './native.js';
import { scope } from './scope.js';
import { isDType, wrap, type Device, type DType, type Tensor, type TypedArray } from './tensor.js';

/**
 * Where a new tensor goes and of what type: the factory functions default to float32 (arange and tensor() have
 * their own rules) on the CPU.
 */
export interface CreateOptions {
  /** Element type (default float32). */
  dtype?: DType;
  /** Device to create it on (default 'cpu'). */
  device?: Device;
}

type Nested = number | boolean | Nested[];

function inferShape(data: Nested): number[] {
  const shape: number[] = [];
  let level: Nested = data;
  while (Array.isArray(level)) {
    shape.push(level.length);
    if (level.length === 0) break;
    level = level[0]!;
  }
  return shape;
}

function flatten(data: Nested, shape: readonly number[], depth: number, out: number[]): void {
  if (depth === shape.length) {
    if (Array.isArray(data)) throw new Error(`tensor(): ragged nested array (too deep at depth ${depth})`);
    out.push(typeof data === 'boolean' ? Number(data) : data);
    return;
  }
  if (!Array.isArray(data) || data.length !== shape[depth])
    throw new Error(`tensor(): ragged nested array: expected length ${shape[depth]} at depth ${depth}`);
  for (const v of data) flatten(v, shape, depth + 1, out);
}

function defaultDType(data: TypedArray): DType {
  if (data instanceof Float64Array) return 'float64';
  if (data instanceof BigInt64Array) return 'int64';
  if (data instanceof Int32Array) return 'int32';
  if (data instanceof Uint8Array) return 'uint8';
  return 'float32';
}

function packInto(values: ArrayLike<number>, dtype: DType): TypedArray {
  switch (dtype) {
    case 'float32':
      return Float32Array.from(values);
    case 'float64':
      return Float64Array.from(values);
    case 'int64':
      return BigInt64Array.from(Array.from(values, (v) => BigInt(Math.trunc(v))));
    case 'int32':
      return Int32Array.from(values);
    case 'uint8':
    case 'bool':
      return Uint8Array.from(values);
    default:
      throw new Error(`tensor(): make ${dtype} tensors from float32 data, then .to('${dtype}')`);
  }
}

/**
 * A tensor from a (nested) JS array or a typed array. A typed array keeps its
 * natural dtype unless `dtype` says otherwise; a plain array defaults to float32.
 * float16/bfloat16 tensors are made from numbers (converted through float32) or
 * from a Uint16Array of their raw bits.
 */
export function tensor(data: Nested | TypedArray, shape?: readonly number[], options: CreateOptions = {}): Tensor {
  const half = options.dtype === 'float16' || options.dtype === 'bfloat16' ? options.dtype : null;
  if (data instanceof Uint16Array) {
    if (!half) throw new Error("tensor(): a Uint16Array holds raw float16/bfloat16 bits: pass { dtype: 'float16' } or { dtype: 'bfloat16' }");
    return scope(() => placed(wrap(native.fromBuffer(data, shape ?? [data.length], half)), options.device));
  }
  let values: TypedArray;
  let dims: readonly number[];
  const build: DType | undefined = half ? 'float32' : options.dtype;
  if (ArrayBuffer.isView(data)) {
    dims = shape ?? [data.length];
    const natural = defaultDType(data);
    const dtype = build ?? natural;
    values = dtype === natural ? data : packInto(data instanceof BigInt64Array ? Array.from(data, Number) : data, dtype);
  } else {
    const inferred = inferShape(data);
    const flat: number[] = [];
    flatten(data, inferred, 0, flat);
    dims = shape ?? inferred;
    values = packInto(flat, build ?? 'float32');
  }
  // Made on the CPU (a half dtype as float32), then converted and moved: the scope frees the copies made on the way.
  return scope(() => {
    const t = wrap(native.fromBuffer(values, dims, build ?? defaultDType(values)));
    return placed(half ? t.to(half) : t, options.device);
  });
}

/** `t` on `device` (a copy there, unless it is the CPU). */
function placed(t: Tensor, device: Device | undefined): Tensor {
  return !device || device === 'cpu' ? t : t.to({ device });
}

/** A zero-dimensional tensor holding one number. */
export function scalar(value: number, options: CreateOptions = {}): Tensor {
  return wrap(native.scalarTensor(value, options.dtype ?? 'float32', options.device));
}
/** A tensor of `shape` filled with 0 (torch.zeros). */
export function zeros(shape: readonly number[], options: CreateOptions = {}): Tensor {
  return wrap(native.zeros(shape, options.dtype ?? 'float32', options.device));
}
/** A tensor of `shape` filled with 1 (torch.ones). */
export function ones(shape: readonly number[], options: CreateOptions = {}): Tensor {
  return wrap(native.ones(shape, options.dtype ?? 'float32', options.device));
}
/** A tensor of `shape` with uninitialised values (torch.empty): for outputs that will be overwritten. */
export function empty(shape: readonly number[], options: CreateOptions = {}): Tensor {
  return wrap(native.empty(shape, options.dtype ?? 'float32', options.device));
}
/** A tensor of `shape` filled with `value` (torch.full). */
export function full(shape: readonly number[], value: number, options: CreateOptions = {}): Tensor {
  return wrap(native.full(shape, value, options.dtype ?? 'float32', options.device));
}
/** Values start, start+step, … below end. Defaults to int64 like torch when all arguments are integers. */
export function arange(start: number, end: number, step = 1, options: CreateOptions = {}): Tensor {
  const integral = Number.isInteger(start) && Number.isInteger(end) && Number.isInteger(step);
  return wrap(native.arange(start, end, step, options.dtype ?? (integral ? 'int64' : 'float32'), options.device));
}
/** `steps` evenly spaced values from `start` to `end`, both included (torch.linspace). */
export function linspace(start: number, end: number, steps: number, options: CreateOptions = {}): Tensor {
  return wrap(native.linspace(start, end, steps, options.dtype ?? 'float32', options.device));
}
/** Zeros of `t`'s shape, dtype and device (torch.zeros_like). */
export function zerosLike(t: Tensor): Tensor {
  return wrap(native.zerosLike(t.handle));
}
/** Ones of `t`'s shape, dtype and device (torch.ones_like). */
export function onesLike(t: Tensor): Tensor {
  return wrap(native.onesLike(t.handle));
}
/** `value` in `t`'s shape, dtype and device (torch.full_like). */
export function fullLike(t: Tensor, value: number): Tensor {
  return wrap(native.fullLike(t.handle, value));
}

/** The tensors joined along the existing dimension `dim`; they must match in every other dimension (torch.cat). */
export function cat(tensors: readonly Tensor[], dim = 0): Tensor {
  return wrap(native.cat(tensors.map((t) => t.handle), dim));
}
/** Tensors of one shape joined along a new dimension `dim` (torch.stack): n tensors [a, b] → [n, a, b] for dim 0. */
export function stack(tensors: readonly Tensor[], dim = 0): Tensor {
  return wrap(native.stack(tensors.map((t) => t.handle), dim));
}
/** Elementwise `a` where the bool `condition` is true, else `b`, all three broadcast together (torch.where). */
export function where(condition: Tensor, a: Tensor, b: Tensor): Tensor {
  return wrap(native.where(condition.handle, a.handle, b.handle));
}
/** Sums of products over the indices `equation` names, as torch.einsum: einsum('bij,bjk->bik', x, y) is x.bmm(y). */
export function einsum(equation: string, ...operands: Tensor[]): Tensor {
  return wrap(native.einsum(equation, operands.map((t) => t.handle)));
}
/** Outer product of two 1-D tensors: a [n], b [m] → [n, m] with out[i, j] = a[i] · b[j] (torch.outer). */
export function outer(a: Tensor, b: Tensor): Tensor {
  return wrap(native.outer(a.handle, b.handle));
}
/** Eigen-decomposition of a symmetric matrix: eigenvalues ascending and eigenvectors as columns. */
export function eigh(matrix: Tensor): { values: Tensor; vectors: Tensor } {
  const [values, vectors] = native.linalgEigh(matrix.handle);
  return { values: wrap(values), vectors: wrap(vectors) };
}

export { isDType };
