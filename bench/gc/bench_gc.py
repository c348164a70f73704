"""CPython half of bench/gc/run.sh: the same shapes and timings as bench_gc.c.

    python3 bench_gc.py SHAPE N      SHAPE: cycles | ring | random

N objects of a __slots__ class with two references each, held by a list,
built with the collector enabled at its default thresholds; gc.collect() timed
with everything alive (best of 3) and after dropping the outside references
(acyclic garbage dies by count at the drop, timed apart).  Prints one line of
key=value pairs in bench_gc.c's format.
"""
import gc
import os
import sys
import time


class Obj:
    __slots__ = ("a", "b")


def rss_bytes():
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def xorshift_stream():
    # The same generator as bench_gc.c, so the random graph has the same shape.
    x = 88172645463325252
    mask = (1 << 64) - 1
    while True:
        x ^= (x << 13) & mask
        x ^= x >> 7
        x ^= (x << 17) & mask
        yield x


def build(shape, n, hold):
    # A function of its own, so that no local variable keeps an object alive.
    for i in range(n):
        hold[i] = Obj()
    if shape == "cycles":
        for i in range(0, n - 1, 2):
            x, y = hold[i], hold[i + 1]
            x.a = y; x.b = y; y.a = x; y.b = x
    elif shape == "ring":
        for i in range(n):
            o = hold[i]
            o.a = hold[(i + 1) % n]
            o.b = hold[(i + n - 1) % n]
    elif shape == "random":
        rnd = xorshift_stream()
        for i in range(n):
            o = hold[i]
            o.a = hold[next(rnd) % n]
            o.b = hold[next(rnd) % n]
    else:
        sys.exit("unknown shape " + shape)


def main():
    shape, n = sys.argv[1], int(sys.argv[2])
    hold = [None] * n
    gc.collect()
    rss0 = rss_bytes()
    t0 = time.perf_counter_ns()
    build(shape, n, hold)
    t_build = time.perf_counter_ns() - t0
    rss1 = rss_bytes()

    best, found_alive = None, 0
    for _ in range(3):
        t0 = time.perf_counter_ns()
        found_alive += gc.collect()
        dt = time.perf_counter_ns() - t0
        best = dt if best is None or dt < best else best

    t0 = time.perf_counter_ns()
    for i in range(n):
        hold[i] = None
    t_drop = time.perf_counter_ns() - t0
    t0 = time.perf_counter_ns()
    found = gc.collect()
    t_dead = time.perf_counter_ns() - t0

    print("impl=cpython shape=%s n=%d build_ns=%.1f alive_ns=%.1f drop_ns=%.1f dead_ns=%.1f "
          "bytes=%.1f found_alive=%d found_dead=%d left=%d"
          % (shape, n, t_build / n, best / n, t_drop / n, t_dead / n,
             (rss1 - rss0) / n, found_alive, found, 0))


if __name__ == "__main__":
    main()
