#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: meshops.cilium contributors
# SPDX-License-Identifier: Apache-2.0

DOCUMENTATION = r'''
---
module: clustermesh_traffic_check
short_description: Check that a Cilium global Service is answered from every cluster of the mesh
version_added: 0.1.0
description:
  - Proves cross-cluster traffic with a Cilium global Service, in three steps run on every cluster of
    the mesh (one host per cluster).
  - V(present) deploys, in Namespace O(namespace), an echo server Deployment C(<name>-<cluster_name>)
    (agnhost C(netexec), whose C(/hostname) answers with the pod's name) and Service O(name) annotated
    C(service.cilium.io/global=true), C(service.cilium.io/shared=true) and
    C(service.cilium.io/affinity=<affinity>). The Service has the same name and namespace in every
    cluster, so Cilium load-balances it across the mesh.
  - V(tested) (run after V(present) on ALL clusters) also runs a client Job in this cluster that requests
    the Service O(requests) times, reads its log, maps each answering pod to its cluster by the pod name,
    deletes the Job, and reports per cluster how many answers came from it. It fails when a cluster of
    O(clusters) did not answer, naming it, unless O(fail_on_missing=false).
  - V(absent) deletes the Namespace (everything the check created goes with it) and waits until it is gone.
    A Namespace of that name not created by this module is never deleted.
  - With O(create_namespace=false) the Namespace is provided (with the check's Role, see
    C(deploy/rbac/meshops-automation-traffic-check.yaml)) and never written; V(absent) then deletes only the
    check's Deployments, Services and Jobs in it.
  - It needs a real datapath. On simulated clusters (kwok) no pod runs and no log exists, so V(tested)
    reports that no cluster answered.
author:
  - meshops maintainers (@meshops)
options:
  state:
    description:
      - V(present) deploys the echo server and the global Service, V(tested) also runs the client and checks
        the answers, V(absent) removes everything.
    type: str
    choices: [present, tested, absent]
    default: tested
  cluster_name:
    description:
      - This cluster's name as the other members know it; part of the Deployment name, so it appears in
        every answer. Defaults to the context (else the host) the module connects to.
    type: str
  clusters:
    description:
      - Every cluster expected to answer (O(cluster_name) of each member, this one included). Required with
        O(state=tested).
    type: list
    elements: str
  namespace:
    description:
      - Namespace the check creates and removes.
    type: str
    default: meshops-traffic-check
  create_namespace:
    description:
      - Create O(namespace) (and with V(absent) delete it). Set V(false) when an administrator provides the
        Namespace together with the check's Role (C(deploy/rbac/meshops-automation-traffic-check.yaml)), so the
        automation identity needs no cluster-wide permission for the check; the Namespace must then exist.
    type: bool
    default: true
  name:
    description:
      - Name of the global Service; the Deployment is C(<name>-<cluster_name>).
    type: str
    default: meshops-echo
  server_image:
    description:
      - Echo server image; must provide agnhost's C(netexec) (C(GET /hostname) returns the pod name).
    type: str
    default: registry.k8s.io/e2e-test-images/agnhost:2.53
  client_image:
    description:
      - Client image; needs C(sh) and busybox C(wget).
    type: str
    default: registry.k8s.io/e2e-test-images/busybox:1.36.1-1
  node_selector:
    description:
      - Node labels the echo server's and the client's pods must match (their C(nodeSelector)), for example
        the nodes of a Linux pool, or on the local fleet the label C(meshops.io/datapath) with value V(real),
        the nodes where Cilium's agent and the test pods run for real.
      - Empty (the default) lets the scheduler place them anywhere.
    type: dict
    default: {}
  replicas:
    description:
      - Echo server replicas per cluster.
    type: int
    default: 1
  affinity:
    description:
      - Value of C(service.cilium.io/affinity). V(none) spreads requests over all clusters, which is what the
        check needs.
    type: str
    choices: [none, local, remote]
    default: none
  requests:
    description:
      - How many requests the client makes.
    type: int
    default: 30
  request_timeout:
    description:
      - Seconds one request may take.
    type: int
    default: 2
  fail_on_missing:
    description:
      - With V(tested), fail when a cluster of O(clusters) did not answer.
    type: bool
    default: true
  wait_timeout:
    description:
      - Seconds to wait for the echo server to be Ready, for the client to finish, and for the Namespace to
        be gone.
    type: int
    default: 180
extends_documentation_fragment:
  - meshops.cilium.cluster
  - meshops.cilium.attributes
  - meshops.cilium.attributes.write_module
notes:
  - Needs create, get, patch and delete on Deployments, Services and Jobs, get on C(jobs/status), list on Pods and
    get on C(pods/log) in O(namespace); with O(create_namespace=true) also create, get, patch and delete on the
    Namespace (cluster-wide permissions, since the Namespace and any Role in it are deleted with V(absent)); with
    O(create_namespace=false) get on the Namespace and list on Deployments, Services and Jobs in it instead.
    C(deploy/rbac/meshops-automation-traffic-check.yaml) grants the latter (docs/rbac.md).
  - Cilium's global Services need a connected ClusterMesh; check it first with M(meshops.cilium.clustermesh_status).
seealso:
  - module: meshops.cilium.clustermesh_status
  - name: Load-balancing and service discovery
    description: Cilium global Services.
    link: https://docs.cilium.io/en/stable/network/clustermesh/services/
'''

