#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: meshops.cilium contributors
# SPDX-License-Identifier: Apache-2.0

DOCUMENTATION = r'''
---
module: cilium_install
short_description: Install, upgrade or remove the Cilium Helm release with a mesh identity
version_added: 0.1.0
description:
  - Manages the Cilium Helm release (default C(cilium) in C(kube-system)) with the helm binary, the way
    cilium-cli does, with chart values derived from this module's options.
  - "Idempotent: the release is read through the Kubernetes API (its release Secret, no helm call). The
    desired user values are the module's values, under which O(values) is merged, plus the keys other
    modules own (the peer list C(clustermesh.config) written by M(meshops.cilium.clustermesh_connect), and
    the clustermesh-apiserver keys when O(clustermesh_apiserver) is not given). When they equal the release's
    user values and the chart version does not change, nothing is written and helm is not run."
  - Otherwise one C(helm upgrade --install) is run with the complete desired user values (C(--reset-values)
    and a values file), so the release ends with exactly those values on the chart's defaults; values no
    longer wanted are dropped, the peers are kept.
  - A user value in O(values) that contradicts a value set by an option is an error, not a silent override.
  - Refuses to change C(cluster.name), C(cluster.id) or C(clustermesh.maxConnectedClusters) of an installed
    cluster that has a cluster ID, unless O(allow_identity_change=true).
author:
  - meshops maintainers (@meshops)
options:
  state:
    description:
      - V(present) installs or upgrades the release; V(absent) uninstalls it.
    type: str
    choices: [present, absent]
    default: present
  chart_ref:
    description:
      - The chart, as helm takes it. A local path to a chart directory or C(.tgz), a repository chart such
        as C(cilium/cilium) (with O(chart_repo_url) or a configured helm repository), or an OCI reference
        such as C(oci://quay.io/cilium/charts/cilium).
      - Required to install. For an installed release it may be omitted; the deployed chart is then rebuilt
        from the release record, so the chart version is kept without access to the chart source.
    type: str
  chart_version:
    description:
      - Chart version to install (C(--version)). A change of version is an upgrade of the release.
      - When omitted, the version of a local chart is read from it; for a repository or OCI chart of an
        installed release the deployed version is kept.
    type: str
  cluster_name:
    description:
      - C(cluster.name). 1 to 32 lower-case letters, digits and C(-); unique in the mesh.
    type: str
  cluster_id:
    description:
      - C(cluster.id). 1..255 (1..511 with O(max_connected_clusters=511)), unique in the mesh.
    type: int
  ipam_mode:
    description:
      - C(ipam.mode), for example V(kubernetes) (pod CIDRs from the nodes) or V(cluster-pool).
    type: str
  cluster_pool_ipv4_pod_cidrs:
    description:
      - C(ipam.operator.clusterPoolIPv4PodCIDRList) with O(ipam_mode=cluster-pool). Must not overlap across
        the mesh (the chart's default pool C(10.0.0.0/8) is the same in every cluster).
    type: list
    elements: str
  kube_proxy_replacement:
    description:
      - C(kubeProxyReplacement). Only V(true) or V(false); C(strict), C(partial), C(probe) and C(disabled)
        were removed in Cilium 1.16 and are refused.
      - V(true) needs O(k8s_service_host) and O(k8s_service_port).
    type: raw
  k8s_service_host:
    description:
      - C(k8sServiceHost), the API server address the agents use (or V(auto)).
    type: str
  k8s_service_port:
    description:
      - C(k8sServicePort).
    type: int
  routing_mode:
    description:
      - C(routingMode). The same in every cluster of a mesh.
    type: str
    choices: [tunnel, native]
  tunnel_protocol:
    description:
      - C(tunnelProtocol) with O(routing_mode=tunnel).
    type: str
    choices: [vxlan, geneve]
  ipv4_native_routing_cidr:
    description:
      - C(ipv4NativeRoutingCIDR) with O(routing_mode=native); must cover the pod CIDRs of every cluster.
    type: str
  max_connected_clusters:
    description:
      - C(clustermesh.maxConnectedClusters), V(255) or V(511). The same in every cluster, never changed after
        install (511 halves the cluster-local identities).
    type: int
    choices: [255, 511]
  peer_host_aliases:
    description:
      - Whether the peers' names (C(<name>.mesh.cilium.io)) are mapped to their IPs by C(hostAliases) in a pod
        template, as charts before 1.20 always do (the clustermesh-apiserver Deployment's with KVStoreMesh, else the
        cilium DaemonSet's), so every peer added, moved or removed restarts those pods.
      - V(false) sets C(clustermesh.disableKubernetesHostAliases=true). From chart 1.20 Cilium's programs resolve
        the peers themselves (each peer's configuration carries its C(cilium-host-aliases)) and read a changed
        configuration Secret without a restart, so connecting or disconnecting a peer restarts no pod; Cilium's own
        ClusterMesh conformance tests run this way. Charts before 1.20 ignore the value and keep C(hostAliases).
      - V(true) leaves C(hostAliases) to the chart.
      - Changing it on an installed release restarts the pods that lose or gain the C(hostAliases) once.
    type: bool
    default: false
    version_added: 0.3.0
  encryption_type:
    description:
      - Transparent encryption. Sets C(encryption.enabled) and C(encryption.type).
      - V(ipsec) needs a usable key in Secret C(cilium-ipsec-keys) (C(encryption.ipsec.secretName)) in
        O(namespace); the module refuses, before anything is written, when it is missing. Create it (the same
        key in every cluster of a mesh) with the C(meshops.cilium.ipsec) role or M(meshops.cilium.ipsec_keys)
        first.
    type: str
    choices: [disabled, ipsec, wireguard]
    aliases: [encryption]
  ipsec_key_rotation_duration:
    description:
      - C(encryption.ipsec.keyRotationDuration), a duration such as V(5m) (the chart's default) or V(15m), how
        long agents keep the previous key after a rotation. Every cluster of a mesh must get the new key within
        that time; raise it for large fleets.
      - Only with O(encryption_type=ipsec) (or IPsec set through O(values)).
    type: str
  clustermesh_apiserver:
    description:
      - The clustermesh-apiserver. When omitted (or O(clustermesh_apiserver.enabled) is omitted) its values
        are left as they are in the release.
    type: dict
    suboptions:
      enabled:
        description:
          - C(clustermesh.useAPIServer).
        type: bool
      service_type:
        description:
          - C(clustermesh.apiserver.service.type). V(ClusterIP) is not reachable from other clusters.
        type: str
        choices: [NodePort, LoadBalancer]
      node_port:
        description:
          - C(clustermesh.apiserver.service.nodePort). Give each cluster a distinct one (with kube-proxy
            replacement, equal node ports can connect agents to their local apiserver).
        type: int
      annotations:
        description:
          - C(clustermesh.apiserver.service.annotations), for example an internal load balancer annotation.
        type: dict
      kvstoremesh:
        description:
          - C(clustermesh.apiserver.kvstoremesh.enabled).
        type: bool
      tls_auto_method:
        description:
          - C(clustermesh.apiserver.tls.auto.method); also sets C(clustermesh.apiserver.tls.auto.enabled=true).
          - Both issue certificates from the shared C(cilium-ca) (see M(meshops.cilium.cilium_ca)).
        type: str
        choices: [helm, cronJob]
  values:
    description:
      - Further chart values, merged under the module's. A value that contradicts one set by an option is
        an error naming the key and both values.
      - The strings under secret key names at any depth (for example C(tls.ca.key),
        C(clustermesh.apiserver.tls.server.key), C(caKey), C(password), C(token), C(key)) are treated as
        C(no_log) values from the start of the module, so they never appear in its logged invocation, its
        result, warnings, errors or the diff. A C(key) beside C(operator) or C(effect) (tolerations, label
        selectors) or under C(secretKeyRef)/C(configMapKeyRef) names something and stays visible.
    type: dict
    default: {}
  existing_values:
    description:
      - What to do, when upgrading an installed release (for example one installed by hand with C(helm install)),
        with the release's own user values that this run would drop or change without anyone choosing that.
        Chosen values are those in O(values) and those of the options given and not listed in O(default_options).
      - V(refuse) fails before any write when such a value shapes the datapath or the cluster's reach (IPAM,
        routing and tunnel settings, kube-proxy replacement, C(k8sServiceHost)/C(k8sServicePort), encryption,
        cluster identity, devices, MTU, BPF and masquerading settings; the list and its reasons are
        C(DATAPATH_VALUES) in C(plugins/module_utils/values.py)), naming each; other such values are named in a
        warning and dropped.
      - V(keep) keeps every value of the release that is not chosen anew (a warning names them).
      - V(reset) drops or changes them (a warning names them), so the release ends with exactly the desired values.
      - RV(existing_values) lists what was found, without the values.
    type: str
    choices: [refuse, keep, reset]
    default: refuse
  default_options:
    description:
      - Names of options of this task whose value is a default of the caller rather than the user's choice
        (the C(cilium) role fills it with the options whose C(cilium_*) variable the inventory does not set).
        Such an option never counts as choosing a value of an installed release; see O(existing_values).
    type: list
    elements: str
    default: []
  allow_identity_change:
    description:
      - Allow changing C(cluster.name), C(cluster.id) or C(clustermesh.maxConnectedClusters) of an installed
        cluster. This breaks its ClusterMesh connections and needs all its workloads restarted.
    type: bool
    default: false
  release_described:
    description:
      - The release as M(meshops.cilium.clustermesh_info) described it earlier in this run (its return value C(release)),
        before anything was written to it; the C(cilium) role passes the preflight's description.
      - When it shows the release deployed from O(chart_version) with exactly the user values this task would
        give Helm (the peers aside), the task returns V(unchanged) on the controller (action plugin) without
        running the module or making a request. Otherwise, and for V(absent), IPsec, a warning or a chart
        without O(chart_version), the module runs as without it.
      - Never give a description older than a write to the release; the task would not see that write.
    type: dict
    version_added: 0.2.0
  wait:
    description:
      - After an install or upgrade made by this task, wait until the agents (DaemonSet C(cilium)), the
        operator (Deployment C(cilium-operator)) and, when enabled, Deployment C(clustermesh-apiserver)
        are Ready.
      - Like C(helm upgrade --wait), nothing is polled when the release is already deployed with the
        wanted chart and values (a no-op run reads only the release); M(meshops.cilium.clustermesh_status)
        reports the readiness of an unchanged release.
    type: bool
    default: false
  wait_timeout:
    description:
      - Seconds to wait with O(wait), and helm's C(--timeout).
    type: int
    default: 300
  wait_clustermesh_apiserver:
    description:
      - With O(wait) and the clustermesh-apiserver enabled, what to wait for of it.
      - V(ready) waits until Deployment C(clustermesh-apiserver) is Ready.
      - V(address) waits only for the address peers reach it at (the ingress of a LoadBalancer Service;
        nothing more for other Service types). For a run that connects the cluster next
        (M(meshops.cilium.clustermesh_connect)) and then waits for its mesh status
        (M(meshops.cilium.clustermesh_status)), which includes the clustermesh-apiserver's readiness (its pods
        start while the connect runs). With O(peer_host_aliases=true) or a chart before 1.20, the connect's change
        of peers rolls the clustermesh-apiserver again (its host aliases) anyway. The C(site.yml) playbook does
        this.
    type: str
    choices: [ready, address]
    default: ready
    version_added: 0.3.0
extends_documentation_fragment:
  - meshops.cilium.cluster
  - meshops.cilium.release
  - meshops.cilium.helm
  - meshops.cilium.attributes
  - meshops.cilium.attributes.write_module
notes:
  - The connection options are given to helm as C(--kubeconfig)/C(--kube-context) for a kubeconfig file,
    otherwise as a temporary kubeconfig file (mode 0600 in a private directory) removed right after the
    call. Tokens never appear on a command line.
  - In check mode helm is not run; RV(changed_keys) says which values would change.
  - In diff mode, the release's user values before and after are shown, secrets masked.
seealso:
  - module: meshops.cilium.cilium_ca
  - module: meshops.cilium.clustermesh_enable
  - module: meshops.cilium.clustermesh_info
'''

