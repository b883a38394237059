# -*- coding: utf-8 -*-
# Copyright: meshops.cilium contributors
# SPDX-License-Identifier: Apache-2.0
"""clustermesh_connect against a local fake API server; helm upgrade recorded, not run."""

import base64
import copy
import gzip
import json

import pytest

from k8s_fakes import make_ca, pem_cert
from module_runner import module_runner

from ansible_collections.meshops.cilium.plugins.module_utils import helm
from ansible_collections.meshops.cilium.plugins.module_utils.info import ca_fingerprint
from ansible_collections.meshops.cilium.plugins.modules import clustermesh_connect

NS = '/api/v1/namespaces/kube-system'
CA_KEY, CA = make_ca('Cilium CA')
OTHER_KEY, OTHER_CA = make_ca('Other CA')
FP = ca_fingerprint(pem_cert(CA))
OTHER_FP = ca_fingerprint(pem_cert(OTHER_CA))


@pytest.fixture
def upgrades(monkeypatch):
    calls = []

    def upgrade(self, release, namespace, values, **kw):
        # the flag helm's wait would get: from the version require_helm found (the runner never
        # runs /usr/bin/helm to ask for it)
        calls.append({'release': release, 'namespace': namespace, 'values': copy.deepcopy(values), 'kw': kw,
                      'wait_args': self.dialect.wait_args()})
        return ''
    monkeypatch.setattr(helm.HelmRunner, 'upgrade', upgrade)
    monkeypatch.setattr(clustermesh_connect, 'require_helm', lambda path: ('/usr/bin/helm', (3, 20, 2)))
    return calls


@pytest.fixture
def run_module(monkeypatch):
    return module_runner(monkeypatch, clustermesh_connect.main)


def install(srv, values=None, chart_version='1.19.2', name='mesh-1', cid=1, mcc=None, ca=CA, status='deployed'):
    values = values if values is not None else {
        'cluster': {'name': name, 'id': cid}, 'ipam': {'mode': 'kubernetes'},
        'clustermesh': {'useAPIServer': True, 'apiserver': {'service': {'type': 'LoadBalancer'}}}}
    rel = {'name': 'cilium', 'namespace': 'kube-system', 'version': 4, 'info': {'status': status},
           'chart': {'metadata': {'name': 'cilium', 'version': chart_version}}, 'config': values}
    blob = base64.b64encode(base64.b64encode(gzip.compress(json.dumps(rel).encode()))).decode()
    data = {'cluster-name': name, 'cluster-id': str(cid)}
    if mcc:
        data['max-connected-clusters'] = str(mcc)
    srv.routes[NS + '/configmaps/cilium-config'] = (200, {'kind': 'ConfigMap', 'apiVersion': 'v1',
                                                          'metadata': {'name': 'cilium-config'}, 'data': data})
    labels = {'owner': 'helm', 'name': 'cilium', 'version': '4'}
    srv.routes[NS + '/secrets'] = (200, {'kind': 'SecretList', 'apiVersion': 'v1', 'metadata': {}, 'items': [{
        'metadata': {'name': 'sh.helm.release.v1.cilium.v4', 'labels': labels},
        'type': 'helm.sh/release.v1', 'data': {'release': blob}}]})
    if ca is not None:
        srv.routes[NS + '/secrets/cilium-ca'] = (200, {
            'kind': 'Secret', 'apiVersion': 'v1', 'metadata': {'name': 'cilium-ca'},
            'data': {'ca.crt': base64.b64encode(pem_cert(ca)).decode(), 'ca.key': 'Q0FLRVk='}})


_DEFAULT_CA = object()


def peer(name, cid, ips=None, port=2379, mcc=255, ca=_DEFAULT_CA, address=None):
    ca = FP if ca is _DEFAULT_CA else ca
    return {'cluster_name': name, 'cluster_id': cid, 'max_connected_clusters': mcc, 'ca': ca,
            'endpoint': {'ips': ips if ips is not None else ['127.0.%d.200' % cid], 'address': address,
                         'port': port},
            'changed': False, 'invocation': {'module_args': {}}, 'item': name}


def args(srv, peers, **kw):
    a = {'kubeconfig': srv.kubeconfig('mesh-1'), 'context': 'mesh-1', 'peers': peers}
    a.update(kw)
    return a


MESH = [peer('mesh-1', 1), peer('mesh-3', 3), peer('mesh-2', 2, ips=['127.0.2.201', '127.0.2.200'])]


