// Module entry and the shared plumbing declared in common.h: handles,
// argument readers and the error guard.
#include "common.h"

#include <ATen/Parallel.h>
#include <c10/util/Exception.h>

#include <dlfcn.h>

#include <atomic>
#include <cstdlib>
#include <sstream>

#if defined(__GLIBC__)
#include <malloc.h>
#endif

namespace pd {

static std::atomic<int64_t> g_live_tensors{0};
int64_t liveTensorCount() { return g_live_tensors.load(); }

static int64_t storageBytes(const at::Tensor& t) {
  if (!t.defined() || !t.has_storage()) return 0;
  return static_cast<int64_t>(t.storage().nbytes());
}

// A "basic" finaliser (no JS allowed inside) runs during GC itself rather than
// on a later event-loop turn, so a synchronous loop cannot pile up handles.
static void finalizeBox(Napi::BasicEnv env, TensorBox* box) {
  if (box->tensor.defined()) {
    if (box->accounted_bytes != 0) Napi::MemoryManagement::AdjustExternalMemory(env, -box->accounted_bytes);
    g_live_tensors--;
  }
  delete box;
}

// A new handle is not yet reported to V8: most tensors are born inside a
// scope() that frees them deterministically, and reporting those would make
// V8 see hundreds of MB come and go every training step and answer with a
// mark-compact per step, whose concurrent marking thread then stalls the
// OpenMP team. The JS side calls accountExternal when a handle passes into
// the GC's keeping (created outside any scope, or escaping the outermost one).
Napi::Value wrap(Napi::Env env, at::Tensor tensor) {
  auto* box = new TensorBox();
  box->tensor = std::move(tensor);
  g_live_tensors++;
  return Napi::External<TensorBox>::New(env, box, finalizeBox);
}

void accountExternal(Napi::Env env, TensorBox* box) {
  if (!box->tensor.defined() || box->accounted_bytes != 0) return;
  box->accounted_bytes = storageBytes(box->tensor);
  Napi::MemoryManagement::AdjustExternalMemory(env, box->accounted_bytes);
}

Napi::Value wrapList(Napi::Env env, const std::vector<at::Tensor>& tensors) {
  Napi::Array out = Napi::Array::New(env, tensors.size());
  for (size_t k = 0; k < tensors.size(); ++k) out.Set(static_cast<uint32_t>(k), wrap(env, tensors[k]));
  return out;
}

void disposeBox(Napi::Env env, TensorBox* box) {
  if (!box->tensor.defined()) return;
  if (box->accounted_bytes != 0) Napi::MemoryManagement::AdjustExternalMemory(env, -box->accounted_bytes);
  box->accounted_bytes = 0;
  box->tensor = at::Tensor();
  g_live_tensors--;
}

// ---- argument readers -------------------------------------------------------

static std::string argPos(size_t i) { return "argument " + std::to_string(i); }

TensorBox* argTensorBox(const Napi::CallbackInfo& info, size_t i) {
  if (i >= info.Length() || !info[i].IsExternal())
    throw ArgError{argPos(i) + " must be a Tensor"};
  auto* box = info[i].As<Napi::External<TensorBox>>().Data();
  if (box->kind != HandleKind::Tensor) throw ArgError{argPos(i) + " must be a Tensor"};
  return box;
}

at::Tensor argTensor(const Napi::CallbackInfo& info, size_t i) {
  TensorBox* box = argTensorBox(info, i);
  if (!box->tensor.defined()) throw ArgError{argPos(i) + ": tensor used after dispose()"};
  return box->tensor;
}

c10::optional<at::Tensor> argOptTensor(const Napi::CallbackInfo& info, size_t i) {
  if (i >= info.Length() || info[i].IsNull() || info[i].IsUndefined()) return c10::nullopt;
  return argTensor(info, i);
}

std::vector<at::Tensor> argTensorList(const Napi::CallbackInfo& info, size_t i) {
  if (i >= info.Length() || !info[i].IsArray()) throw ArgError{argPos(i) + " must be an array of Tensors"};
  Napi::Array arr = info[i].As<Napi::Array>();
  std::vector<at::Tensor> out;
  out.reserve(arr.Length());
  for (uint32_t k = 0; k < arr.Length(); ++k) {
    Napi::Value v = arr.Get(k);
    if (!v.IsExternal()) throw ArgError{argPos(i) + "[" + std::to_string(k) + "] must be a Tensor"};
    auto* box = v.As<Napi::External<TensorBox>>().Data();
    if (box->kind != HandleKind::Tensor) throw ArgError{argPos(i) + "[" + std::to_string(k) + "] must be a Tensor"};
    if (!box->tensor.defined())
      throw ArgError{argPos(i) + "[" + std::to_string(k) + "]: tensor used after dispose()"};
    out.push_back(box->tensor);
  }
  return out;
}

double argDouble(const Napi::CallbackInfo& info, size_t i) {
  if (i >= info.Length() || !info[i].IsNumber()) throw ArgError{argPos(i) + " must be a number"};
  return info[i].As<Napi::Number>().DoubleValue();
}

c10::optional<double> argOptDouble(const Napi::CallbackInfo& info, size_t i) {
  if (i >= info.Length() || info[i].IsNull() || info[i].IsUndefined()) return c10::nullopt;
  return argDouble(info, i);
}

int64_t argInt(const Napi::CallbackInfo& info, size_t i) {
  double v = argDouble(info, i);
  if (v != static_cast<double>(static_cast<int64_t>(v)))
    throw ArgError{argPos(i) + " must be an integer, got " + std::to_string(v)};
  return static_cast<int64_t>(v);
}

c10::optional<int64_t> argOptInt(const Napi::CallbackInfo& info, size_t i) {
  if (i >= info.Length() || info[i].IsNull() || info[i].IsUndefined()) return c10::nullopt;
  return argInt(info, i);
}

bool argBool(const Napi::CallbackInfo& info, size_t i) {
  if (i >= info.Length() || !info[i].IsBoolean()) throw ArgError{argPos(i) + " must be a boolean"};
  return info[i].As<Napi::Boolean>().Value();
}

std::string argString(const Napi::CallbackInfo& info, size_t i) {
  if (i >= info.Length() || !info[i].IsString()) throw ArgError{argPos(i) + " must be a string"};
  return info[i].As<Napi::String>().Utf8Value();
}

std::vector<int64_t> argIntList(const Napi::CallbackInfo& info, size_t i) {
  if (i >= info.Length() || !info[i].IsArray()) throw ArgError{argPos(i) + " must be an array of integers"};
  Napi::Array arr = info[i].As<Napi::Array>();
  std::vector<int64_t> out(arr.Length());
  for (uint32_t k = 0; k < arr.Length(); ++k) {
    Napi::Value v = arr.Get(k);
    if (!v.IsNumber()) throw ArgError{argPos(i) + "[" + std::to_string(k) + "] must be an integer"};
    double d = v.As<Napi::Number>().DoubleValue();
    if (d != static_cast<double>(static_cast<int64_t>(d)))
      throw ArgError{argPos(i) + "[" + std::to_string(k) + "] must be an integer, got " + std::to_string(d)};
    out[k] = static_cast<int64_t>(d);
  }
  return out;
}

static const std::pair<const char*, at::ScalarType> kDtypes[] = {
    {"float32", at::kFloat}, {"float64", at::kDouble}, {"float16", at::kHalf},
    {"bfloat16", at::kBFloat16}, {"int64", at::kLong}, {"int32", at::kInt},
    {"uint8", at::kByte}, {"bool", at::kBool},
};

at::ScalarType argDtype(const Napi::CallbackInfo& info, size_t i) {
  std::string name = argString(info, i);
  for (const auto& d : kDtypes)
    if (name == d.first) return d.second;
  throw ArgError{argPos(i) + ": unknown dtype '" + name + "'"};
}

std::string dtypeName(at::ScalarType t) {
  for (const auto& d : kDtypes)
    if (t == d.second) return d.first;
  return c10::toString(t);
}

at::Device argDevice(const Napi::CallbackInfo& info, size_t i) {
  std::string name = argString(info, i);
  try {
    return at::Device(name);
  } catch (const c10::Error&) {
    throw ArgError{argPos(i) + ": unknown device '" + name + "' (expected 'cpu', 'cuda' or 'cuda:N')"};
  }
}

at::Generator& argGenerator(const Napi::CallbackInfo& info, size_t i) {
  if (i >= info.Length() || !info[i].IsExternal()) throw ArgError{argPos(i) + " must be a Generator"};
  auto* box = info[i].As<Napi::External<GeneratorBox>>().Data();
  if (box->kind != HandleKind::Generator) throw ArgError{argPos(i) + " must be a Generator"};
  return box->generator;
}

std::string describeTensor(const at::Tensor& t) {
  std::ostringstream os;
  os << "Tensor[";
  for (int64_t d = 0; d < t.dim(); ++d) os << (d ? ", " : "") << t.size(d);
  os << "] " << dtypeName(t.scalar_type());
  if (!t.device().is_cpu()) os << " on " << t.device().str();
  return os.str();
}

static std::string describeValue(const Napi::Value& v, int depth = 0) {
  if (v.IsExternal()) {
    auto* tag = static_cast<HandleKind*>(v.As<Napi::External<void>>().Data());
    if (*tag == HandleKind::Generator) return "Generator";
    auto* box = reinterpret_cast<TensorBox*>(tag);
    return box->tensor.defined() ? describeTensor(box->tensor) : "Tensor(disposed)";
  }
  if (v.IsNumber()) {
    std::ostringstream os;
    os << v.As<Napi::Number>().DoubleValue();
    return os.str();
  }
  if (v.IsBoolean()) return v.As<Napi::Boolean>().Value() ? "true" : "false";
  if (v.IsString()) return "'" + v.As<Napi::String>().Utf8Value() + "'";
  if (v.IsNull()) return "null";
  if (v.IsUndefined()) return "undefined";
  if (v.IsArray()) {
    Napi::Array arr = v.As<Napi::Array>();
    if (depth > 0) return "[…" + std::to_string(arr.Length()) + "]";
    std::string s = "[";
    uint32_t shown = std::min<uint32_t>(arr.Length(), 8);
    for (uint32_t k = 0; k < shown; ++k) s += (k ? ", " : "") + describeValue(arr.Get(k), depth + 1);
    if (arr.Length() > shown) s += ", …";
    return s + "]";
  }
  if (v.IsTypedArray() || v.IsArrayBuffer()) return "<buffer>";
  return "<object>";
}

static std::string describeCall(const Napi::CallbackInfo& info, const char* op) {
  std::string s = std::string(op) + "(";
  for (size_t k = 0; k < info.Length(); ++k) s += (k ? ", " : "") + describeValue(info[k]);
  return s + ")";
}

// First line of a libtorch message: the rest is a C++ backtrace users cannot act on.
static std::string firstLines(const std::string& msg) {
  size_t cut = msg.find("\nException raised from");
  std::string s = cut == std::string::npos ? msg : msg.substr(0, cut);
  while (!s.empty() && (s.back() == '\n' || s.back() == ' ')) s.pop_back();
  return s;
}

Napi::Value guarded(const Napi::CallbackInfo& info, const char* op,
                    const std::function<Napi::Value()>& body) {
  Napi::Env env = info.Env();
  try {
    return body();
  } catch (const Napi::Error&) {
    throw;
  } catch (const ArgError& e) {
    throw Napi::TypeError::New(env, describeCall(info, op) + ": " + e.message);
  } catch (const c10::Error& e) {
    throw Napi::Error::New(env, describeCall(info, op) + ": " + firstLines(e.what_without_backtrace()));
  } catch (const std::exception& e) {
    throw Napi::Error::New(env, describeCall(info, op) + ": " + firstLines(e.what()));
  }
}

// ---- registry -----------------------------------------------------------------

static std::vector<std::pair<const char*, NativeFn>>& registry() {
  static std::vector<std::pair<const char*, NativeFn>> fns;
  return fns;
}

Registration::Registration(const char* name, NativeFn fn) { registry().emplace_back(name, fn); }

void registerAll(Napi::Env env, Napi::Object exports) {
  for (const auto& [name, fn] : registry()) exports.Set(name, Napi::Function::New(env, fn, name));
}

}  // namespace pd

