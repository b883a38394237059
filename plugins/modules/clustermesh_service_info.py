#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: meshops.cilium contributors
# SPDX-License-Identifier: Apache-2.0

DOCUMENTATION = r'''
---
module: clustermesh_service_info
short_description: Report which peers' backends of each global Service Cilium has synced into one cluster
version_added: 0.2.0
description:
  - Read-only. For the one cluster the connection options name, reports per global Service (annotation
    C(service.cilium.io/global=true)) and per peer cluster of the mesh how many backends Cilium has synced from
    that peer, read from B(Cilium's own state), not from Kubernetes objects.
  - "Where it reads: Cilium's kvstore (etcd) in the cluster's clustermesh-apiserver pods, through Cilium's own
    debug shell in container C(kvstoremesh): C(clustermesh-apiserver shell -- kvstore/list
    cilium/cache/services/v1/) (what KVStoreMesh synced from every peer; the agents of this cluster read exactly
    that) and C(clustermesh-apiserver shell -- kvstore/list cilium/state/services/v1/<this cluster>/) (what
    this cluster exports of its own global Services, in RV(exported)). The image ships no etcdctl and no
    shell; this is the tool Cilium ships in it (checked in Cilium 1.20.2's source and run against 1.20.2; the
    clustermesh-apiserver of older releases is not verified). Every Running clustermesh-apiserver pod is read
    (each replica has its own etcd)."
  - From Kubernetes it reads only ConfigMap C(cilium-config) (the cluster name), Deployment
    C(clustermesh-apiserver) (whether KVStoreMesh is on), the key names of Secret C(cilium-clustermesh) (the
    peers) and the Services (which are global here, with which ports).
  - "Per Service and peer the state is: V(synced) (backends from that peer are in this cluster's KVStoreMesh,
    as many as the peer exports when O(peers) is given); V(no_backends) (synced, but the peer exports no
    backend: none is ready there); V(not_exported) (with O(peers): the peer exports nothing of it, being
    absent, not global or C(shared=false) there); V(missing) (without O(peers): nothing from that peer, which
    may not export it); V(not_synced) (with O(peers): the peer exports it, nothing of it is in this cluster's
    KVStoreMesh); V(partial) (another backend count than the peer exports); V(ports_differ) (the peer's
    Service has other ports)."
  - "V(not_synced), V(partial) and V(ports_differ) are RV(problems), each naming the cluster, the Service, the
    peer and what to check. So is a global, shared Service of this cluster that its own clustermesh-apiserver
    has not exported (Cilium exports one even without backends)."
  - O(peers) makes the comparison exact. Run this module on every cluster first, then again with O(peers) set
    to the other clusters' results (or just their RV(exported)); without O(peers) a missing entry cannot tell
    "not exported by the peer" from "not synced".
  - Never writes; C(changed) is always false and check mode behaves the same.
  - Needs ClusterMesh with KVStoreMesh (chart default since 1.16); a cluster without it is refused naming the
    chart values to set. Agents without KVStoreMesh keep their remote state in memory only; this module does
    not read them.
author:
  - meshops maintainers (@meshops)
options:
  namespace:
    description: Namespace of Cilium.
    type: str
    default: kube-system
  services:
    description:
      - Only these global Services, each C(namespace/name). Default every global Service of the cluster. A name
        that is not a global Service here is listed in RV(unknown_services).
    type: list
    elements: str
  peers:
    description:
      - By peer cluster name, the result of this module on that peer (or its RV(exported)). Then each peer's own
        export is compared with what this cluster synced of it (backend counts, missing entries).
    type: dict
  exec_timeout:
    description: Seconds one read in one pod may take.
    type: int
    default: 30
  wait:
    description: Read again until nothing is in RV(problems); fail after O(wait_timeout) with the reasons.
    type: bool
    default: false
  wait_timeout:
    description: Seconds to wait with O(wait).
    type: int
    default: 120
  wait_interval:
    description:
      - The longest pause, in seconds, between two reads with O(wait). The first read is repeated after
        0.5 s, and each pause is then half as long again (0.75 s, 1.125 s, ...) up to this.
    type: int
    default: 3
extends_documentation_fragment:
  - meshops.cilium.cluster
  - meshops.cilium.attributes
  - meshops.cilium.attributes.info_module
notes:
  - Needs get on ConfigMaps, Deployments and Secrets in O(namespace), list on Services in every namespace (only
    in the namespaces of O(services) when given), list on Pods and create on C(pods/exec) in O(namespace).
  - Secret values are never read into the result; only the key names of C(cilium-clustermesh) are used.
  - On the collection's local test fleet the clustermesh-apiserver pods run Cilium 1.20.2's own programs, so
    this module reads Cilium's real state there too; the workload pods behind the Services are simulated (they
    get IPs and Ready EndpointSlices but run nothing), so synced backends are not proof that traffic flows.
seealso:
  - module: meshops.cilium.clustermesh_service
  - module: meshops.cilium.clustermesh_status
'''

