# -*- coding: utf-8 -*-
# Copyright: meshops.cilium contributors
# SPDX-License-Identifier: Apache-2.0
"""Which peers' backends of each global Service Cilium has synced into one cluster (read-only).

Source: Cilium's own kvstore in the cluster's clustermesh-apiserver pods, read with Cilium's own debug
shell in container ``kvstoremesh`` (``clustermesh-apiserver shell -- kvstore/list <prefix>``; the image
ships no etcdctl and no shell, its hive shell is the tool Cilium gives):

* ``cilium/state/services/v1/<this cluster>/<ns>/<name>``: what this cluster's clustermesh-apiserver
  exports of its own global Services (backends from its EndpointSlices);
* ``cilium/cache/services/v1/<peer>/<ns>/<name>``: what KVStoreMesh has synced from each peer, which is
  what this cluster's agents read (they connect to the local KVStoreMesh).

Pure parsing and comparison here; ``read_sync`` does the reads through a ``cluster.Cluster``.
"""

import json

from ansible_collections.meshops.cilium.plugins.module_utils.errors import MeshopsError, MeshopsValueError
from ansible_collections.meshops.cilium.plugins.module_utils.services import (
    GLOBAL_ANNOTATION,
    SHARED_ANNOTATION,
    shared_value,
)

STATE_PREFIX = 'cilium/state/services/v1/'
CACHE_PREFIX = 'cilium/cache/services/v1/'
SHELL = ['clustermesh-apiserver', 'shell', '--']
KVSTOREMESH_CONTAINER = 'kvstoremesh'
APISERVER_APP = 'clustermesh-apiserver'

# a peer entry's state; only PROBLEM_STATES make a cluster out of sync
SYNCED = 'synced'
NO_BACKENDS = 'no_backends'        # synced, and the peer exports no backend (none ready there)
NOT_EXPORTED = 'not_exported'      # the peer does not export it (absent, not global or shared=false there)
NOT_SYNCED = 'not_synced'          # the peer exports it, this cluster's KVStoreMesh holds nothing of it
MISSING = 'missing'                # nothing from the peer, and what the peer exports is not known (no peers)
PARTIAL = 'partial'                # synced with another backend count than the peer exports
PORTS_DIFFER = 'ports_differ'      # the peer's Service has other ports than this cluster's
PROBLEM_STATES = (NOT_SYNCED, PARTIAL, PORTS_DIFFER)
# from best to worst: when several clustermesh-apiserver pods disagree, the worst is reported
STATE_RANK = (SYNCED, NO_BACKENDS, NOT_EXPORTED, MISSING, PARTIAL, PORTS_DIFFER, NOT_SYNCED)


class SyncReadError(MeshopsError):
    """Cilium's kvstore could not be read; the message names the cluster, what and the fix."""


class SyncParseError(MeshopsValueError):
    pass


# -- parsing --------------------------------------------------------------------
def parse_kvstore_list(output):
    """``{key: decoded value}`` of ``kvstore/list`` (plain format: ``# <key>`` then the value's JSON on the
    following lines). A value that is not JSON raises ``SyncParseError`` naming the key."""
    if isinstance(output, bytes):
        output = output.decode('utf-8', 'replace')
    out, key, lines = {}, None, []

    def flush():
        if key is None:
            return
        text = '\n'.join(lines).strip()
        try:
            out[key] = json.loads(text) if text else None
        except ValueError:
            raise SyncParseError('kvstore key %s: value is not JSON: %s' % (key, text[:200]))
    for line in (output or '').splitlines():
        if line.startswith('# '):
            flush()
            key, lines = line[2:].strip(), []
        elif key is not None:
            lines.append(line)
        elif line.strip():
            raise SyncParseError('kvstore/list output does not start with a key line ("# <key>"): %s' % line[:200])
    flush()
    return out


