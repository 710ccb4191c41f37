// Self-attention as EDM's UNetBlock computes it. The weights, as EDM's AttentionOp: softmax over keys of
// qᵀk / √c, computed in float32 whatever the input dtype and returned in the
// input dtype. Gradients flow through libtorch's autograd (the same maths as
// EDM's hand-written backward, also in float32).
import { asDType } from './dtype.js';
import * as F from '../tensor/functional.js';
import { scope } from '../tensor/scope.js';
import type { Tensor } from '../tensor/tensor.js';

/** q, k: [B, c, L] → w: [B, Lq, Lk] with w[b, i, j] = softmax_j(Σ_c q[b,c,i]·k[b,c,j] / √c). */
export function attentionWeights(q: Tensor, k: Tensor): Tensor {
  if (q.ndim !== 3 || k.ndim !== 3 || q.shape[0] !== k.shape[0] || q.shape[1] !== k.shape[1])
    throw new Error(`attentionWeights: q and k must be [B, c, L] with equal B and c, got [${q.shape}] and [${k.shape}]`);
  return scope(() => {
    const scaledK = k.div(Math.sqrt(k.shape[1]!));
    const logits = asDType(q, 'float32').transpose(1, 2).bmm(asDType(scaledK, 'float32'));
    return asDType(F.softmax(logits, 2), q.dtype);
  });
}

/**
 * Multi-head self-attention over a qkv map in EDM's interleaved layout: qkv is
 * [N, 3C, H, W] reshaped to [N·heads, C/heads, 3, H·W], so q, k and v of
 * channel c are channels 3c, 3c+1, 3c+2 within each head. Returns [N, C, H, W]
 * (before the output projection).
 */
export function interleavedSelfAttention(qkv: Tensor, heads: number): Tensor {
  const [n, c3, h, w] = qkv.shape as [number, number, number, number];
  if (qkv.ndim !== 4 || c3 % (3 * heads) !== 0)
    throw new Error(`interleavedSelfAttention: qkv [${qkv.shape}] cannot be split into q, k, v for ${heads} heads`);
  const c = c3 / 3;
  return scope(() => {
    const parts = qkv.reshape(n * heads, c / heads, 3, h * w);
    if (F.fusedAttentionAvailable()) {
      // The same sum through libtorch 2.x's fused (flash) kernel: scores in
      // float32 for bf16 inputs too, no L×L weights in memory. It needs the
      // feature dimension innermost and a heads dimension ([B, 1, L, d]; a
      // 3-D call falls back to the unfused maths), hence one copy to [B, 1, L, 3, d].
      const t = parts.permute(0, 3, 2, 1).unsqueeze(1).contiguous();
      const a = F.scaledDotProductAttention(t.select(3, 0), t.select(3, 1), t.select(3, 2)); // [B, 1, L, d]
      return a.squeeze(1).transpose(1, 2).reshape(n, c, h, w);
    }
    const q = parts.select(2, 0);
    const k = parts.select(2, 1);
    const v = parts.select(2, 2);
    const weights = attentionWeights(q, k); // [B, Lq, Lk]
    // a[b, c, i] = Σ_j w[b, i, j] · v[b, c, j]
    const a = v.bmm(weights.transpose(1, 2));
    return a.reshape(n, c, h, w);
  });
}
