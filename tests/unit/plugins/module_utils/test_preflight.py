# -*- coding: utf-8 -*-
# Copyright: meshops.cilium contributors
# SPDX-License-Identifier: Apache-2.0

import copy
import ipaddress

import pytest

from ansible_collections.meshops.cilium.plugins.module_utils.info import parse_datapath
from ansible_collections.meshops.cilium.plugins.module_utils.preflight import (
    ERROR,
    WARNING,
    check,
    covering,
    format_table,
    local_chart_path,
    summary,
)
from ansible_collections.meshops.cilium.plugins.module_utils.common import SUPPORTED_CHART_RANGE, int_or_none as as_int, version_tuple
from ansible_collections.meshops.cilium.plugins.module_utils.values import normalize_kpr


def node(name, ip, cidr, ready=True):
    return {'name': name, 'ready': ready, 'internal_ips': [ip], 'external_ips': [], 'pod_cidrs': [cidr]}


def info(i, installed=False, **kw):
    """A descriptor of fleet-like cluster ``mesh-<i>``: nodes 127.0.i.11-12 with 10.i.{0,1}.0/24."""
    d = {
        'cluster': 'mesh-%d' % i, 'installed': installed,
        'cluster_name': None, 'cluster_id': None, 'max_connected_clusters': None, 'routing_mode': None,
        'release': None, 'ca': None, 'endpoint': None, 'datapath': None, 'peers': [],
        'nodes': [node('n%d-0' % i, '127.0.%d.11' % i, '10.%d.0.0/24' % i),
                  node('n%d-1' % i, '127.0.%d.12' % i, '10.%d.1.0/24' % i)],
    }
    d['pod_cidrs'] = [c for n in d['nodes'] for c in n['pod_cidrs']]
    if installed:
        d.update({'cluster_name': 'mesh-%d' % i, 'cluster_id': i, 'max_connected_clusters': 255,
                  'routing_mode': 'tunnel',
                  'release': {'name': 'cilium', 'status': 'deployed', 'chart_version': '1.19.2'},
                  'ca': {'sha256': 'AA:' * 31 + 'AA'},
                  'datapath': {'ipam': 'kubernetes', 'cluster_pool_cidrs': [], 'kube_proxy_replacement': False,
                               'native_routing_cidr': None, 'chaining_mode': None}})
    d.update(kw)
    return d


def member(i, installed=False, info_kw=None, **kw):
    m = {'host': 'mesh-%d' % i, 'cluster_name': 'mesh-%d' % i, 'cluster_id': i, 'max_connected_clusters': 255,
         'routing_mode': 'tunnel', 'ipam_mode': 'kubernetes', 'chart_version': '1.19.2',
         'kube_proxy_replacement': False, 'service_type': 'LoadBalancer', 'context': 'mesh-%d' % i,
         'info': info(i, installed, **(info_kw or {}))}
    m.update(kw)
    return m


def mesh(n=3, installed=False):
    return [member(i, installed) for i in range(1, n + 1)]


def errors(problems, cluster=None, field=None):
    return [p for p in problems if p['severity'] == ERROR and (cluster is None or p['cluster'] == cluster)
            and (field is None or p['field'] == field)]


def warnings(problems, cluster=None, field=None):
    return [p for p in problems if p['severity'] == WARNING and (cluster is None or p['cluster'] == cluster)
            and (field is None or p['field'] == field)]


def only(problems, cluster, field, severity=ERROR):
    """The single problem of ``cluster``/``field``; every problem has cluster, field, problem and fix."""
    for p in problems:
        assert set(p) == {'cluster', 'field', 'problem', 'fix', 'severity'}
        assert p['problem'] and p['fix']
    found = [p for p in problems if p['cluster'] == cluster and p['field'] == field and p['severity'] == severity]
    assert len(found) == 1, problems
    return found[0]


# ---------------------------------------------------------------------------
# good meshes
# ---------------------------------------------------------------------------

@pytest.mark.parametrize('installed', [False, True])
def test_a_good_mesh_has_no_problem(installed):
    assert check(mesh(4, installed), ca_source='mesh-1') == []


