# -*- coding: utf-8 -*-
# Copyright: meshops.cilium contributors
# SPDX-License-Identifier: Apache-2.0
"""The peer planner: descriptors, refusals, exact/merge, ordering."""

import copy
import random

import pytest

from ansible_collections.meshops.cilium.plugins.module_utils import mesh
from ansible_collections.meshops.cilium.plugins.module_utils.errors import MeshopsValueError

CA_A = {'sha256': 'AA:BB:CC:01', 'subject_key_id': '0a0b'}
CA_B = {'sha256': 'DD:EE:FF:02', 'subject_key_id': '0c0d'}


_DEFAULT_CA = object()


def desc(name, cid, ips=None, port=2379, mcc=255, ca=_DEFAULT_CA, address=None, **extra):
    ca = CA_A if ca is _DEFAULT_CA else ca
    d = {'cluster_name': name, 'cluster_id': cid, 'max_connected_clusters': mcc, 'ca': ca,
         'endpoint': {'source': 'service', 'service_type': 'LoadBalancer',
                      'ips': ips if ips is not None else ['10.0.%d.1' % cid],
                      'address': address, 'port': port},
         'nodes': [{'name': 'n1'}], 'warnings': []}
    d.update(extra)
    return d


def norm(*descs):
    return [mesh.normalize_peer(d) for d in descs]


def fields(problems):
    return sorted((tuple(p['clusters']), p['field']) for p in problems)


LOCAL = mesh.normalize_peer(desc('mesh-1', 1))


def test_normalize_takes_the_info_descriptor_and_ignores_unknown_keys():
    p = mesh.normalize_peer(desc('mesh-2', 2, ips=['10.0.0.9', '10.0.0.2'], extra_key='x'))
    assert p == {'name': 'mesh-2', 'cluster_id': 2, 'max_connected_clusters': 255,
                 'ca_sha256': 'AABBCC01', 'ca_subject_key_id': '0a0b',
                 'endpoint': {'ips': ['10.0.0.2', '10.0.0.9'], 'address': None, 'port': 2379}}
    # name instead of cluster_name, string ID, a plain fingerprint string, no mcc (255)
    p2 = mesh.normalize_peer({'name': 'x', 'cluster_id': '7', 'ca': 'aa:bb:cc:01',
                              'endpoint': {'address': 'mesh.example', 'port': '32379'}})
    assert (p2['name'], p2['cluster_id'], p2['max_connected_clusters'], p2['ca_sha256']) == ('x', 7, 255, 'AABBCC01')
    assert p2['endpoint'] == {'ips': [], 'address': 'mesh.example', 'port': 32379}


def test_valid_mesh_has_no_problems():
    assert mesh.validate_peers(LOCAL, norm(desc('mesh-2', 2), desc('mesh-3', 3))) == []


def test_self_is_skipped_only_with_the_same_id():
    peers = norm(desc('mesh-1', 1), desc('mesh-2', 2), desc('mesh-1', 9))
    others, skipped = mesh.split_self(LOCAL, peers)
    assert [p['name'] for p in skipped] == ['mesh-1']
    assert [(p['name'], p['cluster_id']) for p in others] == [('mesh-2', 2), ('mesh-1', 9)]
    problems = mesh.validate_peers(LOCAL, others)
    assert fields(problems) == [(('mesh-1', 'mesh-1'), 'name')]
    assert 'cluster ID 9' in problems[0]['message']


def test_duplicate_id_against_local_and_between_peers():
    problems = mesh.validate_peers(LOCAL, norm(desc('mesh-2', 1), desc('mesh-3', 3), desc('mesh-4', 3)))
    assert fields(problems) == [(('mesh-1', 'mesh-2'), 'cluster_id'), (('mesh-3', 'mesh-4'), 'cluster_id')]
    for p in problems:
        assert p['message'].startswith('%s / %s: cluster_id:' % tuple(p['clusters']))


def test_duplicate_names_between_peers():
    problems = mesh.validate_peers(LOCAL, norm(desc('mesh-2', 2), desc('mesh-2', 3)))
    assert fields(problems) == [(('mesh-2', 'mesh-2'), 'name')]


def test_id_outside_range_default_and_zero():
    problems = mesh.validate_peers(LOCAL, norm(desc('mesh-2', 256), desc('default', 3), desc('mesh-4', 0)))
    assert fields(problems) == [
        (('mesh-1', 'default'), 'name'),
        (('mesh-1', 'mesh-2'), 'cluster_id'),
        (('mesh-1', 'mesh-4'), 'cluster_id'),
    ]
    msgs = ' | '.join(p['message'] for p in problems)
    assert '256 is outside 1..255' in msgs and 'cluster ID 0' in msgs and '"default"' in msgs


