# -*- coding: utf-8 -*-
# Copyright: meshops.cilium contributors
# SPDX-License-Identifier: Apache-2.0
"""Traffic check: object rendering (global Service annotations), answer parsing, aggregation."""

import re
import subprocess

import pytest

from ansible_collections.meshops.cilium.plugins.module_utils import traffic

CLUSTERS = ['mesh-1', 'mesh-2', 'mesh-10']


def test_service_is_global_shared_and_identical_in_every_cluster():
    svcs = [traffic.server_objects('meshops-echo', 'ns', c)[2] for c in CLUSTERS]
    assert all(s == svcs[0] for s in svcs), 'the Service must have the same name, namespace and spec everywhere'
    s = svcs[0]
    assert (s['kind'], s['metadata']['name'], s['metadata']['namespace']) == ('Service', 'meshops-echo', 'ns')
    ann = s['metadata']['annotations']
    # cilium-facts section 8: exactly "true" (a string), shared by default, affinity one of three values
    assert ann['service.cilium.io/global'] == 'true'
    assert ann['service.cilium.io/shared'] == 'true'
    assert ann['service.cilium.io/affinity'] in ('none', 'local', 'remote')
    assert not [k for k in ann if k.startswith('io.cilium/')], 'old annotation forms must not be used'
    assert s['spec']['ports'][0]['targetPort'] == traffic.SERVER_PORT


def test_affinity_annotation_follows_the_option():
    s = traffic.render_service('e', 'ns', affinity='local')
    assert s['metadata']['annotations']['service.cilium.io/affinity'] == 'local'


def test_deployment_is_named_per_cluster_and_selected_by_the_service():
    ns, dep, svc = traffic.server_objects('meshops-echo', 'ns', 'mesh-2', image='example/agnhost:1')
    assert ns == {'apiVersion': 'v1', 'kind': 'Namespace',
                  'metadata': {'name': 'ns', 'labels': traffic.LABELS}}
    assert dep['metadata']['name'] == 'meshops-echo-mesh-2'
    pod_labels = dep['spec']['template']['metadata']['labels']
    for k, v in svc['spec']['selector'].items():
        assert pod_labels[k] == v
    for k, v in dep['spec']['selector']['matchLabels'].items():
        assert pod_labels[k] == v
    c = dep['spec']['template']['spec']['containers'][0]
    assert c['image'] == 'example/agnhost:1'
    assert c['args'] == ['netexec', '--http-port=%d' % traffic.SERVER_PORT]
    # the two clusters' Deployments differ only by name/labels: their pods are told apart by name
    other = traffic.render_deployment('meshops-echo', 'ns', 'mesh-1')
    assert other['metadata']['name'] != dep['metadata']['name']


def test_client_job_requests_the_service_and_never_retries():
    job = traffic.render_client_job('meshops-echo', 'ns', image='example/busybox', requests=7, timeout=3)
    spec = job['spec']
    assert spec['backoffLimit'] == 0 and spec['template']['spec']['restartPolicy'] == 'Never'
    script = spec['template']['spec']['containers'][0]['command'][2]
    assert 'http://meshops-echo.ns.svc:80/hostname' in script
    assert '-lt 7' in script and '-T 3' in script


def test_client_script_prints_one_line_per_request(tmp_path):
    """Run the real script with a stub wget: answers and failures each give exactly one line."""
    stub = tmp_path / 'wget'
    stub.write_text('#!/bin/sh\nif [ -f %s/fail ]; then rm %s/fail; echo "wget: download timed out" >&2; exit 1; fi\n'
                    'touch %s/fail; echo meshops-echo-mesh-2-6d4cf56db6-x7k2p\n' % ((tmp_path,) * 3))
    stub.chmod(0o755)
    script = traffic.client_script('meshops-echo', 'ns', 4, 2)
    out = subprocess.run(['sh', '-c', script], env={'PATH': '%s:/usr/bin:/bin' % tmp_path},
                         stdout=subprocess.PIPE, universal_newlines=True, check=True).stdout
    parsed = traffic.parse_answers(out, 'meshops-echo', CLUSTERS)
    assert parsed['requests'] == 4
    assert parsed['answers']['mesh-2'] == 2
    assert parsed['errors'] == 2
    assert parsed['error_samples'] == ['wget: download timed out']


@pytest.mark.parametrize('pod,cluster', [
    ('meshops-echo-mesh-1-6d4cf56db6-x7k2p', 'mesh-1'),
    ('meshops-echo-mesh-10-6d4cf56db6-x7k2p', 'mesh-10'),
    ('meshops-echo-mesh-2-7f9b8c7d5-abcde', 'mesh-2'),
    ('meshops-echo-mesh-3-6d4cf56db6-x7k2p', None),  # not an expected cluster
    ('other-mesh-1-6d4cf56db6-x7k2p', None),
    ('meshops-echo-mesh-1', None),
])
def test_cluster_of_pod(pod, cluster):
    assert traffic.cluster_of_pod(pod, 'meshops-echo', CLUSTERS) == cluster


