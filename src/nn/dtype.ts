// Layers keep their weights in float32 and cast them to the activation dtype
// per call (as EDM's `self.weight.to(x.dtype)`), so a float16 forward pass
// works on float32 master weights.
import type { DType, Tensor } from '../tensor/tensor.js';

/** `t` itself when it already has `dtype`, else a cast copy (autograd flows through the cast). */
export function asDType(t: Tensor, dtype: DType): Tensor {
  return t.dtype === dtype ? t : t.to(dtype);
}
