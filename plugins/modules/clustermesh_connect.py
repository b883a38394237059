#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: meshops.cilium contributors
# SPDX-License-Identifier: Apache-2.0

DOCUMENTATION = r'''
---
module: clustermesh_connect
short_description: Connect a Cilium cluster to its ClusterMesh peers
version_added: 0.1.0
description:
  - Declares the peers of one cluster of a Cilium ClusterMesh in its Helm release, in one
    C(helm upgrade) that keeps the deployed chart version and every other user value.
  - Writes C(clustermesh.config.enabled=true) and C(clustermesh.config.clusters), in the form
    the deployed chart version uses (a list of C({name, ips|address, port}) before chart 1.20,
    a map keyed by cluster name from 1.20).
  - Nothing is written when the deployed peers already equal the wanted ones (whatever their
    order or form); the module then reports RV(ignore:changed=false) and makes no Helm call.
  - Before writing, every peer is checked against the local cluster and the other peers, and the
    module refuses, naming both clusters and the field, when names or cluster IDs collide, a
    name is C(default) or an ID is 0, an ID is outside 1..C(max_connected_clusters), the
    C(max_connected_clusters) differ, the CAs differ or one is missing, or a peer has no usable
    endpoint. All problems are reported at once. Nothing is written on a refusal.
  - Connect every member of the mesh (each cluster needs its peers' entries, and with
    C(clustermesh.apiserver.tls.authMode) C(cluster)/C(migration) the clustermesh-apiserver only
    admits peers it lists). Passing the whole mesh to every member is fine; the local cluster
    is skipped.
  - The local cluster's identity comes from ConfigMap C(cilium-config), its CA from Secret
    C(cilium-ca) (the certificate only), the release from its Helm release Secret.
author:
  - meshops maintainers (@meshops)
options:
  peers:
    description:
      - The peers, as descriptors returned by M(meshops.cilium.clustermesh_info). Only
        C(cluster_name) (or C(name)), C(cluster_id), C(max_connected_clusters), C(ca)
        (C(sha256)/C(subject_key_id)) and C(endpoint) (C(ips) or C(address), and C(port)) are
        read; other keys are ignored.
      - A descriptor with the local cluster's name and ID is skipped, so the whole mesh can be
        passed to every member.
      - The CAs are compared by SHA-256 fingerprint, or by SubjectKeyId when a fingerprint is
        missing.
      - Check mode only, C(planned=true) marks a peer that the same run would install first (the
        M(meshops.cilium.cilium) role in C(site.yml)). It has no endpoint or CA yet, so those are not
        checked and the preview shows the endpoint as known once installed. Outside check mode a planned
        peer is refused.
    type: list
    elements: dict
    required: true
  membership:
    description:
      - V(exact) makes the deployed peers exactly O(peers) (peers not listed are removed).
      - V(merge) adds and updates O(peers) and keeps the deployed peers not listed untouched.
    type: str
    choices: [exact, merge]
    default: exact
  remove:
    description:
      - Names of peers to remove from the deployed peers, whatever O(membership) says (with
        V(merge) this is the only way entries are removed).
      - The C(clustermesh) role uses it to take back, on the clusters that connected, a peer
        added in the same run whose own connect failed, so no cluster is left listing a peer
        that does not list it back; C(disconnect.yml) uses it to drop the removed members.
      - A name both in O(peers) and O(remove) is refused before anything is written.
    type: list
    elements: str
    default: []
  local:
    description:
      - This cluster's own descriptor, as M(meshops.cilium.clustermesh_info) returned it earlier in the same
        run (the C(clustermesh) role passes it). Its C(cluster_name), C(cluster_id),
        C(max_connected_clusters) and C(ca) are used instead of reading ConfigMap C(cilium-config) and
        Secret C(cilium-ca) again; the Helm release is always read.
      - Refused, before anything is written, when its C(api_server) is not the API server this module
        connects to (a descriptor of another cluster). Without C(api_server), or when it says Cilium is
        not installed, the cluster is read as without this option.
      - When its C(release) shows the release deployed, with C(clustermesh.config.enabled) and exactly the
        peer entries this task wants (C(release.peers_sha256)), the task answers RV(ignore:changed=false) on
        the controller without running the module (no request; RV(read) says so). Only when the task runs
        synchronously with a C(local) connection, its options name the cluster (O(kubeconfig)/O(context) or
        O(host)) and resolve on the controller to the descriptor's C(api_server), nothing is to be removed,
        no peer is planned and every peer passes the checks; otherwise the module runs as usual.
    type: dict
  helm_binary:
    description:
      - Path or name of the C(helm) binary (3.14 or newer, Helm 4 too; older ones are refused before
        anything is written). Default is C(helm) from E(PATH).
    type: path
  chart_ref:
    description:
      - Chart to upgrade with (a repository chart, an OCI reference or a local path/tgz). The
        deployed chart version is always kept.
      - By default the deployed chart is rebuilt from the Helm release record, which needs no
        access to a chart repository.
    type: str
  wait:
    description:
      - Pass C(--wait) to Helm (wait until the upgraded workloads are Ready). Helm 4 gets
        C(--wait=legacy), Helm 3's readiness rules, so the wait means the same with either.
    type: bool
    default: false
  wait_timeout:
    description:
      - Seconds Helm waits with O(wait).
    type: int
    default: 300
extends_documentation_fragment:
  - meshops.cilium.cluster
  - meshops.cilium.release
  - meshops.cilium.attributes
  - meshops.cilium.attributes.write_module
requirements:
  - cryptography >= 42 (Python library)
  - helm >= 3.14 (binary); Helm 3 and Helm 4 are both tested
notes:
  - Check mode reports the peers that would be added, removed or changed and makes no Helm call.
    The diff shows the peer lists before and after (names and endpoints; per-peer C(tls) material
    is masked).
  - Cost of a peer change (returned as RV(rollout)) - from chart 1.20, with
    C(clustermesh.disableKubernetesHostAliases) (what M(meshops.cilium.cilium_install) sets unless
    O(meshops.cilium.cilium_install#module:peer_host_aliases=true)), no pod restarts, since Cilium's programs
    resolve the peers from their configuration Secret and read it again when it changes. Otherwise,
    with KVStoreMesh on (chart default from 1.16) the peers' IPs are C(hostAliases) of the
    clustermesh-apiserver Deployment, so only that Deployment restarts; with KVStoreMesh off they sit
    on the cilium DaemonSet and every agent of the cluster is rolled.
  - When only the data of the mesh configuration Secrets changes (the mesh configuration already enabled, and
    no C(hostAliases) as above), Helm gets C(--disable-openapi-validation), since the other manifests are the
    deployed revision's, which the API server accepted, and the API server validates what is written anyway. It
    saves Helm the download of the cluster's OpenAPI document and about a third of the upgrade's CPU.
  - Only the C(secret) Helm storage driver (the default) is read.
  - Helm's values are replaced whole (C(--reset-values) with the complete current user values and
    the two ClusterMesh keys changed), so values set by other tools in the release are kept.
seealso:
  - module: meshops.cilium.clustermesh_info
  - module: meshops.cilium.clustermesh_status
  - name: Cilium ClusterMesh
    description: Setting up Cluster Mesh.
    link: https://docs.cilium.io/en/stable/network/clustermesh/clustermesh/
'''

