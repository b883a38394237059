# -*- coding: utf-8 -*-
# Copyright: meshops.cilium contributors
# SPDX-License-Identifier: Apache-2.0
"""Preflight checks of a whole mesh: pure functions, no I/O.

``check(clusters, ca_source=None)`` takes one dict per member of the mesh group:
the values DECLARED in the inventory (what the run is about to apply) plus
``info``, the descriptor ``clustermesh_info`` DISCOVERED (partial for a cluster
without Cilium, ``{'failed': True, 'msg': ...}`` for a cluster that could not be
read). It returns every problem found, never stopping at the first one, as
dicts ``{cluster, field, problem, fix, severity}``; ``format_table`` renders
them as one table by cluster.

Declared keys (all optional except ``host``): ``host`` (inventory name),
``cluster_name``, ``cluster_id``, ``max_connected_clusters``, ``routing_mode``,
``ipam_mode``, ``pod_cidrs``, ``service_cidrs``, ``native_routing_cidr``,
``chart_version``, ``kube_proxy_replacement``, ``k8s_service_host``,
``service_type``, ``node_port``, ``chaining_mode``, ``eni``,
``allow_identity_change``, ``context``, ``kubeconfig``, ``release_name``, ``values``
(``cilium_values``), ``chart_ref``, ``install`` (the options ``cilium_install`` gets, with
``default_options`` and ``existing_values``: the review of an installed release's datapath values).

``run_preflight(params)`` is the whole run of the module ``clustermesh_preflight`` (its options are
``PREFLIGHT_ARGUMENT_SPEC``), shared by the module and by its action plugin, which gives the same
answer on the controller without a module process. It is the one part that reads files (the target
chart's ``values.schema.json``) and runs a program (``helm template``, client-side only).
"""

import ipaddress
import os
import re

from ansible_collections.meshops.cilium.plugins.module_utils.base import HELM_BINARY_ARGUMENT_SPEC
from ansible_collections.meshops.cilium.plugins.module_utils.common import (
    CLUSTER_NAME_MAX,
    CLUSTER_NAME_RE,
    MAX_CONNECTED,
    PENDING_STATUSES,
    SUPPORTED_CHART_RANGE,
    chart_range_text,
    chart_support,
    int_or_none,
    version_tuple,
)
from ansible_collections.meshops.cilium.plugins.module_utils.rendered import (
    existing_value_problems,
    managed_values,
    option_problems,
    render_problems,
    value_problems,
)
from ansible_collections.meshops.cilium.plugins.module_utils.values import install_values, normalize_kpr, rendered_already

ERROR = 'error'
WARNING = 'warning'

ROUTING_MODES = ('tunnel', 'native')
SERVICE_TYPES = ('NodePort', 'LoadBalancer')
REMOVED_KPR = ('strict', 'partial', 'disabled', 'probe')
# The chart's default pool for ipam cluster-pool (ipam.operator.clusterPoolIPv4PodCIDRList).
CHART_DEFAULT_POOL = '10.0.0.0/8'
# The chart's default nodePort of the clustermesh-apiserver Service.
CHART_DEFAULT_NODE_PORT = 32379
NODE_PORT_RANGE = (30000, 32767)
# Cluster IDs the chart refuses with ENI IPAM or AWS VPC CNI chaining (cilium issue 21330).
ENI_BAD_IDS = ((128, 255), (384, 511))

# Variable names shown in the table's FIELD column (what the user edits).
FIELDS = {
    'connection': 'meshops_kubeconfig/meshops_context',
    'cluster_name': 'cilium_cluster_name',
    'cluster_id': 'cilium_cluster_id',
    'max_connected_clusters': 'cilium_max_connected_clusters',
    'routing_mode': 'cilium_routing_mode',
    'native_routing_cidr': 'cilium_ipv4_native_routing_cidr',
    'pod_cidrs': 'cilium_pod_cidrs',
    'service_cidrs': 'cilium_service_cidr',
    'node_ips': 'nodes (InternalIP)',
    'ca': 'cilium-ca',
    'chart_version': 'cilium_chart_version',
    'kube_proxy_replacement': 'cilium_kube_proxy_replacement',
    'node_port': 'cilium_clustermesh_node_port',
    'service_type': 'cilium_clustermesh_service_type',
    'release': 'cilium_release_name',
    'chart_ref': 'cilium_chart_ref',
}


def problem(cluster, field, text, fix, severity=ERROR):
    return {'cluster': cluster, 'field': FIELDS.get(field, field), 'problem': text, 'fix': fix,
            'severity': severity}


# ---------------------------------------------------------------------------
# Small parsers
# ---------------------------------------------------------------------------

def as_list(value):
    if value is None or value == '':
        return []
    if isinstance(value, (list, tuple)):
        return [v for v in value if v not in (None, '')]
    return [v for v in re.split(r'[\s,]+', str(value)) if v]


def networks(values):
    """``(networks, bad)``: parsed networks (host bits allowed) and the strings that are not CIDRs."""
    good, bad = [], []
    for v in as_list(values):
        try:
            good.append(ipaddress.ip_network(str(v).strip(), strict=False))
        except ValueError:
            bad.append(str(v))
    return good, bad


def collapse(nets):
    out = []
    for version in (4, 6):
        same = [n for n in nets if n.version == version]
        if same:
            out.extend(ipaddress.collapse_addresses(same))
    return out


