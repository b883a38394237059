#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: meshops.cilium contributors
# SPDX-License-Identifier: Apache-2.0

DOCUMENTATION = r'''
---
module: clustermesh_policy
short_description: Apply a cross-cluster CiliumNetworkPolicy or CiliumClusterwideNetworkPolicy on one cluster
version_added: 0.2.0
description:
  - Creates, updates or deletes the policy in O(definition) (kind C(CiliumNetworkPolicy) or
    C(CiliumClusterwideNetworkPolicy), apiVersion C(cilium.io/v2)) on the one cluster the connection options name.
  - "A separate module from M(meshops.cilium.clustermesh_service): a policy is a Cilium custom resource with its
    own kind, scope (namespaced or cluster-wide) and validation, and is often written without any global Service."
  - "Cross-cluster rules select peers with the label C(io.cilium.k8s.policy.cluster) (also written
    C(k8s:io.cilium.k8s.policy.cluster)) in endpoint selectors. A rule naming a cluster that is not in the mesh
    matches nothing, silently. With O(members), every such name (in C(matchLabels), and in C(matchExpressions)
    with C(In) or C(NotIn), anywhere in C(spec) or C(specs)) is checked before any write; O(unknown_clusters)
    says whether an unknown one fails the task or warns."
  - From Cilium 1.19 (C(clustermesh.policyDefaultLocalCluster), default true) a selector without the cluster label
    matches only the local cluster; name the peers explicitly.
  - "Ownership: the policy written carries the label C(app.kubernetes.io/managed-by=meshops.cilium). An existing
    policy of the same name without it is refused before any write unless O(force=true)."
  - "Compared and written: C(spec)/C(specs) and the labels and annotations O(definition) sets (plus the ownership
    label). Other labels and annotations are kept. A second run changes nothing and writes nothing."
  - Enforcement (that traffic is really allowed or dropped) is Cilium's and is not tested on the collection's
    local fleet; the unit tests cover validation, the writes, check mode and diff.
author:
  - meshops maintainers (@meshops)
options:
  definition:
    description:
      - The policy, as in a manifest (C(kind), C(metadata.name), C(spec) or C(specs); C(apiVersion) defaults to
        C(cilium.io/v2), C(metadata.namespace) of a C(CiliumNetworkPolicy) to O(namespace)).
    type: dict
    required: true
  namespace:
    description: Namespace of a C(CiliumNetworkPolicy) whose definition names none. Ignored for the cluster-wide kind.
    type: str
    default: default
  state:
    description: V(present) creates or updates the policy; V(absent) deletes it.
    type: str
    choices: [present, absent]
    default: present
  members:
    description:
      - The Cilium cluster names of the mesh. The cluster names the policy selects are checked against them.
      - Without it the names are not checked.
    type: list
    elements: str
  unknown_clusters:
    description:
      - What a selected cluster name outside O(members) does. V(fail) (before any write) or V(warn) (apply
        anyway, with a warning naming the field and the cluster).
    type: str
    choices: [fail, warn]
    default: fail
  cluster_name:
    description:
      - The Cilium cluster name of the target cluster, for messages. Defaults to the name the connection gives the
        cluster (its context).
    type: str
  force:
    description:
      - Take over (V(present)) or delete (V(absent)) an existing policy that this collection does not manage.
    type: bool
    default: false
extends_documentation_fragment:
  - meshops.cilium.cluster
  - meshops.cilium.attributes
  - meshops.cilium.attributes.write_module
notes:
  - Needs get, create, update and delete on C(ciliumnetworkpolicies) (in the namespace) or
    C(ciliumclusterwidenetworkpolicies) (group C(cilium.io)).
seealso:
  - module: meshops.cilium.clustermesh_service
  - name: ClusterMesh network policy
    description: Cilium's documentation of policies across clusters.
    link: https://docs.cilium.io/en/stable/network/clustermesh/policy/
'''

EXAMPLES = r'''
- name: Let only mesh-2's frontends reach the echo backends of mesh-1
  meshops.cilium.clustermesh_policy:
    context: mesh-1
    members: [mesh-1, mesh-2, mesh-3]
    definition:
      kind: CiliumNetworkPolicy
      metadata:
        name: echo-from-mesh-2
        namespace: demo
      spec:
        endpointSelector:
          matchLabels:
            app: echo
        ingress:
          - fromEndpoints:
              - matchLabels:
                  app: frontend
                  io.cilium.k8s.policy.cluster: mesh-2
'''

RETURN = r'''
cluster:
  description: The name this module knows the target cluster by.
  returned: always
  type: str
  sample: mesh-1
action:
  description: V(created), V(updated), V(unchanged), V(deleted) or V(absent). In check mode, what would be done.
  returned: always
  type: str
  sample: created
policy:
  description: Kind and name (C(namespace/name) for the namespaced kind) of the policy.
  returned: always
  type: str
  sample: CiliumNetworkPolicy demo/echo-from-mesh-2
selected_clusters:
  description: The cluster names the policy selects (label C(io.cilium.k8s.policy.cluster)), sorted, no duplicates.
  returned: always
  type: list
  elements: str
  sample: [mesh-2]
unknown_clusters:
  description: Those of RV(selected_clusters) outside O(members) (only with O(unknown_clusters=warn)).
  returned: always
  type: list
  elements: str
  sample: []
written:
  description: Only when the module failed after a write, what was written.
  returned: failure after a write
  type: list
  elements: str
'''

from ansible_collections.meshops.cilium.plugins.module_utils.base import run_module
from ansible_collections.meshops.cilium.plugins.module_utils.services import (
    ServicesError,
    delete_policy,
    policy_cluster_names,
    policy_desired,
    policy_id,
    policy_plan,
    policy_problems,
    read_policy,
    write_policy,
)


def run(m):
    p = m.params
    cluster = p['cluster_name'] or m.name
    definition = dict(p['definition'])
    definition.setdefault('apiVersion', 'cilium.io/v2')
    shape, unknown = policy_problems(definition, p['members'], cluster)
    if shape:
        raise ServicesError('; '.join(shape))
    if unknown and p['state'] == 'present':
        if p['unknown_clusters'] == 'fail':
            raise ServicesError('%s. Fix the name or add the cluster to the mesh, or set unknown_clusters=warn'
                                % '; '.join(unknown))
        for text in unknown:
            m.warn(text)
    wanted = policy_desired(definition, p['namespace'])
    current = read_policy(m.cluster, wanted)
    action, body, before, after = policy_plan(current, wanted, p['state'], p['force'], cluster)
    if not m.check_mode:
        if action in ('created', 'updated'):
            write_policy(m.cluster, action, body)
            m.wrote('%s (%s)' % (policy_id(wanted), action))
        elif action == 'deleted':
            delete_policy(m.cluster, wanted)
            m.wrote('%s (deleted)' % policy_id(wanted))
    selected = sorted(set(name for dummy, name in policy_cluster_names(wanted)))
    outside = sorted(set(n for n in selected if p['members'] is not None and n not in p['members']))
    m.exit(changed=action in ('created', 'updated', 'deleted'), before=before, after=after, action=action,
           policy=policy_id(wanted), selected_clusters=selected, unknown_clusters=outside)


def main():
    run_module(run, dict(
        definition=dict(type='dict', required=True),
        namespace=dict(type='str', default='default'),
        state=dict(type='str', choices=['present', 'absent'], default='present'),
        members=dict(type='list', elements='str'),
        unknown_clusters=dict(type='str', choices=['fail', 'warn'], default='fail'),
        cluster_name=dict(type='str'),
        force=dict(type='bool', default=False),
    ))


if __name__ == '__main__':
    main()
