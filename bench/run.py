#!/usr/bin/env python3
"""bench/run.py: run the benchmark suite under every allocator and write the report.

Called by scripts/bench (which installs the packages and builds first); can be
run by hand once build-bench/ holds the programs:

    python3 bench/run.py [--quick] [--reps N] [--build DIR] [--allocators a,b]
                         [--only REGEX] [--no-callgrind] [--out NAME]
                         [--extra NAME=PATH ...]

Every benchmark program runs once per allocator per repetition (bench_idle,
which measures memory over seconds of idling, only in the first), the
allocator preloaded with LD_PRELOAD (glibc: no preload).  Allocators alternate
for each benchmark, their order rotating from one repetition to the next, so
that a slow spell of the (shared, noisy) machine falls on all of them.  Each
run is its own process: wall time from the runner, peak RSS from wait4's
ru_maxrss, ops/s from the program's own BENCH line or Google Benchmark's JSON.
Every figure in the table is the median of the repetitions, with min-max.
Instruction counts come from one callgrind run of bench_ops per allocator
(exact and repeatable; no repetitions needed).

--extra NAME=PATH (repeatable) adds any allocator by the path of a shared
library to preload; it is measured like the others and gets a column of its
own in every table.  The published table (latest) stays reproducible from
Debian packages alone: with --extra the report is written as NAME = extra
(quick-extra with --quick) unless --out says otherwise.

Writes bench/results/NAME.md, NAME.json and NAME.png (NAME: latest, or quick
with --quick).  Never fails because a benchmark is slow: a crash or a non-zero
exit is recorded in the report's failure list, with the command that
reproduces it, and the run goes on.  Exit status: 0, or 1 when a run failed.
"""
import argparse
import datetime
import json
import math
import os
import re
import shlex
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BENCH_DIR = os.path.join(ROOT, "bench")
RESULTS_DIR = os.path.join(BENCH_DIR, "results")

# name -> (soname to find with ldconfig, Debian package); glibc is no preload.
ALLOCATOR_SONAMES = [
    ("glibc", None, "libc6"),
    ("jemalloc", "libjemalloc.so.2", "libjemalloc2"),
    ("mimalloc", "libmimalloc.so.2", "libmimalloc2.0"),
    ("tcmalloc", "libtcmalloc_minimal.so.4", "libtcmalloc-minimal4"),
    ("tbbmalloc", "libtbbmalloc_proxy.so.2", "libtbbmalloc2"),
    ("poolmalloc", None, None),
]
# A pseudo-allocator for the python rows only: CPython's own pymalloc
# (no PYTHONMALLOC, no preload).
PYMALLOC = "pymalloc"

# Single-thread and a few threaded instances: the quick run and the chart.
HEADLINE_MICRO = [
    "BM_pair/16", "BM_pair/64", "BM_pair/256", "BM_pair/512",
    "BM_pair_random/512", "BM_pair_random/1000",
    "BM_batch<kFifo>/1000", "BM_batch<kLifo>/1000", "BM_batch<kRandom>/1000",
    "BM_calloc/512", "BM_realloc_step/1024", "BM_aligned/64", "BM_aligned/4096",
    "BM_pair/64/real_time/threads:4", "BM_batch<kRandom>/1000/real_time/threads:4",
    "BM_prodcons/64/real_time/threads:2",
]

# Macro workloads: name -> (arguments for the full run, for the quick run)
MACRO_ARGS = {
    "churn": (["16"], ["13"]),
    "frag": (["300000", "8"], ["60000", "3"]),
    "larson": (["4", "1000000", "4", "5000"], ["4", "100000", "2", "5000"]),
    "python": (["2", "60000"], ["1", "15000"]),
    "gcc": (["100"], ["25"]),
    "sqlite": (["60000"], ["8000"]),
}

# bench_idle: MiB of blocks, their sizes, and how long the program then
# waits (past the default decay of 1 s, so that a purge on a timer shows);
# its mode (0: this thread's blocks, 1: an exited thread's) comes first.
IDLE_ARGS = (["64", "8", "16384", "3000"], ["16", "8", "16384", "2500"])

MACRO_DOC = {
    "churn": "object-graph churn: trees and lists of small records built and dropped (bench/churn.c)",
    "frag": "fragmentation: 90% of the live blocks freed at random and reallocated in another size band, "
            "then 90% freed (bench/frag.c)",
    "larson": "larson-style server: 4 threads each replace random blocks among 5000 of 8..1000 bytes; "
              "each round new threads inherit the old ones' blocks (bench/larson.c)",
    "python": "python3 building and dropping dicts, tuples, instances, strings with PYTHONMALLOC=malloc, "
              "so the preloaded allocator serves every object (bench/py_objects.py); the pymalloc column is "
              "the same script with CPython's own pymalloc (no PYTHONMALLOC, no preload), the design "
              "poolmalloc follows",
    "gcc": "gcc -O2 compiling a generated C file (cc1 inherits the preload)",
    "sqlite": "sqlite3 :memory: running a generated script: inserts, indexes, joins, updates, deletes",
}


def log(msg):
    print("[bench] " + msg, file=sys.stderr, flush=True)


# ---------------------------------------------------------------------------
# Running one process
# ---------------------------------------------------------------------------
class Result:
    def __init__(self, rc, wall, maxrss_kb, out, err):
        self.rc, self.wall, self.maxrss_kb, self.out, self.err = rc, wall, maxrss_kb, out, err


RUSAGE_WRAPPER = None  # build-bench/bench/bench_rusage, set in main()


def run_process(cmd, env, timeout, stdin_path=None, cwd=None):
    """Run cmd; wall time, ru_maxrss (KiB, descendants included) and exit status.

    Through bench_rusage when it is built (see bench/rusage.c: a child of this
    python3 process would inherit its peak RSS), with the preload handed over
    in BENCH_LD_PRELOAD so that the wrapper itself runs on glibc's malloc."""
    if RUSAGE_WRAPPER:
        fd, ru_file = tempfile.mkstemp(prefix="ru-")
        os.close(fd)
        env = dict(env)
        pre = env.pop("LD_PRELOAD", None)
        if pre:
            env["BENCH_LD_PRELOAD"] = pre
        try:
            r = _run_process([RUSAGE_WRAPPER, ru_file] + list(cmd), env, timeout, stdin_path, cwd)
            with open(ru_file) as f:
                kv = dict(x.split("=", 1) for x in f.read().split())
            r.wall, r.maxrss_kb, r.rc = float(kv["wall_s"]), int(kv["maxrss_kb"]), int(kv["status"])
        except (OSError, KeyError, ValueError):
            pass  # killed (timeout) or no report: keep the outer figures and status
        finally:
            os.unlink(ru_file)
        return r
    return _run_process(cmd, env, timeout, stdin_path, cwd)


