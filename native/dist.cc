// Data-parallel collectives on libtorch's own c10d: a TCPStore for the
// rendezvous and a Gloo process group for the collectives (CPU tensors).
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
#ifdef PD_WITH_GLOO
#include <torch/csrc/distributed/c10d/PrefixStore.hpp>
#include <torch/csrc/distributed/c10d/ProcessGroupGloo.hpp>
#include <torch/csrc/distributed/c10d/TCPStore.hpp>
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
#ifdef PD_WITH_GLOO
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

void requireCpu(const at::Tensor& t, const char* op) {
  if (!t.device().is_cpu()) throw ArgError{std::string(op) + ": Gloo collectives take CPU tensors, got " + describeTensor(t)};
}

at::Tensor checkedCpu(const at::Tensor& t, const char* op) {
  requireCpu(t, op);
  if (!t.is_contiguous()) throw ArgError{std::string(op) + ": tensor must be contiguous, got " + describeTensor(t)};
  return t.detach();  // shares storage; the collective writes in place without autograd's version checks
}

// Gloo needs dense row-major buffers: a tensor in another layout (channels-last
// weights) travels as a contiguous copy that is written back afterwards.
at::Tensor denseCpu(const at::Tensor& t, const char* op) {
  requireCpu(t, op);
  return t.detach().contiguous();
}

}  // namespace

// distInit(masterAddr, masterPort, rank, worldSize, joinTimeoutMs, hostStore, storePrefix, deviceHost, ifname, timeoutMs, stuckMessage)
// Joins the group: rank 0 hosts the TCPStore unless an agent (torchrun's
// TORCHELASTIC_USE_AGENT_STORE) does; every rank waits for all `worldSize`
// to arrive, up to `joinTimeoutMs`; each collective may take up to `timeoutMs`. Gloo's sockets bind to `ifname` when given,
// else to the address `deviceHost` names, else to what the hostname resolves to.
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

  auto opts = c10d::ProcessGroupGloo::Options::create(timeout);
  if (!ifname.empty()) opts->devices.push_back(c10d::ProcessGroupGloo::createDeviceForInterface(ifname));
  else if (!deviceHost.empty()) opts->devices.push_back(c10d::ProcessGroupGloo::createDeviceForHostname(deviceHost));
  else opts->devices.push_back(c10d::ProcessGroupGloo::createDefaultDevice());
  g->comm = c10::make_intrusive<c10d::ProcessGroupGloo>(g->store, static_cast<int>(rank), static_cast<int>(world), opts);
  g->rank = static_cast<int>(rank);
  g->world = static_cast<int>(world);
  g_group = g.release();
  return env.Undefined();
})

// distAllreduceSum(tensor): sums a contiguous CPU tensor over all ranks, in place.
PD_FN(distAllreduceSum, {
  Group& g = group("distAllreduceSum");
  std::vector<at::Tensor> one{checkedCpu(T(0), "distAllreduceSum")};
  std::vector<c10::intrusive_ptr<c10d::Work>> works{g.comm->allreduce(one)};
  waitAll(g, works);
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
    lists.push_back({denseCpu(t, "distBroadcast")});
    works.push_back(g.comm->broadcast(lists.back(), bo));
  }
  waitAll(g, works);
  for (size_t k = 0; k < tensors.size(); ++k)
    if (lists[k][0].data_ptr() != tensors[k].data_ptr()) tensors[k].detach().copy_(lists[k][0]);
  return env.Undefined();
})

// distAverageGradients(params, bucketBytes): DDP's gradient step. The
// parameters' gradients (zeros where a parameter got none) are packed into
// flat buckets of at most bucketBytes, in parameter order, so every rank
// issues the same collectives; all buckets are summed concurrently, divided
// by the world size (Gloo in 1.13 has no AVG) and copied back.
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
    if (!p.device().is_cpu()) throw ArgError{"distAverageGradients: parameter " + std::to_string(k) + " is not on the CPU (" + describeTensor(p) + ")"};
    if (!p.grad().defined()) p.mutable_grad() = at::zeros_like(p, at::MemoryFormat::Contiguous);
    int64_t bytes = p.numel() * static_cast<int64_t>(p.element_size());
    if (members.empty() || filled + bytes > cap || p.scalar_type() != dtype) {
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
    flats.push_back({at::cat(pieces)});
    works.push_back(g.comm->allreduce(flats.back()));
  }
  waitAll(g, works);
  for (size_t b = 0; b < members.size(); ++b) {
    at::Tensor& flat = flats[b][0];
    flat.div_(g.world);
    int64_t at = 0;
    for (size_t k : members[b]) {
      at::Tensor grad = params[k].mutable_grad();
      grad.copy_(flat.narrow(0, at, grad.numel()).view(grad.sizes()));
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

constexpr bool kWithGloo = true;

#else  // built without gloo's headers: the functions exist and say why they cannot work

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
constexpr bool kWithGloo = false;
#endif

PD_FN(distAvailable, return Napi::Boolean::New(env, kWithGloo);)

}  // namespace pd
