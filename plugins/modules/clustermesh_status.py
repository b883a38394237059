#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: meshops.cilium contributors
# SPDX-License-Identifier: Apache-2.0

DOCUMENTATION = r'''
---
module: clustermesh_status
short_description: Check that a Cilium cluster is connected to its ClusterMesh peers
version_added: 0.1.0
description:
  - Reports, for one cluster, whether its ClusterMesh control plane is Ready, which peers it is
    configured for, and per peer how many agents are configured, connected and ready, like
    C(cilium clustermesh status) does.
  - Read-only. Optionally waits (O(wait)) until everything checked is ready and fails with a
    message naming each thing that is not.
  - "What is checked where:"
  - "B(Control plane), through the Kubernetes API: Deployment C(clustermesh-apiserver) in
    O(namespace) is Ready (current generation observed, every replica updated and Ready);
    ConfigMap C(cilium-config) gives the local cluster name; the expected peers are the keys
    of Secret C(cilium-clustermesh) whose value holds an etcd configuration (C(endpoints:)),
    minus the local name. Only the key names are used; values are never returned."
  - "B(Agents), by exec: C(cilium-dbg status -o json) (falling back to C(cilium status -o json))
    in container C(cilium-agent) of every pod labelled C(k8s-app=cilium), at most O(parallel) at
    a time. Per peer, the entries of C(cluster-mesh.clusters) give configured (listed),
    connected and ready (connected, remote configuration retrieved, nodes, services,
    identities and endpoints synced) counts."
  - "B(KVStoreMesh), by exec, when the clustermesh-apiserver Deployment has a C(kvstoremesh)
    container: C(clustermesh-apiserver kvstoremesh-dbg status -o json) in container
    C(kvstoremesh) of every pod labelled C(k8s-app=clustermesh-apiserver). For a peer that a
    KVStoreMesh pod reports not ready, that pod's
    C(clustermesh-apiserver kvstoremesh-dbg troubleshoot PEER...) (Cilium's own DNS, TCP, TLS and
    etcd checks, from the pod's network with its configuration) gives the cause: its failed
    checks are in the peer's C(causes) and its problem text."
  - "B(Cilium's metrics), with O(metrics=auto): the Prometheus metrics of every running
    clustermesh-apiserver pod, read through the API server's pod proxy (ports named
    C(apiserv-metrics) and C(kvmesh-metrics), on by default in the chart): whether the local
    cluster's state is synced to its own kvstore, and per peer KVStoreMesh's readiness, failure
    count, time of the last failure and whether the peer's state is synced, in RV(metrics). They are
    read once, after any wait, and do not change RV(ready). The metrics only agents export are
    listed in C(docs/troubleshooting.md)."
  - Traffic between clusters is not tested.
author:
  - meshops maintainers (@meshops)
options:
  namespace:
    description:
      - Namespace of Cilium.
    type: str
    default: kube-system
  agent_status:
    description:
      - V(auto) execs into the agents and KVStoreMesh pods. A pod whose status cannot be read is
        reported in RV(agents.unavailable) with the reason. When NOT ONE pod of a kind can be read
        (for example a cluster whose kubelets do not serve exec, or no C(pods/exec) permission),
        that part is reported as unverifiable (RV(verified)) and a warning says so; the control
        plane is still checked. When at least one pod can be read, the unreadable ones count as
        not ready.
      - V(require) treats every unreadable pod as not ready.
      - V(skip) checks only the control plane (no exec).
    type: str
    choices: [auto, require, skip]
    default: auto
  metrics:
    description:
      - V(auto) reads Cilium's own metrics of the clustermesh-apiserver pods into RV(metrics) (needs
        get on C(pods/proxy)); a pod whose metrics cannot be read is named in
        RV(metrics.unavailable) with the reason, and a warning says so.
      - V(skip) reads none (RV(metrics) is null).
    type: str
    choices: [auto, skip]
    default: auto
    version_added: 0.2.0
  parallel:
    description:
      - How many pods are exec'd into at the same time.
    type: int
    default: 8
  exec_timeout:
    description:
      - Seconds one status command may take in one pod.
    type: int
    default: 30
  members:
    description:
      - Read these clusters instead of the one the connection options name, side by side (threads, up to
        32 members at a time), each with only its own O(members[].kubeconfig) and O(members[].context)
        (never the module's own O(host), token or client certificate) and each waiting on its own with O(wait).
      - The result is RV(members), one status per cluster, and RV(ready) when every member is ready; a member
        that cannot be read is a failed entry of RV(members) and a line of RV(not_ready). One task then
        checks a whole mesh (the upgrade role's gate) without one Ansible task per member.
      - The other keys of the result are then only inside RV(members).
    type: list
    elements: dict
    version_added: 0.3.0
    suboptions:
      name:
        description:
          - The member's name, the key of RV(members) (a cluster name, or its inventory host name); also its
            context when O(members[].context) is not given. Unique among the members.
        type: str
        required: true
      kubeconfig:
        description:
          - Path to the member's kubeconfig, or its content as a dictionary (its credentials are never shown).
            Without it, C(~/.kube/config).
        type: raw
      context:
        description:
          - The member's context in its kubeconfig; default O(members[].name).
        type: str
  wait:
    description:
      - Wait until everything checked is ready; fail after O(wait_timeout) with the reasons.
      - While Deployment C(clustermesh-apiserver) is not Ready (a rollout), only it is read, every half second;
        the status commands in the pods run once it is Ready (or at the deadline, for the reasons).
    type: bool
    default: false
  wait_timeout:
    description:
      - Seconds to wait with O(wait).
    type: int
    default: 300
  wait_interval:
    description:
      - The longest pause, in seconds, between two checks with O(wait). The first check is repeated after
        0.5 s, and each pause is then half as long again (0.75 s, 1.125 s, ...) up to this.
    type: int
    default: 5
extends_documentation_fragment:
  - meshops.cilium.cluster
  - meshops.cilium.attributes
  - meshops.cilium.attributes.info_module
notes:
  - Needs get on Deployments, ConfigMaps and Secrets, list on Pods, create on C(pods/exec) and (with
    O(metrics=auto)) get on C(pods/proxy) in O(namespace).
  - The module never fails because the mesh is not ready unless O(wait) is set; read RV(ready)
    and RV(not_ready).
  - What each reason of RV(not_ready) looks like, its cause and its fix (TLS/CA mismatch, unreachable peer,
    wrong port, duplicate or changed identity, KVStoreMesh not synced, pending release, 403) is in
    C(docs/troubleshooting.md) of the collection's repository.
seealso:
  - module: meshops.cilium.clustermesh_connect
  - name: meshops.cilium troubleshooting
    description: The failures the status and the preflight report, their cause and fix.
    link: https://github.com/meshops/cilium/blob/main/docs/troubleshooting.md
  - name: Cluster Mesh troubleshooting
    description: What the status fields mean.
    link: https://docs.cilium.io/en/stable/operations/troubleshooting_clustermesh/
'''

