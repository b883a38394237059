# -*- coding: utf-8 -*-
# Copyright: meshops.cilium contributors
# SPDX-License-Identifier: Apache-2.0
"""A failure after a write returns changed: true, what was written and how to recover."""

import pytest

from module_runner import module_runner, set_module_args

from ansible_collections.meshops.cilium.plugins.module_utils.base import ClusterModule
from ansible_collections.meshops.cilium.plugins.module_utils.cluster import ClusterError
from ansible_collections.meshops.cilium.plugins.module_utils.helm import HelmError, Release
from ansible_collections.meshops.cilium.plugins.modules import cilium_install, clustermesh_connect, clustermesh_enable

NS = 'kube-system'


def release(revision, status='deployed', values=None):
    return Release({'name': 'cilium', 'namespace': NS, 'version': revision, 'info': {'status': status},
                    'chart': {'metadata': {'name': 'cilium', 'version': '1.18.0'}},
                    'config': values if values is not None else {
                        'cluster': {'name': 'mesh-1', 'id': 1}, 'ipam': {'mode': 'kubernetes'}}})


class FakeHelm(object):
    """Stands in for HelmRunner: ``upgrade`` stores a new revision in ``store`` (then may fail)."""

    def __init__(self, store, fail_with=None):
        self.store = store
        self.fail_with = fail_with
        self.calls = []

    def __call__(self, binary, params, module=None, version=None):
        self.version = version  # the helm version require_helm found, handed to the runner
        return self

    def upgrade(self, name, namespace, values, **kw):
        self.calls.append(values)
        prev = self.store[-1]
        self.store.append(release((prev.revision if prev else 0) + 1,
                                  status='failed' if self.fail_with else 'deployed', values=values))
        if self.fail_with:
            raise HelmError(self.fail_with, cluster='mesh-1')
        return ''


@pytest.fixture
def fleet(apiserver, monkeypatch):
    """A release store (list, newest last) behind read_release of the three helm modules."""
    store = [release(3)]
    for mod in (cilium_install, clustermesh_enable, clustermesh_connect):
        monkeypatch.setattr(mod, 'read_release', lambda cluster, ns, name: store[-1])
    monkeypatch.setattr(cilium_install, 'require_helm', lambda binary, module=None: ('/bin/helm', (3, 18, 0)))
    monkeypatch.setattr(clustermesh_enable, 'require_helm', lambda binary, module=None: ('/bin/helm', (3, 18, 0)))
    return apiserver, store


def test_install_wait_fails_after_upgrade_reports_the_revision_and_rollback(fleet, monkeypatch):
    apiserver, store = fleet
    helm = FakeHelm(store)
    monkeypatch.setattr(cilium_install, 'HelmRunner', helm)

    def not_ready(cluster, ns, comps, timeout=300):
        raise ClusterError('not ready after 5s in namespace kube-system: DaemonSet/cilium: 0/1 ready', cluster='mesh-1')
    monkeypatch.setattr(cilium_install, 'wait_ready', not_ready)
    ok, res = module_runner(monkeypatch, cilium_install.main)({
        'kubeconfig': apiserver.kubeconfig('mesh-1'), 'cluster_name': 'mesh-1', 'cluster_id': 1, 'ipam_mode': 'kubernetes',
        'values': {'debug': {'enabled': True}}, 'wait': True, 'wait_timeout': 5})
    assert not ok
    assert len(helm.calls) == 1 and helm.version == (3, 18, 0)  # the checked version reached the runner
    assert res['changed'] is True
    assert res['written'] == ['Helm release kube-system/cilium revision 4 (chart 1.18.0, status deployed)']
    assert 'mesh-1' in res['msg'] and 'not ready' in res['msg']
    assert 'revision 4' in res['msg']
    assert 'helm rollback cilium 3 --namespace kube-system' in res['msg']


@pytest.mark.parametrize('mode, apiserver_waited', [
    (None, [('Deployment', 'clustermesh-apiserver')]),
    ('address', [('Service', 'clustermesh-apiserver')]),
])
def test_install_waits_for_the_apiserver_or_only_its_address(fleet, monkeypatch, mode, apiserver_waited):
    apiserver, store = fleet
    monkeypatch.setattr(cilium_install, 'HelmRunner', FakeHelm(store))
    waited = []

    def ready(cluster, ns, comps, timeout=300):
        waited.extend(comps)
        return {}
    monkeypatch.setattr(cilium_install, 'wait_ready', ready)
    args = {'kubeconfig': apiserver.kubeconfig('mesh-1'), 'cluster_name': 'mesh-1', 'cluster_id': 1,
            'ipam_mode': 'kubernetes', 'wait': True,
            'clustermesh_apiserver': {'enabled': True, 'service_type': 'LoadBalancer'}}
    if mode:
        args['wait_clustermesh_apiserver'] = mode
    ok, res = module_runner(monkeypatch, cilium_install.main)(args)
    assert ok, res
    assert waited == [('DaemonSet', 'cilium'), ('Deployment', 'cilium-operator')] + apiserver_waited


def test_helm_fails_after_storing_a_revision(fleet, monkeypatch):
    apiserver, store = fleet
    monkeypatch.setattr(cilium_install, 'HelmRunner', FakeHelm(store, fail_with='helm failed to upgrade (exit 1)'))
    ok, res = module_runner(monkeypatch, cilium_install.main)({
        'kubeconfig': apiserver.kubeconfig('mesh-1'), 'cluster_name': 'mesh-1', 'cluster_id': 1, 'ipam_mode': 'kubernetes',
        'values': {'debug': {'enabled': True}}})
    assert not ok
    assert res['changed'] is True
    assert res['written'] == ['Helm release kube-system/cilium revision 4 (chart 1.18.0, status failed)']
    assert 'helm rollback cilium 3' in res['msg']