EXAMPLES = r'''
- name: Describe every member of the mesh
  meshops.cilium.clustermesh_info:
    context: "{{ item }}"
  loop: "{{ groups['mesh'] }}"
  register: mesh_info
  run_once: true
  delegate_to: localhost

- name: Connect each member to all others (the local cluster is skipped)
  meshops.cilium.clustermesh_connect:
    context: "{{ inventory_hostname }}"
    peers: "{{ mesh_info.results }}"
  delegate_to: localhost

- name: Add one peer, keeping the others as they are
  meshops.cilium.clustermesh_connect:
    context: mesh-1
    membership: merge
    peers:
      - cluster_name: mesh-4
        cluster_id: 4
        max_connected_clusters: 255
        ca: {sha256: "3A:1F:...:9C"}
        endpoint: {ips: [203.0.113.4], port: 2379}
'''

RETURN = r'''
cluster:
  description: The name this module knows the cluster by (the context, else the host).
  returned: always
  type: str
  sample: mesh-1
local:
  description: The local cluster's identity as read.
  returned: always
  type: dict
  sample: {name: mesh-1, cluster_id: 1, max_connected_clusters: 255}
peers:
  description: Names of the peers configured after the run (sorted).
  returned: always
  type: list
  elements: str
  sample: [mesh-2, mesh-3]
added:
  description: Peers added (or that would be, in check mode).
  returned: always
  type: list
  elements: str
  sample: [mesh-3]
removed:
  description: Peers removed (not in O(peers) with O(membership=exact), or named in O(remove)).
  returned: always
  type: list
  elements: str
  sample: []
changed_peers:
  description: Peers whose endpoint changed.
  returned: always
  type: list
  elements: str
  sample: []
kept:
  description: Deployed peers not in O(peers), kept with O(membership=merge).
  returned: always
  type: list
  elements: str
  sample: []
skipped_self:
  description: Descriptors skipped because they describe the local cluster.
  returned: always
  type: list
  elements: str
  sample: [mesh-1]
rollout:
  description: What the change restarts (no pod, the clustermesh-apiserver only, or every agent); V(null) when nothing changes.
  returned: always
  type: str
  sample: "KVStoreMesh is on: ... restarts only the clustermesh-apiserver pods ..."
kvstoremesh:
  description: Whether KVStoreMesh is on (release value, else chart default).
  returned: always
  type: bool
chart_version:
  description: The deployed chart version, kept by the upgrade.
  returned: always
  type: str
  sample: 1.19.2
clusters_form:
  description: The form written to C(clustermesh.config.clusters), V(list) or V(map).
  returned: always
  type: str
  sample: list
planned:
  description: Peers marked planned (check mode), previewed with their endpoint still unknown.
  returned: always
  type: list
  elements: str
revision:
  description: Release revision after the run.
  returned: always
  type: int
  sample: 3
problems:
  description: On a refusal, every problem found, each naming both clusters and the field.
  returned: failure
  type: list
  elements: dict
  contains:
    clusters:
      description: The two clusters concerned (the same name twice for a local problem).
      type: list
      elements: str
    field:
      description: The field at fault (name, cluster_id, max_connected_clusters, ca, endpoint, endpoint.port).
      type: str
    message:
      description: The problem in words.
      type: str
read:
  description: Only when O(local) answered without the module, and nothing was read; says so.
  returned: when the peers were unchanged by this cluster's descriptor
  type: str
  sample: "this cluster's own descriptor of this run (local): no module process, no request"
written:
  description:
    - Only when the module failed after it had written to the cluster (for example a Helm release revision, then a readiness
      wait failed), what was written. The result then says C(changed=true) and C(msg) ends with what was
      written and how to recover (re-run the task, or the C(helm rollback) command for a release).
  returned: failure after a write
  type: list
  elements: str
  sample: ["Helm release kube-system/cilium revision 6 (chart 1.18.2, status failed)"]
'''

