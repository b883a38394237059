# -*- coding: utf-8 -*-
# Copyright: meshops.cilium contributors
# SPDX-License-Identifier: Apache-2.0
"""service_sync: parsing Cilium's kvstore/list output and comparing what peers export with what KVStoreMesh synced.

The kvstore/list samples are Cilium 1.20.2's own output (clustermesh-apiserver shell -- kvstore/list, container
kvstoremesh) on the local fleet."""

import json

import pytest

from ansible_collections.meshops.cilium.plugins.module_utils import service_sync as ss

MESH2_ECHO = {"cluster": "mesh-2", "namespace": "probe", "name": "echo",
              "frontends": {"10.102.138.109": {"http": {"Protocol": "TCP", "Port": 80}}},
              "backends": {"10.34.1.1": {"http": {"Protocol": "TCP", "Port": 8080}},
                           "10.34.2.1": {"http": {"Protocol": "TCP", "Port": 8080}}},
              "zones": {"10.34.1.1": {"zone": "mesh-2-zone-2", "forZones": []}},
              "labels": {}, "selector": {"app": "echo"}, "includeExternal": True, "shared": True, "clusterID": 2}
MESH1_ECHO = dict(MESH2_ECHO, cluster="mesh-1", clusterID=1,
                  frontends={"10.101.138.34": {"http": {"Protocol": "TCP", "Port": 80}}},
                  backends={"10.33.1.1": {"http": {"Protocol": "TCP", "Port": 8080}}})


def listing(entries):
    """kvstore/list's plain format: '# key' then the compact JSON value, a blank line at the end."""
    return ''.join('# %s\n%s\n' % (k, json.dumps(v, separators=(',', ':'))) for k, v in entries) + '\n'


CACHE = listing([('cilium/cache/services/v1/mesh-2/probe/echo', MESH2_ECHO)])
SERVICE = {'metadata': {'name': 'echo', 'namespace': 'probe', 'annotations': {'service.cilium.io/global': 'true'}},
           'spec': {'ports': [{'name': 'http', 'port': 80, 'targetPort': 8080, 'protocol': 'TCP'}]}}


def test_parse_kvstore_list_reads_keys_and_values():
    out = ss.parse_kvstore_list(CACHE)
    assert list(out) == ['cilium/cache/services/v1/mesh-2/probe/echo']
    assert out['cilium/cache/services/v1/mesh-2/probe/echo']['clusterID'] == 2
    # the json output format: indented values over several lines
    indented = '# k/1\n%s\n# k/2\n{}\n' % json.dumps({'a': [1, 2]}, indent=2)
    assert ss.parse_kvstore_list(indented) == {'k/1': {'a': [1, 2]}, 'k/2': {}}
    assert ss.parse_kvstore_list('\n') == {} and ss.parse_kvstore_list(b'') == {}


@pytest.mark.parametrize('text,match', [
    ('# k/1\nnot json\n', 'kvstore key k/1: value is not JSON'),
    ('Error: unknown command\n', 'does not start with a key line'),
])
def test_parse_kvstore_list_refuses_other_output(text, match):
    with pytest.raises(ss.SyncParseError, match=match):
        ss.parse_kvstore_list(text)


def test_cluster_service_facts_and_keys():
    facts = ss.cluster_service(MESH2_ECHO, 'k')
    assert facts['backends'] == 2 and facts['backend_ips'] == ['10.34.1.1', '10.34.2.1']
    assert facts['ports'] == ['http 80/TCP'] and facts['backend_ports'] == ['http 8080/TCP']
    assert (facts['cluster'], facts['cluster_id'], facts['shared'], facts['global']) == ('mesh-2', 2, True, True)
    with pytest.raises(ss.SyncParseError, match='not a ClusterService'):
        ss.cluster_service(['x'], 'k')
    entries = ss.parse_kvstore_list(listing([
        ('cilium/cache/services/v1/mesh-2/probe/echo', MESH2_ECHO),
        ('cilium/cache/services/v1/mesh-3/probe/echo', dict(MESH2_ECHO, cluster='mesh-3', backends={})),
        ('cilium/cache/services/v1/mesh-3/bad-key', {}),  # not <cluster>/<ns>/<name>: ignored
        ('cilium/cache/nodes/v1/mesh-2/n1', {})]))
    by = ss.services_by_cluster(entries, ss.CACHE_PREFIX)
    assert sorted(by) == ['mesh-2', 'mesh-3']
    assert by['mesh-3']['probe/echo']['backends'] == 0


