# -*- coding: utf-8 -*-
# Copyright: meshops.cilium contributors
# SPDX-License-Identifier: Apache-2.0
"""clustermesh_status against a local fake API server; exec answered from recorded JSON,
or by the real kubernetes.stream transport (which the fake server refuses)."""

import base64
import json
import os

import pytest

from ansible.module_utils.common.warnings import get_warning_messages

from module_runner import module_runner

from ansible_collections.meshops.cilium.plugins.module_utils import status
from ansible_collections.meshops.cilium.plugins.modules import clustermesh_status

NS = '/api/v1/namespaces/kube-system'
FIXTURES = os.path.join(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))),
                        'fixtures', 'status')
ETCD = 'endpoints:\n- https://%s.mesh.cilium.io:2379\n'


def fixture(name):
    with open(os.path.join(FIXTURES, name)) as f:
        return f.read()


@pytest.fixture
def run_module(monkeypatch):
    return module_runner(monkeypatch, clustermesh_status.main)


def fake_exec(monkeypatch, answers, calls=None):
    """answers: pod -> (rc, stdout) or an exception; recorded in calls."""
    def factory(cluster, timeout):
        def run(pod, namespace, container, command):
            if calls is not None:
                calls.append((pod, container, command[0]))
            a = answers[pod]
            if isinstance(a, Exception):
                raise a
            if callable(a):
                return a(command)
            return a[0], a[1], ''
        return run
    monkeypatch.setattr(status, 'kubernetes_exec', factory)


def setup_cluster(srv, pods=('cilium-a', 'cilium-b'), ready=True, kvstoremesh=False):
    containers = [{'name': 'apiserver', 'image': 'x'}]
    if kvstoremesh:
        containers.append({'name': 'kvstoremesh', 'image': 'x'})
    srv.routes['/apis/apps/v1/namespaces/kube-system/deployments/clustermesh-apiserver'] = (200, {
        'kind': 'Deployment', 'apiVersion': 'apps/v1',
        'metadata': {'name': 'clustermesh-apiserver', 'generation': 1},
        'spec': {'replicas': 1, 'selector': {'matchLabels': {'k8s-app': 'clustermesh-apiserver'}},
                 'template': {'spec': {'containers': containers}}},
        'status': {'observedGeneration': 1, 'replicas': 1, 'readyReplicas': 1 if ready else 0,
                   'updatedReplicas': 1}})
    srv.routes[NS + '/configmaps/cilium-config'] = (200, {
        'kind': 'ConfigMap', 'apiVersion': 'v1', 'metadata': {'name': 'cilium-config'},
        'data': {'cluster-name': 'mesh-1', 'cluster-id': '1'}})
    srv.routes[NS + '/secrets/cilium-clustermesh'] = (200, {
        'kind': 'Secret', 'apiVersion': 'v1', 'metadata': {'name': 'cilium-clustermesh'},
        'data': dict((k, base64.b64encode((ETCD % k).encode()).decode()) for k in ('mesh-2', 'mesh-3'))})
    srv.routes[NS + '/pods'] = (200, {'kind': 'PodList', 'apiVersion': 'v1', 'metadata': {}, 'items': [
        {'metadata': {'name': p, 'labels': {'k8s-app': 'cilium'}}, 'spec': {'containers': []},
         'status': {'phase': 'Running'}} for p in pods]})


def args(srv, **kw):
    a = {'kubeconfig': srv.kubeconfig('mesh-1'), 'context': 'mesh-1'}
    a.update(kw)
    return a


def test_all_connected(apiserver, run_module, monkeypatch):
    setup_cluster(apiserver)
    calls = []
    ok_json = (0, fixture('agent-connected.json'))
    fake_exec(monkeypatch, {'cilium-a': ok_json, 'cilium-b': ok_json}, calls)
    ok, res = run_module(args(apiserver))
    assert ok, res
    assert res['ready'] is True and res['not_ready'] == [] and res['changed'] is False
    assert res['expected_peers'] == ['mesh-2', 'mesh-3'] and res['local_name'] == 'mesh-1'
    assert res['agents']['peers']['mesh-2']['summary'] == '2/2 configured, 2/2 connected, 2/2 ready'
    assert sorted(calls) == [('cilium-a', 'cilium-agent', 'cilium-dbg'), ('cilium-b', 'cilium-agent', 'cilium-dbg')]
    assert res['kvstoremesh'] == {'skipped': True} and res['verified']['agents'] is True
    assert 'endpoints:' not in json.dumps(res) and 'mesh.cilium.io' not in json.dumps(res)


