#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: meshops.cilium contributors
# SPDX-License-Identifier: Apache-2.0

DOCUMENTATION = r'''
---
module: clustermesh_info
short_description: Read a cluster's Cilium ClusterMesh descriptor
version_added: 0.1.0
description:
  - Reads, without changing anything, what another cluster needs to know to mesh with this one,
    and what this cluster is already meshed with.
  - Identity (C(cluster-name), C(cluster-id), C(max-connected-clusters), C(routing-mode),
    C(tunnel-protocol)) comes from ConfigMap C(cilium-config) in O(namespace).
  - Chart version, release status and the configured peers come from the newest Helm release Secret
    (C(sh.helm.release.v1.<release>.v<N>)), decoded without the helm binary.
  - The CA is identified by the SHA-256 fingerprint and SubjectKeyId of C(ca.crt) in Secret C(cilium-ca).
    The CA key is never returned.
  - The clustermesh-apiserver endpoint comes from Service C(clustermesh-apiserver), or from O(endpoint).
  - Cilium not being installed is not an error; RV(installed) is then V(false).
author:
  - meshops maintainers (@meshops)
options:
  endpoint:
    description:
      - The clustermesh-apiserver endpoint other clusters should use, when the Service does not tell
        (for example behind NAT or an external load balancer). Overrides the Service.
      - Give either O(endpoint.ips) or O(endpoint.address), and O(endpoint.port).
    type: dict
    suboptions:
      ips:
        description:
          - IP addresses of the clustermesh-apiserver.
        type: list
        elements: str
      address:
        description:
          - A DNS name of the clustermesh-apiserver. It is not resolved by this module.
        type: str
      port:
        description:
          - TCP port of the clustermesh-apiserver.
        type: int
        required: true
  read_status:
    description:
      - Also read the cluster's ClusterMesh status, as M(meshops.cilium.clustermesh_status) does
        without a wait and without Cilium's metrics, into RV(status), in one module run instead of two.
        The site playbook's preflight reads it this way; when the run then writes nothing to any
        cluster, that status is still current and is not read again.
      - Needs what M(meshops.cilium.clustermesh_status) needs (with O(agent_status) other than
        V(skip), C(create) on C(pods/exec)).
      - A status that cannot be read is not an error of the description; RV(status) is then V(null)
        and a warning says why.
    type: bool
    default: false
  agent_status:
    description:
      - With O(read_status), how the agents' and KVStoreMesh's own status is read, as
        O(meshops.cilium.clustermesh_status#module:agent_status).
    type: str
    choices: [auto, require, skip]
    default: auto
  members:
    description:
      - Describe these clusters instead of the one the connection options name, side by side in this one
        module process (threads, up to 32 at a time), each with only its own O(members[].kubeconfig) and
        O(members[].context) (never the module's own O(host), token or client certificate). The site
        playbook's preflight describes every cluster of the run this way (one module start per run
        instead of one per cluster).
      - The result is RV(members), one descriptor per member, keyed by its name, each with the API server it
        was read from; a member that cannot be reached or read is a failed entry (C(failed), C(msg) naming
        it) and the others are still described. The descriptor keys are then only inside RV(members).
      - Not with O(endpoint).
    type: list
    elements: dict
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
      release_name:
        description:
          - The member's Cilium release; default O(release_name).
        type: str
      read_status:
        description:
          - Whether this member's mesh status is read too; default O(read_status).
        type: bool
extends_documentation_fragment:
  - meshops.cilium.cluster
  - meshops.cilium.release
  - meshops.cilium.attributes
  - meshops.cilium.attributes.info_module
requirements:
  - cryptography >= 42 (Python library)
notes:
  - For a NodePort Service the endpoint lists one address per Ready node, the ExternalIP of the node
    if it has one, else its InternalIP. Nodes that are not Ready are skipped with a warning.
  - For a LoadBalancer Service every ingress IP is listed; an ingress hostname is returned as
    RV(endpoint.address) and never resolved, so private DNS names keep working.
  - Only the C(secret) Helm storage driver (the default) is read.
  - Needs get on ConfigMaps, Services and Secrets and list on Secrets in O(namespace), and list on Nodes.
seealso:
  - name: Cilium ClusterMesh
    description: Setting up Cluster Mesh.
    link: https://docs.cilium.io/en/stable/network/clustermesh/clustermesh/
'''

EXAMPLES = r'''
- name: Read the descriptor of one cluster
  meshops.cilium.clustermesh_info:
    kubeconfig: ~/.kube/config
    context: mesh-1
  register: mesh1

- name: Every cluster of the inventory, connection options set once
  module_defaults:
    group/meshops.cilium.cluster:
      kubeconfig: "{{ fleet_kubeconfig }}"
  meshops.cilium.clustermesh_info:
    context: "{{ inventory_hostname }}"
  delegate_to: localhost
  register: mesh

- name: Behind NAT, say where peers reach the clustermesh-apiserver
  meshops.cilium.clustermesh_info:
    context: mesh-2
    endpoint:
      ips: [203.0.113.10]
      port: 32379

- name: Show the CA fingerprint
  ansible.builtin.debug:
    msg: "{{ mesh1.cluster_name }} CA {{ mesh1.ca.sha256 }}"
  when: mesh1.installed
'''

