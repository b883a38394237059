# -*- coding: utf-8 -*-
# Copyright: meshops.cilium contributors
# SPDX-License-Identifier: Apache-2.0
"""Cilium's own ClusterMesh metrics, read from the clustermesh-apiserver pods.

The chart's clustermesh-apiserver Deployment serves Prometheus metrics from two of its
containers (``clustermesh.apiserver.metrics.enabled`` and ``...metrics.kvstoremesh.enabled``,
both on by default): container ``apiserver`` on the port named ``apiserv-metrics`` (9962) and
container ``kvstoremesh`` on ``kvmesh-metrics`` (9964). They are read through the API server's
pod proxy (``GET pods/proxy``), so nothing but the Kubernetes API is reached.

Used here:

* ``cilium_clustermesh_apiserver_kvstore_initial_sync_completed`` / ``..._sync_errors_total`` /
  ``..._sync_queue_size``: the local cluster's state written into its own kvstore (what peers read);
* ``cilium_kvstoremesh_remote_clusters``, ``..._remote_cluster_readiness_status``,
  ``..._remote_cluster_failures``, ``..._remote_cluster_last_failure_ts`` (per ``target_cluster``):
  KVStoreMesh's connection to each peer;
* ``cilium_kvstoremesh_kvstore_initial_sync_completed`` / ``..._sync_errors_total`` /
  ``..._sync_queue_size`` (per ``source_cluster``): each peer's state cached locally.

Only the agents export ``cilium_clustermesh_remote_clusters``,
``cilium_clustermesh_remote_cluster_readiness_status``, ``..._failures``,
``..._last_failure_ts``, ``..._nodes``, ``..._cache_revocations`` and
``cilium_clustermesh_global_services`` (without KVStoreMesh they speak of the peers, with it
of the local KVStoreMesh); they are served on each agent's host port (``prometheus.enabled``,
9962), which the pod proxy does not reach on a host-network pod, so ``clustermesh_status``
reads the agents with ``cilium-dbg status`` instead.

``summarize`` is pure (the text of the two endpoints in, plain data out); ``read_metrics`` does the I/O.
"""

import time

from ansible_collections.meshops.cilium.plugins.module_utils.cluster import ClusterError
from ansible_collections.meshops.cilium.plugins.module_utils.common import counted
from ansible_collections.meshops.cilium.plugins.module_utils.errors import MeshopsValueError
from ansible_collections.meshops.cilium.plugins.module_utils.status import KVSTOREMESH_APP, list_status_pods

# (section, container port name, metric name prefix)
SOURCES = (
    ('apiserver', 'apiserv-metrics', 'cilium_clustermesh_apiserver_'),
    ('kvstoremesh', 'kvmesh-metrics', 'cilium_kvstoremesh_'),
)
WANTED = ('kvstore_initial_sync_completed', 'kvstore_sync_errors_total', 'kvstore_sync_queue_size',
          'remote_clusters', 'remote_cluster_readiness_status', 'remote_cluster_failures',
          'remote_cluster_last_failure_ts')
RBAC_HINT = ('grant get on pods/proxy in the Cilium namespace (deploy/rbac/meshops-automation-status-exec.yaml), '
             'or set metrics=skip')


class MetricsParseError(MeshopsValueError):
    """A metrics page that is not Prometheus text."""


def parse(text, prefix):
    """``{name without prefix: [(labels, value), ...]}`` of the samples in ``WANTED``.

    Uses prometheus_client's parser (the format's escapes, comments and types are its business).
    """
    try:
        from prometheus_client.parser import text_string_to_metric_families
    except ImportError:
        raise MetricsParseError('the Python library "prometheus-client" is required to read metrics '
                                '(pip install prometheus-client)')
    out = {}
    try:
        for family in text_string_to_metric_families(text):
            for sample in family.samples:
                name = sample.name
                if name.startswith(prefix) and name[len(prefix):] in WANTED:
                    out.setdefault(name[len(prefix):], []).append((dict(sample.labels), float(sample.value)))
    except ValueError as e:
        raise MetricsParseError('not Prometheus text: %s' % (str(e)[:200]))
    return out


