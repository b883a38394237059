# -*- coding: utf-8 -*-
# Copyright: meshops.cilium contributors
# SPDX-License-Identifier: Apache-2.0
"""The preflight's check of cilium_values against the install checks and the real chart schema."""

import json
import os
import tarfile

import pytest

from ansible_collections.meshops.cilium.plugins.module_utils import preflight
from ansible_collections.meshops.cilium.plugins.module_utils.rendered import (
    load_chart_schema,
    managed_values,
    option_problems,
    render_problems,
    value_problems,
)
from ansible_collections.meshops.cilium.plugins.module_utils.values import install_values, plan_install, values_digest

FIXTURE = os.path.join(os.path.dirname(__file__), '..', '..', 'fixtures', 'chart-1.20.2')
ENTRY = {'cluster_name': 'mesh-1', 'cluster_id': 1, 'max_connected_clusters': 255, 'routing_mode': 'tunnel',
         'kube_proxy_replacement': False}


@pytest.fixture(scope='module')
def schema():
    with open(os.path.join(FIXTURE, 'values.schema.json')) as f:
        return json.load(f)


# (cilium_values, the value path the problem names, words the problem says)
BAD = [
    ({'kubeProxyReplacement': 'strict'}, 'cilium_values', 'strict'),
    ({'kubeProxyReplacement': 'partial'}, 'cilium_values', 'partial'),
    ({'kubeProxyReplacement': 'disabled'}, 'cilium_values', 'disabled'),
    ({'clustermesh': {'apiserver': {'tls': {'ca': {'cert': 'x'}}}}}, 'cilium_values', 'removed in chart 1.15'),
    ({'cluster': {'name': 'other'}}, 'cilium_values', 'cluster.name'),
    ({'cluster': {'id': 7}}, 'cilium_values', 'cluster.id'),
    ({'clustermesh': {'maxConnectedClusters': 511}}, 'cilium_values', 'maxConnectedClusters'),
    ({'routingMode': 'native'}, 'cilium_values', 'routingMode'),
    ({'kubeProxyReplacement': True}, 'cilium_values', 'kubeProxyReplacement'),
    ({'cluster': 'mesh-1'}, 'cilium_values', 'cluster'),
    ({'MTU': '1500'}, 'cilium_values.MTU', 'is not of type'),
    ({'operator': {'replicas': 'two'}}, 'cilium_values.operator.replicas', 'is not of type'),
    ({'k8sServicePort': [6443]}, 'cilium_values.k8sServicePort', 'is not of type'),
    ({'k8sServiceHost': 10}, 'cilium_values.k8sServiceHost', 'is not of type'),
    ({'ipv4NativeRoutingCIDR': ['10.0.0.0/8']}, 'cilium_values.ipv4NativeRoutingCIDR', 'is not of type'),
    ({'encryption': {'enabled': 'yes'}}, 'cilium_values.encryption.enabled', 'is not of type'),
    ({'devices': 5}, 'cilium_values.devices', 'is not of type'),
    ({'bpf': {'masquerade': 'on'}}, 'cilium_values.bpf.masquerade', 'is not of type'),
    ({'l7Proxy': 'false'}, 'cilium_values.l7Proxy', 'is not of type'),
    ({'debug': {'enabled': 1}}, 'cilium_values.debug.enabled', 'is not of type'),
]


@pytest.mark.parametrize('values, path, words', BAD, ids=[json.dumps(b[0], sort_keys=True) for b in BAD])
def test_bad_values_are_refused_with_path_and_fix(schema, values, path, words):
    problems = value_problems(values, managed_values(ENTRY), schema)
    assert problems, values
    assert any(p[0] == path and words in p[1] and p[2] for p in problems), problems


def test_good_values_pass(schema):
    values = {'operator': {'replicas': 1}, 'MTU': 1450, 'k8sServiceHost': 'auto', 'k8sServicePort': 6443,
              'cluster': {'name': 'mesh-1', 'id': 1}, 'bpf': {'masquerade': True}, 'devices': 'eth+'}
    assert value_problems(values, managed_values(ENTRY), schema) == []


