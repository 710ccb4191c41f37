// Data-parallel collectives on libtorch's own c10d: a TCPStore for the
// rendezvous and a Gloo process group for the collectives (CPU tensors), or,
// in a CUDA build with NCCL's headers (PD_WITH_NCCL), an NCCL process group
// (CUDA tensors). A tensor that is not on the backend's device (a CUDA
// gradient under Gloo, a CPU statistic under NCCL) travels as a copy there
// and is written back after the collective.
// The TypeScript side (src/distributed) decides what to reduce and when; this file
// joins the group and runs the collectives, each blocking until it is done, but
// for the gradient all-reduce overlapped with backward (the end of the file),
// which backward starts from autograd's hooks and distAwaitGradients waits for.
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
#ifdef PD_WITH_DIST
// The overlapped all-reduce (the end of this file) hooks autograd's gradient accumulators.
#include <c10/core/Event.h>
#include <c10/core/impl/VirtualGuardImpl.h>
#include <torch/csrc/autograd/function.h>
#include <torch/csrc/autograd/function_hook.h>
#include <torch/csrc/autograd/variable.h>
#endif

#include "common.h"

#include <algorithm>
#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <memory>
#include <mutex>
#include <thread>
#include <unistd.h>
#include <unordered_set>
#include <utility>

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

// The mean of a summed bucket: divided by the world size (Gloo in 1.13 has no
// AVG) and written into its members' gradients, which it holds one after the
// other in `members` order (the bucket may live on the backend's device).
static void writeMeans(const Group& g, at::Tensor& flat, std::vector<at::Tensor>& params, const std::vector<size_t>& members) {
  flat.div_(g.world);
  at::Tensor local = flat.to(params[members.front()].device());
  int64_t at = 0;
  for (size_t k : members) {
    at::Tensor& p = params[k];
    at::Tensor& grad = p.mutable_grad();
    if (!grad.defined()) grad = at::zeros_like(p, at::MemoryFormat::Contiguous);
    grad.copy_(local.narrow(0, at, p.numel()).view(grad.sizes()));
    at += p.numel();
  }
}

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
  for (size_t b = 0; b < members.size(); ++b) writeMeans(g, flats[b][0], params, members[b]);
  return Napi::Number::New(env, static_cast<double>(members.size()));
})

// distBarrier(): returns once every rank has called it.
PD_FN(distBarrier, {
  Group& g = group("distBarrier");
  std::vector<c10::intrusive_ptr<c10d::Work>> works{g.comm->barrier()};
  waitAll(g, works);
  return env.Undefined();
})

// ---- The gradient all-reduce overlapped with backward ----------------------
// DDP's Reducer, cut down to what training needs.
//
// distBackwardOverlapped runs the last accumulation round's backward with a
// post-hook on every parameter's gradient accumulator (autograd's
// AccumulateGrad node, the hook DDP itself uses; libtorch 1.13 has it too,
// where tensors' post-accumulate-grad hooks came only in 2.1). When a hook
// fires, the parameter's gradient is final for the step, so it is copied into
// its bucket's flat buffer; a bucket whose parameters are all in is
// all-reduced at once, asynchronously (Gloo on its own threads, NCCL on its
// own stream), while backward goes on. The earlier rounds run a plain
// backward (DDP's no_sync): the hooks do nothing unless a step armed them.
// distAwaitGradients then waits for every bucket, divides by the world size
// and copies the means back into the gradients, as distAverageGradients does.
//
// Buckets follow DDP's assignment: parameters in reverse order (roughly the
// order in which backward produces their gradients); the first bucket closes
// once it holds firstBucketBytes (DDP's 1 MiB, so that the first all-reduce
// starts early), the others at bucketBytes (25 MiB); a change of dtype or
// device also starts a new bucket.
//
// Every rank must issue the same collectives in the same order (Gloo and
// NCCL pair them by sequence number), but the hooks fire in whatever order
// autograd runs on each rank. So buckets are launched strictly in index
// order: a full bucket waits until all before it have been launched.
//
// Unused parameters (DDP's find_unused_parameters): before backward, the graph
// is walked from the loss. A parameter whose accumulator it does not reach
// gets nothing from this backward, so its gradient (from the earlier rounds,
// or zeros) is final already and goes in at once. Whatever has still not come
// in when backward returns goes in then, and the remaining buckets are
// launched, in order: a step can lose overlap, but it cannot hang.
//
// Hooks run on autograd's threads (the caller's for CPU work, one thread per
// GPU for CUDA work), hence the mutex and the C++-only path. On a GPU each
// copy is queued on the stream current in the hook; before a bucket is
// launched, the launching thread's current stream waits for every stream the
// bucket's copies were queued on, since NCCL orders its stream after the
// launching thread's current stream only. Waiting (Work::wait) in turn orders
// the waiting thread's current stream after the collective, so the division
// and the copies back, and then the optimizer, see the reduced values.
namespace {

using AccumulatorPtr = decltype(torch::autograd::impl::grad_accumulator(std::declval<const at::Tensor&>()));

struct Bucket {
  std::vector<size_t> members;   // parameter indices, in the order of their slots in flat
  std::vector<int64_t> offsets;  // each member's first element in flat
  std::vector<at::Tensor> flat;  // the one tensor the collective takes, on the backend's device
  size_t pending = 0;            // members not yet copied in this step
  bool launched = false;
  c10::intrusive_ptr<c10d::Work> work;
  std::vector<c10::Stream> streams;  // GPU: the streams this step's copies were queued on
};

struct Reducer {
  Group* g = nullptr;
  std::vector<at::Tensor> params;
  int64_t cap = 0, firstCap = 0;
  std::vector<size_t> bucketOf, slotOf;
  std::vector<Bucket> buckets;
  // Held, so that later forward passes reuse these nodes (a parameter keeps
  // only a weak reference to its accumulator) and with them the hooks.
  std::vector<AccumulatorPtr> accumulators;
  std::vector<uintptr_t> hookKeys;

