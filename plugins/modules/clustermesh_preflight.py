#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: meshops.cilium contributors
# SPDX-License-Identifier: Apache-2.0

DOCUMENTATION = r'''
---
module: clustermesh_preflight
short_description: Check a whole ClusterMesh before anything is written
version_added: 0.1.0
description:
  - Compares what the inventory declares for every member of the mesh with what M(meshops.cilium.clustermesh_info)
    discovered in every cluster, and reports B(all) problems at once as one table by cluster, with the field to
    change and the fix. It fails when there is at least one error; warnings do not fail.
  - It is a module that talks to no cluster and writes nothing. Run it once (C(run_once)) on the controller after
    M(meshops.cilium.clustermesh_info) has described every member of the mesh group, and before any task that
    writes. The role M(meshops.cilium.preflight) and C(playbooks/preflight.yml) do exactly that, and
    C(playbooks/site.yml) runs them first.
  - "Its input is plain data (declared values plus descriptors), passed as O(clusters): it is deterministic, runs
    in check mode, works the same in AWX execution environments and is unit tested without Ansible internals; the
    discovery it needs is already done, read-only, by M(meshops.cilium.clustermesh_info). When the module would run
    on the controller anyway (local connection, the host's C(ansible_python_interpreter) being the controller's own
    Python, no task C(environment)), the same checks run in the task's own worker process there (action plugin),
    which saves starting a module process (about half a second on every run); otherwise the module runs."
  - "Checks: connection (a cluster that cannot be read, two hosts on one context); cluster name (1-32 characters,
    C(^([a-z0-9][-a-z0-9]*)?[a-z0-9]$), not C(default) with an ID, unique); cluster ID (set, not 0, 1..255 or
    1..511 with C(maxConnectedClusters=511), unique, not 128-255/384-511 with ENI IPAM or AWS VPC CNI chaining);
    one C(maxConnectedClusters) (255 or 511) mesh-wide; no change of an installed cluster's name, ID or
    C(maxConnectedClusters) unless C(allow_identity_change); a Helm release to upgrade (not pending);
    pod CIDRs (declared, nodes' C(spec.podCIDRs) with IPAM C(kubernetes), the installed or default cluster-pool)
    disjoint across clusters; node InternalIPs distinct and outside every pod CIDR; service CIDRs (overlap is a
    warning); one routing mode; in native routing an C(ipv4NativeRoutingCIDR) covering every cluster's pod CIDRs;
    one CA (fingerprints of existing C(cilium-ca) Secrets); chart versions (no minor version skipped on upgrade,
    no downgrade, at most one minor version of skew in the mesh); a local target chart (O(clusters[].chart_ref)) that
    exists; C(kubeProxyReplacement) values the target chart
    accepts (only true/false from 1.16) and C(k8sServiceHost) with it; with kube-proxy replacement, distinct
    clustermesh-apiserver NodePorts (distinct ports are suggested)."
author:
  - meshops maintainers (@meshops)
options:
  clusters:
    description:
      - One entry per member of the mesh group (also those outside C(--limit)), declared values plus the
        descriptor RV(meshops.cilium.clustermesh_info#module:cluster) of the cluster in O(clusters[].info).
      - Values that are not set are not checked (a cluster not installed yet has only declared values).
    type: list
    elements: dict
    required: true
    suboptions:
      host:
        description: Inventory name of the cluster; the table names clusters by it.
        type: str
        required: true
      cluster_name:
        description: Declared C(cluster.name).
        type: str
      cluster_id:
        description: Declared C(cluster.id) (kept raw so a wrong type is reported, not rejected).
        type: raw
      max_connected_clusters:
        description: Declared C(clustermesh.maxConnectedClusters).
        type: raw
      routing_mode:
        description: Declared C(routingMode).
        type: str
      ipam_mode:
        description: Declared C(ipam.mode).
        type: str
      pod_cidrs:
        description:
          - Declared pod CIDRs of the cluster (with IPAM C(cluster-pool) the C(clusterPoolIPv4PodCIDRList)).
        type: list
        elements: str
      service_cidrs:
        description: Declared service CIDRs of the cluster.
        type: list
        elements: str
      native_routing_cidr:
        description: Declared C(ipv4NativeRoutingCIDR).
        type: str
      chart_version:
        description: The chart version the run will install.
        type: str
      kube_proxy_replacement:
        description: Declared C(kubeProxyReplacement) (raw, so removed values such as C(strict) are reported).
        type: raw
      k8s_service_host:
        description: Declared C(k8sServiceHost).
        type: str
      service_type:
        description: Declared type of the clustermesh-apiserver Service.
        type: str
      node_port:
        description: Declared nodePort of the clustermesh-apiserver Service.
        type: raw
      chaining_mode:
        description: Declared C(cni.chainingMode).
        type: str
      eni:
        description: Declared C(eni.enabled).
        type: bool
      allow_identity_change:
        description: Whether a change of name, ID or C(maxConnectedClusters) is allowed (then only a warning).
        type: bool
        default: false
      context:
        description: Kubeconfig context used for the cluster (two hosts on one context are reported).
        type: str
      kubeconfig:
        description: Kubeconfig path used for the cluster (compared with O(clusters[].context)).
        type: str
      release_name:
        description: Name of the Cilium Helm release.
        type: str
        default: cilium
      values:
        description:
          - The cluster's C(cilium_values), checked as C(cilium_install) would check them (removed and reserved keys,
            contradictions with the inventory options) and against the target chart's C(values.schema.json).
        type: raw
      chart_ref:
        description:
          - The target chart. A local archive or directory gives the C(values.schema.json) that O(clusters[].values) are
            checked against; a chart from a repository is checked by helm at install time.
          - "A local chart (a path: absolute, C(./), C(../), C(~) or ending C(.tgz)) that does not exist is an error
            (field C(cilium_chart_ref)): helm would otherwise fail in the middle of the run."
        type: str
      install:
        description:
          - The options M(meshops.cilium.cilium_install) will get for this cluster, as the C(cilium) role passes them
            (C(cluster_name), C(ipam_mode), C(routing_mode), C(values) and the others, with C(default_options) and
            C(existing_values)). With it, the datapath values of an installed release that the run would drop or
            change without the inventory choosing it are errors (unless C(existing_values) is V(keep) or V(reset)),
            the same review C(cilium_install) makes, done before the first write.
        type: dict
      info:
        description:
          - The registered result of M(meshops.cilium.clustermesh_info) for this cluster. A failed result
            (C(failed), C(msg)) is reported as a connection problem; partial descriptors are fine.
        type: dict
  ca_source:
    description:
      - The member whose C(cilium-ca) the mesh uses (the role M(meshops.cilium.cilium) copies it to the others).
        Other CAs are compared with it.
    type: str
  unreachable:
    description:
      - Severity of a member that cannot be read. V(error) stops the run; V(warning) reports it by name and
        checks the others (the preflight role uses it in check mode, so a preview goes on without that member).
    type: str
    choices: [error, warning]
    default: error
  helm_binary:
    description:
      - The helm binary that renders the target chart (C(helm template), client-side only) with each cluster's
        values, for the chart's own render-time checks. Only for local charts (archive or directory) of clusters
        with O(clusters[].install). Default C(helm) from C(PATH); without it (or with a helm older than 3.14) the
        render is skipped with a warning.
    type: path
extends_documentation_fragment:
  - meshops.cilium.attributes
  - meshops.cilium.attributes.info_module
notes:
  - Talks to no cluster and needs no credentials; run it with C(run_once) and C(delegate_to=localhost).
  - Service CIDRs are not discovered (Kubernetes does not publish them before C(ServiceCIDR) objects); declare them
    with C(cilium_service_cidr) to have them compared.
seealso:
  - module: meshops.cilium.clustermesh_info
  - name: Cilium ClusterMesh requirements
    description: Cluster names, IDs, pod CIDRs and routing.
    link: https://docs.cilium.io/en/stable/network/clustermesh/clustermesh/
'''

