# -*- coding: utf-8 -*-
# Copyright: meshops.cilium contributors
# SPDX-License-Identifier: Apache-2.0
"""clustermesh_connect's answer from this run's descriptor of the cluster (module_utils/connect.py),
checked against what the module writes and plans: the entries the module renders into the release
(either chart form), described by clustermesh_info, are recognised as unchanged, and the module's own
plan on that release agrees; any difference or doubt leaves the decision to the module."""

import copy

import pytest
from ansible.module_utils.common.arg_spec import ArgumentSpecValidator

from ansible_collections.meshops.cilium.plugins.module_utils.base import cluster_argument_spec
from ansible_collections.meshops.cilium.plugins.module_utils.connect import (
    CONNECT_ARGUMENT_SPEC,
    unchanged_by_description,
)
from ansible_collections.meshops.cilium.plugins.module_utils.info import build_descriptor, dig
from ansible_collections.meshops.cilium.plugins.module_utils.mesh import normalize_peer, plan_peers, split_self
from ansible_collections.meshops.cilium.plugins.modules.clustermesh_connect import render_clusters

SERVER = 'https://127.0.0.1:24001'
CA = {'sha256': 'AA:BB:CC:01', 'subject_key_id': '0a0b'}


def peer(name, cid, ips=None, address=None, port=32379, ca=None, **extra):
    ca = CA if ca is None else ca
    d = {'cluster_name': name, 'cluster_id': cid, 'max_connected_clusters': 255, 'ca': ca,
         'endpoint': {'ips': ips if ips is not None else (['10.0.%d.1' % cid, '10.0.%d.2' % cid] if not address else []),
                      'address': address, 'port': port}}
    d.update(extra)
    return d


MESH = [peer('mesh-1', 1), peer('mesh-2', 2), peer('mesh-3', 3, address='mesh-3.example.com')]


def descriptor(values, chart_version='1.20.2', status='deployed', api_server=SERVER, name='mesh-1', cid=1):
    """clustermesh_info's descriptor of mesh-1 whose release holds these user values."""
    release = {'name': 'cilium', 'namespace': 'kube-system', 'version': 5, 'info': {'status': status},
               'chart': {'metadata': {'name': 'cilium', 'version': chart_version}}, 'config': values}
    cm = {'data': {'cluster-name': name, 'cluster-id': str(cid)}}
    desc = build_descriptor(config_map=cm, release=release)
    desc.update(ca=CA, api_server=api_server, changed=False, item=name)
    return desc


def connected_values(peers, chart_version, membership='exact', current=None):
    """The user values clustermesh_connect writes for these peers (the module's own rendering)."""
    local = normalize_peer(MESH[0])
    others, dummy = split_self(local, [normalize_peer(p) for p in peers])
    plan = plan_peers(current, others, membership)
    return {'cluster': {'name': 'mesh-1', 'id': 1},
            'clustermesh': {'useAPIServer': True, 'config': {'enabled': True,
                                                             'clusters': render_clusters(plan, chart_version)}}}


def params(local, peers=None, **changes):
    args = {'release_name': 'cilium', 'namespace': 'kube-system', 'peers': copy.deepcopy(peers or MESH),
            'membership': 'exact', 'remove': [], 'local': local, 'kubeconfig': '/k', 'context': 'mesh-1'}
    args.update(changes)
    result = ArgumentSpecValidator(cluster_argument_spec(CONNECT_ARGUMENT_SPEC)).validate(args)
    assert not result.error_messages, result.error_messages
    return result.validated_parameters


