# -*- coding: utf-8 -*-
# Copyright: meshops.cilium contributors
# SPDX-License-Identifier: Apache-2.0
"""clustermesh_traffic_check with create_namespace=false (the Namespace comes with the check's
Role, deploy/rbac/meshops-automation-traffic-check.yaml) against a local fake API server."""

import pytest

from ansible_collections.meshops.cilium.plugins.modules import clustermesh_traffic_check

from module_runner import module_runner

NS = 'meshops-traffic-check'


@pytest.fixture
def run_module(monkeypatch):
    return module_runner(monkeypatch, clustermesh_traffic_check.main)


def args(srv, **kw):
    a = {'kubeconfig': srv.kubeconfig('mesh-1'), 'context': 'mesh-1', 'create_namespace': False}
    a.update(kw)
    return a


# the smallest specs the kubernetes client accepts
_SPECS = {'DeploymentList': {'selector': {}, 'template': {}}, 'ServiceList': {},
          'JobList': {'template': {}}}


def _lists(srv, deployments=(), services=(), jobs=()):
    for path, kind, names in (('/apis/apps/v1/namespaces/%s/deployments' % NS, 'DeploymentList', deployments),
                              ('/api/v1/namespaces/%s/services' % NS, 'ServiceList', services),
                              ('/apis/batch/v1/namespaces/%s/jobs' % NS, 'JobList', jobs)):
        srv.routes[path] = (200, {'kind': kind, 'apiVersion': 'v1', 'metadata': {},
                                  'items': [{'metadata': {'name': n}, 'spec': _SPECS[kind]} for n in names]})


def _namespace(srv):
    srv.routes['/api/v1/namespaces/' + NS] = (200, {'kind': 'Namespace', 'apiVersion': 'v1',
                                                    'metadata': {'name': NS}, 'status': {'phase': 'Active'}})


def test_a_missing_provided_namespace_fails_before_any_write(apiserver, run_module):
    ok, res = run_module(args(apiserver, state='present'))
    assert not ok and 'Namespace meshops-traffic-check does not exist' in res['msg'], res
    assert 'meshops-automation-traffic-check.yaml' in res['msg']
    assert apiserver.writes == []


def test_present_creates_only_the_objects_in_the_provided_namespace(apiserver, run_module):
    _namespace(apiserver)
    ok, res = run_module(args(apiserver, state='present'))
    assert ok and res['changed'], res
    assert [w[:2] for w in apiserver.writes] == [
        ('POST', '/apis/apps/v1/namespaces/%s/deployments' % NS), ('POST', '/api/v1/namespaces/%s/services' % NS)]
    assert [c['object'] for c in res['changes']] == ['Deployment %s/meshops-echo-mesh-1' % NS,
                                                     'Service %s/meshops-echo' % NS]


def test_absent_deletes_the_checks_objects_never_the_namespace(apiserver, run_module):
    _namespace(apiserver)
    _lists(apiserver, deployments=['meshops-echo-mesh-1'], services=['meshops-echo'])
    ok, res = run_module(args(apiserver, state='absent', wait_timeout=1))
    # the fake API server does not remove what was deleted, so the wait times out: the deletes
    # were sent, and none of them was for the Namespace
    assert not ok and 'still being deleted' in res['msg'], res
    assert sorted(w[:2] for w in apiserver.writes) == [
        ('DELETE', '/api/v1/namespaces/%s/services/meshops-echo' % NS),
        ('DELETE', '/apis/apps/v1/namespaces/%s/deployments/meshops-echo-mesh-1' % NS)]


def test_absent_with_nothing_left_changes_nothing(apiserver, run_module):
    _namespace(apiserver)
    _lists(apiserver)
    ok, res = run_module(args(apiserver, state='absent'))
    assert ok and res['changed'] is False and res['message'] == 'mesh-1: nothing to remove', res
    assert apiserver.writes == []
