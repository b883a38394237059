# -*- coding: utf-8 -*-
# Copyright: meshops.cilium contributors
# SPDX-License-Identifier: Apache-2.0
"""Read a cluster's ClusterMesh descriptor.

Everything except ``read_descriptor()`` and the module's run (``describe``, ``members_answer``) is
pure: it takes plain API JSON dicts (as ``ApiClient.sanitize_for_serialization`` or ``kubectl get -o
json`` give them) so it can be unit tested without a cluster.

``INFO_ARGUMENT_SPEC`` is the module ``clustermesh_info``'s own argument spec (the connection options
are added by ``ClusterModule``); ``describe`` reads one cluster as the module does; ``members_answer``
is the module's whole run for ``members``, without an ``AnsibleModule``: its action plugin gives it on
the controller.
"""

import base64
import binascii
import gzip
import json
import re

import importlib.util

# cryptography is imported where a certificate is read (ca_fingerprint), not at start: most module
# processes never read one, and the import costs about 50 ms of CPU each time.
HAS_CRYPTOGRAPHY = importlib.util.find_spec('cryptography') is not None


from ansible_collections.meshops.cilium.plugins.module_utils.common import DEFAULT_MAX_CONNECTED, UNREAD, int_or_none, version_tuple
from ansible_collections.meshops.cilium.plugins.module_utils.errors import MeshopsValueError
from ansible_collections.meshops.cilium.plugins.module_utils.mesh import entries_digest, normalize_entries
from ansible_collections.meshops.cilium.plugins.module_utils.redact import mask_secrets
from ansible_collections.meshops.cilium.plugins.module_utils.values import datapath_values, values_digest


HELM_RELEASE_TYPE = 'helm.sh/release.v1'
GZIP_MAGIC = b'\x1f\x8b'
_RELEASE_NAME_RE = re.compile(r'sh\.helm\.release\.v1\.(?P<release>.+)\.v(?P<version>\d+)')  # use fullmatch

CILIUM_CONFIG = 'cilium-config'
CILIUM_CA = 'cilium-ca'
APISERVER_SERVICE = 'clustermesh-apiserver'


class DecodeError(MeshopsValueError):
    pass


# ---------------------------------------------------------------------------
# Helm release
# ---------------------------------------------------------------------------

def decode_helm_release(data):
    """Decode the ``release`` value of a Helm release Secret into a dict.

    ``data`` is the value as found in ``Secret.data.release`` (base64, as the
    API returns it). Inside is Helm's own encoding: base64 of gzip of JSON.
    Uncompressed JSON (old Helm) is accepted too. Bytes or str.
    """
    if isinstance(data, str):
        data = data.encode('ascii')
    try:
        helm_encoded = base64.b64decode(data)
        raw = base64.b64decode(helm_encoded)
    except (binascii.Error, ValueError, TypeError) as e:
        raise DecodeError('release data is not base64: %s' % e)
    if raw[:2] == GZIP_MAGIC:
        try:
            raw = gzip.decompress(raw)
        except (OSError, EOFError) as e:
            raise DecodeError('release data is not valid gzip: %s' % e)
    try:
        return json.loads(raw.decode('utf-8'))
    except (ValueError, UnicodeDecodeError) as e:
        raise DecodeError('release data is not JSON: %s' % e)


def release_secret_version(secret):
    """The revision number of a Helm release Secret (label ``version``, else the name suffix)."""
    meta = secret.get('metadata') or {}
    label = (meta.get('labels') or {}).get('version')
    if label and str(label).isdigit():
        return int(label)
    m = _RELEASE_NAME_RE.fullmatch(meta.get('name') or '')
    return int(m.group('version')) if m else -1


def newest_release_secret(secrets, release_name):
    """The Secret of the newest revision of ``release_name`` among ``secrets`` (or None)."""
    candidates = []
    for s in secrets or []:
        meta = s.get('metadata') or {}
        labels = meta.get('labels') or {}
        m = _RELEASE_NAME_RE.fullmatch(meta.get('name') or '')
        if s.get('type') not in (None, HELM_RELEASE_TYPE):
            continue
        if labels.get('name', m.group('release') if m else None) != release_name:
            continue
        if labels.get('owner', 'helm') != 'helm':
            continue
        candidates.append(s)
    if not candidates:
        return None
    return max(candidates, key=release_secret_version)