import copy

from ansible_collections.meshops.cilium.plugins.module_utils.base import run_module
from ansible_collections.meshops.cilium.plugins.module_utils.connect import CONNECT_ARGUMENT_SPEC, connect_result
from ansible_collections.meshops.cilium.plugins.module_utils.helm import (
    HelmRunner,
    read_release,
    refuse_pending,
    require_helm,
)
from ansible_collections.meshops.cilium.plugins.module_utils.info import (
    CILIUM_CA,
    CILIUM_CONFIG,
    DecodeError,
    ca_from_secret,
    dig,
    kvstoremesh_enabled,
    parse_cilium_config,
)
from ansible_collections.meshops.cilium.plugins.module_utils.mesh import (
    PLANNED_ADDRESS,
    drop_planned_problems,
    local_from_descriptor,
    local_peer,
    normalize_entries,
    normalize_peer,
    peer_identity_problems,
    peer_summary,
    plan_peers,
    plan_planned_peers,
    remove_conflicts,
    rollout_note,
    secrets_only_change,
    split_self,
    validate_peers,
)
from ansible_collections.meshops.cilium.plugins.module_utils.values import clusters_value, peer_host_aliases, set_path


def read_local(cluster, namespace):
    """The local cluster as a normalized peer (no endpoint needed)."""
    cm = cluster.read_config_map(namespace, CILIUM_CONFIG, missing_ok=True)
    if cm is None:
        return None
    ident = parse_cilium_config(cm)
    secret = cluster.read_secret(namespace, CILIUM_CA, missing_ok=True)
    ca = None
    if secret is not None:
        try:
            ca = ca_from_secret({'data': {'ca.crt': (secret.get('data') or {}).get('ca.crt')}})
        except DecodeError:
            ca = None
    del secret
    return local_peer(ident, ca)