def _port_entries(portconf):
    """``[(name, port, protocol)]`` of a ClusterService port configuration ``{name: {Protocol, Port}}``."""
    out = []
    for name, addr in (portconf or {}).items():
        addr = addr or {}
        port = addr.get('Port', addr.get('port'))
        proto = addr.get('Protocol', addr.get('protocol')) or 'TCP'
        out.append((name or '', int(port) if port is not None else 0, str(proto).upper()))
    return sorted(set(out))


def cluster_service(value, key):
    """The facts of one ClusterService value (``pkg/clustermesh/store``): cluster, namespace, name,
    cluster_id, shared, backends (count of backend IPs), backend_ports, ports (frontend ports)."""
    if not isinstance(value, dict):
        raise SyncParseError('kvstore key %s: value is not a ClusterService object' % key)
    frontends = value.get('frontends') or {}
    backends = value.get('backends') or {}
    ports = sorted(set(p for conf in frontends.values() for p in _port_entries(conf)))
    backend_ports = sorted(set(p for conf in backends.values() for p in _port_entries(conf)))
    return {'cluster': value.get('cluster'), 'namespace': value.get('namespace'), 'name': value.get('name'),
            'cluster_id': value.get('clusterID'), 'shared': bool(value.get('shared')),
            'global': bool(value.get('includeExternal')), 'backends': len(backends),
            'backend_ips': sorted(backends), 'ports': [_port_text(p) for p in ports],
            'backend_ports': [_port_text(p) for p in backend_ports]}


def _port_text(entry):
    name, port, proto = entry
    return '%s%d/%s' % (('%s ' % name) if name else '', port, proto)


def _split_key(key, prefix):
    """``(cluster, 'ns/name')`` of ``<prefix><cluster>/<ns>/<name>``, or None."""
    if not key.startswith(prefix):
        return None
    parts = key[len(prefix):].split('/')
    if len(parts) != 3 or not all(parts):
        return None
    return parts[0], '%s/%s' % (parts[1], parts[2])


def services_by_cluster(entries, prefix):
    """``{cluster: {'ns/name': facts}}`` of parsed ``kvstore/list`` entries under ``prefix``."""
    out = {}
    for key, value in sorted(entries.items()):
        where = _split_key(key, prefix)
        if where is None:
            continue
        out.setdefault(where[0], {})[where[1]] = cluster_service(value, key)
    return out


def service_ports(service):
    """``['name port/PROTO', ...]`` of a Kubernetes Service dict's ``spec.ports`` (the form Cilium exports)."""
    entries = []
    for p in ((service or {}).get('spec') or {}).get('ports') or []:
        entries.append((p.get('name') or '', int(p.get('port') or 0), str(p.get('protocol') or 'TCP').upper()))
    return [_port_text(e) for e in sorted(set(entries))]


def global_services(services):
    """``{'ns/name': {ports, shared}}`` of the Kubernetes Service dicts annotated ``service.cilium.io/global:
    "true"`` (any case)."""
    out = {}
    for svc in services or []:
        meta = svc.get('metadata') or {}
        ann = meta.get('annotations') or {}
        if str(ann.get(GLOBAL_ANNOTATION, '')).strip().lower() != 'true':
            continue
        shared = shared_value(ann.get(SHARED_ANNOTATION)) if SHARED_ANNOTATION in ann else 'true'
        out['%s/%s' % (meta.get('namespace'), meta.get('name'))] = {
            'ports': service_ports(svc), 'shared': shared != 'false'}
    return out