EXAMPLES = r'''
# The usual way: playbooks/preflight.yml (site.yml and install.yml run it first), i.e. the role
# meshops.cilium.preflight in a play over the mesh group with any_errors_fatal, which maps every
# host's inventory variables to one entry of clusters.
- name: Preflight the mesh
  ansible.builtin.import_role:
    name: meshops.cilium.preflight

# By hand: describe, then check.
- name: Describe two clusters
  meshops.cilium.clustermesh_info:
    context: "{{ item }}"
  loop: [mesh-1, mesh-2]
  run_once: true
  register: members

- name: Check them before any write
  meshops.cilium.clustermesh_preflight:
    ca_source: mesh-1
    clusters:
      - host: mesh-1
        cluster_name: mesh-1
        cluster_id: 1
        max_connected_clusters: 255
        routing_mode: tunnel
        chart_version: 1.19.2
        kube_proxy_replacement: false
        info: "{{ members.results[0] }}"
      - host: mesh-2
        cluster_name: mesh-2
        cluster_id: 2
        max_connected_clusters: 255
        routing_mode: tunnel
        chart_version: 1.19.2
        kube_proxy_replacement: false
        info: "{{ members.results[1] }}"
  run_once: true
  register: preflight

- name: Show the warnings table
  ansible.builtin.debug:
    msg: "{{ preflight.table }}"
  when: preflight.warning_count > 0
'''

RETURN = r'''
problems:
  description: Every problem found, sorted by cluster, errors first.
  returned: always
  type: list
  elements: dict
  contains:
    cluster:
      description: Inventory name of the cluster.
      type: str
      sample: mesh-2
    field:
      description: The inventory variable (or cluster object) to change.
      type: str
      sample: cilium_cluster_id
    problem:
      description: What is wrong.
      type: str
      sample: cluster ID 1 is also used by mesh-1
    fix:
      description: What to do.
      type: str
      sample: give every cluster a unique cilium_cluster_id, e.g. 4
    severity:
      description: V(error) (fails the module) or V(warning).
      type: str
      sample: error
errors:
  description: Number of errors.
  returned: always
  type: int
  sample: 0
warning_count:
  description: Number of warnings.
  returned: always
  type: int
  sample: 1
table:
  description: The problems as one table by cluster (also in RV(msg)).
  returned: always
  type: str
msg:
  description: A summary line and the table.
  returned: always
  type: str
'''

from ansible_collections.meshops.cilium.plugins.module_utils.base import MaskingModule
from ansible_collections.meshops.cilium.plugins.module_utils.preflight import PREFLIGHT_ARGUMENT_SPEC, run_preflight


def main():
    # with a local connection the action plugin of the same name gives this answer on the controller
    module = MaskingModule(argument_spec=PREFLIGHT_ARGUMENT_SPEC, supports_check_mode=True)
    result, warnings = run_preflight(module.params)
    if result.pop('failed', False):
        module.fail_json(**result)
    for warning in warnings:
        module.warn(warning)
    module.exit_json(**result)


if __name__ == '__main__':
    main()
