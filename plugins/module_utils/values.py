# -*- coding: utf-8 -*-
# Copyright: meshops.cilium contributors
# SPDX-License-Identifier: Apache-2.0
"""Cilium chart values: pure functions, no I/O.

* paths: ``get_path`` / ``set_path`` / ``delete_path`` take a dotted string
  (``'clustermesh.config.clusters'``) or a tuple of keys (for keys that hold
  dots themselves, such as annotation names);
* ``validate_install_params`` + ``desired_install_values``: module options ->
  the chart values this collection manages (``MANAGED`` lists them);
* ``merge_user_values``: the user's free-form values under ours, a
  contradiction is an error naming the key and both values;
* ``merge_over_current``: keeps keys that other modules own (the peer list
  written by clustermesh_connect) so an install never drops peers;
* ``diff_values``: the changed keys between two value trees;
* ``clusters_value``: ``clustermesh.config.clusters`` in the form the chart
  version wants (a list before 1.20, a map from 1.20).
"""

import copy
import ipaddress
import re

from ansible_collections.meshops.cilium.plugins.module_utils.common import (
    CLUSTER_NAME_MAX,
    CLUSTER_NAME_RE,
    MAX_CONNECTED,
    SUPPORTED_CHART_RANGE,
    chart_range_text,
    chart_support,
    json_digest,
    version_tuple,
)
from ansible_collections.meshops.cilium.plugins.module_utils.errors import MeshopsValueError

# Keys that the clustermesh_enable module (or cilium_install's clustermesh_apiserver) manages.
APISERVER_KEYS = (
    'clustermesh.useAPIServer',
    'clustermesh.apiserver.service.type',
    'clustermesh.apiserver.service.nodePort',
    'clustermesh.apiserver.service.annotations',
    'clustermesh.apiserver.kvstoremesh.enabled',
    'clustermesh.apiserver.tls.auto.enabled',
    'clustermesh.apiserver.tls.auto.method',
    'clustermesh.config.enabled',
)

# Every dotted key ``desired_install_values`` can set.
MANAGED = (
    'cluster.name',
    'cluster.id',
    'ipam.mode',
    'ipam.operator.clusterPoolIPv4PodCIDRList',
    'kubeProxyReplacement',
    'k8sServiceHost',
    'k8sServicePort',
    'routingMode',
    'tunnelProtocol',
    'ipv4NativeRoutingCIDR',
    'clustermesh.maxConnectedClusters',
    'clustermesh.disableKubernetesHostAliases',
) + APISERVER_KEYS + (
    'encryption.enabled',
    'encryption.type',
    'encryption.ipsec.keyRotationDuration',
)

# Keys written by other modules of the collection (clustermesh_connect); an install keeps their
# current value unless it sets them itself (clustermesh.config.enabled, see apiserver_values).
OTHER_OWNED = (
    'clustermesh.config.enabled',
    'clustermesh.config.clusters',
    'clustermesh.config.domain',
)


class OptionError(MeshopsValueError):
    """Options or values a release cannot take (one line, phrased for the user). A ValueError too:
    callers that check values catch ValueError. ``option``: the cilium_install option to correct,
    where the message starts with another one (``routing_mode=native needs ...``)."""

    def __init__(self, message, option=None):
        super().__init__(message)
        self.option = option


# Keys that make a cluster's mesh identity (changing them breaks the mesh).
IDENTITY_KEYS = ('cluster.name', 'cluster.id', 'clustermesh.maxConnectedClusters')

