# -*- coding: utf-8 -*-
# Copyright: meshops.cilium contributors
# SPDX-License-Identifier: Apache-2.0
"""Safe adoption: the values of an installed release that a run would drop or change unchosen."""

import pytest

from ansible_collections.meshops.cilium.plugins.module_utils import preflight
from ansible_collections.meshops.cilium.plugins.module_utils.info import build_descriptor
from ansible_collections.meshops.cilium.plugins.module_utils.rendered import existing_value_problems
from ansible_collections.meshops.cilium.plugins.module_utils.values import (
    DATAPATH_VALUES,
    datapath_reason,
    datapath_values,
    plan_install,
    review_existing,
)

# A release installed by hand: datapath values the inventory does not repeat, and one that is not.
HAND = {
    'cluster': {'name': 'mesh-1', 'id': 1},
    'ipam': {'mode': 'kubernetes'},
    'routingMode': 'native',
    'ipv4NativeRoutingCIDR': '10.0.0.0/8',
    'kubeProxyReplacement': True,
    'k8sServiceHost': '10.0.0.10',
    'k8sServicePort': 6443,
    'bpf': {'masquerade': True},
    'operator': {'replicas': 1},
}
# what the cilium role passes with nothing but the cluster identity in the inventory
ROLE = {
    'cluster_name': 'mesh-1', 'cluster_id': 1, 'ipam_mode': 'kubernetes', 'kube_proxy_replacement': False,
    'routing_mode': 'tunnel', 'tunnel_protocol': 'vxlan', 'max_connected_clusters': 255, 'values': {},
    'default_options': ['ipam_mode', 'kube_proxy_replacement', 'routing_mode', 'tunnel_protocol',
                        'max_connected_clusters'],
}


def plan(current, **over):
    params = dict(ROLE, **over)
    return plan_install(params, current, '1.20.2', True, '1.20.2')


def test_the_datapath_list_matches_whole_keys_only():
    assert datapath_reason('bpf.masquerade') and datapath_reason(('bpf',))
    assert datapath_reason('bpfClockProbe') is None
    assert datapath_reason('clustermesh.maxConnectedClusters')
    assert datapath_reason('clustermesh.config.clusters') is None
    assert datapath_reason('operator.replicas') is None and datapath_reason('hubble.enabled') is None
    # one place, every entry with its reason
    assert len(set(path for path, _reason in DATAPATH_VALUES)) == len(DATAPATH_VALUES)
    assert all(reason for _path, reason in DATAPATH_VALUES)


def test_refuse_names_every_unchosen_datapath_value_and_nothing_else():
    with pytest.raises(ValueError) as e:
        plan(HAND)
    msg = str(e.value)
    for path in ('routingMode (changed', 'ipv4NativeRoutingCIDR (dropped', 'kubeProxyReplacement (changed',
                 'k8sServiceHost (dropped', 'k8sServicePort (dropped', 'bpf.masquerade (dropped'):
        assert path in msg, (path, msg)
    assert 'operator.replicas' not in msg and 'ipam.mode' not in msg
    assert 'existing_values' in msg and 'keep' in msg and 'reset' in msg


def test_a_value_the_user_chose_is_not_refused():
    # the same values given by the user (inventory variables, not defaults, and cilium_values)
    r = plan(HAND, routing_mode='native', kube_proxy_replacement=True,
             default_options=['ipam_mode', 'tunnel_protocol', 'max_connected_clusters'], tunnel_protocol=None,
             k8s_service_host='10.0.0.10', k8s_service_port=6443, ipv4_native_routing_cidr='10.0.0.0/8',
             values={'bpf': {'masquerade': True}})
    assert r['desired']['routingMode'] == 'native' and r['desired']['bpf'] == {'masquerade': True}
    # the hand-set operator.replicas is dropped, with a warning that names it
    assert 'operator' not in r['desired']
    assert any('operator.replicas (dropped)' in w for w in r['warnings']), r['warnings']
    rows = dict((x['path'], x) for x in r['existing_values'])
    assert rows['operator.replicas'] == {'path': 'operator.replicas', 'change': 'dropped', 'datapath': None,
                                         'chosen': False}
    assert 'keys' not in rows['operator.replicas']


def test_a_new_value_the_user_chose_changes_a_datapath_value():
    r = plan({'routingMode': 'native', 'cluster': {'name': 'mesh-1', 'id': 1}}, routing_mode='tunnel',
             default_options=['ipam_mode'])
    assert r['desired']['routingMode'] == 'tunnel' and r['action'] == 'upgrade'
    assert [x['chosen'] for x in r['existing_values'] if x['path'] == 'routingMode'] == [True]


def test_keep_keeps_the_release_values_over_role_defaults():
    r = plan(HAND, existing_values='keep')
    d = r['desired']
    assert d['routingMode'] == 'native' and d['kubeProxyReplacement'] is True
    assert d['k8sServiceHost'] == '10.0.0.10' and d['k8sServicePort'] == 6443
    assert d['bpf'] == {'masquerade': True} and d['operator'] == {'replicas': 1}
    assert d['cluster'] == {'name': 'mesh-1', 'id': 1}
    assert any('keep' in w and 'operator.replicas' in w for w in r['warnings'])
    # a second run on what keep wrote changes nothing, and still says which values are the release's own
    again = plan(d, existing_values='keep')
    assert again['action'] == 'none' and again['desired'] == d, again
    assert any('keep' in w and 'bpf.masquerade' in w for w in again['warnings'])