def test_partial_descriptors_and_missing_values_do_not_crash():
    clusters = [{'host': 'a', 'cluster_name': 'a', 'cluster_id': 1, 'info': {'installed': False}},
                {'host': 'b', 'cluster_name': 'b', 'cluster_id': 2, 'info': None},
                {'host': 'c', 'cluster_name': 'c', 'cluster_id': 3}]
    assert check(clusters) == []


# ---------------------------------------------------------------------------
# connection
# ---------------------------------------------------------------------------

def test_a_cluster_that_cannot_be_read_is_a_row_of_its_own():
    clusters = mesh(3)
    clusters[1]['info'] = {'failed': True, 'msg': 'mesh-2: connection refused'}
    problems = check(clusters)
    p = only(problems, 'mesh-2', 'meshops_kubeconfig/meshops_context')
    assert 'connection refused' in p['problem'] and 'mesh-2' in p['fix']
    assert len(problems) == 1


def test_check_mode_reports_an_unreachable_cluster_as_a_warning_and_checks_the_others():
    clusters = mesh(3)
    clusters[1]['info'] = {'failed': True, 'msg': 'mesh-2: connection refused'}
    clusters[2]['cluster_id'] = 1  # a real problem among the reachable ones is still an error
    problems = check(clusters, unreachable=WARNING)
    p = only(problems, 'mesh-2', 'meshops_kubeconfig/meshops_context', severity=WARNING)
    assert 'connection refused' in p['problem']
    assert errors(problems, 'mesh-3')


def test_a_failed_result_registered_with_failed_when_false_is_still_a_failure():
    clusters = mesh(2)
    clusters[0]['info'] = {'failed': False, 'changed': False, 'msg': 'cannot load kubeconfig'}
    p = only(check(clusters), 'mesh-1', 'meshops_kubeconfig/meshops_context')
    assert 'cannot load kubeconfig' in p['problem']


def test_two_hosts_on_one_context():
    clusters = mesh(3)
    clusters[2]['context'] = 'mesh-2'
    clusters[2]['info'] = copy.deepcopy(clusters[1]['info'])
    problems = check(clusters)
    p = only(problems, 'mesh-3', 'meshops_kubeconfig/meshops_context')
    assert "'mesh-2'" in p['problem'] and 'mesh-2' in p['problem']
    assert 'meshops_context' in p['fix']
    # the same nodes seen twice: node IPs and pod CIDRs clash too
    assert errors(problems, 'mesh-3', 'nodes (InternalIP)') and errors(problems, 'mesh-3', 'cilium_pod_cidrs')


def test_same_context_in_different_kubeconfigs_is_fine():
    clusters = mesh(2)
    clusters[0].update(context='admin', kubeconfig='/a')
    clusters[1].update(context='admin', kubeconfig='/b')
    assert check(clusters) == []


# ---------------------------------------------------------------------------
# names
# ---------------------------------------------------------------------------

@pytest.mark.parametrize('name, text', [
    ('a' * 33, 'has 33 characters'),
    ('', 'no cluster name'),
    ('Mesh_1', 'not valid'),
    ('-mesh', 'not valid'),
    ('mesh-', 'not valid'),
    ('mesh.1', 'not valid'),
])
def test_bad_names(name, text):
    clusters = mesh(2)
    clusters[0]['cluster_name'] = name
    p = only(check(clusters), 'mesh-1', 'cilium_cluster_name')
    assert text in p['problem'] and 'cilium_cluster_name' in p['fix']


@pytest.mark.parametrize('name', ['a', 'a' * 32, 'mesh-1', '0-9'])
def test_good_names(name):
    clusters = mesh(2)
    clusters[0]['cluster_name'] = name
    assert check(clusters) == []


def test_default_name_with_an_id():
    clusters = mesh(2)
    clusters[0]['cluster_name'] = 'default'
    p = only(check(clusters), 'mesh-1', 'cilium_cluster_name')
    assert '"default"' in p['problem'] and "'mesh-1'" in p['fix']


def test_duplicate_names_reported_on_the_second():
    clusters = mesh(3)
    clusters[2]['cluster_name'] = 'mesh-1'
    problems = check(clusters)
    p = only(problems, 'mesh-3', 'cilium_cluster_name')
    assert 'also used by mesh-1' in p['problem']
    assert not errors(problems, 'mesh-1')


# ---------------------------------------------------------------------------
# IDs and maxConnectedClusters
# ---------------------------------------------------------------------------

