// Data-parallel collectives on libtorch's own c10d: a TCPStore for the
// rendezvous and a Gloo process group for the collectives (CPU tensors), or,
// in a CUDA build with NCCL's headers (PD_WITH_NCCL), an NCCL process group
// (CUDA tensors). A tensor that is not on the backend's device (a CUDA
// gradient under Gloo, a CPU statistic under NCCL) travels as a copy there
// and is written back after the collective.
// The TypeScript side (src/distributed) decides what to reduce and when; this file
// only joins the group and runs the collectives, blocking until each is done.
//
// One group per process. It is never destroyed: Gloo has no abort, and
// ~ProcessGroupGloo waits for its queued work, which never finishes when a
// peer is gone. After any collective fails the group is marked broken and
// every later call repeats the first error, so the process can only exit.
//
// The c10d headers come before common.h: libtorch 1.13's headers use template
// parameters named like common.h's argument shorthands (T, D, I, B).
#include <torch/version.h>
#if defined(PD_WITH_GLOO) || defined(PD_WITH_NCCL)
#define PD_WITH_DIST 1
#include <torch/csrc/distributed/c10d/PrefixStore.hpp>
#include <torch/csrc/distributed/c10d/TCPStore.hpp>
#endif
#ifdef PD_WITH_GLOO
#include <torch/csrc/distributed/c10d/ProcessGroupGloo.hpp>
#endif
#ifdef PD_WITH_NCCL
#include <c10/cuda/CUDAFunctions.h>
#include <torch/csrc/distributed/c10d/ProcessGroupNCCL.hpp>
#endif

#include "common.h"

#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <memory>
#include <mutex>
#include <thread>
#include <unistd.h>

namespace pd {
#ifdef PD_WITH_DIST
namespace {

// The collective interface is c10d::ProcessGroup in 1.x and c10d::Backend in
// 2.x (where ProcessGroup became a wrapper over several backends).
#if PD_TORCH_AT_LEAST(2, 0)
using Comm = c10d::Backend;
#else
using Comm = c10d::ProcessGroup;
#endif

struct Group {
  c10::intrusive_ptr<c10d::Store> store;
  c10::intrusive_ptr<Comm> comm;
  int rank = 0;
  int world = 1;
  std::string backend;          // "gloo" or "nccl"
  at::Device device{at::kCPU};  // where the backend's collectives run
  std::string broken;  // the first collective error, once one happened
};

Group* g_group = nullptr;  // deliberately leaked (see the top of the file)

Group& group(const char* op) {
  if (!g_group) throw ArgError{std::string(op) + ": no process group (call distInit first)"};
  if (!g_group->broken.empty())
    throw std::runtime_error("the process group is unusable after an earlier failure: " + g_group->broken);
  return *g_group;
}

// Waits for every work item; the first failure breaks the group for good.
void waitAll(Group& g, std::vector<c10::intrusive_ptr<c10d::Work>>& works) {
  try {
    for (auto& w : works) w->wait();
  } catch (const c10::Error& e) {
    std::string msg = e.what_without_backtrace();
    size_t cut = msg.find("\nException raised from");
    g.broken = cut == std::string::npos ? msg : msg.substr(0, cut);
    throw;
  } catch (const std::exception& e) {
    g.broken = e.what();
    throw;
  }
}

// Bounds the rendezvous even where c10d's own timeouts do not: a TCPStore
// client of one libtorch talking to a store server of another (torchrun's
// agent store from PyTorch 2.x, this addon on 1.13) waits forever. If the join
// has not finished `ms` after it began, the process prints `message` and exits.
class JoinWatchdog {
 public:
  JoinWatchdog(int64_t ms, std::string message) : state_(std::make_shared<State>()) {
    std::thread([state = state_, ms, message = std::move(message)] {
      std::unique_lock<std::mutex> lock(state->mutex);
      if (!state->cv.wait_for(lock, std::chrono::milliseconds(ms), [&] { return state->done; })) {
        std::fprintf(stderr, "error: %s\n", message.c_str());
        std::fflush(stderr);
        _exit(1);
      }
    }).detach();
  }
  ~JoinWatchdog() {
    std::lock_guard<std::mutex> lock(state_->mutex);
    state_->done = true;
    state_->cv.notify_all();
  }

