#!/usr/bin/env bash
# `make demo`: a local fleet of N clusters, playbooks/site.yml on it, the mesh status as a table.
set -euo pipefail
# byte-code cached for every Python process of the run (see the Makefile)
unset PYTHONDONTWRITEBYTECODE
cd "$(dirname "$0")/.."
clusters="${1:-3}"
say() { printf '\n=== %s\n' "$*"; }

say "local fleet of $clusters clusters"
.venv/bin/python -m hack.fleet up --clusters "$clusters"

mkdir -p build/collections/ansible_collections/meshops
ln -sfn "$PWD" build/collections/ansible_collections/meshops/cilium
export ANSIBLE_COLLECTIONS_PATH="$PWD/build/collections"
export PATH="$PWD/.venv/bin:$PATH"

inventory=inventories/local
if [[ "$clusters" != 3 ]]; then
    inventory=build/inventory-demo
    mkdir -p "$inventory"
    cp -r inventories/local/group_vars "$inventory/"
    {
        echo "mesh:"
        echo "  hosts:"
        for i in $(seq 1 "$clusters"); do printf '    mesh-%d:\n      cilium_cluster_id: %d\n' "$i" "$i"; done
    } > "$inventory/hosts.yml"
    export MESHOPS_FLEET_DIR="$PWD/.fleet"
fi

say "playbooks/site.yml (shared CA, install, connect, verify)"
ansible-playbook -i "$inventory" playbooks/site.yml

say "mesh status"
.venv/bin/python hack/mesh_table.py "$PWD/.fleet/kubeconfig" "$clusters"
echo
echo "The fleet keeps running: export KUBECONFIG=$PWD/.fleet/kubeconfig PATH=$PWD/.fleet/bin:\$PATH"
echo "Stop it with: make fleet-down"