def read_newest_release_secret(cluster, namespace, release_name):
    """The Secret of the newest revision of ``release_name`` in ``namespace`` (or None): one LIST of the
    release's Secrets whose ``status`` label is not ``superseded``. Helm marks the deployed revision
    superseded when a newer one is deployed, so the newest revision (deployed, failed, pending-* or
    uninstalled) is never among the ones left out, and the history Helm keeps (up to 10 revisions,
    each a copy of the whole chart) is not transferred on every read."""
    secrets = cluster.list_secrets(namespace, label_selector=release_selector(release_name),
                                   field_selector='type=%s' % HELM_RELEASE_TYPE)
    return newest_release_secret(secrets, release_name)


def release_selector(release_name):
    """The label selector of the revisions of ``release_name`` that can be the newest."""
    return 'owner=helm,name=%s,status!=superseded' % release_name


def summarize_release(release):
    """The parts of a decoded Helm release this collection uses.

    ``values`` are the user-supplied values (Helm's ``config``) and may hold
    secrets: never return them from a module as they are.
    """
    chart_meta = ((release.get('chart') or {}).get('metadata') or {})
    info = release.get('info') or {}
    return {
        'name': release.get('name'),
        'namespace': release.get('namespace'),
        'revision': release.get('version'),
        'status': info.get('status'),
        'chart_name': chart_meta.get('name'),
        'chart_version': chart_meta.get('version'),
        'app_version': chart_meta.get('appVersion'),
        'values': release.get('config') or {},
    }


def dig(data, path, default=None):
    """``dig(values, 'clustermesh.config.clusters')``."""
    cur = data
    for part in path.split('.'):
        if not isinstance(cur, dict) or part not in cur:
            return default
        cur = cur[part]
    return cur


def kvstoremesh_enabled(values, chart_version):
    """Whether KVStoreMesh is on: the user value if set, else the chart default.

    Chart default: on from 1.16, off before. None when neither is known.
    """
    explicit = dig(values or {}, 'clustermesh.apiserver.kvstoremesh.enabled')
    if isinstance(explicit, bool):
        return explicit
    if isinstance(explicit, str) and explicit.lower() in ('true', 'false'):
        return explicit.lower() == 'true'
    v = version_tuple(chart_version)
    if v is None:
        return None
    return v >= (1, 16)


# ---------------------------------------------------------------------------
# cilium-config
# ---------------------------------------------------------------------------

def parse_cilium_config(config_map):
    """Mesh identity from ConfigMap ``cilium-config`` (the dict, or its ``data``)."""
    data = config_map.get('data') if 'data' in (config_map or {}) or 'metadata' in (config_map or {}) \
        else config_map
    data = data or {}
    mcc = int_or_none(data.get('max-connected-clusters'))
    return {
        'cluster_name': data.get('cluster-name'),
        'cluster_id': int_or_none(data.get('cluster-id')),
        'max_connected_clusters': mcc if mcc is not None else DEFAULT_MAX_CONNECTED,
        'routing_mode': data.get('routing-mode'),
        'tunnel_protocol': data.get('tunnel-protocol'),
    }


def parse_datapath(config_map):
    """IPAM and datapath settings of ConfigMap ``cilium-config`` that a mesh preflight compares.

    ``cluster_pool_cidrs`` is ``cluster-pool-ipv4-cidr`` (the chart writes
    ``ipam.operator.clusterPoolIPv4PodCIDRList`` there, space separated).
    """
    config_map = config_map or {}
    data = (config_map.get('data') if 'data' in config_map or 'metadata' in config_map else config_map) or {}
    kpr = data.get('kube-proxy-replacement')
    if isinstance(kpr, str) and kpr.lower() in ('true', 'false'):
        kpr = kpr.lower() == 'true'
    return {
        'ipam': data.get('ipam'),
        'cluster_pool_cidrs': [c for c in re.split(r'[\s,]+', data.get('cluster-pool-ipv4-cidr') or '') if c],
        'kube_proxy_replacement': kpr,
        'native_routing_cidr': data.get('ipv4-native-routing-cidr') or None,
        'chaining_mode': data.get('cni-chaining-mode') or None,
    }