@pytest.mark.parametrize('cid, text', [
    (None, 'no cluster ID'),
    ('', 'no cluster ID'),
    ('one', 'not a number'),
    (True, 'not a number'),
    (0, '"not part of a mesh"'),
    ('0', '"not part of a mesh"'),
    (256, 'outside 1..255'),
    (-1, 'outside 1..255'),
])
def test_bad_ids(cid, text):
    clusters = mesh(3)
    clusters[1]['cluster_id'] = cid
    p = only(check(clusters), 'mesh-2', 'cilium_cluster_id')
    assert text in p['problem']
    assert 'e.g. 2' in p['fix']  # the lowest unused ID


def test_ids_above_255_need_511_and_the_fix_says_so():
    clusters = mesh(2)
    clusters[1]['cluster_id'] = 300
    p = only(check(clusters), 'mesh-2', 'cilium_cluster_id')
    assert 'cilium_max_connected_clusters: 511' in p['fix']


def test_ids_up_to_511_with_511_mesh_wide():
    clusters = mesh(2)
    for c in clusters:
        c['max_connected_clusters'] = 511
    clusters[1]['cluster_id'] = 511
    assert check(clusters) == []
    clusters[1]['cluster_id'] = 512
    assert 'outside 1..511' in only(check(clusters), 'mesh-2', 'cilium_cluster_id')['problem']


def test_duplicate_ids():
    clusters = mesh(3)
    clusters[2]['cluster_id'] = 1
    problems = check(clusters)
    p = only(problems, 'mesh-3', 'cilium_cluster_id')
    assert 'cluster ID 1 is also used by mesh-1' in p['problem'] and 'e.g. 3' in p['fix']
    assert not errors(problems, 'mesh-1')


@pytest.mark.parametrize('value', [0, 256, 'lots', 1023])
def test_max_connected_clusters_only_255_or_511(value):
    clusters = mesh(2)
    clusters[0]['max_connected_clusters'] = value
    problems = check(clusters)
    p = only(problems, 'mesh-1', 'cilium_max_connected_clusters')
    assert 'only 255 or 511' in p['problem']


def test_one_max_connected_clusters_mesh_wide():
    clusters = mesh(3)
    clusters[2]['max_connected_clusters'] = 511
    problems = check(clusters)
    p = only(problems, 'mesh-3', 'cilium_max_connected_clusters')
    assert '511 differs from 255 in mesh-1, mesh-2' in p['problem'] and '(255)' in p['fix']
    assert len(errors(problems)) == 1


@pytest.mark.parametrize('why, kw', [
    ('ipam mode eni', {'ipam_mode': 'eni'}),
    ('eni.enabled', {'eni': True}),
    ('aws-cni', {'chaining_mode': 'aws-cni'}),
])
@pytest.mark.parametrize('cid, mcc, bad', [(127, 255, False), (128, 255, True), (255, 255, True),
                                           (383, 511, False), (384, 511, True), (511, 511, True)])
def test_eni_and_aws_cni_id_ranges(why, kw, cid, mcc, bad):
    clusters = mesh(2)
    for c in clusters:
        c['max_connected_clusters'] = mcc
    clusters[1].update(kw, cluster_id=cid)
    problems = check(clusters)
    if bad:
        p = only(problems, 'mesh-2', 'cilium_cluster_id')
        assert why in p['problem'] and '1..127' in p['fix'] and 'e.g. 2' in p['fix']
    else:
        assert errors(problems) == []


def test_eni_discovered_from_the_installed_chaining_mode():
    clusters = mesh(2, installed=True)
    clusters[1]['info']['datapath']['chaining_mode'] = 'aws-cni'
    clusters[1]['cluster_id'] = 200
    clusters[1]['allow_identity_change'] = True
    assert 'aws-cni' in only(check(clusters), 'mesh-2', 'cilium_cluster_id')['problem']


# ---------------------------------------------------------------------------
# identity changes and the release
# ---------------------------------------------------------------------------