def test_a_non_mapping_is_one_problem():
    assert [p[0] for p in value_problems(['a'], {}, None)] == ['cilium_values']


def test_all_problems_of_one_cluster_at_once(schema):
    problems = value_problems({'MTU': 'x', 'l7Proxy': 'x', 'kubeProxyReplacement': 'strict'},
                              managed_values(ENTRY), schema)
    paths = sorted(p[0] for p in problems)
    assert 'cilium_values.MTU' in paths and 'cilium_values.l7Proxy' in paths and 'cilium_values' in paths


def test_schema_is_read_from_a_chart_archive_and_a_directory(tmp_path):
    archive = tmp_path / 'cilium-1.20.2.tgz'
    with tarfile.open(str(archive), 'w:gz') as tar:
        tar.add(os.path.join(FIXTURE, 'values.schema.json'), arcname='cilium/values.schema.json')
        tar.add(os.path.join(FIXTURE, 'Chart.yaml'), arcname='cilium/Chart.yaml')
    assert load_chart_schema(str(archive))['properties']['MTU'] == {'type': 'integer'}
    assert load_chart_schema(FIXTURE)['properties']['MTU'] == {'type': 'integer'}
    assert load_chart_schema('cilium/cilium') is None
    assert load_chart_schema(str(tmp_path / 'missing.tgz')) is None


def test_preflight_table_names_cluster_path_and_fix(schema):
    clusters = [dict(ENTRY, host='mesh-1', values={'MTU': 'big'}),
                dict(ENTRY, host='mesh-2', cluster_name='mesh-2', cluster_id=2, values={'kubeProxyReplacement': 'strict'})]
    problems = preflight.check(clusters, schemas={'mesh-1': schema, 'mesh-2': schema})
    rows = [(p['cluster'], p['field'], p['severity']) for p in problems]
    assert ('mesh-1', 'cilium_values.MTU', 'error') in rows
    assert ('mesh-2', 'cilium_values', 'error') in rows
    assert all(p['fix'] for p in problems)


# -- the chart rendered with the install values (helm template) --------------------------------------

def _fake_helm(tmp_path, script):
    path = tmp_path / 'helm'
    path.write_text('#!/bin/sh\n' + script)
    path.chmod(0o755)
    return str(path)


def test_render_chart_passes_values_in_a_private_file_and_masks_secrets(tmp_path):
    from ansible_collections.meshops.cilium.plugins.module_utils.helm import render_chart
    seen = tmp_path / 'seen'
    helm = _fake_helm(tmp_path, 'echo "$@" > %s; for a in "$@"; do case "$a" in *values.yaml) cat "$a" >> %s;; '
                      'esac; done; echo "Error: execution error at (cilium/templates/validate.yaml:1:2): '
                      'key s3cr3t-value is bad" >&2; echo "Use --debug flag" >&2; exit 1\n' % (seen, seen))
    err = render_chart(helm, 'cilium', 'kube-system', {'ipam': {'mode': 'eni'}, 'tls': {'key': 's3cr3t-value'}},
                       '/charts/cilium-1.20.2.tgz')
    argv = seen.read_text()
    assert argv.startswith('template --namespace kube-system --kube-version 1.34.0 -f ')
    assert argv.split('\n')[0].endswith('-- cilium /charts/cilium-1.20.2.tgz')
    assert '"eni"' in argv  # the values went through the file
    assert 'validate.yaml' in err and 's3cr3t-value' not in err and 'Use --debug' not in err
    # the private file is gone
    path = argv.split(' -f ', 1)[1].split(' ', 1)[0]
    assert not os.path.exists(path)
    ok = _fake_helm(tmp_path, 'exit 0\n')
    assert render_chart(ok, 'cilium', 'kube-system', {}, '/charts/c.tgz') is None


