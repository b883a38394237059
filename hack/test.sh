#!/usr/bin/env bash
# The README's test command (`make test`): sets everything up on a fresh machine and runs
# unit tests and sanity on the oldest and newest supported ansible-core, ansible-lint, then
# the integration tests against a local fleet of real Kubernetes API servers, then Molecule.
#
# The static checks (unit, ansible-lint, sanity) need no fleet: they run in the background,
# beside the Go builds, the fleet and the integration tests (which spend much of their time
# waiting), and their output is printed in full once they end. Every step prints its time.
set -euo pipefail
# byte-code cached for every Python process of the run (see the Makefile)
unset PYTHONDONTWRITEBYTECODE
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

cleanup() {
    kill "$static_pid" 2>/dev/null || true
    .venv/bin/python -m hack.fleet down || true
    # the second integration shard's fleet (hack/integration.py stops it itself unless interrupted)
    MESHOPS_FLEET_DIR="$PWD/.fleet-shard1" .venv/bin/python -m hack.fleet down >/dev/null 2>&1 || true
}
trap cleanup EXIT

step "Go builds (cached under ~/.cache/meshops)"
.venv/bin/python -m hack.fleet build

step "local fleet"
# four clusters: three to mesh, a fourth to add to a running mesh
export MESHOPS_FLEET_CLUSTERS="${MESHOPS_FLEET_CLUSTERS:-4}"
.venv/bin/python -m hack.fleet up --clusters "$MESHOPS_FLEET_CLUSTERS"
.venv/bin/python -m hack.fleet status

step "integration tests against the fleet (hack/integration.py; MESHOPS_INTEGRATION_SHARDS=2 runs two fleets side by side)"
# CI stops everything after MESHOPS_CI_LIMIT seconds (90 min): the tests get what is left of it,
# less about 7 minutes for Molecule and the static checks' report, then pytest is interrupted and
# prints what failed and why, which a killed run would not.
integration_budget=$(( ${MESHOPS_CI_LIMIT:-5400} - 420 - ($(date +%s) - T0) ))
integration_rc=0
MESHOPS_INTEGRATION_BUDGET="${MESHOPS_INTEGRATION_BUDGET:-$integration_budget}" \
    .venv/bin/python -m hack.integration -- -v --durations=25 || integration_rc=$?
.venv/bin/python -m hack.fleet status

molecule_rc=0
if [[ $integration_rc -eq 0 ]]; then
    step "molecule: the roles against the fleet (converge, idempotence, verify); scenario kind: syntax only"
    bash hack/molecule.sh || molecule_rc=$?
fi

step "static checks: waiting for the background run"
static_rc=0
wait "$static_pid" || static_rc=$?
cat "$static_log"

step "done in $(( $(date +%s) - T0 ))s: static checks rc=$static_rc, integration rc=$integration_rc, molecule rc=$molecule_rc"
[[ $static_rc -eq 0 && $integration_rc -eq 0 && $molecule_rc -eq 0 ]]