  std::mutex mutex;
  bool armed = false;     // the hooked backward is running
  bool awaiting = false;  // every bucket launched, not yet waited for
  std::vector<char> in;   // per parameter: its gradient is in its bucket this step
  size_t next = 0;        // the next bucket to launch
  std::string late;       // a gradient that came after its bucket had been sent

  bool matches(const std::vector<at::Tensor>& ps, int64_t c, int64_t fc) const {
    if (ps.size() != params.size() || c != cap || fc != firstCap) return false;
    for (size_t j = 0; j < ps.size(); ++j)
      if (ps[j].unsafeGetTensorImpl() != params[j].unsafeGetTensorImpl() || ps[j].numel() != params[j].numel() ||
          ps[j].scalar_type() != params[j].scalar_type() || ps[j].device() != params[j].device())
        return false;
    return true;
  }

  at::Tensor slot(size_t j) {
    Bucket& b = buckets[bucketOf[j]];
    return b.flat[0].narrow(0, b.offsets[slotOf[j]], params[j].numel());
  }

  // Copies parameter j's gradient (zeros if it has none) into its slot.
  void copyIn(size_t j) {
    at::Tensor s = slot(j).view(params[j].sizes());
    const at::Tensor& grad = params[j].grad();
    if (grad.defined()) s.copy_(grad);
    else s.zero_();
    if (s.device().type() != at::kCPU) {
      c10::impl::VirtualGuardImpl impl(s.device().type());
      c10::Stream current = impl.getStream(s.device());
      auto& seen = buckets[bucketOf[j]].streams;
      if (std::find(seen.begin(), seen.end(), current) == seen.end()) seen.push_back(current);
    }
  }

  void launch(Bucket& b) {
    const at::Device dev = b.flat[0].device();
    if (dev.type() != at::kCPU && !b.streams.empty()) {
      c10::impl::VirtualGuardImpl impl(dev.type());
      c10::Stream current = impl.getStream(dev);
      for (const c10::Stream& s : b.streams) {
        if (s == current) continue;
        c10::Event done(dev.type());
        done.record(s);
        done.block(current);
      }
    }
    b.streams.clear();
    try {
      b.work = g->comm->allreduce(b.flat);
    } catch (const std::exception& e) {
      if (g->broken.empty()) g->broken = e.what();
      throw;
    }
    b.launched = true;
  }

  // Parameter j's gradient goes into its bucket for this step (caller holds the mutex).
  void takeIn(size_t j) {
    copyIn(j);
    in[j] = 1;
    --buckets[bucketOf[j]].pending;
  }

  // Launches the full buckets that are next in line (caller holds the mutex).
  void launchReady() {
    while (next < buckets.size() && buckets[next].pending == 0) launch(buckets[next++]);
  }