def test_failure_before_any_write_is_not_changed(fleet, monkeypatch):
    apiserver, store = fleet
    store[-1] = release(3, status='pending-upgrade')
    ok, res = module_runner(monkeypatch, cilium_install.main)({
        'kubeconfig': apiserver.kubeconfig('mesh-1'), 'cluster_name': 'mesh-1', 'cluster_id': 1})
    assert not ok
    assert not res.get('changed') and 'written' not in res


def test_helm_fails_without_storing_a_revision_is_not_changed(fleet, monkeypatch):
    apiserver, store = fleet

    class Refused(FakeHelm):
        def upgrade(self, name, namespace, values, **kw):
            raise HelmError('helm failed to upgrade (exit 1): rendered manifests contain an error', cluster='mesh-1')
    monkeypatch.setattr(cilium_install, 'HelmRunner', Refused(store))
    ok, res = module_runner(monkeypatch, cilium_install.main)({
        'kubeconfig': apiserver.kubeconfig('mesh-1'), 'cluster_name': 'mesh-1', 'cluster_id': 1, 'ipam_mode': 'kubernetes',
        'values': {'debug': {'enabled': True}}})
    assert not ok
    assert not res.get('changed') and 'written' not in res


def test_enable_wait_fails_after_upgrade(fleet, monkeypatch):
    apiserver, store = fleet
    fake = FakeHelm(store)
    monkeypatch.setattr(clustermesh_enable, 'HelmRunner', fake)

    def not_ready(cluster, ns, comps, timeout=300):
        raise ClusterError('not ready after 5s', cluster='mesh-1')
    monkeypatch.setattr(clustermesh_enable, 'wait_ready', not_ready)
    ok, res = module_runner(monkeypatch, clustermesh_enable.main)({
        'kubeconfig': apiserver.kubeconfig('mesh-1'), 'wait_timeout': 5})
    assert not ok and res['changed'] is True
    assert res['written'][0].startswith('Helm release kube-system/cilium revision 4')
    assert fake.version == (3, 18, 0)


def test_unexpected_error_after_a_write_still_reports_it(apiserver, monkeypatch):
    def body(m):
        m.wrote('Secret kube-system/x (created)', recover='delete it')
        raise KeyError('boom')

    def main():
        ClusterModule({}).run(body)
    ok, res = module_runner(monkeypatch, main)({'kubeconfig': apiserver.kubeconfig('mesh-1')})
    assert not ok
    assert 'KeyError' in res['msg'] and 'exception' in res
    assert res['changed'] is True and res['written'] == ['Secret kube-system/x (created)']
    assert res['msg'].endswith('This run had already written Secret kube-system/x (created). To recover: delete it')


def test_unexpected_error_before_a_write_is_raised(apiserver, monkeypatch):
    set_module_args(monkeypatch, {'kubeconfig': apiserver.kubeconfig('mesh-1')})
    m = ClusterModule({})
    with pytest.raises(KeyError):
        m.run(lambda m: {}['x'])


def test_traffic_check_fails_after_creating_its_objects(apiserver, monkeypatch):
    from ansible_collections.meshops.cilium.plugins.modules import clustermesh_traffic_check as mod
    created = [('Namespace meshops-traffic', 'create'), ('Deployment meshops-traffic/meshops-traffic-mesh-1', 'create')]
    monkeypatch.setattr(mod.traffic, 'ensure', lambda cluster, objects, check_mode: (created, {}, {}))
    monkeypatch.setattr(mod.traffic, 'wait_deployment', lambda *a, **kw: False)
    ok, res = module_runner(monkeypatch, mod.main)({
        'kubeconfig': apiserver.kubeconfig('mesh-1'), 'cluster_name': 'mesh-1', 'clusters': ['mesh-1'],
        'wait_timeout': 1})
    assert not ok and 'not Ready' in res['msg']
    assert res['changed'] is True
    assert res['written'] == ['Namespace meshops-traffic (create)',
                              'Deployment meshops-traffic/meshops-traffic-mesh-1 (create)']
    assert res['msg'].count('state=absent removes Namespace meshops-traffic') == 1


def test_an_unchosen_datapath_value_is_refused_before_any_write(fleet, monkeypatch):
    """The release's ipam.mode, not given again, would be dropped (the chart default differs): refused."""
    apiserver, store = fleet
    helm = FakeHelm(store)
    monkeypatch.setattr(cilium_install, 'HelmRunner', helm)
    args = {'kubeconfig': apiserver.kubeconfig('mesh-1'), 'cluster_name': 'mesh-1', 'cluster_id': 1,
            'values': {'debug': {'enabled': True}}}
    ok, res = module_runner(monkeypatch, cilium_install.main)(dict(args))
    assert not ok and helm.calls == [] and not res.get('changed')
    assert 'ipam.mode (dropped' in res['msg'] and 'existing_values' in res['msg']
    ok, res = module_runner(monkeypatch, cilium_install.main)(dict(args, existing_values='keep'))
    assert ok and helm.calls[-1]['ipam'] == {'mode': 'kubernetes'} and helm.calls[-1]['debug'] == {'enabled': True}
    assert [r['path'] for r in res['existing_values']] == ['ipam.mode']