@pytest.mark.parametrize('key, field, value', [
    ('cluster_name', 'cilium_cluster_name', 'renamed'),
    ('cluster_id', 'cilium_cluster_id', 9),
    ('max_connected_clusters', 'cilium_max_connected_clusters', 511),
])
def test_identity_change_of_an_installed_cluster(key, field, value):
    clusters = mesh(2, installed=True)
    if key == 'max_connected_clusters':
        clusters[1]['info']['max_connected_clusters'] = 511  # installed 511, the inventory says 255
    else:
        clusters[1][key] = value
    problems = check(clusters)
    p = [x for x in errors(problems, 'mesh-2', field) if 'installed' in x['problem']]
    assert len(p) == 1, problems
    assert 'cilium_allow_identity_change: true' in p[0]['fix'] and field in p[0]['fix']
    clusters[1]['allow_identity_change'] = True
    problems = check(clusters)
    assert [x for x in warnings(problems, 'mesh-2', field) if 'installed' in x['problem']]
    assert not [x for x in errors(problems, 'mesh-2', field) if 'installed' in x['problem']]


def test_an_installed_cluster_without_a_mesh_identity_may_get_one():
    clusters = mesh(2, installed=True)
    clusters[1]['info'].update(cluster_name='default', cluster_id=0)
    assert check(clusters) == []


@pytest.mark.parametrize('release, severity, text', [
    (None, ERROR, "no Helm release 'cilium'"),
    ({'status': 'pending-upgrade', 'chart_version': '1.19.2'}, ERROR, 'pending-upgrade'),
    # the statuses helm.refuse_pending refuses (common.PENDING_STATUSES): 'uninstalling' was let through
    ({'status': 'uninstalling', 'chart_version': '1.19.2'}, ERROR, 'uninstalling'),
    ({'status': 'failed', 'chart_version': '1.19.2'}, WARNING, 'failed'),
])
def test_release_state(release, severity, text):
    clusters = mesh(2, installed=True)
    clusters[0]['info']['release'] = release
    p = only(check(clusters), 'mesh-1', 'cilium_release_name', severity)
    assert text in p['problem']


# ---------------------------------------------------------------------------
# pod CIDRs and node IPs
# ---------------------------------------------------------------------------

def test_overlapping_node_pod_cidrs():
    clusters = mesh(3)
    clusters[2]['info']['nodes'].append(node('x', '127.0.3.99', '10.1.1.0/24'))
    p = only(check(clusters), 'mesh-3', 'cilium_pod_cidrs')
    assert '10.1.1.0/24 (node podCIDRs) overlaps 10.1.0.0/23 of mesh-1 (node podCIDRs)' in p['problem']
    assert '10.3.0.0/16 for mesh-3' in p['fix']


def test_declared_pod_cidrs_overlap():
    clusters = mesh(2)
    for i, c in enumerate(clusters):
        c['info']['nodes'] = []
        c['info']['pod_cidrs'] = []
        c['pod_cidrs'] = ['10.0.0.0/15'] if i == 0 else ['10.1.0.0/16']
    p = only(check(clusters), 'mesh-2', 'cilium_pod_cidrs')
    assert '10.1.0.0/16 (cilium_pod_cidrs) overlaps 10.0.0.0/15 of mesh-1' in p['problem']


def test_cluster_pool_default_collides():
    clusters = mesh(2)
    for c in clusters:
        c['ipam_mode'] = 'cluster-pool'
    p = only(check(clusters), 'mesh-2', 'cilium_pod_cidrs')
    assert 'chart default cluster-pool 10.0.0.0/8' in p['problem']


def test_cluster_pool_declared_ignores_node_cidrs():
    clusters = mesh(2)
    clusters[0].update(ipam_mode='cluster-pool', pod_cidrs=['10.2.0.0/16'])  # mesh-2's nodes' range, unused
    clusters[1].update(ipam_mode='cluster-pool', pod_cidrs=['10.20.0.0/16'])
    assert check(clusters) == []


def test_installed_cluster_pool_overlap_is_discovered():
    clusters = mesh(2, installed=True)
    clusters[1]['info']['datapath'].update(ipam='cluster-pool', cluster_pool_cidrs=['10.1.0.0/16'])
    p = only(check(clusters), 'mesh-2', 'cilium_pod_cidrs')
    assert 'installed clusterPoolIPv4PodCIDRList' in p['problem']


