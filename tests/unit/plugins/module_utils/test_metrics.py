# -*- coding: utf-8 -*-
# Copyright: meshops.cilium contributors
# SPDX-License-Identifier: Apache-2.0
"""Cilium's own metrics of the clustermesh-apiserver pods: parsing, summary, report and reading."""

import pytest

from ansible_collections.meshops.cilium.plugins.module_utils import metrics

NOW = 1796280000.0


def kvstoremesh_page(peers, failures=None, last=None, pending=(), errors=None, count=None):
    """A KVStoreMesh metrics page in Cilium's shape: ``peers`` {name: ready}; ``pending`` (peer, scope)
    pairs whose initial sync is not complete."""
    failures, last, errors = failures or {}, last or {}, errors or {}
    lines = ['# HELP cilium_kvstoremesh_remote_clusters Number of remote clusters.',
             '# TYPE cilium_kvstoremesh_remote_clusters gauge',
             'cilium_kvstoremesh_remote_clusters %d' % (len(peers) if count is None else count),
             '# TYPE cilium_kvstoremesh_remote_cluster_readiness_status gauge']
    lines += ['cilium_kvstoremesh_remote_cluster_readiness_status{target_cluster="%s"} %d' % (p, 1 if r else 0)
              for p, r in sorted(peers.items())]
    lines.append('# TYPE cilium_kvstoremesh_remote_cluster_failures gauge')
    lines += ['cilium_kvstoremesh_remote_cluster_failures{target_cluster="%s"} %d' % (p, failures.get(p, 0))
              for p in sorted(peers)]
    lines.append('# TYPE cilium_kvstoremesh_remote_cluster_last_failure_ts gauge')
    lines += ['cilium_kvstoremesh_remote_cluster_last_failure_ts{target_cluster="%s"} %s' % (p, last.get(p, 0))
              for p in sorted(peers)]
    lines.append('# TYPE cilium_kvstoremesh_kvstore_initial_sync_completed gauge')
    for p in sorted(peers):
        for action in ('read', 'write'):
            for scope in ('nodes/v1', 'services/v1'):
                done = 0 if (p, scope) in pending else 1
                lines.append('cilium_kvstoremesh_kvstore_initial_sync_completed{action="%s",scope="%s",'
                             'source_cluster="%s"} %d' % (action, scope, p, done))
    lines.append('# TYPE cilium_kvstoremesh_kvstore_sync_errors_total counter')
    lines += ['cilium_kvstoremesh_kvstore_sync_errors_total{scope="nodes/v1",source_cluster="%s"} %d'
              % (p, errors.get(p, 0)) for p in sorted(peers)]
    # what is not used must not disturb
    lines += ['# TYPE cilium_kvstoremesh_kvstore_operations_duration_seconds histogram',
              'cilium_kvstoremesh_kvstore_operations_duration_seconds_bucket{action="Get",le="+Inf"} 3',
              'cilium_kvstoremesh_kvstore_operations_duration_seconds_sum{action="Get"} 0.01',
              'cilium_kvstoremesh_kvstore_operations_duration_seconds_count{action="Get"} 3',
              'go_goroutines 42']
    return '\n'.join(lines) + '\n'


def apiserver_page(cluster='mesh-1', synced=True, errors=0):
    return '\n'.join([
        '# TYPE cilium_clustermesh_apiserver_kvstore_initial_sync_completed gauge',
        'cilium_clustermesh_apiserver_kvstore_initial_sync_completed{action="write",scope="nodes/v1",'
        'source_cluster="%s"} %d' % (cluster, 1 if synced else 0),
        'cilium_clustermesh_apiserver_kvstore_initial_sync_completed{action="write",scope="services/v1",'
        'source_cluster="%s"} 1' % cluster,
        '# TYPE cilium_clustermesh_apiserver_kvstore_sync_errors_total counter',
        'cilium_clustermesh_apiserver_kvstore_sync_errors_total{scope="nodes/v1",source_cluster="%s"} %d'
        % (cluster, errors),
    ]) + '\n'