EXAMPLES = r'''
- name: Deploy the echo server in every cluster
  meshops.cilium.clustermesh_traffic_check:
    context: "{{ inventory_hostname }}"
    state: present

- name: Check that every cluster answers, from every cluster
  meshops.cilium.clustermesh_traffic_check:
    context: "{{ inventory_hostname }}"
    state: tested
    clusters: "{{ groups['mesh'] }}"
  register: traffic

- name: Remove the check
  meshops.cilium.clustermesh_traffic_check:
    context: "{{ inventory_hostname }}"
    state: absent
'''

RETURN = r'''
objects:
  description: The objects of the check in this cluster, as C(Kind namespace/name).
  returned: always
  type: list
  elements: str
  sample: [Namespace meshops-traffic-check, Deployment meshops-traffic-check/meshops-echo-mesh-1]
changes:
  description: What was (or in check mode would be) created, updated or deleted.
  returned: always
  type: list
  elements: dict
  sample: [{object: Service meshops-traffic-check/meshops-echo, action: create}]
ok:
  description: With V(tested), whether every cluster of O(clusters) answered.
  returned: when state is tested and not in check mode
  type: bool
answers:
  description: Answers per expected cluster.
  returned: when state is tested and not in check mode
  type: dict
  sample: {mesh-1: 11, mesh-2: 9, mesh-3: 10}
answered:
  description: Clusters that answered at least once.
  returned: when state is tested and not in check mode
  type: list
  elements: str
missing:
  description: Clusters of O(clusters) that never answered.
  returned: when state is tested and not in check mode
  type: list
  elements: str
requests:
  description: Requests the client made (lines read from its log).
  returned: when state is tested and not in check mode
  type: int
errors:
  description: Requests that failed.
  returned: when state is tested and not in check mode
  type: int
error_samples:
  description: Up to three distinct failure messages.
  returned: when state is tested and not in check mode
  type: list
  elements: str
unknown_answers:
  description: Answers from pods whose name matches no expected cluster, with their count.
  returned: when state is tested and not in check mode
  type: dict
log_error:
  description: Why the client's log could not be read, if so.
  returned: when state is tested and not in check mode
  type: str
message:
  description: One sentence with the result, starting with this cluster's name.
  returned: always
  type: str
  sample: "mesh-1: 30 requests; answers from mesh-1 (11), mesh-2 (9), mesh-3 (10)"
written:
  description:
    - Only when the module failed after it had created or updated its objects (for example the server
      Deployment never became Ready), what was written. The result then says C(changed=true) and C(msg)
      ends with what was written and how to remove it (O(state=absent)).
  returned: failure after a write
  type: list
  elements: str
  sample: ["Namespace meshops-traffic (create)"]
'''

from ansible_collections.meshops.cilium.plugins.module_utils.base import run_module
from ansible_collections.meshops.cilium.plugins.module_utils import traffic