EXAMPLES = r'''
- name: Wait until every agent is connected to every peer
  meshops.cilium.clustermesh_status:
    context: "{{ inventory_hostname }}"
    wait: true
    wait_timeout: 600
  delegate_to: localhost

- name: Control plane only (no exec into pods)
  meshops.cilium.clustermesh_status:
    context: mesh-1
    agent_status: skip
  register: st

- name: What Cilium's own metrics say (KVStoreMesh per peer)
  meshops.cilium.clustermesh_status:
    context: mesh-1
  register: st

- name: Print the metrics line
  ansible.builtin.debug:
    msg: "{{ st.metrics.report }}"
  when: st.metrics is not none

- name: Show the per-peer counts
  ansible.builtin.debug:
    msg: "{{ item.key }}: {{ item.value.summary }}"
  loop: "{{ st.agents.peers | dict2items }}"
  when: not st.agents.skipped | default(false)
'''

RETURN = r'''
cluster:
  description: The name this module knows the cluster by (the context, else the host).
  returned: always
  type: str
  sample: mesh-1
local_name:
  description: C(cluster-name) of C(cilium-config).
  returned: always
  type: str
  sample: mesh-1
ready:
  description: Whether everything checked is ready (see RV(verified) for what could be checked).
  returned: always
  type: bool
  sample: true
not_ready:
  description: One sentence per thing that is not ready, each starting with the cluster name.
  returned: always
  type: list
  elements: str
  sample: ["mesh-1: peer mesh-2 not ready on agent cilium-x2v9k: not connected; 3 failures, last at 2025-11-27T14:05:11Z"]
members:
  description:
    - With O(members), one entry per member, keyed by its name; the other keys of this list except RV(ready)
      and RV(not_ready) are then only inside the entries.
    - "An entry: every key this module returns for one cluster (RV(apiserver), RV(expected_peers), RV(agents),
      RV(kvstoremesh), ...), plus C(cluster), C(attempts) and C(warnings); or, for a member that could not be
      read, C(failed: true) and C(msg) naming the member."
  returned: with O(members)
  type: dict
  version_added: 0.3.0
  sample: {"mesh-1": {"cluster": "mesh-1", "ready": true, "not_ready": [], "expected_peers": ["mesh-2"]}}
clustermesh_enabled:
  description: Whether Deployment C(clustermesh-apiserver) exists.
  returned: always
  type: bool
apiserver:
  description: Deployment C(clustermesh-apiserver).
  returned: always
  type: dict
  contains:
    exists:
      description: Whether it exists.
      type: bool
    ready:
      description: Whether it is Ready and rolled out.
      type: bool
    replicas:
      description: Desired replicas.
      type: int
    ready_replicas:
      description: Ready replicas.
      type: int
    updated_replicas:
      description: Replicas of the current template.
      type: int
config_secret:
  description: Whether Secret C(cilium-clustermesh) exists.
  returned: always
  type: bool
expected_peers:
  description: Peers listed in Secret C(cilium-clustermesh) (key names only), sorted.
  returned: always
  type: list
  elements: str
  sample: [mesh-2, mesh-3]
kvstoremesh_enabled:
  description: Whether the clustermesh-apiserver runs a C(kvstoremesh) container (V(null) without the Deployment).
  returned: always
  type: bool
agents:
  description:
    - The agents' view; only C(skipped=true) with O(agent_status=skip).
  returned: always
  type: dict
  contains:
    total:
      description: Agent pods found.
      type: int
    available:
      description: Agent pods whose status was read.
      type: int
    unavailable:
      description: Pod name to the reason its status could not be read.
      type: dict
    unverifiable:
      description: True when no agent's status could be read with O(agent_status=auto).
      type: bool
    peers:
      description:
        - Peer name to counts, C(configured), C(connected), C(ready) (agents), C(failures) (sum of
          C(num-failures)), C(expected) (listed in the Secret), the pod names C(not_configured),
          C(not_connected), C(not_ready), C(problems) (pod to reason), C(causes) (pod to the failed
          checks of C(kvstoremesh-dbg troubleshoot), KVStoreMesh only), C(ok) and C(summary)
          ("X/Y configured, Z/Y connected, R/Y ready").
      type: dict
kvstoremesh:
  description: The same as RV(agents) for the KVStoreMesh containers; C(skipped=true) when off or skipped.
  returned: always
  type: dict
verified:
  description: What could be checked, V(apiserver), V(agents), V(kvstoremesh) to a boolean.
  returned: always
  type: dict
  sample: {apiserver: true, agents: false, kvstoremesh: false}
simulated:
  description:
    - Sections whose status came from a stand-in that marks its output as simulated (key
      C(meshops-simulated) in the JSON, as the local test fleet's agent stand-in does), to the pod
      names; empty when every answer came from Cilium. The key C(simulated) of RV(agents) and
      RV(kvstoremesh) maps each such pod to the stand-in's reason. A warning is also given.
  returned: always
  type: dict
  sample: {agents: [cilium-abcde, cilium-fghij]}
namespace:
  description: The namespace that was read (O(namespace)).
  returned: always
  type: str
  sample: kube-system
agent_status:
  description: How the agents' status was read (O(agent_status)).
  returned: always
  type: str
  sample: auto
metrics:
  description:
    - Cilium's own metrics of the clustermesh-apiserver pods (O(metrics=auto)); null with
      O(metrics=skip) or when ClusterMesh is not enabled.
  returned: always
  type: dict
  contains:
    report:
      description: One line for people, naming the cluster.
      type: str
      sample: "mesh-1: Cilium metrics: clustermesh-apiserver-5d9c-x2v: local state synced to its kvstore, 0 sync
        errors | KVStoreMesh: 2 remote clusters: mesh-2 ready and synced, no failures; mesh-3 ready and synced,
        1 failure (last 4m ago)"
    peers:
      description:
        - Per peer, the worst over the KVStoreMesh pods, from C(cilium_kvstoremesh_remote_cluster_*) and
          C(cilium_kvstoremesh_kvstore_*) (label C(source_cluster)).
        - C(ready), C(failures), C(last_failure_age) (seconds, null when none), C(synced), C(pending)
          (the kvstore prefixes not synced yet) and C(sync_errors).
      type: dict
    pods:
      description:
        - Per pod, C(apiserver.sync) (the local cluster's state in its kvstore) and C(kvstoremesh)
          (C(remote_clusters), C(peers), C(sync)).
      type: dict
    unavailable:
      description: Pods whose metrics could not be read, with the reason.
      type: dict
attempts:
  description: Number of checks made (more than one with O(wait)).
  returned: always
  type: int
  sample: 1
'''


