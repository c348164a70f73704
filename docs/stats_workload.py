# A small-object workload that keeps a live working set: a dict of records,
# most dropped at random and replaced, as a long-running service would.
import random
random.seed(1)
table = {}
for step in range(400000):
    k = random.randrange(100000)
    if k in table and random.random() < 0.6:
        del table[k]
    else:
        table[k] = (str(k) * (k % 7 + 1), [k, k + 1], {"k": k})
live = sorted(table)[:5]
print(len(table), live)
# While the table is alive: ask poolmalloc (preloaded) for its JSON report.
import ctypes, os, sys
if len(sys.argv) > 1:
    fd = os.open(sys.argv[1], os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    ctypes.CDLL(None).pm_stats_write(fd, 2)
    os.close(fd)