  // Parameter j's gradient is final: the post-hook of its accumulator.
  void ready(size_t j) {
    std::lock_guard<std::mutex> lock(mutex);
    if (!armed) return;  // an earlier accumulation round, or a backward outside a training step
    Bucket& b = buckets[bucketOf[j]];
    if (in[j]) {  // taken for unused before backward, yet its accumulator ran
      if (b.launched) {
        if (late.empty()) late = "the gradient of parameter " + std::to_string(j) + " came after its bucket had been sent";
      } else {
        copyIn(j);
      }
      return;
    }
    takeIn(j);
    if (b.pending == 0) launchReady();
  }

  void unhook() {
    for (size_t j = 0; j < accumulators.size(); ++j)
      if (accumulators[j]) accumulators[j]->del_post_hook(hookKeys[j]);
    accumulators.assign(accumulators.size(), AccumulatorPtr());
  }
};

std::shared_ptr<Reducer> g_reducer;  // the last layout: reused while the same parameters come

class ReadyHook : public torch::autograd::FunctionPostHook {
 public:
  ReadyHook(std::weak_ptr<Reducer> reducer, size_t index) : reducer_(std::move(reducer)), index_(index) {}
  torch::autograd::variable_list operator()(const torch::autograd::variable_list& outputs,
                                            const torch::autograd::variable_list& /*inputs*/) override {
    if (auto r = reducer_.lock()) r->ready(index_);
    return outputs;
  }

 private:
  std::weak_ptr<Reducer> reducer_;
  size_t index_;
};

std::shared_ptr<Reducer> buildReducer(Group& g, const std::vector<at::Tensor>& params, int64_t cap, int64_t firstCap) {
  auto r = std::make_shared<Reducer>();
  r->g = &g;
  r->params = params;
  r->cap = cap;
  r->firstCap = firstCap;
  const size_t n = params.size();
  r->bucketOf.resize(n);
  r->slotOf.resize(n);
  r->accumulators.resize(n);
  r->hookKeys.resize(n);
  r->in.resize(n);
  int64_t limit = firstCap, filled = 0;
  bool open = false;
  auto close = [&] {
    open = false;
    filled = 0;
    limit = cap;
  };
  for (size_t j = n; j-- > 0;) {
    const at::Tensor& p = params[j];
    if (open) {
      const at::Tensor& first = params[r->buckets.back().members.front()];
      if (first.scalar_type() != p.scalar_type() || first.device() != p.device()) close();
    }
    if (!open) {
      r->buckets.emplace_back();
      open = true;
    }
    Bucket& b = r->buckets.back();
    r->bucketOf[j] = r->buckets.size() - 1;
    r->slotOf[j] = b.members.size();
    b.offsets.push_back(b.members.empty() ? 0 : b.offsets.back() + params[b.members.back()].numel());
    b.members.push_back(j);
    filled += p.numel() * static_cast<int64_t>(p.element_size());
    if (filled >= limit) close();
  }
  for (Bucket& b : r->buckets) {
    int64_t total = b.offsets.back() + params[b.members.back()].numel();
    b.flat = {at::empty({total}, at::TensorOptions().dtype(params[b.members.front()].scalar_type()).device(g.device))};
  }
  return r;
}

}  // namespace