RETURN = r'''
cluster:
  description: The name this module knows the cluster by (the context, else the host).
  returned: always
  type: str
  sample: mesh-1
installed:
  description: Whether ConfigMap C(cilium-config) exists in O(namespace).
  returned: always
  type: bool
  sample: true
namespace:
  description: The Cilium namespace read.
  returned: always
  type: str
  sample: kube-system
cluster_name:
  description: C(cluster-name) of C(cilium-config).
  returned: always
  type: str
  sample: mesh-1
cluster_id:
  description: C(cluster-id) of C(cilium-config).
  returned: always
  type: int
  sample: 1
max_connected_clusters:
  description: C(max-connected-clusters) of C(cilium-config) (255 when the key is absent).
  returned: always
  type: int
  sample: 255
routing_mode:
  description: C(routing-mode) of C(cilium-config) (V(tunnel) or V(native)).
  returned: always
  type: str
  sample: tunnel
tunnel_protocol:
  description: C(tunnel-protocol) of C(cilium-config).
  returned: always
  type: str
  sample: vxlan
kvstoremesh:
  description:
    - Whether KVStoreMesh is on, from the release value C(clustermesh.apiserver.kvstoremesh.enabled),
      else the chart's default (on from chart 1.16). V(null) without a release.
  returned: always
  type: bool
  sample: true
clustermesh_enabled:
  description: Whether the clustermesh-apiserver is deployed (value C(clustermesh.useAPIServer) or its Service exists).
  returned: always
  type: bool
  sample: true
release:
  description: The newest revision of the Helm release, or V(null) if there is none. Values are not returned.
  returned: always
  type: dict
  contains:
    name:
      description: Release name.
      type: str
      sample: cilium
    namespace:
      description: Release namespace.
      type: str
      sample: kube-system
    revision:
      description: Release revision.
      type: int
      sample: 3
    status:
      description: Release status, for example V(deployed), V(failed), V(pending-upgrade).
      type: str
      sample: deployed
    chart_name:
      description: Chart name.
      type: str
      sample: cilium
    chart_version:
      description: Chart version.
      type: str
      sample: 1.19.5
    app_version:
      description: App version of the chart.
      type: str
      sample: 1.19.5
    datapath_values:
      description:
        - The release's user values that shape the datapath or the cluster's reach (IPAM, routing, tunnel,
          kube-proxy replacement, C(k8sServiceHost), encryption settings, devices, MTU, BPF, ...), secret keys
          masked. No other user value is returned. The preflight reviews them before an upgrade
          (C(cilium_existing_values)).
      type: dict
      sample: {"routingMode": "native", "ipv4NativeRoutingCIDR": "10.0.0.0/8"}
    values_sha256:
      description:
        - SHA-256 of all the release's user values (canonical JSON) without the peers
          (C(clustermesh.config.clusters)). The preflight does not render the chart again for a release
          deployed from the target chart version with the same values.
      type: str
      sample: 7caa2e7b649836acf985dc79b29df6ec34260547b1e8f37db48fc48171c405f1
    peers_sha256:
      description:
        - SHA-256 of the release's peer entries (C(clustermesh.config.clusters), list or map form), normalized
          (sorted by name, C(ips) sorted, C(port) a number, other keys kept). Stands for them because they may hold
          TLS material. M(meshops.cilium.clustermesh_connect) tells from it, without a module process, that a
          peer set is already deployed.
      type: str
      sample: 4f53cda18c2baa0c0354bb5f9a3ecbe5ed12ab4d8e11ba873c2f11161202b945
    clustermesh_config_enabled:
      description: The release's C(clustermesh.config.enabled) value (V(null) when not set).
      type: bool
      sample: true
ca:
  description: Identity of the CA in Secret C(cilium-ca), or V(null) if there is none. Never the key.
  returned: always
  type: dict
  contains:
    sha256:
      description: SHA-256 of the DER certificate, colon separated upper-case hex.
      type: str
      sample: "3A:1F:...:9C"
    subject_key_id:
      description: SubjectKeyIdentifier extension (hex), what cilium-cli compares; V(null) if absent.
      type: str
      sample: 5d0e3c0f3a8d8a4f6e7b1c2d3e4f5a6b7c8d9e0f
    subject:
      description: Subject (RFC 4514).
      type: str
      sample: CN=Cilium CA
    not_after:
      description: End of validity (ISO 8601).
      type: str
      sample: "2028-01-01T00:00:00+00:00"
    complete:
      description: Whether the Secret also holds C(ca.key) and that key belongs to the certificate (the key itself is never returned).
      type: bool
      sample: true
    helm_release:
      description: The Helm release that owns the Secret (C(namespace/name) of its Helm metadata), V(null) if none.
      type: str
      sample: kube-system/cilium
endpoint:
  description: Where peers reach the clustermesh-apiserver, or V(null) without Service or O(endpoint).
  returned: always
  type: dict
  contains:
    source:
      description: V(service) or V(override).
      type: str
      sample: service
    service_type:
      description: Type of Service C(clustermesh-apiserver) (V(null) for an override).
      type: str
      sample: NodePort
    ips:
      description: IP addresses.
      type: list
      elements: str
      sample: [172.18.0.2, 172.18.0.3]
    address:
      description: A DNS name (load balancer hostname or override), not resolved.
      type: str
      sample: null
    port:
      description: TCP port.
      type: int
      sample: 32379
nodes:
  description: The cluster's nodes.
  returned: always
  type: list
  elements: dict
  contains:
    name:
      description: Node name.
      type: str
    ready:
      description: Whether the node is Ready.
      type: bool
    internal_ips:
      description: InternalIP addresses.
      type: list
      elements: str
    external_ips:
      description: ExternalIP addresses.
      type: list
      elements: str
    pod_cidrs:
      description: C(spec.podCIDRs) of the node.
      type: list
      elements: str
pod_cidrs:
  description: All nodes' C(spec.podCIDRs), without duplicates.
  returned: always
  type: list
  elements: str
  sample: [10.1.0.0/24, 10.1.1.0/24]
peers:
  description: Peers configured in the release values C(clustermesh.config.clusters) (list or map form), sorted by name.
  returned: always
  type: list
  elements: dict
  contains:
    name:
      description: Peer cluster name.
      type: str
    ips:
      description: Peer IPs.
      type: list
      elements: str
    address:
      description: Peer DNS name.
      type: str
    port:
      description: Peer port.
      type: int
    enabled:
      description: Whether the entry is enabled.
      type: bool
datapath:
  description:
    - IPAM and datapath settings of C(cilium-config) that the mesh preflight compares, V(null) when Cilium
      is not installed.
  returned: always
  type: dict
  contains:
    ipam:
      description: C(ipam) (IPAM mode).
      type: str
      sample: kubernetes
    cluster_pool_cidrs:
      description: C(cluster-pool-ipv4-cidr) (the chart's C(ipam.operator.clusterPoolIPv4PodCIDRList)).
      type: list
      elements: str
      sample: [10.0.0.0/8]
    kube_proxy_replacement:
      description: C(kube-proxy-replacement).
      type: bool
      sample: false
    native_routing_cidr:
      description: C(ipv4-native-routing-cidr).
      type: str
      sample: null
    chaining_mode:
      description: C(cni-chaining-mode).
      type: str
      sample: null
status:
  description:
    - With O(read_status), what M(meshops.cilium.clustermesh_status) returns (RV(meshops.cilium.clustermesh_status#module:ready),
      RV(meshops.cilium.clustermesh_status#module:not_ready), RV(meshops.cilium.clustermesh_status#module:apiserver),
      RV(meshops.cilium.clustermesh_status#module:agents), ...), read without a wait and without metrics
      (its C(metrics) is null), with the O(namespace) and O(agent_status) it was read with.
    - V(null) when the status could not be read (a warning says why).
  returned: when O(read_status=true)
  type: dict
  sample: {"ready": true, "not_ready": [], "namespace": "kube-system", "agent_status": "auto"}
members:
  description:
    - With O(members), one descriptor per member, keyed by its name, with the keys above (and C(status) with
      O(read_status)), C(api_server), C(connection) and C(warnings_detail); a member that could not be described is
      an entry with C(cluster), C(failed=true) and C(msg).
  returned: with O(members)
  type: dict
  sample: {"mesh-1": {"installed": true, "cluster_name": "mesh-1", "api_server": "https://10.0.0.1:6443"}}
warnings_detail:
  description: Non-fatal findings (also emitted as Ansible warnings).
  returned: always
  type: list
  elements: str
  sample: ["NodePort: skipped nodes that are not Ready: mesh-1-worker2"]
'''