def test_bad_pod_cidr_and_declared_not_covering_nodes():
    clusters = mesh(2)
    clusters[0]['pod_cidrs'] = ['10.1.0.0/33', '10.100.0.0/16']
    problems = check(clusters)
    assert "'10.1.0.0/33' is not a CIDR" in only(problems, 'mesh-1', 'cilium_pod_cidrs')['problem']
    w = only(problems, 'mesh-1', 'cilium_pod_cidrs', WARNING)
    assert 'outside the declared cilium_pod_cidrs 10.100.0.0/16' in w['problem']


def test_many_nodes_make_one_row_per_cluster_pair():
    clusters = mesh(2)
    clusters[1]['info']['nodes'] = [node('m%d' % k, '127.0.2.%d' % k, '10.1.%d.0/24' % k) for k in range(100)]
    problems = check(clusters)
    p = only(problems, 'mesh-2', 'cilium_pod_cidrs')
    assert len(p['problem']) < 400


def test_overlapping_node_ips():
    clusters = mesh(2)
    clusters[1]['info']['nodes'][0]['internal_ips'] = ['127.0.1.11']
    p = only(check(clusters), 'mesh-2', 'nodes (InternalIP)')
    assert '127.0.1.11' in p['problem'] and 'mesh-1' in p['problem'] and 'meshops_context of mesh-2' in p['fix']


def test_node_ip_inside_a_pod_cidr():
    clusters = mesh(2)
    clusters[1]['info']['nodes'][0]['internal_ips'] = ['10.1.0.5']
    p = only(check(clusters), 'mesh-2', 'nodes (InternalIP)')
    assert 'inside the pod CIDRs of mesh-1' in p['problem']


# ---------------------------------------------------------------------------
# service CIDRs
# ---------------------------------------------------------------------------

def test_overlapping_service_cidrs_only_warn():
    clusters = mesh(3)
    clusters[0]['service_cidrs'] = ['10.96.0.0/12']
    clusters[2]['service_cidrs'] = ['10.96.0.0/16']
    problems = check(clusters)
    p = only(problems, 'mesh-3', 'cilium_service_cidr', WARNING)
    assert 'overlaps 10.96.0.0/12 of mesh-1' in p['problem']
    assert errors(problems) == []


def test_service_cidr_over_pod_cidr_and_bad_cidr():
    clusters = mesh(2)
    clusters[0]['service_cidrs'] = ['10.2.0.0/16', 'x']
    problems = check(clusters)
    assert len(errors(problems, 'mesh-1', 'cilium_service_cidr')) == 2


# ---------------------------------------------------------------------------
# routing
# ---------------------------------------------------------------------------

def test_one_routing_mode():
    clusters = mesh(3)
    clusters[1].update(routing_mode='native', native_routing_cidr='10.0.0.0/8')
    p = only(check(clusters), 'mesh-2', 'cilium_routing_mode')
    assert 'native differs from tunnel in mesh-1, mesh-3' in p['problem'] and 'tunnel' in p['fix']


def test_unknown_routing_mode():
    clusters = mesh(2)
    clusters[0]['routing_mode'] = 'direct'
    assert 'not tunnel or native' in only(check(clusters), 'mesh-1', 'cilium_routing_mode')['problem']


def test_routing_mode_change_of_an_installed_cluster_warns():
    clusters = mesh(2, installed=True)
    for c in clusters:
        c.update(routing_mode='native', native_routing_cidr='10.0.0.0/8')
    problems = check(clusters)
    assert len(warnings(problems, field='cilium_routing_mode')) == 2 and errors(problems) == []


def test_native_routing_cidr_missing_suggests_a_covering_one():
    clusters = mesh(3)
    for c in clusters:
        c['routing_mode'] = 'native'
    problems = check(clusters)
    assert len(errors(problems, field='cilium_ipv4_native_routing_cidr')) == 3
    assert 'e.g. 10.0.0.0/14' in errors(problems, 'mesh-1')[0]['fix']


def test_native_routing_cidr_must_cover_every_cluster():
    clusters = mesh(3)
    for c in clusters:
        c.update(routing_mode='native', native_routing_cidr='10.0.0.0/15')  # 10.0-10.1 only
    problems = check(clusters)
    for h in ('mesh-1', 'mesh-2', 'mesh-3'):
        rows = errors(problems, h, 'cilium_ipv4_native_routing_cidr')
        assert [r for r in rows if 'of mesh-2' in r['problem']] and [r for r in rows if 'of mesh-3' in r['problem']]
        assert not [r for r in rows if 'of mesh-1' in r['problem']]
    clusters[0]['native_routing_cidr'] = 'nope'
    assert "'nope' is not a CIDR" in errors(check(clusters), 'mesh-1')[0]['problem']


