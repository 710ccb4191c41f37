// CUDA: which kind of build this is, the GPUs it sees, why it sees none,
// device synchronisation and the caching allocator's memory figures.
//
// PD_WITH_CUDA: compiled against a CUDA libtorch (libtorch_cuda linked).
// PD_WITH_CUDA_RUNTIME: the CUDA runtime's headers were found at build time
// too (scripts/find-libtorch.cjs), so the device properties and memory
// statistics are available; without them a CUDA build reports the device
// count only. On a CPU libtorch every function here answers "no CUDA".
//
// The CUDA headers come before common.h (its argument shorthands T, D, I, B
// would clash with template parameter names).
#include <torch/cuda.h>
#ifdef PD_WITH_CUDA_RUNTIME
#include <cuda_runtime_api.h>
#include <c10/cuda/CUDACachingAllocator.h>
#include <c10/cuda/CUDAFunctions.h>
#endif

#include "common.h"

namespace pd {
namespace {

#ifdef PD_WITH_CUDA
constexpr bool kCudaBuild = true;
#else
constexpr bool kCudaBuild = false;
#endif

#ifdef PD_WITH_CUDA_RUNTIME
c10::DeviceIndex deviceIndex(const Napi::CallbackInfo& info, size_t i) {
  int64_t n = info.Length() > i && info[i].IsNumber() ? I(i) : 0;
  int64_t count = torch::cuda::device_count();
  if (n < 0 || n >= count)
    throw ArgError{"CUDA device " + std::to_string(n) + " does not exist (" + std::to_string(count) + " visible)"};
  return static_cast<c10::DeviceIndex>(n);
}
#endif

}  // namespace

// cudaBuild(): whether this addon was compiled against a CUDA libtorch.
PD_FN(cudaBuild, return Napi::Boolean::New(env, kCudaBuild);)

// cudaRuntimeHeaders(): whether it was compiled with the CUDA runtime's headers
// (device names and memory statistics); false on a CPU build.
PD_FN(cudaRuntimeHeaders, {
#ifdef PD_WITH_CUDA_RUNTIME
  return Napi::Boolean::New(env, true);
#else
  return Napi::Boolean::New(env, false);
#endif
})

// cudaUnavailableReason(): null when a GPU is visible, else why not, in
// CUDA's (c10's) words: no driver, a driver too old, no device, or "not a
// CUDA build".
PD_FN(cudaUnavailableReason, {
  if (!kCudaBuild) return Napi::String::New(env, "this addon was built against a CPU-only libtorch");
#ifdef PD_WITH_CUDA_RUNTIME
  try {
    c10::cuda::device_count_ensure_non_zero();
    return env.Null();
  } catch (const c10::Error& e) {
    std::string msg = e.what_without_backtrace();
    size_t cut = msg.find("\nException raised from");
    return Napi::String::New(env, cut == std::string::npos ? msg : msg.substr(0, cut));
  }
#else
  if (torch::cuda::device_count() > 0) return env.Null();
  return Napi::String::New(env, "CUDA reports no device");
#endif
})

// cudaDevices(): [{index, name, totalMemory, computeCapability, multiprocessors}]
// for each visible GPU (name null and figures 0 without the runtime headers).
PD_FN(cudaDevices, {
  int64_t count = kCudaBuild ? static_cast<int64_t>(torch::cuda::device_count()) : 0;
  Napi::Array out = Napi::Array::New(env, static_cast<size_t>(count));
  for (int64_t i = 0; i < count; ++i) {
    Napi::Object d = Napi::Object::New(env);
    d.Set("index", Napi::Number::New(env, static_cast<double>(i)));
#ifdef PD_WITH_CUDA_RUNTIME
    cudaDeviceProp p{};
    cudaError_t err = cudaGetDeviceProperties(&p, static_cast<int>(i));
    if (err != cudaSuccess) throw std::runtime_error(std::string("cudaGetDeviceProperties: ") + cudaGetErrorString(err));
    d.Set("name", Napi::String::New(env, p.name));
    d.Set("totalMemory", Napi::Number::New(env, static_cast<double>(p.totalGlobalMem)));
    d.Set("computeCapability", Napi::String::New(env, std::to_string(p.major) + "." + std::to_string(p.minor)));
    d.Set("multiprocessors", Napi::Number::New(env, p.multiProcessorCount));
#else
    d.Set("name", env.Null());
    d.Set("totalMemory", Napi::Number::New(env, 0));
    d.Set("computeCapability", env.Null());
    d.Set("multiprocessors", Napi::Number::New(env, 0));
#endif
    out.Set(static_cast<uint32_t>(i), d);
  }
  return out;
})

// cudaSynchronize(index?): waits for all work queued on that GPU (for timing).
PD_FN(cudaSynchronize, {
  if (!kCudaBuild) throw std::runtime_error("cudaSynchronize: this addon was built against a CPU-only libtorch");
  int64_t n = info.Length() > 0 && info[0].IsNumber() ? I(0) : -1;
  torch::cuda::synchronize(n);
  return env.Undefined();
})

// cudaMemoryStats(index?): the caching allocator's bytes on that GPU, now and
// at the peak since the start or the last cudaResetPeakMemory; null where this
// build cannot tell (CPU build, or no runtime headers).
PD_FN(cudaMemoryStats, {
#ifdef PD_WITH_CUDA_RUNTIME
  auto stats = c10::cuda::CUDACachingAllocator::getDeviceStats(deviceIndex(info, 0));
  constexpr size_t kAggregate = 0;  // StatType::AGGREGATE, in 1.x and 2.x
  Napi::Object o = Napi::Object::New(env);
  o.Set("allocated", Napi::Number::New(env, static_cast<double>(stats.allocated_bytes[kAggregate].current)));
  o.Set("peakAllocated", Napi::Number::New(env, static_cast<double>(stats.allocated_bytes[kAggregate].peak)));
  o.Set("reserved", Napi::Number::New(env, static_cast<double>(stats.reserved_bytes[kAggregate].current)));
  o.Set("peakReserved", Napi::Number::New(env, static_cast<double>(stats.reserved_bytes[kAggregate].peak)));
  return o;
#else
  return env.Null();
#endif
})

// cudaMathOptions(benchmark, allowTf32): cuDNN's autotuner, and whether cuDNN
// convolutions and cuBLAS matmuls may use TF32 (10-bit mantissa) for float32.
// libtorch's defaults are autotuner off, TF32 on for cuDNN; the official EDM
// training loop sets cudnn.benchmark = True and TF32 off for both. These are
// process-wide settings of ATen's context, harmless in a CPU build.
// deterministic: cuDNN only picks deterministic algorithms (its fastest weight
// gradients of 1×1 convolutions accumulate with atomics, so two runs differ
// in the last bits: seen on an H200, 2026-12-04).
// A fourth argument sets cuBLAS's TF32 apart from cuDNN's (to put back a
// state read by cudaMathState, where libtorch's defaults differ).
PD_FN(cudaMathOptions, {
  at::globalContext().setBenchmarkCuDNN(B(0));
  at::globalContext().setAllowTF32CuDNN(B(1));
  at::globalContext().setAllowTF32CuBLAS(info.Length() > 3 && !info[3].IsUndefined() ? B(3) : B(1));
  at::globalContext().setDeterministicCuDNN(B(2));
  return env.Undefined();
})

// cudaMathState(): {benchmark, tf32Cudnn, tf32Cublas, deterministic} as they
// are now, so that a library call that changes them can put them back.
PD_FN(cudaMathState, {
  const auto& ctx = at::globalContext();
  Napi::Object o = Napi::Object::New(env);
  o.Set("benchmark", ctx.benchmarkCuDNN());
  o.Set("tf32Cudnn", ctx.allowTF32CuDNN());
  o.Set("tf32Cublas", ctx.allowTF32CuBLAS());
  o.Set("deterministic", ctx.deterministicCuDNN());
  return o;
})

PD_FN(cudaResetPeakMemory, {
#ifdef PD_WITH_CUDA_RUNTIME
  c10::cuda::CUDACachingAllocator::resetPeakStats(deviceIndex(info, 0));
#endif
  return env.Undefined();
})

}  // namespace pd
