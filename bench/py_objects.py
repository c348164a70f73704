"""py_objects.py: a small-object-heavy CPython workload for bench/run.py.

    python3 bench/py_objects.py [ROUNDS] [N]      defaults 2 rounds of 60000 records

Each round builds and drops what a typical Python program is made of: dicts of
records (dicts and tuples of small ints and short strings), instances of a
class with a __dict__ and of one with __slots__, lists of floats, string
formatting and splitting, a set and a sorted list.  Nearly every object is
under 512 bytes, so with PYTHONMALLOC=malloc the preloaded allocator serves
all of them; without it CPython's own pymalloc does (the design poolmalloc
follows) and the allocator under test only sees the large blocks.
Prints one BENCH line like the C programs (ops = objects created, roughly).
"""
import sys
import time


class Point:
    def __init__(self, x, y):
        self.x = x
        self.y = y
        self.tag = "p%d" % x


class Slotted:
    __slots__ = ("a", "b", "c")

    def __init__(self, a, b, c):
        self.a, self.b, self.c = a, b, c


def one_round(n):
    created = 0
    table = {}
    for i in range(n):
        table["key%d" % i] = {"id": i, "name": "n" + str(i), "pos": (i, i * 2), "vals": [i, i + 1]}
    created += 6 * n
    pts = [Point(i, -i) for i in range(n)]
    slots = [Slotted(i, str(i), (i,)) for i in range(n)]
    created += 5 * n
    floats = [float(i) / 3.0 for i in range(n)]
    words = " ".join("w%d" % (i % 997) for i in range(n)).split()
    uniq = set(words)
    ordered = sorted(table.items(), key=lambda kv: -kv[1]["id"])
    created += 4 * n
    # drop half the table at random-ish order, rebuild it differently
    for i in range(0, n, 2):
        del table["key%d" % ((i * 7919) % n)]
    for i in range(n // 2):
        table[(i, "t")] = [str(i)] * 3
    created += 3 * (n // 2)
    s = len(table) + len(pts) + len(slots) + int(sum(floats)) + len(uniq) + len(ordered)
    return s, created


def main():
    scale = int(sys.argv[1]) if len(sys.argv) > 1 else 2
    n = int(sys.argv[2]) if len(sys.argv) > 2 else 60000
    t0 = time.monotonic()
    created = 0
    check = 0
    for r in range(scale):
        s, c = one_round(n)
        check += s
        created += c
    t1 = time.monotonic()
    status = {}
    with open("/proc/self/status") as f:
        for line in f:
            k, _, v = line.partition(":")
            status[k] = v.split()[0] if v.split() else "-1"
    print("BENCH name=python ops=%d seconds=%.6f ops_per_s=%.1f check=%d vmhwm_kb=%s vmrss_kb=%s"
          % (created, t1 - t0, created / (t1 - t0), check, status.get("VmHWM", -1), status.get("VmRSS", -1)))


if __name__ == "__main__":
    main()