@pytest.mark.parametrize('chart_version, form', [('1.19.2', 'list'), ('1.20.2', 'map')])
@pytest.mark.parametrize('membership', ['exact', 'merge'])
def test_the_peers_this_module_wrote_are_unchanged_and_the_module_plans_the_same(chart_version, form, membership):
    values = connected_values(MESH, chart_version)
    local = descriptor(values, chart_version)
    # the inventory's order and the endpoints' IP order do not matter
    peers = [dict(p, endpoint=dict(p['endpoint'], ips=list(reversed(p['endpoint']['ips'])))) for p in reversed(MESH)]
    answer = unchanged_by_description(params(local, peers, membership=membership), SERVER)
    assert answer is not None
    assert answer['changed'] is False
    assert answer['peers'] == ['mesh-2', 'mesh-3'] and answer['skipped_self'] == ['mesh-1']
    assert answer['added'] == answer['removed'] == answer['changed_peers'] == answer['kept'] == []
    assert answer['clusters_form'] == form and answer['chart_version'] == chart_version and answer['revision'] == 5
    assert answer['local'] == {'name': 'mesh-1', 'cluster_id': 1, 'max_connected_clusters': 255}
    assert answer['api_server'] == SERVER and 'no module process' in answer['read']
    # what the module would find on that release
    local_peer = normalize_peer(MESH[0])
    others, dummy = split_self(local_peer, [normalize_peer(p) for p in peers])
    assert plan_peers(dig(values, 'clustermesh.config.clusters'), others, membership)['changes'] is False


def _moved(name, **endpoint):
    return [dict(p, endpoint=dict(p['endpoint'], **endpoint)) if p['cluster_name'] == name else p for p in MESH]


@pytest.mark.parametrize('case', [
    'endpoint_moved', 'port_moved', 'peer_added', 'peer_gone', 'extra_key_deployed', 'not_enabled', 'failed',
    'pending', 'other_release', 'other_server', 'remove', 'planned', 'ca_differs', 'id_collides', 'no_endpoint',
    'not_installed', 'no_digest',
])
@pytest.mark.parametrize('chart_version', ['1.19.2', '1.20.2'])
def test_any_difference_or_doubt_runs_the_module(case, chart_version):
    values = connected_values(MESH, chart_version)
    kw, peers, server = {}, MESH, SERVER
    if case == 'endpoint_moved':
        peers = _moved('mesh-2', ips=['10.0.2.9'])
    elif case == 'port_moved':
        peers = _moved('mesh-3', port=32380)
    elif case == 'peer_added':
        peers = MESH + [peer('mesh-4', 4)]
    elif case == 'peer_gone':
        peers = MESH[:2]
    elif case == 'extra_key_deployed':
        # a key the module keeps but does not write (tls): the module sees a change to make
        clusters = values['clustermesh']['config']['clusters']
        (clusters['mesh-2'] if isinstance(clusters, dict) else clusters[0])['tls'] = {'cert': 'x'}
    elif case == 'not_enabled':
        del values['clustermesh']['config']['enabled']
    elif case == 'other_release':
        kw['release_name'] = 'cilium-2'
    elif case == 'other_server':
        server = 'https://127.0.0.1:24005'
    elif case == 'remove':
        kw['remove'] = ['mesh-9']
    elif case == 'planned':
        peers = [dict(p, planned=True) if p['cluster_name'] == 'mesh-3' else p for p in MESH]
    elif case == 'ca_differs':
        peers = [dict(p, ca={'sha256': 'FF'}) if p['cluster_name'] == 'mesh-2' else p for p in MESH]
    elif case == 'id_collides':
        peers = [dict(p, cluster_id=2) if p['cluster_name'] == 'mesh-3' else p for p in MESH]
    elif case == 'no_endpoint':
        peers = _moved('mesh-2', ips=[], address=None)
    local = descriptor(values, chart_version, status={'failed': 'failed', 'pending': 'pending-upgrade'}.get(case, 'deployed'))
    if case == 'not_installed':
        local['installed'] = False
    if case == 'no_digest':
        del local['release']['peers_sha256']
    assert unchanged_by_description(params(local, peers, **kw), server) is None


def test_without_a_descriptor_or_a_server_the_module_runs():
    values = connected_values(MESH, '1.20.2')
    assert unchanged_by_description(params(None), SERVER) is None
    assert unchanged_by_description(params(descriptor(values)), None) is None
    assert unchanged_by_description(params(descriptor(values)), SERVER) is not None


def test_merge_with_a_deployed_peer_this_run_does_not_name_runs_the_module():
    # membership merge keeps mesh-3 (not named): the module keeps it, the digest cannot tell
    values = connected_values(MESH, '1.20.2')
    assert unchanged_by_description(params(descriptor(values), MESH[:2], membership='merge'), SERVER) is None
