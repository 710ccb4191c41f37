// Shared plumbing of the addon: how a libtorch tensor lives inside a JS value,
// how arguments are read from a call, and how libtorch errors become JS errors.
//
// A tensor crosses to JS as a Napi::External<TensorBox>. The box owns one
// at::Tensor; dispose() resets it (freeing the storage at once), and the GC
// finaliser deletes the box. Every native function reads its arguments through
// the helpers below, which check types and name the argument on failure.
#pragma once

#include <napi.h>
#include <ATen/ATen.h>
// Headers the translation units need that use template parameters named T,
// D, I or B (libtorch 1.13's c10/util/variant.h): included before the
// argument shorthands at the end of this file are defined.
#include <ATen/record_function.h>
#include <torch/version.h>

// True when compiled against libtorch major.minor or newer (API guards).
#define PD_TORCH_AT_LEAST(major, minor) \
  (TORCH_VERSION_MAJOR > (major) || (TORCH_VERSION_MAJOR == (major) && TORCH_VERSION_MINOR >= (minor)))

#include <functional>
#include <string>
#include <vector>

namespace pd {

// Every External the addon hands out starts with a kind tag, so a handle of
// the wrong kind is reported instead of being misread.
enum class HandleKind : uint32_t { Tensor = 0x7e4507u, Generator = 0x6e4e12u };

struct TensorBox {
  HandleKind kind = HandleKind::Tensor;
  at::Tensor tensor;
  int64_t accounted_bytes = 0;  // bytes reported to V8 (0 while a scope owns it), given back on dispose
};

struct GeneratorBox {
  HandleKind kind = HandleKind::Generator;
  at::Generator generator;
};

// Wraps a tensor into a new JS handle (not yet reported to V8: see addon.cc).
Napi::Value wrap(Napi::Env env, at::Tensor tensor);
// Tells V8 about a handle's storage bytes, once; dispose or the finaliser
// gives them back.
void accountExternal(Napi::Env env, TensorBox* box);
Napi::Value wrapList(Napi::Env env, const std::vector<at::Tensor>& tensors);
// Frees a handle's storage now; later use throws "used after dispose".
void disposeBox(Napi::Env env, TensorBox* box);
int64_t liveTensorCount();
// Installs the caching CPU allocator (cpu_allocator.cc) unless PD_CPU_CACHE_MB=0.
void installCpuAllocator();
struct CpuCacheStats {
  bool enabled = false;
  uint64_t hits = 0, misses = 0;  // requests of 64 KiB and more, served from the cache or not
  size_t cachedBytes = 0, capBytes = 0;
  // Bytes of CPU tensor storage in use (as requested, every size), now and at
  // the peak since the start or the last resetCpuPeakMemory.
  int64_t allocatedBytes = 0, peakAllocatedBytes = 0;
};
CpuCacheStats cpuCacheStats();
void resetCpuPeakMemory();

// Thrown by argument readers; `guarded` turns it into a JS TypeError.
struct ArgError {
  std::string message;
};

// Argument readers. `i` is the position in the JS call.
// The handle itself, disposed or not (for dispose and the life-cycle calls).
TensorBox* argTensorBox(const Napi::CallbackInfo& info, size_t i);
at::Tensor argTensor(const Napi::CallbackInfo& info, size_t i);
c10::optional<at::Tensor> argOptTensor(const Napi::CallbackInfo& info, size_t i);
std::vector<at::Tensor> argTensorList(const Napi::CallbackInfo& info, size_t i);
double argDouble(const Napi::CallbackInfo& info, size_t i);
c10::optional<double> argOptDouble(const Napi::CallbackInfo& info, size_t i);
int64_t argInt(const Napi::CallbackInfo& info, size_t i);
c10::optional<int64_t> argOptInt(const Napi::CallbackInfo& info, size_t i);
bool argBool(const Napi::CallbackInfo& info, size_t i);
std::string argString(const Napi::CallbackInfo& info, size_t i);
std::vector<int64_t> argIntList(const Napi::CallbackInfo& info, size_t i);
at::ScalarType argDtype(const Napi::CallbackInfo& info, size_t i);
at::Device argDevice(const Napi::CallbackInfo& info, size_t i);
at::Generator& argGenerator(const Napi::CallbackInfo& info, size_t i);

std::string dtypeName(at::ScalarType t);
// "[2, 3] float32" for a tensor; used in error messages.
std::string describeTensor(const at::Tensor& t);

// Runs `body`, converting every libtorch/argument error into a JS Error whose
// message names the op and describes each argument (shapes and dtypes of
// tensors, values of numbers). Never lets a C++ exception reach N-API.
Napi::Value guarded(const Napi::CallbackInfo& info, const char* op,
                    const std::function<Napi::Value()>& body);

// Registry so each translation unit adds its own functions to the module.
using NativeFn = Napi::Value (*)(const Napi::CallbackInfo&);
struct Registration {
  Registration(const char* name, NativeFn fn);
};
void registerAll(Napi::Env env, Napi::Object exports);

}  // namespace pd

// Defines and registers a native function `name` whose body is an expression
// (or a block via a lambda) evaluated with `info` and `env` in scope.
#define PD_FN(name, ...)                                                        \
  static Napi::Value pd_fn_##name(const Napi::CallbackInfo& info) {             \
    return ::pd::guarded(info, #name, [&]() -> Napi::Value {                     \
      Napi::Env env = info.Env();                                               \
      (void)env;                                                                \
      __VA_ARGS__                                                               \
    });                                                                         \
  }                                                                             \
  static ::pd::Registration pd_reg_##name(#name, &pd_fn_##name);

// Shorthands for the common argument kinds, for use inside PD_FN bodies.
#define T(i) ::pd::argTensor(info, i)
#define OT(i) ::pd::argOptTensor(info, i)
#define TL(i) ::pd::argTensorList(info, i)
#define D(i) ::pd::argDouble(info, i)
#define I(i) ::pd::argInt(info, i)
#define B(i) ::pd::argBool(info, i)
#define IL(i) ::pd::argIntList(info, i)
#define WRAP(expr) return ::pd::wrap(env, (expr));