# ---------------------------------------------------------------------------
# CA
# ---------------------------------------------------------------------------

def _colon_hex(data):
    return ':'.join('%02X' % b for b in bytearray(data))


def ca_fingerprint(pem):
    """Identity of a CA certificate (PEM str/bytes; the first certificate is used).

    Returns ``sha256`` (SHA-256 of the DER, colon hex), ``subject_key_id``
    (hex of the SubjectKeyIdentifier extension, or None if the cert has none),
    ``subject`` and ``not_after`` (ISO 8601).
    """
    if not HAS_CRYPTOGRAPHY:
        raise DecodeError('the Python library "cryptography" is required to read the CA')
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    if isinstance(pem, str):
        pem = pem.encode('ascii')
    try:
        cert = x509.load_pem_x509_certificate(pem)
    except ValueError as e:
        raise DecodeError('ca.crt is not a PEM certificate: %s' % e)
    der = cert.public_bytes(serialization.Encoding.DER)
    digest = hashes.Hash(hashes.SHA256())
    digest.update(der)
    try:
        ski = cert.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value.digest
        ski_hex = binascii.hexlify(ski).decode('ascii')
    except x509.ExtensionNotFound:
        ski_hex = None
    try:
        not_after = cert.not_valid_after_utc
    except AttributeError:  # cryptography < 42
        not_after = cert.not_valid_after
    return {
        'sha256': _colon_hex(digest.finalize()),
        'subject_key_id': ski_hex,
        'subject': cert.subject.rfc4514_string(),
        'not_after': not_after.isoformat(),
    }


def ca_from_secret(secret):
    """``ca_fingerprint`` of Secret ``cilium-ca``'s ``ca.crt``; the key is never read."""
    data = (secret or {}).get('data') or {}
    crt = data.get('ca.crt')
    if not crt:
        return None
    try:
        pem = base64.b64decode(crt)
    except (binascii.Error, ValueError) as e:
        raise DecodeError('ca.crt of Secret cilium-ca is not base64: %s' % e)
    return ca_fingerprint(pem)


# ---------------------------------------------------------------------------
# Nodes and endpoint
# ---------------------------------------------------------------------------

def node_ready(node):
    for cond in ((node.get('status') or {}).get('conditions') or []):
        if cond.get('type') == 'Ready':
            return cond.get('status') == 'True'
    return False


def _addresses(node, kind):
    return [a.get('address') for a in ((node.get('status') or {}).get('addresses') or [])
            if a.get('type') == kind and a.get('address')]


def summarize_nodes(nodes):
    """Per node: name, ready, internal_ips, external_ips, pod_cidrs."""
    out = []
    for n in nodes or []:
        spec = n.get('spec') or {}
        cidrs = list(spec.get('podCIDRs') or ([spec['podCIDR']] if spec.get('podCIDR') else []))
        out.append({
            'name': (n.get('metadata') or {}).get('name'),
            'ready': node_ready(n),
            'internal_ips': _addresses(n, 'InternalIP'),
            'external_ips': _addresses(n, 'ExternalIP'),
            'pod_cidrs': cidrs,
        })
    return out


def _unique(seq):
    out = []
    for i in seq:
        if i not in out:
            out.append(i)
    return out


def validate_endpoint_override(endpoint):
    """Validate the ``endpoint`` override: ``{ips: [...]}`` or ``{address: ...}``, plus ``port``."""
    ips = [str(i) for i in (endpoint.get('ips') or [])]
    address = endpoint.get('address') or None
    port = int_or_none(endpoint.get('port'))
    if not ips and not address:
        raise MeshopsValueError('endpoint needs ips or address')
    if ips and address:
        raise MeshopsValueError('endpoint takes ips or address, not both')
    if port is None or not 0 < port < 65536:
        raise MeshopsValueError('endpoint needs a port between 1 and 65535')
    return {'source': 'override', 'service_type': None, 'ips': ips, 'address': address,
            'port': port, 'warnings': []}