def test_render_problems_only_for_good_values_and_name_the_cluster():
    calls = []

    def render(values, chart_ref):
        calls.append((values, chart_ref))
        if values.get('ipam', {}).get('mode') == 'eni':
            return 'Error: execution error at (cilium/templates/validate.yaml:257:5): ipam.mode=eni requires eni.enabled=true'
        return None
    good = dict(ENTRY, values={'debug': {'enabled': True}})
    bad = dict(ENTRY, cluster_name='mesh-2', cluster_id=2, ipam_mode='eni', values={})
    members = [
        {'host': 'mesh-1', 'cluster_name': 'mesh-1', 'cluster_id': 1, 'values': good['values'], 'install': good,
         'chart_ref': '/c/cilium-1.20.2.tgz'},
        {'host': 'mesh-2', 'cluster_name': 'mesh-2', 'cluster_id': 2, 'values': {}, 'install': bad,
         'chart_ref': '/c/cilium-1.20.2.tgz'},
        # a value problem already: not rendered
        {'host': 'mesh-3', 'cluster_name': 'mesh-3', 'cluster_id': 3, 'values': {'kubeProxyReplacement': 'strict'},
         'install': dict(ENTRY, values={'kubeProxyReplacement': 'strict'}), 'chart_ref': '/c/cilium-1.20.2.tgz'},
    ]
    schemas = {'mesh-1': {}, 'mesh-2': {}, 'mesh-3': {}}
    schemas = dict((h, {'type': 'object'}) for h in schemas)
    problems = preflight.check(members, schemas=schemas, render=render)
    rows = [(p['cluster'], p['field'], p['problem']) for p in problems if 'refuses the values' in p['problem']]
    assert rows == [('mesh-2', 'cilium_values', 'the target chart cilium-1.20.2.tgz refuses the values this run '
                     'would install: Error: execution error at (cilium/templates/validate.yaml:257:5): '
                     'ipam.mode=eni requires eni.enabled=true')]
    assert len(calls) == 2 and calls[0][0]['debug'] == {'enabled': True} and calls[0][0]['cluster']['name'] == 'mesh-1'
    # without a render function (no helm) or a local chart nothing is rendered
    assert not [p for p in preflight.check(members, schemas=schemas) if 'refuses the values' in p['problem']]


# cilium_install's options as the cilium role passes them with its defaults (fresh cluster mesh-1)
ROLE_INSTALL = {
    'cluster_name': 'mesh-1', 'cluster_id': 1, 'ipam_mode': 'kubernetes', 'kube_proxy_replacement': False,
    'routing_mode': 'tunnel', 'tunnel_protocol': 'vxlan', 'max_connected_clusters': 255, 'encryption_type': None,
    'clustermesh_apiserver': {'enabled': True, 'service_type': 'NodePort', 'node_port': 32379,
                              'annotations': {}, 'tls_auto_method': 'helm'},
    'existing_values': 'refuse', 'default_options': [],
}