def test_first_connect_is_one_upgrade_keeping_everything_else(apiserver, run_module, upgrades):
    install(apiserver)
    ok, res = run_module(args(apiserver, MESH))
    assert ok, res
    assert res['changed'] is True
    assert res['peers'] == ['mesh-2', 'mesh-3'] and res['added'] == ['mesh-2', 'mesh-3']
    assert res['skipped_self'] == ['mesh-1'] and res['removed'] == [] and res['clusters_form'] == 'list'
    assert 'only the clustermesh-apiserver' in res['rollout'] and res['kvstoremesh'] is True
    assert len(upgrades) == 1
    call = upgrades[0]
    assert call['release'] == 'cilium' and call['namespace'] == 'kube-system'
    assert call['kw']['chart_ref'] is None and call['kw']['current'].chart_version == '1.19.2'
    values = call['values']
    assert values['clustermesh']['config'] == {'enabled': True, 'clusters': [
        {'name': 'mesh-2', 'ips': ['127.0.2.200', '127.0.2.201'], 'port': 2379},
        {'name': 'mesh-3', 'ips': ['127.0.3.200'], 'port': 2379}]}
    assert values['ipam'] == {'mode': 'kubernetes'} and values['cluster'] == {'name': 'mesh-1', 'id': 1}
    assert values['clustermesh']['apiserver'] == {'service': {'type': 'LoadBalancer'}}


@pytest.mark.parametrize('version,wait_args', [((3, 20, 2), ['--wait']), ((4, 3, 2), ['--wait=legacy'])])
def test_the_runner_gets_the_helm_version_require_helm_found(apiserver, run_module, upgrades, monkeypatch,
                                                             version, wait_args):
    """Helm 4's bare --wait is another strategy than Helm 3's: the runner must know the major of the
    binary the module checked."""
    monkeypatch.setattr(clustermesh_connect, 'require_helm', lambda path: ('/usr/bin/helm', version))
    install(apiserver)
    ok, res = run_module(args(apiserver, MESH, wait=True))
    assert ok, res
    call, = upgrades
    assert call['kw']['wait'] is True and call['wait_args'] == wait_args


def test_already_connected_makes_no_helm_call(apiserver, run_module, upgrades):
    # deployed in map form (accepted by 1.19), other order: same peers, nothing to do
    install(apiserver, values={'clustermesh': {'config': {'enabled': True, 'clusters': {
        'mesh-3': {'ips': ['127.0.3.200'], 'port': 2379},
        'mesh-2': {'ips': ['127.0.2.201', '127.0.2.200'], 'port': '2379'}}}}})
    ok, res = run_module(args(apiserver, MESH))
    assert ok, res
    assert res['changed'] is False and upgrades == [] and res['rollout'] is None
    assert res['added'] == res['removed'] == res['changed_peers'] == []


def test_enabled_false_alone_is_a_change(apiserver, run_module, upgrades):
    install(apiserver, values={'clustermesh': {'config': {'clusters': [
        {'name': 'mesh-2', 'ips': ['127.0.2.200', '127.0.2.201'], 'port': 2379},
        {'name': 'mesh-3', 'ips': ['127.0.3.200'], 'port': 2379}]}}})
    ok, res = run_module(args(apiserver, MESH))
    assert ok and res['changed'] and len(upgrades) == 1 and res['added'] == []


def test_check_mode_reports_and_writes_nothing(apiserver, run_module, upgrades):
    install(apiserver)
    ok, res = run_module(args(apiserver, MESH, _ansible_check_mode=True, _ansible_diff=True))
    assert ok, res
    assert res['changed'] is True and res['added'] == ['mesh-2', 'mesh-3'] and upgrades == []
    assert res['diff']['before'] == {'enabled': None, 'peers': []}
    assert [p['name'] for p in res['diff']['after']['peers']] == ['mesh-2', 'mesh-3']


def test_chart_1_20_gets_the_map_form(apiserver, run_module, upgrades):
    install(apiserver, chart_version='1.20.0')
    ok, res = run_module(args(apiserver, MESH))
    assert ok, res
    assert res['clusters_form'] == 'map'
    assert upgrades[0]['values']['clustermesh']['config']['clusters'] == {
        'mesh-2': {'ips': ['127.0.2.200', '127.0.2.201'], 'port': 2379},
        'mesh-3': {'ips': ['127.0.3.200'], 'port': 2379}}


