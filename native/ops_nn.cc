// Neural-network ops: convolutions, normalisation, activations, attention
// pieces, resampling and pooling (dropout is in dropout.cc).
#include "common.h"

namespace pd {

// conv2d(x, w, b|null, stride[2], padding[2], dilation[2], groups)
PD_FN(conv2d, WRAP(at::conv2d(T(0), T(1), OT(2), IL(3), IL(4), IL(5), I(6))))

// convTranspose2d(x, w, b|null, stride[2], padding[2], outputPadding[2], groups, dilation[2])
PD_FN(convTranspose2d, WRAP(at::conv_transpose2d(T(0), T(1), OT(2), IL(3), IL(4), IL(5), I(6), IL(7))))

// groupNorm(x, groups, weight|null, bias|null, eps)
PD_FN(groupNorm, {
  at::Tensor x = T(0);
  int64_t groups = I(1);
  if (x.dim() < 2) throw ArgError{"group_norm needs an input of at least 2 dimensions (N, C, ...)"};
  if (groups <= 0 || x.size(1) % groups != 0)
    throw ArgError{"group_norm: " + std::to_string(x.size(1)) + " channels cannot be split into " +
                   std::to_string(groups) + " groups"};
  WRAP(at::group_norm(x, groups, OT(2), OT(3), D(4), true))
})

// layerNorm(x, normalizedShape, weight|null, bias|null, eps)
PD_FN(layerNorm, WRAP(at::layer_norm(T(0), IL(1), OT(2), OT(3), D(4), true)))

// batchNorm(x, weight|null, bias|null, runningMean|null, runningVar|null, training, momentum, eps)
PD_FN(batchNorm, WRAP(at::batch_norm(T(0), OT(1), OT(2), OT(3), OT(4), B(5), D(6), D(7), true)))

PD_FN(softmax, WRAP(at::softmax(T(0), I(1))))

// scaledDotProductAttention(q, k, v): softmax(q·kᵀ/√d)·v for [B, H, L, d]
// inputs, libtorch 2.x's fused kernel (on the CPU a flash-attention loop that
// keeps the scores in float32 for bf16 inputs and never stores the L×L
// weights). 1.x has no such op: fusedAttentionAvailable() says which.
PD_FN(fusedAttentionAvailable, return Napi::Boolean::New(env, PD_TORCH_AT_LEAST(2, 0));)
PD_FN(scaledDotProductAttention, {
#if PD_TORCH_AT_LEAST(2, 0)
  WRAP(at::scaled_dot_product_attention(T(0), T(1), T(2)))
#else
  throw ArgError{"scaled_dot_product_attention needs libtorch 2.x (this is " TORCH_VERSION ")"};
#endif
})
PD_FN(logSoftmax, WRAP(at::log_softmax(T(0), I(1))))
PD_FN(silu, WRAP(at::silu(T(0))))
PD_FN(gelu, WRAP(at::gelu(T(0))))
PD_FN(leakyRelu, WRAP(at::leaky_relu(T(0), D(1))))

// interpolate(x, size[2], mode, alignCorners)
PD_FN(interpolate, {
  at::Tensor x = T(0);
  std::vector<int64_t> size = IL(1);
  std::string mode = argString(info, 2);
  if (size.size() != 2) throw ArgError{"interpolate size must be [height, width]"};
  if (mode == "nearest") WRAP(at::upsample_nearest2d(x, size, c10::nullopt, c10::nullopt))
  if (mode == "bilinear") WRAP(at::upsample_bilinear2d(x, size, B(3), c10::nullopt, c10::nullopt))
  if (mode == "bicubic") WRAP(at::upsample_bicubic2d(x, size, B(3), c10::nullopt, c10::nullopt))
  if (mode == "bilinear-antialias") WRAP(at::_upsample_bilinear2d_aa(x, size, B(3), c10::nullopt, c10::nullopt))
  if (mode == "bicubic-antialias") WRAP(at::_upsample_bicubic2d_aa(x, size, B(3), c10::nullopt, c10::nullopt))
  throw ArgError{"interpolate mode must be nearest, bilinear, bicubic, bilinear-antialias or bicubic-antialias, got '" + mode + "'"};
})

// affineGrid(theta [N,2,3], size [N,C,H,W], alignCorners): sampling grid [N,H,W,2]
PD_FN(affineGrid, {
  std::vector<int64_t> size = IL(1);
  if (size.size() != 4) throw ArgError{"affine_grid size must be [N, C, H, W]"};
  WRAP(at::affine_grid_generator(T(0), size, B(2)))
})
// gridSample(x [N,C,H,W], grid [N,H',W',2], mode, paddingMode, alignCorners)
PD_FN(gridSample, {
  std::string mode = argString(info, 2);
  std::string padding = argString(info, 3);
  int64_t m = mode == "bilinear" ? 0 : mode == "nearest" ? 1 : mode == "bicubic" ? 2 : -1;
  int64_t p = padding == "zeros" ? 0 : padding == "border" ? 1 : padding == "reflection" ? 2 : -1;
  if (m < 0) throw ArgError{"grid_sample mode must be bilinear, nearest or bicubic, got '" + mode + "'"};
  if (p < 0) throw ArgError{"grid_sample padding must be zeros, border or reflection, got '" + padding + "'"};
  WRAP(at::grid_sampler(T(0), T(1), m, p, B(4)))
})

// avgPool2d(x, kernel[2], stride[2], padding[2], countIncludePad)
PD_FN(avgPool2d, WRAP(at::avg_pool2d(T(0), IL(1), IL(2), IL(3), false, B(4))))
// maxPool2d(x, kernel[2], stride[2], padding[2])
PD_FN(maxPool2d, WRAP(at::max_pool2d(T(0), IL(1), IL(2), IL(3))))
PD_FN(adaptiveAvgPool2d, WRAP(at::adaptive_avg_pool2d(T(0), IL(1))))

}  // namespace pd