def _run_process(cmd, env, timeout, stdin_path=None, cwd=None):
    with tempfile.TemporaryFile() as fo, tempfile.TemporaryFile() as fe:
        fin = open(stdin_path, "rb") if stdin_path else subprocess.DEVNULL
        try:
            t0 = time.perf_counter()
            p = subprocess.Popen(cmd, env=env, stdout=fo, stderr=fe, stdin=fin, cwd=cwd,
                                 start_new_session=True)
            killer = threading.Timer(timeout, lambda: os.killpg(p.pid, signal.SIGKILL))
            killer.start()
            try:
                _, status, ru = os.wait4(p.pid, 0)
            finally:
                killer.cancel()
            wall = time.perf_counter() - t0
            rc = os.waitstatus_to_exitcode(status)
            p.returncode = rc
        finally:
            if stdin_path:
                fin.close()
        fo.seek(0)
        fe.seek(0)
        return Result(rc, wall, ru.ru_maxrss, fo.read().decode(errors="replace"),
                      fe.read().decode(errors="replace"))


def parse_bench_line(text):
    """The BENCH key=value line of a C program or of py_objects.py."""
    for line in text.splitlines():
        if line.startswith("BENCH "):
            d = {}
            for kv in line.split()[1:]:
                k, _, v = kv.partition("=")
                try:
                    d[k] = float(v)
                except ValueError:
                    d[k] = v
            return d
    return None


# ---------------------------------------------------------------------------
# Allocators
# ---------------------------------------------------------------------------
def ldconfig_paths():
    paths = {}
    try:
        out = subprocess.run(["ldconfig", "-p"], capture_output=True, text=True).stdout
    except OSError:
        out = ""
    for line in out.splitlines():
        m = re.match(r"\s*(\S+) \((.*)\) => (\S+)", line)
        if m:
            paths.setdefault(m.group(1), m.group(3))
    return paths


def find_allocators(build_dir, wanted):
    found, missing = {}, {}
    lc = ldconfig_paths()
    libdirs = ["/usr/lib/x86_64-linux-gnu", "/usr/lib64", "/usr/lib", "/usr/local/lib"]
    for name, soname, pkg in ALLOCATOR_SONAMES:
        if wanted and name not in wanted:
            continue
        if name == "glibc":
            found[name] = None
            continue
        if name == "poolmalloc":
            if os.environ.get("BENCH_POOLMALLOC_BROKEN"):
                missing[name] = os.environ["BENCH_POOLMALLOC_BROKEN"]
                continue
            path = os.environ.get("POOLMALLOC_LIB") or os.path.join(build_dir, "libpoolmalloc.so")
            if os.path.exists(path):
                found[name] = os.path.realpath(path)
            else:
                missing[name] = "%s not built" % path
            continue
        path = lc.get(soname)
        if not path:
            for d in libdirs:
                if os.path.exists(os.path.join(d, soname)):
                    path = os.path.join(d, soname)
                    break
        if path:
            found[name] = os.path.realpath(path)
        else:
            missing[name] = "%s not found (Debian package %s)" % (soname, pkg)
    return found, missing


def base_env():
    env = {k: v for k, v in os.environ.items()
           if k not in ("LD_PRELOAD", "PYTHONMALLOC", "MALLOC_CONF", "MIMALLOC_SHOW_STATS")
           and not k.startswith("POOLMALLOC_")}
    env["LC_ALL"] = "C"
    return env


def alloc_env(alloc, path):
    env = base_env()
    if path:
        env["LD_PRELOAD"] = path
    return env


def check_preload(alloc, path):
    """True when the library is really mapped into a preloaded process."""
    if not path:
        return True, ""
    r = run_process([sys.executable, "-c", "print(open('/proc/self/maps').read())"],
                    alloc_env(alloc, path), 30)
    if r.rc != 0:
        return False, "python3 with it preloaded exited %d: %s" % (r.rc, r.err.strip()[-300:])
    if path not in r.out and os.path.basename(path) not in r.out:
        return False, "not mapped into a preloaded process"
    return True, ""


def pkg_version(pkg):
    if not pkg:
        return ""
    try:
        return subprocess.run(["dpkg-query", "-W", "-f=${Version}", pkg], capture_output=True,
                              text=True).stdout.strip()
    except OSError:
        return ""


# ---------------------------------------------------------------------------
# Inputs for the real programs
# ---------------------------------------------------------------------------
def gen_c_file(path, nfuncs):
    """A large C file: structs, tables, switches, calls between functions."""
    with open(path, "w") as f:
        f.write("/* generated by bench/run.py */\n#include <string.h>\n")
        for i in range(nfuncs):
            f.write("struct rec_%d { int a; long b; double c; char name[16]; struct rec_%d *next; };\n" % (i, i))
            f.write("static const int table_%d[] = {%s};\n" % (i, ", ".join(str((i * 31 + k * 17) % 1000) for k in range(24))))
            callee = "f_%d(x - 1, 0)" % (i - 1) if i else "x"
            f.write("int f_%d(int x, struct rec_%d *r);\n" % (i, i))
            f.write("int f_%d(int x, struct rec_%d *r) {\n  int s = 0;\n" % (i, i))
            f.write("  for (int k = 0; k < 24; k++) s += table_%d[k] * (x + k);\n" % i)
            f.write("  switch (x & 7) {\n")
            for c in range(8):
                f.write("  case %d: s += %d * x - (s >> %d); break;\n" % (c, i + c, c + 1))
            f.write("  }\n  if (r) { if (s > %d) r->b = s * 3L; else r->c = s / 2.0;\n" % (i * 7 % 5000))
            f.write("    strcpy(r->name, \"f%d\"); if (r->next) s += r->next->a; }\n" % (i % 100000))
            f.write("  return s + (x > 0 ? %s : 0);\n}\n" % callee)


