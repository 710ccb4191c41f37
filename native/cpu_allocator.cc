// A caching allocator for CPU tensor storage, installed in place of c10's
// default (plain posix_memalign/free) when the addon loads.
//
// Why: a training step allocates and frees the same few hundred activation
// and gradient blocks over and over. Through glibc those blocks interleave
// with small long-lived allocations, so the heap fragments: the quick start
// held ~150 MB in use between steps but 0.85–1.3 GB of free heap, and its
// peak RSS varied from 1.4 to 1.95 GB between identical runs (RESULTS.md,
// findings). Here blocks of 64 KiB and more are rounded up to a size class
// (≤ 1/8 waste) and, when freed, kept for the next request of that size or
// down to half of it: no fragmentation between steps, no page faults.
// Smaller blocks go to malloc as before. Idle cached bytes are capped
// (PD_CPU_CACHE_MB, default 2048; 0 turns the cache off); beyond the cap, freed
// blocks go back to the C library.
//
// It also counts the bytes of tensor storage in use and their peak, the CPU's
// counterpart of the CUDA caching allocator's figures: peak RSS cannot show
// a saving smaller than what the cache and the heap keep around it.
//
// Built against libtorch 1.x and 2.x alike: c10's Allocator interface changed
// in 2.3 (allocate lost its const, copy_data became pure virtual), which the
// version guards below follow. The fragmentation it cures is glibc's, not
// libtorch's: 2.x's default CPU allocator is the same posix_memalign/free.
#include "common.h"

#include <c10/core/CPUAllocator.h>

#include <atomic>
#include <cstdio>
#include <cstdlib>
#include <mutex>
#include <new>
#include <map>
#include <vector>

// c10::Allocator as of libtorch 2.3: non-const allocate, pure virtual copy_data.
#define PD_ALLOCATOR_API_2_3 PD_TORCH_AT_LEAST(2, 3)

namespace pd {

namespace {

constexpr size_t kAlignment = 64;              // c10's CPU alignment (AVX-512)
constexpr size_t kHeader = kAlignment;         // the block's size and the requested size live just before the data
constexpr size_t kMinCached = size_t{64} << 10;

// Rounds up to one of 8 steps per power of two.
size_t sizeClass(size_t n) {
  size_t pow2 = size_t{1} << (63 - __builtin_clzll(n));
  size_t step = pow2 / 8;
  return (n + step - 1) / step * step;
}

class CachingCpuAllocator final : public c10::Allocator {
 public:
  explicit CachingCpuAllocator(size_t cap_bytes) : cap_bytes_(cap_bytes) {}

#if PD_ALLOCATOR_API_2_3
  c10::DataPtr allocate(size_t n) override { return allocateImpl(n); }
  void copy_data(void* dest, const void* src, std::size_t count) const override { default_copy_data(dest, src, count); }
#else
  c10::DataPtr allocate(size_t n) const override { return allocateImpl(n); }
#endif
  c10::DeleterFnPtr raw_deleter() const override { return &release; }

  static CachingCpuAllocator* instance;

  CpuCacheStats stats() const {
    std::lock_guard<std::mutex> lock(mutex_);
    return {true, hits_, misses_, cached_bytes_, cap_bytes_, live_bytes_.load(), peak_bytes_.load()};
  }

  void resetPeak() { peak_bytes_.store(live_bytes_.load()); }

 private:
  c10::DataPtr allocateImpl(size_t n) const {
    size_t bytes = n < kMinCached ? n : sizeClass(n);
    void* base = nullptr;
    if (n >= kMinCached) base = takeCached(&bytes);
    if (!base) {
      if (posix_memalign(&base, kAlignment, bytes + kHeader) != 0) throw std::bad_alloc();
    }
    static_cast<size_t*>(base)[0] = bytes;
    static_cast<size_t*>(base)[1] = n;
    countIn(static_cast<int64_t>(n));
    void* data = static_cast<char*>(base) + kHeader;
    // Context = data, as raw_allocate (used by oneDNN) requires; the header is found from it.
    return {data, data, &release, c10::Device(c10::DeviceType::CPU)};
  }

  // The smallest cached block of at least `bytes` and at most twice that: a
  // step's blocks differ in size with the patch size, and taking a somewhat
  // larger block keeps the cache near the true peak instead of the sum of
  // every size's own peak. *bytes becomes the block's size.
  void* takeCached(size_t* bytes) const {
    std::lock_guard<std::mutex> lock(mutex_);
    for (auto it = free_.lower_bound(*bytes); it != free_.end() && it->first <= 2 * *bytes; ++it) {
      if (it->second.empty()) continue;
      void* base = it->second.back();
      it->second.pop_back();
      *bytes = it->first;
      cached_bytes_ -= it->first;
      hits_++;
      return base;
    }
    misses_++;
    return nullptr;
  }

  void countIn(int64_t n) const {
    const int64_t now = live_bytes_.fetch_add(n, std::memory_order_relaxed) + n;
    int64_t peak = peak_bytes_.load(std::memory_order_relaxed);
    while (now > peak && !peak_bytes_.compare_exchange_weak(peak, now, std::memory_order_relaxed)) {
    }
  }

  static void release(void* data) {
    void* base = static_cast<char*>(data) - kHeader;
    size_t bytes = static_cast<size_t*>(base)[0];
    CachingCpuAllocator* self = instance;
    if (self) self->live_bytes_.fetch_sub(static_cast<int64_t>(static_cast<size_t*>(base)[1]), std::memory_order_relaxed);
    if (bytes >= kMinCached && self) {
      std::lock_guard<std::mutex> lock(self->mutex_);
      if (self->cached_bytes_ + bytes <= self->cap_bytes_) {
        self->free_[bytes].push_back(base);
        self->cached_bytes_ += bytes;
        return;
      }
    }
    std::free(base);
  }

  const size_t cap_bytes_;
  mutable std::mutex mutex_;
  mutable std::map<size_t, std::vector<void*>> free_;  // by block size
  mutable size_t cached_bytes_ = 0;
  mutable uint64_t hits_ = 0, misses_ = 0;
  mutable std::atomic<int64_t> live_bytes_{0}, peak_bytes_{0};
};

CachingCpuAllocator* CachingCpuAllocator::instance = nullptr;

}  // namespace

void installCpuAllocator() {
  long mb = 2048;
  if (const char* env = std::getenv("PD_CPU_CACHE_MB")) {
    char* end = nullptr;
    long parsed = std::strtol(env, &end, 10);
    if (end == env || *end != '\0' || parsed < 0)
      std::fprintf(stderr, "patch-diffusion: PD_CPU_CACHE_MB='%s' is not a whole number of MiB (0 turns the cache off); using %ld\n", env, mb);
    else
      mb = parsed;
  }
  if (mb == 0) return;
  // Lives as long as the process: tensors freed at exit still call its deleter.
  CachingCpuAllocator::instance = new CachingCpuAllocator(static_cast<size_t>(mb) << 20);
  c10::SetCPUAllocator(CachingCpuAllocator::instance, /*priority=*/10);
}

CpuCacheStats cpuCacheStats() {
  return CachingCpuAllocator::instance ? CachingCpuAllocator::instance->stats() : CpuCacheStats{};
}

void resetCpuPeakMemory() {
  if (CachingCpuAllocator::instance) CachingCpuAllocator::instance->resetPeak();
}

}  // namespace pd