// glibc gives the free top of the heap back to the OS once it exceeds
// M_TRIM_THRESHOLD, and in the Node process that threshold stays low (in a
// plain C++ process glibc raises it as large blocks are freed). Every training
// step then returned its activations to the OS and page-faulted them back in:
// about 20% more CPU per step than the same network in C++
// (bench/train-step.ts). Keep up to 1 GiB of free heap and serve blocks up to
// 32 MiB (glibc's ceiling) from the heap, unless the user tuned malloc already.
static void tuneMalloc() {
#if defined(__GLIBC__)
  if (std::getenv("MALLOC_TRIM_THRESHOLD_") || std::getenv("MALLOC_MMAP_THRESHOLD_") || std::getenv("GLIBC_TUNABLES")) return;
  mallopt(M_MMAP_THRESHOLD, 32 << 20);
  mallopt(M_TRIM_THRESHOLD, 1 << 30);
#endif
}

// libtorch's matmuls (Linear, attention) go through the system BLAS. Debian's
// OpenBLAS (pthreads build) keeps a pool of its own, one thread per core,
// beside ATen's OpenMP pool; between calls its workers spin in sched_yield
// and take cores from the OpenMP team. With it single-threaded, training the
// quick-start model ran 45% faster and sampling 1.9× faster at 2 threads
// (RESULTS.md). OPENBLAS_NUM_THREADS, when set, is the user's to decide.
static void singleThreadedBlas() {
  if (std::getenv("OPENBLAS_NUM_THREADS")) return;
  using SetBlasThreads = void (*)(int);
  if (auto fn = reinterpret_cast<SetBlasThreads>(dlsym(RTLD_DEFAULT, "openblas_set_num_threads"))) fn(1);
}

