"""profile_workload.py: the python3 program of the README's flame graph.

    PYTHONMALLOC=malloc POOLMALLOC_PROFILE=1 ./scripts/poolmalloc python3 docs/profile_workload.py /tmp/py.heap

Builds 100,000 records, writes them as JSON, parses them back, indexes them
and splits the text, then asks the preloaded library (pm_profile_dump,
through ctypes) for the heap profile while all of it is alive."""
import sys
import collections, ctypes, json
records = [{"id": i, "name": "user%d" % i, "tags": ["a", "b", str(i)]} for i in range(100000)]
text = json.dumps(records)
parsed = json.loads(text)
index = collections.defaultdict(list)
for r in parsed:
    index[r["name"][:6]].append(r)
words = text.split(",")
path = sys.argv[1] if len(sys.argv) > 1 else "python.heap"
if ctypes.CDLL(None).pm_profile_dump(path.encode()) != 0:
    sys.exit("pm_profile_dump failed (is POOLMALLOC_PROFILE=1 set and libpoolmalloc preloaded?)")