def render_clusters(plan, chart_version):
    """The ``clustermesh.config.clusters`` value in the deployed chart's form.

    Our entries go through ``values.clusters_value``; entries kept by ``membership: merge``
    are written back as they were (with any extra keys), in the same form.
    """
    kept = set(plan['kept'])
    value = clusters_value([e for e in plan['entries'] if e['name'] not in kept
                            and e.get('address') != PLANNED_ADDRESS], chart_version)
    for e in plan['entries']:
        if e['name'] not in kept:
            continue
        rest = dict((k, v) for k, v in e.items() if k != 'name')
        if isinstance(value, dict):
            value[e['name']] = rest
        else:
            entry = {'name': e['name']}
            entry.update(rest)
            value.append(entry)
    if isinstance(value, list):
        value.sort(key=lambda e: e['name'])
    return value


def run(m):
    p = m.params
    ns, rel_name = p['namespace'], p['release_name']
    peers = [normalize_peer(d) for d in p['peers'] if isinstance(d, dict)]
    planned = set(str(d.get('cluster_name') or d.get('name')) for d in p['peers']
                  if isinstance(d, dict) and d.get('planned'))
    if planned and not m.check_mode:
        m.fail('refusing to connect (nothing was changed): peers %s are marked planned (not installed yet); '
               'planned peers are only accepted in check mode. Install Cilium there first (install.yml)'
               % ', '.join(sorted(planned)))
    problems = peer_identity_problems(m.name, peers)  # before connecting
    if problems:
        m.fail('refusing to connect (nothing was changed): %s' % '; '.join(x['message'] for x in problems),
               problems=problems)
    local = None
    if p['local']:
        try:
            local = local_from_descriptor(p['local'], m.connection.server)
        except ValueError as e:
            m.fail('refusing to connect (nothing was changed): %s' % e)
    cluster = m.cluster
    if local is None:
        local = read_local(cluster, ns)
    if local is None:
        m.fail('Cilium is not installed: ConfigMap %s/%s not found' % (ns, CILIUM_CONFIG))
    release = read_release(cluster, ns, rel_name)
    if release is None:
        m.fail('no Helm release "%s" in namespace %s: ClusterMesh peers are Helm values of the Cilium '
               'release (install Cilium with Helm first, or set release_name)' % (rel_name, ns))
    refuse_pending(release)

    peers, skipped = split_self(local, peers)
    peers = plan_planned_peers(peers, planned)
    problems = drop_planned_problems(validate_peers(local, peers), planned)
    for name in remove_conflicts(peers, p['remove']):
        problems.append({'clusters': [local['name'], name], 'field': 'remove',
                         'message': '%s: remove: "%s" is both a peer and to be removed; drop it from one '
                                    'of the two lists' % (local['name'], name)})
    if problems:
        m.fail('refusing to connect (nothing was changed): %s' % '; '.join(x['message'] for x in problems),
               problems=problems)

    values = release.values or {}
    current = dig(values, 'clustermesh.config.clusters')
    enabled = dig(values, 'clustermesh.config.enabled')
    plan = plan_peers(current, peers, p['membership'], remove=p['remove'])
    needs_upgrade = plan['changes'] or enabled is not True
    kvsm = kvstoremesh_enabled(values, release.chart_version)
    desired_value = render_clusters(plan, release.chart_version)

    host_aliases = peer_host_aliases(values, release.chart_version)
    result = connect_result(local, plan, skipped, planned, rollout_note(kvsm, host_aliases)
                            if needs_upgrade else None, kvsm,
                            release.chart_version, 'map' if isinstance(desired_value, dict) else 'list',
                            release.revision)
    before = {'enabled': enabled, 'peers': peer_summary(normalize_entries(current))}
    after = {'enabled': True, 'peers': peer_summary(plan['entries'])}

    if needs_upgrade and not m.check_mode:
        new_values = copy.deepcopy(values)
        set_path(new_values, 'clustermesh.config.enabled', True)
        set_path(new_values, 'clustermesh.config.clusters', desired_value)
        binary, version = require_helm(p['helm_binary'])
        runner = HelmRunner(binary, m.connection, version=version)
        updated = m.write_release(
            lambda: runner.upgrade(rel_name, ns, new_values, chart_ref=p['chart_ref'],
                                   chart_version=release.chart_version if p['chart_ref'] else None,
                                   wait=p['wait'], timeout=p['wait_timeout'] if p['wait'] else None, current=release,
                                   openapi_validation=not secrets_only_change(enabled, host_aliases)),
            lambda: read_release(cluster, ns, rel_name), release)
        if updated is not None:
            result['revision'] = updated.revision
    m.exit(changed=bool(needs_upgrade), before=before, after=after, **result)


def main():
    run_module(run, CONNECT_ARGUMENT_SPEC)


if __name__ == '__main__':
    main()