EXAMPLES = r'''
- name: Cilium with a mesh identity and the clustermesh-apiserver behind a LoadBalancer
  meshops.cilium.cilium_install:
    kubeconfig: ~/.kube/config
    context: mesh-1
    chart_ref: cilium
    chart_repo_url: https://helm.cilium.io
    chart_version: 1.19.5
    cluster_name: mesh-1
    cluster_id: 1
    ipam_mode: kubernetes
    kube_proxy_replacement: true
    k8s_service_host: 10.0.0.10
    k8s_service_port: 6443
    routing_mode: tunnel
    tunnel_protocol: vxlan
    clustermesh_apiserver:
      enabled: true
      service_type: LoadBalancer
      annotations:
        service.beta.kubernetes.io/aws-load-balancer-scheme: internal
    values:
      hubble:
        relay:
          enabled: true
    wait: true

- name: Air-gapped, from a chart archive
  meshops.cilium.cilium_install:
    context: mesh-2
    chart_ref: /srv/charts/cilium-1.19.5.tgz
    cluster_name: mesh-2
    cluster_id: 2
    ipam_mode: cluster-pool
    cluster_pool_ipv4_pod_cidrs: [10.2.0.0/16]

- name: Remove Cilium
  meshops.cilium.cilium_install:
    context: mesh-3
    state: absent
'''