def test_fallback_to_cilium_status(apiserver, run_module, monkeypatch):
    setup_cluster(apiserver, pods=('cilium-old',))

    def old_agent(command):
        if command[0] == 'cilium-dbg':
            return 126, '', 'exec: "cilium-dbg": executable file not found in $PATH'
        return 0, fixture('agent-connected.json'), ''
    calls = []
    fake_exec(monkeypatch, {'cilium-old': old_agent}, calls)
    ok, res = run_module(args(apiserver))
    assert ok and res['ready'], res
    assert [c[2] for c in calls] == ['cilium-dbg', 'cilium']


def test_partial_not_ready_names_pods_and_wait_fails(apiserver, run_module, monkeypatch):
    setup_cluster(apiserver)
    fake_exec(monkeypatch, {'cilium-a': (0, fixture('agent-connected.json')),
                            'cilium-b': (0, fixture('agent-failures.json'))})
    ok, res = run_module(args(apiserver))
    assert ok and res['ready'] is False
    assert res['agents']['peers']['mesh-2']['summary'] == '2/2 configured, 1/2 connected, 1/2 ready'
    assert any('peer mesh-2 not ready on agent cilium-b: not connected' in r for r in res['not_ready'])
    ok, res = run_module(args(apiserver, wait=True, wait_timeout=1, wait_interval=1))
    assert not ok
    assert res['msg'].startswith('mesh-1: ClusterMesh not ready after 1s')
    assert 'peer mesh-2 not ready on agent cilium-b' in res['msg']
    assert res['msg'].endswith('; causes and fixes: docs/troubleshooting.md')


def test_exec_unsupported_reports_unavailable_and_control_plane(apiserver, run_module, monkeypatch):
    """The real kubernetes.stream transport against a server that cannot exec: no traceback."""
    setup_cluster(apiserver)
    ok, res = run_module(args(apiserver, exec_timeout=5))
    assert ok, res
    assert res['agents']['available'] == 0 and res['agents']['unverifiable'] is True
    assert sorted(res['agents']['unavailable']) == ['cilium-a', 'cilium-b']
    reason = res['agents']['unavailable']['cilium-a']
    assert 'exec into pod cilium-a container cilium-agent' in reason and 'Traceback' not in reason
    assert res['ready'] is True and res['verified'] == {'apiserver': True, 'agents': False, 'kvstoremesh': False}
    assert any('NOT verified' in w for w in get_warning_messages())
    ok, res = run_module(args(apiserver, exec_timeout=5, agent_status='require'))
    assert ok and res['ready'] is False
    assert 'mesh-1: agent cilium-a: status unavailable' in res['not_ready'][0]


def test_skip_and_apiserver_not_ready(apiserver, run_module, monkeypatch):
    setup_cluster(apiserver, ready=False)
    calls = []
    fake_exec(monkeypatch, {}, calls)
    ok, res = run_module(args(apiserver, agent_status='skip'))
    assert ok and calls == []
    assert res['agents'] == {'skipped': True} and res['ready'] is False
    assert res['not_ready'] == ['mesh-1: Deployment clustermesh-apiserver not Ready (0/1 ready, 1 updated)']


DEPLOYMENT = '/apis/apps/v1/namespaces/kube-system/deployments/clustermesh-apiserver'


class RollingOut(dict):
    """Routes whose clustermesh-apiserver Deployment is not Ready for its first ``rolling`` reads."""

    def __init__(self, routes, rolling):
        super().__init__(routes)
        self.rolling, self.reads = rolling, 0

    def get(self, path, default=None):
        code, body = dict.get(self, path, default)
        if path == DEPLOYMENT:
            self.reads += 1
            if self.reads <= self.rolling:
                body = json.loads(json.dumps(body))
                body['status'].update(readyReplicas=0, updatedReplicas=0)
        return code, body