# (options over ROLE_INSTALL, cilium_values): every one is something cilium_install refuses before writing
REFUSED = [
    ({}, {'ipam': {'mode': 'bogus'}}),
    ({}, {'ipam': {'mode': 'cluster-pool'}}),
    ({}, {'tunnelProtocol': 'geneve'}),
    ({}, {'clustermesh': {'apiserver': {'service': {'type': 'LoadBalancer'}}}}),
    ({}, {'clustermesh': {'apiserver': {'service': {'nodePort': 31000}}}}),
    ({}, {'clustermesh': {'useAPIServer': False}}),
    ({'encryption_type': 'ipsec'}, {'encryption': {'type': 'wireguard'}}),
    ({'encryption_type': 'disabled'}, {'encryption': {'enabled': True}}),
    ({'ipsec_key_rotation_duration': '5m', 'encryption_type': 'ipsec'},
     {'encryption': {'ipsec': {'keyRotationDuration': '10m'}}}),
    ({'k8s_service_host': '10.0.0.1', 'k8s_service_port': 6443}, {'k8sServicePort': 443}),
    ({'tunnel_protocol': 'gre'}, {}),
    ({'encryption_type': 'magic'}, {}),
    ({'ipsec_key_rotation_duration': 'soon', 'encryption_type': 'ipsec'}, {}),
    ({'k8s_service_host': '10.0.0.1'}, {}),
    ({'k8s_service_host': '10.0.0.1', 'k8s_service_port': 70000}, {}),
    ({'kube_proxy_replacement': True}, {}),
    ({'routing_mode': 'native', 'tunnel_protocol': None}, {}),
    ({'routing_mode': 'native', 'ipv4_native_routing_cidr': '10.0.0.0/8'}, {}),
    ({'ipv4_native_routing_cidr': '10.0.0.1/8'}, {}),
    ({'cluster_pool_ipv4_pod_cidrs': ['10.1.0.0/16']}, {}),
    ({'clustermesh_apiserver': {'enabled': True, 'service_type': 'ClusterIP'}}, {}),
    ({'clustermesh_apiserver': {'enabled': True, 'tls_auto_method': 'certmanager'}}, {}),
    ({'clustermesh_apiserver': {'enabled': True, 'annotations': {'a': 1}}}, {}),
]
ACCEPTED = [
    ({}, {}),
    ({}, {'ipam': {'mode': 'kubernetes'}, 'operator': {'replicas': 1}}),
    ({}, {'tunnelProtocol': 'vxlan', 'MTU': 1450}),
    ({'encryption_type': 'ipsec', 'ipsec_key_rotation_duration': '5m'}, {'encryption': {'nodeEncryption': False}}),
    ({'ipam_mode': 'cluster-pool', 'cluster_pool_ipv4_pod_cidrs': ['10.1.0.0/16']}, {}),
    ({'routing_mode': 'native', 'tunnel_protocol': None, 'ipv4_native_routing_cidr': '10.0.0.0/8'}, {}),
]


def _entry(options, values):
    install = dict(ROLE_INSTALL, values=values)
    install.update(options)
    return dict(ENTRY, host='mesh-1', values=values, install=install, chart_version='1.20.2',
                ipam_mode=install['ipam_mode'])


@pytest.mark.parametrize('options, values', REFUSED + ACCEPTED,
                         ids=[json.dumps(c, sort_keys=True) for c in REFUSED + ACCEPTED])
def test_preflight_refuses_exactly_what_cilium_install_refuses(schema, options, values):
    """What cilium_install would refuse is a preflight error, found before the CA or any other write;
    what it accepts is no error of the values check."""
    entry = _entry(options, values)
    try:
        plan_install(entry['install'], None, None, False, '1.20.2')
        refused = None
    except ValueError as e:
        refused = str(e)
    assert (refused is not None) == ((options, values) in REFUSED), refused
    problems = [p for p in preflight.check([entry], schemas={'mesh-1': schema}) if p['severity'] == 'error']
    if refused:
        assert problems, 'cilium_install refuses %r (%s) but preflight passes' % ((options, values), refused)
        assert all(p['cluster'] == 'mesh-1' and p['fix'] for p in problems)
    else:
        assert not [p for p in problems if p['field'].startswith('cilium_')], problems


def test_an_option_problem_names_the_role_variable():
    problems = option_problems(dict(ROLE_INSTALL, tunnel_protocol='gre'))
    assert [p[0] for p in problems] == ['cilium_tunnel_protocol']
    assert 'vxlan' in problems[0][1] and 'cilium_tunnel_protocol' in problems[0][2]
    problems = option_problems(dict(ROLE_INSTALL, clustermesh_apiserver={'enabled': True, 'service_type': 'X'}))
    assert [p[0] for p in problems] == ['cilium_clustermesh_service_type']
    assert option_problems(dict(ROLE_INSTALL)) == []


@pytest.mark.parametrize('options, variable', [
    # the message starts with the option that is right; the one to correct is another
    ({'routing_mode': 'native', 'tunnel_protocol': None}, 'cilium_ipv4_native_routing_cidr'),
    ({'kube_proxy_replacement': True}, 'cilium_k8s_service_host'),
    ({'k8s_service_host': '10.0.0.1'}, 'cilium_k8s_service_port'),
    # the message starts with the option to correct
    ({'k8s_service_host': '10.0.0.1', 'k8s_service_port': 70000}, 'cilium_k8s_service_port'),
    ({'cluster_pool_ipv4_pod_cidrs': ['10.1.0.0/33'], 'ipam_mode': 'cluster-pool'}, 'cilium_pod_cidrs'),
    ({'max_connected_clusters': 300}, 'cilium_max_connected_clusters'),
])
def test_an_option_problem_names_the_variable_to_correct(options, variable):
    problems = option_problems(dict(ROLE_INSTALL, **options))
    assert [p[0] for p in problems] == [variable], problems
    assert variable in problems[0][2]


