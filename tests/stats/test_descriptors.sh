#!/usr/bin/env bash
# What the report does with descriptors.  poolmalloc must take no descriptor
# a program may use, write into none of the program's files, and lose no
# report: it writes to fd 2 only while fd 2 is the stderr the process
# started with, else to that file reopened (or, for a pipe, a copy checked
# before use).  And reports never mix: with POOLMALLOC_STATS_INTERVAL every
# line of the file is one JSON document, even when the program exits while
# an interval report is being written.
set -euo pipefail
: "${POOLMALLOC_LIB:?}" "${PM_SOURCE_DIR:?}"
here="$PM_SOURCE_DIR/tests/stats"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
py=python3; [ -x /usr/bin/python3 ] && py=/usr/bin/python3
lib=$(readlink -f "$POOLMALLOC_LIB")
cc -O1 "$here/fd_workload.c" -o "$tmp/fdw"
fail=0
bad() { echo "FAIL $*"; fail=1; }
has_report() { grep -q '^poolmalloc .* statistics' "$1"; }
same() {  # FILE TEXT: FILE holds exactly TEXT and a newline
  [ "$(cat "$1")" = "$2" ] && [ "$(wc -c < "$1")" = $(( ${#2} + 1 )) ]
}

# 1. bash's own descriptor 900: the data go there, the report to stderr.
LD_PRELOAD="$lib" POOLMALLOC_STATS=1 bash -c 'exec 900>"$1"; echo data >&900' _ "$tmp/bash900" 2> "$tmp/bash.err" ||
  bad "bash exec 900>: exit $?"
same "$tmp/bash900" data || bad "bash exec 900>: the file holds $(wc -c < "$tmp/bash900") bytes: $(head -c 200 "$tmp/bash900")"
has_report "$tmp/bash.err" || bad "bash exec 900>: no report on stderr"

# 2. a program that dup2s its own file onto 900.
LD_PRELOAD="$lib" POOLMALLOC_STATS=1 "$tmp/fdw" dup900 "$tmp/own900" 2> "$tmp/dup.err" || bad "dup900: exit $?"
same "$tmp/own900" data || bad "dup900: the program's file holds $(wc -c < "$tmp/own900") bytes"
has_report "$tmp/dup.err" || bad "dup900: no report on stderr"

# 3. a program that closes 3..1023: its stderr (a file, then a pipe) is
#    still open and gets the report.
LD_PRELOAD="$lib" POOLMALLOC_STATS=1 "$tmp/fdw" closefrom 2> "$tmp/closefrom.err" || bad "closefrom: exit $?"
has_report "$tmp/closefrom.err" || bad "closefrom: no report on stderr (a file)"
{ LD_PRELOAD="$lib" POOLMALLOC_STATS=1 "$tmp/fdw" closefrom 2>&1 >/dev/null; } | cat > "$tmp/closefrom.pipe"
has_report "$tmp/closefrom.pipe" || bad "closefrom: no report on stderr (a pipe)"

# 4. a program that closes its stderr on its way out (ls, as coreutils do):
#    the report still reaches the file or pipe stderr was.
LD_PRELOAD="$lib" POOLMALLOC_STATS=1 ls "$PM_SOURCE_DIR" > /dev/null 2> "$tmp/ls.err" || bad "ls: exit $?"
has_report "$tmp/ls.err" || bad "ls: no report on stderr (a file)"
{ LD_PRELOAD="$lib" POOLMALLOC_STATS=1 ls "$PM_SOURCE_DIR" 2>&1 >/dev/null; } | cat > "$tmp/ls.pipe"
has_report "$tmp/ls.pipe" || bad "ls: no report on stderr (a pipe)"

# 5. a daemon whose journal became fd 2: nothing of ours in the journal,
#    whether the report goes to stderr or to a file that cannot be opened;
#    the report and the warning reach the stderr it started with.
for f in "" "$tmp/no/such/dir/stats"; do
  env LD_PRELOAD="$lib" POOLMALLOC_STATS=1 ${f:+POOLMALLOC_STATS_FILE=$f} "$tmp/fdw" daemon "$tmp/journal" \
    2> "$tmp/daemon.err" || bad "daemon${f:+ with an unopenable file}: exit $?"
  same "$tmp/journal" journal ||
    bad "daemon${f:+ with an unopenable file}: the journal holds: $(head -c 300 "$tmp/journal")"
  has_report "$tmp/daemon.err" || bad "daemon${f:+ with an unopenable file}: no report on the first stderr"
  if [ -n "$f" ]; then
    grep -q 'POOLMALLOC_STATS_FILE=.*cannot be opened' "$tmp/daemon.err" || bad "daemon: no warning on the first stderr"
  fi
done
# ... and with no stderr at all at start: nothing is written anywhere.
LD_PRELOAD="$lib" POOLMALLOC_STATS=1 "$tmp/fdw" daemon "$tmp/journal" 2>&- || bad "daemon, no stderr: exit $?"
same "$tmp/journal" journal || bad "daemon, no stderr: the journal holds: $(head -c 300 "$tmp/journal")"

# 6. interval and exit reports: exits while an interval report is being
#    written (the program waits for the file to grow), and at times around
#    the interval boundary.  Every line parses.  After _exit (tail), the
#    file may end in one unterminated line: exit_group stops the reporting
#    thread's write between two pages, which no user-space code can finish;
#    every complete line must still be one whole document, and nothing may
#    follow the cut.
check_lines() {  # FILE NAME [tail]
  "$py" - "$1" "$2" "${3:-}" <<'PY' || fail=1
import json, sys
lines = open(sys.argv[1], "rb").read().split(b"\n")
tail = None
if lines and lines[-1] == b"":
    lines.pop()
elif sys.argv[3] == "tail" and lines and lines[-1].startswith(b"{"):
    tail = lines.pop()
bad = [i for i, l in enumerate(lines) if not l.startswith(b"{") or not l.endswith(b"}")]
for i, l in enumerate(lines):
    try:
        json.loads(l)
    except ValueError:
        bad.append(i)
if bad or len(lines) + (tail is not None) < 1:
    print("FAIL %s: %d lines, line %s does not parse: %r" % (sys.argv[2], len(lines), sorted(set(bad))[:3], lines[bad[0]][:120] if bad else b""))
    sys.exit(1)
PY
}
for i in 1 2 3 4 5 6; do
  rm -f "$tmp/race.json"
  LD_PRELOAD="$lib" POOLMALLOC_STATS=json POOLMALLOC_STATS_INTERVAL=1 POOLMALLOC_STATS_FILE="$tmp/race.json" \
    "$tmp/fdw" race "$tmp/race.json" || bad "race $i: exit $?"
  check_lines "$tmp/race.json" "race $i"
  n=$(wc -l < "$tmp/race.json")
  [ "$n" -ge 2 ] || bad "race $i: $n reports, want the interval one and the one at exit"
done
for i in 1 2 3; do
  rm -f "$tmp/race.json"
  LD_PRELOAD="$lib" POOLMALLOC_STATS=json POOLMALLOC_STATS_INTERVAL=1 POOLMALLOC_STATS_FILE="$tmp/race.json" \
    "$tmp/fdw" race_now "$tmp/race.json" || bad "race_now $i: exit $?"
  check_lines "$tmp/race.json" "_exit while an interval report is written, $i" tail
done
for ms in 990 995 998 1000 1002 1005 1010 1990 2000 2010; do
  rm -f "$tmp/near.json"
  LD_PRELOAD="$lib" POOLMALLOC_STATS=json POOLMALLOC_STATS_INTERVAL=1 POOLMALLOC_STATS_FILE="$tmp/near.json" \
    "$tmp/fdw" sleep "$ms" || bad "exit after $ms ms: exit $?"
  check_lines "$tmp/near.json" "exit after $ms ms"
done
[ $fail = 0 ] && echo "ok: descriptors and report serialisation"
exit $fail