RETURN = r'''
cluster:
  description: The name this module knows the cluster by.
  returned: always
  type: str
  sample: mesh-1
action:
  description:
    - V(installed), V(upgraded), V(unchanged), V(uninstalled) or V(absent) (nothing to uninstall).
    - In check mode, what would be done.
  returned: always
  type: str
  sample: upgraded
release:
  description: The release after the run (in check mode, as it is). V(null) when there is none.
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
      sample: 2
    chart_version:
      description: Chart version.
      type: str
      sample: 1.19.5
    status:
      description: Helm status of the revision.
      type: str
      sample: deployed
changed_keys:
  description: Dotted value keys that change (or would change), sorted.
  returned: always
  type: list
  elements: str
  sample: [clustermesh.apiserver.service.type, clustermesh.useAPIServer]
chart_change:
  description: C([from, to]) chart versions when the chart version changes, else V(null).
  returned: always
  type: list
  elements: str
  sample: [1.18.8, 1.19.2]
ready:
  description: With O(wait), the state of each waited-for workload after this task's install or upgrade.
  returned: when O(wait=true), O(state=present) and the task installed or upgraded the release
  type: dict
  sample: {"DaemonSet/cilium": "3/3 ready"}
existing_values:
  description:
    - For an installed release, its user values that the desired values drop or change (no values, only paths).
  returned: always
  type: list
  elements: dict
  contains:
    path:
      description: Dotted value key.
      type: str
      sample: routingMode
    change:
      description: V(dropped) or V(changed).
      type: str
    datapath:
      description: Why the value shapes the datapath or the cluster's reach, or V(null).
      type: str
    chosen:
      description: Whether the user chose the new value (in O(values) or an option not in O(default_options)).
      type: bool
read:
  description: Only when O(release_described) answered without the module, and nothing was read; says so.
  returned: when the release was unchanged by its description
  type: str
warnings_detail:
  description: Non-fatal findings (also emitted as warnings).
  returned: always
  type: list
  elements: str
written:
  description:
    - Only when the module failed after it had written to the cluster (for example a Helm release revision, then a readiness
      wait failed), what was written. The result then says C(changed=true) and C(msg) ends with what was
      written and how to recover (re-run the task, or the C(helm rollback) command for a release).
  returned: failure after a write
  type: list
  elements: str
  sample: ["Helm release kube-system/cilium revision 4 (chart 1.18.2, status deployed)"]
'''

