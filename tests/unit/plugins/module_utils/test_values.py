# -*- coding: utf-8 -*-
# Copyright: meshops.cilium contributors
# SPDX-License-Identifier: Apache-2.0
"""values.py: paths, option -> value mapping (validated against the real chart schemas),
merge rules, diffs and the peer list form per chart version."""

import itertools
import json
import os
import re

import pytest

from ansible_collections.meshops.cilium.plugins.module_utils.values import (
    HOST_ALIASES_KEY,
    MANAGED,
    clusters_value,
    delete_path,
    desired_install_values,
    diff_values,
    format_path,
    get_path,
    identity_changes,
    merge_over_current,
    merge_user_values,
    normalize_kpr,
    peer_host_aliases,
    same,
    set_path,
    validate_install_params,
)

jsonschema = pytest.importorskip('jsonschema')

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))))
SHARED = os.environ.get('MESHOPS_SHARED_DIR') or os.path.join(os.path.dirname(REPO), 'shared')
CHART_DIR = os.path.join(SHARED, 'cilium-chart')
CHART_VERSIONS = ('1.17.17', '1.18.11', '1.19.5', '1.20.2')


_CACHE = {}


def _schema(version):
    path = os.path.join(CHART_DIR, version, 'values.schema.json')
    if not os.path.exists(path):
        pytest.skip('chart schema %s not found (set MESHOPS_SHARED_DIR)' % path)
    if version not in _CACHE:
        with open(path) as f:
            schema = json.load(f)
        cls = jsonschema.validators.validator_for(schema)
        cls.check_schema(schema)
        _CACHE[version] = (schema, cls(schema))
    return _CACHE[version][0]


def _validate(values, version):
    _schema(version)
    _CACHE[version][1].validate(values)


def _schema_node(schema, path):
    node = schema
    for part in path.split('.'):
        node = (node.get('properties') or {}).get(part)
        if node is None:
            return None
    return node


BASE = dict(cluster_name='mesh-1', cluster_id=1, ipam_mode='kubernetes', kube_proxy_replacement=True,
            k8s_service_host='10.0.0.1', k8s_service_port=6443, max_connected_clusters=255,
            clustermesh_apiserver=dict(enabled=True, service_type='LoadBalancer', kvstoremesh=True,
                                       tls_auto_method='helm'))

VARIANTS = [
    {},
    dict(kube_proxy_replacement=False, k8s_service_host=None, k8s_service_port=None),
    dict(k8s_service_host='auto', k8s_service_port=None),
    dict(ipam_mode='cluster-pool', cluster_pool_ipv4_pod_cidrs=['10.1.0.0/16', '10.2.0.0/16']),
    dict(routing_mode='native', ipv4_native_routing_cidr='10.0.0.0/8'),
    dict(routing_mode='tunnel', tunnel_protocol='geneve'),
    dict(max_connected_clusters=511, cluster_id=400),
    dict(encryption_type='wireguard'),
    dict(encryption_type='ipsec'),
    dict(encryption_type='ipsec', ipsec_key_rotation_duration='15m'),
    dict(ipsec_key_rotation_duration='1h30m'),
    dict(encryption_type='disabled'),
    dict(clustermesh_apiserver=dict(enabled=True, service_type='NodePort', node_port=32380,
                                    annotations={'service.beta.kubernetes.io/aws-load-balancer-scheme': 'internal'},
                                    kvstoremesh=False, tls_auto_method='cronJob')),
    dict(clustermesh_apiserver=dict(enabled=False)),
    dict(clustermesh_apiserver=None),
]


def _params(variant):
    p = dict(BASE)
    p.update(variant)
    return p


@pytest.mark.parametrize('version', CHART_VERSIONS)
@pytest.mark.parametrize('variant', VARIANTS, ids=lambda v: ','.join(sorted(v)) or 'base')
def test_desired_values_validate_against_real_schema(version, variant):
    params = _params(variant)
    validate_install_params(params)
    values = desired_install_values(params)
    _validate(values, version)
    # also merged with free-form user values
    merged = merge_user_values({'hubble': {'enabled': False}, 'operator': {'replicas': 1}}, values)
    _validate(merged, version)