import time

from ansible_collections.meshops.cilium.plugins.module_utils.base import (
    MEMBERS_SPEC, read_until, run_module, wait_argument_spec)
from ansible_collections.meshops.cilium.plugins.module_utils.metrics import read_metrics
from ansible_collections.meshops.cilium.plugins.module_utils.status import (
    await_apiserver_rollout, read_status, status_result, status_warnings)


def _read(cluster, p):
    """The status of ``cluster`` (waiting with ``p['wait']``: first for the clustermesh-apiserver's rollout,
    read alone) and the number of full reads: (status, attempts)."""
    if p['wait']:
        started = time.time()
        await_apiserver_rollout(cluster, p['namespace'], p['wait_timeout'])
        p = dict(p, wait_timeout=max(0, p['wait_timeout'] - (time.time() - started)))
    st, attempts = read_until(
        lambda: read_status(cluster, namespace=p['namespace'], agent_status=p['agent_status'],
                            parallel=p['parallel'], exec_timeout=p['exec_timeout']),
        lambda st: st['ready'], p)
    st['metrics'] = None
    if p['metrics'] == 'auto' and st['clustermesh_enabled']:
        st['metrics'] = read_metrics(cluster, p['namespace'])
    return st, attempts


def run(m):
    p = m.params
    if p['parallel'] < 1:
        m.fail('parallel must be at least 1')
    if p['members'] is not None:
        return run_members(m)
    st, attempts = _read(m.cluster, p)
    for warning in status_warnings(st):
        m.warn(warning)
    result = status_result(st, p['namespace'], p['agent_status'])
    if p['wait'] and not st['ready']:
        m.fail('ClusterMesh not ready after %ss (%d checks): %s; causes and fixes: docs/troubleshooting.md' % (
            p['wait_timeout'], attempts, '; '.join(st['not_ready'])), attempts=attempts, **result)
    m.exit(changed=False, attempts=attempts, **result)