def test_a_wait_reads_the_deployment_alone_while_it_rolls_out(apiserver, run_module, monkeypatch):
    """No status command runs in the pods until Deployment clustermesh-apiserver is Ready: then one full read."""
    setup_cluster(apiserver)
    apiserver.routes = RollingOut(apiserver.routes, rolling=3)
    monkeypatch.setattr(status, 'ROLLOUT_PAUSE', 0.01)
    calls = []
    ok_json = (0, fixture('agent-connected.json'))
    fake_exec(monkeypatch, {'cilium-a': ok_json, 'cilium-b': ok_json}, calls)
    ok, res = run_module(args(apiserver, wait=True, wait_timeout=30))
    assert ok and res['ready'] is True, res
    # 3 reads while not Ready, the one that found it Ready, the full read's own
    assert apiserver.routes.reads == 5
    assert len(calls) == 2 and res['attempts'] == 1
    # without wait: one read, as it comes
    apiserver.routes.rolling, apiserver.routes.reads = 1, 0
    ok, res = run_module(args(apiserver))
    assert ok and res['ready'] is False and apiserver.routes.reads == 1


def test_a_rollout_that_never_ends_fails_the_wait_with_a_full_read(apiserver, run_module, monkeypatch):
    setup_cluster(apiserver, ready=False)
    monkeypatch.setattr(status, 'ROLLOUT_PAUSE', 0.05)
    calls = []
    fake_exec(monkeypatch, {'cilium-a': (0, fixture('agent-connected.json')),
                            'cilium-b': (0, fixture('agent-connected.json'))}, calls)
    ok, res = run_module(args(apiserver, wait=True, wait_timeout=1))
    assert not ok
    assert 'Deployment clustermesh-apiserver not Ready (0/1 ready, 1 updated)' in res['msg']
    # the status commands ran once, at the deadline, for the reasons
    assert len(calls) == 2
    deployment_reads = [r for r in apiserver.requests if r[0].split('?')[0] == DEPLOYMENT]
    assert len(deployment_reads) > 5


def test_await_apiserver_rollout_stops_when_ready_missing_or_late():
    class Cluster:
        def __init__(self, answers):
            self.answers = iter(answers)

        def read_deployment(self, namespace, name, missing_ok=False):
            assert (namespace, name, missing_ok) == ('ns', 'clustermesh-apiserver', True)
            return next(self.answers)
    rolling = {'metadata': {'generation': 2}, 'spec': {'replicas': 1},
               'status': {'observedGeneration': 1, 'readyReplicas': 1, 'updatedReplicas': 1}}
    ready = {'metadata': {'generation': 2}, 'spec': {'replicas': 1},
             'status': {'observedGeneration': 2, 'readyReplicas': 1, 'updatedReplicas': 1}}
    now, slept = [0.0], []

    def sleep(s):
        slept.append(s)
        now[0] += s

    def clock():
        return now[0]
    assert status.await_apiserver_rollout(Cluster([rolling, rolling, ready]), 'ns', 60, sleep, clock) == 3
    assert slept == [status.ROLLOUT_PAUSE] * 2
    assert status.await_apiserver_rollout(Cluster([None]), 'ns', 60, sleep, clock) == 1
    now[0], slept[:] = 0.0, []
    assert status.await_apiserver_rollout(Cluster([rolling] * 10), 'ns', 2, sleep, clock) == 5
    assert now[0] <= 2


def test_parallel_must_be_positive(apiserver, run_module):
    ok, res = run_module(args(apiserver, parallel=0))
    assert not ok and 'parallel' in res['msg']


def _with_metrics_pods(srv, pods):
    """Add clustermesh-apiserver pods (name -> phase) declaring the chart's metrics ports."""
    items = srv.routes[NS + '/pods'][1]['items']
    for name, phase in pods.items():
        items.append({'metadata': {'name': name, 'labels': {'k8s-app': 'clustermesh-apiserver'}},
                      'spec': {'containers': [
                          {'name': 'apiserver', 'ports': [{'name': 'apiserv-metrics', 'containerPort': 9962}]},
                          {'name': 'kvstoremesh', 'ports': [{'name': 'kvmesh-metrics', 'containerPort': 9964}]}]},
                      'status': {'phase': phase}})