def run(m):
    p = m.params
    cluster_name = p['cluster_name'] or p.get('context') or m.name
    if p['state'] == 'tested' and not p['clusters']:
        m.fail('clusters is required with state=tested: list every cluster expected to answer')
    errors = traffic.validate(p['name'], p['namespace'], cluster_name,
                              clusters=p['clusters'] if p['state'] == 'tested' else None,
                              affinity=p['affinity'], requests=p['requests'], replicas=p['replicas'])
    if p['request_timeout'] < 1 or p['wait_timeout'] < 1:
        errors.append('request_timeout and wait_timeout must be at least 1')
    if errors:
        m.fail('; '.join(errors))
    bad = traffic.validate_node_selector(p['node_selector'])
    if bad:
        m.fail(bad)
    objects = traffic.server_objects(p['name'], p['namespace'], cluster_name, p['server_image'],
                                     p['replicas'], p['affinity'], p['node_selector'])
    if not p['create_namespace']:
        objects = [o for o in objects if o['kind'] != 'Namespace']
    refs = [traffic.ref(o) for o in objects]
    cluster = m.cluster
    if p['state'] == 'absent' and not p['create_namespace']:
        gone = traffic.remove_objects(cluster, p['namespace'], m.check_mode, wait=True, timeout=p['wait_timeout'])
        m.exit(changed=bool(gone), objects=refs, changes=[{'object': r, 'action': 'delete'} for r in gone],
               message='%s: %s' % (m.name, ('%s %s (Namespace %s kept: it is provided)' % (
                   ', '.join(gone), 'would be deleted' if m.check_mode else 'deleted', p['namespace'])) if gone
                   else 'nothing to remove'))
    if not p['create_namespace']:
        problem = traffic.provided_namespace(cluster, p['namespace'])
        if problem:
            m.fail(problem, objects=refs, changes=[])
    if p['state'] == 'absent':
        changed = traffic.remove(cluster, p['namespace'], m.check_mode, wait=True, timeout=p['wait_timeout'])
        m.exit(changed=changed, objects=refs,
               changes=[{'object': 'Namespace %s' % p['namespace'], 'action': 'delete'}] if changed else [],
               message='%s: %s' % (m.name, ('Namespace %s and everything in it %s' % (
                   p['namespace'], 'would be deleted' if m.check_mode else 'deleted')) if changed
                   else 'nothing to remove'))
    changes, before, after = traffic.ensure(cluster, objects, m.check_mode)
    if not m.check_mode:
        for ref, action in changes:
            m.wrote('%s (%s)' % (ref, action), recover='state=absent removes Namespace %s and everything in it'
                    % p['namespace'])
    result = {'objects': refs, 'changes': [{'object': r, 'action': a} for r, a in changes]}
    changed = bool(changes)
    if p['state'] == 'present' or m.check_mode:
        what = ', '.join('%s %s' % (a, r) for r, a in changes) or 'nothing to change'
        result['message'] = '%s: %s%s' % (m.name, what, ' (check mode: no client run)'
                                          if m.check_mode and p['state'] == 'tested' else '')
        m.exit(changed=changed, before=before or None, after=after or None, **result)
    deploy = traffic.deployment_name(p['name'], cluster_name)
    if not traffic.wait_deployment(cluster, p['namespace'], deploy, p['wait_timeout']):
        m.fail('Deployment %s/%s not Ready after %ss: check that the image %s can be pulled' % (
            p['namespace'], deploy, p['wait_timeout'], p['server_image']), **result)
    job = traffic.render_client_job(p['name'], p['namespace'], p['client_image'], p['requests'],
                                    p['request_timeout'], p['node_selector'])
    log, log_error = traffic.run_client(cluster, job, p['wait_timeout'] + p['requests'] * (p['request_timeout'] + 1))
    parsed = traffic.parse_answers(log, p['name'], p['clusters'])
    summary = traffic.summarize(m.name, parsed, p['clusters'], log_error)
    result.update(summary)
    result['log_error'] = log_error
    result.pop('client_cluster', None)
    changed = True  # a client Job ran (and was deleted)
    if p['fail_on_missing'] and not summary['ok']:
        m.fail(summary['message'], **result)
    m.exit(changed=changed, before=before or None, after=after or None, **result)


def main():
    run_module(run, dict(
        state=dict(type='str', choices=['present', 'tested', 'absent'], default='tested'),
        cluster_name=dict(type='str'),
        clusters=dict(type='list', elements='str'),
        namespace=dict(type='str', default=traffic.DEFAULT_NAMESPACE),
        name=dict(type='str', default=traffic.DEFAULT_NAME),
        create_namespace=dict(type='bool', default=True),
        server_image=dict(type='str', default=traffic.DEFAULT_SERVER_IMAGE),
        client_image=dict(type='str', default=traffic.DEFAULT_CLIENT_IMAGE),
        node_selector=dict(type='dict', default={}),
        replicas=dict(type='int', default=1),
        affinity=dict(type='str', choices=list(traffic.AFFINITIES), default='none'),
        requests=dict(type='int', default=30),
        request_timeout=dict(type='int', default=2),
        fail_on_missing=dict(type='bool', default=True),
        wait_timeout=dict(type='int', default=180),
    ))


if __name__ == '__main__':
    main()