EXAMPLES = r'''
- name: What each cluster exports and synced
  meshops.cilium.clustermesh_service_info:
    context: "{{ inventory_hostname }}"
  register: sync

# peers are keyed by Cilium cluster name: here each host is named after its cluster
- name: Compare with what every peer exports, and wait until in sync
  meshops.cilium.clustermesh_service_info:
    context: "{{ inventory_hostname }}"
    peers: "{{ dict(peer_hosts | zip(peer_hosts | map('extract', hostvars, 'sync'))) }}"
    wait: true
  vars:
    peer_hosts: "{{ ansible_play_hosts | difference([inventory_hostname]) }}"
'''

RETURN = r'''
cluster:
  description: The Cilium cluster name (ConfigMap C(cilium-config)).
  returned: always
  type: str
  sample: mesh-1
cluster_id:
  description: The Cilium cluster ID (ConfigMap C(cilium-config)).
  returned: always
  type: str
  sample: "1"
peers:
  description: The peers checked (keys of Secret C(cilium-clustermesh) and of O(peers)).
  returned: always
  type: list
  elements: str
  sample: [mesh-2, mesh-3]
global_services:
  description: This cluster's global Services (C(namespace/name)) with their ports and whether they are shared.
  returned: always
  type: dict
  sample: {"demo/echo": {"ports": ["http 80/TCP"], "shared": true}}
exported:
  description: What this cluster exports, from its own kvstore, by C(namespace/name) (C(backends) the count of
    backend IPs). Give it to the same module on the peers through O(peers).
  returned: always
  type: dict
  sample: {"demo/echo": {"cluster": "mesh-1", "backends": 2, "ports": ["http 80/TCP"], "shared": true}}
synced:
  description: What KVStoreMesh synced, by C(namespace/name) then peer (first pod by name).
  returned: always
  type: dict
  sample: {"demo/echo": {"mesh-2": {"backends": 2, "ports": ["http 80/TCP"], "cluster_id": 2, "shared": true}}}
report:
  description: Per global Service of this cluster and per peer, C(state), C(synced), C(backends) (synced here),
    C(expected) (exported by the peer, null without O(peers)), C(ports) and C(reason) (null when synced).
  returned: always
  type: dict
  sample: {"demo/echo": {"mesh-2": {"state": "synced", "synced": true, "backends": 2, "expected": 2,
           "ports": ["http 80/TCP"], "reason": null}}}
problems:
  description: The reasons of every entry not synced, synced partially or with other ports, and of every global,
    shared Service of this cluster not exported by it.
  returned: always
  type: list
  elements: str
in_sync:
  description: True when RV(problems) is empty.
  returned: always
  type: bool
summary:
  description: One line per global Service.
  returned: always
  type: list
  elements: str
  sample: ["demo/echo: mesh-2 2 backend(s) synced, mesh-3 0 backend(s) (no_backends)"]
unknown_services:
  description: Names of O(services) that are not global Services of this cluster.
  returned: always
  type: list
  elements: str
source:
  description: The pods, container and commands read.
  returned: always
  type: dict
attempts:
  description: How many reads were made (more than one with O(wait)).
  returned: always
  type: int
'''

from ansible_collections.meshops.cilium.plugins.module_utils.base import read_until, run_module, wait_argument_spec
from ansible_collections.meshops.cilium.plugins.module_utils.service_sync import SyncParseError, peer_exports, read_sync


def run(m):
    p = m.params
    bad = [s for s in p['services'] or [] if s.count('/') != 1 or not all(s.split('/'))]
    if bad:
        raise SyncParseError('cluster %s: field services: each entry must be namespace/name, got %s'
                             % (m.name, ', '.join(repr(s) for s in bad)))
    if p['peers'] is not None:
        peer_exports(p['peers'])  # refused before any read
    st, attempts = read_until(
        lambda: read_sync(m.cluster, namespace=p['namespace'], exec_timeout=p['exec_timeout'],
                          services=p['services'], peers=p['peers']),
        lambda st: st['in_sync'], p)
    if p['wait'] and not st['in_sync']:
        m.fail('cluster %s: global Services not in sync after %ss (%d reads): %s' % (
            st['cluster'], p['wait_timeout'], attempts, '; '.join(st['problems'])), attempts=attempts, **st)
    m.exit(changed=False, attempts=attempts, **st)


def main():
    run_module(run, dict(
        namespace=dict(type='str', default='kube-system'),
        services=dict(type='list', elements='str'),
        peers=dict(type='dict'),
        exec_timeout=dict(type='int', default=30),
        **dict(wait_argument_spec(timeout=120), wait_interval=dict(type='int', default=3))
    ))


if __name__ == '__main__':
    main()