def test_global_services_and_their_ports():
    other = {'metadata': {'name': 'x', 'namespace': 'probe', 'annotations': {}}, 'spec': {'ports': [{'port': 1}]}}
    not_shared = {'metadata': {'name': 'y', 'namespace': 'probe', 'annotations': {
        'service.cilium.io/global': 'True', 'service.cilium.io/shared': 'false'}},
        'spec': {'ports': [{'port': 53, 'protocol': 'UDP'}, {'name': 'a', 'port': 53}]}}
    out = ss.global_services([SERVICE, other, not_shared])
    assert out == {'probe/echo': {'ports': ['http 80/TCP'], 'shared': True},
                   'probe/y': {'ports': ['53/UDP', 'a 53/TCP'], 'shared': False}}


def _cached(*entries):
    return ss.services_by_cluster(ss.parse_kvstore_list(listing(entries)), ss.CACHE_PREFIX)


LOCAL = ss.global_services([SERVICE])


def test_report_without_peers_synced_and_missing_is_not_a_problem():
    report, problems = ss.sync_report('mesh-1', LOCAL, _cached(('cilium/cache/services/v1/mesh-2/probe/echo',
                                                                MESH2_ECHO)), ['mesh-2', 'mesh-3'])
    assert report['probe/echo']['mesh-2'] == {'state': 'synced', 'synced': True, 'backends': 2, 'expected': None,
                                              'ports': ['http 80/TCP'], 'reason': None}
    m3 = report['probe/echo']['mesh-3']
    assert m3['state'] == 'missing' and not m3['synced'] and m3['backends'] == 0
    assert 'cilium/cache/services/v1/mesh-3/probe/echo' in m3['reason'] and 'run this check with peers' in m3['reason']
    assert problems == []
    assert ss.summary(report) == ['probe/echo: mesh-2 2 backend(s) synced, mesh-3 0 backend(s) (missing)']


def test_report_with_peers_counts_match():
    peers = {'mesh-2': {'probe/echo': ss.cluster_service(MESH2_ECHO, 'k')}, 'mesh-3': {}}
    report, problems = ss.sync_report('mesh-1', LOCAL, _cached(('cilium/cache/services/v1/mesh-2/probe/echo',
                                                                MESH2_ECHO)), ['mesh-2', 'mesh-3'], peers)
    assert report['probe/echo']['mesh-2']['state'] == 'synced' and report['probe/echo']['mesh-2']['expected'] == 2
    m3 = report['probe/echo']['mesh-3']
    assert m3['state'] == 'not_exported' and m3['expected'] == 0 and 'mesh-3 exports no backends' in m3['reason']
    assert problems == []


def test_report_peer_scaled_to_zero_is_no_backends_with_the_reason():
    empty = dict(MESH2_ECHO, backends={})
    peers = {'mesh-2': {'probe/echo': ss.cluster_service(empty, 'k')}}
    report, problems = ss.sync_report('mesh-1', LOCAL, _cached(('cilium/cache/services/v1/mesh-2/probe/echo', empty)),
                                      ['mesh-2'], peers)
    e = report['probe/echo']['mesh-2']
    assert (e['state'], e['synced'], e['backends'], e['expected']) == ('no_backends', False, 0, 0)
    assert 'mesh-2 exports Service probe/echo with no backends' in e['reason']
    assert problems == []