# -- comparison -----------------------------------------------------------------
def peer_entry(local, service, peer, local_ports, cached, exported=None):
    """The verdict on one global Service of cluster ``local`` for one ``peer``.

    ``cached``: the facts KVStoreMesh of ``local`` holds from ``peer`` (None when nothing);
    ``exported``: what ``peer`` itself exports (its own kvstore's state, from this check run on the peer;
    None when not known, False when the peer exports nothing for it).
    Returns ``{state, synced, backends, expected, ports, reason}``.
    """
    expected = exported.get('backends') if isinstance(exported, dict) else (0 if exported is False else None)
    entry = {'synced': False, 'backends': 0, 'expected': expected, 'ports': None, 'reason': None}
    what = 'Service %s' % service
    if cached is None:
        if exported is False:
            entry['state'] = NOT_EXPORTED
            entry['reason'] = ('%s: %s exports no backends of %s (the Service is absent there, not global, or '
                               'shared=false), so nothing is synced from it' % (local, peer, what))
        elif isinstance(exported, dict):
            entry['state'] = NOT_SYNCED
            entry['reason'] = ('%s: %s exports %s with %d backend(s), but the KVStoreMesh of %s holds nothing of it '
                               '(key %s%s/%s): not synced; check the mesh status of %s (clustermesh_status)'
                               % (local, peer, what, expected, local, CACHE_PREFIX, peer, service, local))
        else:
            entry['state'] = MISSING
            entry['reason'] = ('%s: the KVStoreMesh of %s holds no %s from %s (key %s%s/%s): the Service is absent, '
                               'not global or shared=false on %s, or not synced (run this check with peers to tell)'
                               % (local, local, what, peer, CACHE_PREFIX, peer, service, peer))
        return entry
    entry['backends'] = cached['backends']
    entry['ports'] = cached['ports']
    if cached['ports'] and local_ports is not None and sorted(cached['ports']) != sorted(local_ports):
        entry['state'] = PORTS_DIFFER
        entry['reason'] = ('%s: %s on %s has ports %s, on %s %s: Cilium merges backends per port name and '
                           'number; give the Service the same ports in every cluster'
                           % (local, what, peer, ', '.join(cached['ports']) or 'none', local,
                              ', '.join(local_ports) or 'none'))
        return entry
    if expected is not None and cached['backends'] != expected:
        entry['state'] = PARTIAL
        entry['reason'] = ('%s: %s exports %s with %d backend(s), the KVStoreMesh of %s has %d of them: not (yet) '
                           'synced' % (local, peer, what, expected, local, cached['backends']))
        return entry
    if cached['backends'] == 0:
        entry['state'] = NO_BACKENDS
        entry['reason'] = ('%s: %s exports %s with no backends (no ready endpoint there): nothing of %s to '
                           'load-balance to' % (local, peer, what, peer))
        return entry
    entry['state'] = SYNCED
    entry['synced'] = True
    return entry


def sync_report(local, local_services, cached, peers, exported_by_peer=None):
    """``(report, problems)`` for cluster ``local``.

    ``local_services``: ``global_services()`` of ``local``; ``cached``: ``{peer: {'ns/name': facts}}`` from
    its KVStoreMesh; ``peers``: the peer cluster names; ``exported_by_peer``: ``{peer: {'ns/name': facts}}``
    of what each peer exports (a peer missing from it: not known).
    ``report``: ``{'ns/name': {peer: peer_entry}}`` for every global Service of ``local``;
    ``problems``: the reasons of every entry whose state is a problem (not synced, partial, ports differ).
    """
    report, problems = {}, []
    known = exported_by_peer or {}
    for service, facts in sorted(local_services.items()):
        row = report.setdefault(service, {})
        for peer in sorted(peers):
            if peer == local:
                continue
            exported = None
            if peer in known:
                exported = (known[peer] or {}).get(service) or False
            entry = peer_entry(local, service, peer, facts.get('ports'), (cached.get(peer) or {}).get(service),
                               exported)
            row[peer] = entry
            if entry['state'] in PROBLEM_STATES:
                problems.append(entry['reason'])
    return report, problems


def export_problems(local, local_services, exported):
    """Global, shared Services of ``local`` that its own clustermesh-apiserver has not exported to its kvstore
    (Cilium exports a global Service even without backends, so a missing key means not synced yet)."""
    return ['%s: Service %s is global and shared here, but the clustermesh-apiserver of %s has not exported it '
            '(key %s%s/%s): its peers cannot sync it; check the clustermesh-apiserver (clustermesh_status)'
            % (local, service, local, STATE_PREFIX, local, service)
            for service, facts in sorted(local_services.items()) if facts.get('shared') and service not in exported]