def overlaps(a, b):
    """Pairs ``(x, y)`` of overlapping networks from the lists ``a`` and ``b``."""
    return [(x, y) for x in a for y in b if x.version == y.version and x.overlaps(y)]


def covering(nets):
    """The smallest network that covers every network of ``nets`` (one IP version), or None."""
    nets = list(nets)
    if not nets or len(set(n.version for n in nets)) != 1:
        return None
    cand = nets[0]
    while not all(n.subnet_of(cand) for n in nets):
        if cand.prefixlen == 0:
            return None
        cand = cand.supernet()
    return cand


def _join(items):
    return ', '.join(str(i) for i in items)


def _majority(values):
    """The most common value (ties: the first seen)."""
    counts = {}
    order = []
    for v in values:
        if v not in counts:
            order.append(v)
        counts[v] = counts.get(v, 0) + 1
    return max(order, key=lambda v: (counts[v], -order.index(v))) if order else None


# ---------------------------------------------------------------------------
# Normalising one cluster
# ---------------------------------------------------------------------------

class Member:
    """One cluster: declared values, discovered descriptor, and derived facts."""

    def __init__(self, data):
        self.d = dict(data or {})
        self.host = str(self.d.get('host') or self.d.get('cluster_name') or '?')
        info = self.d.get('info') or {}
        # a failed clustermesh_info result (also one registered with failed_when: false) has no descriptor
        self.failed = bool(info.get('failed')) or bool(info and 'installed' not in info and info.get('msg'))
        self.error = info.get('msg') if self.failed else None
        self.info = {} if self.failed else info
        self.installed = bool(self.info.get('installed'))
        self.name = self.d.get('cluster_name')
        if self.name is not None:
            self.name = str(self.name)
        self.id = int_or_none(self.d.get('cluster_id'))
        self.mcc = int_or_none(self.d.get('max_connected_clusters'))
        self.mcc_ok = self.mcc in MAX_CONNECTED
        self.routing = self.d.get('routing_mode')
        self.ipam = self.d.get('ipam_mode')
        self.kpr = normalize_kpr(self.d.get('kube_proxy_replacement'), refuse=False)
        self.release = self.info.get('release') or None
        self.datapath = self.info.get('datapath') or {}

    @property
    def limit(self):
        return self.mcc if self.mcc_ok else 255

    def ipam_effective(self):
        return self.ipam or self.datapath.get('ipam')

    def eni_like(self):
        """Why the ENI/AWS-CNI ID restriction applies (a string), or None."""
        if self.d.get('eni') in (True, 'true', 'True'):
            return 'eni.enabled=true'
        if self.ipam_effective() == 'eni':
            return 'ipam mode eni'
        chaining = self.d.get('chaining_mode') or self.datapath.get('chaining_mode')
        if chaining == 'aws-cni':
            return 'AWS VPC CNI chaining (cni.chainingMode=aws-cni)'
        return None

    def node_port(self):
        """``(port, source)`` of the clustermesh-apiserver NodePort, or ``(None, None)`` when not NodePort."""
        stype = self.d.get('service_type')
        ep = self.info.get('endpoint') or {}
        if stype is None and ep.get('service_type'):
            stype = ep.get('service_type')
        if stype != 'NodePort':
            return None, None
        declared = int_or_none(self.d.get('node_port'))
        if declared:
            return declared, 'declared'
        if ep.get('service_type') == 'NodePort' and ep.get('port'):
            return int(ep['port']), 'installed'
        return CHART_DEFAULT_NODE_PORT, 'chart default'


def pod_cidr_sources(m, problems):
    """``[(network, source)]`` of a cluster's pod CIDRs; bad strings become problems."""
    out = []
    declared, bad = networks(m.d.get('pod_cidrs'))
    for b in bad:
        problems.append(problem(m.host, 'pod_cidrs', '%r is not a CIDR' % b,
                                'write pod CIDRs as network/prefix, e.g. 10.%d.0.0/16' % (m.id or 1)))
    out.extend((n, 'cilium_pod_cidrs') for n in collapse(declared))
    ipam = m.ipam_effective()
    if ipam == 'cluster-pool' and not declared:
        out.append((ipaddress.ip_network(CHART_DEFAULT_POOL), 'the chart default cluster-pool %s' % CHART_DEFAULT_POOL))
    if m.datapath.get('ipam') == 'cluster-pool':
        pool, _bad = networks(m.datapath.get('cluster_pool_cidrs'))
        out.extend((n, 'installed clusterPoolIPv4PodCIDRList') for n in collapse(pool))
    if ipam in (None, 'kubernetes'):
        nodes = []
        for n in m.info.get('nodes') or []:
            nodes.extend(networks(n.get('pod_cidrs'))[0])
        if not nodes:
            nodes = networks(m.info.get('pod_cidrs'))[0]
        out.extend((n, 'node podCIDRs') for n in collapse(nodes))
    # one entry per network, the first source wins
    seen, unique = set(), []
    for n, src in out:
        if n not in seen:
            seen.add(n)
            unique.append((n, src))
    return unique


# ---------------------------------------------------------------------------
# The checks (each appends to ``problems``)
# ---------------------------------------------------------------------------