def test_id_up_to_511_with_511_everywhere():
    local = mesh.normalize_peer(desc('mesh-1', 1, mcc=511))
    assert mesh.validate_peers(local, norm(desc('mesh-2', 400, mcc=511))) == []
    assert fields(mesh.validate_peers(local, norm(desc('mesh-2', 512, mcc=511)))) == [
        (('mesh-1', 'mesh-2'), 'cluster_id')]


def test_differing_max_connected_clusters():
    problems = mesh.validate_peers(LOCAL, norm(desc('mesh-2', 2, mcc=511)))
    assert fields(problems) == [(('mesh-1', 'mesh-2'), 'max_connected_clusters')]
    assert 'mesh-1 has 255, mesh-2 has 511' in problems[0]['message']


def test_differing_and_missing_ca():
    problems = mesh.validate_peers(LOCAL, norm(desc('mesh-2', 2, ca=CA_B), desc('mesh-3', 3, ca=None)))
    assert fields(problems) == [(('mesh-1', 'mesh-2'), 'ca'), (('mesh-1', 'mesh-3'), 'ca')]
    assert 'differ' in problems[0]['message'] and 'no CA' in problems[1]['message']
    local_no_ca = mesh.normalize_peer(desc('mesh-1', 1, ca=None))
    assert fields(mesh.validate_peers(local_no_ca, norm(desc('mesh-2', 2)))) == [(('mesh-1', 'mesh-1'), 'ca')]


def test_ca_compared_by_subject_key_id_when_a_fingerprint_is_missing():
    peer = desc('mesh-2', 2, ca={'sha256': None, 'subject_key_id': '0A:0B'})
    assert mesh.validate_peers(LOCAL, norm(peer)) == []
    peer = desc('mesh-2', 2, ca={'sha256': None, 'subject_key_id': 'ffff'})
    assert fields(mesh.validate_peers(LOCAL, norm(peer))) == [(('mesh-1', 'mesh-2'), 'ca')]


def test_peer_without_usable_endpoint():
    p = desc('mesh-2', 2, ips=[], port=None)
    problems = mesh.validate_peers(LOCAL, norm(p))
    assert fields(problems) == [(('mesh-1', 'mesh-2'), 'endpoint'), (('mesh-1', 'mesh-2'), 'endpoint.port')]
    no_endpoint = {'cluster_name': 'mesh-3', 'cluster_id': 3, 'ca': CA_A, 'endpoint': None}
    assert len(mesh.validate_peers(LOCAL, norm(no_endpoint))) == 2


def test_all_problems_are_reported_at_once():
    problems = mesh.validate_peers(LOCAL, norm(desc('mesh-2', 1, mcc=511, ca=CA_B, ips=[])))
    assert sorted(p['field'] for p in problems) == ['ca', 'cluster_id', 'endpoint', 'max_connected_clusters']


def test_local_identity_problems():
    local = mesh.normalize_peer(desc('default', 0))
    expected = [(('default', 'default'), 'cluster_id'), (('default', 'default'), 'name')]
    assert fields(mesh.validate_peers(local, [])) == expected
    local = mesh.normalize_peer({'cluster_name': None, 'cluster_id': None, 'ca': CA_A})
    assert sorted(p['field'] for p in mesh.validate_peers(local, [])) == ['cluster_id', 'name']


def test_entry_for_ips_or_address():
    assert mesh.entry_for(mesh.normalize_peer(desc('mesh-2', 2, ips=['10.0.0.3', '10.0.0.1']))) == {
        'name': 'mesh-2', 'ips': ['10.0.0.1', '10.0.0.3'], 'port': 2379}
    assert mesh.entry_for(mesh.normalize_peer(desc('mesh-2', 2, ips=[], address='lb.example'))) == {
        'name': 'mesh-2', 'address': 'lb.example', 'port': 2379}


def test_plan_from_nothing_adds_all_sorted():
    plan = mesh.plan_peers(None, norm(desc('mesh-3', 3), desc('mesh-2', 2)), 'exact')
    assert [e['name'] for e in plan['entries']] == ['mesh-2', 'mesh-3']
    assert plan['added'] == ['mesh-2', 'mesh-3'] and plan['changes']
    assert plan['removed'] == plan['changed'] == []