 private:
  struct State {
    std::mutex mutex;
    std::condition_variable cv;
    bool done = false;
  };
  std::shared_ptr<State> state_;
};

at::Tensor checkedContiguous(const at::Tensor& t, const char* op) {
  if (!t.is_contiguous()) throw ArgError{std::string(op) + ": tensor must be contiguous, got " + describeTensor(t)};
  return t.detach();  // shares storage; the collective writes in place without autograd's version checks
}

// The buffer a collective runs on: the tensor itself when it is dense and on
// the backend's device, else a dense copy there (channels-last weights, a CUDA
// tensor under Gloo, a CPU one under NCCL), written back by writeBack.
at::Tensor staged(const Group& g, const at::Tensor& t) {
  return t.detach().to(g.device, /*non_blocking=*/false, /*copy=*/false, at::MemoryFormat::Contiguous);
}
void writeBack(const at::Tensor& original, const at::Tensor& buffer) {
  if (buffer.data_ptr() != original.data_ptr() || buffer.device() != original.device()) original.detach().copy_(buffer);
}

}  // namespace

// distInit(masterAddr, masterPort, rank, worldSize, joinTimeoutMs, hostStore, storePrefix, deviceHost, ifname, timeoutMs, stuckMessage, backend, cudaDevice)
// Joins the group: rank 0 hosts the TCPStore unless an agent (torchrun's
// TORCHELASTIC_USE_AGENT_STORE) does; every rank waits for all `worldSize`
// to arrive, up to `joinTimeoutMs`; each collective may take up to `timeoutMs`. Gloo's sockets bind to `ifname` when given,
// else to the address `deviceHost` names, else to what the hostname resolves to.
// `backend` is "gloo" (the default) or "nccl" (which runs on CUDA device
// `cudaDevice`, made this process's current one).
PD_FN(distInit, {
  if (g_group) throw ArgError{"distInit: this process already joined a group"};
  std::string addr = ::pd::argString(info, 0);
  int64_t port = I(1), rank = I(2), world = I(3), joinTimeoutMs = I(4), timeoutMs = I(9);
  bool hostStore = B(5);
  std::string prefix = ::pd::argString(info, 6), deviceHost = ::pd::argString(info, 7), ifname = ::pd::argString(info, 8);
  if (port < 0 || port > 65535) throw ArgError{"distInit: port " + std::to_string(port) + " is not in 0..65535"};
  if (world < 1 || rank < 0 || rank >= world)
    throw ArgError{"distInit: need 0 <= rank < worldSize, got rank " + std::to_string(rank) + ", worldSize " + std::to_string(world)};
  if (timeoutMs <= 0 || joinTimeoutMs <= 0) throw ArgError{"distInit: timeouts must be positive"};
  auto timeout = std::chrono::milliseconds(timeoutMs);
  std::string backend = info.Length() > 11 && info[11].IsString() ? ::pd::argString(info, 11) : "gloo";
  int64_t cudaDevice = info.Length() > 12 && info[12].IsNumber() ? I(12) : 0;
  (void)cudaDevice;  // used by NCCL only
#ifndef PD_WITH_GLOO
  if (backend == "gloo") throw ArgError{"distInit: this build has no Gloo (gloo's headers were missing when the addon was built)"};
#endif
#ifndef PD_WITH_NCCL
  if (backend == "nccl") throw ArgError{"distInit: this build has no NCCL (it needs a CUDA libtorch with NCCL's and the CUDA runtime's headers at build time)"};
#endif
  if (backend != "gloo" && backend != "nccl") throw ArgError{"distInit: backend '" + backend + "': expected gloo or nccl"};
#ifdef PD_WITH_NCCL
  if (backend == "nccl" && (cudaDevice < 0 || cudaDevice >= c10::cuda::device_count()))
    throw ArgError{"distInit: CUDA device " + std::to_string(cudaDevice) + " is not visible (" + std::to_string(c10::cuda::device_count()) + " GPU(s))"};
#endif
  // c10d's own timeouts answer first when they work; the watchdog only for when they do not.
  JoinWatchdog watchdog(joinTimeoutMs + 10000, ::pd::argString(info, 10));

  c10d::TCPStoreOptions so;
  so.port = static_cast<uint16_t>(port);
  so.isServer = hostStore;
  so.numWorkers = static_cast<size_t>(world);
  so.waitWorkers = true;
  so.timeout = std::chrono::milliseconds(joinTimeoutMs);
  auto tcp = c10::make_intrusive<c10d::TCPStore>(addr, so);
  auto g = std::make_unique<Group>();
  g->store = c10::make_intrusive<c10d::PrefixStore>(prefix, tcp);

  g->backend = backend;
#ifdef PD_WITH_NCCL
  if (backend == "nccl") {
    c10::cuda::set_device(static_cast<c10::DeviceIndex>(cudaDevice));
    g->device = at::Device(at::kCUDA, static_cast<c10::DeviceIndex>(cudaDevice));
    auto opts = c10d::ProcessGroupNCCL::Options::create();
    opts->timeout = timeout;
    g->comm = c10::make_intrusive<c10d::ProcessGroupNCCL>(g->store, static_cast<int>(rank), static_cast<int>(world), opts);
  }
#endif
#ifdef PD_WITH_GLOO
  if (backend == "gloo") {
    auto opts = c10d::ProcessGroupGloo::Options::create(timeout);
    if (!ifname.empty()) opts->devices.push_back(c10d::ProcessGroupGloo::createDeviceForInterface(ifname));
    else if (!deviceHost.empty()) opts->devices.push_back(c10d::ProcessGroupGloo::createDeviceForHostname(deviceHost));
    else opts->devices.push_back(c10d::ProcessGroupGloo::createDefaultDevice());
    g->comm = c10::make_intrusive<c10d::ProcessGroupGloo>(g->store, static_cast<int>(rank), static_cast<int>(world), opts);
  }
#endif
  g->rank = static_cast<int>(rank);
  g->world = static_cast<int>(world);
  g_group = g.release();
  return env.Undefined();
})

// distAllreduceSum(tensor): sums a contiguous tensor over all ranks, in place.
PD_FN(distAllreduceSum, {
  Group& g = group("distAllreduceSum");
  at::Tensor t = checkedContiguous(T(0), "distAllreduceSum");
  std::vector<at::Tensor> one{staged(g, t)};
  std::vector<c10::intrusive_ptr<c10d::Work>> works{g.comm->allreduce(one)};
  waitAll(g, works);
  writeBack(t, one[0]);
  return env.Undefined();
})

// distBroadcast(tensors, root): every tensor takes root's values, in place.
PD_FN(distBroadcast, {
  Group& g = group("distBroadcast");
  auto tensors = TL(0);
  int64_t root = I(1);
  if (root < 0 || root >= g.world) throw ArgError{"distBroadcast: root " + std::to_string(root) + " is not a rank"};
  std::vector<std::vector<at::Tensor>> lists;
  lists.reserve(tensors.size());
  std::vector<c10::intrusive_ptr<c10d::Work>> works;
  c10d::BroadcastOptions bo;
  bo.rootRank = root;
  for (const auto& t : tensors) {
    lists.push_back({staged(g, t)});
    works.push_back(g.comm->broadcast(lists.back(), bo));
  }
  waitAll(g, works);
  for (size_t k = 0; k < tensors.size(); ++k) writeBack(tensors[k], lists[k][0]);
  return env.Undefined();
})

// distAverageGradients(params, bucketBytes): DDP's gradient step. The
// parameters' gradients (zeros where a parameter got none) are packed into
// flat buckets of at most bucketBytes, in parameter order, so every rank
// issues the same collectives; all buckets are summed concurrently, divided
// by the world size (Gloo in 1.13 has no AVG) and copied back. The buckets are
// built on the parameters' device and reduced on the backend's.
PD_FN(distAverageGradients, {
  Group& g = group("distAverageGradients");
  auto params = TL(0);
  int64_t cap = I(1);
  if (cap <= 0) throw ArgError{"distAverageGradients: bucketBytes must be positive"};
  std::vector<std::vector<size_t>> members;
  int64_t filled = cap;
  at::ScalarType dtype = at::kFloat;
  for (size_t k = 0; k < params.size(); ++k) {
    at::Tensor& p = params[k];
    if (!p.grad().defined()) p.mutable_grad() = at::zeros_like(p, at::MemoryFormat::Contiguous);
    int64_t bytes = p.numel() * static_cast<int64_t>(p.element_size());
    if (members.empty() || filled + bytes > cap || p.scalar_type() != dtype || p.device() != params[members.back().front()].device()) {
      members.emplace_back();
      filled = 0;
      dtype = p.scalar_type();
    }
    members.back().push_back(k);
    filled += bytes;
  }
  std::vector<std::vector<at::Tensor>> flats;
  flats.reserve(members.size());
  std::vector<c10::intrusive_ptr<c10d::Work>> works;
  for (const auto& m : members) {
    std::vector<at::Tensor> pieces;
    pieces.reserve(m.size());
    for (size_t k : m) pieces.push_back(params[k].grad().reshape({-1}));
    flats.push_back({staged(g, at::cat(pieces))});
    works.push_back(g.comm->allreduce(flats.back()));
  }
  waitAll(g, works);
  for (size_t b = 0; b < members.size(); ++b) {
    at::Tensor& flat = flats[b][0];
    flat.div_(g.world);
    int64_t at = 0;
    at::Tensor local = flat.to(params[members[b].front()].device());
    for (size_t k : members[b]) {
      at::Tensor grad = params[k].mutable_grad();
      grad.copy_(local.narrow(0, at, grad.numel()).view(grad.sizes()));
      at += grad.numel();
    }
  }
  return Napi::Number::New(env, static_cast<double>(members.size()));
})

// distBarrier(): returns once every rank has called it.
PD_FN(distBarrier, {
  Group& g = group("distBarrier");
  std::vector<c10::intrusive_ptr<c10d::Work>> works{g.comm->barrier()};
  waitAll(g, works);
  return env.Undefined();
})

#else  // built without gloo's or NCCL's headers: the functions exist and say why they cannot work

const char* const kNoGloo =
    "this build has no distributed training: gloo's headers were missing when the addon was built "
    "(apt-get install libgloo-dev, then npm run build:native)";
#define PD_NO_GLOO(name) \
  PD_FN(name, throw std::runtime_error(kNoGloo);) \
  static_assert(true, "")
PD_NO_GLOO(distInit);
PD_NO_GLOO(distAllreduceSum);
PD_NO_GLOO(distBroadcast);
PD_NO_GLOO(distAverageGradients);
PD_NO_GLOO(distBarrier);
#endif

#ifdef PD_WITH_GLOO
constexpr bool kWithGloo = true;
#else
constexpr bool kWithGloo = false;
#endif
#ifdef PD_WITH_NCCL
constexpr bool kWithNccl = true;
#else
constexpr bool kWithNccl = false;
#endif

// distAvailable(): whether this build can join a group at all (Gloo or NCCL).
PD_FN(distAvailable, return Napi::Boolean::New(env, kWithGloo || kWithNccl);)
// distBackends(): the process-group backends this build has, of "gloo" and "nccl".
PD_FN(distBackends, {
  Napi::Array out = Napi::Array::New(env);
  if (kWithGloo) out.Set(out.Length(), Napi::String::New(env, "gloo"));
  if (kWithNccl) out.Set(out.Length(), Napi::String::New(env, "nccl"));
  return out;
})

}  // namespace pd