# Values that shape a cluster's datapath or its reach, with the reason (the one list; issue 11's
# "safe adoption"). An upgrade of an installed release never drops or changes one of them, under
# any key below these prefixes, unless the user chose the new value: a value in ``values`` or an
# option that is not a caller's default (``default_options``); or ``existing_values`` says keep or
# reset. Matched on whole keys: ``bpf`` covers ``bpf.masquerade``, not ``bpfClockProbe``.
DATAPATH_VALUES = (
    ('ipam', 'how pods get their addresses: a change strands the running pods and can hand out addresses in use'),
    ('routingMode', 'tunnel or native routing: a change cuts pod traffic between nodes until every agent restarts'),
    ('tunnelProtocol', 'the encapsulation nodes and peers expect: a change cuts tunnelled traffic'),
    ('tunnelPort', 'the port tunnelled traffic uses: a change cuts it'),
    ('ipv4NativeRoutingCIDR', 'what is routed without masquerading in native routing'),
    ('autoDirectNodeRoutes', 'the routes between nodes in native routing'),
    ('kubeProxyReplacement', 'whether Cilium serves Services: without kube-proxy, dropping it leaves every '
                             'Service unreachable'),
    ('k8sServiceHost', 'how the agents reach the API server without kube-proxy: a wrong or missing value stops '
                       'every agent'),
    ('k8sServicePort', 'how the agents reach the API server without kube-proxy'),
    ('encryption', 'transparent encryption: dropping it sends traffic in clear and cuts encrypted peers'),
    ('cluster', 'the cluster\'s mesh identity (name and ID)'),
    ('clustermesh.maxConnectedClusters', 'the identity space shared by the mesh'),
    ('devices', 'the interfaces the datapath attaches to'),
    ('MTU', 'the packet size of the pod network'),
    ('bpf', 'BPF datapath settings (masquerading, host routing, map sizes)'),
    ('enableIPv4Masquerade', 'source NAT of pod traffic leaving the cluster'),
    ('enableIPv6Masquerade', 'source NAT of pod traffic leaving the cluster'),
    ('ipMasqAgent', 'source NAT of pod traffic leaving the cluster'),
    ('ipv4', 'IPv4 in the pod network'),
    ('ipv6', 'IPv6 in the pod network'),
    ('nodePort', 'Services served by the datapath'),
    ('loadBalancer', 'how Services are load-balanced and forwarded'),
    ('hostFirewall', 'the host firewall: a change opens or closes node ports'),
    ('cni', 'the CNI configuration (chaining, exclusive mode): a change breaks pod networking'),
    ('eni', 'AWS ENI networking'),
    ('azure', 'Azure networking'),
    ('egressGateway', 'the egress gateway'),
    ('socketLB', 'socket-level load-balancing'),
)

EXISTING_VALUES = ('refuse', 'keep', 'reset')

REMOVED_KPR = ('strict', 'partial', 'disabled', 'probe')
SERVICE_TYPES = ('NodePort', 'LoadBalancer')
TLS_METHODS = ('helm', 'cronJob')
ROUTING_MODES = ('tunnel', 'native')
TUNNEL_PROTOCOLS = ('vxlan', 'geneve')
ENCRYPTION_TYPES = ('disabled', 'ipsec', 'wireguard')
# A Go duration as the agents parse keyRotationDuration: 5m, 90s, 1h30m, 1.5h.
GO_DURATION_RE = re.compile(r'((\d+(\.\d*)?|\.\d+)(ns|us|ms|s|m|h))+')


# ---------------------------------------------------------------------------
# Paths
# ---------------------------------------------------------------------------

def split_path(path):
    """A dotted string or a sequence of keys -> tuple of keys."""
    if isinstance(path, (tuple, list)):
        return tuple(path)
    return tuple(str(path).split('.'))


def format_path(path):
    """Keys -> display string; a key holding a dot is shown as ``["a.b"]``."""
    out = ''
    for part in split_path(path):
        if '.' in part:
            out += '["%s"]' % part
        else:
            out += ('.' if out else '') + part
    return out


_MISSING = object()


def get_path(data, path, default=None):
    cur = data
    for part in split_path(path):
        if not isinstance(cur, dict) or part not in cur:
            return default
        cur = cur[part]
    return cur


def has_path(data, path):
    return get_path(data, path, _MISSING) is not _MISSING


def set_path(data, path, value):
    """Set ``value`` at ``path`` in ``data`` (in place), creating dicts on the way.

    A non-dict in the way raises ValueError.
    """
    parts = split_path(path)
    cur = data
    for i, part in enumerate(parts[:-1]):
        nxt = cur.get(part)
        if nxt is None:
            nxt = cur[part] = {}
        elif not isinstance(nxt, dict):
            raise OptionError('%s is %r, not a mapping' % (format_path(parts[:i + 1]), nxt))
        cur = nxt
    cur[parts[-1]] = value
    return data


def delete_path(data, path, prune=True):
    """Remove ``path`` from ``data`` (in place); empty parents are removed when ``prune``.

    Returns True when something was removed.
    """
    parts = split_path(path)
    chain = [data]
    cur = data
    for part in parts[:-1]:
        if not isinstance(cur, dict) or not isinstance(cur.get(part), dict):
            return False
        cur = cur[part]
        chain.append(cur)
    if not isinstance(cur, dict) or parts[-1] not in cur:
        return False
    del cur[parts[-1]]
    if prune:
        for depth in range(len(parts) - 1, 0, -1):
            if chain[depth] == {}:
                del chain[depth - 1][parts[depth - 1]]
            else:
                break
    return True


