#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: meshops.cilium contributors
# SPDX-License-Identifier: Apache-2.0

DOCUMENTATION = r'''
---
module: clustermesh_service
short_description: Create, update or remove a Cilium ClusterMesh global Service on one cluster
version_added: 0.2.0
description:
  - Writes the Service O(namespace)/O(name) on the one cluster the connection options name, with the Cilium
    annotations that make it global across the ClusterMesh. C(service.cilium.io/global=true) always;
    C(service.cilium.io/shared) from O(shared) and C(service.cilium.io/affinity) from O(affinity) when set.
  - Cilium merges the backends of Services with the same name AND namespace (and the same ports) in every cluster.
    Run this module for every cluster of the mesh (the C(meshops.cilium.services) role does, after validating
    the whole mesh first), or the Service is global in name only.
  - "Ownership: every Service this module writes carries the label
    C(app.kubernetes.io/managed-by=meshops.cilium). An existing Service without it (made by someone else) is
    refused before any write, naming the cluster, the Service and its conflicting type or ports, unless
    O(force=true), which takes it over (adds the label and overwrites the fields below)."
  - "Only the fields this module owns are compared and written: the ownership label, the three annotations
    above, C(spec.type), C(spec.ports) and C(spec.selector). Other labels, annotations and fields (the
    cluster IP, an allocated node port) are kept. A second run with the same options changes nothing and writes
    nothing."
  - Input is checked before connecting; problems name the cluster, the Service and the field.
author:
  - meshops maintainers (@meshops)
options:
  name:
    description: Name of the Service (the same in every cluster).
    type: str
    required: true
  namespace:
    description: Namespace of the Service (the same in every cluster). It must exist.
    type: str
    default: default
  state:
    description:
      - V(present) creates or updates the Service; V(absent) deletes it (only when this collection manages it,
        unless O(force=true)).
    type: str
    choices: [present, absent]
    default: present
  type:
    description: The Service's C(spec.type).
    type: str
    choices: [ClusterIP, NodePort, LoadBalancer]
    default: ClusterIP
  ports:
    description:
      - The ports, each a port number or a dict with C(port) (required), C(name) (required when there are
        several), C(protocol) (C(TCP), C(UDP) or C(SCTP), default C(TCP)), C(targetPort) (default the port) and
        C(nodePort).
      - Required with O(state=present).
    type: list
    elements: raw
  selector:
    description:
      - Pod labels of the local backends. Without it the Service has no local endpoints (a cluster that only
        consumes the remote backends can still use it).
    type: dict
  affinity:
    description:
      - Annotation C(service.cilium.io/affinity). V(local) prefers this cluster's backends and fails over to
        remote ones when none is healthy; V(remote) prefers remote backends; V(none) (Cilium's default) balances
        over all. Unset leaves the annotation off. Any other value is refused (Cilium would treat it as an error).
    type: str
  shared:
    description:
      - Annotation C(service.cilium.io/shared). V(false) makes this cluster use remote backends without exporting
        its own. Unset leaves the annotation off (Cilium's default for a global Service is shared).
      - A boolean, or the strings C(true)/C(false); anything else is refused.
    type: raw
  members:
    description:
      - The Cilium cluster names of the mesh. When given, O(cluster_name) must be one of them.
    type: list
    elements: str
  cluster_name:
    description:
      - The Cilium cluster name of the target cluster, for messages and the O(members) check. Defaults to the
        name the connection gives the cluster (its context).
    type: str
  force:
    description:
      - Take over (V(present)) or delete (V(absent)) an existing Service that this collection does not manage.
    type: bool
    default: false
extends_documentation_fragment:
  - meshops.cilium.cluster
  - meshops.cilium.attributes
  - meshops.cilium.attributes.write_module
notes:
  - Needs get, create, update and delete on Services in O(namespace).
  - Cross-cluster load balancing itself (backends synced through the ClusterMesh) is Cilium's; this module writes
    the Service objects and does not read Cilium's synced state.
seealso:
  - module: meshops.cilium.clustermesh_policy
  - name: Load-balancing and service discovery
    description: Cilium's documentation of global Services, shared and affinity.
    link: https://docs.cilium.io/en/stable/network/clustermesh/services/
'''

