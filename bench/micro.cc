// micro.cc: Google Benchmark microbenchmarks of the C allocation API.
//
// The binary links no allocator: bench/run.py runs it once per allocator with
// that allocator preloaded (LD_PRELOAD), glibc's malloc being the run without
// a preload.  Compiled with -fno-builtin-malloc & co., and every pointer goes
// through benchmark::DoNotOptimize, so no malloc/free pair can be folded away.
//
// Every benchmark sets items_processed to the number of allocations it made
// (one malloc+free pair = one item), so 1e9 / items_per_second is the time of
// one pair; threaded benchmarks use real time, so the figure is the aggregate
// throughput of all threads.
//
//   BM_pair/SIZE                  malloc(SIZE)+free, the size-class fast path
//   BM_pair_random/MAX            malloc+free of sizes drawn from 8..MAX
//   BM_pair_random_medium/16384   the same from 513..16384 (the medium classes)
//   BM_batch_{fifo,lifo,random}/N N live blocks (8..512 bytes), then freed in
//                                 allocation order, reverse order or random order
//   BM_calloc/SIZE                calloc(1, SIZE)+free
//   BM_realloc_step/MAX           a buffer grown by 16 bytes at a time to MAX
//   BM_realloc_double/MAX         a buffer doubled from 16 bytes to MAX
//   BM_aligned/ALIGN              aligned_alloc(ALIGN, 64)+free
//   BM_prodcons/BATCH             even threads allocate batches, odd threads free
//                                 them (every free is a cross-thread free)

#include <benchmark/benchmark.h>

#include <sched.h>
#include <stdlib.h>

#include <atomic>
#include <cstdint>
#include <cstring>
#include <vector>

#include "bench_util.h"