def check_connection(members, problems, unreachable=ERROR):
    """``unreachable``: the severity of a cluster that cannot be read (``warning`` in check
    mode, where the preview goes on for the others and the cluster is reported by name)."""
    for m in members:
        if m.failed:
            problems.append(problem(
                m.host, 'connection', 'cannot read the cluster: %s' % (m.error or 'unknown error'),
                'check meshops_kubeconfig and meshops_context of %s and that its API server is reachable '
                '(every member of the mesh group is read, also outside --limit)' % m.host,
                severity=unreachable))
    seen = {}
    for m in members:
        key = (m.d.get('kubeconfig') or '', m.d.get('context'))
        if m.d.get('context') and key in seen:
            problems.append(problem(
                m.host, 'connection', 'uses the same kubeconfig context %r as %s: both hosts are one cluster'
                % (m.d.get('context'), seen[key]),
                'give %s its own meshops_context (each inventory host is one cluster)' % m.host))
        else:
            seen.setdefault(key, m.host)


def check_names(members, problems):
    by_name = {}
    for m in members:
        name = m.name
        if not name:
            problems.append(problem(m.host, 'cluster_name', 'no cluster name is set',
                                    'set cilium_cluster_name (defaults to the inventory host name)'))
            continue
        if not 1 <= len(name) <= CLUSTER_NAME_MAX:
            problems.append(problem(m.host, 'cluster_name', 'cluster name %r has %d characters, Cilium allows 1 to 32'
                                    % (name, len(name)),
                                    'set cilium_cluster_name to at most 32 characters, e.g. %r'
                                    % name[:32].strip('-')))
        elif not CLUSTER_NAME_RE.fullmatch(name):
            problems.append(problem(m.host, 'cluster_name', 'cluster name %r is not valid: only lower-case letters, '
                                    'digits and "-", starting and ending with a letter or digit' % name,
                                    'set cilium_cluster_name to e.g. %r'
                                    % (re.sub(r'[^-a-z0-9]', '-', name.lower()).strip('-') or 'mesh-%s' % m.id)))
        if name == 'default' and m.id != 0:
            problems.append(problem(m.host, 'cluster_name', 'cluster name "default" cannot be used with cluster ID %s '
                                    '(Cilium refuses it in a mesh)' % m.id,
                                    'set cilium_cluster_name to a unique name, e.g. %r' % m.host))
        by_name.setdefault(name, []).append(m.host)
    for m in members:
        hosts = by_name.get(m.name) or []
        if len(hosts) > 1 and hosts[0] != m.host:
            problems.append(problem(m.host, 'cluster_name', 'cluster name %r is also used by %s'
                                    % (m.name, _join(h for h in hosts if h != m.host)),
                                    'give every cluster a unique cilium_cluster_name, e.g. %r' % m.host))


def check_max_connected(members, problems):
    for m in members:
        raw = m.d.get('max_connected_clusters')
        if raw is None:
            continue
        if not m.mcc_ok:
            problems.append(problem(m.host, 'max_connected_clusters', 'maxConnectedClusters %s is not accepted: '
                                    'Cilium takes only 255 or 511' % raw,
                                    'set cilium_max_connected_clusters to 255 (default) or 511, the same mesh-wide'))
    valid = [m for m in members if m.mcc_ok]
    common = _majority([m.mcc for m in valid])
    for m in valid:
        if m.mcc != common:
            others = [o.host for o in valid if o.mcc == common]
            problems.append(problem(m.host, 'max_connected_clusters', 'maxConnectedClusters %s differs from %s in %s; '
                                    'clusters with different values cannot connect' % (m.mcc, common, _join(others)),
                                    'set cilium_max_connected_clusters once in group_vars (%s), the same for every '
                                    'cluster' % common))


def check_ids(members, problems):
    used = set(m.id for m in members if m.id)
    limit = max([m.limit for m in members] or [255])

    def free_id(lo=1, hi=None, avoid_eni=False):
        for i in range(lo, (hi or limit) + 1):
            if i in used:
                continue
            if avoid_eni and any(a <= i <= b for a, b in ENI_BAD_IDS):
                continue
            return i
        return None

    by_id = {}
    for m in members:
        raw = m.d.get('cluster_id')
        if raw is None or raw == '':
            problems.append(problem(m.host, 'cluster_id', 'no cluster ID is set',
                                    'set cilium_cluster_id in host_vars, unique in the mesh, e.g. %s' % free_id()))
            continue
        if m.id is None:
            problems.append(problem(m.host, 'cluster_id', 'cluster ID %r is not a number' % (raw,),
                                    'set cilium_cluster_id to an integer 1..%d, e.g. %s' % (m.limit, free_id())))
            continue
        if m.id == 0:
            problems.append(problem(m.host, 'cluster_id', 'cluster ID 0 means "not part of a mesh"',
                                    'set cilium_cluster_id to a unique ID 1..%d, e.g. %s' % (m.limit, free_id())))
            continue
        if not 1 <= m.id <= m.limit:
            fix = 'set cilium_cluster_id to an unused ID 1..%d, e.g. %s' % (m.limit, free_id(hi=m.limit))
            if m.limit == 255 and m.id <= 511:
                fix += ' (IDs up to 511 need cilium_max_connected_clusters: 511 mesh-wide, set before the first install)'
            problems.append(problem(m.host, 'cluster_id', 'cluster ID %d is outside 1..%d (maxConnectedClusters=%d)'
                                    % (m.id, m.limit, m.limit), fix))
            continue
        by_id.setdefault(m.id, []).append(m.host)
        why = m.eni_like()
        if why and any(a <= m.id <= b for a, b in ENI_BAD_IDS):
            problems.append(problem(m.host, 'cluster_id', 'cluster ID %d is refused with %s: IDs 128-255 and 384-511 '
                                    'break network policy there (cilium issue 21330)' % (m.id, why),
                                    'set cilium_cluster_id to an unused ID in 1..127 (or 256..383), e.g. %s'
                                    % free_id(hi=127, avoid_eni=True)))
    for cid, hosts in sorted(by_id.items()):
        for h in hosts[1:]:
            problems.append(problem(h, 'cluster_id', 'cluster ID %d is also used by %s' % (cid, hosts[0]),
                                    'give every cluster a unique cilium_cluster_id, e.g. %s' % free_id()))