def leaves(data, prefix=()):
    """``{key tuple: value}`` for every leaf; lists and empty dicts are leaves."""
    out = {}
    if isinstance(data, dict) and data:
        for k, v in data.items():
            out.update(leaves(v, prefix + (str(k),)))
    elif prefix:
        out[prefix] = data
    return out


def same(a, b):
    """Deep equality that tells booleans from numbers (``True != 1``)."""
    if isinstance(a, bool) or isinstance(b, bool):
        return isinstance(a, bool) and isinstance(b, bool) and a == b
    if isinstance(a, dict) and isinstance(b, dict):
        return set(a) == set(b) and all(same(a[k], b[k]) for k in a)
    if isinstance(a, (list, tuple)) and isinstance(b, (list, tuple)):
        return len(a) == len(b) and all(same(x, y) for x, y in zip(a, b))
    if isinstance(a, (dict, list, tuple)) or isinstance(b, (dict, list, tuple)):
        return False
    return type(a) is type(b) and a == b or (
        isinstance(a, (int, float)) and isinstance(b, (int, float)) and a == b)


def diff_values(before, after):
    """Display paths (sorted) of the leaves that differ between two value trees."""
    lb, la = leaves(before or {}), leaves(after or {})
    changed = [p for p in set(lb) | set(la)
               if p not in lb or p not in la or not same(lb[p], la[p])]
    return sorted(format_path(p) for p in changed)


# ---------------------------------------------------------------------------
# Versions
# ---------------------------------------------------------------------------

# ---------------------------------------------------------------------------
# Options -> values
# ---------------------------------------------------------------------------

def normalize_kpr(value, refuse=True):
    """``kube_proxy_replacement`` / ``kubeProxyReplacement`` as a bool (or None).

    ``refuse``: anything else raises ValueError (removed chart modes with the way out); without
    it (reading what is deployed or declared, preflight) ``''`` is False and anything else is
    returned as the stripped string."""
    if value is None or isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in ('true', 'yes', 'on', '1'):
        return True
    if text in ('false', 'no', 'off', '0'):
        return False
    if not refuse:
        return False if text == '' else str(value).strip()
    if text in REMOVED_KPR:
        raise OptionError(
            'kube_proxy_replacement=%s: the modes strict, partial, probe and disabled were removed in Cilium '
            '1.16 and make chart 1.16+ fail; use true (Cilium replaces kube-proxy; set k8s_service_host and '
            'k8s_service_port) or false' % value)
    raise OptionError('kube_proxy_replacement must be true or false, got %r' % (value,))


def _cidr(text, what):
    try:
        return str(ipaddress.ip_network(str(text), strict=True))
    except ValueError as e:
        raise OptionError('%s: %r is not a network CIDR (%s)' % (what, text, e))