@pytest.mark.parametrize('version', CHART_VERSIONS)
def test_every_managed_key_exists_in_the_chart(version):
    """Each managed key is declared by the chart's schema (kubeProxyReplacement is only a
    commented-out key in 1.17's values.yaml, so its schema does not declare it)."""
    schema = _schema(version)
    missing = [k for k in MANAGED if _schema_node(schema, k) is None]
    # read by the templates of chart 1.20 (clustermesh-apiserver, agent and operator pod templates) but not
    # declared in its values.yaml nor its schema (which allows it: clustermesh has no additionalProperties
    # false); Cilium's own clustermesh conformance workflow sets it. Older charts ignore it.
    assert HOST_ALIASES_KEY in missing
    assert _schema(version)['properties']['clustermesh'].get('additionalProperties') is not False
    missing.remove(HOST_ALIASES_KEY)
    if version.startswith('1.17'):
        assert missing == ['kubeProxyReplacement']
        with open(os.path.join(CHART_DIR, version, 'values.yaml')) as f:
            assert '#kubeProxyReplacement:' in f.read()
    else:
        assert missing == []


@pytest.mark.parametrize('version', CHART_VERSIONS)
def test_schema_types_of_managed_keys(version):
    """Our value types are the chart's: a wrong type is refused by the real schema."""
    with pytest.raises(jsonschema.ValidationError):
        _validate({'cluster': {'id': '1'}}, version)
    with pytest.raises(jsonschema.ValidationError):
        _validate({'clustermesh': {'useAPIServer': 'true'}}, version)


@pytest.mark.parametrize('version', CHART_VERSIONS)
def test_clusters_value_validates_against_schema(version):
    peers = [{'name': 'mesh-2', 'port': 2379, 'ips': ['172.18.0.10']},
             {'name': 'mesh-3', 'port': 32379, 'address': 'mesh-3.example.com'}]
    v = clusters_value(peers, version)
    _validate({'clustermesh': {'config': {'enabled': True, 'clusters': v}}}, version)


def test_desired_values_mapping():
    values = desired_install_values(_params(dict(cluster_pool_ipv4_pod_cidrs=['10.1.0.0/16'],
                                                 ipam_mode='cluster-pool', routing_mode='tunnel',
                                                 tunnel_protocol='vxlan', encryption_type='wireguard')))
    assert values == {
        'cluster': {'name': 'mesh-1', 'id': 1},
        'ipam': {'mode': 'cluster-pool', 'operator': {'clusterPoolIPv4PodCIDRList': ['10.1.0.0/16']}},
        'kubeProxyReplacement': True,
        'k8sServiceHost': '10.0.0.1',
        'k8sServicePort': 6443,
        'routingMode': 'tunnel',
        'tunnelProtocol': 'vxlan',
        'encryption': {'enabled': True, 'type': 'wireguard'},
        # config.enabled: the chart (1.19+) renders the users ConfigMap the Deployment mounts only then
        'clustermesh': {'maxConnectedClusters': 255, 'useAPIServer': True, 'config': {'enabled': True},
                        'apiserver': {'service': {'type': 'LoadBalancer'}, 'kvstoremesh': {'enabled': True},
                                      'tls': {'auto': {'enabled': True, 'method': 'helm'}}}},
    }
    for key in [format_path(p) for p in _leaf_paths(values)]:
        assert any(key == m or key.startswith(m + '.') or key.startswith(m + '[') for m in MANAGED), key


@pytest.mark.parametrize('option,value', [(False, True), (True, False), (None, None)])
def test_peer_host_aliases_value(option, value):
    """peer_host_aliases=false (the module's default) disables the chart's hostAliases; true asks for them;
    not given (a caller without the option) leaves the key out."""
    params = {} if option is None else {'peer_host_aliases': option}
    values = desired_install_values(params)
    assert get_path(values, HOST_ALIASES_KEY) is value
    if value is None:
        assert values == {}
    # a contradicting value under values is refused, naming the key
    if value is not None:
        with pytest.raises(ValueError, match='clustermesh.disableKubernetesHostAliases'):
            merge_user_values({'clustermesh': {'disableKubernetesHostAliases': not value}}, values)


@pytest.mark.parametrize('chart,values,expected', [
    ('1.20.2', {'clustermesh': {'disableKubernetesHostAliases': True}}, False),
    ('1.20.0-rc.1', {'clustermesh': {'disableKubernetesHostAliases': True}}, False),
    ('1.21.0', {'clustermesh': {'disableKubernetesHostAliases': True}}, False),
    ('1.20.2', {'clustermesh': {'disableKubernetesHostAliases': False}}, True),
    ('1.20.2', {}, True),
    ('1.19.5', {'clustermesh': {'disableKubernetesHostAliases': True}}, True),  # 1.19 ignores it
    (None, {'clustermesh': {'disableKubernetesHostAliases': True}}, None),
])
def test_peer_host_aliases_of_a_release(chart, values, expected):
    assert peer_host_aliases(values, chart) is expected