def check_identity_change(members, problems):
    for m in members:
        if not m.installed:
            continue
        installed = {
            'cluster_name': m.info.get('cluster_name'),
            'cluster_id': int_or_none(m.info.get('cluster_id')),
            'max_connected_clusters': int_or_none(m.info.get('max_connected_clusters')),
        }
        declared = {'cluster_name': m.name, 'cluster_id': m.id, 'max_connected_clusters': m.mcc}
        for key in ('cluster_name', 'cluster_id', 'max_connected_clusters'):
            before, after = installed[key], declared[key]
            if before is None or after is None or before == after:
                continue
            if key == 'cluster_id' and before == 0:
                continue  # installed outside a mesh: giving it an ID is how it joins
            if key == 'cluster_name' and before == 'default':
                continue
            allowed = m.d.get('allow_identity_change') in (True, 'true', 'True')
            text = 'the installed %s is %s, the inventory says %s: changing it breaks every mesh connection of ' \
                   'the cluster and needs all its workloads restarted' % (key.replace('_', ' '), before, after)
            if key == 'max_connected_clusters':
                text += ' (511 halves the cluster-local identities)'
            problems.append(problem(
                m.host, key, text,
                'keep %s: %s (the installed value), or set cilium_allow_identity_change: true and plan the restart'
                % (FIELDS[key], before) if not allowed else 'none needed (cilium_allow_identity_change is true); '
                'plan the restart of every workload',
                WARNING if allowed else ERROR))


def check_release(members, problems):
    for m in members:
        if not m.installed:
            continue
        name = m.d.get('release_name') or 'cilium'
        if m.release is None:
            problems.append(problem(
                m.host, 'release', 'Cilium is installed (ConfigMap cilium-config exists) but there is no Helm '
                'release %r: it was installed another way and a Helm install would collide with it' % name,
                'set cilium_release_name to the existing release, or remove that installation first'))
        elif m.release.get('status') in PENDING_STATUSES:
            problems.append(problem(
                m.host, 'release', 'Helm release %r is %s: another operation is in progress or was interrupted'
                % (name, m.release.get('status')),
                'wait for it, or roll it back (helm rollback %s) before this run' % name))
        elif m.release.get('status') == 'failed':
            problems.append(problem(
                m.host, 'release', 'the last revision of Helm release %r failed' % name,
                'check helm history %s; this run will retry the upgrade' % name, WARNING))


def check_pod_cidrs(members, problems):
    cidrs = dict((m.host, pod_cidr_sources(m, problems)) for m in members)
    for i, a in enumerate(members):
        for b in members[:i]:
            pairs = [(x, sx, y, sy) for x, sx in cidrs[a.host] for y, sy in cidrs[b.host]
                     if x.version == y.version and x.overlaps(y)]
            if not pairs:
                continue
            shown = '; '.join('%s (%s) overlaps %s of %s (%s)' % (x, sx, y, b.host, sy) for x, sx, y, sy in pairs[:3])
            if len(pairs) > 3:
                shown += '; and %d more' % (len(pairs) - 3)
            problems.append(problem(
                a.host, 'pod_cidrs', 'pod CIDRs overlap with %s: %s' % (b.host, shown),
                'give every cluster distinct pod CIDRs (kube-controller-manager --cluster-cidr with ipam kubernetes, '
                'cilium_pod_cidrs with ipam cluster-pool), e.g. 10.%d.0.0/16 for %s' % (a.id or i + 1, a.host)))
    # declared pod CIDRs must cover what the nodes were given (a wrong inventory, not a clash)
    for m in members:
        declared = collapse(networks(m.d.get('pod_cidrs'))[0])
        nodes = [n for n, src in cidrs[m.host] if src == 'node podCIDRs']
        if declared and nodes:
            outside = [n for n in nodes if not any(n.version == d.version and n.subnet_of(d) for d in declared)]
            if outside:
                problems.append(problem(
                    m.host, 'pod_cidrs', 'node podCIDRs %s are outside the declared cilium_pod_cidrs %s'
                    % (_join(outside[:3]), _join(declared)),
                    'set cilium_pod_cidrs to the pod CIDRs the cluster really uses', WARNING))
    return cidrs


def check_node_ips(members, cidrs, problems):
    owner = {}
    for m in members:
        ips = []
        for n in m.info.get('nodes') or []:
            for ip in n.get('internal_ips') or []:
                try:
                    ips.append(ipaddress.ip_address(ip))
                except ValueError:
                    continue
        m.node_ips = sorted(set(ips), key=lambda a: (a.version, a))
        clash = {}
        for ip in m.node_ips:
            if ip in owner and owner[ip] != m.host:
                clash.setdefault(owner[ip], []).append(ip)
            owner.setdefault(ip, m.host)
        for other, dup in sorted(clash.items()):
            problems.append(problem(
                m.host, 'node_ips', 'node InternalIPs %s are also node IPs of %s; nodes of a mesh must reach each '
                'other by distinct addresses' % (_join(dup[:5]), other),
                'check that meshops_context of %s points at the right cluster, or give its nodes distinct '
                'addresses' % m.host))
    for m in members:
        for other in members:
            inside = [ip for ip in m.node_ips for n, _src in cidrs[other.host]
                      if ip.version == n.version and ip in n]
            if inside:
                problems.append(problem(
                    m.host, 'node_ips', 'node InternalIPs %s lie inside the pod CIDRs of %s'
                    % (_join(sorted(set(inside))[:5]), other.host),
                    'choose pod CIDRs of %s that do not contain node addresses' % other.host))