def validate_install_params(params):
    """Check the install options; returns a list of warnings, raises ValueError on an error.

    Nothing here talks to a cluster, so a bad option fails before any write.
    """
    p = params
    warnings = []
    mcc = p.get('max_connected_clusters')
    if mcc is not None and mcc not in MAX_CONNECTED:
        raise OptionError('max_connected_clusters must be 255 or 511 (the only values Cilium accepts), got %s'
                          % mcc)
    name = p.get('cluster_name')
    cid = p.get('cluster_id')
    if name is not None:
        if not 1 <= len(name) <= CLUSTER_NAME_MAX or not CLUSTER_NAME_RE.fullmatch(name):
            raise OptionError('cluster_name %r is not valid: 1 to 32 characters, lower-case letters, digits and '
                              '"-", starting and ending with a letter or digit' % name)
        if name == 'default' and cid not in (None, 0):
            raise OptionError('cluster_name "default" cannot be used with a cluster_id other than 0 (it cannot be '
                              'part of a mesh); choose a unique name')
    if cid is not None:
        limit = mcc or 255
        if not 0 <= cid <= limit:
            raise OptionError('cluster_id %s is outside 0..%d (max_connected_clusters=%d)%s' % (
                cid, limit, limit, '; set max_connected_clusters=511 for IDs up to 511' if limit == 255 else ''))
        if cid == 0:
            warnings.append('cluster_id 0 means "not part of a mesh"; give every mesh member a unique ID 1..%d'
                            % limit)
    kpr = normalize_kpr(p.get('kube_proxy_replacement'))
    host = p.get('k8s_service_host')
    port = p.get('k8s_service_port')
    if kpr and not host:
        raise OptionError('kube_proxy_replacement=true needs k8s_service_host (and k8s_service_port): without '
                          'kube-proxy the agents cannot reach the API server through the kubernetes Service. '
                          'Use the API server address, or "auto"', option='k8s_service_host')
    if host and host != 'auto' and port is None:
        raise OptionError('k8s_service_host is set without k8s_service_port', option='k8s_service_port')
    if port is not None and not 0 < int(port) < 65536:
        raise OptionError('k8s_service_port must be 1..65535, got %s' % port)
    routing = p.get('routing_mode')
    if routing is not None and routing not in ROUTING_MODES:
        raise OptionError('routing_mode must be one of %s, got %r' % (', '.join(ROUTING_MODES), routing))
    if p.get('tunnel_protocol') is not None and p['tunnel_protocol'] not in TUNNEL_PROTOCOLS:
        raise OptionError('tunnel_protocol must be one of %s' % ', '.join(TUNNEL_PROTOCOLS))
    if routing == 'native' and not p.get('ipv4_native_routing_cidr'):
        raise OptionError('routing_mode=native needs ipv4_native_routing_cidr, a CIDR that covers the pod CIDRs '
                          'of every cluster of the mesh', option='ipv4_native_routing_cidr')
    if routing == 'native' and p.get('tunnel_protocol'):
        raise OptionError('tunnel_protocol is only used with routing_mode=tunnel')
    if p.get('ipv4_native_routing_cidr'):
        _cidr(p['ipv4_native_routing_cidr'], 'ipv4_native_routing_cidr')
    for c in p.get('cluster_pool_ipv4_pod_cidrs') or []:
        _cidr(c, 'cluster_pool_ipv4_pod_cidrs')
    if p.get('cluster_pool_ipv4_pod_cidrs') and p.get('ipam_mode') not in (None, 'cluster-pool'):
        raise OptionError('cluster_pool_ipv4_pod_cidrs is only used with ipam_mode=cluster-pool, not %s'
                          % p.get('ipam_mode'))
    enc = p.get('encryption_type')
    if enc is not None and enc not in ENCRYPTION_TYPES:
        raise OptionError('encryption_type must be one of %s' % ', '.join(ENCRYPTION_TYPES))
    krd = p.get('ipsec_key_rotation_duration')
    if krd is not None:
        if not GO_DURATION_RE.fullmatch(str(krd)):
            raise OptionError('ipsec_key_rotation_duration must be a duration such as 5m, 90s or 1h30m, got %r'
                              % (krd,))
        if enc in ('disabled', 'wireguard'):
            raise OptionError('ipsec_key_rotation_duration is only used with encryption_type=ipsec, not %s' % enc)
    api = p.get('clustermesh_apiserver') or {}
    if api:
        validate_apiserver_params(api)
    if api.get('enabled') and p.get('ipam_mode') in (None, 'cluster-pool') and not p.get('cluster_pool_ipv4_pod_cidrs'):
        warnings.append('ipam mode cluster-pool without cluster_pool_ipv4_pod_cidrs uses the chart\'s pool '
                        '10.0.0.0/8 in every cluster: pod CIDRs collide across the mesh. Set distinct '
                        'cluster_pool_ipv4_pod_cidrs per cluster or ipam_mode=kubernetes')
    return warnings


def validate_apiserver_params(api):
    stype = api.get('service_type')
    if stype is not None and stype not in SERVICE_TYPES:
        raise OptionError('clustermesh_apiserver.service_type must be NodePort or LoadBalancer, got %r (ClusterIP '
                          'is not reachable from other clusters)' % stype)
    np = api.get('node_port')
    if np is not None:
        if not 1 <= int(np) <= 65535:
            raise OptionError('clustermesh_apiserver.node_port must be a port number, got %s' % np)
    method = api.get('tls_auto_method')
    if method is not None and method not in TLS_METHODS:
        raise OptionError('clustermesh_apiserver.tls_auto_method must be helm or cronJob, got %r' % method)
    ann = api.get('annotations')
    if ann is not None:
        if not isinstance(ann, dict):
            raise OptionError('clustermesh_apiserver.annotations must be a mapping')
        for k, v in ann.items():
            if not isinstance(v, str):
                raise OptionError('clustermesh_apiserver.annotations["%s"] must be a string, got %r '
                                  '(quote it)' % (k, v))