def test_keep_still_applies_what_the_user_chose():
    r = plan(HAND, existing_values='keep', values={'bpf': {'masquerade': False}})
    assert r['desired']['bpf'] == {'masquerade': False} and r['desired']['routingMode'] == 'native'


def test_reset_drops_them_with_a_warning():
    r = plan(HAND, existing_values='reset')
    d = r['desired']
    assert d['routingMode'] == 'tunnel' and d['kubeProxyReplacement'] is False
    assert 'bpf' not in d and 'operator' not in d and 'k8sServiceHost' not in d
    assert any('bpf.masquerade (dropped)' in w and 'operator.replicas (dropped)' in w for w in r['warnings'])


def test_a_release_we_installed_is_not_reviewed_again():
    first = plan_install(dict(ROLE), None, None, False, '1.20.2')['desired']
    again = plan(first)
    assert again['action'] == 'none' and again['existing_values'] == [] and again['warnings'] == []


def test_peers_and_apiserver_values_other_modules_own_are_kept_not_reviewed():
    current = dict(HAND, clustermesh={'useAPIServer': True, 'config': {'enabled': True, 'clusters': {'mesh-2': {
        'port': 2379, 'ips': ['10.1.0.1']}}}})
    r = plan(current, existing_values='reset')
    assert r['desired']['clustermesh']['config']['clusters'] == current['clustermesh']['config']['clusters']
    assert not [x for x in r['existing_values'] if x['path'].startswith('clustermesh')]


def test_a_parent_replaced_by_a_scalar_counts_as_changed():
    rows = review_existing({'encryption': {'enabled': True, 'type': 'ipsec'}}, {'encryption': False})
    assert [(x['path'], x['change']) for x in rows] == [('encryption.enabled', 'changed'), ('encryption.type', 'changed')]


def test_unknown_mode_is_an_error():
    with pytest.raises(ValueError, match='existing_values must be one of'):
        plan(HAND, existing_values='merge')


def test_clustermesh_info_returns_only_the_datapath_values_masked():
    release = {'name': 'cilium', 'namespace': 'kube-system', 'version': 1, 'info': {'status': 'deployed'},
               'chart': {'metadata': {'name': 'cilium', 'version': '1.20.2'}},
               'config': dict(HAND, encryption={'enabled': True, 'ipsec': {'secretName': 'x', 'key': 's3cr3t'}},
                              hubble={'tls': {'server': {'key': 'hub-s3cr3t'}}})}
    d = build_descriptor(release=release)
    dv = d['release']['datapath_values']
    assert dv['routingMode'] == 'native' and dv['bpf'] == {'masquerade': True}
    assert 'operator' not in dv and 'hubble' not in dv
    assert 's3cr3t' not in repr(d) and dv['encryption']['ipsec']['secretName'] == 'x'
    assert datapath_values(HAND) == dict((k, v) for k, v in HAND.items() if k != 'operator')


def _member(host, install, dv):
    return {'host': host, 'cluster_name': host, 'cluster_id': 1, 'max_connected_clusters': 255,
            'routing_mode': install.get('routing_mode'), 'install': install,
            'info': {'installed': True, 'cluster_name': host, 'cluster_id': 1, 'max_connected_clusters': 255,
                     'release': {'status': 'deployed', 'chart_version': '1.20.2', 'datapath_values': dv}}}


def test_preflight_rows_name_cluster_path_value_and_fix():
    rows = existing_value_problems(dict(ROLE), datapath_values(HAND))
    paths = sorted(r[0] for r in rows)
    assert paths == ['cilium_values.bpf.masquerade', 'cilium_values.ipv4NativeRoutingCIDR',
                     'cilium_values.k8sServiceHost', 'cilium_values.k8sServicePort',
                     'cilium_values.kubeProxyReplacement', 'cilium_values.routingMode']
    text = dict((r[0], r) for r in rows)['cilium_values.routingMode']
    assert 'routingMode="native"' in text[1] and 'change it to "tunnel"' in text[1]
    assert 'cilium_existing_values: keep' in text[2]
    assert existing_value_problems(dict(ROLE, existing_values='keep'), datapath_values(HAND)) == []
    assert existing_value_problems(dict(ROLE, existing_values='reset'), datapath_values(HAND)) == []
    # the whole preflight: errors of that cluster only, in the one table
    problems = preflight.check([_member('mesh-1', dict(ROLE), datapath_values(HAND)),
                                _member('mesh-2', dict(ROLE, cluster_name='mesh-2'), {})])
    mine = [p for p in problems if p['field'].startswith('cilium_values.')]
    assert len(mine) == 6 and all(p['cluster'] == 'mesh-1' and p['severity'] == 'error' for p in mine), problems
    assert 'routingMode' in preflight.format_table(mine)


def test_preflight_ignores_bad_options_reported_elsewhere():
    assert existing_value_problems(dict(ROLE, kube_proxy_replacement='strict'), datapath_values(HAND)) == []
    assert existing_value_problems(dict(ROLE, cluster_id='x'), datapath_values(HAND)) == []