EXAMPLES = r'''
- name: A global echo Service on every cluster, local backends first
  meshops.cilium.clustermesh_service:
    context: "{{ item }}"
    name: echo
    namespace: demo
    selector:
      app: echo
    ports:
      - name: http
        port: 80
        targetPort: 8080
    affinity: local
    members: [mesh-1, mesh-2, mesh-3]
    cluster_name: "{{ item }}"
  loop: [mesh-1, mesh-2, mesh-3]

- name: mesh-3 consumes the remote backends without exporting its own
  meshops.cilium.clustermesh_service:
    context: mesh-3
    name: echo
    namespace: demo
    ports: [80]
    shared: false

- name: Remove it
  meshops.cilium.clustermesh_service:
    context: mesh-1
    name: echo
    namespace: demo
    state: absent
'''

RETURN = r'''
cluster:
  description: The name this module knows the target cluster by.
  returned: always
  type: str
  sample: mesh-1
action:
  description: V(created), V(updated), V(unchanged), V(deleted) or V(absent) (nothing to delete). In check mode,
    what would be done.
  returned: always
  type: str
  sample: created
service:
  description: C(namespace/name) of the Service.
  returned: always
  type: str
  sample: demo/echo
annotations:
  description: The Cilium annotations the Service carries afterwards (this module's own).
  returned: when O(state=present)
  type: dict
  sample: {"service.cilium.io/global": "true", "service.cilium.io/affinity": "local"}
written:
  description: Only when the module failed after a write, what was written.
  returned: failure after a write
  type: list
  elements: str
'''

from ansible_collections.meshops.cilium.plugins.module_utils.base import run_module
from ansible_collections.meshops.cilium.plugins.module_utils.services import (
    ServicesError,
    delete_service,
    read_service,
    service_object,
    service_plan,
    service_problems,
    write_service,
)


def run(m):
    p = m.params
    cluster = p['cluster_name'] or m.name
    where = 'Service %s/%s' % (p['namespace'], p['name'])
    if p['members'] is not None and cluster not in p['members']:
        raise ServicesError('cluster %s, %s: field cluster_name: %s is not in the mesh (members: %s)' % (
            cluster, where, cluster, ', '.join(p['members'])))
    spec = dict((k, p[k]) for k in ('name', 'namespace', 'type', 'ports', 'selector', 'affinity', 'shared'))
    if p['state'] == 'absent':
        spec['ports'] = spec['ports'] or [1]  # ports do not matter to a deletion
    ports, problems = service_problems(spec, cluster)
    if problems:
        raise ServicesError('; '.join(problems))
    wanted = service_object(spec, cluster, ports)
    current = read_service(m.cluster, p['namespace'], p['name'])
    action, body, before, after = service_plan(current, wanted, p['state'], p['force'], cluster)
    if not m.check_mode:
        if action in ('created', 'updated'):
            write_service(m.cluster, action, body)
            m.wrote('%s (%s)' % (where, action))
        elif action == 'deleted':
            delete_service(m.cluster, p['namespace'], p['name'])
            m.wrote('%s (deleted)' % where)
    result = {'action': action, 'service': '%s/%s' % (p['namespace'], p['name'])}
    if p['state'] == 'present':
        result['annotations'] = wanted['metadata']['annotations']
    m.exit(changed=action in ('created', 'updated', 'deleted'), before=before, after=after, **result)


def main():
    run_module(run, dict(
        name=dict(type='str', required=True),
        namespace=dict(type='str', default='default'),
        state=dict(type='str', choices=['present', 'absent'], default='present'),
        type=dict(type='str', choices=['ClusterIP', 'NodePort', 'LoadBalancer'], default='ClusterIP'),
        ports=dict(type='list', elements='raw'),
        selector=dict(type='dict'),
        affinity=dict(type='str'),
        shared=dict(type='raw'),
        members=dict(type='list', elements='str'),
        cluster_name=dict(type='str'),
        force=dict(type='bool', default=False),
    ), required_if=[('state', 'present', ['ports'])])


if __name__ == '__main__':
    main()