LOG = '\n'.join([
    'meshops-answer meshops-echo-mesh-1-6d4cf56db6-x7k2p',
    'meshops-answer meshops-echo-mesh-10-55f8d9c6b-qq2rt',
    'meshops-answer meshops-echo-mesh-1-6d4cf56db6-x7k2p',
    'meshops-error wget: download timed out ',
    'meshops-answer stray-pod-abc',
    'some unrelated line',
    '',
])


def test_parse_and_summarize_names_the_missing_cluster():
    parsed = traffic.parse_answers(LOG, 'meshops-echo', CLUSTERS)
    assert parsed['requests'] == 5
    assert parsed['answers'] == {'mesh-1': 2, 'mesh-2': 0, 'mesh-10': 1}
    assert parsed['unknown'] == {'stray-pod-abc': 1}
    r = traffic.summarize('mesh-1', parsed, CLUSTERS)
    assert r['ok'] is False
    assert r['answered'] == ['mesh-1', 'mesh-10'] and r['missing'] == ['mesh-2']
    assert r['message'].startswith('mesh-1: 5 requests; answers from mesh-1 (2), mesh-10 (1); NO answer from mesh-2')
    assert '1 failed requests (wget: download timed out)' in r['message']
    assert 'stray-pod-abc' in r['message']


def test_summarize_all_answered():
    log = '\n'.join('meshops-answer meshops-echo-%s-6d4cf56db6-x7k2p' % c for c in CLUSTERS)
    r = traffic.summarize('mesh-2', traffic.parse_answers(log, 'meshops-echo', CLUSTERS), CLUSTERS)
    assert r['ok'] is True and r['missing'] == [] and 'NO answer' not in r['message']


def test_unreadable_log_means_no_cluster_answered_and_says_why():
    r = traffic.summarize('mesh-3', traffic.parse_answers(None, 'meshops-echo', CLUSTERS), CLUSTERS,
                          log_error='HTTP 500: no logs found')
    assert r['ok'] is False and r['missing'] == sorted(CLUSTERS) and r['requests'] == 0
    assert 'mesh-3: no answer could be read' in r['message']
    assert 'mesh-1, mesh-10, mesh-2' in r['message'] and 'no logs found' in r['message']


@pytest.mark.parametrize('kwargs,needle', [
    (dict(name='Echo'), 'name'),
    (dict(namespace='a_b'), 'namespace'),
    (dict(cluster='mesh-1', clusters=['mesh-2']), 'clusters must include this cluster (mesh-1)'),
    (dict(clusters=['mesh-1', 'Bad']), "clusters: 'Bad'"),
    (dict(name='x' * 41), 'shorten name'),
    (dict(affinity='nearest'), 'service.cilium.io/affinity'),
    (dict(requests=0), 'requests'),
])
def test_validate_names_the_field(kwargs, needle):
    args = dict(name='meshops-echo', namespace='ns', cluster='mesh-1', clusters=['mesh-1'])
    args.update(kwargs)
    errors = traffic.validate(**args)
    assert any(needle in e for e in errors), errors


def test_validate_accepts_defaults():
    assert traffic.validate(traffic.DEFAULT_NAME, traffic.DEFAULT_NAMESPACE, 'mesh-1', clusters=CLUSTERS + ['mesh-1']) == []


def test_subset_differs_ignores_server_defaults_but_not_changes():
    desired = traffic.render_service('e', 'ns')
    live = dict(desired, status={}, spec=dict(desired['spec'], clusterIP='10.0.0.1',
                                              ports=[dict(desired['spec']['ports'][0], nodePort=None)]))
    live['metadata'] = dict(desired['metadata'], uid='x', resourceVersion='1')
    assert traffic.subset_differs(desired, live) is False
    live['metadata'] = dict(live['metadata'], annotations={'service.cilium.io/global': 'false'})
    assert traffic.subset_differs(desired, live) is True


def test_names_are_dns_labels():
    for obj in traffic.server_objects('meshops-echo', 'meshops-traffic-check', 'mesh-1'):
        assert re.match(r'^[a-z0-9]([-a-z0-9]*[a-z0-9])?$', obj['metadata']['name'])


class _Obj(object):
    def __init__(self, name, phase=None):
        self.metadata = type('M', (), {'name': name, 'labels': {}})()
        self.status = type('S', (), {'phase': phase})()


