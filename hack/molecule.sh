#!/usr/bin/env bash
# Molecule scenarios of the roles, against the running local fleet.
set -euo pipefail
cd "$(dirname "$0")/.."
mkdir -p build/collections/ansible_collections/meshops
ln -sfn "$PWD" build/collections/ansible_collections/meshops/cilium
export ANSIBLE_COLLECTIONS_PATH="$PWD/build/collections" PATH="$PWD/.venv/bin:$PATH"
export MESHOPS_FLEET_DIR="${MESHOPS_FLEET_DIR:-$PWD/.fleet}"
for scenario in molecule/*/; do
    name=$(basename "$scenario")
    echo "[molecule] scenario $name"
    molecule test --scenario-name "$name"
done
