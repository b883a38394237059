#!/usr/bin/env bash
# The README's test command (`make test`): sets everything up on a fresh machine and runs
# unit tests and sanity on the oldest and newest supported ansible-core, ansible-lint, then
# the integration tests against a local fleet of real Kubernetes API servers, then Molecule.
#
# The static checks (unit, ansible-lint, sanity) need no fleet: they run in the background,
# beside the Go builds, the fleet and the integration tests (which spend much of their time
# waiting), and their output is printed in full once they end. Every step prints its time.
set -euo pipefail
cd "$(dirname "$0")/.."
T0=$(date +%s)
step() { printf '\n=== [%4ss] %s\n' "$(( $(date +%s) - T0 ))" "$*"; }

step "virtual environments (newest and oldest supported ansible-core)"
bash hack/venv.sh .venv
bash hack/venv.sh .venv-oldest

mkdir -p build/ci
static_log=build/ci/static.log
static() {
    local s0=$SECONDS rc=0 t
    for t in "unit tests|bash hack/unit.sh .venv .venv-oldest" \
             "ansible-lint (production profile)|bash hack/lint.sh .venv" \
             "ansible-test sanity|bash hack/sanity.sh"; do
        local name="${t%%|*}" cmd="${t#*|}" start=$SECONDS
        printf '\n=== static: %s\n' "$name"
        if $cmd; then
            printf '=== static: %s passed in %s s\n' "$name" $((SECONDS - start))
        else
            printf '=== static: %s FAILED in %s s\n' "$name" $((SECONDS - start))
            rc=1
        fi
    done
    printf '\n=== static checks done in %s s\n' $((SECONDS - s0))
    return $rc
}
step "static checks (unit, ansible-lint, sanity) started in the background: $static_log"
static > "$static_log" 2>&1 &
static_pid=$!

# The integration tests run as two streams, each against a fleet of its own (the fleet's port base
# sets its loopback addresses, pod CIDRs and netns names, so the two never meet): most of their time
# is spent waiting on API servers, Helm and real pods, so two streams take little more than half of
# one. Stream A takes the files below; stream B every other file (a new file lands there), then
# Molecule. The split follows the "time per test file" table each stream prints at its end.
STREAM_A="test_site.py test_realmesh.py test_realmesh_status.py test_cilium_chart.py test_leaks.py test_fleet.py test_targeting.py"
FLEET_A=(MESHOPS_FLEET_DIR="$PWD/.fleet" MESHOPS_FLEET_PORT_BASE=21000)
FLEET_B=(MESHOPS_FLEET_DIR="$PWD/.fleet-b" MESHOPS_FLEET_PORT_BASE=22000)
files_a=() files_b=()
for f in tests/integration/test_*.py; do
    if [[ " $STREAM_A " == *" $(basename "$f") "* ]]; then files_a+=("$f"); else files_b+=("$f"); fi
done

cleanup() {
    kill "$static_pid" 2>/dev/null || true
    env "${FLEET_A[@]}" .venv/bin/python -m hack.fleet down || true
    env "${FLEET_B[@]}" .venv/bin/python -m hack.fleet down || true
}
trap cleanup EXIT

step "Go builds (cached under ~/.cache/meshops)"
.venv/bin/python -m hack.fleet build

# four clusters per fleet: three to mesh, a fourth to add to a running mesh
export MESHOPS_FLEET_CLUSTERS="${MESHOPS_FLEET_CLUSTERS:-4}"
# stream NAME MOLECULE FILE...: its fleet up, its integration tests, then (when asked and green)
# Molecule; every line it prints is prefixed with [NAME]; its results land in build/ci/*.rc
stream() {
    local name=$1 molecule=$2 rc=0 mrc=0 s0=$SECONDS
    shift 2
    local -a fleet_env
    if [[ $name == a ]]; then fleet_env=("${FLEET_A[@]}"); else fleet_env=("${FLEET_B[@]}"); fi
    {
        echo "=== stream $name: fleet up (${fleet_env[*]})"
        env "${fleet_env[@]}" .venv/bin/python -m hack.fleet up --clusters "$MESHOPS_FLEET_CLUSTERS" &&
            env "${fleet_env[@]}" .venv/bin/python -m hack.fleet status || rc=$?
        if [[ $rc -eq 0 ]]; then
            echo "=== stream $name: integration tests: $*"
            env "${fleet_env[@]}" .venv/bin/python -m pytest -p no:cacheprovider -ra --durations=15 \
                --basetemp "build/ci/pytest-$name" "$@" || rc=$?
            env "${fleet_env[@]}" .venv/bin/python -m hack.fleet status || true
        fi
        if [[ $rc -eq 0 && $molecule == molecule ]]; then
            echo "=== stream $name: molecule: the roles against the fleet (converge, idempotence, verify)"
            env "${fleet_env[@]}" bash hack/molecule.sh || mrc=$?
            echo "$mrc" > build/ci/molecule.rc
        fi
        echo "=== stream $name: done in $((SECONDS - s0)) s: integration rc=$rc"
        echo "$rc" > "build/ci/$name.rc"
    } 2>&1 | sed -u "s/^/[$name] /"
}

step "integration tests: two streams, each on its own local fleet"
rm -f build/ci/a.rc build/ci/b.rc build/ci/molecule.rc
stream b molecule "${files_b[@]}" &
stream_b_pid=$!
stream a - "${files_a[@]}"
wait "$stream_b_pid" || true
rc_a=$(cat build/ci/a.rc 2>/dev/null || echo 99)
rc_b=$(cat build/ci/b.rc 2>/dev/null || echo 99)
integration_rc=0
if [[ $rc_a -ne 0 || $rc_b -ne 0 ]]; then integration_rc=1; fi
# Molecule runs only after a green stream B: no result is a failure unless B already failed
molecule_rc=$(cat build/ci/molecule.rc 2>/dev/null || echo "$rc_b")
step "integration: stream a rc=$rc_a, stream b rc=$rc_b, molecule rc=$molecule_rc"

step "static checks: waiting for the background run"
static_rc=0
wait "$static_pid" || static_rc=$?
cat "$static_log"

step "done in $(( $(date +%s) - T0 ))s: static checks rc=$static_rc, integration rc=$integration_rc, molecule rc=$molecule_rc"
[[ $static_rc -eq 0 && $integration_rc -eq 0 && $molecule_rc -eq 0 ]]