def test_plan_is_stable_whatever_the_order_and_form():
    peers = norm(desc('mesh-2', 2, ips=['10.0.2.1', '10.0.2.2']), desc('mesh-3', 3), desc('mesh-4', 4))
    first = mesh.plan_peers(None, peers, 'exact')
    for dummy in range(5):
        shuffled = copy.deepcopy(peers)
        random.shuffle(shuffled)
        for p in shuffled:
            p['endpoint']['ips'] = list(reversed(p['endpoint']['ips']))
        assert mesh.plan_peers(None, [mesh.normalize_peer(desc(p['name'], p['cluster_id'], ips=p['endpoint']['ips']))
                                      for p in shuffled], 'exact')['entries'] == first['entries']
    # deployed in list form in another order, and in map form: nothing to change
    as_list = list(reversed(first['entries']))
    as_map = dict((e['name'], {'ips': list(reversed(e['ips'])), 'port': str(e['port'])}) for e in first['entries'])
    for deployed in (as_list, as_map):
        plan = mesh.plan_peers(deployed, peers, 'exact')
        assert not plan['changes'], plan
        assert plan['unchanged'] == ['mesh-2', 'mesh-3', 'mesh-4']
        assert plan['entries'] == first['entries']


def test_exact_prunes_and_merge_keeps_unlisted():
    deployed = [{'name': 'old', 'address': 'old.example', 'port': 2379},
                {'name': 'mesh-2', 'ips': ['10.0.2.1'], 'port': 2379}]
    peers = norm(desc('mesh-2', 2), desc('mesh-3', 3))
    exact = mesh.plan_peers(deployed, peers, 'exact')
    assert [e['name'] for e in exact['entries']] == ['mesh-2', 'mesh-3']
    assert exact['removed'] == ['old'] and exact['added'] == ['mesh-3'] and exact['unchanged'] == ['mesh-2']
    merge = mesh.plan_peers(deployed, peers, 'merge')
    assert [e['name'] for e in merge['entries']] == ['mesh-2', 'mesh-3', 'old']
    assert merge['removed'] == [] and merge['kept'] == ['old']
    assert merge['entries'][2] == {'name': 'old', 'address': 'old.example', 'port': 2379}


def test_exact_with_no_peers_removes_everything():
    plan = mesh.plan_peers({'mesh-2': {'ips': ['1.1.1.1'], 'port': 2379}}, [], 'exact')
    assert plan['entries'] == [] and plan['removed'] == ['mesh-2'] and plan['changes']


def test_moved_endpoint_is_a_change():
    deployed = [{'name': 'mesh-2', 'ips': ['10.0.2.1'], 'port': 2379}]
    plan = mesh.plan_peers(deployed, norm(desc('mesh-2', 2, ips=['10.0.2.9'])), 'merge')
    assert plan['changed'] == ['mesh-2'] and plan['changes']
    plan = mesh.plan_peers(deployed, norm(desc('mesh-2', 2, ips=['10.0.2.1'], port=32379)), 'merge')
    assert plan['changed'] == ['mesh-2']


def test_bad_membership():
    with pytest.raises(ValueError):
        mesh.plan_peers(None, [], 'union')


def test_peer_summary_masks_tls():
    out = mesh.peer_summary([{'name': 'a', 'ips': ['1.1.1.1'], 'port': 1, 'tls': {'key': 'S3CRET'}}])
    assert out == [{'name': 'a', 'ips': ['1.1.1.1'], 'port': 1, 'tls': '********'}]
    assert 'S3CRET' not in repr(out)


def test_rollout_note():
    assert 'only the clustermesh-apiserver' in mesh.rollout_note(True)
    assert 'every cilium agent' in mesh.rollout_note(False)
    assert 'unknown' in mesh.rollout_note(None)
    # chart 1.20+ without hostAliases (values.peer_host_aliases False): nothing restarts, whatever KVStoreMesh
    for kvsm in (True, False, None):
        note = mesh.rollout_note(kvsm, host_aliases=False)
        assert 'restarts no pod' in note and 'only the clustermesh-apiserver' not in note
        assert 'every cilium agent' not in note
    assert 'KVStoreMesh and the agents' in mesh.rollout_note(True, host_aliases=False)
    assert 'only the clustermesh-apiserver' in mesh.rollout_note(True, host_aliases=None)