def test_ipsec_values_mapping():
    values = desired_install_values({'encryption_type': 'ipsec', 'ipsec_key_rotation_duration': '15m'})
    assert values == {'encryption': {'enabled': True, 'type': 'ipsec', 'ipsec': {'keyRotationDuration': '15m'}}}
    assert desired_install_values({'encryption_type': 'disabled'}) == {'encryption': {'enabled': False}}


@pytest.mark.parametrize('version', CHART_VERSIONS)
def test_key_rotation_duration_is_a_string_in_the_schema(version):
    _validate({'encryption': {'ipsec': {'keyRotationDuration': '5m'}}}, version)
    with pytest.raises(jsonschema.ValidationError):
        _validate({'encryption': {'ipsec': {'keyRotationDuration': 300}}}, version)


def _leaf_paths(d, prefix=()):
    for k, v in d.items():
        if isinstance(v, dict) and v:
            yield from _leaf_paths(v, prefix + (k,))
        else:
            yield prefix + (k,)


def test_unset_options_set_nothing():
    assert desired_install_values({}) == {}
    assert desired_install_values({'clustermesh_apiserver': {'enabled': False, 'service_type': 'NodePort'}}) == {
        'clustermesh': {'useAPIServer': False}}


# -- validation ----------------------------------------------------------------------

@pytest.mark.parametrize('kpr', ['strict', 'partial', 'disabled', 'probe', 'Strict'])
def test_removed_kpr_modes_refused(kpr):
    with pytest.raises(ValueError, match='removed in Cilium 1.16.*true.*false'):
        validate_install_params(_params(dict(kube_proxy_replacement=kpr)))


@pytest.mark.parametrize('raw,expected', [(True, True), ('true', True), ('False', False), (None, None)])
def test_kpr_normalized(raw, expected):
    assert normalize_kpr(raw) is expected


@pytest.mark.parametrize('change,match', [
    (dict(cluster_name='Mesh_1'), 'cluster_name .* is not valid'),
    (dict(cluster_name='a' * 33), 'is not valid'),
    (dict(cluster_name='default'), '"default" cannot be used'),
    (dict(cluster_id=256), r'outside 0\.\.255.*511'),
    (dict(cluster_id=600, max_connected_clusters=511), r'outside 0\.\.511'),
    (dict(max_connected_clusters=300), '255 or 511'),
    (dict(k8s_service_host=None), 'needs k8s_service_host'),
    (dict(k8s_service_port=None), 'without k8s_service_port'),
    (dict(routing_mode='native'), 'needs ipv4_native_routing_cidr'),
    (dict(routing_mode='bogus'), 'routing_mode must be'),
    (dict(ipv4_native_routing_cidr='10.0.0.1/8', routing_mode='native'), 'not a network CIDR'),
    (dict(cluster_pool_ipv4_pod_cidrs=['10.1.0.0/16']), 'only used with ipam_mode=cluster-pool'),
    (dict(encryption_type='ipsec', ipsec_key_rotation_duration='5'), 'duration such as 5m'),
    (dict(encryption_type='ipsec', ipsec_key_rotation_duration='5 minutes'), 'duration such as 5m'),
    (dict(encryption_type='wireguard', ipsec_key_rotation_duration='5m'), 'only used with encryption_type=ipsec'),
    (dict(clustermesh_apiserver=dict(enabled=True, service_type='ClusterIP')), 'NodePort or LoadBalancer'),
    (dict(clustermesh_apiserver=dict(enabled=True, tls_auto_method='certmanager')), 'helm or cronJob'),
    (dict(clustermesh_apiserver=dict(enabled=True, annotations={'a': 1})), 'must be a string'),
])
def test_bad_options_refused(change, match):
    with pytest.raises(ValueError, match=match):
        validate_install_params(_params(change))


def test_cluster_pool_without_cidrs_warns_in_a_mesh():
    w = validate_install_params(_params(dict(ipam_mode='cluster-pool')))
    assert any('10.0.0.0/8' in x for x in w)
    assert validate_install_params(_params({})) == []


