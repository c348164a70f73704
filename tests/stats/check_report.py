"""Checks POOLMALLOC_STATS=json reports: each line of each file given is one
document; its figures must agree with each other.  Extra checks by flag:
  --class-in-use SIZE MIN MAX   blocks in use in SIZE's class within [MIN, MAX]
  --reserve-empty                no arena in the reserve
  --docs N                       exactly N documents in all
  --min-docs N                   at least N documents"""
import json
import sys

ARENA, POOL = 262144, 4096


def check(doc):
    t, a, classes = doc["totals"], doc["arenas"], doc["classes"]
    assert len(classes) == 32, "32 size classes"
    for i, c in enumerate(classes):
        assert c["block_size"] == 16 * (i + 1)
        assert c["bytes_in_use"] == c["blocks_in_use"] * c["block_size"]
        assert c["bytes_free"] == (c["free_blocks"] + c["untouched_blocks"]) * c["block_size"]
        blocks = c["blocks_in_use"] + c["free_blocks"] + c["untouched_blocks"]
        assert blocks == c["pools"] * (POOL // c["block_size"]), f"class {i}: blocks add up to pools"
        assert c["tail_waste"] == POOL % c["block_size"]
        assert c["full_pools"] <= c["pools"]
    parts = ("in_use_bytes", "free_block_bytes", "untouched_bytes", "tail_waste_bytes",
             "empty_pool_bytes", "header_bytes", "reserve_bytes")
    assert t["mapped_bytes"] == sum(t[p] for p in parts), "parts add up to the mapped bytes"
    assert t["mapped_bytes"] == a["mapped"] * ARENA
    assert t["in_use_bytes"] == sum(c["bytes_in_use"] for c in classes)
    assert t["reserve_bytes"] == a["reserve"] * ARENA
    owned = a["mapped"] - a["reserve"]
    assert sum(a["fill"]) == owned, "fill histogram counts every owned arena"
    assert t["header_bytes"] == owned * POOL
    assert a["peak"] >= a["mapped"]
    assert a["total_mapped"] - a["total_unmapped"] == a["mapped"], "mapped - unmapped = now"
    held = t["mapped_bytes"] - t["reserve_bytes"]
    frag = 1 - t["in_use_bytes"] / held if held else 0.0
    assert abs(doc["totals"]["fragmentation"] - frag) < 1e-6
    k = doc["counters"]
    assert k["malloc_small"] >= k["free_small"], "no more small frees than mallocs"
    assert doc["large"]["peak_bytes"] >= doc["large"]["mapped_bytes"] >= doc["large"]["live_bytes"]
    # the medium classes: 14 per power of two 2^b from 2^9, eight 2^(b - 5)
    # apart in its first quarter, six 2^(b - 3) apart above, in 1 MiB regions
    MEDIUM, HEADER = 1 << 20, 3 * 4096   # the header: descriptor and a bit per 16 bytes
    mc, m = doc["medium_classes"], doc["medium"]
    assert len(mc) == 112, "112 medium classes"
    for i, c in enumerate(mc):
        b, j = 9 + i // 14, i % 14
        want = (1 << b) + ((j + 1) << (b - 5)) if j < 8 else (j + 3) << (b - 3)
        assert c["block_size"] == want, f"medium class {i}: block size {c['block_size']}, want {want}"
        blocks = c["blocks_in_use"] + c["free_blocks"] + c["untouched_blocks"]
        # each region: its colour (under 64 KiB), its blocks, and a tail
        # shorter than a block
        full = (MEDIUM - HEADER) // c["block_size"]
        least = full - (64 * 1024 + c["block_size"] - 1) // c["block_size"]
        assert c["pools"] * least <= blocks <= c["pools"] * full, f"medium class {i}: blocks"
        assert blocks * c["block_size"] + c["tail_waste"] == c["pools"] * (MEDIUM - HEADER), \
            f"medium class {i}: blocks and waste add up"
        assert c["tail_waste"] <= c["pools"] * (64 * 1024 + c["block_size"]), f"medium class {i}: waste"
    mparts = ("in_use_bytes", "free_block_bytes", "untouched_bytes", "tail_waste_bytes", "header_bytes",
              "reserve_bytes")
    assert m["mapped_bytes"] == sum(m[p] for p in mparts), "medium parts add up to the mapped bytes"
    assert m["dormant_bytes"] <= m["free_block_bytes"], "dormant blocks are free blocks"
    assert m["mapped_bytes"] == m["regions"] * MEDIUM
    assert m["in_use_bytes"] == sum(c["bytes_in_use"] for c in mc)
    assert m["header_bytes"] == (m["regions"] - m["reserve"]) * HEADER
    assert m["peak"] >= m["regions"]
    assert 0.0 <= doc["fragmentation_all"] <= 1.0


def main(argv):
    files, opts = [], {}
    i = 1
    while i < len(argv):
        if argv[i] == "--class-in-use":
            opts["class"] = tuple(int(x) for x in argv[i + 1:i + 4])
            i += 4
        elif argv[i] == "--reserve-empty":
            opts["reserve"] = True
            i += 1
        elif argv[i] == "--docs":
            opts["docs"] = int(argv[i + 1])
            i += 2
        elif argv[i] == "--min-docs":
            opts["min_docs"] = int(argv[i + 1])
            i += 2
        else:
            files.append(argv[i])
            i += 1
    docs = []
    for f in files:
        with open(f) as fh:
            docs += [json.loads(line) for line in fh if line.strip()]
    assert docs, "no report"
    if "docs" in opts:
        assert len(docs) == opts["docs"], f"{len(docs)} documents, expected {opts['docs']}"
    if "min_docs" in opts:
        assert len(docs) >= opts["min_docs"], f"{len(docs)} documents, expected at least {opts['min_docs']}"
    for d in docs:
        check(d)
    last = docs[-1]
    if "class" in opts:
        size, lo, hi = opts["class"]
        n = last["classes"][(size - 1) // 16]["blocks_in_use"]
        assert lo <= n <= hi, f"{n} blocks in use in the class of {size}, expected {lo}..{hi}"
    if opts.get("reserve"):
        assert last["arenas"]["reserve"] == 0, "reserve empty after malloc_trim"
    print(f"ok: {len(docs)} report(s) consistent")


if __name__ == "__main__":
    try:
        main(sys.argv)
    except AssertionError as e:
        print(f"FAIL: {e}")
        sys.exit(1)