def _deployed(values, chart_version='1.20.2', status='deployed'):
    return {'status': status, 'chart_version': chart_version, 'values_sha256': values_digest(values)}


def test_a_release_deployed_from_the_same_chart_and_values_is_not_rendered_again():
    calls = []

    def render(values, chart_ref):
        calls.append(values['cluster']['name'])
        return None
    install = dict(ROLE_INSTALL, values={'debug': {'enabled': True}})
    wanted = install_values(install)
    meshed = dict(wanted, clustermesh=dict(wanted['clustermesh'], config={'enabled': True, 'clusters': {
        'mesh-2': {'ips': ['10.0.0.2'], 'port': 2379}}}))  # peers written by clustermesh_connect
    same = [('mesh-1', install, '/c/cilium-1.20.2.tgz', _deployed(meshed), '1.20.2')]
    assert render_problems(same, render) == [] and calls == []
    # another chart version, other values, a failed release, no release: rendered
    changed = [
        ('mesh-1', install, '/c/cilium-1.20.2.tgz', _deployed(meshed, chart_version='1.19.2'), '1.20.2'),
        ('mesh-1', dict(install, values={'debug': {'enabled': False}}), '/c', _deployed(meshed), '1.20.2'),
        ('mesh-1', install, '/c', _deployed(meshed, status='failed'), '1.20.2'),
        ('mesh-1', install, '/c', None, '1.20.2'),
    ]
    for entry in changed:
        del calls[:]
        render_problems([entry], render)
        assert calls == ['mesh-1'], entry


def test_values_digest_leaves_out_the_peers_only():
    base = {'cluster': {'name': 'a', 'id': 1}, 'clustermesh': {'useAPIServer': True, 'config': {'enabled': True}}}
    with_peers = {'cluster': {'name': 'a', 'id': 1}, 'clustermesh': {'useAPIServer': True, 'config': {
        'enabled': True, 'clusters': [{'name': 'b', 'ips': ['1.2.3.4'], 'port': 2379}]}}}
    assert values_digest(base) == values_digest(with_peers)
    assert values_digest(base) != values_digest(dict(base, cluster={'name': 'a', 'id': 2}))
    assert values_digest({'a': 1, 'b': 2}) == values_digest({'b': 2, 'a': 1})
    assert values_digest({'a': 1}) != values_digest({'a': True}) and values_digest({'a': 1}) != values_digest({'a': '1'})


def test_values_helm_deployed_from_the_target_chart_are_not_checked_against_its_schema_again(schema):
    install = dict(ROLE_INSTALL, values={'MTU': 'big'})
    deployed = {'installed': True, 'release': _deployed(install_values(install))}
    entry = dict(ENTRY, host='mesh-1', values={'MTU': 'big'}, install=install, chart_version='1.20.2')
    # the release Helm deployed from this chart version with exactly these values: Helm checked them
    assert preflight.deployed_with_these_values(preflight.Member(dict(entry, info=deployed)))
    assert not [p for p in preflight.check([dict(entry, info=deployed)], schemas={'mesh-1': schema})
                if p['field'] == 'cilium_values.MTU']
    # another value, another chart version, no release: checked against the schema
    for other in (dict(entry, values={'MTU': 'bigger'}, install=dict(install, values={'MTU': 'bigger'}), info=deployed),
                  dict(entry, chart_version='1.20.3', info=deployed),
                  dict(entry, info={'installed': False, 'release': None})):
        assert not preflight.deployed_with_these_values(preflight.Member(other))
        assert [p for p in preflight.check([other], schemas={'mesh-1': schema}) if p['field'] == 'cilium_values.MTU']
