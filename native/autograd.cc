// Autograd (libtorch's own), and the fused parameter updates of training:
// the Adam step, the gradient NaN/Inf scrub and the EMA update. These loop
// over all parameters in C++ so a step costs one call, not one per tensor.
#include "common.h"

#include <c10/core/GradMode.h>

#include <cmath>

namespace pd {

PD_FN(setRequiresGrad, { T(0).requires_grad_(B(1)); return env.Undefined(); })
PD_FN(isLeaf, return Napi::Boolean::New(env, T(0).is_leaf());)
PD_FN(retainGrad, { T(0).retain_grad(); return env.Undefined(); })

// backward(t, gradient|null): the gradient may be omitted only for a scalar.
PD_FN(backward, {
  at::Tensor t = T(0);
  c10::optional<at::Tensor> g = OT(1);
  if (!t.requires_grad())
    throw ArgError{"backward() on a tensor that does not require grad (is a parameter missing setRequiresGrad, or was it computed in a no-grad scope?)"};
  if (!g && t.numel() != 1)
    throw ArgError{"backward() without a gradient needs a scalar, got " + describeTensor(t)};
  t.backward(g ? *g : at::Tensor(), /*retain_graph=*/false, /*create_graph=*/false);
  return env.Undefined();
})

// grad(t): the accumulated gradient, or null when none has been computed.
PD_FN(grad, {
  const at::Tensor& g = T(0).grad();
  if (!g.defined()) return env.Null();
  WRAP(g)
})

PD_FN(zeroGrad, {
  for (at::Tensor& p : TL(0)) {
    at::Tensor& g = p.mutable_grad();
    if (g.defined()) g = at::Tensor();  // set_to_none, as torch 2.x zero_grad()
  }
  return env.Undefined();
})

PD_FN(setGradEnabled, {
  bool previous = c10::GradMode::is_enabled();
  c10::GradMode::set_enabled(B(0));
  return Napi::Boolean::New(env, previous);
})
PD_FN(isGradEnabled, return Napi::Boolean::New(env, c10::GradMode::is_enabled());)

// gradNanToNum(params, nan, posinf, neginf): replaces non-finite gradient
// entries in place (the official loop's nan_to_num) and returns how many
// parameters had any, so the caller can report it. Any NaN/Inf makes its
// tensor's sum non-finite, so one reduction per gradient and one check for
// all of them find the (rare) steps that need a closer look; a sum that
// overflows from finite values is caught by the exact per-tensor check.
PD_FN(gradNanToNum, {
  RECORD_USER_SCOPE("pd::gradNanToNum");  // one family in the op profiler (profiler.cc)
  c10::AutoGradMode no_grad(false);
  double nan = D(1), posinf = D(2), neginf = D(3);
  std::vector<at::Tensor> grads;
  for (at::Tensor& p : TL(0)) {
    const at::Tensor& g = p.grad();
    if (g.defined()) grads.push_back(g);
  }
  if (grads.empty()) return Napi::Number::New(env, 0);
  std::vector<at::Tensor> sums;
  sums.reserve(grads.size());
  for (const at::Tensor& g : grads) sums.push_back(g.sum().to(at::kDouble));
  if (at::stack(sums).isfinite().all().item<bool>()) return Napi::Number::New(env, 0);
  int64_t bad = 0;
  for (at::Tensor& g : grads) {
    if (!at::isfinite(g).all().item<bool>()) {
      ++bad;
      g.nan_to_num_(nan, posinf, neginf);
    }
  }
  return Napi::Number::New(env, static_cast<double>(bad));
})

// libtorch 2.4 and later have a fused Adam for CPU tensors (and CUDA): one
// pass over each tensor instead of eight ops, the same formula as below
// (bias-corrected, weight decay added to the gradient, eps outside the
// square root; the gradients are not modified).
#define PD_HAS_FUSED_ADAM PD_TORCH_AT_LEAST(2, 4)
#if PD_HAS_FUSED_ADAM
// False (nothing done) unless every parameter with a gradient shares one
// dtype and device with its gradient and moments, as the fused kernel needs.
static bool fusedAdam(const std::vector<at::Tensor>& params, const std::vector<at::Tensor>& m,
                      const std::vector<at::Tensor>& v, double step, double lr, double beta1, double beta2,
                      double eps, double wd) {
  std::vector<at::Tensor> ps, gs, ms, vs;
  for (size_t k = 0; k < params.size(); ++k) {
    const at::Tensor& g = params[k].grad();
    if (!g.defined()) continue;
    const at::Tensor& p = params[k];
    if (!m[k].sizes().equals(p.sizes()) || !v[k].sizes().equals(p.sizes())) return false;  // the loop reports it
    for (const at::Tensor* t : {&g, &m[k], &v[k]})
      if (t->scalar_type() != p.scalar_type() || t->device() != p.device() || !t->is_contiguous()) return false;
    if (!ps.empty() && (p.scalar_type() != ps[0].scalar_type() || p.device() != ps[0].device())) return false;
    ps.push_back(p), gs.push_back(g), ms.push_back(m[k]), vs.push_back(v[k]);
  }
  if (ps.empty()) return true;
  std::vector<at::Tensor> steps(ps.size(), at::full({}, step, at::TensorOptions().dtype(at::kFloat).device(ps[0].device())));
  at::_fused_adam_(ps, gs, ms, vs, {}, steps, lr, beta1, beta2, wd, eps, /*amsgrad=*/false, /*maximize=*/false);
  return true;
}
#endif

// adamStep(params, expAvg, expAvgSq, step, lr, beta1, beta2, eps, weightDecay):
// torch.optim.Adam's update (no amsgrad), with `step` the 1-based count after
// this update. Parameters without a gradient are skipped, as in PyTorch.
PD_FN(adamStep, {
  RECORD_USER_SCOPE("pd::adamStep");  // one family in the op profiler (profiler.cc)
  c10::AutoGradMode no_grad(false);
  std::vector<at::Tensor> params = TL(0), m = TL(1), v = TL(2);
  double step = D(3), lr = D(4), beta1 = D(5), beta2 = D(6), eps = D(7), wd = D(8);
  if (params.size() != m.size() || params.size() != v.size())
    throw ArgError{"adamStep: " + std::to_string(params.size()) + " params but " + std::to_string(m.size()) +
                   " and " + std::to_string(v.size()) + " moment tensors"};
  if (step < 1) throw ArgError{"adamStep: step must be >= 1"};
#if PD_HAS_FUSED_ADAM
  if (fusedAdam(params, m, v, step, lr, beta1, beta2, eps, wd)) return env.Undefined();
#endif
  double bias1 = 1 - std::pow(beta1, step);
  double bias2_sqrt = std::sqrt(1 - std::pow(beta2, step));
  double step_size = lr / bias1;
  for (size_t k = 0; k < params.size(); ++k) {
    at::Tensor& p = params[k];
    at::Tensor g = p.grad();
    if (!g.defined()) continue;
    if (!m[k].sizes().equals(p.sizes()) || !v[k].sizes().equals(p.sizes()))
      throw ArgError{"adamStep: moment " + std::to_string(k) + " has shape " + describeTensor(m[k]) +
                     " but its parameter is " + describeTensor(p)};
    if (wd != 0) g = g.add(p, wd);
    m[k].mul_(beta1).add_(g, 1 - beta1);
    v[k].mul_(beta2).addcmul_(g, g, 1 - beta2);
    at::Tensor denom = (v[k].sqrt() / bias2_sqrt).add_(eps);
    p.addcdiv_(m[k], denom, -step_size);
  }
  return env.Undefined();
})

// emaUpdate(ema, net, beta): ema = net.lerp(ema, beta), the official form,
// so beta = 0 copies the network exactly.
PD_FN(emaUpdate, {
  RECORD_USER_SCOPE("pd::emaUpdate");  // one family in the op profiler (profiler.cc)
  c10::AutoGradMode no_grad(false);
  std::vector<at::Tensor> ema = TL(0), net = TL(1);
  double beta = D(2);
  if (ema.size() != net.size())
    throw ArgError{"emaUpdate: " + std::to_string(ema.size()) + " EMA tensors but " + std::to_string(net.size()) + " network tensors"};
  for (size_t k = 0; k < ema.size(); ++k) ema[k].copy_(net[k].detach().lerp(ema[k], beta));
  return env.Undefined();
})

}  // namespace pd

namespace pd {
// setData(t, source): replaces t's data (storage, device, dtype) while keeping
// the same tensor object, as PyTorch's `param.data = …` in Module.to(): every
// JS wrapper of the parameter stays valid.
PD_FN(setData, {
  at::Tensor t = T(0);
  t.set_data(T(1));
  return env.Undefined();
})
}  // namespace pd