from ansible_collections.meshops.cilium.plugins.module_utils.base import run_module
from ansible_collections.meshops.cilium.plugins.module_utils.helm import (
    HelmRunner,
    ensure_namespace,
    install_components,
    local_chart_version,
    read_release,
    refuse_pending,
    release_summary,
    require_helm,
    wait_ready,
)
from ansible_collections.meshops.cilium.plugins.module_utils.install import INSTALL_ARGUMENT_SPEC
from ansible_collections.meshops.cilium.plugins.module_utils.ipsec import (
    check_install_secret,
    encryption_settings,
    read as read_ipsec_secret,
)
from ansible_collections.meshops.cilium.plugins.module_utils.values import plan_install, validate_install_options


def _runner(m):
    binary, version = require_helm(m.params['helm_binary'])
    return HelmRunner(binary, m.connection, version=version)


def absent(m, current):
    p = m.params
    if current is None:
        m.exit(changed=False, action='absent', release=None, changed_keys=[], chart_change=None,
               warnings_detail=[], existing_values=[])
    if not m.check_mode:
        _runner(m).uninstall(p['release_name'], p['namespace'], wait=p['wait'], timeout=p['wait_timeout'])
        m.wrote('uninstalled Helm release %s/%s (was revision %s)' % (p['namespace'], p['release_name'],
                                                                      current.revision))
    m.exit(changed=True, action='uninstalled', release=release_summary(current), changed_keys=[], chart_change=None,
           warnings_detail=[], existing_values=[], before={'release': release_summary(current)}, after={'release': None})