def apiserver_values(api):
    """Values for the ``clustermesh_apiserver`` options (dict or None -> {})."""
    out = {}
    if not api or api.get('enabled') is None:
        return out
    set_path(out, 'clustermesh.useAPIServer', bool(api['enabled']))
    if not api['enabled']:
        return out
    # As `cilium clustermesh enable` does. Needed from chart 1.19 on (tls.authMode "migration" or
    # "cluster"): the Deployment mounts ConfigMap clustermesh-remote-users, which the chart renders
    # only with clustermesh.config.enabled, so without it the pod never starts (seen with the real
    # clustermesh-apiserver on the fleet).
    set_path(out, 'clustermesh.config.enabled', True)
    if api.get('service_type') is not None:
        set_path(out, 'clustermesh.apiserver.service.type', api['service_type'])
    if api.get('node_port') is not None:
        set_path(out, 'clustermesh.apiserver.service.nodePort', int(api['node_port']))
    if api.get('annotations'):
        set_path(out, 'clustermesh.apiserver.service.annotations', dict(api['annotations']))
    if api.get('kvstoremesh') is not None:
        set_path(out, 'clustermesh.apiserver.kvstoremesh.enabled', bool(api['kvstoremesh']))
    if api.get('tls_auto_method') is not None:
        set_path(out, 'clustermesh.apiserver.tls.auto.enabled', True)
        set_path(out, 'clustermesh.apiserver.tls.auto.method', api['tls_auto_method'])
    return out


def desired_install_values(params):
    """The chart values for the module options (only options that are set)."""
    p = params
    out = {}

    def put(path, value):
        if value is not None:
            set_path(out, path, value)

    put('cluster.name', p.get('cluster_name'))
    put('cluster.id', None if p.get('cluster_id') is None else int(p['cluster_id']))
    put('ipam.mode', p.get('ipam_mode'))
    if p.get('cluster_pool_ipv4_pod_cidrs'):
        put('ipam.operator.clusterPoolIPv4PodCIDRList', [str(c) for c in p['cluster_pool_ipv4_pod_cidrs']])
    put('kubeProxyReplacement', normalize_kpr(p.get('kube_proxy_replacement')))
    put('k8sServiceHost', p.get('k8s_service_host'))
    put('k8sServicePort', None if p.get('k8s_service_port') is None else int(p['k8s_service_port']))
    put('routingMode', p.get('routing_mode'))
    put('tunnelProtocol', p.get('tunnel_protocol'))
    put('ipv4NativeRoutingCIDR', p.get('ipv4_native_routing_cidr'))
    put('clustermesh.maxConnectedClusters',
        None if p.get('max_connected_clusters') is None else int(p['max_connected_clusters']))
    enc = p.get('encryption_type')
    if enc is not None:
        put('encryption.enabled', enc != 'disabled')
        if enc != 'disabled':
            put('encryption.type', enc)
    if p.get('ipsec_key_rotation_duration') is not None:
        put('encryption.ipsec.keyRotationDuration', str(p['ipsec_key_rotation_duration']))
    for path, value in leaves(apiserver_values(p.get('clustermesh_apiserver'))).items():
        set_path(out, path, value)
    if p.get('peer_host_aliases') is not None:
        put(HOST_ALIASES_KEY, not p['peer_host_aliases'])
    return out


# From chart 1.20 the peers' names resolve inside Cilium's programs (the static dialer reads the
# ``cilium-host-aliases`` of each peer's configuration): with this value true the chart leaves out the
# pod templates' hostAliases, so a peer change restarts no pod. Older charts ignore it.
HOST_ALIASES_KEY = 'clustermesh.disableKubernetesHostAliases'
STATIC_DIALER_CHART = (1, 20, 0)


def peer_host_aliases(values, chart_version):
    """Whether a release of ``chart_version`` with ``values`` maps its peers' names to their IPs with
    hostAliases in a pod template (True), or leaves that to Cilium's programs (False: chart 1.20 and
    newer with ``clustermesh.disableKubernetesHostAliases``). None when the chart version is unknown."""
    v = version_tuple(chart_version)
    if v is None:
        return None
    return not (v >= STATIC_DIALER_CHART and get_path(values or {}, HOST_ALIASES_KEY) is True)


# ---------------------------------------------------------------------------
# Merging
# ---------------------------------------------------------------------------

def merge_user_values(user_values, managed_values):
    """The user's free-form ``values`` with ours on top.

    A user value at a key we set must be equal to ours (or be a mapping that
    agrees key by key); otherwise ValueError naming the key and both values.
    """
    result = copy.deepcopy(user_values or {})
    if not isinstance(result, dict):
        raise OptionError('values must be a mapping')
    for path, ours in sorted(leaves(managed_values).items()):
        for depth in range(1, len(path)):
            above = get_path(result, path[:depth], _MISSING)
            if above is not _MISSING and not isinstance(above, dict):
                raise OptionError('values: %s is %r, but this module sets %s=%r; remove it from values'
                                  % (format_path(path[:depth]), above, format_path(path), ours))
        theirs = get_path(result, path, _MISSING)
        if theirs is not _MISSING and not same(theirs, ours):
            raise OptionError('values: %s=%r contradicts the module option that sets it to %r; set it through the '
                              'module option (or remove it from values)' % (format_path(path), theirs, ours))
        set_path(result, path, copy.deepcopy(ours))
    return result


