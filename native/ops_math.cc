// Element-wise math with broadcasting, comparisons, reductions, linear
// algebra and the in-place ops the optimizer and EMA need.
#include "common.h"

#include <cmath>

namespace pd {

// Binary ops accept a tensor or a number as the second operand.
static bool isNumberArg(const Napi::CallbackInfo& info, size_t i) {
  return i < info.Length() && info[i].IsNumber();
}

// A JS number as a Scalar: integral values become integer Scalars so that
// int64 tensors stay int64 (t + 1), while floating tensors are unaffected.
static at::Scalar numberArg(const Napi::CallbackInfo& info, size_t i) {
  double v = argDouble(info, i);
  if (v == static_cast<double>(static_cast<int64_t>(v)) && std::abs(v) < 9.007199254740992e15) return at::Scalar(static_cast<int64_t>(v));
  return at::Scalar(v);
}

#define PD_BINARY(name, fn)                                                   \
  PD_FN(name, {                                                               \
    if (isNumberArg(info, 1)) WRAP(at::fn(T(0), numberArg(info, 1)))            \
    WRAP(at::fn(T(0), T(1)))                                                  \
  })

// alpha as an integer Scalar when it is integral: libtorch rejects a
// floating alpha for integer tensors.
static at::Scalar alphaArg(const Napi::CallbackInfo& info, size_t i) {
  return info.Length() > i ? numberArg(info, i) : at::Scalar(static_cast<int64_t>(1));
}

PD_FN(add, {
  at::Scalar alpha = alphaArg(info, 2);
  if (isNumberArg(info, 1)) WRAP(at::add(T(0), numberArg(info, 1), alpha))
  WRAP(at::add(T(0), T(1), alpha))
})
PD_FN(sub, {
  at::Scalar alpha = alphaArg(info, 2);
  if (isNumberArg(info, 1)) WRAP(at::sub(T(0), numberArg(info, 1), alpha))
  WRAP(at::sub(T(0), T(1), alpha))
})
PD_BINARY(mul, mul)
PD_BINARY(div, div)
PD_BINARY(pow, pow)
PD_BINARY(eq, eq)
PD_BINARY(ne, ne)
PD_BINARY(lt, lt)
PD_BINARY(le, le)
PD_BINARY(gt, gt)
PD_BINARY(ge, ge)
PD_BINARY(fmod, fmod)
PD_FN(rsub, WRAP(at::rsub(T(0), numberArg(info, 1))))
PD_FN(maximum, WRAP(at::maximum(T(0), T(1))))
PD_FN(minimum, WRAP(at::minimum(T(0), T(1))))
PD_FN(where, WRAP(at::where(T(0), T(1), T(2))))
PD_FN(logicalAnd, WRAP(at::logical_and(T(0), T(1))))
PD_FN(logicalNot, WRAP(at::logical_not(T(0))))

#define PD_UNARY(name, fn) PD_FN(name, WRAP(at::fn(T(0))))
PD_UNARY(neg, neg)
PD_UNARY(abs, abs)
PD_UNARY(exp, exp)
PD_UNARY(log, log)
PD_UNARY(sqrt, sqrt)
PD_UNARY(rsqrt, rsqrt)
PD_UNARY(square, square)
PD_UNARY(reciprocal, reciprocal)
PD_UNARY(sin, sin)
PD_UNARY(cos, cos)
PD_UNARY(tanh, tanh)
PD_UNARY(sigmoid, sigmoid)
PD_UNARY(relu, relu)
PD_UNARY(floor, floor)
PD_UNARY(ceil, ceil)
PD_UNARY(round, round)
PD_UNARY(trunc, trunc)
PD_UNARY(sign, sign)
PD_UNARY(isfinite, isfinite)
PD_UNARY(isnan, isnan)
static c10::optional<at::Scalar> optScalar(const Napi::CallbackInfo& info, size_t i) {
  c10::optional<double> v = argOptDouble(info, i);
  if (!v) return c10::nullopt;
  return at::Scalar(*v);
}
PD_FN(clamp, WRAP(at::clamp(T(0), optScalar(info, 1), optScalar(info, 2))))
PD_FN(nanToNum, WRAP(at::nan_to_num(T(0), D(1), D(2), D(3))))

// ---- reductions ---------------------------------------------------------------------------
// Reductions over `dims` (empty = all dimensions).

PD_FN(sum, {
  std::vector<int64_t> dims = IL(1);
  if (dims.empty()) WRAP(T(0).sum())
  WRAP(T(0).sum(dims, B(2)))
})
PD_FN(mean, {
  std::vector<int64_t> dims = IL(1);
  if (dims.empty()) WRAP(T(0).mean())
  WRAP(T(0).mean(dims, B(2)))
})
PD_FN(prod, WRAP(T(0).prod()))
PD_FN(variance, WRAP(at::var(T(0), at::OptionalIntArrayRef(IL(1)), static_cast<int64_t>(B(2) ? 1 : 0), B(3))))
PD_FN(std, WRAP(at::std(T(0), at::OptionalIntArrayRef(IL(1)), static_cast<int64_t>(B(2) ? 1 : 0), B(3))))
PD_FN(amax, WRAP(T(0).amax(IL(1), B(2))))
PD_FN(amin, WRAP(T(0).amin(IL(1), B(2))))
PD_FN(argmax, WRAP(T(0).argmax(I(1), B(2))))
PD_FN(logsumexp, WRAP(T(0).logsumexp(IL(1), B(2))))
PD_FN(cumsum, WRAP(T(0).cumsum(I(1))))
PD_FN(norm, WRAP(T(0).norm()))
PD_FN(sort, {
  auto [values, indices] = T(0).sort(I(1), B(2));
  return wrapList(env, {values, indices});
})
PD_FN(allFinite, return Napi::Boolean::New(env, at::isfinite(T(0)).all().item<bool>());)

// ---- linear algebra ---------------------------------------------------------------------------

PD_FN(matmul, WRAP(at::matmul(T(0), T(1))))
PD_FN(mm, WRAP(at::mm(T(0), T(1))))
PD_FN(bmm, WRAP(at::bmm(T(0), T(1))))
PD_FN(linear, WRAP(at::linear(T(0), T(1), OT(2))))
PD_FN(einsum, WRAP(at::einsum(argString(info, 0), TL(1))))
PD_FN(outer, WRAP(at::outer(T(0), T(1))))
PD_FN(linalgEigh, {
  auto [values, vectors] = at::linalg_eigh(T(0));
  return wrapList(env, {values, vectors});
})

// ---- in-place ops (return the same handle's tensor as a new handle is not needed) ---------------

PD_FN(copy_, { T(0).copy_(T(1)); return env.Undefined(); })
PD_FN(zero_, { T(0).zero_(); return env.Undefined(); })
PD_FN(fill_, { T(0).fill_(D(1)); return env.Undefined(); })
PD_FN(mul_, {
  if (isNumberArg(info, 1)) T(0).mul_(D(1));
  else T(0).mul_(T(1));
  return env.Undefined();
})
PD_FN(add_, {
  at::Scalar alpha = alphaArg(info, 2);
  if (isNumberArg(info, 1)) T(0).add_(numberArg(info, 1), alpha);
  else T(0).add_(T(1), alpha);
  return env.Undefined();
})
PD_FN(lerp_, {
  if (isNumberArg(info, 2)) T(0).lerp_(T(1), D(2));
  else T(0).lerp_(T(1), T(2));
  return env.Undefined();
})
PD_FN(clamp_, { T(0).clamp_(optScalar(info, 1), optScalar(info, 2)); return env.Undefined(); })
PD_FN(addcmul_, { T(0).addcmul_(T(1), T(2), D(3)); return env.Undefined(); })
PD_FN(addcdiv_, { T(0).addcdiv_(T(1), T(2), D(3)); return env.Undefined(); })
PD_FN(nanToNum_, { T(0).nan_to_num_(D(1), D(2), D(3)); return env.Undefined(); })

}  // namespace pd