def run(m):
    p = m.params
    ns, name = p['namespace'], p['release_name']
    if p['state'] == 'present':
        validate_install_options(p)  # before connecting (OptionError: ClusterModule.run fails)
    current = read_release(m.cluster, ns, name)
    if p['state'] == 'absent':
        absent(m, current)
        return
    refuse_pending(current)
    target = p['chart_version'] or local_chart_version(p['chart_ref'])
    installed = current is not None
    plan = plan_install(p, current.values if installed else None,
                        current.chart_version if installed else None, installed, target)
    for w in plan['warnings']:
        m.warn(w)
    if not installed and not p['chart_ref']:
        m.fail('Helm release %s/%s is not installed; chart_ref is needed to install it' % (ns, name))
    if plan['chart_change'] and not p['chart_ref']:
        m.fail('chart_version %s differs from the deployed %s; give chart_ref to change the chart version'
               % (plan['chart_change'][1], plan['chart_change'][0]))
    needs_helm = plan['action'] != 'none' or (installed and not current.deployed)
    enc = encryption_settings(plan['desired'])
    if enc['ipsec']:
        problem = check_install_secret(plan['desired'], read_ipsec_secret(m.cluster, ns, enc['secret_name']), ns)
        if problem and needs_helm:
            m.fail(problem)
        elif problem:
            m.warn(problem)
    action = {'install': 'installed', 'upgrade': 'upgraded', 'none': 'unchanged'}[plan['action']]
    if plan['action'] == 'none' and needs_helm:
        action = 'upgraded'  # a failed revision is re-applied
    release = current
    if needs_helm and not m.check_mode:
        runner = _runner(m)
        chart_ref, chart_version = p['chart_ref'], p['chart_version']
        if installed and chart_ref and not target:
            chart_version = current.chart_version  # a repo/OCI chart without version: keep the deployed one
        if not installed and ensure_namespace(m.cluster, ns):
            m.wrote('Namespace %s (created)' % ns)
        release = m.write_release(
            lambda: runner.upgrade(name, ns, plan['desired'], chart_ref=chart_ref, chart_version=chart_version,
                                   chart_repo_url=p['chart_repo_url'], install=not installed,
                                   timeout=p['wait_timeout'], current=current),
            lambda: read_release(m.cluster, ns, name), current)
    result = dict(changed=needs_helm, action=action, release=release_summary(release), changed_keys=plan['changed_keys'],
                  chart_change=list(plan['chart_change']) if plan['chart_change'] else None,
                  warnings_detail=plan['warnings'], existing_values=plan['existing_values'])
    if p['wait'] and needs_helm and not m.check_mode:
        result['ready'] = wait_ready(m.cluster, ns, install_components(
            plan['desired'], apiserver=p['wait_clustermesh_apiserver']), timeout=p['wait_timeout'])
    m.exit(before=current.values if installed else {}, after=plan['desired'], **result)


def main():
    run_module(run, INSTALL_ARGUMENT_SPEC)


if __name__ == '__main__':
    main()