def summary(report):
    """One line per global Service: ``ns/name: mesh-2 3 backends synced, mesh-3 0 (no_backends)``."""
    lines = []
    for service, row in sorted(report.items()):
        parts = []
        for peer, e in sorted(row.items()):
            if e['state'] == SYNCED:
                parts.append('%s %d backend(s) synced' % (peer, e['backends']))
            else:
                parts.append('%s %d backend(s) (%s)' % (peer, e['backends'], e['state']))
        lines.append('%s: %s' % (service, ', '.join(parts) or 'no peers'))
    return lines


def peer_exports(peers):
    """``{peer: {'ns/name': facts}}`` from option ``peers``: by peer name, either this check's whole result on
    that peer (its ``exported``) or the ``exported`` dict itself. Raises ``SyncParseError`` naming the peer."""
    out = {}
    for peer, value in (peers or {}).items():
        if isinstance(value, dict) and 'exported' in value:
            value = value['exported']
        if not isinstance(value, dict) or not all(isinstance(v, dict) and 'backends' in v for v in value.values()):
            raise SyncParseError('field peers.%s must be the result of this check on %s (or its exported dict: '
                                 '{"ns/name": {"backends": N, ...}}), got %r' % (peer, peer, value))
        out[str(peer)] = value
    return out


# -- reads (a cluster.Cluster) ---------------------------------------------------
def merge_pod_reports(reports):
    """One report from ``{pod: (report, problems)}``: per Service and peer the worst entry (``STATE_RANK``; the
    first pod by name among equals), each reason naming its pod when several pods answered."""
    pods = sorted(reports)
    if len(pods) == 1:
        return reports[pods[0]]
    merged, problems = {}, []
    for pod in pods:
        report = reports[pod][0]
        for service, row in report.items():
            for peer, entry in row.items():
                entry = dict(entry)
                if entry.get('reason'):
                    entry['reason'] = 'pod %s: %s' % (pod, entry['reason'])
                have = merged.setdefault(service, {}).get(peer)
                if have is None or STATE_RANK.index(entry['state']) > STATE_RANK.index(have['state']):
                    merged[service][peer] = entry
                if entry['state'] in PROBLEM_STATES:
                    problems.append(entry['reason'])
    return merged, problems


def _kvstore_list(exec_fn, pod, namespace, prefix, cluster):
    command = SHELL + ['kvstore/list', prefix]
    try:
        rc, out, err = exec_fn(pod, namespace, KVSTOREMESH_CONTAINER, command)
    except MeshopsError as e:
        raise SyncReadError('cluster %s: reading Cilium\'s kvstore (%s) failed: %s. Fix: the automation identity needs '
                            'pods/exec in namespace %s (docs/rbac.md) and the pod must be Running'
                            % (cluster, ' '.join(command), e, namespace))
    if rc not in (0, None):
        raise SyncReadError('cluster %s: %s in pod %s container %s exited %s: %s. Fix: a clustermesh-apiserver whose '
                            'image has the debug shell (Cilium 1.20 verified) with KVStoreMesh, and Ready'
                            % (cluster, ' '.join(command), pod, KVSTOREMESH_CONTAINER, rc,
                               ' '.join((err or out or '').split())[:300]))
    try:
        return parse_kvstore_list(out)
    except SyncParseError as e:
        raise SyncReadError('cluster %s: pod %s: %s' % (cluster, pod, e))