def check_service_cidrs(members, cidrs, problems):
    svc = {}
    for m in members:
        nets, bad = networks(m.d.get('service_cidrs'))
        for b in bad:
            problems.append(problem(m.host, 'service_cidrs', '%r is not a CIDR' % b,
                                    'write cilium_service_cidr as network/prefix, e.g. 10.96.0.0/16'))
        svc[m.host] = collapse(nets)
    for i, a in enumerate(members):
        for b in members[:i]:
            pairs = overlaps(svc[a.host], svc[b.host])
            if pairs:
                problems.append(problem(
                    a.host, 'service_cidrs', 'service CIDR %s overlaps %s of %s (allowed, but global services and '
                    'troubleshooting are clearer with distinct ones)' % (pairs[0][0], pairs[0][1], b.host),
                    'give each cluster a distinct service CIDR when you next build one', WARNING))
        for other in members:
            pairs = overlaps(svc[a.host], [n for n, _s in cidrs[other.host]])
            if pairs:
                problems.append(problem(
                    a.host, 'service_cidrs', 'service CIDR %s overlaps pod CIDR %s of %s'
                    % (pairs[0][0], pairs[0][1], other.host),
                    'service and pod CIDRs of the mesh must be disjoint; change one of them'))


def check_routing(members, cidrs, problems):
    valid = []
    for m in members:
        if m.routing is None:
            continue
        if m.routing not in ROUTING_MODES:
            problems.append(problem(m.host, 'routing_mode', 'routing mode %r is not tunnel or native' % m.routing,
                                    'set cilium_routing_mode to tunnel or native, the same mesh-wide'))
            continue
        valid.append(m)
        installed = m.info.get('routing_mode')
        if m.installed and installed and installed != m.routing:
            problems.append(problem(
                m.host, 'routing_mode', 'the installed routing mode is %s, the inventory says %s: switching the '
                'datapath interrupts pod traffic' % (installed, m.routing),
                'keep cilium_routing_mode: %s, or plan a maintenance window' % installed, WARNING))
    common = _majority([m.routing for m in valid])
    for m in valid:
        if m.routing != common:
            problems.append(problem(
                m.host, 'routing_mode', 'routing mode %s differs from %s in %s; the mesh needs one datapath mode'
                % (m.routing, common, _join(o.host for o in valid if o.routing == common)),
                'set cilium_routing_mode: %s once in group_vars for every cluster' % common))
    all_pods = [n for m in members for n, _s in cidrs[m.host] if n.version == 4]
    for m in valid:
        if m.routing != 'native':
            continue
        raw = m.d.get('native_routing_cidr')
        hint = covering(all_pods)
        if not raw:
            problems.append(problem(
                m.host, 'native_routing_cidr', 'native routing needs ipv4NativeRoutingCIDR',
                'set cilium_ipv4_native_routing_cidr to a CIDR covering the pod CIDRs of every cluster%s'
                % (', e.g. %s' % hint if hint else '')))
            continue
        nets, bad = networks(raw)
        if bad:
            problems.append(problem(m.host, 'native_routing_cidr', '%r is not a CIDR' % bad[0],
                                    'write cilium_ipv4_native_routing_cidr as network/prefix'))
            continue
        for other in members:
            missing = [n for n, _s in cidrs[other.host]
                       if n.version == 4 and not any(n.version == x.version and n.subnet_of(x) for x in nets)]
            if missing:
                problems.append(problem(
                    m.host, 'native_routing_cidr', 'ipv4NativeRoutingCIDR %s does not cover pod CIDRs %s of %s: '
                    'that traffic would be masqueraded or dropped' % (raw, _join(missing[:3]), other.host),
                    'set cilium_ipv4_native_routing_cidr to a CIDR covering every cluster\'s pod CIDRs%s'
                    % (', e.g. %s' % hint if hint else '')))


def check_ca(members, ca_source, problems):
    with_ca = [m for m in members if (m.info.get('ca') or {}).get('sha256')]
    if not with_ca:
        return
    source = None
    for m in members:
        if m.host == ca_source:
            source = m
    ref = (source.info.get('ca') or {}).get('sha256') if source is not None else None
    if source is not None and not ref and not source.failed:
        holders = sorted(set((m.host, m.info['ca']['sha256']) for m in with_ca))
        problems.append(problem(
            source.host, 'ca', 'the CA source %s has no Secret cilium-ca but %s already have one: a new CA would be '
            'generated there that they do not trust' % (source.host, _join(h for h, _f in holders)),
            'set cilium_ca_source: %s (a cluster that holds the mesh CA)' % holders[0][0]))
        return
    if not ref:
        ref_member = with_ca[0]
        ref = ref_member.info['ca']['sha256']
        ca_source = ref_member.host
    for m in with_ca:
        fp = m.info['ca']['sha256']
        if fp != ref:
            problems.append(problem(
                m.host, 'ca', 'Secret cilium-ca differs from the mesh CA of %s (SHA-256 %s... vs %s...): agents '
                'would fail with "tls: bad certificate"' % (ca_source, fp[:23], ref[:23]),
                'replace cilium-ca in %s with the one of %s (Cilium must then be reinstalled or its certificates '
                'reissued), or choose that cluster\'s CA with cilium_ca_source' % (m.host, ca_source)))


