// Tensor life cycle: creation (from JS buffers, constants, seeded random
// draws), metadata, reading data back, devices, threads, views and indexing.
#include "common.h"

#include <ATen/CPUGeneratorImpl.h>
#include <ATen/Parallel.h>
#include <ATen/Context.h>
#include <torch/cuda.h>
#include <ATen/Version.h>

#include <cstring>
#include <dlfcn.h>

namespace pd {

static at::TensorOptions opts(at::ScalarType dtype, at::Device device = at::kCPU) {
  return at::TensorOptions().dtype(dtype).device(device);
}

static at::Device deviceOr(const Napi::CallbackInfo& info, size_t i) {
  if (i >= info.Length() || info[i].IsUndefined() || info[i].IsNull()) return at::kCPU;
  return argDevice(info, i);
}

// ---- life cycle and metadata ----------------------------------------------------

PD_FN(dispose, {
  disposeBox(env, argTensorBox(info, 0));
  return env.Undefined();
})

PD_FN(accountExternal, {
  accountExternal(env, argTensorBox(info, 0));
  return env.Undefined();
})

PD_FN(isDisposed, return Napi::Boolean::New(env, !argTensorBox(info, 0)->tensor.defined());)

PD_FN(liveTensors, return Napi::Number::New(env, static_cast<double>(liveTensorCount()));)

PD_FN(cpuCacheStats, {
  CpuCacheStats s = cpuCacheStats();
  Napi::Object out = Napi::Object::New(env);
  out.Set("enabled", s.enabled);
  out.Set("hits", static_cast<double>(s.hits));
  out.Set("misses", static_cast<double>(s.misses));
  out.Set("cachedBytes", static_cast<double>(s.cachedBytes));
  out.Set("capBytes", static_cast<double>(s.capBytes));
  out.Set("allocatedBytes", static_cast<double>(s.allocatedBytes));
  out.Set("peakAllocatedBytes", static_cast<double>(s.peakAllocatedBytes));
  return out;
})

// cpuResetPeakMemory(): the peak of cpuCacheStats starts again from the bytes in use now.
PD_FN(cpuResetPeakMemory, {
  resetCpuPeakMemory();
  return env.Undefined();
})

// V8's own running total of external memory (every addon's reports, not just ours).
PD_FN(externalMemory, return Napi::Number::New(env, static_cast<double>(Napi::MemoryManagement::AdjustExternalMemory(env, 0)));)

PD_FN(shape, {
  at::Tensor t = T(0);
  Napi::Array out = Napi::Array::New(env, t.dim());
  for (int64_t d = 0; d < t.dim(); ++d) out.Set(static_cast<uint32_t>(d), Napi::Number::New(env, static_cast<double>(t.size(d))));
  return out;
})

PD_FN(dtype, return Napi::String::New(env, dtypeName(T(0).scalar_type()));)
PD_FN(device, return Napi::String::New(env, T(0).device().str());)
PD_FN(requiresGrad, return Napi::Boolean::New(env, T(0).requires_grad());)
PD_FN(isContiguous, return Napi::Boolean::New(env, T(0).is_contiguous());)
PD_FN(describe, return Napi::String::New(env, describeTensor(T(0)));)

// ---- creation ---------------------------------------------------------------------

static size_t bytesPerElement(at::ScalarType t) { return c10::elementSize(t); }

// fromBuffer(typedArray, shape, dtype): copies the bytes into a new tensor.
PD_FN(fromBuffer, {
  if (info.Length() < 1 || !info[0].IsTypedArray()) throw ArgError{"argument 0 must be a typed array"};
  Napi::TypedArray arr = info[0].As<Napi::TypedArray>();
  std::vector<int64_t> shape = IL(1);
  at::ScalarType dtype = argDtype(info, 2);
  int64_t numel = 1;
  for (int64_t s : shape) {
    if (s < 0) throw ArgError{"shape has a negative size"};
    numel *= s;
  }
  size_t bytes = arr.ByteLength();
  if (bytes != static_cast<size_t>(numel) * bytesPerElement(dtype))
    throw ArgError{"buffer holds " + std::to_string(bytes) + " bytes but shape needs " +
                   std::to_string(numel) + " × " + std::to_string(bytesPerElement(dtype)) + " bytes"};
  at::Tensor t = at::empty(shape, opts(dtype));
  if (bytes) {
    auto* src = static_cast<uint8_t*>(arr.ArrayBuffer().Data()) + arr.ByteOffset();
    std::memcpy(t.data_ptr(), src, bytes);
  }
  WRAP(t)
})

// toBuffer(t): a copy of the data as an ArrayBuffer (contiguous, on the CPU).
PD_FN(toBuffer, {
  at::Tensor t = T(0).detach().to(at::kCPU).contiguous();
  size_t bytes = static_cast<size_t>(t.numel()) * t.element_size();
  Napi::ArrayBuffer buf = Napi::ArrayBuffer::New(env, bytes);
  if (bytes) std::memcpy(buf.Data(), t.data_ptr(), bytes);
  return buf;
})

PD_FN(item, {
  at::Tensor t = T(0);
  if (t.numel() != 1) throw ArgError{"item() needs a tensor of one element, got " + describeTensor(t)};
  return Napi::Number::New(env, t.item<double>());
})

PD_FN(scalarTensor, WRAP(at::scalar_tensor(D(0), opts(argDtype(info, 1), deviceOr(info, 2)))))
PD_FN(zeros, WRAP(at::zeros(IL(0), opts(argDtype(info, 1), deviceOr(info, 2)))))
PD_FN(ones, WRAP(at::ones(IL(0), opts(argDtype(info, 1), deviceOr(info, 2)))))
PD_FN(empty, WRAP(at::empty(IL(0), opts(argDtype(info, 1), deviceOr(info, 2)))))
PD_FN(full, WRAP(at::full(IL(0), D(1), opts(argDtype(info, 2), deviceOr(info, 3)))))
PD_FN(arange, WRAP(at::arange(D(0), D(1), D(2), opts(argDtype(info, 3), deviceOr(info, 4)))))
PD_FN(linspace, WRAP(at::linspace(D(0), D(1), I(2), opts(argDtype(info, 3), deviceOr(info, 4)))))
PD_FN(zerosLike, WRAP(at::zeros_like(T(0))))
PD_FN(onesLike, WRAP(at::ones_like(T(0))))
PD_FN(fullLike, WRAP(at::full_like(T(0), D(1))))

// ---- seeded random draws --------------------------------------------------------------
// Draws always come from an explicit CPU generator and are then moved to the
// target device, so a seed gives the same numbers on every device.

static void finalizeGenerator(Napi::BasicEnv, GeneratorBox* box) { delete box; }

PD_FN(generatorCreate, {
  auto* box = new GeneratorBox();
  box->generator = at::make_generator<at::CPUGeneratorImpl>(static_cast<uint64_t>(I(0)));
  return Napi::External<GeneratorBox>::New(env, box, finalizeGenerator);
})

PD_FN(generatorGetState, WRAP(argGenerator(info, 0).get_state()))
PD_FN(generatorSetState, {
  at::Generator& g = argGenerator(info, 0);
  g.set_state(T(1));
  return env.Undefined();
})

PD_FN(randn, {
  at::Generator& g = argGenerator(info, 0);
  at::Tensor t = at::randn(IL(1), g, opts(argDtype(info, 2)));
  WRAP(t.to(deviceOr(info, 3)))
})

PD_FN(rand, {
  at::Generator& g = argGenerator(info, 0);
  at::Tensor t = at::rand(IL(1), g, opts(argDtype(info, 2)));
  WRAP(t.to(deviceOr(info, 3)))
})

// randint(gen, low, high, shape, device): integers in [low, high), int64.
PD_FN(randint, {
  at::Generator& g = argGenerator(info, 0);
  at::Tensor t = at::randint(I(1), I(2), IL(3), g, opts(at::kLong));
  WRAP(t.to(deviceOr(info, 4)))
})

PD_FN(randperm, {
  at::Generator& g = argGenerator(info, 0);
  WRAP(at::randperm(I(1), g, opts(at::kLong)).to(deviceOr(info, 2)))
})

// ---- devices and threads --------------------------------------------------------------

PD_FN(to, {
  at::Tensor t = T(0);
  at::ScalarType dtype = info.Length() > 1 && info[1].IsString() ? argDtype(info, 1) : t.scalar_type();
  at::Device device = info.Length() > 2 && info[2].IsString() ? argDevice(info, 2) : t.device();
  WRAP(t.to(device, dtype))
})

// torch::cuda is libtorch's stable C++ API for these (the ATen hooks behind it
// were renamed between 1.x and 2.x); both are false/0 on a CPU-only libtorch.
PD_FN(cudaAvailable, return Napi::Boolean::New(env, torch::cuda::is_available());)
PD_FN(cudaDeviceCount, return Napi::Number::New(env, static_cast<double>(torch::cuda::device_count()));)

PD_FN(setNumThreads, {
  int64_t n = I(0);
  if (n < 1) throw ArgError{"thread count must be at least 1, got " + std::to_string(n)};
  at::set_num_threads(static_cast<int>(n));  // the BLAS pool stays as addon.cc set it
  return env.Undefined();
})
PD_FN(getNumThreads, return Napi::Number::New(env, at::get_num_threads());)
// OpenBLAS's own thread count, or -1 when the BLAS in use is not OpenBLAS.
PD_FN(blasThreads, {
  using GetBlasThreads = int (*)();
  auto fn = reinterpret_cast<GetBlasThreads>(dlsym(RTLD_DEFAULT, "openblas_get_num_threads"));
  return Napi::Number::New(env, fn ? fn() : -1);
})
PD_FN(parallelInfo, return Napi::String::New(env, at::get_parallel_info());)
// The libtorch this addon was compiled against, and its own account of how it
// was built (BLAS/MKL, oneDNN version, the CPU capability its kernels use).
PD_FN(torchVersion, return Napi::String::New(env, TORCH_VERSION);)
PD_FN(buildConfig, return Napi::String::New(env, at::show_config());)
// The file libtorch's CPU library was loaded from (which installation runs).
PD_FN(torchLibrary, {
  Dl_info where{};
  auto fn = &at::show_config;
  if (dladdr(reinterpret_cast<void*>(fn), &where) == 0 || !where.dli_fname) return env.Null();
  return Napi::String::New(env, where.dli_fname);
})
PD_FN(setDeterministic, {
  at::globalContext().setDeterministicAlgorithms(B(0), false);
  return env.Undefined();
})

// ---- views, shape and indexing -------------------------------------------------------------

PD_FN(reshape, WRAP(T(0).reshape(IL(1))))
PD_FN(view, WRAP(T(0).view(IL(1))))
PD_FN(permute, WRAP(T(0).permute(IL(1))))
PD_FN(transpose, WRAP(T(0).transpose(I(1), I(2))))
PD_FN(contiguous, WRAP(T(0).contiguous()))
PD_FN(contiguousChannelsLast, WRAP(T(0).contiguous(at::MemoryFormat::ChannelsLast)))
PD_FN(slice, WRAP(T(0).slice(I(1), argOptInt(info, 2), argOptInt(info, 3), I(4))))
PD_FN(narrow, WRAP(T(0).narrow(I(1), I(2), I(3))))
PD_FN(select, WRAP(T(0).select(I(1), I(2))))
PD_FN(squeeze, WRAP(T(0).squeeze(I(1))))
PD_FN(unsqueeze, WRAP(T(0).unsqueeze(I(1))))
PD_FN(flatten, WRAP(T(0).flatten(I(1), I(2))))
PD_FN(expand, WRAP(T(0).expand(IL(1))))
PD_FN(repeat, WRAP(T(0).repeat(IL(1))))
PD_FN(flip, WRAP(T(0).flip(IL(1))))
PD_FN(cat, WRAP(at::cat(TL(0), I(1))))
PD_FN(stack, WRAP(at::stack(TL(0), I(1))))
PD_FN(split, return wrapList(env, T(0).split(I(1), I(2)));)
PD_FN(chunk, return wrapList(env, T(0).chunk(I(1), I(2)));)
PD_FN(indexSelect, WRAP(T(0).index_select(I(1), T(2))))
PD_FN(gather, WRAP(T(0).gather(I(1), T(2))))
// libtorch 1.13 here silently ignores a floating-point mask (leaves the input
// unchanged) instead of rejecting it: insist on a bool mask.
PD_FN(maskedFill, {
  at::Tensor mask = T(1);
  if (mask.scalar_type() != at::kBool)
    throw ArgError{"maskedFill: the mask must be a bool tensor, got " + describeTensor(mask)};
  WRAP(T(0).masked_fill(mask, D(2)))
})
PD_FN(clone, WRAP(T(0).clone()))
PD_FN(detach, WRAP(T(0).detach()))
PD_FN(tril, WRAP(T(0).tril(I(1))))
PD_FN(pad, {
  std::string mode = argString(info, 2);
  at::Tensor x = T(0);
  std::vector<int64_t> p = IL(1);
  if (mode == "constant") WRAP(at::constant_pad_nd(x, p, D(3)))
  // libtorch 1.13's reflection_pad2d reads four entries without checking the
  // length (a shorter list read past the vector and crashed the process).
  if ((mode == "reflect" || mode == "replicate") && p.size() != 4)
    throw ArgError{"pad mode '" + mode + "' needs 4 padding values [left, right, top, bottom], got " + std::to_string(p.size())};
  if (mode == "reflect") WRAP(at::reflection_pad2d(x, p))
  if (mode == "replicate") WRAP(at::replication_pad2d(x, p))
  throw ArgError{"pad mode must be 'constant', 'reflect' or 'replicate', got '" + mode + "'"};
})

}  // namespace pd