// NNPACK (one of libtorch's CPU convolution back ends) logs "Could not
// initialize NNPACK! Reason: Unsupported hardware" on stderr every time a
// convolution asks whether it may use it, on CPUs it does not support: a
// thousand lines in a short run. (TORCH_CPP_LOG_LEVEL is read only where
// c10::initLogging runs, as Python's torch does; we run it too, so the
// variable works here as it does there.) Ask once with libtorch's log level raised
// to errors, and where it cannot start, switch it off (as
// torch.backends.nnpack.set_flags(False) would): convolutions then take the
// path they would have taken anyway, without the message. Where NNPACK works
// it stays on. PD_KEEP_NNPACK=1 skips this.
static void quietNnpack() {
#if TORCH_VERSION_MAJOR >= 2 && !defined(C10_USE_GLOG) && !defined(C10_USE_GFLAGS)
  c10::initLogging();
  if (std::getenv("PD_KEEP_NNPACK")) return;
  const int saved = FLAGS_caffe2_log_level;
  FLAGS_caffe2_log_level = c10::GLOG_ERROR;
  bool available = false;
  try {
    available = at::_nnpack_available();
  } catch (...) {
  }
  FLAGS_caffe2_log_level = saved;
  if (!available) at::globalContext().setUserEnabledNNPACK(false);
#endif
}

static Napi::Object Init(Napi::Env env, Napi::Object exports) {
  tuneMalloc();
  quietNnpack();
  singleThreadedBlas();
  pd::installCpuAllocator();
  pd::registerAll(env, exports);
  return exports;
}

NODE_API_MODULE(torch_addon, Init)
