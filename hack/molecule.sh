#!/usr/bin/env bash
# Molecule scenarios of the roles: `default` runs in full against the running local fleet; `kind`
# (two kind clusters, needs Docker, kind, kubectl and helm) gets only `molecule syntax` here, unless
# MESHOPS_MOLECULE_KIND=test asks for the full run on a Docker host.
set -euo pipefail
cd "$(dirname "$0")/.."
mkdir -p build/collections/ansible_collections/meshops
ln -sfn "$PWD" build/collections/ansible_collections/meshops/cilium
export ANSIBLE_COLLECTIONS_PATH="$PWD/build/collections" PATH="$PWD/.venv/bin:$PATH"
export MESHOPS_FLEET_DIR="${MESHOPS_FLEET_DIR:-$PWD/.fleet}"
for scenario in molecule/*/; do
    name=$(basename "$scenario")
    action="test"
    if [[ "$name" == kind && "${MESHOPS_MOLECULE_KIND:-syntax}" != test ]]; then
        action="syntax"
    fi
    echo "[molecule] scenario $name: molecule $action"
    molecule "$action" --scenario-name "$name"
done