def test_covering():
    nets = [ipaddress.ip_network(n) for n in ('10.1.0.0/16', '10.3.0.0/16')]
    assert str(covering(nets)) == '10.0.0.0/14'
    assert covering([]) is None
    assert covering([ipaddress.ip_network('10.0.0.0/8'), ipaddress.ip_network('fd00::/8')]) is None


# ---------------------------------------------------------------------------
# CA
# ---------------------------------------------------------------------------

def test_ca_mismatch():
    clusters = mesh(3, installed=True)
    clusters[2]['info']['ca'] = {'sha256': 'BB:' * 31 + 'BB'}
    p = only(check(clusters, ca_source='mesh-1'), 'mesh-3', 'cilium-ca')
    assert 'differs from the mesh CA of mesh-1' in p['problem'] and 'BB:BB' in p['problem']
    assert 'replace cilium-ca in mesh-3 with the one of mesh-1' in p['fix']


def test_ca_source_without_a_ca_while_others_have_one():
    clusters = mesh(3, installed=True)
    clusters[0]['info']['ca'] = None
    p = only(check(clusters, ca_source='mesh-1'), 'mesh-1', 'cilium-ca')
    assert 'set cilium_ca_source: mesh-2' in p['fix']


def test_ca_compared_without_a_source():
    clusters = mesh(3, installed=True)
    clusters[1]['info']['ca'] = {'sha256': 'CC:' * 31 + 'CC'}
    p = only(check(clusters), 'mesh-2', 'cilium-ca')
    assert 'mesh-1' in p['problem']


# ---------------------------------------------------------------------------
# versions
# ---------------------------------------------------------------------------

@pytest.mark.parametrize('installed, target, text', [
    ('1.17.14', '1.19.2', 'skips a minor version'),
    ('1.19.2', '2.0.0', 'skips a minor version'),
    ('1.19.2', '1.18.8', 'downgrades'),
])
def test_bad_upgrades(installed, target, text):
    clusters = mesh(2, installed=True)
    clusters[0]['info']['release']['chart_version'] = installed
    clusters[0]['chart_version'] = target
    clusters[1]['chart_version'] = target
    rows = errors(check(clusters), 'mesh-1', 'cilium_chart_version')
    assert len(rows) == 1 and text in rows[0]['problem']
    if text.startswith('skips'):
        assert 'newest 1.18.x' in rows[0]['fix'] or 'newest 1.20.x' in rows[0]['fix']


@pytest.mark.parametrize('installed, target', [('1.18.8', '1.19.2'), ('1.19.1', '1.19.2'), ('1.19.2', '1.19.1')])
def test_good_upgrades(installed, target):
    clusters = mesh(2, installed=True)
    clusters[0]['info']['release']['chart_version'] = installed
    for c in clusters:
        c['chart_version'] = target
    assert check(clusters) == []


def test_version_skew():
    clusters = mesh(3)
    clusters[1]['chart_version'] = '1.18.8'
    clusters[2]['chart_version'] = '1.17.14'
    problems = check(clusters)
    assert 'one minor version behind' in only(problems, 'mesh-2', 'cilium_chart_version', WARNING)['problem']
    assert 'more than one minor' in only(problems, 'mesh-3', 'cilium_chart_version')['problem']
    assert not errors(problems, 'mesh-1')


def test_bad_version():
    clusters = mesh(2)
    clusters[0]['chart_version'] = 'latest'
    assert 'not a version number' in only(check(clusters), 'mesh-1', 'cilium_chart_version')['problem']