def read_sync(cluster, namespace='kube-system', exec_timeout=30, services=None, peers=None, exec_fn=None):
    """Everything the check reports for one cluster (see module clustermesh_service_sync)."""
    from ansible_collections.meshops.cilium.plugins.module_utils.status import (
        CLUSTERMESH_SECRET,
        expected_peers,
        kubernetes_exec,
        list_status_pods,
    )
    config = cluster.read_config_map(namespace, 'cilium-config', missing_ok=True)
    data = (config or {}).get('data') or {}
    local = data.get('cluster-name')
    if not local:
        raise SyncReadError('cluster %s: ConfigMap %s/cilium-config has no cluster-name: is Cilium installed with '
                            'a cluster name (field namespace names where)?' % (cluster.name, namespace))
    deployment = cluster.read_deployment(namespace, APISERVER_APP, missing_ok=True)
    containers = ((((deployment or {}).get('spec') or {}).get('template') or {}).get('spec') or {}).get(
        'containers') or []
    if not any(c.get('name') == KVSTOREMESH_CONTAINER for c in containers):
        raise SyncReadError('cluster %s: Deployment %s/%s %s: this check reads what KVStoreMesh synced. Fix: enable '
                            'ClusterMesh with KVStoreMesh (chart values clustermesh.useAPIServer=true, '
                            'clustermesh.apiserver.kvstoremesh.enabled=true, the default since 1.16)'
                            % (local, namespace, APISERVER_APP, 'has no container kvstoremesh' if deployment
                               else 'does not exist'))
    secret = cluster.read_secret(namespace, CLUSTERMESH_SECRET, missing_ok=True)
    mesh_peers = expected_peers(secret, local)
    del secret
    exported_by_peer = peer_exports(peers) if peers is not None else None
    all_peers = sorted(set(mesh_peers) | set(exported_by_peer or {}))
    if services:  # only their namespaces (narrower permissions than a list in every namespace)
        items = []
        for ns in sorted(set(s.split('/', 1)[0] for s in services)):
            items.extend(cluster.call('list Services in namespace %s' % ns, cluster.core.list_namespaced_service,
                                      ns).items or [])
    else:
        items = cluster.call('list Services in all namespaces', cluster.core.list_service_for_all_namespaces).items
    local_services = global_services(cluster.to_dict(s) for s in (items or []))
    if services:
        unknown = [s for s in services if s not in local_services]
        local_services = dict((k, v) for k, v in local_services.items() if k in services)
    else:
        unknown = []
    pods = [p for p in list_status_pods(cluster, namespace, [APISERVER_APP])[APISERVER_APP]
            if ((p.get('status') or {}).get('phase') == 'Running')]
    if not pods:
        raise SyncReadError('cluster %s: no Running pod of Deployment %s/%s: Cilium\'s kvstore cannot be read. Fix: '
                            'make the clustermesh-apiserver ready (clustermesh_status says why)'
                            % (local, namespace, APISERVER_APP))
    exec_fn = exec_fn or kubernetes_exec(cluster, exec_timeout)
    reports, cached_by_pod, exported = {}, {}, None
    for pod in sorted(p['metadata']['name'] for p in pods):
        cached = services_by_cluster(_kvstore_list(exec_fn, pod, namespace, CACHE_PREFIX, local), CACHE_PREFIX)
        if exported is None:
            own = services_by_cluster(_kvstore_list(exec_fn, pod, namespace, STATE_PREFIX + local + '/', local),
                                      STATE_PREFIX)
            exported = own.get(local) or {}
        cached_by_pod[pod] = cached
        reports[pod] = sync_report(local, local_services, cached, all_peers, exported_by_peer)
    report, problems = merge_pod_reports(reports)
    problems = export_problems(local, local_services, exported) + list(problems)
    first = cached_by_pod[sorted(cached_by_pod)[0]]
    synced = {}
    for peer, svcs in first.items():
        for service, facts in svcs.items():
            synced.setdefault(service, {})[peer] = dict((k, facts[k]) for k in (
                'backends', 'ports', 'backend_ports', 'cluster_id', 'shared'))
    return {'cluster': local, 'cluster_id': data.get('cluster-id'), 'peers': all_peers,
            'global_services': local_services, 'exported': exported, 'synced': synced, 'report': report,
            'problems': problems, 'in_sync': not problems, 'summary': summary(report), 'unknown_services': unknown,
            'source': {'pods': sorted(cached_by_pod), 'container': KVSTOREMESH_CONTAINER,
                       'commands': [' '.join(SHELL + ['kvstore/list', CACHE_PREFIX]),
                                    ' '.join(SHELL + ['kvstore/list', STATE_PREFIX + local + '/'])]}}
