// Dropout whose mask comes from our own generator and is kept for backward
// in one byte per value.
//
// libtorch's dropout would draw from its global generator (runs could not be
// reproduced from their seeds), and the float mask of the plain formula
// x · (mask / (1 − p)) is what autograd then keeps until backward: 4 bytes per
// value for every dropout of the network (DDPM++ has one per UNet block, at
// full activation size). Here the mask is drawn into a bool tensor, with the
// same draws as a float one (libtorch's bernoulli_ draws the same numbers
// whatever the tensor's dtype, on the CPU and on CUDA), and the scaling runs
// as libtorch's native_dropout_backward, which multiplies by a bool mask and a
// scale in one kernel on CUDA. A small autograd function keeps only that mask
// and the scale, and its backward is the same kernel on the gradient. The
// results equal x · (mask / (1 − p)) bit for bit, gradients included
// (test/dropout-mask.test.ts checks both against the composite ops).
//
// The custom-function header comes before common.h (its argument shorthands
// T, D, I, B would clash with template parameter names).
#include <torch/csrc/autograd/custom_function.h>

#include "common.h"

#include <mutex>

namespace pd {
namespace {

// The keep mask of dropout(x, p, gen), in `dtype`, shaped as x (contiguous).
//
// On a GPU the mask is not drawn on the CPU and copied over (the rule for the
// other draws): for DDPM++ at batch 128 that is ~30 masks of up to 34 M
// values per step, and it made training 16× slower than the GPU's arithmetic
// (H200, 2026-12-04: 50 img/s). The device's own generator draws it instead,
// reseeded for each mask from the CPU generator, so a seed still fixes every
// mask on that device and the CPU generator's state is still all a resume
// needs; the masks differ from the CPU's.
at::Tensor drawKeepMask(const at::Tensor& x, double p, at::Generator& g, at::ScalarType dtype) {
  at::Tensor keep = at::empty(x.sizes(), x.options().dtype(dtype));
  if (x.device().is_cpu()) {
    keep.bernoulli_(1 - p, g);
  } else {
    const int64_t seed = at::empty({1}, at::kLong).random_(g).item<int64_t>();
    at::Generator device_gen = at::globalContext().defaultGenerator(x.device());
    {
      std::lock_guard<std::mutex> lock(device_gen.mutex());  // released before bernoulli_, which takes it too
      device_gen.set_current_seed(static_cast<uint64_t>(seed));
    }
    keep.bernoulli_(1 - p, device_gen);
  }
  return keep;
}

// 1/(1 − p) as the float mask's div_(1 − p) rounds it in x's dtype (the same
// kernel on one element), so that x · scale is what x · (mask / (1 − p)) gave.
double keepScale(double p, at::ScalarType dtype) {
  return at::ones({1}, at::TensorOptions().dtype(dtype)).div_(1 - p).item<double>();
}

void checkProbability(double p) {
  if (p < 0 || p >= 1) throw ArgError{"dropout probability must be in [0, 1), got " + std::to_string(p)};
}

// out = x · mask · scale with mask bool; autograd keeps the mask and the scale only.
struct MaskedScale : public torch::autograd::Function<MaskedScale> {
  static at::Tensor forward(torch::autograd::AutogradContext* ctx, const at::Tensor& x, const at::Tensor& mask, double scale) {
    ctx->saved_data["scale"] = scale;
    ctx->save_for_backward({mask});
    return at::native_dropout_backward(x, mask, scale);
  }

  static torch::autograd::variable_list backward(torch::autograd::AutogradContext* ctx, torch::autograd::variable_list grads) {
    const at::Tensor mask = ctx->get_saved_variables()[0];
    const at::Tensor& g = grads[0];
    at::Tensor gx = g.defined() ? at::native_dropout_backward(g, mask, ctx->saved_data["scale"].toDouble()) : at::Tensor();
    return {gx, at::Tensor(), at::Tensor()};
  }
};

}  // namespace

// dropout(x, p, gen): inverted dropout, x · mask / (1 − p), with the mask drawn
// from gen (on a GPU: from the device's generator seeded from gen) and kept
// for backward as bool. p = 0 returns x itself.
PD_FN(dropout, {
  at::Tensor x = T(0);
  double p = D(1);
  checkProbability(p);
  if (p == 0) WRAP(x)
  at::Generator& g = argGenerator(info, 2);
  if (!at::isFloatingType(x.scalar_type())) throw ArgError{"dropout needs a floating-point tensor, got " + describeTensor(x)};
  at::Tensor mask = drawKeepMask(x, p, g, at::kBool);
  WRAP(MaskedScale::apply(x, mask, keepScale(p, x.scalar_type())))
})

// dropoutMask(x, p, gen, dtype = 'bool'): the mask dropout(x, p, gen) would
// draw from gen in its present state (1 = kept), in `dtype`, without the
// scaling: for tests that compare the fused op with the composite formula.
PD_FN(dropoutMask, {
  at::Tensor x = T(0);
  double p = D(1);
  checkProbability(p);
  at::Generator& g = argGenerator(info, 2);
  at::ScalarType dtype = info.Length() > 3 && !info[3].IsUndefined() && !info[3].IsNull() ? argDtype(info, 3) : at::kBool;
  WRAP(drawKeepMask(x, p, g, dtype))
})

}  // namespace pd