def test_a_local_target_chart_that_is_not_there_is_an_error(tmp_path):
    there = tmp_path / 'cilium-1.20.2.tgz'
    there.write_bytes(b'')
    clusters = mesh(3)
    clusters[0]['chart_ref'] = str(there)
    clusters[1]['chart_ref'] = str(tmp_path / 'cilium-1.20.99.tgz')
    clusters[1]['chart_version'] = '1.20.99'
    clusters[2]['chart_ref'] = 'cilium/cilium'
    problems = check(clusters)
    p = only(problems, 'mesh-2', 'cilium_chart_ref')
    assert p['severity'] == ERROR
    assert p['problem'] == ('the target chart %s (cilium_chart_version 1.20.99) does not exist on the controller'
                            % (tmp_path / 'cilium-1.20.99.tgz'))
    assert 'helm pull cilium/cilium --version 1.20.99' in p['fix']
    # a chart that is there, and a repository chart (helm resolves it), are not refused
    assert not [q for q in problems if q['field'] == 'cilium_chart_ref' and q['cluster'] != 'mesh-2']


@pytest.mark.parametrize('ref, local', [
    ('/charts/cilium.tgz', True), ('./cilium', True), ('../c/cilium', True), ('cilium-1.20.2.tgz', True),
    ('~/charts/cilium', True), ('cilium/cilium', False), ('oci://quay.io/cilium/charts/cilium', False),
    ('https://helm.cilium.io/cilium-1.20.2.tgz', False), ('', False), (None, False)])
def test_which_chart_refs_are_local_paths(ref, local):
    assert (local_chart_path(ref) is not None) is local


# ---------------------------------------------------------------------------
# kube-proxy replacement and NodePorts
# ---------------------------------------------------------------------------

@pytest.mark.parametrize('value', ['strict', 'partial', 'disabled', 'probe', 'Strict'])
def test_removed_kpr_modes(value):
    clusters = mesh(2)
    clusters[0]['kube_proxy_replacement'] = value
    p = only(check(clusters), 'mesh-1', 'cilium_kube_proxy_replacement')
    assert 'removed in Cilium 1.16' in p['problem'] and 'true' in p['fix'] and 'false' in p['fix']


def test_removed_kpr_mode_is_fine_for_an_old_chart():
    clusters = mesh(2)
    for c in clusters:
        c['chart_version'] = '1.15.6'
    clusters[0]['kube_proxy_replacement'] = 'strict'
    # only the supported chart range speaks about a 1.15 chart (tested in test_chart_range)
    assert {p['field'] for p in check(clusters)} == {'cilium_chart_version'}


@pytest.mark.parametrize('version, severity', [
    ('1.16.19', ERROR), ('1.17.0', None), ('1.20.2', None), ('1.21.0', WARNING), ('2.0.0', WARNING)])
def test_chart_range(version, severity):
    """Below SUPPORTED_CHART_RANGE refused, above it a warning, inside nothing (edges included)."""
    clusters = mesh(2)
    clusters[0]['chart_version'] = version
    clusters[1]['chart_version'] = version
    problems = [p for p in check(clusters) if 'supported' in p['problem'] or 'tested' in p['problem']]
    if severity is None:
        assert problems == []
        return
    row = only(problems, 'mesh-1', 'cilium_chart_version', severity)
    oldest, newest = ['%d.%d' % v for v in SUPPORTED_CHART_RANGE]
    assert '%s to %s' % (oldest, newest) in row['problem'] and version in row['problem']
    assert 'mesh-1' in row['fix'] and ('%s.x' % (oldest if severity == ERROR else newest)) in row['fix']
    assert only(problems, 'mesh-2', 'cilium_chart_version', severity)


@pytest.mark.parametrize('value, ok', [(True, True), ('true', True), ('false', True), ('maybe', False)])
def test_kpr_values(value, ok):
    clusters = mesh(2)
    clusters[0].update(kube_proxy_replacement=value, k8s_service_host='10.0.0.1')
    assert (errors(check(clusters)) == []) is ok


def test_kpr_true_needs_k8s_service_host():
    clusters = mesh(2)
    clusters[0]['kube_proxy_replacement'] = True
    assert 'k8sServiceHost' in only(check(clusters), 'mesh-1', 'cilium_kube_proxy_replacement')['problem']


def kpr_nodeport(clusters, port=None, kpr=True):
    for c in clusters:
        c.update(service_type='NodePort', kube_proxy_replacement=kpr, k8s_service_host='auto')
        if port:
            c['node_port'] = port
    return clusters