def test_a_healthy_mesh():
    pod = metrics.summarize({'apiserver': apiserver_page(),
                             'kvstoremesh': kvstoremesh_page({'mesh-2': True, 'mesh-3': True})}, now=NOW)
    assert pod['apiserver']['sync'] == {'mesh-1': {'synced': True, 'pending': [], 'sync_errors': 0, 'queue': 0}}
    k = pod['kvstoremesh']
    assert k['remote_clusters'] == 2
    assert k['peers'] == {'mesh-2': {'ready': True, 'failures': 0, 'last_failure_age': None},
                          'mesh-3': {'ready': True, 'failures': 0, 'last_failure_age': None}}
    assert all(s['synced'] for s in k['sync'].values())
    line = metrics.report('mesh-1', {'p1': pod}, {})
    assert line == ('mesh-1: Cilium metrics: p1: local state synced to its kvstore, 0 sync errors | KVStoreMesh: '
                    '2 remote clusters: mesh-2 ready and synced, no failures; mesh-3 ready and synced, no failures')


def test_a_peer_not_ready_and_not_synced_with_failures():
    page = kvstoremesh_page({'mesh-2': True, 'mesh-3': False}, failures={'mesh-3': 4}, last={'mesh-3': NOW - 150},
                            pending=[('mesh-3', 'services/v1')], errors={'mesh-3': 2})
    pod = metrics.summarize({'kvstoremesh': page}, now=NOW)
    assert 'apiserver' not in pod
    assert pod['kvstoremesh']['peers']['mesh-3'] == {'ready': False, 'failures': 4, 'last_failure_age': 150}
    assert pod['kvstoremesh']['sync']['mesh-3'] == {
        'synced': False, 'pending': ['read services/v1', 'write services/v1'], 'sync_errors': 2, 'queue': 0}
    peers = metrics.peers_view({'p1': pod})
    assert peers['mesh-3']['ready'] is False and peers['mesh-3']['synced'] is False
    assert peers['mesh-2']['ready'] is True and peers['mesh-2']['synced'] is True
    line = metrics.report('mesh-1', {'p1': pod}, {})
    assert ('mesh-3 NOT ready but NOT synced (read services/v1, write services/v1), 4 failures (last 2m ago)'
            in line), line


def test_one_failure_is_one_failure():
    page = kvstoremesh_page({'mesh-2': False}, failures={'mesh-2': 1}, last={'mesh-2': NOW - 30})
    line = metrics.report('mesh-1', {'p1': metrics.summarize({'kvstoremesh': page}, now=NOW)}, {})
    assert '1 failure (last' in line and '1 failures' not in line, line


def test_the_worst_of_two_kvstoremesh_pods_counts():
    a = metrics.summarize({'kvstoremesh': kvstoremesh_page({'mesh-2': True})}, now=NOW)
    b = metrics.summarize({'kvstoremesh': kvstoremesh_page({'mesh-2': False}, failures={'mesh-2': 1},
                                                           last={'mesh-2': NOW - 7200})}, now=NOW)
    peers = metrics.peers_view({'a': a, 'b': b})
    assert peers['mesh-2']['ready'] is False and peers['mesh-2']['failures'] == 1
    assert peers['mesh-2']['last_failure_age'] == 7200
    assert 'last 2h ago' in metrics.report('mesh-1', {'a': a, 'b': b}, {})


def test_not_prometheus_text_is_a_parse_error():
    with pytest.raises(metrics.MetricsParseError, match='not Prometheus text'):
        metrics.summarize({'kvstoremesh': 'cilium_kvstoremesh_remote_clusters{target_cluster="x} 1\n'})


def test_metric_ports_follow_the_chart_names():
    pod = {'spec': {'containers': [
        {'name': 'etcd', 'ports': [{'name': 'etcd', 'containerPort': 2379},
                                   {'name': 'etcd-metrics', 'containerPort': 9963}]},
        {'name': 'apiserver', 'ports': [{'name': 'apiserv-metrics', 'containerPort': 9962}]},
        {'name': 'kvstoremesh', 'ports': [{'name': 'kvmesh-metrics', 'containerPort': 19964}]}]}}
    assert metrics.metric_ports(pod) == {'apiserver': 9962, 'kvstoremesh': 19964}
    assert metrics.metric_ports({'spec': {'containers': [{'name': 'apiserver'}]}}) == {}


def test_report_without_any_pod_says_why():
    assert metrics.report('mesh-1', {}, {}) == 'mesh-1: Cilium metrics not read (no clustermesh-apiserver pod)'
    assert metrics.report('mesh-1', {}, {'p': 'pod is Pending'}) == 'mesh-1: Cilium metrics not read (p: pod is Pending)'
