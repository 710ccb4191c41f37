// Tensors to and from their raw little-endian bytes, for the file formats
// (safetensors, torch.save) and weight hashes: every dtype, float16 and
// bfloat16 included, crosses as bytes without a round trip through numbers.
import { native } from './native.js';
import { wrap, type DType, type Tensor } from './tensor.js';

/** A new CPU tensor holding a copy of `bytes` (their length must be the shape's elements × the dtype's size). */
export function tensorFromBytes(bytes: Uint8Array, shape: readonly number[], dtype: DType): Tensor {
  return wrap(native.fromBuffer(bytes, shape, dtype));
}

/** A copy of the tensor's bytes in row-major order, from any device and any layout (the copy is made contiguous on the CPU). */
export function tensorBytes(t: Tensor): Uint8Array {
  return new Uint8Array(native.toBuffer(t.handle));
}