# The peers clustermesh_connect writes: left out of ``values_digest``.
PEER_PATHS = ('clustermesh.config.clusters',)


def values_digest(values, leave_out=PEER_PATHS):
    """SHA-256 of ``values`` (canonical JSON) without the paths in ``leave_out`` (by default the
    peers): equal digests mean the same values for an install. Stands for a release's values in a
    descriptor, which never holds the values themselves."""
    rest = copy.deepcopy(values or {})
    for path in leave_out:
        delete_path(rest, path)
    return json_digest(rest)


def install_values(params):
    """The complete user values ``cilium_install`` gives Helm for ``params`` on a fresh install (its
    options over ``values``); raises ValueError or TypeError for bad options."""
    return merge_user_values(params.get('values') or {}, desired_install_values(params))


def rendered_already(release, chart_version, values):
    """Whether ``release`` (a descriptor's release) is deployed from ``chart_version`` with exactly
    ``values`` (peers aside): Helm rendered that chart with these values when it deployed it, so
    rendering them again shows nothing new."""
    if not release or release.get('status') != 'deployed' or not release.get('values_sha256'):
        return False
    if not chart_version or str(release.get('chart_version')) != str(chart_version):
        return False
    if any(get_path(values, path) is not None for path in PEER_PATHS):
        return False  # the peers are part of what this run renders: render
    return release['values_sha256'] == values_digest(values)


def merge_over_current(current_values, desired, keep=OTHER_OWNED):
    """``desired`` plus, for every path in ``keep`` that ``desired`` does not set,
    the current release's value (so an install keeps the peers written by
    clustermesh_connect). Everything else is exactly ``desired``.
    """
    result = copy.deepcopy(desired or {})
    for path in keep:
        if has_path(result, path):
            continue
        value = get_path(current_values or {}, path, _MISSING)
        if value is not _MISSING:
            set_path(result, path, copy.deepcopy(value))
    return result


def identity_changes(current_values, desired):
    """``[(display key, before, after)]`` for identity keys an upgrade would change.

    A key absent from the current values counts only if the desired value is set
    (the chart default was in use).
    """
    out = []
    for path in IDENTITY_KEYS:
        before = get_path(current_values or {}, path, _MISSING)
        after = get_path(desired or {}, path, _MISSING)
        if after is _MISSING:
            continue
        if before is _MISSING or not same(before, after):
            out.append((path, None if before is _MISSING else before, after))
    return out


# ---------------------------------------------------------------------------
# clustermesh.config.clusters
# ---------------------------------------------------------------------------

def _peer_entry(peer):
    entry = {'port': int(peer['port'])}
    if peer.get('ips'):
        entry['ips'] = [str(i) for i in peer['ips']]
    elif peer.get('address'):
        entry['address'] = str(peer['address'])
    else:
        raise OptionError('peer %s has neither ips nor address' % peer.get('name'))
    return entry


def clusters_value(peers, chart_version):
    """``clustermesh.config.clusters`` for ``peers`` (dicts with name, port, ips or address).

    Chart < 1.20: a list ``[{name, port, ips|address}]`` sorted by name.
    Chart >= 1.20: a map ``{name: {port, ips|address}}``.
    """
    v = version_tuple(chart_version)
    ordered = sorted(peers or [], key=lambda p: p['name'])
    if v is not None and v >= (1, 20, 0):
        return dict((p['name'], _peer_entry(p)) for p in ordered)
    out = []
    for p in ordered:
        entry = {'name': p['name']}
        entry.update(_peer_entry(p))
        out.append(entry)
    return out


# ---------------------------------------------------------------------------
# Planning an install or upgrade (pure)
# ---------------------------------------------------------------------------

CHART_DEFAULTS = {'cluster.name': 'default', 'cluster.id': 0, 'clustermesh.maxConnectedClusters': 255}

IDENTITY_WHY = ('changing %s of an installed cluster breaks its ClusterMesh connections (peers know it by name '
                'and ID; identities are derived from the ID and maxConnectedClusters) and needs every workload '
                'of the cluster restarted. Set allow_identity_change=true to do it anyway')