def test_report_problems_not_synced_partial_and_ports():
    two = ss.cluster_service(MESH2_ECHO, 'k')
    # the peer exports 2 backends, nothing synced
    report, problems = ss.sync_report('mesh-1', LOCAL, {}, ['mesh-2'], {'mesh-2': {'probe/echo': two}})
    e = report['probe/echo']['mesh-2']
    assert e['state'] == 'not_synced' and e['expected'] == 2 and problems == [e['reason']]
    assert 'mesh-1: mesh-2 exports Service probe/echo with 2 backend(s), but the KVStoreMesh of mesh-1' in e['reason']
    # one of two synced
    one = dict(MESH2_ECHO, backends={"10.34.1.1": {"http": {"Protocol": "TCP", "Port": 8080}}})
    report, problems = ss.sync_report('mesh-1', LOCAL, _cached(('cilium/cache/services/v1/mesh-2/probe/echo', one)),
                                      ['mesh-2'], {'mesh-2': {'probe/echo': two}})
    e = report['probe/echo']['mesh-2']
    assert e['state'] == 'partial' and e['backends'] == 1 and 'has 1 of them' in e['reason'] and problems
    # other ports on the peer: reported even without peers
    port81 = dict(MESH2_ECHO, frontends={"10.102.138.109": {"http": {"Protocol": "TCP", "Port": 81}}})
    report, problems = ss.sync_report('mesh-1', LOCAL, _cached(('cilium/cache/services/v1/mesh-2/probe/echo',
                                                                port81)), ['mesh-2'])
    e = report['probe/echo']['mesh-2']
    assert e['state'] == 'ports_differ' and e['backends'] == 2
    assert 'Service probe/echo on mesh-2 has ports http 81/TCP, on mesh-1 http 80/TCP' in e['reason']
    assert problems == [e['reason']]


def test_peer_exports_accepts_a_result_or_its_exported():
    facts = ss.cluster_service(MESH2_ECHO, 'k')
    assert ss.peer_exports({'mesh-2': {'exported': {'probe/echo': facts}, 'cluster': 'mesh-2'}}) == {
        'mesh-2': {'probe/echo': facts}}
    assert ss.peer_exports({'mesh-2': {}}) == {'mesh-2': {}}
    with pytest.raises(ss.SyncParseError, match='field peers.mesh-3 must be the result of this check on mesh-3'):
        ss.peer_exports({'mesh-3': ['x']})


def test_merge_pod_reports_keeps_the_worst_and_names_the_pod():
    good = ss.sync_report('mesh-1', LOCAL, _cached(('cilium/cache/services/v1/mesh-2/probe/echo', MESH2_ECHO)),
                          ['mesh-2'], {'mesh-2': {'probe/echo': ss.cluster_service(MESH2_ECHO, 'k')}})
    exports = {'mesh-2': {'probe/echo': ss.cluster_service(MESH2_ECHO, 'k')}}
    bad = ss.sync_report('mesh-1', LOCAL, {}, ['mesh-2'], exports)
    assert ss.merge_pod_reports({'p1': good}) == good
    report, problems = ss.merge_pod_reports({'p1': good, 'p2': bad})
    assert report['probe/echo']['mesh-2']['state'] == 'not_synced'
    assert problems and problems[0].startswith('pod p2: mesh-1: mesh-2 exports')


# -- read_sync against a stub cluster and exec ------------------------------------
class _Items(object):
    def __init__(self, items):
        self.items = items


class StubCluster(object):
    name = 'ctx-1'

    def __init__(self, kvstoremesh=True, pods=('cm-b', 'cm-a')):
        self.kvstoremesh = kvstoremesh
        self.pods = pods
        self.calls = []
        self.core = self

    def read_config_map(self, ns, name, missing_ok=False):
        return {'data': {'cluster-name': 'mesh-1', 'cluster-id': '1'}}

    def read_deployment(self, ns, name, missing_ok=False):
        containers = [{'name': 'etcd'}] + ([{'name': 'kvstoremesh'}] if self.kvstoremesh else [])
        return {'spec': {'template': {'spec': {'containers': containers}}}}

    def read_secret(self, ns, name, missing_ok=False):
        return {'data': {'mesh-2': 'ZW5kcG9pbnRzOgo=', 'mesh-3': 'ZW5kcG9pbnRzOgo='}}

    def list_service_for_all_namespaces(self):
        return _Items([SERVICE])

    def list_namespaced_service(self, ns):
        return _Items([SERVICE] if ns == 'probe' else [])

    def list_namespaced_pod(self, ns, label_selector=None):
        return _Items([{'metadata': {'name': p, 'labels': {'k8s-app': 'clustermesh-apiserver'}},
                        'status': {'phase': 'Running'}} for p in self.pods])

    def call(self, action, func, *args, **kwargs):
        self.calls.append(action)
        StubCluster.last_calls = self.calls
        return func(*args, **kwargs)

    @staticmethod
    def to_dict(obj):
        return obj

    def list_items(self, action, func, *args, **kwargs):
        return self.call(action, func, *args, **kwargs).items