def run_members(m):
    """Every member of ``members`` read side by side (``ClusterModule.read_members``; each waits on its own):
    one result per member under ``members``, ``ready`` when all are. A member whose kubeconfig or context
    cannot be resolved, or that cannot be read, is a failed entry; the others are read."""
    p = m.params

    def read(cluster, entry):
        st, attempts = _read(cluster, p)
        return dict(status_result(st, p['namespace'], p['agent_status']), attempts=attempts, cluster=entry['name'],
                    warnings=status_warnings(st))
    results = m.read_members(p['members'], read, 'warnings')
    names = [e['name'] for e in p['members']]
    not_ready = []
    for name in names:
        r = results[name]
        if r.get('failed'):
            not_ready.append(r['msg'])
        else:
            not_ready += [line if line.startswith(name) else '%s: %s' % (name, line) for line in r['not_ready']]
    ready = not not_ready
    if p['wait'] and not ready:
        m.fail('ClusterMesh not ready after %ss: %s; causes and fixes: docs/troubleshooting.md' % (
            p['wait_timeout'], '; '.join(not_ready)), members=results, ready=False, not_ready=not_ready)
    m.exit(changed=False, members=results, ready=ready, not_ready=not_ready)


# the module's own options (ClusterModule adds the connection's); also the action plugin's
ARGUMENT_SPEC = dict(
    namespace=dict(type='str', default='kube-system'),
    agent_status=dict(type='str', choices=['auto', 'require', 'skip'], default='auto'),
    metrics=dict(type='str', choices=['auto', 'skip'], default='auto'),
    parallel=dict(type='int', default=8),
    exec_timeout=dict(type='int', default=30),
    members=dict(type='list', elements='dict', options=MEMBERS_SPEC),
    **wait_argument_spec(),
    wait_interval=dict(type='int', default=5),
)


def main():
    run_module(run, ARGUMENT_SPEC)


if __name__ == '__main__':
    main()