def check_user_values(user_values):
    """Refuse user values the chart cannot take (raises ValueError)."""
    kpr = get_path(user_values or {}, 'kubeProxyReplacement', _MISSING)
    if kpr is not _MISSING and not isinstance(kpr, bool):
        try:
            normalize_kpr(kpr)
        except ValueError as e:
            raise OptionError('values: %s' % e)
    if has_path(user_values or {}, 'clustermesh.apiserver.tls.ca'):
        raise OptionError('values: clustermesh.apiserver.tls.ca was removed in chart 1.15 (the chart fails on it); '
                          'share the CA with the cilium_ca module or set tls.ca.cert/tls.ca.key')


def check_chart_supported(version):
    """OptionError when chart ``version`` (the one an install or upgrade goes to) is older than
    ``SUPPORTED_CHART_RANGE``; newer ones are the preflight's warning, not refused here."""
    if chart_support(version) == 'below':
        oldest = '%d.%d' % SUPPORTED_CHART_RANGE[0]
        raise OptionError('chart_version %s is older than the supported Cilium charts (%s); set chart_version '
                          '(cilium_chart_version) to a %s.x or newer chart'
                          % (version, chart_range_text(), oldest), option='chart_version')


def validate_install_options(params):
    """ValueError for options of an install/upgrade that are wrong whatever the cluster holds:
    names, IDs, ranges, CIDRs, durations, the chart version, the clustermesh-apiserver settings and
    reserved keys in ``values``. Pure: modules call it before connecting (``plan_install`` calls it
    again). Returns the warnings of ``validate_install_params``."""
    warnings = validate_install_params(params)
    check_chart_supported(params.get('chart_version'))
    check_user_values(params.get('values') or {})
    return warnings


def plan_install(params, current_values=None, current_chart_version=None, installed=False,
                 target_chart_version=None, keep=OTHER_OWNED):
    """Decide what an install/upgrade must do (pure).

    Returns a dict: ``desired`` (complete user values to give helm),
    ``changed_keys``, ``action`` (``install``, ``upgrade`` or ``none``),
    ``chart_change`` (``(from, to)`` or None), ``identity`` (identity changes),
    ``warnings``. Raises ValueError for bad options, contradictions and, unless
    ``params['allow_identity_change']``, an identity change of a meshable cluster.
    """
    warnings = validate_install_params(params)
    check_chart_supported(target_chart_version)
    user = params.get('values') or {}
    check_user_values(user)
    managed = desired_install_values(params)
    wanted = merge_user_values(user, managed)
    keep = tuple(keep)
    if (params.get('clustermesh_apiserver') or {}).get('enabled') is None:
        # the apiserver is left to clustermesh_enable (or whoever set it)
        keep = keep + APISERVER_KEYS
    desired = merge_over_current(current_values or {}, wanted, keep=keep) if installed else wanted
    review = []
    if installed:
        desired, review, more = settle_existing(params, current_values or {}, desired)
        warnings = list(warnings or []) + more
    identity = []
    if installed:
        cur = current_values or {}
        effective_id = get_path(cur, 'cluster.id', CHART_DEFAULTS['cluster.id'])
        for path in IDENTITY_KEYS:
            after = get_path(desired, path, _MISSING)
            if after is _MISSING:
                continue
            before = get_path(cur, path, CHART_DEFAULTS[path])
            if not same(before, after):
                identity.append((path, before, after))
        if identity and effective_id not in (0, '0', None) and not params.get('allow_identity_change'):
            raise OptionError(IDENTITY_WHY % ', '.join(
                '%s (%r -> %r)' % (k, b, a) for k, b, a in identity))
    chart_change = None
    if installed and target_chart_version and str(target_chart_version) != str(current_chart_version):
        chart_change = (current_chart_version, str(target_chart_version))
    changed_keys = diff_values(current_values or {}, desired) if installed else diff_values({}, desired)
    if not installed:
        action = 'install'
    elif changed_keys or chart_change:
        action = 'upgrade'
    else:
        action = 'none'
    return {'desired': desired, 'changed_keys': changed_keys, 'action': action, 'chart_change': chart_change,
            'identity': identity, 'warnings': warnings,
            'existing_values': [dict((k, v) for k, v in r.items() if k != 'keys') for r in review]}


def datapath_reason(path):
    """Why ``path`` (dotted or keys) shapes the datapath (DATAPATH_VALUES), or None."""
    keys = split_path(path)
    for prefix, reason in DATAPATH_VALUES:
        pk = split_path(prefix)
        if keys[:len(pk)] == pk:
            return reason
    return None


def datapath_values(values):
    """The leaves of ``values`` that shape the datapath (DATAPATH_VALUES), as a nested dict: what
    clustermesh_info returns of a release's user values so that the preflight can review them."""
    out = {}
    for keys, value in leaves(values or {}).items():
        if datapath_reason(keys):
            set_path(out, keys, copy.deepcopy(value))
    return out


