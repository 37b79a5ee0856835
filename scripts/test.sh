#!/usr/bin/env bash
# Every test: set-up, code generation, the compiled binary, then `bun test`. Ends with
# "N passed, M failed".
set -uo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh || exit 1
BUN=node_modules/.bin/bun
$BUN scripts/gen.ts || exit 1
$BUN scripts/build-native.ts || exit 1
$BUN scripts/build.ts || exit 1
mkdir -p .tmp
typecheck=0
if ! node_modules/.bin/tsc --noEmit -p .; then
  echo "typecheck: tsc --noEmit failed" >&2
  typecheck=1
fi
# Full runs on one machine take turns: the check below would count another run's files and
# cgroups as this run's leftovers, and the suites share fixed names (cgroups, containerd's).
exec 9>/run/lock/tsrun-test.lock && flock 9
# The suite, between two snapshots of what it could leave on the machine (scripts/leftovers.ts),
# which count as one more test. As root it runs in a mount namespace of its own whose / is made
# shared first, as systemd makes it on most hosts: a test that mounts in a namespace of its own
# without first making its mounts slave or private then leaks the mount back into this
# namespace, where the check sees it. One run there is enough: a shared / is the stricter case
# (what leaves nothing there leaves nothing on a private /, as on the CI VM), and a second run
# would double the suite's ~40 s for nothing. `unshare --mount` makes the namespace's mounts
# private first, so they share nothing with the host's, and no leak reaches the host's table.
run_suite() {
  if [ "$(id -u)" -eq 0 ]; then mount --make-rshared / || return 1; fi
  $BUN scripts/leftovers.ts run bash -c '$BUN test "$@" 2>&1 | tee .tmp/test.log; echo "${PIPESTATUS[0]}" >.tmp/test.status' bun-test "$@"
}
export -f run_suite
export BUN
echo 1 >.tmp/test.status
if [ "$(id -u)" -eq 0 ]; then
  unshare --mount bash -c 'run_suite "$@"' run_suite "$@"
else
  run_suite "$@"
fi
leftovers=$?
status=$(cat .tmp/test.status)
pass=$(grep -Eo '^ *[0-9]+ pass$' .tmp/test.log | tail -1 | grep -Eo '[0-9]+' || echo 0)
fail=$(grep -Eo '^ *[0-9]+ fail$' .tmp/test.log | tail -1 | grep -Eo '[0-9]+' || echo 0)
skip=$(grep -Eo '^ *[0-9]+ skip$' .tmp/test.log | tail -1 | grep -Eo '[0-9]+' || echo 0)
if [ "$status" -ne 0 ] && [ "$fail" -eq 0 ]; then fail=1; fi
# The strict typecheck counts as one test.
if [ "$typecheck" -eq 0 ]; then pass=$((pass + 1)); else fail=$((fail + 1)); status=1; fi
# So does leaving nothing behind.
if [ "$leftovers" -eq 0 ]; then pass=$((pass + 1)); else fail=$((fail + 1)); status=1; fi
if [ "$pass" -eq 0 ] && [ "$fail" -eq 0 ]; then echo "no test ran" >&2; fail=1; fi
line="$pass passed, $fail failed"
[ "$skip" -gt 0 ] && line="$line, $skip skipped"
echo "$line"
[ "$fail" -eq 0 ] && [ "$status" -eq 0 ]