def _sync(samples, key='source_cluster'):
    """``{cluster: {synced, pending, sync_errors, queue}}`` from the kvstore sync metrics."""
    out = {}

    def entry(labels):
        return out.setdefault(labels.get(key) or '', {'synced': True, 'pending': [], 'sync_errors': 0, 'queue': 0})
    for labels, value in samples.get('kvstore_initial_sync_completed', []):
        e = entry(labels)
        if value != 1:
            e['synced'] = False
            e['pending'].append('%s %s' % (labels.get('action', '?'), labels.get('scope', '?')))
    for labels, value in samples.get('kvstore_sync_errors_total', []):
        entry(labels)['sync_errors'] += int(value)
    for labels, value in samples.get('kvstore_sync_queue_size', []):
        entry(labels)['queue'] += int(value)
    for e in out.values():
        e['pending'].sort()
    return out


def _remote(samples, now):
    """``{peer: {ready, failures, last_failure_age}}`` from KVStoreMesh's remote-cluster metrics."""
    out = {}

    def entry(labels):
        return out.setdefault(labels.get('target_cluster') or '',
                              {'ready': None, 'failures': 0, 'last_failure_age': None})
    for labels, value in samples.get('remote_cluster_readiness_status', []):
        entry(labels)['ready'] = value == 1
    for labels, value in samples.get('remote_cluster_failures', []):
        entry(labels)['failures'] = int(value)
    for labels, value in samples.get('remote_cluster_last_failure_ts', []):
        if value > 0:
            entry(labels)['last_failure_age'] = max(0, int(now - value))
    return out


def summarize(pages, now=None):
    """One pod's metrics from ``{section: page text}`` (sections of ``SOURCES``; a missing one is
    not read). Returns ``{section: {...}}``:

    * ``apiserver``: ``sync`` of the local cluster's own state (``{cluster: {synced, pending,
      sync_errors, queue}}``);
    * ``kvstoremesh``: ``remote_clusters`` (count), ``peers`` (``{peer: {ready, failures,
      last_failure_age}}``) and ``sync`` (each peer's cached state, as above).
    """
    now = time.time() if now is None else now
    out = {}
    for section, dummy, prefix in SOURCES:
        if section not in pages:
            continue
        samples = parse(pages[section], prefix)
        entry = {'sync': _sync(samples)}
        if section == 'kvstoremesh':
            count = samples.get('remote_clusters')
            entry['remote_clusters'] = int(count[0][1]) if count else None
            entry['peers'] = _remote(samples, now)
        out[section] = entry
    return out