class _ProvidedNamespaceCluster(object):
    """Just enough of Cluster for the provided-namespace functions: one Namespace holding the
    check's objects; records every call as (verb, kind, name)."""
    name = 'mesh-1'

    def __init__(self, namespace='meshops-traffic-check', exists=True, phase='Active'):
        self.calls = []
        self.namespace = _Obj(namespace, phase) if exists else None
        self.objects = {'Deployment': ['meshops-echo-mesh-1'], 'Service': ['meshops-echo'], 'Job': []}
        cluster = self

        def api(kind):
            def lister(ns, label_selector=None, **kw):
                cluster.calls.append(('list', kind, label_selector))
                assert label_selector == traffic.SELECTOR
                return type('L', (), {'items': [_Obj(n) for n in cluster.objects[kind]]})()

            def deleter(name, ns, **kw):
                cluster.calls.append(('delete', kind, name))
                cluster.objects[kind].remove(name)
            return lister, deleter

        def read_namespace(name, **kw):
            cluster.calls.append(('get', 'Namespace', name))
            return cluster.namespace
        self.core = type('Core', (), {})()
        self.core.read_namespace = read_namespace
        self.core.list_namespaced_service, self.core.delete_namespaced_service = api('Service')
        self.apps = type('Apps', (), {})()
        self.apps.list_namespaced_deployment, self.apps.delete_namespaced_deployment = api('Deployment')
        self.batch = type('Batch', (), {})()
        self.batch.list_namespaced_job, self.batch.delete_namespaced_job = api('Job')

    def call(self, action, func, *args, **kwargs):
        kwargs.pop('missing_ok', None)
        return func(*args, **kwargs)


@pytest.fixture
def provided(monkeypatch):
    c = _ProvidedNamespaceCluster()
    monkeypatch.setattr(traffic, '_apis', lambda cluster: cluster.batch)
    return c


def test_provided_namespace_removal_deletes_only_the_checks_objects(provided):
    gone = traffic.remove_objects(provided, 'meshops-traffic-check', check_mode=False, wait=True, timeout=5)
    assert gone == ['Deployment meshops-traffic-check/meshops-echo-mesh-1', 'Service meshops-traffic-check/meshops-echo']
    deleted = [c for c in provided.calls if c[0] == 'delete']
    assert deleted == [('delete', 'Deployment', 'meshops-echo-mesh-1'), ('delete', 'Service', 'meshops-echo')]
    assert not [c for c in provided.calls if c[1] == 'Namespace' and c[0] != 'get']  # the Namespace stays
    assert traffic.remove_objects(provided, 'meshops-traffic-check', False, True, 5) == []


def test_provided_namespace_removal_in_check_mode_deletes_nothing(provided):
    gone = traffic.remove_objects(provided, 'meshops-traffic-check', check_mode=True, wait=True, timeout=5)
    assert len(gone) == 2 and not [c for c in provided.calls if c[0] == 'delete']


def test_a_missing_provided_namespace_names_the_manifest(monkeypatch):
    c = _ProvidedNamespaceCluster(exists=False)
    why = traffic.provided_namespace(c, 'meshops-traffic-check')
    assert 'does not exist' in why and 'deploy/rbac/meshops-automation-traffic-check.yaml' in why
    assert traffic.provided_namespace(_ProvidedNamespaceCluster(), 'meshops-traffic-check') is None
    assert 'being deleted' in traffic.provided_namespace(_ProvidedNamespaceCluster(phase='Terminating'), 'x')
    monkeypatch.setattr(traffic, '_apis', lambda cluster: cluster.batch)
    assert traffic.remove_objects(c, 'meshops-traffic-check', False, True, 5) == []


def test_node_selector_places_server_and_client_pods():
    sel = {'meshops.io/datapath': 'real', 'kubernetes.io/os': 'linux'}
    dep = traffic.server_objects('meshops-echo', 'ns', 'mesh-1', node_selector=sel)[1]
    job = traffic.render_client_job('meshops-echo', 'ns', node_selector=sel)
    assert dep['spec']['template']['spec']['nodeSelector'] == sel
    assert job['spec']['template']['spec']['nodeSelector'] == sel
    # without one, the pods carry no nodeSelector at all (an existing Deployment is left as it is)
    assert 'nodeSelector' not in traffic.server_objects('meshops-echo', 'ns', 'mesh-1')[1]['spec']['template']['spec']
    assert 'nodeSelector' not in traffic.render_client_job('meshops-echo', 'ns')['spec']['template']['spec']


@pytest.mark.parametrize('selector, problem', [
    ({}, None),
    ({'meshops.io/datapath': 'real'}, None),
    ({'pool': ''}, None),
    ({'bad key!': 'x'}, "'bad key!' is not a label key"),
    ({'Example.COM/pool': 'x'}, "'Example.COM/pool' is not a label key"),
    ({'pool': True}, 'the value of pool must be a label value'),
    ({'pool': 'a' * 64}, 'the value of pool must be a label value'),
])
def test_node_selector_validation_names_the_entry(selector, problem):
    got = traffic.validate_node_selector(selector)
    if problem is None:
        assert got is None
    else:
        assert problem in got and got.startswith('node_selector: ')