def local_chart_path(chart_ref):
    """The file system path ``chart_ref`` names when helm reads it as a local chart (an archive or a
    directory: absolute, relative with ./ or ../, under ~, or ending .tgz), else None (``repo/chart``,
    ``oci://``, a URL: helm resolves those itself)."""
    ref = str(chart_ref or '')
    if not ref or '://' in ref:
        return None
    if ref.startswith(('/', './', '../', '~')) or ref.endswith('.tgz'):
        return os.path.expanduser(ref)
    return None


def check_chart_refs(members, problems):
    """A local target chart (``chart_ref``) that is not there: helm would fail in the middle of the run
    (in a rollout, after earlier batches were upgraded). One row per member that names it."""
    for m in members:
        path = local_chart_path(m.d.get('chart_ref'))
        if path is None or os.path.exists(path):
            continue
        version = m.d.get('chart_version')
        problems.append(problem(
            m.host, 'chart_ref', 'the target chart %s%s does not exist on the controller'
            % (m.d.get('chart_ref'), ' (cilium_chart_version %s)' % version if version else ''),
            'download that chart there (helm pull cilium/cilium --version %s) or set cilium_chart_version to a '
            'chart you have' % (version or '<version>')))


def check_versions(members, problems):
    targets = []
    for m in members:
        raw = m.d.get('chart_version')
        if raw is None or raw == '':
            continue
        target = version_tuple(raw)
        if target is None:
            problems.append(problem(m.host, 'chart_version', 'chart version %r is not a version number' % raw,
                                    'pin cilium_chart_version to a release such as 1.19.2'))
            continue
        targets.append((m, target))
        support = chart_support(raw)
        if support == 'below':
            problems.append(problem(
                m.host, 'chart_version', 'chart %s is older than the supported Cilium charts (%s)'
                % (raw, chart_range_text()),
                'set cilium_chart_version for %s to a %d.%d.x or newer chart' % ((m.host,) + SUPPORTED_CHART_RANGE[0])))
        elif support == 'above':
            problems.append(problem(
                m.host, 'chart_version', 'chart %s is newer than the charts this collection is tested with (%s)'
                % (raw, chart_range_text()),
                'it may work; for a tested combination pin cilium_chart_version for %s to a %d.%d.x chart'
                % ((m.host,) + SUPPORTED_CHART_RANGE[1]), WARNING))
        installed = version_tuple((m.release or {}).get('chart_version'))
        if installed is None:
            continue
        ins_s = '%d.%d.%d' % installed
        if installed[0] != target[0] or target[1] - installed[1] > 1:
            nxt = '%d.%d' % (installed[0], installed[1] + 1)
            problems.append(problem(
                m.host, 'chart_version', 'upgrading from %s to %s skips a minor version; Cilium upgrades go one '
                'minor at a time' % (ins_s, raw),
                'set cilium_chart_version to the newest %s.x for %s first, run, then go on to %s'
                % (nxt, m.host, raw)))
        elif target[:2] < installed[:2]:
            problems.append(problem(
                m.host, 'chart_version', 'the inventory downgrades %s from %s to %s' % (m.host, ins_s, raw),
                'set cilium_chart_version: %s (or newer); a downgrade needs the Cilium downgrade procedure' % ins_s))
    if targets:
        newest = max(t for _m, t in targets)
        for m, t in targets:
            if t[0] != newest[0] or newest[1] - t[1] > 1:
                problems.append(problem(
                    m.host, 'chart_version', 'chart %s is more than one minor version behind %d.%d elsewhere in the '
                    'mesh; ClusterMesh supports a skew of one minor version'
                    % (m.d.get('chart_version'), newest[0], newest[1]),
                    'pin one cilium_chart_version mesh-wide (upgrade one minor at a time)'))
            elif newest[1] - t[1] == 1:
                problems.append(problem(
                    m.host, 'chart_version', 'chart %s is one minor version behind %d.%d elsewhere in the mesh'
                    % (m.d.get('chart_version'), newest[0], newest[1]),
                    'fine during a rolling upgrade; finish it so the mesh runs one version', WARNING))


def check_kpr(members, problems):
    for m in members:
        raw = m.d.get('kube_proxy_replacement')
        value = m.kpr
        target = version_tuple(m.d.get('chart_version'))
        if isinstance(value, str):
            if value.lower() in REMOVED_KPR and (target is None or target >= (1, 16, 0)):
                problems.append(problem(
                    m.host, 'kube_proxy_replacement', 'kubeProxyReplacement %r was removed in Cilium 1.16; chart %s '
                    'accepts only true or false' % (raw, m.d.get('chart_version') or '1.16+'),
                    'set cilium_kube_proxy_replacement: true (Cilium replaces kube-proxy; also set '
                    'cilium_k8s_service_host/port) or false'))
            elif value.lower() not in REMOVED_KPR:
                problems.append(problem(
                    m.host, 'kube_proxy_replacement', 'kubeProxyReplacement %r is not true or false' % (raw,),
                    'set cilium_kube_proxy_replacement to true or false'))
        elif value is True and not m.d.get('k8s_service_host'):
            problems.append(problem(
                m.host, 'kube_proxy_replacement', 'kubeProxyReplacement true without k8sServiceHost: without '
                'kube-proxy the agents cannot reach the API server',
                'set cilium_k8s_service_host (the API server address, or auto) and cilium_k8s_service_port'))