def test_metrics_are_read_once_through_the_pod_proxy(apiserver, run_module, monkeypatch):
    from test_metrics import apiserver_page, kvstoremesh_page
    setup_cluster(apiserver)
    _with_metrics_pods(apiserver, {'cm-a': 'Running', 'cm-b': 'Pending'})
    apiserver.routes[NS + '/pods/cm-a:9962/proxy/metrics'] = (200, apiserver_page())
    apiserver.routes[NS + '/pods/cm-a:9964/proxy/metrics'] = (200, kvstoremesh_page(
        {'mesh-2': True, 'mesh-3': False}, pending=[('mesh-3', 'nodes/v1')]))
    fake_exec(monkeypatch, {'cilium-a': (0, fixture('agent-connected.json')),
                            'cilium-b': (0, fixture('agent-connected.json'))})
    ok, res = run_module(args(apiserver, agent_status='skip'))
    assert ok, res
    m = res['metrics']
    assert sorted(m['pods']) == ['cm-a'], m
    assert m['unavailable'] == {'cm-b': 'pod is Pending'}
    assert m['peers']['mesh-2']['ready'] is True and m['peers']['mesh-3']['ready'] is False
    assert m['peers']['mesh-3']['pending'] == ['read nodes/v1', 'write nodes/v1']
    assert m['report'].startswith('mesh-1: Cilium metrics: cm-a: local state synced to its kvstore')
    assert 'mesh-3 NOT ready but NOT synced (read nodes/v1, write nodes/v1)' in m['report']
    assert any('Cilium metrics not read from cm-b (pod is Pending)' in w for w in get_warning_messages())
    proxied = [r[0].replace('%3A', ':') for r in apiserver.requests if '/proxy/' in r[0]]
    assert sorted(proxied) == [NS + '/pods/cm-a:9962/proxy/metrics', NS + '/pods/cm-a:9964/proxy/metrics']
    # metrics say nothing of readiness: that is the status' (the agents were skipped here)
    assert res['ready'] is True


def test_metrics_forbidden_name_the_permission_and_skip_reads_nothing(apiserver, run_module, monkeypatch):
    setup_cluster(apiserver)
    _with_metrics_pods(apiserver, {'cm-a': 'Running'})
    apiserver.routes[NS + '/pods/cm-a:9962/proxy/metrics'] = (403, {
        'kind': 'Status', 'apiVersion': 'v1', 'status': 'Failure', 'reason': 'Forbidden', 'code': 403,
        'message': 'pods "cm-a" is forbidden: User "u" cannot get resource "pods/proxy"'})
    fake_exec(monkeypatch, {})
    ok, res = run_module(args(apiserver, agent_status='skip'))
    assert ok, res
    assert res['metrics']['pods'] == {}
    why = res['metrics']['unavailable']['cm-a']
    assert 'pods/proxy' in why and 'meshops-automation-status-exec.yaml' in why and 'metrics=skip' in why
    assert res['metrics']['report'].startswith('mesh-1: Cilium metrics not read (cm-a: ')
    before = len(apiserver.requests)
    ok, res = run_module(args(apiserver, agent_status='skip', metrics='skip'))
    assert ok and res['metrics'] is None
    assert not [r for r in apiserver.requests[before:] if '/pods' in r[0]]