def test_identical_nodeports_with_kpr_get_distinct_suggestions():
    problems = check(kpr_nodeport(mesh(3)))
    rows = errors(problems, field='cilium_clustermesh_node_port')
    assert [r['cluster'] for r in rows] == ['mesh-2', 'mesh-3']
    assert 'NodePort 32379 (chart default) is also used by mesh-1' in rows[0]['problem']
    assert 'e.g. 32380 for mesh-2' in rows[0]['fix'] and 'e.g. 32381 for mesh-3' in rows[1]['fix']


def test_identical_nodeports_without_kpr_are_fine():
    assert check(kpr_nodeport(mesh(3), kpr=False)) == []


def test_distinct_nodeports_are_fine_and_installed_ports_count():
    clusters = kpr_nodeport(mesh(2, installed=True))
    clusters[0]['info']['endpoint'] = {'service_type': 'NodePort', 'port': 32000, 'ips': []}
    clusters[1]['info']['endpoint'] = {'service_type': 'NodePort', 'port': 32001, 'ips': []}
    assert check(clusters) == []
    clusters[1]['info']['endpoint']['port'] = 32000
    p = only(check(clusters), 'mesh-2', 'cilium_clustermesh_node_port')
    assert '32000 (installed)' in p['problem']


def test_service_type_and_node_port_range():
    clusters = mesh(2)
    clusters[0]['service_type'] = 'ClusterIP'
    clusters[1].update(service_type='NodePort', node_port=2379)
    problems = check(clusters)
    assert 'not reachable' in only(problems, 'mesh-1', 'cilium_clustermesh_service_type')['problem']
    assert 'outside' in only(problems, 'mesh-2', 'cilium_clustermesh_node_port', WARNING)['problem']


# ---------------------------------------------------------------------------
# all at once, formatting, helpers
# ---------------------------------------------------------------------------

def test_everything_at_once_sorted_by_cluster_errors_first():
    clusters = mesh(4)
    clusters[0]['cluster_name'] = 'default'
    clusters[1]['cluster_id'] = 0
    clusters[2]['kube_proxy_replacement'] = 'strict'
    clusters[3]['service_cidrs'] = ['10.96.0.0/12']
    clusters[0]['service_cidrs'] = ['10.96.0.0/12']
    clusters[3]['max_connected_clusters'] = 511
    problems = check(clusters)
    assert [p['cluster'] for p in problems] == ['mesh-1', 'mesh-2', 'mesh-3', 'mesh-4', 'mesh-4']
    assert [p['severity'] for p in problems][-2:] == [ERROR, WARNING]
    table = format_table(problems)
    lines = table.splitlines()
    assert lines[0].startswith('CLUSTER') and len(lines) == 6
    assert all(' | fix: ' in line for line in lines[1:])
    assert summary(problems, 4).startswith('preflight found 4 error(s) and 1 warning(s) in 4 of 4 clusters')


def test_summary_and_empty_table():
    assert format_table([]) == 'no problems found'
    assert summary([], 3) == 'preflight passed for 3 clusters'


def test_helpers():
    assert as_int('7') == 7 and as_int(True) is None and as_int('x') is None and as_int(None) is None
    assert version_tuple('v1.19') == (1, 19, 0) and version_tuple('1.19.2-rc.1') == (1, 19, 2)
    assert version_tuple('latest') is None
    assert normalize_kpr('TRUE', refuse=False) is True and normalize_kpr('off', refuse=False) is False
    assert normalize_kpr('strict', refuse=False) == 'strict'


def test_parse_datapath():
    cm = {'metadata': {'name': 'cilium-config'}, 'data': {
        'ipam': 'cluster-pool', 'cluster-pool-ipv4-cidr': '10.1.0.0/16 10.2.0.0/16',
        'kube-proxy-replacement': 'true', 'ipv4-native-routing-cidr': '10.0.0.0/8', 'cni-chaining-mode': 'aws-cni'}}
    assert parse_datapath(cm) == {'ipam': 'cluster-pool', 'cluster_pool_cidrs': ['10.1.0.0/16', '10.2.0.0/16'],
                                  'kube_proxy_replacement': True, 'native_routing_cidr': '10.0.0.0/8',
                                  'chaining_mode': 'aws-cni'}
    assert parse_datapath({'data': {}})['cluster_pool_cidrs'] == []
