#!/usr/bin/env bash
# The README's test command (`make test`): sets everything up on a fresh machine and runs
# unit tests and sanity on the oldest and newest supported ansible-core, ansible-lint, then
# the integration tests against a local fleet of real Kubernetes API servers.
set -euo pipefail
cd "$(dirname "$0")/.."
T0=$(date +%s)
step() { printf '\n=== [%4ss] %s\n' "$(( $(date +%s) - T0 ))" "$*"; }

step "virtual environments (newest and oldest supported ansible-core)"
bash hack/venv.sh .venv
bash hack/venv.sh .venv-oldest

step "unit tests"
bash hack/unit.sh .venv .venv-oldest

step "ansible-lint (production profile)"
bash hack/lint.sh .venv

step "ansible-test sanity"
bash hack/sanity.sh

step "Go builds (cached under ~/.cache/meshops)"
.venv/bin/python -m hack.fleet build

step "local fleet"
cleanup() { .venv/bin/python -m hack.fleet down || true; }
trap cleanup EXIT
# four clusters: three to mesh, a fourth to add to a running mesh
export MESHOPS_FLEET_CLUSTERS="${MESHOPS_FLEET_CLUSTERS:-4}"
.venv/bin/python -m hack.fleet up --clusters "$MESHOPS_FLEET_CLUSTERS"
.venv/bin/python -m hack.fleet status

step "integration tests against the fleet"
.venv/bin/python -m pytest -p no:cacheprovider -ra --durations=15 tests/integration
.venv/bin/python -m hack.fleet status

step "molecule: the roles against the fleet (converge, idempotence, verify)"
bash hack/molecule.sh

step "done in $(( $(date +%s) - T0 ))s"