namespace {

// ---------------------------------------------------------------------------
// Deterministic tables of sizes and orders, computed once.
// ---------------------------------------------------------------------------
constexpr size_t kTable = 1 << 14;  // power of two: index with a mask

struct SizeTable {
  uint32_t size[kTable];
  explicit SizeTable(size_t lo, size_t hi, uint64_t seed) {
    bench_rng r;
    bench_rng_seed(&r, seed);
    for (size_t i = 0; i < kTable; i++) size[i] = (uint32_t)bench_rng_range(&r, lo, hi);
  }
};

const SizeTable &sizes_upto(size_t hi) {
  static const SizeTable t512(8, 512, 1), t1000(8, 1000, 2), t4096(8, 4096, 3);
  return hi <= 512 ? t512 : hi <= 1000 ? t1000 : t4096;
}

// A random permutation of 0..n-1 (fixed seed).
std::vector<uint32_t> permutation(size_t n, uint64_t seed) {
  std::vector<uint32_t> p(n);
  for (size_t i = 0; i < n; i++) p[i] = (uint32_t)i;
  bench_rng r;
  bench_rng_seed(&r, seed);
  for (size_t i = n - 1; i > 0; i--) {
    size_t j = bench_rng_range(&r, 0, i);
    uint32_t t = p[i];
    p[i] = p[j];
    p[j] = t;
  }
  return p;
}

// ---------------------------------------------------------------------------
// malloc+free pairs
// ---------------------------------------------------------------------------
void BM_pair(benchmark::State &state) {
  const size_t size = (size_t)state.range(0);
  for (auto _ : state) {
    void *p = malloc(size);
    benchmark::DoNotOptimize(p);
    free(p);
  }
  state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_pair)->DenseRange(16, 512, 16);
BENCHMARK(BM_pair)->Arg(64)->Threads(2)->Threads(4)->UseRealTime();

void BM_pair_random(benchmark::State &state) {
  const SizeTable &t = sizes_upto((size_t)state.range(0));
  size_t i = (size_t)state.thread_index() * 977;
  for (auto _ : state) {
    void *p = malloc(t.size[i++ & (kTable - 1)]);
    benchmark::DoNotOptimize(p);
    free(p);
  }
  state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_pair_random)->Arg(512)->Arg(1000);
BENCHMARK(BM_pair_random)->Arg(512)->Threads(2)->Threads(4)->UseRealTime();

// The same over the medium classes only, 513..16384 bytes (bench_ops' row of that name).
void BM_pair_random_medium(benchmark::State &state) {
  static const SizeTable t(513, 16384, 4);   // (the one argument, 16384)
  size_t i = 0;
  for (auto _ : state) {
    void *p = malloc(t.size[i++ & (kTable - 1)]);
    benchmark::DoNotOptimize(p);
    free(p);
  }
  state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_pair_random_medium)->Arg(16384);

// ---------------------------------------------------------------------------
// Batches of live blocks freed in allocation, reverse or random order
// ---------------------------------------------------------------------------
enum Order { kFifo, kLifo, kRandom };

template <Order order>
void BM_batch(benchmark::State &state) {
  const size_t n = (size_t)state.range(0);
  const SizeTable &t = sizes_upto(512);
  std::vector<void *> v(n);
  std::vector<uint32_t> perm;
  if (order == kRandom) perm = permutation(n, 42 + (uint64_t)state.thread_index());
  size_t k = (size_t)state.thread_index() * 4093;
  for (auto _ : state) {
    for (size_t i = 0; i < n; i++) {
      void *p = malloc(t.size[k++ & (kTable - 1)]);
      benchmark::DoNotOptimize(p);
      v[i] = p;
    }
    benchmark::ClobberMemory();
    if (order == kFifo) {
      for (size_t i = 0; i < n; i++) free(v[i]);
    } else if (order == kLifo) {
      for (size_t i = n; i-- > 0;) free(v[i]);
    } else {
      for (size_t i = 0; i < n; i++) free(v[perm[i]]);
    }
  }
  state.SetItemsProcessed(state.iterations() * (int64_t)n);
}
#define PM_BATCH(order)                                                      \
  BENCHMARK_TEMPLATE(BM_batch, order)->Arg(1000)->Arg(100000);               \
  BENCHMARK_TEMPLATE(BM_batch, order)->Arg(1000)->Threads(2)->Threads(4)->UseRealTime()
PM_BATCH(kFifo);
PM_BATCH(kLifo);
PM_BATCH(kRandom);

// ---------------------------------------------------------------------------
// calloc, realloc growth, aligned allocation
// ---------------------------------------------------------------------------
void BM_calloc(benchmark::State &state) {
  const size_t size = (size_t)state.range(0);
  for (auto _ : state) {
    void *p = calloc(1, size);
    benchmark::DoNotOptimize(p);
    free(p);
  }
  state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_calloc)->Arg(64)->Arg(512)->Arg(4096);

// A string builder: grow by 16 bytes at a time, writing the new tail.
void BM_realloc_step(benchmark::State &state) {
  const size_t max = (size_t)state.range(0);
  int64_t calls = 0;
  for (auto _ : state) {
    char *p = (char *)malloc(16);
    for (size_t n = 32; n <= max; n += 16) {
      p = (char *)realloc(p, n);
      benchmark::DoNotOptimize(p);
      p[n - 1] = 1;
      calls++;
    }
    free(p);
  }
  state.SetItemsProcessed(calls);
}
BENCHMARK(BM_realloc_step)->Arg(1024);

// A vector: double from 16 bytes.
void BM_realloc_double(benchmark::State &state) {
  const size_t max = (size_t)state.range(0);
  int64_t calls = 0;
  for (auto _ : state) {
    char *p = (char *)malloc(16);
    for (size_t n = 32; n <= max; n *= 2) {
      p = (char *)realloc(p, n);
      benchmark::DoNotOptimize(p);
      p[n - 1] = 1;
      calls++;
    }
    free(p);
  }
  state.SetItemsProcessed(calls);
}
BENCHMARK(BM_realloc_double)->Arg(65536);

void BM_aligned(benchmark::State &state) {
  const size_t align = (size_t)state.range(0);
  for (auto _ : state) {
    void *p = aligned_alloc(align, 64);
    benchmark::DoNotOptimize(p);
    free(p);
  }
  state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_aligned)->Arg(16)->Arg(64)->Arg(4096);

// ---------------------------------------------------------------------------
// Producer/consumer: thread 2k allocates batches, thread 2k+1 frees them.
// Both run the same number of iterations (Google Benchmark gives every thread
// of a run the same count), so every batch produced is consumed by the end.
// ---------------------------------------------------------------------------
constexpr size_t kBatch = 64;
constexpr size_t kRing = 64;   // batches in flight per pair
constexpr int kMaxPairs = 4;

struct alignas(64) Ring {
  std::atomic<uint64_t> head{0};  // batches produced
  char pad1[64 - sizeof(std::atomic<uint64_t>)];
  std::atomic<uint64_t> tail{0};  // batches consumed
  char pad2[64 - sizeof(std::atomic<uint64_t>)];
  void *slot[kRing][kBatch];
};
Ring g_rings[kMaxPairs];

void BM_prodcons(benchmark::State &state) {
  const int pair = state.thread_index() / 2;
  const bool producer = state.thread_index() % 2 == 0;
  Ring &r = g_rings[pair % kMaxPairs];
  const SizeTable &t = sizes_upto(512);
  size_t k = (size_t)state.thread_index() * 131;
  if (producer) {
    for (auto _ : state) {
      uint64_t h = r.head.load(std::memory_order_relaxed);
      while (h - r.tail.load(std::memory_order_acquire) >= kRing) sched_yield();
      void **s = r.slot[h % kRing];
      for (size_t i = 0; i < kBatch; i++) {
        void *p = malloc(t.size[k++ & (kTable - 1)]);
        benchmark::DoNotOptimize(p);
        s[i] = p;
      }
      r.head.store(h + 1, std::memory_order_release);
    }
    state.SetItemsProcessed(state.iterations() * (int64_t)kBatch);
  } else {
    for (auto _ : state) {
      uint64_t tl = r.tail.load(std::memory_order_relaxed);
      while (r.head.load(std::memory_order_acquire) == tl) sched_yield();
      void **s = r.slot[tl % kRing];
      for (size_t i = 0; i < kBatch; i++) free(s[i]);
      r.tail.store(tl + 1, std::memory_order_release);
    }
  }
}
BENCHMARK(BM_prodcons)->Arg((int64_t)kBatch)->Threads(2)->Threads(4)->UseRealTime();

}  // namespace

BENCHMARK_MAIN();