# -- merging -------------------------------------------------------------------------

def test_user_values_merged_under_ours():
    managed = desired_install_values(_params({}))
    merged = merge_user_values({'hubble': {'relay': {'enabled': True}}, 'cluster': {'name': 'mesh-1'},
                                'clustermesh': {'apiserver': {'replicas': 2}}}, managed)
    assert merged['hubble'] == {'relay': {'enabled': True}}
    assert merged['clustermesh']['apiserver']['replicas'] == 2
    assert merged['clustermesh']['apiserver']['service']['type'] == 'LoadBalancer'
    assert merged['cluster'] == {'name': 'mesh-1', 'id': 1}


@pytest.mark.parametrize('user,match', [
    ({'cluster': {'name': 'other'}}, "cluster.name='other' contradicts .*'mesh-1'"),
    ({'cluster': {'id': 1.5}}, 'cluster.id=1.5 contradicts'),
    ({'kubeProxyReplacement': 'true'}, "kubeProxyReplacement='true' contradicts .*True"),
    ({'kubeProxyReplacement': 1}, 'kubeProxyReplacement=1 contradicts'),
    ({'clustermesh': {'apiserver': 'x'}}, 'clustermesh.apiserver is .x., but this module sets'),
    ({'clustermesh': {'apiserver': {'service': {'type': 'NodePort'}}}}, 'service.type=.NodePort. contradicts'),
])
def test_contradictions_refused(user, match):
    managed = desired_install_values(_params({}))
    with pytest.raises(ValueError, match=match):
        merge_user_values(user, managed)


def test_annotations_merge_key_by_key():
    managed = desired_install_values(_params(dict(clustermesh_apiserver=dict(
        enabled=True, annotations={'networking.gke.io/load-balancer-type': 'Internal'}))))
    merged = merge_user_values({'clustermesh': {'apiserver': {'service': {'annotations': {'x.io/a': 'b'}}}}},
                               managed)
    assert merged['clustermesh']['apiserver']['service']['annotations'] == {
        'networking.gke.io/load-balancer-type': 'Internal', 'x.io/a': 'b'}
    with pytest.raises(ValueError, match=r'annotations\["networking.gke.io/load-balancer-type"\]'):
        merge_user_values({'clustermesh': {'apiserver': {'service': {'annotations': {
            'networking.gke.io/load-balancer-type': 'External'}}}}}, managed)


def test_merge_over_current_keeps_peers_and_drops_stale_keys():
    current = {'cluster': {'name': 'mesh-1', 'id': 1}, 'debug': {'enabled': True},
               'clustermesh': {'useAPIServer': True, 'config': {'enabled': True, 'clusters': [
                   {'name': 'mesh-2', 'port': 2379, 'ips': ['10.0.0.2']}]}}}
    desired = {'cluster': {'name': 'mesh-1', 'id': 1}, 'clustermesh': {'useAPIServer': True}}
    out = merge_over_current(current, desired)
    assert out['clustermesh']['config'] == current['clustermesh']['config']
    assert 'debug' not in out
    # desired's own value wins over current; the peers written by clustermesh_connect stay
    desired2 = {'clustermesh': {'config': {'enabled': False}}}
    assert merge_over_current(current, desired2)['clustermesh']['config'] == {
        'enabled': False, 'clusters': current['clustermesh']['config']['clusters']}
    # extra keep paths
    out = merge_over_current(current, {}, keep=('clustermesh.config', 'clustermesh.useAPIServer'))
    assert out['clustermesh']['useAPIServer'] is True
    assert merge_over_current({}, desired) == desired


def test_identity_changes():
    cur = {'cluster': {'name': 'mesh-1', 'id': 1}}
    assert identity_changes(cur, {'cluster': {'name': 'mesh-1', 'id': 1}}) == []
    desired = {'cluster': {'name': 'mesh-9', 'id': 2}, 'clustermesh': {'maxConnectedClusters': 511}}
    assert identity_changes(cur, desired) == [
        ('cluster.name', 'mesh-1', 'mesh-9'), ('cluster.id', 1, 2), ('clustermesh.maxConnectedClusters', None, 511)]


# -- paths and diffs -----------------------------------------------------------------