from ansible_collections.meshops.cilium.plugins.module_utils.base import run_module
from ansible_collections.meshops.cilium.plugins.module_utils.info import (
    HAS_CRYPTOGRAPHY,
    INFO_ARGUMENT_SPEC,
    describe,
    member_reader,
    validate_endpoint_override,
)


def run(m):
    p = m.params
    if p['endpoint']:
        if p['members'] is not None:
            m.module.fail_json(msg='endpoint: give it per cluster, without members (each member has its own endpoint)')
        try:
            validate_endpoint_override(p['endpoint'])
        except ValueError as e:
            m.fail('endpoint: %s' % e)
    if not HAS_CRYPTOGRAPHY:
        from ansible.module_utils.basic import missing_required_lib
        m.module.fail_json(msg=missing_required_lib('cryptography'))
    if p['members'] is not None:
        # with a local connection the action plugin of the same name gives this answer on the controller
        m.exit(changed=False, members=m.read_members(p['members'], member_reader(p), 'warnings_detail'))
    desc, warnings = describe(m.cluster, p, p['release_name'], p['read_status'])
    for w in warnings:
        m.warn(w)
    m.exit(changed=False, warnings_detail=warnings, **desc)


def main():
    run_module(run, INFO_ARGUMENT_SPEC)


if __name__ == '__main__':
    main()