def review_existing(current_values, desired, chosen=()):
    """The release's current user values that ``desired`` drops or changes (pure).

    ``chosen``: key tuples of leaves the user chose (see ``chosen_paths``). Returns
    ``[{'path', 'keys', 'change' ('dropped' or 'changed'), 'datapath' (reason or None), 'chosen'}]``,
    sorted by path. Values are not included: they may be secrets.
    """
    chosen = set(tuple(c) for c in chosen)
    cur, new = leaves(current_values or {}), leaves(desired or {})
    out = []
    for keys in sorted(cur):
        if keys in new and same(cur[keys], new[keys]):
            continue
        if keys not in new and any(keys[:n] in new for n in range(1, len(keys))):
            # a parent became a scalar or a list in ``desired``: that value replaced this one
            change = 'changed'
        else:
            change = 'changed' if keys in new else 'dropped'
        out.append({'path': format_path(keys), 'keys': keys, 'change': change, 'datapath': datapath_reason(keys),
                    'chosen': keys in chosen or any(keys[:n] in chosen for n in range(1, len(keys)))})
    return out


def chosen_paths(params):
    """Key tuples of the values the user chose: every leaf of ``values`` and the values of the
    options that are not in ``default_options`` (a caller's defaults, e.g. the cilium role's)."""
    defaults = set(params.get('default_options') or ())
    own = dict((k, v) for k, v in params.items() if k not in defaults)
    chosen = set(leaves(params.get('values') or {}))
    chosen.update(leaves(desired_install_values(own)))
    for path in IDENTITY_KEYS:  # the mesh identity is checked on its own (allow_identity_change)
        chosen.add(split_path(path))
    return chosen


def _describe(rows):
    return ', '.join('%s (%s)' % (r['path'], r['change']) for r in rows)


def settle_existing(params, current_values, desired):
    """Apply ``params['existing_values']`` to ``desired`` for an installed release (pure).

    Returns ``(desired, review, warnings)``. ``refuse`` (the default) raises ValueError when a datapath
    value of the release would be dropped or changed without the user choosing it; ``keep`` keeps
    every value of the release that the user did not choose anew; ``reset`` lets them go. Other
    dropped or changed values are named in a warning."""
    mode = params.get('existing_values') or 'refuse'
    if mode not in EXISTING_VALUES:
        raise OptionError('existing_values must be one of %s, not %r' % (', '.join(EXISTING_VALUES), mode))
    review = review_existing(current_values, desired, chosen_paths(params))
    unchosen = [r for r in review if not r['chosen']]
    warnings = []
    if mode == 'keep' and unchosen:
        desired = copy.deepcopy(desired)
        for r in unchosen:
            for n in range(1, len(r['keys'])):
                above = get_path(desired, r['keys'][:n], _MISSING)
                if above is not _MISSING and not isinstance(above, dict):
                    delete_path(desired, r['keys'][:n], prune=False)
            set_path(desired, r['keys'], copy.deepcopy(get_path(current_values, r['keys'])))
        warnings.append('existing_values=keep: kept the release\'s own value of %s' % _describe(unchosen))
        return desired, review, warnings
    guarded = [r for r in unchosen if r['datapath']]
    if mode == 'refuse' and guarded:
        listed = '; '.join('%s (%s: %s)' % (r['path'], r['change'], r['datapath']) for r in guarded)
        raise OptionError(
            'the release holds values that shape the datapath or the cluster\'s reach, and this run would drop or '
            'change them without anyone choosing that: %s. Set each in values (cilium_values) or its option '
            '(cilium_* variable) to the value it must have, or set existing_values (cilium_existing_values) '
            'to keep to keep the release\'s values, or to reset to drop them' % listed)
    others = [r for r in unchosen if not r['datapath'] or mode == 'reset']
    if others:
        warnings.append('values of the release that this run %s: %s%s' % (
            'drops or changes', _describe(others),
            '' if mode == 'reset' else ' (set existing_values=keep to keep them, or give them in values)'))
    return desired, review, warnings


def plan_enable(current_values, api):
    """``(desired, changed_keys)`` to turn the clustermesh-apiserver on or off in an
    existing release's values (pure). Only the keys of the given options change;
    every other value, including the peers, is kept."""
    validate_apiserver_params(api or {})
    wanted = apiserver_values(api)
    desired = copy.deepcopy(current_values or {})
    for path in APISERVER_KEYS:
        value = get_path(wanted, path, _MISSING)
        if value is not _MISSING:
            set_path(desired, path, copy.deepcopy(value))
    return desired, diff_values(current_values or {}, desired)
