"""A deterministic small-object workload for the LD_PRELOAD tests.

Run with PYTHONMALLOC=malloc so that every Python object goes through the C
library's malloc (poolmalloc when it is preloaded).  Prints only values that
do not depend on addresses, hash seeds or timing; the test compares this
output with a run without poolmalloc.

    python3 workload.py [SCALE]      (SCALE defaults to 1; 1 is ~400k objects)
"""
import collections
import hashlib
import json
import random
import re
import sys
import threading


class Point:
    __slots__ = ("x", "y", "tag")

    def __init__(self, x, y, tag):
        self.x = x
        self.y = y
        self.tag = tag

    def norm1(self):
        return abs(self.x) + abs(self.y)


class Node:
    """A plain class with a __dict__, linked in trees and cycles."""

    def __init__(self, value, children=()):
        self.value = value
        self.children = list(children)
        self.parent = None


def digest(obj):
    """A stable digest of a JSON-able value."""
    text = json.dumps(obj, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def section(name, value):
    print(f"{name}: {value}")


def dicts_and_strings(rng, n):
    words = ["".join(rng.choice("abcdefghijklmnopqrstuvwxyz") for _ in range(rng.randint(1, 12)))
             for _ in range(n)]
    counts = collections.Counter(words)
    index = {}
    for i, w in enumerate(words):
        index.setdefault(w[:3], []).append(i)
    # Grow and shrink: deletes leave dummies, re-inserts reuse and resize.
    for w in list(index)[::2]:
        del index[w]
    for i in range(0, n, 7):
        index[f"k{i}"] = [i, str(i), (i, i + 1)]
    joined = ",".join(sorted(counts)[:1000])
    section("dict.words", len(words))
    section("dict.distinct", len(counts))
    section("dict.top", sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))[:5])
    section("dict.index", (len(index), sum(len(v) for v in index.values())))
    section("str.joined", hashlib.sha256(joined.encode()).hexdigest()[:16])
    upper = [w.upper() + "-" + w[::-1] for w in words[: n // 2]]
    section("str.upper", digest(upper[:200]))
    return words


def lists_tuples_sets(rng, n):
    items = [(rng.randrange(1000), rng.random(), str(i)) for i in range(n)]
    items.sort()
    by_key = sorted(items, key=lambda t: (t[2][::-1], t[0]))
    s1 = {t[0] for t in items}
    s2 = {t[2] for t in items if t[0] % 3 == 0}
    fs = frozenset(x * 2 for x in s1)
    nested = [[i, [i, [i]]] for i in range(n // 4)]
    flat = [x for row in nested for x in (row[0], row[1][0], row[1][1][0])]
    section("list.sorted", digest([list(t) for t in items[:50]]))
    section("list.by_key", digest([t[2] for t in by_key[:100]]))
    section("set.sizes", (len(s1), len(s2), len(fs), len(s1 & {x // 2 for x in fs})))
    section("list.flat", (len(flat), sum(flat)))
    # Slices, concatenation, deletion in the middle.
    big = list(range(n))
    del big[n // 4: n // 2]
    big[10:20] = [str(x) for x in range(1000)]
    section("list.edit", (len(big), big[15], big[-1]))


def slotted_objects(rng, n):
    pts = [Point(rng.randint(-1000, 1000), rng.randint(-1000, 1000), f"p{i}") for i in range(n)]
    pts.sort(key=lambda p: (p.norm1(), p.tag))
    section("slots.first", [(p.x, p.y, p.tag) for p in pts[:3]])
    section("slots.sum", sum(p.norm1() for p in pts))
    del pts[::2]
    section("slots.left", len(pts))


def trees_and_cycles(rng, n):
    nodes = [Node(i) for i in range(n)]
    for i in range(1, n):
        parent = nodes[rng.randrange(i)]
        parent.children.append(nodes[i])
        nodes[i].parent = parent            # a cycle through every edge
    depth = {0: 0}
    for i in range(1, n):
        depth[i] = depth[nodes[i].parent.value] + 1
    section("tree.maxdepth", max(depth.values()))
    section("tree.leaves", sum(1 for x in nodes if not x.children))
    del nodes, depth                     # left to the cycle collector
    import gc
    gc.collect()


def json_round_trips(rng, n):
    docs = []
    for i in range(n):
        docs.append({
            "id": i,
            "name": f"item-{i}",
            "tags": [f"t{rng.randrange(50)}" for _ in range(rng.randrange(5))],
            "price": round(rng.random() * 100, 2),
            "dims": {"w": rng.randrange(100), "h": rng.randrange(100)},
            "ok": bool(i % 2),
            "none": None,
        })
    text = json.dumps(docs, sort_keys=True)
    back = json.loads(text)
    assert back == docs
    section("json.bytes", len(text))
    section("json.digest", hashlib.sha256(text.encode()).hexdigest()[:16])
    section("json.tags", sum(len(d["tags"]) for d in back))


def regex_and_bytes(words):
    text = " ".join(words)
    pat = re.compile(r"\b([a-z])([a-z]*)\1\b")
    found = pat.findall(text)
    section("re.found", (len(found), found[:3]))
    section("re.sub", hashlib.sha256(re.sub(r"[aeiou]+", "*", text).encode()).hexdigest()[:16])
    blob = bytearray()
    for w in words[:20000]:
        blob += w.encode() + b"\0"
    section("bytes.len", (len(blob), blob.count(b"\0")))


def threads(rng, n):
    """Objects made in one thread and freed in another."""
    results = [None] * 4
    handoff = [[] for _ in range(4)]

    def work(k):
        local = {f"{k}-{i}": [i] * (i % 5) for i in range(n)}
        handoff[(k + 1) % 4].append(local)
        results[k] = sum(len(v) for v in local.values())

    ts = [threading.Thread(target=work, args=(k,)) for k in range(4)]
    for t in ts:
        t.start()
    for t in ts:
        t.join()

    def drop(k):
        handoff[k].clear()                  # frees another thread's objects

    ts = [threading.Thread(target=drop, args=(k,)) for k in range(4)]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    section("threads.sums", results)


def main():
    scale = float(sys.argv[1]) if len(sys.argv) > 1 else 1.0
    n = max(1000, int(60000 * scale))
    rng = random.Random(20240601)
    words = dicts_and_strings(rng, n)
    lists_tuples_sets(rng, n)
    slotted_objects(rng, n)
    trees_and_cycles(rng, n // 2)
    json_round_trips(rng, n // 6)
    regex_and_bytes(words)
    threads(rng, n // 6)
    section("done", "ok")


if __name__ == "__main__":
    main()