def test_exact_prunes_merge_keeps_with_its_extra_keys_masked_in_diff(apiserver, run_module, upgrades):
    deployed = {'clustermesh': {'config': {'enabled': True, 'clusters': [
        {'name': 'legacy', 'address': 'legacy.example', 'port': 2379, 'tls': {'key': 'U0VDUkVU'}},
        {'name': 'mesh-2', 'ips': ['127.0.2.200', '127.0.2.201'], 'port': 2379}]}}}
    install(apiserver, values=copy.deepcopy(deployed))
    ok, res = run_module(args(apiserver, MESH, membership='merge', _ansible_diff=True))
    assert ok, res
    assert res['kept'] == ['legacy'] and res['added'] == ['mesh-3'] and res['removed'] == []
    written = upgrades[0]['values']['clustermesh']['config']['clusters']
    assert [e['name'] for e in written] == ['legacy', 'mesh-2', 'mesh-3']
    assert written[0] == deployed['clustermesh']['config']['clusters'][0]
    assert 'U0VDUkVU' not in json.dumps(res)
    ok, res = run_module(args(apiserver, MESH, membership='exact'))
    assert ok, res
    assert res['removed'] == ['legacy']
    assert [e['name'] for e in upgrades[1]['values']['clustermesh']['config']['clusters']] == ['mesh-2', 'mesh-3']


@pytest.mark.parametrize('bad, field', [
    (peer('mesh-2', 1), 'cluster_id'),
    (peer('mesh-2', 2, mcc=511), 'max_connected_clusters'),
    (peer('mesh-2', 2, ca=OTHER_FP), 'ca'),
    (peer('mesh-2', 2, ca=None), 'ca'),
    (peer('mesh-2', 2, ips=[]), 'endpoint'),
    (peer('mesh-2', 300), 'cluster_id'),
    (peer('default', 2), 'name'),
    (peer('mesh-1', 7), 'name'),
])
def test_refusals_write_nothing_and_name_both_clusters(apiserver, run_module, upgrades, bad, field):
    install(apiserver)
    ok, res = run_module(args(apiserver, [peer('mesh-3', 3), bad]))
    assert not ok
    assert upgrades == []
    assert res['msg'].startswith('mesh-1: refusing to connect (nothing was changed)')
    assert [p['field'] for p in res['problems']] == [field]
    assert res['problems'][0]['clusters'] == ['mesh-1', bad['cluster_name']]


def test_local_ca_missing_is_refused(apiserver, run_module, upgrades):
    install(apiserver, ca=None)
    ok, res = run_module(args(apiserver, MESH))
    assert not ok and upgrades == []
    assert [p['field'] for p in res['problems']] == ['ca']


def test_no_release_and_pending_release(apiserver, run_module, upgrades):
    install(apiserver)
    apiserver.routes[NS + '/secrets'] = (200, {'kind': 'SecretList', 'apiVersion': 'v1', 'metadata': {},
                                               'items': []})
    ok, res = run_module(args(apiserver, MESH))
    assert not ok and 'no Helm release "cilium" in namespace kube-system' in res['msg']
    install(apiserver, status='pending-upgrade')
    ok, res = run_module(args(apiserver, MESH))
    assert not ok and 'pending-upgrade' in res['msg'] and upgrades == []


def test_not_installed(apiserver, run_module, upgrades):
    ok, res = run_module(args(apiserver, MESH))
    assert not ok and 'ConfigMap kube-system/cilium-config not found' in res['msg']


def test_kvstoremesh_off_warns_every_agent_rolls(apiserver, run_module, upgrades):
    install(apiserver, values={'clustermesh': {'apiserver': {'kvstoremesh': {'enabled': False}}}})
    ok, res = run_module(args(apiserver, MESH, _ansible_check_mode=True))
    assert ok and res['kvstoremesh'] is False and 'every cilium agent' in res['rollout']


def test_remove_takes_back_a_peer_in_merge_mode_and_conflicts_are_refused(apiserver, run_module, upgrades):
    install(apiserver, values={'clustermesh': {'config': {'enabled': True, 'clusters': [
        {'name': 'mesh-2', 'ips': ['127.0.2.200', '127.0.2.201'], 'port': 2379},
        {'name': 'mesh-3', 'ips': ['127.0.3.200'], 'port': 2379}]}}})
    ok, res = run_module(args(apiserver, [], membership='merge', remove=['mesh-3']))
    assert ok, res
    assert res['removed'] == ['mesh-3'] and res['kept'] == ['mesh-2'] and res['peers'] == ['mesh-2']
    assert [e['name'] for e in upgrades[0]['values']['clustermesh']['config']['clusters']] == ['mesh-2']
    ok, res = run_module(args(apiserver, MESH, remove=['mesh-3']))
    assert not ok and len(upgrades) == 1
    assert [p['field'] for p in res['problems']] == ['remove'] and 'mesh-3' in res['msg']


PLANNED = {'cluster_name': 'mesh-3', 'cluster_id': 3, 'max_connected_clusters': 255, 'planned': True}