class StubCluster(object):
    """Enough of module_utils.cluster.Cluster for status.read_status (pods by selector)."""

    name = 'stub'

    def __init__(self, pods):
        self.pods = pods
        self.lists = lists = []

        class Core(object):
            def list_namespaced_pod(self, namespace, label_selector=None):  # pylint: disable=unused-argument
                # gather lists the agents and KVStoreMesh in one request: 'k8s-app in (a,b)'
                assert label_selector.startswith('k8s-app in (') and label_selector.endswith(')'), label_selector
                apps = label_selector[len('k8s-app in ('):-1].split(',')
                lists.append(apps)

                class R(object):
                    items = [p for p in pods if p['metadata']['labels']['k8s-app'] in apps]
                return R()
        self.core = Core()

    def call(self, action, func, *a, **kw):
        return func(*a, **kw)

    def to_dict(self, obj):
        return obj

    def list_items(self, action, func, *a, **kw):
        return func(*a, **kw).items

    def read_deployment(self, ns, name, missing_ok=False):
        return {'metadata': {'generation': 1}, 'spec': {'replicas': 1, 'template': {'spec': {'containers': [
            {'name': 'apiserver'}, {'name': 'kvstoremesh'}]}}},
            'status': {'observedGeneration': 1, 'readyReplicas': 1, 'updatedReplicas': 1}}

    def read_config_map(self, ns, name, missing_ok=False):
        return {'data': {'cluster-name': 'mesh-1'}}

    def read_secret(self, ns, name, missing_ok=False):
        return {'data': dict((k, base64.b64encode((ETCD % k).encode()).decode()) for k in ('mesh-2', 'mesh-3'))}


def pod(name, app, phase='Running'):
    return {'metadata': {'name': name, 'labels': {'k8s-app': app}}, 'status': {'phase': phase}}


def test_gather_kvstoremesh_bounded_and_pending_pods():
    import threading
    import time
    cl = StubCluster([pod('cilium-%d' % i, 'cilium') for i in range(6)] +
                     [pod('cilium-pending', 'cilium', 'Pending'), pod('cm-0', 'clustermesh-apiserver')])
    lock = threading.Lock()
    state = {'now': 0, 'max': 0, 'calls': []}

    def exec_fn(p, ns, container, command):
        with lock:
            state['now'] += 1
            state['max'] = max(state['max'], state['now'])
            state['calls'].append((p, container, command[0]))
        time.sleep(0.05)
        with lock:
            state['now'] -= 1
        if container == 'kvstoremesh':
            return 0, fixture('kvstoremesh-connected.json'), ''
        return 0, fixture('agent-connected.json'), ''
    st = status.read_status(cl, parallel=2, exec_fn=exec_fn)
    assert cl.lists == [['cilium', 'clustermesh-apiserver']]
    assert state['max'] <= 2
    # the name on the image's PATH first (the full path only when that fails)
    assert [c for c in state['calls'] if c[0] == 'cm-0'][0] == ('cm-0', 'kvstoremesh', 'clustermesh-apiserver')
    assert st['kvstoremesh_enabled'] is True
    assert st['agents']['unavailable'] == {'cilium-pending': 'pod is Pending'}
    assert st['agents']['peers']['mesh-3']['summary'] == '6/6 configured, 6/6 connected, 6/6 ready'
    assert st['kvstoremesh']['peers']['mesh-3']['summary'] == '1/1 configured, 0/1 connected, 0/1 ready'
    assert not st['ready']
    assert any('peer mesh-3 not ready on KVStoreMesh cm-0' in r for r in st['not_ready'])
    assert any('agent cilium-pending: status unavailable: pod is Pending' in r for r in st['not_ready'])


def test_empty_output_from_both_commands_names_both():
    """What kwok's simulated exec gives on the fleet: success, no output."""
    res = status.read_pod_status(lambda p, ns, c, cmd: (0, '', ''), 'cilium-a', 'kube-system', 'cilium-agent',
                                 status.AGENT_COMMANDS, status.parse_agent_status)
    assert res == {'error': 'cilium-dbg: empty output; cilium: empty output'}


def _unreachable(context):
    return {'apiVersion': 'v1', 'kind': 'Config', 'current-context': context,
            'clusters': [{'name': context, 'cluster': {'server': 'https://127.0.0.1:1'}}],
            'users': [{'name': context, 'user': {'token': 'token-of-%s-never-shown' % context}}],
            'contexts': [{'name': context, 'context': {'cluster': context, 'user': context}}]}