def test_paths():
    d = {}
    set_path(d, 'a.b.c', 1)
    set_path(d, ('a', 'x.y'), 2)
    assert get_path(d, 'a.b.c') == 1 and get_path(d, ('a', 'x.y')) == 2
    assert get_path(d, 'a.b.zz', 'dflt') == 'dflt' and get_path(d, 'a.b.c.d') is None
    assert delete_path(d, 'a.b.c') and d == {'a': {'x.y': 2}}
    assert not delete_path(d, 'nope.x')
    assert delete_path(d, ('a', 'x.y')) and d == {}
    with pytest.raises(ValueError, match='a.b is 1, not a mapping'):
        set_path({'a': {'b': 1}}, 'a.b.c', 2)
    assert format_path(('svc', 'annotations', 'a.io/b')) == 'svc.annotations["a.io/b"]'


def test_diff_values():
    before = {'a': {'b': 1, 'c': [1, 2]}, 'k': True, 'gone': 1}
    after = {'a': {'b': 1, 'c': [1, 3]}, 'k': 1, 'new': {'x': 'y'}}
    assert diff_values(before, after) == ['a.c', 'gone', 'k', 'new.x']
    assert diff_values(before, before) == []


def test_same_tells_bools_from_numbers():
    assert same({'a': [1, {'b': True}]}, {'a': [1, {'b': True}]})
    assert not same(True, 1) and not same(1, '1') and same(1, 1.0)
    assert not same({'a': 1}, {'a': 1, 'b': 2})


@pytest.mark.parametrize('version,form', [('1.17.14', list), ('1.19.2', list), ('1.20.0', dict),
                                          ('1.21.0-pre.1', dict)])
def test_clusters_value_form(version, form):
    peers = [{'name': 'mesh-3', 'port': 2379, 'address': 'm3.example'},
             {'name': 'mesh-2', 'port': 32379, 'ips': ['10.0.0.2', '10.0.0.3']}]
    v = clusters_value(peers, version)
    assert isinstance(v, form)
    if form is list:
        assert v == [{'name': 'mesh-2', 'port': 32379, 'ips': ['10.0.0.2', '10.0.0.3']},
                     {'name': 'mesh-3', 'port': 2379, 'address': 'm3.example'}]
    else:
        assert v == {'mesh-2': {'port': 32379, 'ips': ['10.0.0.2', '10.0.0.3']},
                     'mesh-3': {'port': 2379, 'address': 'm3.example'}}


def test_clusters_value_needs_an_endpoint():
    with pytest.raises(ValueError, match='mesh-2 has neither ips nor address'):
        clusters_value([{'name': 'mesh-2', 'port': 1}], '1.19.2')


def test_all_variant_combinations_are_distinct_and_pure():
    seen = []
    for a, b in itertools.combinations(VARIANTS[:6], 2):
        p = _params(a)
        p.update(b)
        try:
            validate_install_params(p)
        except ValueError:
            continue
        before = json.dumps(p, sort_keys=True)
        seen.append(desired_install_values(p))
        assert json.dumps(p, sort_keys=True) == before  # inputs untouched
    assert seen


# -- planning install / enable ---------------------------------------------------------

from ansible_collections.meshops.cilium.plugins.module_utils.values import plan_enable, plan_install  # noqa: E402


def test_plan_install_fresh_and_idempotent():
    plan = plan_install(_params({}), installed=False)
    assert plan['action'] == 'install' and 'cluster.name' in plan['changed_keys']
    current = plan['desired']
    again = plan_install(_params({}), current_values=current, current_chart_version='1.19.2', installed=True,
                         target_chart_version='1.19.2')
    assert again['action'] == 'none' and again['changed_keys'] == [] and again['chart_change'] is None


def test_plan_install_keeps_peers_and_chart_change():
    current = desired_install_values(_params({}))
    current['clustermesh']['config'] = {'enabled': True, 'clusters': [{'name': 'mesh-2', 'port': 2379,
                                                                       'ips': ['10.0.0.2']}]}
    plan = plan_install(_params({}), current, '1.18.8', True, '1.19.2')
    assert plan['action'] == 'upgrade' and plan['chart_change'] == ('1.18.8', '1.19.2')
    assert plan['desired']['clustermesh']['config'] == current['clustermesh']['config']
    assert plan['changed_keys'] == []


def test_plan_install_leaves_apiserver_alone_when_not_given():
    current = desired_install_values(_params({}))
    current['clustermesh']['apiserver']['service']['nodePort'] = 32001
    plan = plan_install(_params(dict(clustermesh_apiserver=None)), current, '1.19.2', True)
    assert plan['action'] == 'none'
    plan = plan_install(_params({}), current, '1.19.2', True)
    assert plan['changed_keys'] == ['clustermesh.apiserver.service.nodePort']