def resolve_endpoint(service, nodes=None, override=None):
    """Where peers reach this cluster's clustermesh-apiserver.

    * ``override`` (explicit ``ips`` or ``address`` + ``port``) wins.
    * LoadBalancer: every ``status.loadBalancer.ingress[].ip``; a hostname is kept
      as ``address`` (never resolved here); port ``spec.ports[0].port``.
    * NodePort: ``spec.ports[0].nodePort`` and one address per Ready node
      (ExternalIP if the node has one, else InternalIP). All Ready nodes are
      listed, so losing one node does not break the mesh.
    * ClusterIP: ``spec.clusterIP`` and the port, with a warning.

    Returns ``{source, service_type, ips, address, port, warnings}`` or None
    when there is no Service and no override.
    """
    if override:
        return validate_endpoint_override(override)
    if not service:
        return None
    spec = service.get('spec') or {}
    stype = spec.get('type') or 'ClusterIP'
    ports = spec.get('ports') or []
    first = ports[0] if ports else {}
    warnings = []
    ips, address, port = [], None, None
    if stype == 'LoadBalancer':
        port = first.get('port')
        ingress = ((service.get('status') or {}).get('loadBalancer') or {}).get('ingress') or []
        ips = _unique([i['ip'] for i in ingress if i.get('ip')])
        hostnames = _unique([i['hostname'] for i in ingress if i.get('hostname') and not i.get('ip')])
        if hostnames:
            address = hostnames[0]
            if ips:
                warnings.append('the load balancer has both IPs and hostnames; using the IPs, ignoring %s'
                                % ', '.join(hostnames))
                address = None
            elif len(hostnames) > 1:
                warnings.append('the load balancer has several hostnames; using %s' % address)
        if not ips and not address:
            warnings.append('the LoadBalancer Service has no ingress address yet')
    elif stype == 'NodePort':
        port = first.get('nodePort')
        summary = summarize_nodes(nodes)
        for n in summary:
            if not n['ready']:
                continue
            pick = n['external_ips'][:1] or n['internal_ips'][:1]
            ips.extend(pick)
        ips = _unique(ips)
        skipped = [n['name'] for n in summary if not n['ready']]
        if skipped:
            warnings.append('NodePort: skipped nodes that are not Ready: %s' % ', '.join(skipped))
        if not ips:
            warnings.append('NodePort: no Ready node has an address')
        if port is None:
            warnings.append('NodePort Service has no nodePort allocated')
    else:
        port = first.get('port')
        if spec.get('clusterIP') and spec.get('clusterIP') != 'None':
            ips = [spec['clusterIP']]
        warnings.append('Service type %s is not reachable from other clusters; '
                        'use NodePort or LoadBalancer, or set an explicit endpoint' % stype)
    return {'source': 'service', 'service_type': stype, 'ips': ips, 'address': address,
            'port': int_or_none(port), 'warnings': warnings}


# ---------------------------------------------------------------------------
# Peers
# ---------------------------------------------------------------------------

def _peer(name, entry):
    entry = entry or {}
    enabled = entry.get('enabled', True)
    return {
        'name': name,
        'ips': [str(i) for i in (entry.get('ips') or [])],
        'address': entry.get('address') or None,
        'port': int_or_none(entry.get('port')),
        'enabled': bool(enabled) if not isinstance(enabled, str) else enabled.lower() == 'true',
    }


def parse_peers(clusters):
    """``clustermesh.config.clusters`` (list of ``{name, ...}`` or map ``{name: {...}}``)
    as a list of ``{name, ips, address, port, enabled}`` sorted by name.

    Per-cluster ``tls`` material is dropped (it is secret).
    """
    out = []
    if isinstance(clusters, dict):
        for name, entry in clusters.items():
            out.append(_peer(name, entry if isinstance(entry, dict) else {}))
    elif isinstance(clusters, list):
        for entry in clusters:
            if isinstance(entry, dict) and entry.get('name'):
                out.append(_peer(entry['name'], entry))
    return sorted(out, key=lambda p: p['name'])


# ---------------------------------------------------------------------------
# Putting it together
# ---------------------------------------------------------------------------