def test_remove_drops_named_entries_in_merge_and_exact():
    deployed = [{'name': 'old', 'address': 'old.example', 'port': 2379},
                {'name': 'mesh-2', 'ips': ['10.0.2.1'], 'port': 2379},
                {'name': 'mesh-3', 'ips': ['10.0.3.1'], 'port': 2379}]
    merge = mesh.plan_peers(deployed, [], 'merge', remove=['mesh-3'])
    assert [e['name'] for e in merge['entries']] == ['mesh-2', 'old']
    assert merge['removed'] == ['mesh-3'] and merge['kept'] == ['mesh-2', 'old'] and merge['changes']
    exact = mesh.plan_peers(deployed, norm(desc('mesh-2', 2)), 'exact', remove=['mesh-3', 'absent'])
    assert [e['name'] for e in exact['entries']] == ['mesh-2']
    assert exact['removed'] == ['mesh-3', 'old']
    # removing a name that is not deployed changes nothing
    assert not mesh.plan_peers(deployed, [], 'merge', remove=['mesh-9'])['changes']


def test_remove_and_peers_must_not_overlap():
    assert mesh.remove_conflicts(norm(desc('mesh-2', 2), desc('mesh-3', 3)), ['mesh-3', 'x']) == ['mesh-3']
    with pytest.raises(ValueError, match='mesh-2'):
        mesh.plan_peers(None, norm(desc('mesh-2', 2)), 'merge', remove=['mesh-2'])


def test_planned_peers_are_previewed_without_endpoint_or_ca_problems():
    local = mesh.normalize_peer({'cluster_name': 'mesh-1', 'cluster_id': 1, 'ca': {'sha256': 'AA'}})
    planned = mesh.normalize_peer({'cluster_name': 'mesh-2', 'cluster_id': 2})
    real = mesh.normalize_peer({'cluster_name': 'mesh-3', 'cluster_id': 3})  # no endpoint, no CA: refused
    peers = mesh.plan_planned_peers([planned, real], {'mesh-2'})
    problems = mesh.drop_planned_problems(mesh.validate_peers(local, peers), {'mesh-2'})
    assert sorted(set(p['field'] for p in problems)) == ['ca', 'endpoint', 'endpoint.port']
    assert all(p['clusters'][1] == 'mesh-3' for p in problems)
    plan = mesh.plan_peers(None, peers[:1], 'exact')
    assert plan['added'] == ['mesh-2']
    assert plan['entries'] == [{'name': 'mesh-2', 'address': mesh.PLANNED_ADDRESS, 'port': None}]


def test_a_planned_peer_with_the_same_id_as_another_is_still_refused():
    local = mesh.normalize_peer({'cluster_name': 'mesh-1', 'cluster_id': 1, 'ca': {'sha256': 'AA'}})
    planned = mesh.plan_planned_peers([mesh.normalize_peer({'cluster_name': 'mesh-2', 'cluster_id': 1})], {'mesh-2'})
    problems = mesh.drop_planned_problems(mesh.validate_peers(local, planned), {'mesh-2'})
    assert [p['field'] for p in problems] == ['cluster_id']


# --- the local cluster, from its own descriptor (clustermesh_connect option local) ---------------

OWN_DESCRIPTOR = dict(desc('mesh-1', 1), api_server='https://127.0.0.1:21010', installed=True)


def test_the_local_peer_from_its_descriptor_is_the_one_read_from_the_cluster():
    ident = {'cluster_name': 'mesh-1', 'cluster_id': 1, 'max_connected_clusters': 255}
    assert mesh.local_from_descriptor(OWN_DESCRIPTOR, 'https://127.0.0.1:21010/') == mesh.local_peer(ident, CA_A)
    assert mesh.local_peer(ident, CA_A)['ca_sha256'] == CA_A['sha256'].replace(':', '')


@pytest.mark.parametrize('change', [
    {'api_server': None},  # an old descriptor: it does not say where it was read
    {'installed': False},  # Cilium was not installed when it was read
    {'planned': True},     # a planned member: nothing was read
])
def test_a_descriptor_that_cannot_stand_for_a_read_is_not_used(change):
    assert mesh.local_from_descriptor(dict(OWN_DESCRIPTOR, **change), 'https://127.0.0.1:21010') is None


def test_a_descriptor_of_another_cluster_is_refused_with_both_addresses():
    with pytest.raises(MeshopsValueError) as e:
        mesh.local_from_descriptor(OWN_DESCRIPTOR, 'https://127.0.0.1:21020')
    assert 'read from https://127.0.0.1:21010, not from https://127.0.0.1:21020' in str(e.value)


@pytest.mark.parametrize('call', [
    lambda: mesh.plan_peers([], [], membership='all'),
    lambda: mesh.plan_peers([], norm(desc('mesh-2', 2)), remove=['mesh-2']),
])
def test_bad_planner_input_is_a_meshops_error(call):
    with pytest.raises(MeshopsValueError):
        call()