def test_plan_install_identity_change_refused_unless_allowed():
    current = desired_install_values(_params({}))
    with pytest.raises(ValueError, match=r'cluster.id \(1 -> 7\).*allow_identity_change'):
        plan_install(_params(dict(cluster_id=7)), current, '1.19.2', True)
    plan = plan_install(_params(dict(cluster_id=7, allow_identity_change=True)), current, '1.19.2', True)
    assert plan['identity'] == [('cluster.id', 1, 7)]
    # a cluster without an ID (chart default 0) is not in a mesh: giving it one is fine
    plan = plan_install(_params({}), {'ipam': {'mode': 'kubernetes'}}, '1.19.2', True)
    assert plan['action'] == 'upgrade'


@pytest.mark.parametrize('user,match', [({'kubeProxyReplacement': 'strict'}, 'removed in Cilium 1.16'),
                                        ({'clustermesh': {'apiserver': {'tls': {'ca': {'cert': 'x'}}}}},
                                         'removed in chart 1.15')])
def test_plan_install_refuses_bad_user_values(user, match):
    p = _params({})
    p['values'] = user
    with pytest.raises(ValueError, match=match):
        plan_install(p)


def test_plan_enable():
    current = {'cluster': {'name': 'mesh-1'}, 'clustermesh': {'config': {'enabled': True}}}
    desired, keys = plan_enable(current, {'enabled': True, 'service_type': 'LoadBalancer'})
    assert keys == ['clustermesh.apiserver.service.type', 'clustermesh.useAPIServer']
    assert desired['cluster'] == {'name': 'mesh-1'} and desired['clustermesh']['config'] == {'enabled': True}
    assert plan_enable(desired, {'enabled': True, 'service_type': 'LoadBalancer'})[1] == []
    off, keys = plan_enable(desired, {'enabled': False})
    assert keys == ['clustermesh.useAPIServer'] and off['clustermesh']['useAPIServer'] is False
    with pytest.raises(ValueError, match='NodePort or LoadBalancer'):
        plan_enable(current, {'enabled': True, 'service_type': 'ClusterIP'})


# -- supported chart range -----------------------------------------------------------------

from ansible_collections.meshops.cilium.plugins.module_utils.common import (  # noqa: E402
    SUPPORTED_CHART_RANGE,
    chart_range_text,
    chart_support,
)


def _minor(v, step):
    return '%d.%d.0' % (v[0], v[1] + step)


def test_chart_support_follows_the_one_constant():
    oldest, newest = SUPPORTED_CHART_RANGE
    assert chart_support(_minor(oldest, -1)) == 'below' and chart_support('v%d.%d.99' % oldest) is None
    assert chart_support(_minor(newest, 0) + '-rc.1') is None and chart_support(_minor(newest, 1)) == 'above'
    assert chart_support('latest') is None and chart_support(None) is None
    assert chart_range_text() == '%d.%d to %d.%d' % (oldest + newest)


def test_plan_install_refuses_a_target_chart_below_the_range_before_planning():
    """The version of a local chart is only known after reading it: plan_install refuses it too."""
    oldest, newest = SUPPORTED_CHART_RANGE
    with pytest.raises(ValueError, match=r'chart_version %s is older than the supported Cilium charts \(%s\)'
                       % (re.escape(_minor(oldest, -1)), chart_range_text())):
        plan_install(_params({}), installed=False, target_chart_version=_minor(oldest, -1))
    assert plan_install(_params({}), installed=False, target_chart_version=_minor(newest, 1))['action'] == 'install'


def test_the_docs_state_the_range_of_the_constant():
    """README's requirements table and the cilium role's cilium_chart_version name the range's ends."""
    oldest, newest = ['%d.%d' % v for v in SUPPORTED_CHART_RANGE]
    root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))))
    with open(os.path.join(root, 'README.md')) as f:
        readme = f.read()
    assert re.search(r'^\| Cilium chart \| %s .*%s' % (re.escape(oldest), re.escape(newest)), readme, re.M)
    with open(os.path.join(root, 'roles/cilium/meta/argument_specs.yml')) as f:
        specs = f.read()
    assert 'The supported charts are %s to %s' % (oldest, newest) in specs