def check_node_ports(members, problems):
    by_port = {}
    for m in members:
        stype = m.d.get('service_type')
        if stype is not None and stype not in SERVICE_TYPES:
            problems.append(problem(
                m.host, 'service_type', 'clustermesh-apiserver Service type %r is not reachable from other clusters'
                % stype, 'set cilium_clustermesh_service_type to NodePort or LoadBalancer'))
            continue
        port, src = m.node_port()
        if port is None:
            continue
        if not NODE_PORT_RANGE[0] <= port <= NODE_PORT_RANGE[1]:
            problems.append(problem(
                m.host, 'node_port', 'nodePort %d is outside the default NodePort range %d-%d' % (
                    port, NODE_PORT_RANGE[0], NODE_PORT_RANGE[1]),
                'pick a cilium_clustermesh_node_port in %d-%d (or check the API server\'s '
                '--service-node-port-range)' % NODE_PORT_RANGE, WARNING))
        by_port.setdefault(port, []).append((m, src))
    used = set(by_port)
    nxt = [CHART_DEFAULT_NODE_PORT]

    def suggest():
        p = nxt[0]
        while p in used:
            p += 1
        used.add(p)
        nxt[0] = p
        return p
    for port, group in sorted(by_port.items()):
        if len(group) < 2 or not any(m.kpr is True for m, _s in group):
            continue
        first = group[0][0]
        for m, src in group[1:]:
            problems.append(problem(
                m.host, 'node_port', 'the clustermesh-apiserver NodePort %d (%s) is also used by %s, and '
                'kube-proxy replacement is on: agents may silently connect to their LOCAL apiserver '
                '(cilium issues 24692, 30297)' % (port, src, first.host),
                'give every cluster a distinct cilium_clustermesh_node_port, e.g. %d for %s' % (suggest(), m.host)))


CHECKS_DOC = (
    'connection', 'cluster_name', 'cluster_id', 'max_connected_clusters', 'identity change', 'Helm release',
    'pod CIDRs', 'node IPs', 'service CIDRs', 'routing mode', 'native routing CIDR', 'CA', 'chart version', 'target chart',
    'kubeProxyReplacement', 'clustermesh-apiserver NodePort')


def check_values(members, problems, schemas, render=None):
    """``cilium_values`` of each cluster against the install checks and the target chart's schema
    (``schemas``: {host: schema or None}); then, for the clusters without such a problem whose target
    chart is local (it has a schema here) and whose install options are known, the chart rendered
    with those values (``render(values, chart_ref)``: None or helm's error)."""
    to_render = []
    for m in members:
        if 'values' not in m.d or m.d.get('values') is None:
            continue
        schema = (schemas or {}).get(m.host)
        if schema and deployed_with_these_values(m):
            schema = None  # Helm checked these values against this chart's schema when it deployed them
        found = value_problems(m.d['values'], managed_values(m.d), schema)
        if isinstance(m.d.get('install'), dict) and not any(
                p['cluster'] == m.host and p['severity'] == ERROR for p in problems):
            found += option_problems(m.d['install'])  # an option the other checks have not already refused
        for path, text, fix in found:
            problems.append(problem(m.host, path, text, fix))
        if not found and render and schema and isinstance(m.d.get('install'), dict) and m.d.get('chart_ref'):
            to_render.append((m.host, m.d['install'], m.d['chart_ref'], m.release if m.installed else None,
                              m.d.get('chart_version')))
    for host, path, text, fix in render_problems(to_render, render):
        problems.append(problem(host, path, text, fix))


def deployed_with_these_values(m):
    """Whether member ``m``'s release is deployed from its target chart version with exactly the values
    this run would install (``rendered_already``): then neither the chart's schema nor its templates
    have anything new to say about them."""
    if not m.installed or not isinstance(m.d.get('install'), dict):
        return False
    try:
        values = install_values(m.d['install'])
    except (TypeError, ValueError):
        return False
    return rendered_already(m.release, m.d.get('chart_version'), values)


def check_existing_values(members, problems):
    """An installed release's datapath values that the run would drop or change unchosen (safe
    adoption): ``install`` of each member holds cilium_install's options as the cilium role passes them."""
    for m in members:
        if not m.installed or not m.release or not isinstance(m.d.get('install'), dict):
            continue
        for path, text, fix in existing_value_problems(m.d['install'], m.release.get('datapath_values') or {}):
            problems.append(problem(m.host, path, text, fix))


def check(clusters, ca_source=None, unreachable=ERROR, schemas=None, render=None):
    """Every problem of the mesh described by ``clusters`` (see the module docstring).

    ``unreachable``: severity of a cluster that cannot be read (ERROR or WARNING).

    Returns ``problems`` sorted by cluster (in the given order), errors first.
    """
    members = [Member(c) for c in clusters or []]
    problems = []
    check_connection(members, problems, unreachable)
    check_names(members, problems)
    check_max_connected(members, problems)
    check_ids(members, problems)
    check_identity_change(members, problems)
    check_release(members, problems)
    cidrs = check_pod_cidrs(members, problems)
    check_node_ips(members, cidrs, problems)
    check_service_cidrs(members, cidrs, problems)
    check_routing(members, cidrs, problems)
    check_ca(members, ca_source, problems)
    check_versions(members, problems)
    check_chart_refs(members, problems)
    check_kpr(members, problems)
    check_node_ports(members, problems)
    check_values(members, problems, schemas, render)
    check_existing_values(members, problems)
    order = dict((m.host, i) for i, m in enumerate(members))
    problems.sort(key=lambda p: (order.get(p['cluster'], len(order)), p['severity'] != ERROR))
    return problems