def test_members_are_read_side_by_side_each_with_its_own_connection(apiserver, run_module, monkeypatch):
    setup_cluster(apiserver)
    ok_json = (0, fixture('agent-connected.json'))
    fake_exec(monkeypatch, {'cilium-a': ok_json, 'cilium-b': ok_json})
    members = [{'name': 'mesh-1', 'kubeconfig': apiserver.kubeconfig('mesh-1', token='tok-one-never-shown')},
               {'name': 'mesh-2', 'kubeconfig': apiserver.kubeconfig('ctx-two', token='tok-two-never-shown'),
                'context': 'ctx-two'}]
    before = len(apiserver.requests)
    ok, res = run_module({'members': members, 'metrics': 'skip'})
    assert ok, res
    assert res['changed'] is False and res['ready'] is True and res['not_ready'] == []
    assert sorted(res['members']) == ['mesh-1', 'mesh-2']
    for name in ('mesh-1', 'mesh-2'):
        r = res['members'][name]
        assert r['cluster'] == name and r['ready'] is True and r['expected_peers'] == ['mesh-2', 'mesh-3'], r
        assert r['agents']['peers']['mesh-2']['summary'] == '2/2 configured, 2/2 connected, 2/2 ready'
    # each member's own token reached the server; none is in the result
    tokens = [auth for _path, auth in apiserver.requests[before:]]
    assert 'Bearer tok-one-never-shown' in tokens and 'Bearer tok-two-never-shown' in tokens, set(tokens)
    assert 'never-shown' not in json.dumps(res)


def test_an_unreachable_member_is_a_finding_and_wait_fails_naming_it(apiserver, run_module, monkeypatch):
    setup_cluster(apiserver)
    ok_json = (0, fixture('agent-connected.json'))
    fake_exec(monkeypatch, {'cilium-a': ok_json, 'cilium-b': ok_json})
    members = [{'name': 'mesh-1', 'kubeconfig': apiserver.kubeconfig('mesh-1')},
               {'name': 'mesh-9', 'kubeconfig': _unreachable('mesh-9')}]
    ok, res = run_module({'members': members, 'metrics': 'skip', 'connect_timeout': 2, 'request_timeout': 2})
    assert ok, res
    assert res['ready'] is False and res['members']['mesh-1']['ready'] is True
    assert res['members']['mesh-9']['failed'] is True and res['members']['mesh-9']['msg'].startswith('mesh-9: ')
    assert len(res['not_ready']) == 1 and res['not_ready'][0].startswith('mesh-9: '), res['not_ready']
    assert 'never-shown' not in json.dumps(res)
    ok, res = run_module({'members': members, 'metrics': 'skip', 'connect_timeout': 2, 'request_timeout': 2,
                          'wait': True, 'wait_timeout': 1, 'wait_interval': 1})
    assert not ok and 'ClusterMesh not ready after 1s: mesh-9: ' in res['msg'], res['msg']
    assert 'never-shown' not in json.dumps(res)


def test_a_member_whose_context_is_missing_fails_alone_and_the_others_are_read(apiserver, run_module, monkeypatch):
    setup_cluster(apiserver)
    ok_json = (0, fixture('agent-connected.json'))
    fake_exec(monkeypatch, {'cilium-a': ok_json, 'cilium-b': ok_json})
    members = [{'name': 'mesh-1', 'kubeconfig': apiserver.kubeconfig('mesh-1')},
               {'name': 'inventory_host.2', 'kubeconfig': apiserver.kubeconfig('mesh-2'), 'context': 'nope'}]
    ok, res = run_module({'members': members, 'metrics': 'skip'})
    assert ok, res
    assert res['ready'] is False and res['members']['mesh-1']['ready'] is True
    failed = res['members']['inventory_host.2']
    assert failed['failed'] is True and failed['msg'].startswith('inventory_host.2: ') and '"nope"' in failed['msg']
    assert res['not_ready'] == [failed['msg']]


@pytest.mark.parametrize('members, text', [
    ([{'name': 'mesh-1'}, {'name': 'mesh-1'}], "'mesh-1', 'mesh-1'"),
    ([{'name': ' '}], "' '"),
    ([{'name': 'mesh-1'}, {'name': 'mesh-2\n'}], "'mesh-2\\n'"),
])
def test_bad_members_are_refused_before_any_request(apiserver, run_module, members, text):
    before = len(apiserver.requests)
    for m in members:
        m['kubeconfig'] = apiserver.kubeconfig('mesh-1')
    ok, res = run_module({'members': members})
    assert not ok and res['msg'].count('members: each entry needs a unique name') == 1 and text in res['msg'], res
    assert len(apiserver.requests) == before