def test_read_sync_reads_every_pod_and_only_cilium_state():
    seen = []

    def exec_fn(pod, ns, container, command):
        seen.append((pod, container, ' '.join(command)))
        if command[-1] == ss.CACHE_PREFIX:
            return 0, CACHE if pod == 'cm-a' else '\n', ''
        return 0, listing([('cilium/state/services/v1/mesh-1/probe/echo', MESH1_ECHO)]), ''
    out = ss.read_sync(StubCluster(), exec_fn=exec_fn)
    assert out['cluster'] == 'mesh-1' and out['peers'] == ['mesh-2', 'mesh-3']
    assert out['exported']['probe/echo']['backends'] == 1
    assert out['synced'] == {'probe/echo': {'mesh-2': {'backends': 2, 'ports': ['http 80/TCP'],
                                                       'backend_ports': ['http 8080/TCP'], 'cluster_id': 2,
                                                       'shared': True}}}
    # the state of this cluster is read once, the KVStoreMesh cache of every pod
    assert seen == [('cm-a', 'kvstoremesh', 'clustermesh-apiserver shell -- kvstore/list cilium/cache/services/v1/'),
                    ('cm-a', 'kvstoremesh',
                     'clustermesh-apiserver shell -- kvstore/list cilium/state/services/v1/mesh-1/'),
                    ('cm-b', 'kvstoremesh', 'clustermesh-apiserver shell -- kvstore/list cilium/cache/services/v1/')]
    # pod cm-b has nothing from mesh-2: missing there (no peers given), not a problem
    assert out['report']['probe/echo']['mesh-2']['state'] == 'missing'
    assert out['report']['probe/echo']['mesh-2']['reason'].startswith('pod cm-b: ')
    assert out['in_sync'] is True and out['source']['pods'] == ['cm-a', 'cm-b']
    assert 'list Services in all namespaces' in StubCluster.last_calls
    # with what the peers export, the same is a problem
    out = ss.read_sync(StubCluster(), exec_fn=exec_fn, peers={'mesh-2': {'exported': {
        'probe/echo': ss.cluster_service(MESH2_ECHO, 'k')}}}, services=['probe/echo', 'probe/none', 'other/x'])
    assert out['in_sync'] is False and out['unknown_services'] == ['probe/none', 'other/x']
    assert out['report']['probe/echo']['mesh-2']['state'] == 'not_synced'
    # only the namespaces of the Services asked for are listed
    assert [c for c in StubCluster.last_calls if c.startswith('list Services')] == [
        'list Services in namespace other', 'list Services in namespace probe']


def test_read_sync_refusals_name_the_cluster_and_fix():
    with pytest.raises(ss.SyncReadError, match='cluster mesh-1: Deployment kube-system/clustermesh-apiserver has no '
                                               'container kvstoremesh.*kvstoremesh.enabled=true'):
        ss.read_sync(StubCluster(kvstoremesh=False), exec_fn=None)
    with pytest.raises(ss.SyncReadError, match='cluster mesh-1: no Running pod'):
        ss.read_sync(StubCluster(pods=()), exec_fn=None)

    def failing(pod, ns, container, command):
        return 1, '', 'Error: unknown command "shell"'
    with pytest.raises(ss.SyncReadError, match='cluster mesh-1: clustermesh-apiserver shell -- kvstore/list '
                                               'cilium/cache/services/v1/ in pod cm-a container kvstoremesh exited 1: '
                                               'Error: unknown command'):
        ss.read_sync(StubCluster(), exec_fn=failing)


def test_export_problems_name_a_global_shared_service_not_exported_here():
    local = ss.global_services([SERVICE, {'metadata': {'name': 'y', 'namespace': 'probe', 'annotations': {
        'service.cilium.io/global': 'true', 'service.cilium.io/shared': 'false'}}, 'spec': {'ports': [{'port': 1}]}}])
    assert ss.export_problems('mesh-1', local, {'probe/echo': {}}) == []
    out = ss.export_problems('mesh-1', local, {})
    assert out == ['mesh-1: Service probe/echo is global and shared here, but the clustermesh-apiserver of mesh-1 has '
                   'not exported it (key cilium/state/services/v1/mesh-1/probe/echo): its peers cannot sync it; check '
                   'the clustermesh-apiserver (clustermesh_status)']