def format_table(problems, width=None):
    """One table, grouped by cluster: CLUSTER | SEVERITY | FIELD | PROBLEM | FIX."""
    if not problems:
        return 'no problems found'
    head = ('CLUSTER', 'SEVERITY', 'FIELD', 'PROBLEM', 'FIX')
    rows = [(p['cluster'], p['severity'].upper(), p['field'], p['problem'], p['fix']) for p in problems]
    w = [max(len(r[i]) for r in rows + [head]) for i in range(3)]
    lines = []
    for r in [head] + rows:
        lines.append('%s | %s | %s | %s | fix: %s' % (r[0].ljust(w[0]), r[1].ljust(w[1]), r[2].ljust(w[2]), r[3],
                                                      r[4]) if r is not head else
                     '%s | %s | %s | %s | %s' % (r[0].ljust(w[0]), r[1].ljust(w[1]), r[2].ljust(w[2]), r[3], r[4]))
    return '\n'.join(lines)


def summary(problems, clusters_count):
    errors = sum(1 for p in problems if p['severity'] == ERROR)
    warnings = len(problems) - errors
    affected = len(set(p['cluster'] for p in problems if p['severity'] == ERROR))
    if errors:
        return ('preflight found %d error(s) and %d warning(s) in %d of %d clusters; nothing was changed. '
                'Fix them all, then re-run:' % (errors, warnings, affected, clusters_count))
    if warnings:
        return 'preflight passed for %d clusters with %d warning(s):' % (clusters_count, warnings)
    return 'preflight passed for %d clusters' % clusters_count


# The options of clustermesh_preflight (documented by the module).
CLUSTER_SPEC = dict(
    host=dict(type='str', required=True),
    cluster_name=dict(type='str'),
    cluster_id=dict(type='raw'),
    max_connected_clusters=dict(type='raw'),
    routing_mode=dict(type='str'),
    ipam_mode=dict(type='str'),
    pod_cidrs=dict(type='list', elements='str'),
    service_cidrs=dict(type='list', elements='str'),
    native_routing_cidr=dict(type='str'),
    chart_version=dict(type='str'),
    kube_proxy_replacement=dict(type='raw'),
    k8s_service_host=dict(type='str'),
    service_type=dict(type='str'),
    node_port=dict(type='raw'),
    chaining_mode=dict(type='str'),
    eni=dict(type='bool'),
    allow_identity_change=dict(type='bool', default=False),
    context=dict(type='str'),
    kubeconfig=dict(type='str'),
    release_name=dict(type='str', default='cilium'),
    values=dict(type='raw'),
    chart_ref=dict(type='str'),
    install=dict(type='dict'),
    info=dict(type='dict'),
)

PREFLIGHT_ARGUMENT_SPEC = dict(
    clusters=dict(type='list', elements='dict', required=True, options=CLUSTER_SPEC),
    ca_source=dict(type='str'),
    unreachable=dict(type='str', choices=['error', 'warning'], default='error'),
    **HELM_BINARY_ARGUMENT_SPEC
)


def run_preflight(params):
    """The module's run for its validated ``params``: ``(result, warnings)``. ``result`` has
    ``failed`` and a ``msg`` with the table when an error was found (then no warning is given)."""
    # imported here: only a run that checks values against a local chart needs them
    from ansible_collections.meshops.cilium.plugins.module_utils.helm import HelmError, render_chart, require_helm
    from ansible_collections.meshops.cilium.plugins.module_utils.rendered import load_chart_schema

    clusters = params['clusters']
    schemas, loaded = {}, {}
    for c in clusters:
        ref = c.get('chart_ref')
        if ref and ref not in loaded:
            loaded[ref] = load_chart_schema(ref)
        schemas[c['host']] = loaded.get(ref) if ref else None
    render, not_rendered = None, None
    if any(c.get('install') is not None and schemas.get(c['host']) for c in clusters):
        try:
            binary, dummy = require_helm(params.get('helm_binary'))
        except HelmError as e:
            not_rendered = 'the target chart was not rendered with the values (helm template): %s' % e.detail
        else:
            def render(values, chart_ref):
                return render_chart(binary, 'cilium', 'kube-system', values, chart_ref)
    problems = check(clusters, ca_source=params.get('ca_source'), unreachable=params.get('unreachable') or ERROR,
                     schemas=schemas, render=render)
    errors = sum(1 for p in problems if p['severity'] == ERROR)
    table = format_table(problems) if problems else ''
    msg = summary(problems, len(clusters)) + ('\n' + table if table else '')
    result = dict(changed=False, problems=problems, errors=errors, warning_count=len(problems) - errors,
                  table=table, msg=msg)
    if errors:
        result['failed'] = True
        return result, []
    warnings = ['%s: %s: %s (fix: %s)' % (p['cluster'], p['field'], p['problem'], p['fix']) for p in problems]
    if not_rendered:
        warnings.append(not_rendered)
    return result, warnings
