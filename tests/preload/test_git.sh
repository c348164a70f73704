#!/usr/bin/env bash
# git under poolmalloc: a fresh repository with a few hundred generated files,
# several commits, a branch and a merge, then log/status/diff/blame/grep/gc/
# fsck/repack. Names, e-mails and dates are fixed, so the two runs (without and
# with poolmalloc) must print exactly the same, commit ids included.
# shellcheck source=tests/preload/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

pm_require git awk
pm_setup

# Runs in its own empty directory; everything it prints is compared.
git_session() {
  set -e
  export HOME="$PWD/home" GIT_CONFIG_NOSYSTEM=1 GIT_CONFIG_GLOBAL="$PWD/home/.gitconfig"
  export GIT_AUTHOR_NAME="Ada Lovelace" GIT_AUTHOR_EMAIL=ada@example.org
  export GIT_COMMITTER_NAME="Charles Babbage" GIT_COMMITTER_EMAIL=charles@example.org
  export TZ=UTC LC_ALL=C GIT_PAGER=cat PAGER=cat
  unset GIT_DIR GIT_WORK_TREE GIT_INDEX_FILE GIT_OBJECT_DIRECTORY
  mkdir -p home
  git config --global init.defaultBranch main
  git config --global pack.threads 1
  git config --global gc.auto 0
  git config --global core.autocrlf false
  git config --global color.ui never
  git config --global advice.detachedHead false
  git init -q repo
  cd repo
  local t=1700000000 round
  stamp() { t=$((t + 3600)); export GIT_AUTHOR_DATE="@$t +0000" GIT_COMMITTER_DATE="@$t +0000"; }
  # Round 0: 300 files in 10 directories; later rounds edit, add, rename, remove.
  mkdir -p dir0 dir1 dir2 dir3 dir4 dir5 dir6 dir7 dir8 dir9
  for round in 0 1 2 3 4; do
    awk -v R="$round" 'BEGIN {
      s = 11 + R
      for (i = 0; i < 300; i++) {
        if (R > 0 && i % (R + 2) != 0) continue
        f = sprintf("dir%d/file%03d.txt", i % 10, i)
        printf "" > f
        for (j = 0; j < 20 + i % 40; j++) {
          s = (s * 1103515245 + 12345) % 2147483648
          printf "line %d of %s round %d value %d\n", j, f, (j % 7 == 0 ? R : 0), (j % 5 == 0 ? int(s / 256) : j) >> f
        }
        close(f)
      }
    }'
    if [[ $round -ge 2 ]]; then
      git mv "dir$round/file00$round.txt" "dir$round/renamed$round.txt" 2>/dev/null || true
      git rm -q "dir$((round + 1))/file0$((round + 1))3.txt" 2>/dev/null || true
    fi
    git add -A
    stamp
    git commit -q -m "round $round" -m "Generated files, round $round."
  done
  git tag -a -m "release one" v1
  # A branch with its own changes, merged back.
  git checkout -q -b topic HEAD~2
  printf 'topic line %d\n' $(seq 1 200) > topic.txt
  sed -i 's/value/VALUE/' dir7/file017.txt
  git add -A; stamp; git commit -q -m "topic work"
  git checkout -q main
  stamp; git merge -q --no-ff -m "merge topic" topic
  echo "== log";        git log --graph --format='%H %an %ad %s' --date=iso-strict --stat=200 | head -n 400
  echo "== rev-list";   git rev-list --all --objects | sort | sha256sum
  echo "== diff";       git diff --stat v1~3 HEAD | tail -n 5; git diff -M v1~3 HEAD | sha256sum
  echo "== show";       git show --format=fuller HEAD~1 | head -n 60
  echo "== blame";      git blame -s --date=iso dir7/file017.txt | head -n 20
  echo "== grep";       git grep -c 'round 4' | head -n 20
  echo "== status";     echo change >> dir0/file000.txt; echo new > untracked.txt; git status --porcelain=v1
  git checkout -q -- dir0/file000.txt; rm untracked.txt
  echo "== gc";         git gc -q --aggressive --prune=now
  echo "== count";      git count-objects -v | grep -E '^(count|in-pack|packs|garbage)'
  echo "== fsck";       git fsck --full --strict --no-progress 2>&1
  echo "== verify";     git verify-pack -v .git/objects/pack/*.idx | awk '$2 ~ /^(commit|tree|blob|tag)$/ {n[$2]++} END {for (k in n) print k, n[k]}' | sort
  echo "== archive";    git archive --format=tar v1 | sha256sum
  echo "== describe";   git describe --tags --long HEAD
  echo "== done"
}
export -f git_session

pm_compare git -- bash -c git_session
[[ $PM_LAST_RC -eq 0 ]] || pm_fail "the git session failed without poolmalloc too: $(tail -n 5 "$PM_TMP/git.ref.err")"
grep -qx '== done' "$PM_TMP/git.pm.out" || pm_fail "the git session did not finish"
pm_check_stats git 10000
pm_log "passed"
