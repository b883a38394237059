# -*- coding: utf-8 -*-
# Copyright: meshops.cilium contributors
# SPDX-License-Identifier: Apache-2.0
"""The action plugin of clustermesh_connect in a real play, its connection set as the clustermesh role
sets it (module_defaults of group inventory): a descriptor of this cluster, read from the API server the
task names, that shows the wanted peers deployed answers on the controller (no module process: the API
server it would need does not listen); any other descriptor, or none, runs the module, which then fails
naming why."""

import json

from ansible_collections.meshops.cilium.plugins.module_utils.info import build_descriptor
from ansible_collections.meshops.cilium.plugins.module_utils.mesh import normalize_peer, plan_peers, split_self
from ansible_collections.meshops.cilium.plugins.modules.clustermesh_connect import render_clusters

SERVER = 'https://127.0.0.1:9'  # nothing listens there
CA = {'sha256': 'AA:BB:CC:01', 'subject_key_id': '0a0b'}


def peer(name, cid, ip):
    return {'cluster_name': name, 'cluster_id': cid, 'max_connected_clusters': 255, 'ca': CA,
            'endpoint': {'ips': [ip], 'address': None, 'port': 32379}, 'item': name}


MESH = [peer('mesh-1', 1, '10.0.1.1'), peer('mesh-2', 2, '10.0.2.1'), peer('mesh-3', 3, '10.0.3.1')]


def descriptor(api_server=SERVER):
    others, dummy = split_self(normalize_peer(MESH[0]), [normalize_peer(p) for p in MESH])
    values = {'cluster': {'name': 'mesh-1', 'id': 1},
              'clustermesh': {'config': {'enabled': True,
                                         'clusters': render_clusters(plan_peers(None, others), '1.20.2')}}}
    release = {'name': 'cilium', 'namespace': 'kube-system', 'version': 7, 'info': {'status': 'deployed'},
               'chart': {'metadata': {'name': 'cilium', 'version': '1.20.2'}}, 'config': values}
    desc = build_descriptor(config_map={'data': {'cluster-name': 'mesh-1', 'cluster-id': '1'}}, release=release)
    desc.update(ca=CA, api_server=api_server, item='mesh-1')
    return desc


def test_a_descriptor_showing_the_wanted_peers_needs_no_module(tmp_path, play_results):
    kubeconfig = tmp_path / 'kubeconfig'
    kubeconfig.write_text(json.dumps({
        'apiVersion': 'v1', 'kind': 'Config', 'current-context': 'mesh-1',
        'clusters': [{'name': 'mesh-1', 'cluster': {'server': SERVER, 'insecure-skip-tls-verify': True}}],
        'users': [{'name': 'mesh-1', 'user': {'token': 'not-a-secret'}}],
        'contexts': [{'name': 'mesh-1', 'context': {'cluster': 'mesh-1', 'user': 'mesh-1'}}]}))
    moved = [dict(p, endpoint=dict(p['endpoint'], ips=['10.0.2.9'])) if p['item'] == 'mesh-2' else p for p in MESH]
    cases = []
    for name, local, peers in (('same', descriptor(), MESH), ('moved', descriptor(), moved),
                               ('other_server', descriptor('https://127.0.0.1:24001'), MESH), ('none', None, MESH)):
        args = {'peers': peers, 'connect_timeout': 2}
        if local is not None:
            args['local'] = local
        cases.append((name, args))
    results = play_results('meshops.cilium.clustermesh_connect', cases, module_defaults={
        'group/meshops.cilium.inventory': {'kubeconfig': str(kubeconfig), 'context': 'mesh-1'}})
    for check in (False, True):
        same = results['same', check]
        assert same.get('failed') is not True and same['changed'] is False, same
        assert same['peers'] == ['mesh-2', 'mesh-3'] and same['added'] == [] and same['revision'] == 7
        assert same['cluster'] == 'mesh-1' and same['api_server'] == SERVER and 'no module process' in same['read']
        assert 'not-a-secret' not in json.dumps(same)
        moved_r = results['moved', check]
        none_r = results['none', check]
        for r in (moved_r, none_r):
            # the module ran: it needs the API server, which does not answer
            assert r['failed'] is True and 'read' not in r and '127.0.0.1:9' in r['msg'], r
        other = results['other_server', check]
        assert other['failed'] is True and 'the descriptor was read from https://127.0.0.1:24001' in other['msg'], other