def build_descriptor(config_map=None, release=None, ca_secret=None, service=None, nodes=None,
                     endpoint_override=None, namespace='kube-system', release_name='cilium'):
    """The descriptor returned by ``clustermesh_info`` from plain dicts.

    ``release`` is a decoded Helm release (``decode_helm_release`` output).
    """
    warnings = []
    ident = parse_cilium_config(config_map) if config_map else {
        'cluster_name': None, 'cluster_id': None, 'max_connected_clusters': None,
        'routing_mode': None, 'tunnel_protocol': None}
    rel = summarize_release(release) if release else None
    values = rel.pop('values') if rel else {}
    if rel:
        # only the user values that shape the datapath (the preflight reviews what a run would drop)
        rel['datapath_values'] = mask_secrets(datapath_values(values))
        # the whole user values only as a digest (without the peers): the preflight tells an unchanged install
        rel['values_sha256'] = values_digest(values)
        # the peers the same way (they may hold TLS material), and whether the chart renders them:
        # clustermesh_connect tells an unchanged peer set from these two
        rel['peers_sha256'] = entries_digest(normalize_entries(dig(values, 'clustermesh.config.clusters')))
        rel['clustermesh_config_enabled'] = dig(values, 'clustermesh.config.enabled')
    if config_map is None:
        warnings.append('ConfigMap %s/%s not found: Cilium is not installed' % (namespace, CILIUM_CONFIG))
    if rel is None:
        warnings.append('Helm release %s not found in namespace %s' % (release_name, namespace))
    ca = None
    if ca_secret is not None:
        try:
            ca = ca_from_secret(ca_secret)
        except DecodeError as e:
            warnings.append(str(e))
    endpoint = resolve_endpoint(service, nodes, endpoint_override)
    if endpoint:
        warnings.extend(endpoint.pop('warnings'))
    node_summary = summarize_nodes(nodes)
    pod_cidrs = []
    for n in node_summary:
        pod_cidrs.extend(c for c in n['pod_cidrs'] if c not in pod_cidrs)
    desc = dict(ident)
    desc.update({
        'installed': config_map is not None,
        'namespace': namespace,
        'release': rel,
        'kvstoremesh': kvstoremesh_enabled(values, rel['chart_version']) if rel else None,
        'clustermesh_enabled': bool(dig(values, 'clustermesh.useAPIServer') or service is not None),
        'ca': ca,
        'endpoint': endpoint,
        'nodes': node_summary,
        'pod_cidrs': pod_cidrs,
        'peers': parse_peers(dig(values, 'clustermesh.config.clusters')),
        'datapath': parse_datapath(config_map) if config_map else None,
        'warnings': warnings,
    })
    return desc


def read_descriptor(cluster, namespace='kube-system', release_name='cilium', endpoint_override=None,
                    config_map=UNREAD):
    """Read everything ``build_descriptor`` needs from a live cluster (read-only). ``config_map``: ConfigMap
    cilium-config when the caller has read it already (None: missing).

    A missing ConfigMap, release, CA or Service is not an error here.
    """
    if config_map is UNREAD:
        config_map = cluster.read_config_map(namespace, CILIUM_CONFIG, missing_ok=True)
    newest = read_newest_release_secret(cluster, namespace, release_name)
    release = None
    warnings = []
    if newest is not None:
        try:
            release = decode_helm_release((newest.get('data') or {}).get('release') or '')
        except DecodeError as e:
            warnings.append('cannot decode Helm release Secret %s: %s' % (newest['metadata']['name'], e))
    del newest
    ca_secret = cluster.read_secret(namespace, CILIUM_CA, missing_ok=True)
    ca_extra = {}
    if ca_secret is not None:
        # ca.py imports this module: imported here
        from ansible_collections.meshops.cilium.plugins.module_utils.ca import complete_material, owner_release
        owner = owner_release(ca_secret)
        ca_extra = {'complete': complete_material(ca_secret) is not None,
                    'helm_release': '%s/%s' % (owner[1], owner[0]) if owner else None}
        # Keep only the certificate: the CA key never leaves this function.
        ca_secret = {'data': {'ca.crt': (ca_secret.get('data') or {}).get('ca.crt')}}
    service = cluster.read_service(namespace, APISERVER_SERVICE, missing_ok=True)
    nodes = cluster.list_nodes()
    desc = build_descriptor(config_map, release, ca_secret, service, nodes, endpoint_override,
                            namespace=namespace, release_name=release_name)
    desc['warnings'] = warnings + desc['warnings']
    if desc.get('ca'):
        desc['ca'].update(ca_extra)
    return desc