def gen_sql(path, n):
    """A sqlite3 script: explicit inserts (parser work), indexes, joins, updates, deletes."""
    words = ["alpha", "beta", "gamma", "delta", "epsilon", "zeta", "eta", "theta", "iota", "kappa"]
    with open(path, "w") as f:
        f.write("CREATE TABLE t(id INTEGER PRIMARY KEY, name TEXT, grp INTEGER, val REAL, note TEXT);\n")
        f.write("CREATE TABLE u(id INTEGER PRIMARY KEY, ref INTEGER, payload BLOB);\nBEGIN;\n")
        for i in range(n):
            w = words[i % 10] + words[(i * 7) % 10][: (i % 5) + 1]
            f.write("INSERT INTO t VALUES(%d, '%s%d', %d, %.3f, '%s');\n"
                    % (i, w, i, i % 97, (i * 7919 % 10007) / 13.0, "note-" * (1 + i % 6)))
        f.write("COMMIT;\n")
        f.write("CREATE INDEX t_grp ON t(grp);\nCREATE INDEX t_name ON t(name);\n")
        f.write("INSERT INTO u(ref, payload) WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c "
                "WHERE x < %d) SELECT x %% %d, randomblob(16 + x %% 200) FROM c;\n" % (n, max(n // 2, 1)))
        f.write("SELECT grp, count(*), avg(val), max(name) FROM t GROUP BY grp ORDER BY 2 DESC LIMIT 5;\n")
        f.write("SELECT count(*), sum(length(u.payload)) FROM t JOIN u ON u.ref = t.id;\n")
        f.write("UPDATE t SET note = note || '-x', val = val * 1.5 WHERE id % 3 = 0;\n")
        f.write("DELETE FROM t WHERE id % 5 = 0;\nDELETE FROM u WHERE id % 4 = 0;\n")
        f.write("SELECT count(*) FROM t a JOIN t b ON a.grp = b.grp AND b.id > a.id AND b.id < a.id + 300;\n")
        f.write("SELECT length(group_concat(name)) FROM (SELECT name FROM t ORDER BY val LIMIT 5000);\n")
        f.write("SELECT name, count(*) FROM t GROUP BY substr(name, 1, 4) ORDER BY 2 DESC LIMIT 3;\n")
        f.write("VACUUM;\n")
    return n + 14


# ---------------------------------------------------------------------------
# The benchmark list
# ---------------------------------------------------------------------------
class Bench:
    def __init__(self, name, kind, cmd, ops=None, stdin=None, extra_env=None, python=False, doc=""):
        self.name, self.kind, self.cmd, self.ops = name, kind, cmd, ops
        self.stdin, self.extra_env, self.python, self.doc = stdin, extra_env or {}, python, doc


def ere_escape(s):
    return re.sub(r"([.\[\](){}*+?|^$\\])", r"\\\1", s)


def micro_benches(bindir, quick, only):
    micro = os.path.join(bindir, "bench_micro")
    if not os.path.exists(micro):
        log("bench_micro not built (Google Benchmark missing?): no microbenchmarks")
        SKIPPED.append("microbenchmarks (bench_micro not built: Debian package libbenchmark-dev)")
        return []
    names = subprocess.run([micro, "--benchmark_list_tests"], capture_output=True, text=True,
                           env=base_env()).stdout.split()
    if quick:
        names = [n for n in names if n in HEADLINE_MICRO]
    min_time = "0.01" if quick else "0.05"
    out = []
    for n in names:
        if only and not re.search(only, n):
            continue
        out.append(Bench(n, "micro", [micro, "--benchmark_filter=^%s$" % ere_escape(n),
                                      "--benchmark_format=json", "--benchmark_min_time=" + min_time]))
    return out


SKIPPED = []  # benchmarks that could not run here, with the reason, for the report


def macro_benches(bindir, datadir, quick, only):
    idx = 1 if quick else 0
    a = {k: v[idx] for k, v in MACRO_ARGS.items()}
    out = [
        Bench("churn", "macro", [os.path.join(bindir, "bench_churn")] + a["churn"]),
        Bench("frag", "macro", [os.path.join(bindir, "bench_frag")] + a["frag"]),
        Bench("larson", "macro", [os.path.join(bindir, "bench_larson")] + a["larson"]),
        Bench("python", "macro", ["/usr/bin/python3", os.path.join(BENCH_DIR, "py_objects.py")] + a["python"],
              extra_env={"PYTHONMALLOC": "malloc"}, python=True),
    ]
    gcc = shutil.which("gcc")
    if gcc:
        nf = int(a["gcc"][0])
        src = os.path.join(datadir, "gen_%d.c" % nf)
        gen_c_file(src, nf)
        out.append(Bench("gcc", "macro", [gcc, "-O2", "-w", "-c", src, "-o", "/dev/null"], ops=nf))
    else:
        SKIPPED.append("gcc (no gcc)")
    sq = shutil.which("sqlite3")
    if sq:
        n = int(a["sqlite"][0])
        sql = os.path.join(datadir, "gen_%d.sql" % n)
        nstmt = gen_sql(sql, n)
        out.append(Bench("sqlite", "macro", [sq, ":memory:"], ops=nstmt, stdin=sql))
    else:
        SKIPPED.append("sqlite (no sqlite3; Debian package sqlite3)")
    idle = IDLE_ARGS[idx]
    out.append(Bench("idle", "idle", [os.path.join(bindir, "bench_idle"), "0"] + idle))
    out.append(Bench("idle_exited", "idle", [os.path.join(bindir, "bench_idle"), "1"] + idle))
    for b in out:
        b.doc = MACRO_DOC.get(b.name, "")
    return [b for b in out if not only or re.search(only, b.name)]


# ---------------------------------------------------------------------------
# One run of one benchmark under one allocator
# ---------------------------------------------------------------------------
def run_one(b, alloc, path, tmpdir, timeout):
    env = alloc_env(alloc, path)
    env.update(b.extra_env)
    if alloc == PYMALLOC:
        env.pop("PYTHONMALLOC", None)
    stats_file = None
    if alloc == "poolmalloc" and b.name == "frag":
        stats_file = os.path.join(tmpdir, "pm_frag_stats.json")
        if os.path.exists(stats_file):
            os.unlink(stats_file)
        env["POOLMALLOC_STATS"] = "json"
        env["POOLMALLOC_STATS_FILE"] = stats_file
    r = run_process(b.cmd, env, timeout, stdin_path=b.stdin)
    rec = {"rc": r.rc, "wall": r.wall, "rss_kb": r.maxrss_kb}
    if r.rc != 0:
        tail = r.err.strip() or ("" if b.kind == "micro" else "\n".join(r.out.strip().splitlines()[-5:]))
        if r.rc > 128 or r.rc < 0:
            sig = r.rc - 128 if r.rc > 128 else -r.rc
            try:
                tail = "killed by %s\n%s" % (signal.Signals(sig).name, tail)
            except ValueError:
                pass
        rec["error"] = tail[-600:]
        rec["repro"] = repro_command(b, env)
        return rec
    if b.kind == "micro":
        try:
            bm = json.loads(r.out)["benchmarks"][0]
            ips = bm.get("items_per_second")
            rec["ops_per_s"] = ips
            rec["ns_per_op"] = 1e9 / ips if ips else None
        except (ValueError, KeyError, IndexError):
            rec["rc"] = -1000
            rec["error"] = "no JSON from Google Benchmark: " + r.out[-300:] + r.err[-300:]
            rec["repro"] = repro_command(b, env)
        return rec
    d = parse_bench_line(r.out)
    if d:
        rec["ops"] = d.get("ops")
        rec["ops_per_s"] = d.get("ops_per_s")
        rec["seconds"] = d.get("seconds")
        for k in ("vmhwm_kb", "vmrss_kb", "live_kb", "live_blocks", "start_kb", "full_kb", "after_kb", "back_ms"):
            if k in d:
                rec[k] = d[k]
    elif b.ops:
        rec["ops"] = b.ops
        rec["ops_per_s"] = b.ops / r.wall
    if stats_file and os.path.exists(stats_file):
        try:
            with open(stats_file) as f:
                docs = [json.loads(line) for line in f if line.strip()]
            tot = docs[-1].get("totals", {})
            rec["pm_fragmentation"] = tot.get("fragmentation")
            rec["pm_totals"] = tot
        except (ValueError, IndexError, AttributeError) as e:
            rec["pm_stats_error"] = str(e)
    return rec


def repro_command(b, env):
    keep = {k: v for k, v in env.items() if k in ("LD_PRELOAD", "PYTHONMALLOC") or k.startswith("POOLMALLOC_")}
    s = " ".join("%s=%s" % (k, shlex.quote(v)) for k, v in sorted(keep.items()))
    s += " " + " ".join(shlex.quote(c) for c in b.cmd)
    if b.stdin:
        s += " < " + shlex.quote(b.stdin)
    return s.strip()


# ---------------------------------------------------------------------------
# Instruction counts with callgrind
# ---------------------------------------------------------------------------
# The functions of bench/ops.c that run a scenario: the inclusive cost of the
# calls they make is split between allocating (malloc, calloc, realloc,
# aligned_alloc) and freeing.
OPS_SCENARIO_FUNCTIONS = {"pair", "pair_random", "batch", "batch_big", "batch_medium", "calloc_pair", "realloc_step",
                          "realloc_step64", "realloc_double", "aligned", "aligned_range", "tree_build", "tree_drop"}


def parse_callgrind_dump(path):
    """(scenario name, total instructions, [allocating, freeing] instructions) of one dump."""
    name = summary = None
    names = {}
    split = [0, 0]
    cur = callee = None
    after_calls = False
    with open(path) as f:
        for line in f:
            if after_calls:  # the inclusive cost of the call just named
                after_calls = False
                parts = line.split()
                if (cur in OPS_SCENARIO_FUNCTIONS and callee and callee not in OPS_SCENARIO_FUNCTIONS
                        and len(parts) >= 2):
                    split[1 if "free" in callee else 0] += int(parts[1])
                continue
            if line.startswith("desc: Trigger: Client Request: "):
                name = line.partition("Client Request: ")[2].strip()
            elif line.startswith("summary: "):
                summary = int(line.split()[1])
            elif line.startswith(("fn=", "cfn=")):
                m = re.match(r"c?fn=\((\d+)\)(?: (.*))?", line.rstrip("\n"))
                if m:
                    if m.group(2):  # a recursive call's name carries a suffix: tree_build'2
                        names[m.group(1)] = re.sub(r"'\d+$", "", m.group(2))
                    if line.startswith("fn="):
                        cur = names.get(m.group(1))
                    else:
                        callee = names.get(m.group(1))
            elif line.startswith("calls="):
                after_calls = True
    return name, summary, split


def callgrind_counts(bindir, allocs, n, tmpdir, jobs, timeout):
    ops = os.path.join(bindir, "bench_ops")
    vg = shutil.which("valgrind")
    if not vg or not os.path.exists(ops):
        log("valgrind or bench_ops missing: no instruction counts")
        SKIPPED.append("instruction counts (no valgrind)")
        return {}, []

    def one(item):
        alloc, path = item
        d = tempfile.mkdtemp(prefix="cg-%s-" % alloc, dir=tmpdir)
        env = alloc_env(alloc, path)
        cmd = [vg, "--tool=callgrind", "--callgrind-out-file=" + os.path.join(d, "cg.out"), ops, str(n)]
        r = run_process(cmd, env, timeout)
        if r.rc != 0:
            return alloc, None, {"alloc": alloc, "bench": "callgrind bench_ops", "rc": r.rc,
                                 "error": r.err.strip()[-600:],
                                 "repro": ("LD_PRELOAD=%s " % path if path else "") + " ".join(cmd)}
        counts = {}
        nops = {}
        for line in r.out.splitlines():
            m = re.match(r"OPS name=(\S+) ops=(\d+)", line)
            if m:
                nops[m.group(1)] = int(m.group(2))
        for fn in sorted(os.listdir(d), key=lambda x: int(x.rsplit(".", 1)[1]) if x[-1].isdigit() else 0):
            name, summary, split = parse_callgrind_dump(os.path.join(d, fn))
            if name in nops and summary is not None:
                counts[name] = summary / nops[name]
                counts[name + " split"] = [split[0] / nops[name], split[1] / nops[name]]
        shutil.rmtree(d, ignore_errors=True)
        return alloc, counts, None

    result, failures = {}, []
    items = [(a, p) for a, p in allocs.items() if a != PYMALLOC]
    with ThreadPoolExecutor(max_workers=jobs) as ex:
        for alloc, counts, fail in ex.map(one, items):
            if counts is not None:
                result[alloc] = counts
            if fail:
                failures.append(fail)
    return result, failures


# ---------------------------------------------------------------------------
# Statistics and the report
# ---------------------------------------------------------------------------
def summarize(values):
    values = [v for v in values if v is not None]
    if not values:
        return None
    return {"median": statistics.median(values), "min": min(values), "max": max(values), "n": len(values)}


def fmt_num(x):
    if x is None:
        return "—"
    a = abs(x)
    if a >= 1000:
        return "%.0f" % x
    if a >= 100:
        return "%.0f" % x
    if a >= 10:
        return "%.1f" % x
    return "%.2f" % x


def fmt_si(x):
    if x is None:
        return "—"
    for div, suf in ((1e9, "G"), (1e6, "M"), (1e3, "k")):
        if abs(x) >= div:
            return fmt_num(x / div) + suf
    return fmt_num(x)


def fmt_cell(s, base, spread=True, fmt=fmt_num):
    if s is None:
        return "—"
    out = fmt(s["median"])
    if spread and s.get("n", 1) > 1:
        out += " [%s–%s]" % (fmt(s["min"]), fmt(s["max"]))
    if base:
        out += " **%.2f×**" % (s["median"] / base)
    return out


def machine_info():
    info = {"date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")}
    info["nproc"] = os.cpu_count()
    try:
        info["nproc"] = int(subprocess.run(["nproc"], capture_output=True, text=True).stdout)
    except (OSError, ValueError):
        pass
    model = "?"
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    model = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    info["cpu"] = model
    info["kernel"] = os.uname().release
    try:
        info["glibc"] = subprocess.run(["ldd", "--version"], capture_output=True, text=True).stdout.splitlines()[0]
    except (OSError, IndexError):
        info["glibc"] = "?"
    try:
        info["git"] = subprocess.run(["git", "-C", ROOT, "describe", "--always", "--dirty"], capture_output=True,
                                     text=True).stdout.strip()
    except OSError:
        info["git"] = "?"
    try:
        with open("/proc/loadavg") as f:
            info["loadavg"] = " ".join(f.read().split()[:3])
    except OSError:
        pass
    return info


def short_label(name):
    s = name.replace("BM_", "").replace("/real_time", "").replace("<k", " ").replace(">", "")
    s = re.sub(r"/threads:(\d+)", r" x\1", s)
    return s.replace("/", " ")


def write_report(out_base, data):
    allocs = data["allocators"]
    cols = [a for a in allocs if a != PYMALLOC]
    res = data["results"]
    lines = []
    mi = data["machine"]
    lines.append("# poolmalloc benchmarks (%s)\n" % ("quick run" if data["quick"] else "full run"))
    lines.append("- Date: %s; poolmalloc %s" % (mi["date"], mi.get("git", "?")))
    lines.append("- Machine: %s CPUs (`nproc`), %s, Linux %s, %s; load average at the start %s"
                 % (mi["nproc"], mi["cpu"], mi["kernel"], mi["glibc"], mi.get("loadavg", "?")))
    vers = ", ".join("%s %s" % (a, data["versions"].get(a) or "") for a in cols)
    lines.append("- Allocators: %s" % vers)
    if data["missing"]:
        lines.append("- Not measured: " + "; ".join("%s (%s)" % kv for kv in data["missing"].items()))
    if data.get("skipped"):
        lines.append("- Skipped: " + "; ".join(data["skipped"]))
    lines.append("- Command: `%s`; %d repetitions, allocators alternating; every figure is the median, "
                 "[min–max] across repetitions, **ratio** to glibc (below 1: better than glibc)."
                 % (data["command"], data["reps"]))
    lines.append("")

    def table(title, note, rows, key, colset, unit_scale=1.0, spread=True, fmt=fmt_num):
        present = [r for r in rows if r in res]
        if not present:
            return
        lines.append("## " + title + "\n")
        if note:
            lines.append(note + "\n")
        lines.append("| benchmark | " + " | ".join(colset) + " |")
        lines.append("|---|" + "---|" * len(colset))
        for r in present:
            cells = []
            base = None
            g = summarize([x.get(key) * unit_scale if x.get(key) is not None else None
                           for x in res[r].get("glibc", []) if x["rc"] == 0])
            if g:
                base = g["median"]
            for a in colset:
                runs = res[r].get(a)
                if runs is None:
                    cells.append("")
                    continue
                bad = [x for x in runs if x["rc"] != 0]
                s = summarize([x.get(key) * unit_scale if x.get(key) is not None else None
                               for x in runs if x["rc"] == 0])
                c = fmt_cell(s, base if a != "glibc" else None, spread, fmt)
                if bad:
                    c += " (%d failed)" % len(bad)
                cells.append(c)
            lines.append("| %s | %s |" % (r, " | ".join(cells)))
        lines.append("")

    micro_rows = [b for b in data["order"] if data["kinds"][b] == "micro"]
    macro_rows = [b for b in data["order"] if data["kinds"][b] == "macro"]
    macro_cols = cols + ([PYMALLOC] if PYMALLOC in allocs else [])
    table("Microbenchmarks: nanoseconds per operation (lower is better)",
          "Google Benchmark, bench/micro.cc; one operation = one malloc+free pair (one realloc call for realloc); "
          "threaded rows (`threads:N`) are aggregate throughput of N threads in real time.",
          micro_rows, "ns_per_op", cols)
    if data["instructions"]:
        lines.append("## Instructions per operation, single thread (callgrind, lower is better)\n")
        lines.append("bench/ops.c under `valgrind --tool=callgrind`, %d operations after as many for warm-up; "
                     "exact and repeatable. In brackets: the instructions spent in the allocating calls "
                     "(malloc, calloc, realloc, aligned_alloc) + those in free; the rest (about 12) is the loop "
                     "itself.\n" % data["callgrind_n"])
        lines.append("| benchmark | " + " | ".join(cols) + " |")
        lines.append("|---|" + "---|" * len(cols))
        names = []
        for a in cols:
            for n in data["instructions"].get(a, {}):
                if n not in names and not n.endswith(" split"):
                    names.append(n)
        for n in names:
            base = data["instructions"].get("glibc", {}).get(n)
            cells = []
            for a in cols:
                v = data["instructions"].get(a, {}).get(n)
                sp = data["instructions"].get(a, {}).get(n + " split")
                if v is None:
                    cells.append("—")
                else:
                    cells.append("%.0f" % v + (" (%.0f+%.0f)" % tuple(sp) if sp and sum(sp) else "")
                                 + (" **%.2f×**" % (v / base) if base and a != "glibc" else ""))
            lines.append("| %s | %s |" % (n, " | ".join(cells)))
        lines.append("")
    table("Macro workloads: wall time in seconds (lower is better)",
          "\n".join("- **%s**: %s" % (b, MACRO_DOC.get(b, "")) for b in macro_rows),
          macro_rows, "wall", macro_cols)
    table("Macro workloads: throughput in operations per second (higher is better)",
          "The program's own count of allocations and frees over its own timing (python: objects created; "
          "gcc: functions compiled, sqlite: statements run, both over the wall time).",
          macro_rows, "ops_per_s", macro_cols, fmt=fmt_si)
    table("Macro workloads: peak RSS in MiB (ru_maxrss, lower is better)", "", macro_rows, "rss_kb", macro_cols,
          unit_scale=1 / 1024)
    if "frag" in res:
        lines.append("## Fragmentation workload (bench/frag.c)\n")
        lines.append("Peak and final RSS in MiB (the program's own VmHWM and VmRSS), against the MiB still "
                     "requested at the end (surviving blocks and the program's two arrays). held/live is "
                     "(final RSS - RSS at start) / live: the memory held per byte in use once 90% of the "
                     "blocks are gone (1.0: no overhead at all). The last column is poolmalloc's own "
                     "figure from its exit report (`POOLMALLOC_STATS=json`): 1 - in use / held, pools only.\n")
        lines.append("| allocator | peak RSS | final RSS | live | held/live | poolmalloc fragmentation |")
        lines.append("|---|---|---|---|---|---|")
        for a in cols:
            runs = [x for x in res["frag"].get(a, []) if x["rc"] == 0]
            if not runs:
                continue
            pk = summarize([x.get("vmhwm_kb") for x in runs])
            fi = summarize([x.get("vmrss_kb") for x in runs])
            lv = summarize([x.get("live_kb") for x in runs])
            st = summarize([x.get("start_kb") for x in runs])
            fr = summarize([x.get("pm_fragmentation") for x in runs])
            ratio = ((fi["median"] - (st["median"] if st else 0)) / lv["median"]
                     if fi and lv and lv["median"] else None)
            lines.append("| %s | %s | %s | %s | %s | %s |" % (
                a, fmt_num(pk["median"] / 1024) if pk else "—", fmt_num(fi["median"] / 1024) if fi else "—",
                fmt_num(lv["median"] / 1024) if lv else "—", "%.2f" % ratio if ratio else "—",
                "%.1f %%" % (100 * fr["median"]) if fr else ("—" if a != "poolmalloc" else "no report")))
        lines.append("")

    idle_rows = [b for b in ("idle", "idle_exited") if b in res]
    if idle_rows:
        lines.append("## Idle memory (bench/idle.c)\n")
        mib, lo, hi, wait = IDLE_ARGS[1 if data.get("quick") else 0]
        lines.append("A program allocates %s MiB of blocks of %s .. %s bytes, writes them, frees them all "
                     "and then calls nothing for %.1f s: RSS in MiB with every block live, at the end of the "
                     "wait, and when it first came within 8 MiB of the start (—: never). *own*: the thread "
                     "that allocated them frees them; *exited thread's*: a thread allocates them and exits, "
                     "and 1.5 s later the main thread frees them. One run each (the first repetition); "
                     "not in the geometric means below.\n" % (mib, lo, hi, int(wait) / 1000))
        lines.append("| allocator | " + " | ".join("%s: full | %s: idle | %s: back after" % (w, w, w)
                     for w in ("own" if r == "idle" else "exited thread's" for r in idle_rows)) + " |")
        lines.append("|---|" + "---|---|---|" * len(idle_rows))
        for a in cols:
            cells = []
            for r in idle_rows:
                runs = [x for x in res[r].get(a, []) if x["rc"] == 0]
                fu = summarize([x.get("full_kb") for x in runs])
                af = summarize([x.get("after_kb") for x in runs])
                back = [x.get("back_ms") for x in runs if x.get("back_ms") is not None]
                back_ok = sorted(b for b in back if b >= 0)
                cells += [fmt_num(fu["median"] / 1024) if fu else "—", fmt_num(af["median"] / 1024) if af else "—",
                          ("%.2f s" % (back_ok[len(back_ok) // 2] / 1000) if len(back_ok) * 2 > len(back) else "—")]
            if any(c != "—" for c in cells):
                lines.append("| %s | %s |" % (a, " | ".join(cells)))
        lines.append("")

    # Standing: geometric means of the ratios to glibc, and poolmalloc's worst rows.
    def medians(key, rows, a):
        out = {}
        for r in rows:
            s = summarize([x.get(key) for x in res.get(r, {}).get(a, []) if x["rc"] == 0])
            if s:
                out[r] = s["median"]
        return out

    lines.append("## Standing\n")
    lines.append("Geometric mean of the ratio to glibc (below 1: better than glibc).\n")
    lines.append("| measure | " + " | ".join(cols) + " |")
    lines.append("|---|" + "---|" * len(cols))
    groups = [("micro time", "ns_per_op", micro_rows), ("macro wall time", "wall", macro_rows),
              ("macro peak RSS", "rss_kb", macro_rows)]
    for label, key, rows in groups:
        g = medians(key, rows, "glibc")
        cells = []
        for a in cols:
            m = medians(key, rows, a)
            rs = [m[r] / g[r] for r in m if r in g and g[r] > 0 and m[r] > 0]
            cells.append("%.2f (%d)" % (math.exp(sum(map(math.log, rs)) / len(rs)), len(rs)) if rs else "—")
        lines.append("| %s | %s |" % (label, " | ".join(cells)))
    if data["instructions"]:
        g = data["instructions"].get("glibc", {})
        cells = []
        for a in cols:
            m = data["instructions"].get(a, {})
            rs = [m[r] / g[r] for r in m if g.get(r) and not r.endswith(" split")]
            cells.append("%.2f (%d)" % (math.exp(sum(map(math.log, rs)) / len(rs)), len(rs)) if rs else "—")
        lines.append("| instructions | %s |" % " | ".join(cells))
    lines.append("")
    behind = []
    if "poolmalloc" in cols:
        others = [a for a in cols if a != "poolmalloc"]
        for label, key, rows in groups:
            pm = medians(key, rows, "poolmalloc")
            om = {a: medians(key, rows, a) for a in others}
            for r, v in pm.items():
                cand = [(om[a][r], a) for a in others if r in om[a] and om[a][r] > 0]
                if cand:
                    best, who = min(cand)
                    je = om.get("jemalloc", {}).get(r)
                    behind.append((v / best, label, r, who, v / je if je else None))
        behind.sort(reverse=True)
        if behind:
            lines.append("Where poolmalloc is furthest behind the best allocator of each row "
                         "(poolmalloc's figure over the best one's; against jemalloc in brackets):\n")
            for ratio, label, r, who, vs_je in behind[:6]:
                lines.append("- %s, %s: %.2f× %s%s" % (label, r, ratio, who,
                                                        " (%.2f× jemalloc)" % vs_je if vs_je else ""))
            lines.append("")
    if data["failures"]:
        lines.append("## Failures\n")
        for f in data["failures"]:
            lines.append("- %s under %s: exit %s; reproduce with `%s`" % (f["bench"], f["alloc"], f["rc"], f.get("repro", "")))
            if f.get("error"):
                lines.append("  ```\n  %s\n  ```" % f["error"][-500:].replace("\n", "\n  "))
        lines.append("")
    if os.path.exists(out_base + ".png"):
        lines.append("![ratios to glibc](%s.png)\n" % os.path.basename(out_base))
    with open(out_base + ".md", "w") as f:
        f.write("\n".join(lines))
    return behind


def write_chart(out_base, data, workdir):
    gp = shutil.which("gnuplot")
    if not gp:
        log("gnuplot missing: no chart")
        return False
    res = data["results"]
    cols = [a for a in data["allocators"] if a not in ("glibc", PYMALLOC)]
    if "poolmalloc" in cols:  # first, in red
        cols = ["poolmalloc"] + [a for a in cols if a != "poolmalloc"]
    if not cols:
        return False
    colors = {"poolmalloc": "#d62728", "jemalloc": "#9467bd", "mimalloc": "#2ca02c", "tcmalloc": "#1f77b4",
              "tbbmalloc": "#ff7f0e"}

    def dat(path, rows, key):
        n = 0
        with open(path, "w") as f:
            f.write("bench " + " ".join(cols) + "\n")
            for r in rows:
                g = summarize([x.get(key) for x in res.get(r, {}).get("glibc", []) if x["rc"] == 0])
                if not g or not g["median"]:
                    continue
                vals = []
                for a in cols:
                    s = summarize([x.get(key) for x in res.get(r, {}).get(a, []) if x["rc"] == 0])
                    vals.append("%.4f" % (s["median"] / g["median"]) if s else "NaN")
                f.write('"%s" %s\n' % (short_label(r), " ".join(vals)))
                n += 1
        return n

    micro_rows = [b for b in data["order"] if data["kinds"][b] == "micro" and b in HEADLINE_MICRO]
    macro_rows = [b for b in data["order"] if data["kinds"][b] == "macro"]
    d1, d2, d3 = (os.path.join(workdir, n) for n in ("micro.dat", "macro.dat", "rss.dat"))
    n1, n2, n3 = dat(d1, micro_rows, "ns_per_op"), dat(d2, macro_rows, "wall"), dat(d3, macro_rows, "rss_kb")
    panels = [(d1, n1, "Microbenchmarks: time per operation, ratio to glibc (log scale; lower is better)"),
              (d2, n2, "Macro workloads: wall time, ratio to glibc"),
              (d3, n3, "Macro workloads: peak RSS, ratio to glibc")]
    panels = [p for p in panels if p[1] > 0]
    if not panels:
        return False
    script = os.path.join(workdir, "chart.gp")
    with open(script, "w") as f:
        f.write('set terminal pngcairo size 1400,%d font "sans,10" noenhanced\n' % (330 * len(panels) + 60))
        f.write('set output "%s.png"\n' % out_base)
        f.write('set multiplot layout %d,1 title "poolmalloc and peers against glibc (%s, %s)"\n'
                % (len(panels), data["machine"]["date"], "quick" if data["quick"] else "full"))
        f.write("set style data histogram\nset style histogram cluster gap 1\n")
        f.write("set style fill solid 0.85 border -1\nset boxwidth 0.9\n")
        f.write("set logscale y 2\nset yrange [0.0625:8]\nset grid ytics\nset key top left horizontal\n")
        f.write("set xtics rotate by -30 scale 0\nset arrow from graph 0, first 1 to graph 1, first 1 nohead lw 2 lc rgb 'black' front\n")
        for path, n, title in panels:
            f.write('set title "%s"\n' % title)
            f.write("set xrange [-0.6:%f]\n" % (n - 0.4))
            f.write("plot " + ", ".join(
                "'%s' using (column(%d) > 8 ? 8 : column(%d) < 0.0625 ? 0.0625 : column(%d)):xtic(1) "
                "title columnheader(%d) lc rgb '%s'" % (path, i + 2, i + 2, i + 2, i + 2, colors.get(a, "#7f7f7f"))
                for i, a in enumerate(cols)) + "\n")
        f.write("unset multiplot\n")
    r = subprocess.run([gp, script], capture_output=True, text=True)
    if r.returncode != 0:
        log("gnuplot failed: " + r.stderr[-500:])
        return False
    return True


# ---------------------------------------------------------------------------
def parse_extras(items):
    """--extra NAME=PATH arguments -> {NAME: PATH}, in order; a bad one ends the run."""
    known = {n for n, _, _ in ALLOCATOR_SONAMES} | {PYMALLOC}
    out = {}
    for item in items:
        name, sep, path = item.partition("=")
        if not sep or not path or not re.fullmatch(r"[A-Za-z0-9_.+-]+", name):
            sys.exit("bench/run.py: --extra wants NAME=PATH (NAME of letters, digits, _.+-), got %r" % item)
        if name in known or name in out:
            sys.exit("bench/run.py: --extra %s: that column name is already taken" % name)
        out[name] = path
    return out


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="headline subset, small inputs (under a minute)")
    ap.add_argument("--reps", type=int, default=None, help="repetitions (default 3)")
    ap.add_argument("--build", default=os.path.join(ROOT, "build-bench"), help="the CMake build directory")
    ap.add_argument("--allocators", default="", help="comma-separated subset (default: all found)")
    ap.add_argument("--only", default="", help="regular expression: run only the matching benchmarks "
                    "(the instruction counts run when it matches 'callgrind')")
    ap.add_argument("--no-callgrind", action="store_true", help="skip the instruction counts")
    ap.add_argument("--out", default=None, help="report base name in bench/results (default latest/quick)")
    ap.add_argument("--extra", action="append", default=[], metavar="NAME=PATH",
                    help="also measure the allocator in the shared library PATH (preloaded), under the "
                    "column NAME; repeatable")
    ap.add_argument("--timeout", type=float, default=180, help="seconds before a run is killed")
    args = ap.parse_args()
    user_args, skip = [], False  # the command line as given, less --build
    for x in sys.argv[1:]:
        if skip:
            skip = False
        elif x == "--build":
            skip = True
        elif not x.startswith("--build="):
            user_args.append(x)
    reps = args.reps or 3
    extras = parse_extras(args.extra)
    out_name = args.out or ("quick" if args.quick else "latest") + ("-extra" if extras else "")
    if out_name == "latest-extra":
        out_name = "extra"
    bindir = os.path.join(args.build, "bench")
    global RUSAGE_WRAPPER
    if os.path.exists(os.path.join(bindir, "bench_rusage")):
        RUSAGE_WRAPPER = os.path.join(bindir, "bench_rusage")
    else:
        log("bench_rusage not built: peak RSS includes the harness's own")
    wanted = [a for a in args.allocators.split(",") if a]
    if wanted and "glibc" not in wanted:
        wanted.append("glibc")  # every ratio is to glibc
    t_start = time.time()

    allocs, missing = find_allocators(args.build, [a for a in wanted if a != PYMALLOC])
    for name, path in extras.items():
        if os.path.exists(path):
            allocs[name] = os.path.realpath(path)
        else:
            missing[name] = "%s does not exist" % path
    for a, p in list(allocs.items()):
        ok, why = check_preload(a, p)
        if not ok:
            missing[a] = why
            del allocs[a]
    if not wanted or PYMALLOC in wanted:
        allocs[PYMALLOC] = None
    for a, p in allocs.items():
        log("allocator %-10s %s" % (a, p or "(no preload)"))
    for a, why in missing.items():
        log("allocator %-10s skipped: %s" % (a, why))

    os.makedirs(RESULTS_DIR, exist_ok=True)
    workdir = tempfile.mkdtemp(prefix="pm-bench-")
    datadir = os.path.join(args.build, "bench-data")
    os.makedirs(datadir, exist_ok=True)
    benches = micro_benches(bindir, args.quick, args.only) + macro_benches(bindir, datadir, args.quick, args.only)
    log("%d benchmarks x %d allocators x %d repetitions" % (len(benches), len(allocs), reps))

    results, failures = {}, []
    names = [a for a in allocs if a != PYMALLOC]
    for rep in range(reps):
        order = names[rep % len(names):] + names[:rep % len(names)]
        t_rep = time.time()
        for b in benches:
            if b.kind == "idle" and rep > 0:
                continue   # memory, not time: one run tells it, and each run waits seconds
            run_allocs = order + ([PYMALLOC] if b.python and PYMALLOC in allocs else [])
            for a in run_allocs:
                rec = run_one(b, a, allocs[a], workdir, args.timeout)
                results.setdefault(b.name, {}).setdefault(a, []).append(rec)
                if rec["rc"] != 0:
                    failures.append({"bench": b.name, "alloc": a, "rc": rec["rc"], "error": rec.get("error", ""),
                                     "repro": rec.get("repro", "")})
                    log("FAILED %s under %s (exit %d): %s" % (b.name, a, rec["rc"], rec.get("repro", "")))
        log("repetition %d/%d done in %.0f s" % (rep + 1, reps, time.time() - t_rep))

    instructions, cg_n = {}, 0
    if not args.no_callgrind and (not args.only or re.search(args.only, "callgrind")):
        cg_n = 5000 if args.quick else 40000
        t_cg = time.time()
        instructions, cg_fail = callgrind_counts(bindir, allocs, cg_n, workdir, max(1, os.cpu_count() or 1),
                                                 args.timeout * 3)
        failures += cg_fail
        log("callgrind done in %.0f s" % (time.time() - t_cg))

    data = {
        "quick": args.quick, "reps": reps, "allocators": list(allocs), "missing": missing,
        "versions": {a: ("" if a in ("glibc", PYMALLOC, "poolmalloc") else
                         "(%s)" % allocs[a] if a in extras else
                         pkg_version(dict((n, p) for n, _, p in ALLOCATOR_SONAMES).get(a)))
                     for a in allocs},
        "extras": {a: allocs[a] for a in extras if a in allocs},
        "machine": machine_info(), "command": "scripts/bench" + "".join(" " + shlex.quote(x) for x in user_args),
        "order": [b.name for b in benches], "kinds": {b.name: b.kind for b in benches},
        "commands": {b.name: " ".join(shlex.quote(c) for c in b.cmd) for b in benches},
        "results": results, "failures": failures, "instructions": instructions, "callgrind_n": cg_n,
        "skipped": SKIPPED,
    }
    data["versions"]["glibc"] = data["machine"]["glibc"].split()[-1] if data["machine"].get("glibc") else ""
    if "poolmalloc" in allocs:
        data["versions"]["poolmalloc"] = data["machine"].get("git", "")
    out_base = os.path.join(RESULTS_DIR, out_name)
    with open(out_base + ".json", "w") as f:
        json.dump(data, f, separators=(",", ":"))
    write_chart(out_base, data, workdir)
    behind = write_report(out_base, data)
    shutil.rmtree(workdir, ignore_errors=True)
    log("wrote %s.md, .json%s in %.0f s" % (out_base, ", .png" if os.path.exists(out_base + ".png") else "",
                                              time.time() - t_start))
    for ratio, label, r, who, _ in behind[:3]:
        log("poolmalloc behind: %s %s %.2fx %s" % (label, r, ratio, who))
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