def _age(seconds):
    if seconds is None:
        return 'never'
    for unit, size in (('d', 86400), ('h', 3600), ('m', 60)):
        if seconds >= size:
            return '%d%s ago' % (seconds // size, unit)
    return '%ds ago' % seconds


def peers_view(pods):
    """Per peer, the worst over the KVStoreMesh pods: ``{peer: {ready, failures, last_failure_age,
    synced, pending, sync_errors}}``."""
    out = {}
    for pod in sorted(pods):
        kvsm = (pods[pod] or {}).get('kvstoremesh') or {}
        for peer, r in (kvsm.get('peers') or {}).items():
            e = out.setdefault(peer, {'ready': True, 'failures': 0, 'last_failure_age': None, 'synced': True,
                                      'pending': [], 'sync_errors': 0})
            e['ready'] = e['ready'] and r['ready'] is True
            e['failures'] = max(e['failures'], r['failures'])
            ages = [a for a in (e['last_failure_age'], r['last_failure_age']) if a is not None]
            e['last_failure_age'] = min(ages) if ages else None
        for peer, s in (kvsm.get('sync') or {}).items():
            e = out.setdefault(peer, {'ready': None, 'failures': 0, 'last_failure_age': None, 'synced': True,
                                      'pending': [], 'sync_errors': 0})
            e['synced'] = e['synced'] and s['synced']
            e['pending'] = sorted(set(e['pending'] + s['pending']))
            e['sync_errors'] += s['sync_errors']
    return out


def report(cluster, pods, unavailable):
    """One line for people: what Cilium's metrics say of this cluster's mesh."""
    if not pods:
        why = '; '.join('%s: %s' % kv for kv in sorted(unavailable.items())) or 'no clustermesh-apiserver pod'
        return '%s: Cilium metrics not read (%s)' % (cluster, why)
    parts = []
    for pod in sorted(pods):
        own = ((pods[pod].get('apiserver') or {}).get('sync') or {})
        if own:
            state = all(s['synced'] for s in own.values())
            errors = sum(s['sync_errors'] for s in own.values())
            parts.append('%s: local state %s to its kvstore, %d sync errors' % (
                pod, 'synced' if state else 'NOT synced', errors))
    kvsm = [pods[p]['kvstoremesh'] for p in sorted(pods) if 'kvstoremesh' in pods[p]]
    if kvsm:
        peers = peers_view(pods)
        counts = sorted(set(k.get('remote_clusters') for k in kvsm if k.get('remote_clusters') is not None))
        words = []
        for peer in sorted(peers):
            e = peers[peer]
            words.append('%s %s%s, %s' % (
                peer, 'ready' if e['ready'] else 'NOT ready',
                ' and synced' if e['synced'] else ' but NOT synced (%s)' % ', '.join(e['pending'][:4]),
                '%s (last %s)' % (counted(e['failures'], 'failure'), _age(e['last_failure_age'])) if e['failures']
                else 'no failures'))
        parts.append('KVStoreMesh: %s remote clusters: %s' % (
            '/'.join(str(c) for c in counts) or '?', '; '.join(words) or 'none'))
    if unavailable:
        parts.append('not read: %s' % '; '.join('%s: %s' % kv for kv in sorted(unavailable.items())))
    return '%s: Cilium metrics: %s' % (cluster, ' | '.join(parts))


# ---------------------------------------------------------------------------
# Reading a live cluster
# ---------------------------------------------------------------------------

def metric_ports(pod):
    """``{section: port}`` of the metrics ports the pod's containers declare (by the chart's names)."""
    by_name = {}
    for c in ((pod.get('spec') or {}).get('containers') or []):
        for port in c.get('ports') or []:
            if port.get('name') and port.get('containerPort'):
                by_name[port['name']] = int(port['containerPort'])
    return dict((section, by_name[name]) for section, name, dummy in SOURCES if name in by_name)


def read_metrics(cluster, namespace, pods=None):
    """``{'pods': {pod: summarize(...)}, 'unavailable': {pod: reason}, 'peers': ..., 'report': line}``
    for the clustermesh-apiserver ``pods`` (dicts; listed here when None): one GET per metrics port
    of each running pod."""
    if pods is None:
        pods = list_status_pods(cluster, namespace, [KVSTOREMESH_APP])[KVSTOREMESH_APP]
    read, unavailable = {}, {}
    for pod in pods:
        name = (pod.get('metadata') or {}).get('name')
        phase = (pod.get('status') or {}).get('phase')
        if phase != 'Running':
            unavailable[name] = 'pod is %s' % (phase or 'in an unknown phase')
            continue
        ports = metric_ports(pod)
        if not ports:
            unavailable[name] = ('no metrics port declared (clustermesh.apiserver.metrics.enabled and '
                                 '.kvstoremesh.enabled are off)')
            continue
        pages = {}
        try:
            for section, port in sorted(ports.items()):
                # raw bytes: the client's own decoding of a text answer gives the repr of the bytes
                resp = cluster.call(
                    'read the %s metrics of pod %s/%s (pods/proxy port %d)' % (section, namespace, name, port),
                    cluster.core.connect_get_namespaced_pod_proxy_with_path, '%s:%d' % (name, port), namespace,
                    'metrics', _preload_content=False)
                try:
                    pages[section] = resp.data.decode('utf-8', 'replace')
                finally:
                    resp.release_conn()
            read[name] = summarize(pages)
        except ClusterError as e:
            unavailable[name] = (e.detail + '; ' + RBAC_HINT) if e.status == 403 else e.detail
        except MetricsParseError as e:
            unavailable[name] = str(e)
    return {'pods': read, 'unavailable': unavailable, 'peers': peers_view(read),
            'report': report(cluster.name, read, unavailable)}
