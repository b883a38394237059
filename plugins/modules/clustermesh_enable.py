#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: meshops.cilium contributors
# SPDX-License-Identifier: Apache-2.0

DOCUMENTATION = r'''
---
module: clustermesh_enable
short_description: Turn the Cilium clustermesh-apiserver on or off in an existing Cilium release
version_added: 0.1.0
description:
  - For clusters whose Cilium was installed by someone else (or by M(meshops.cilium.cilium_install) without
    O(meshops.cilium.cilium_install#module:clustermesh_apiserver)).
  - Sets C(clustermesh.useAPIServer) and, when given, the service type, node port, annotations, KVStoreMesh
    and TLS method of the clustermesh-apiserver, in ONE C(helm upgrade) that keeps the deployed chart
    version and every other value of the release (peers included).
  - Without O(chart_ref) the deployed chart is rebuilt from the release record, so no chart source is needed.
  - Nothing is written, and helm is not run, when the release already has these values.
  - With O(wait), waits for Deployment C(clustermesh-apiserver) to be Ready and, for a LoadBalancer Service,
    for an ingress address.
author:
  - meshops maintainers (@meshops)
options:
  enabled:
    description:
      - C(clustermesh.useAPIServer).
    type: bool
    default: true
  service_type:
    description:
      - C(clustermesh.apiserver.service.type).
    type: str
    choices: [NodePort, LoadBalancer]
  node_port:
    description:
      - C(clustermesh.apiserver.service.nodePort). Give each cluster a distinct one.
    type: int
  annotations:
    description:
      - C(clustermesh.apiserver.service.annotations) (replaced whole when given).
    type: dict
  kvstoremesh:
    description:
      - C(clustermesh.apiserver.kvstoremesh.enabled).
    type: bool
  tls_auto_method:
    description:
      - C(clustermesh.apiserver.tls.auto.method) (and C(tls.auto.enabled=true)).
    type: str
    choices: [helm, cronJob]
  chart_ref:
    description:
      - The chart to upgrade with. By default the deployed chart, rebuilt from the release record.
    type: str
  chart_version:
    description:
      - With a repository or OCI O(chart_ref), the version to use. Defaults to the deployed version.
    type: str
  wait:
    description:
      - Wait for the clustermesh-apiserver Deployment and, for a LoadBalancer, its address.
    type: bool
    default: true
  wait_timeout:
    description:
      - Seconds to wait, and helm's C(--timeout).
    type: int
    default: 300
extends_documentation_fragment:
  - meshops.cilium.cluster
  - meshops.cilium.release
  - meshops.cilium.helm
  - meshops.cilium.attributes
  - meshops.cilium.attributes.write_module
notes:
  - Fails when the release does not exist (install Cilium first).
seealso:
  - module: meshops.cilium.cilium_install
  - module: meshops.cilium.clustermesh_connect
'''

EXAMPLES = r'''
- name: Enable the clustermesh-apiserver behind an internal load balancer
  meshops.cilium.clustermesh_enable:
    context: mesh-1
    service_type: LoadBalancer
    annotations:
      networking.gke.io/load-balancer-type: Internal

- name: NodePort, a distinct port per cluster
  meshops.cilium.clustermesh_enable:
    context: "{{ inventory_hostname }}"
    service_type: NodePort
    node_port: "{{ 32379 + cluster_id | int }}"

- name: Turn it off
  meshops.cilium.clustermesh_enable:
    context: mesh-3
    enabled: false
'''

RETURN = r'''
cluster:
  description: The name this module knows the cluster by.
  returned: always
  type: str
  sample: mesh-1
changed_keys:
  description: Dotted value keys that change (or would change).
  returned: always
  type: list
  elements: str
  sample: [clustermesh.useAPIServer]
release:
  description: The release after the run (name, namespace, revision, chart_version, status).
  returned: always
  type: dict
  sample: {"name": "cilium", "namespace": "kube-system", "revision": 3, "chart_version": "1.19.2", "status": "deployed"}
ready:
  description: With O(wait) and O(enabled), the state of the Deployment and, for a LoadBalancer, its address.
  returned: when O(wait=true) and O(enabled=true)
  type: dict
  sample: {"Deployment/clustermesh-apiserver": "1/1 ready", "Service/clustermesh-apiserver": "172.18.255.1"}
written:
  description:
    - Only when the module failed after it had written to the cluster (for example a Helm release revision, then a readiness
      wait failed), what was written. The result then says C(changed=true) and C(msg) ends with what was
      written and how to recover (re-run the task, or the C(helm rollback) command for a release).
  returned: failure after a write
  type: list
  elements: str
  sample: ["Helm release kube-system/cilium revision 5 (chart 1.18.2, status deployed)"]
'''

from ansible_collections.meshops.cilium.plugins.module_utils.base import (
    CLUSTERMESH_APISERVER_ARGUMENT_SPEC,
    HELM_CHART_ARGUMENT_SPEC,
    RELEASE_ARGUMENT_SPEC,
    merged_spec,
    run_module,
    wait_argument_spec,
)
from ansible_collections.meshops.cilium.plugins.module_utils.helm import (
    HelmRunner,
    read_release,
    refuse_pending,
    release_summary,
    require_helm,
    wait_ready,
)
from ansible_collections.meshops.cilium.plugins.module_utils.values import get_path, plan_enable, validate_apiserver_params

API_OPTIONS = ('enabled', 'service_type', 'node_port', 'annotations', 'kvstoremesh', 'tls_auto_method')


def run(m):
    p = m.params
    ns, name = p['namespace'], p['release_name']
    api = dict((k, p[k]) for k in API_OPTIONS)
    validate_apiserver_params(api)  # before connecting (OptionError: ClusterModule.run fails)
    current = read_release(m.cluster, ns, name)
    if current is None:
        m.fail('Helm release %s/%s not found: install Cilium first (meshops.cilium.cilium_install)' % (ns, name))
    refuse_pending(current)
    desired, changed_keys = plan_enable(current.values, api)
    changed = bool(changed_keys) or not current.deployed
    release = current
    if changed and not m.check_mode:
        binary, helm_version = require_helm(p['helm_binary'])
        version = p['chart_version'] or (current.chart_version if p['chart_ref'] else None)
        runner = HelmRunner(binary, m.connection, version=helm_version)
        release = m.write_release(
            lambda: runner.upgrade(name, ns, desired, chart_ref=p['chart_ref'], chart_version=version,
                                   chart_repo_url=p['chart_repo_url'], timeout=p['wait_timeout'], current=current),
            lambda: read_release(m.cluster, ns, name), current)
    result = dict(changed=changed, changed_keys=changed_keys, release=release_summary(release))
    if p['wait'] and p['enabled'] and not m.check_mode:
        comps = [('Deployment', 'clustermesh-apiserver')]
        if get_path(desired, 'clustermesh.apiserver.service.type') == 'LoadBalancer':
            comps.append(('Service', 'clustermesh-apiserver'))
        result['ready'] = wait_ready(m.cluster, ns, comps, timeout=p['wait_timeout'])
    m.exit(before=current.values, after=desired, **result)


def main():
    run_module(run, merged_spec(
        RELEASE_ARGUMENT_SPEC,
        CLUSTERMESH_APISERVER_ARGUMENT_SPEC,
        HELM_CHART_ARGUMENT_SPEC,
        enabled=dict(type='bool', default=True),
        **wait_argument_spec(wait=True)
    ))


if __name__ == '__main__':
    main()
