// Where a step's time goes, per libtorch op: a RecordFunction observer (the
// hook libtorch's own profiler is built on, present in 1.x and 2.x alike)
// that times every op the dispatcher runs on the calling thread, forward and
// backward, and keeps per op name the number of calls, the inclusive time and
// the self time (inclusive minus the ops nested inside it). Ops run inside
// the autograd engine's backward are keyed "bwd " + name; ops inside one of
// the addon's fused updates (adamStep, emaUpdate, gradNanToNum, which open a
// "pd::" scope) are keyed by that scope, so the optimizer shows as one family.
//
// Off by default: with no observer registered the dispatcher skips the hook
// entirely, so the cost is paid only while profiling (about 1 µs per op).
#include "common.h"

#include <chrono>
#include <map>
#include <mutex>
#include <string>
#include <vector>

namespace pd {

namespace {

using Clock = std::chrono::steady_clock;

struct OpTotals {
  int64_t calls = 0;
  double total_us = 0, self_us = 0;
};

struct Frame {
  Clock::time_point start;
  double child_us = 0;
  std::string key;
};

std::mutex g_mutex;
std::map<std::string, OpTotals> g_totals;
at::CallbackHandle g_handle = 0;
thread_local std::vector<Frame> t_stack;

std::string keyFor(const at::RecordFunction& fn) {
  std::string name = fn.name();
  // An enclosing fused update or backward pass decides the family.
  for (const Frame& f : t_stack) {
    if (f.key.rfind("pd::", 0) == 0) return f.key;
  }
  bool backward = fn.scope() == at::RecordScope::BACKWARD_FUNCTION;
  for (const Frame& f : t_stack) backward = backward || f.key.rfind("bwd ", 0) == 0;
  return backward && name.rfind("pd::", 0) != 0 ? "bwd " + name : name;
}

std::unique_ptr<at::ObserverContext> onEnter(const at::RecordFunction& fn) {
  t_stack.push_back(Frame{Clock::now(), 0, keyFor(fn)});
  return nullptr;
}

void onExit(const at::RecordFunction&, at::ObserverContext*) {
  if (t_stack.empty()) return;  // started before the observer was added
  Frame f = std::move(t_stack.back());
  t_stack.pop_back();
  double us = std::chrono::duration<double, std::micro>(Clock::now() - f.start).count();
  if (!t_stack.empty()) t_stack.back().child_us += us;
  std::lock_guard<std::mutex> lock(g_mutex);
  OpTotals& t = g_totals[f.key];
  t.calls += 1;
  t.total_us += us;
  t.self_us += us - f.child_us;
}

}  // namespace

// profilerStart(): clears the totals and starts observing.
PD_FN(profilerStart, {
  if (g_handle != 0) throw ArgError{"the op profiler is already running"};
  {
    std::lock_guard<std::mutex> lock(g_mutex);
    g_totals.clear();
  }
  t_stack.clear();
  g_handle = at::addGlobalCallback(at::RecordFunctionCallback(&onEnter, &onExit)
                                       .scopes({at::RecordScope::FUNCTION, at::RecordScope::BACKWARD_FUNCTION,
                                                at::RecordScope::USER_SCOPE}));
  return env.Undefined();
})

// profilerStop(): stops observing and returns [{name, calls, totalMs, selfMs}].
PD_FN(profilerStop, {
  if (g_handle == 0) throw ArgError{"the op profiler is not running (call profilerStart first)"};
  at::removeCallback(g_handle);
  g_handle = 0;
  std::lock_guard<std::mutex> lock(g_mutex);
  Napi::Array out = Napi::Array::New(env, g_totals.size());
  uint32_t k = 0;
  for (const auto& [name, t] : g_totals) {
    Napi::Object row = Napi::Object::New(env);
    row.Set("name", name);
    row.Set("calls", static_cast<double>(t.calls));
    row.Set("totalMs", t.total_us / 1000);
    row.Set("selfMs", t.self_us / 1000);
    out.Set(k++, row);
  }
  return out;
})

}  // namespace pd