// distBackwardOverlapped(loss, params, bucketBytes, firstBucketBytes): runs
// loss.backward() (a scalar) with the gradients' all-reduce started bucket by
// bucket as they become final (above). Returns [buckets, launched before
// backward returned, parameters this backward gave no gradient].
// distAwaitGradients must follow before the gradients are used.
PD_FN(distBackwardOverlapped, {
  Group& g = group("distBackwardOverlapped");
  at::Tensor loss = T(0);
  auto params = TL(1);
  int64_t cap = I(2), firstCap = I(3);
  if (cap <= 0 || firstCap <= 0) throw ArgError{"distBackwardOverlapped: bucket sizes must be positive"};
  if (!loss.requires_grad() || loss.numel() != 1)
    throw ArgError{"distBackwardOverlapped: the loss must be a scalar that requires grad, got " + describeTensor(loss)};
  if (g_reducer && g_reducer->awaiting)
    throw std::runtime_error("distBackwardOverlapped: the previous step's all-reduce was never waited for (distAwaitGradients)");
  if (!g_reducer || !g_reducer->matches(params, cap, firstCap)) {
    if (g_reducer) g_reducer->unhook();
    g_reducer = buildReducer(g, params, cap, firstCap);
  }
  Reducer& r = *g_reducer;
  // (Re)hooks each accumulator: one is made on first use, and again after a
  // parameter's data changed dtype or device.
  for (size_t j = 0; j < params.size(); ++j) {
    const at::Tensor& p = params[j];
    AccumulatorPtr acc = p.requires_grad() && p.is_leaf() ? torch::autograd::impl::grad_accumulator(p) : AccumulatorPtr();
    if (acc.get() == r.accumulators[j].get()) continue;
    if (r.accumulators[j]) r.accumulators[j]->del_post_hook(r.hookKeys[j]);
    r.accumulators[j] = acc;
    if (acc) r.hookKeys[j] = acc->add_post_hook(std::make_unique<ReadyHook>(g_reducer, j));
  }
  // The nodes this backward will run.
  std::unordered_set<const torch::autograd::Node*> reached;
  std::vector<torch::autograd::Node*> stack;
  if (auto* root = torch::autograd::impl::gradient_edge(loss).function.get()) {
    reached.insert(root);
    stack.push_back(root);
  }
  while (!stack.empty()) {
    torch::autograd::Node* node = stack.back();
    stack.pop_back();
    for (const auto& edge : node->next_edges()) {
      torch::autograd::Node* f = edge.function.get();
      if (f && reached.insert(f).second) stack.push_back(f);
    }
  }
  size_t unused = 0;
  {
    std::lock_guard<std::mutex> lock(r.mutex);
    c10::AutoGradMode no_grad(false);
    r.next = 0;
    r.late.clear();
    std::fill(r.in.begin(), r.in.end(), 0);
    for (Bucket& b : r.buckets) {
      b.pending = b.members.size();
      b.launched = false;
      b.work.reset();
      b.streams.clear();
    }
    for (size_t j = 0; j < params.size(); ++j) {
      if (r.accumulators[j] && reached.count(r.accumulators[j].get())) continue;
      r.takeIn(j);
      ++unused;
    }
    r.launchReady();
    r.armed = true;
  }
  try {
    loss.backward(at::Tensor(), /*retain_graph=*/false, /*create_graph=*/false);
  } catch (const std::exception& e) {
    std::lock_guard<std::mutex> lock(r.mutex);
    r.armed = false;
    // Some buckets may be out already: the ranks' collectives no longer pair up.
    if (g.broken.empty()) g.broken = std::string("backward failed while the gradients were being all-reduced: ") + e.what();
    throw;
  }
  size_t during = 0;
  {
    std::lock_guard<std::mutex> lock(r.mutex);
    c10::AutoGradMode no_grad(false);
    r.armed = false;
    during = r.next;
    for (size_t j = 0; j < params.size(); ++j)
      if (!r.in[j]) r.takeIn(j);
    r.launchReady();
    r.awaiting = true;
  }
  Napi::Array out = Napi::Array::New(env);
  out.Set(0u, Napi::Number::New(env, static_cast<double>(r.buckets.size())));
  out.Set(1u, Napi::Number::New(env, static_cast<double>(during)));
  out.Set(2u, Napi::Number::New(env, static_cast<double>(unused)));
  return out;
})

// distAwaitGradients(): waits for distBackwardOverlapped's buckets, then
// replaces each gradient by its mean over the ranks (zeros where a parameter
// had none). Returns the number of buckets.
PD_FN(distAwaitGradients, {
  Group& g = group("distAwaitGradients");
  if (!g_reducer || !g_reducer->awaiting)
    throw ArgError{"distAwaitGradients: no overlapped all-reduce is under way (call distBackwardOverlapped first)"};
  Reducer& r = *g_reducer;
  r.awaiting = false;
  std::vector<c10::intrusive_ptr<c10d::Work>> works;
  works.reserve(r.buckets.size());
  for (Bucket& b : r.buckets) works.push_back(b.work);
  waitAll(g, works);
  if (!r.late.empty())
    throw std::runtime_error(r.late + ": this network cannot overlap its all-reduce with backward (set PD_DIST_OVERLAP=0)");
  c10::AutoGradMode no_grad(false);
  for (Bucket& b : r.buckets) {
    b.work.reset();
    writeMeans(g, b.flat[0], r.params, b.members);
  }
  return Napi::Number::New(env, static_cast<double>(r.buckets.size()));
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
PD_NO_GLOO(distBackwardOverlapped);
PD_NO_GLOO(distAwaitGradients);
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