def test_check_mode_previews_a_planned_peer_without_endpoint_or_ca(apiserver, run_module, upgrades):
    install(apiserver)
    ok, res = run_module(args(apiserver, [peer('mesh-2', 2), PLANNED], _ansible_check_mode=True,
                              _ansible_diff=True))
    assert ok, res
    assert res['changed'] is True and res['planned'] == ['mesh-3'] and res['added'] == ['mesh-2', 'mesh-3']
    assert {'name': 'mesh-3', 'address': '(known once installed by this run)', 'port': None} in res['diff']['after']['peers']
    assert upgrades == []


def test_a_planned_peer_is_refused_outside_check_mode(apiserver, run_module, upgrades):
    install(apiserver)
    ok, res = run_module(args(apiserver, [peer('mesh-2', 2), PLANNED]))
    assert not ok
    assert 'mesh-3' in res['msg'] and 'only accepted in check mode' in res['msg']
    assert upgrades == []


def test_a_planned_peer_still_gets_identity_checks(apiserver, run_module, upgrades):
    install(apiserver)
    ok, res = run_module(args(apiserver, [dict(PLANNED, cluster_id=1)], _ansible_check_mode=True))
    assert not ok and 'cluster ID 1' in res['msg'], res


def _own(srv, **kw):
    d = dict(peer('mesh-1', 1), installed=True, api_server=srv.url)
    d.update(kw)
    return d


def test_local_descriptor_saves_the_identity_and_ca_reads(apiserver, run_module, upgrades):
    install(apiserver)
    ok, res = run_module(args(apiserver, MESH, local=_own(apiserver)))
    assert ok, res
    assert res['changed'] is True and res['skipped_self'] == ['mesh-1'] and len(upgrades) == 1
    read = [path for path, _auth in apiserver.requests]
    assert not [r for r in read if 'cilium-config' in r or 'cilium-ca' in r], read
    assert [r for r in read if r.startswith(NS + '/secrets?')], read  # the release is always read


def test_local_descriptor_of_another_cluster_is_refused(apiserver, run_module, upgrades):
    install(apiserver)
    ok, res = run_module(args(apiserver, MESH, local=_own(apiserver, api_server='https://10.9.9.9:6443')))
    assert not ok and upgrades == []
    assert 'https://10.9.9.9:6443' in res['msg'] and apiserver.url in res['msg'] and 'nothing was changed' in res['msg']


@pytest.mark.parametrize('kw', [{'api_server': None}, {'installed': False}, {'planned': True}])
def test_a_descriptor_that_cannot_stand_for_a_read_is_ignored(apiserver, run_module, upgrades, kw):
    install(apiserver)
    ok, res = run_module(args(apiserver, MESH, local=_own(apiserver, **kw)))
    assert ok and res['changed'] is True, res
    assert [p for p, _a in apiserver.requests if 'cilium-config' in p]  # read as without local


def test_local_descriptor_identity_is_what_the_checks_use(apiserver, run_module, upgrades):
    # the descriptor says mesh-1 has ID 3: it collides with the peer mesh-3, refused like a read one would be
    install(apiserver)
    ok, res = run_module(args(apiserver, MESH, local=_own(apiserver, cluster_id=3)))
    assert not ok and upgrades == [] and 'mesh-3' in res['msg'], res


def _installed(chart_version, enabled, host_aliases_off):
    values = {'cluster': {'name': 'mesh-1', 'id': 1},
              'clustermesh': {'useAPIServer': True, 'config': {'enabled': enabled}}}
    if host_aliases_off is not None:
        values['clustermesh']['disableKubernetesHostAliases'] = host_aliases_off
    return values


@pytest.mark.parametrize('chart_version,enabled,host_aliases_off,validation', [
    # chart 1.20+, peers resolved from the configuration, mesh configuration on: Secret data only
    ('1.20.2', True, True, False),
    # the peers' host aliases in a pod template (chart 1.20 without the value, or before 1.20)
    ('1.20.2', True, None, True),
    ('1.19.2', True, True, True),
    # the connect turns the mesh configuration on: more than Secret data changes
    ('1.20.2', None, True, True),
])
def test_helm_checks_the_manifests_unless_only_the_mesh_secrets_change(apiserver, run_module, upgrades, chart_version,
                                                                       enabled, host_aliases_off, validation):
    install(apiserver, values=_installed(chart_version, enabled, host_aliases_off), chart_version=chart_version)
    ok, res = run_module(args(apiserver, MESH))
    assert ok, res
    call, = upgrades
    assert call['kw']['openapi_validation'] is validation
    assert ('restarts no pod' in res['rollout']) is (not validation if enabled else host_aliases_off is True)