# -- the module clustermesh_info ---------------------------------------------------------------------
def _info_argument_spec():
    from ansible_collections.meshops.cilium.plugins.module_utils.base import MEMBERS_SPEC, RELEASE_ARGUMENT_SPEC, merged_spec
    return merged_spec(
        RELEASE_ARGUMENT_SPEC,
        endpoint=dict(type='dict', options=dict(
            ips=dict(type='list', elements='str'),
            address=dict(type='str'),
            port=dict(type='int', required=True),
        ), mutually_exclusive=[['ips', 'address']], required_one_of=[['ips', 'address']]),
        read_status=dict(type='bool', default=False),
        agent_status=dict(type='str', choices=['auto', 'require', 'skip'], default='auto'),
        members=dict(type='list', elements='dict', options=dict(
            MEMBERS_SPEC, release_name=dict(type='str'), read_status=dict(type='bool'))),
    )


INFO_ARGUMENT_SPEC = _info_argument_spec()


def describe(cluster, p, release_name, with_status):
    """(descriptor, warnings) of ``cluster`` for the module's options ``p``, with its mesh status when
    ``with_status``."""
    from ansible_collections.meshops.cilium.plugins.module_utils.errors import MeshopsError
    from ansible_collections.meshops.cilium.plugins.module_utils.status import read_status, status_result, status_warnings
    # ConfigMap cilium-config is read once for both (the status takes the local cluster name from it)
    config_map = cluster.read_config_map(p['namespace'], CILIUM_CONFIG, missing_ok=True)
    desc = read_descriptor(cluster, namespace=p['namespace'], release_name=release_name,
                           endpoint_override=p['endpoint'], config_map=config_map)
    warnings = desc.pop('warnings')
    if with_status:
        try:
            st = read_status(cluster, namespace=p['namespace'], agent_status=p['agent_status'], config=config_map)
        except MeshopsError as e:
            desc['status'] = None
            warnings.append('ClusterMesh status not read with the description: %s' % e)
        else:
            st['metrics'] = None
            warnings.extend(status_warnings(st))
            desc['status'] = status_result(st, p['namespace'], p['agent_status'])
    return desc, warnings


def member_reader(p):
    """``read(cluster, entry)`` of one entry of ``members`` for the module's options ``p``: the member's
    descriptor with ``warnings_detail`` (and its status per ``read_status``)."""
    def read(cluster, entry):
        with_status = p['read_status'] if entry.get('read_status') is None else entry['read_status']
        desc, warnings = describe(cluster, p, entry.get('release_name') or p['release_name'], with_status)
        return dict(desc, warnings_detail=warnings)
    return read


def members_answer(p, user_agent):
    """The module's result for validated options ``p`` with ``members`` (no ``endpoint``), as
    ``(result, secrets)``: every member described as the module describes it, its warnings under
    ``warnings`` as the module gives them, and the task's own connection named when it resolves (as
    every result of the module does). ``secrets``: the credentials the connections resolved, to mask.
    None when the module must run instead: no members, an endpoint, names that cannot key the result
    (the module reports them), or a library missing."""
    from ansible_collections.meshops.cilium.plugins.module_utils.base import (
        member_names_problem, member_warnings, read_members)
    from ansible_collections.meshops.cilium.plugins.module_utils.cluster import (
        HAS_KUBERNETES, ClusterError, resolve_connection, unresolved_name)
    if p.get('members') is None or p.get('endpoint') or not HAS_CRYPTOGRAPHY or not HAS_KUBERNETES:
        return None
    if member_names_problem(p['members']):
        return None
    secrets = set()
    result = dict(changed=False, members=read_members(p['members'], member_reader(p), p, user_agent, secrets))
    warnings = member_warnings(result['members'], 'warnings_detail')
    if warnings:
        result['warnings'] = warnings
    try:
        own = resolve_connection(p)
    except ClusterError:
        result['cluster'] = unresolved_name(p)
    else:
        secrets.update(own.secrets())
        result.update(cluster=own.name, api_server=own.server, connection=own.describe())
    return result, secrets
