# -*- coding: utf-8 -*-
# Copyright: meshops.cilium contributors
# SPDX-License-Identifier: Apache-2.0
"""ipsec_keys, ipsec_keys_info and cilium_install's IPsec guard against a local fake API server."""

import base64
import json

import pytest

from ansible.module_utils.common.warnings import get_warning_messages

from module_runner import module_runner

from ansible_collections.meshops.cilium.plugins.module_utils.ipsec import fingerprint, parse_key
from ansible_collections.meshops.cilium.plugins.modules import cilium_install, ipsec_keys, ipsec_keys_info

NS = '/api/v1/namespaces/kube-system'
SECRET = NS + '/secrets/cilium-ipsec-keys'
HEX = '0f1e2d3c4b5a69788796a5b4c3d2e1f00112233a'
VALUE = '1+ rfc4106(gcm(aes)) %s 128' % HEX


@pytest.fixture
def run_module(monkeypatch):
    return module_runner(monkeypatch, ipsec_keys.main)


@pytest.fixture
def cluster(apiserver):
    """An API server with no Cilium release, no workloads and no key."""
    apiserver.routes[NS + '/secrets'] = (200, {'kind': 'SecretList', 'apiVersion': 'v1', 'metadata': {},
                                               'items': []})
    return apiserver


def _args(srv, **kw):
    args = {'kubeconfig': srv.kubeconfig('mesh-1'), 'context': 'mesh-1'}
    args.update(kw)
    return args


def _put_key(srv, value, rv='5'):
    srv.routes[SECRET] = (200, {'kind': 'Secret', 'apiVersion': 'v1', 'type': 'Opaque',
                                'metadata': {'name': 'cilium-ipsec-keys', 'namespace': 'kube-system',
                                             'resourceVersion': rv},
                                'data': {'keys': base64.b64encode(value.encode()).decode()}})


def _written_value(write):
    return base64.b64decode(write[2]['data']['keys']).decode()


def test_create_generates_once_and_returns_no_key(cluster, run_module):
    ok, res = run_module(_args(cluster))
    assert ok, res
    assert len(cluster.writes) == 1
    method, path, body = cluster.writes[0]
    assert (method, path) == ('POST', NS + '/secrets') and body['metadata']['name'] == 'cilium-ipsec-keys'
    value = _written_value(cluster.writes[0])
    key = parse_key(value)
    assert (key.spi, key.algo, len(key.key), key.icv) == (1, 'rfc4106(gcm(aes))', 40, 128)
    assert (res['changed'], res['action'], res['spi'], res['fingerprint']) == (True, 'created', 1, fingerprint(value))
    assert key.key not in json.dumps(res)


def test_check_mode_writes_nothing_and_diff_shows_spi_and_fingerprint_only(cluster, run_module):
    _put_key(cluster, VALUE)
    ok, res = run_module(_args(cluster, state='rotated', _ansible_check_mode=True, _ansible_diff=True))
    assert ok, res
    assert cluster.writes == []
    assert (res['changed'], res['action'], res['spi'], res['fingerprint']) == (True, 'rotated', 2, None)
    assert res['diff'] == {'before': {'exists': True, 'valid': True, 'spi': 1, 'fingerprint': fingerprint(VALUE)},
                           'after': {'exists': True, 'valid': True, 'spi': 2, 'fingerprint': None}}
    assert HEX not in json.dumps(res)
    # check mode of a create: nothing written, the would-be key not shown
    cluster.routes.pop(SECRET)
    ok, res = run_module(_args(cluster, _ansible_check_mode=True, _ansible_diff=True))
    assert ok and cluster.writes == [] and res['action'] == 'created' and res['fingerprint'] is None
    assert res['diff']['before'] == {'exists': False}


def test_rotation_replaces_with_the_next_spi_and_keeps_resource_version(cluster, run_module):
    _put_key(cluster, VALUE, rv='42')
    ok, res = run_module(_args(cluster, state='rotated', from_spi=1, from_fingerprint=fingerprint(VALUE),
                               _ansible_diff=True))
    assert ok, res
    assert [(m, p) for m, p, dummy in cluster.writes] == [('PUT', SECRET)]
    new = parse_key(_written_value(cluster.writes[0]))
    assert new.spi == 2 and new.key != HEX and cluster.writes[0][2]['metadata']['resourceVersion'] == '42'
    assert res['fingerprint'] == new.fingerprint and res['previous']['spi'] == 1
    assert res['diff']['after'] == {'exists': True, 'valid': True, 'spi': 2, 'fingerprint': new.fingerprint}
    assert new.key not in json.dumps(res) and HEX not in json.dumps(res)


def test_rotation_rerun_is_idempotent(cluster, run_module):
    nxt = '2+ rfc4106(gcm(aes)) %s 128' % ('ab' * 20)
    _put_key(cluster, nxt)
    ok, res = run_module(_args(cluster, state='rotated', from_spi=1, from_fingerprint=fingerprint(VALUE)))
    assert ok and res['changed'] is False and res['action'] == 'unchanged' and cluster.writes == []


def test_rotation_refused_during_a_rollout(cluster, run_module):
    _put_key(cluster, VALUE)
    cluster.routes['/apis/apps/v1/namespaces/kube-system/daemonsets/cilium'] = (200, {
        'kind': 'DaemonSet', 'apiVersion': 'apps/v1', 'metadata': {'name': 'cilium', 'generation': 3},
        'spec': {'selector': {'matchLabels': {'k8s-app': 'cilium'}}, 'template': {'metadata': {}}},
        'status': {'observedGeneration': 3, 'desiredNumberScheduled': 3, 'numberReady': 3,
                   'currentNumberScheduled': 3, 'numberMisscheduled': 0,
                   'updatedNumberScheduled': 1}})
    ok, res = run_module(_args(cluster, state='rotated'))
    assert not ok and cluster.writes == []
    assert res['msg'].startswith('mesh-1: a Cilium rollout is in progress (DaemonSet kube-system/cilium: 3/3 ready, '
                                 '1/3 updated)')
    ok, res = run_module(_args(cluster, state='rotated', ignore_rollout=True))
    assert ok and len(cluster.writes) == 1


def test_a_different_key_option_is_refused_without_echoing_either(cluster, run_module):
    _put_key(cluster, VALUE)
    other = '1+ rfc4106(gcm(aes)) %s 128' % ('cd' * 20)
    ok, res = run_module(_args(cluster, key=other))
    assert not ok and cluster.writes == []
    assert 'different IPsec key' in res['msg'] and 'reconcile=true' in res['msg']
    assert HEX not in json.dumps(res) and 'cd' * 20 not in json.dumps(res)
    ok, res = run_module(_args(cluster, key=other, reconcile=True))
    assert ok and _written_value(cluster.writes[0]) == other
    # same SPI, different key: the module warns about XfrmInStateProtoError
    assert any('XfrmInStateProtoError' in w for w in get_warning_messages())


def test_bad_key_option_fails_before_any_write(cluster, run_module):
    ok, res = run_module(_args(cluster, key='1 rfc4106(gcm(aes)) %s 128' % HEX))
    assert not ok and cluster.writes == []
    assert 'the key option is not a usable IPsec key' in res['msg'] and 'insecure' in res['msg']
    assert HEX not in res['msg']


def test_absent(cluster, run_module):
    ok, res = run_module(_args(cluster, state='absent'))
    assert ok and res['action'] == 'absent' and not res['changed']
    _put_key(cluster, VALUE)
    ok, res = run_module(_args(cluster, state='absent', _ansible_check_mode=True))
    assert ok and res['action'] == 'deleted' and res['changed'] and cluster.writes == []
    ok, res = run_module(_args(cluster, state='absent'))
    assert ok and [(m, p) for m, p, dummy in cluster.writes] == [('DELETE', SECRET)]


def test_info(cluster, monkeypatch):
    run = module_runner(monkeypatch, ipsec_keys_info.main)
    ok, res = run(_args(cluster))
    assert ok and res['exists'] is False and res['valid'] is False and res['spi'] is None
    assert res['encryption']['installed'] is False and res['encryption']['key_rotation_seconds'] == 300
    assert res['rollout'] == {'in_progress': False, 'problems': []}
    _put_key(cluster, VALUE.replace('1+', '1'))
    ok, res = run(_args(cluster))
    assert ok and res['exists'] and not res['valid'] and 'insecure' in res['error'] and HEX not in json.dumps(res)
    _put_key(cluster, VALUE)
    ok, res = run(_args(cluster))
    assert ok and (res['spi'], res['fingerprint'], res['icv'], res['key_bytes']) == (1, fingerprint(VALUE), 128, 20)
    assert HEX not in json.dumps(res)


def test_cilium_install_refuses_ipsec_without_the_secret(cluster, monkeypatch):
    run = module_runner(monkeypatch, cilium_install.main)
    args = _args(cluster, chart_ref='/nonexistent/cilium.tgz', chart_version='1.19.5', cluster_name='mesh-1',
                 cluster_id=1, encryption_type='ipsec', ipsec_key_rotation_duration='10m',
                 helm_binary='/nonexistent/helm')
    ok, res = run(args)
    assert not ok
    assert res['msg'].startswith('mesh-1: IPsec encryption needs Secret kube-system/cilium-ipsec-keys')
    assert 'meshops.cilium.ipsec role' in res['msg'] and 'ipsec_keys' in res['msg']
    assert cluster.writes == []
    # an unusable key is refused too, naming why (not the key)
    _put_key(cluster, VALUE.replace('1+', '1'))
    ok, res = run(args)
    assert not ok and 'needs a usable key' in res['msg'] and 'insecure' in res['msg'] and HEX not in res['msg']


# Malformed values of the Secret, each holding HEX (or DIGITS) somewhere a parser might echo it.
DIGITS = '3141592653589793238462643383279502884197'
MALFORMED_SECRETS = [
    '1 rfc4106(gcm(aes)) %s 128' % HEX,                   # no "+"
    '1+ %s rfc4106(gcm(aes)) 128' % HEX,                  # key where the algorithm belongs
    '1+ rfc4106(gcm(aes)) 128 %s' % HEX,                  # key where the ICV belongs
    '%s 1+ rfc4106(gcm(aes)) 128' % HEX,                  # key where the SPI belongs
    '%s+ rfc4106(gcm(aes)) %s 128' % (DIGITS, HEX),       # a digits-only key as the SPI
    '1+ rfc4106(gcm(aes)) %s %s' % (HEX, DIGITS),         # a digits-only key as the ICV
    '1+ rfc4106(gcm(aes)) %s 128' % HEX[:-1],             # odd number of hex digits
    '1+ rfc4106(gcm(des)) %s 128' % HEX,                  # unknown algorithm
    '1+ %s hmac(sha256) cbc(aes) %s' % (HEX, HEX[:32]),   # 5 fields out of order
    '1+ hmac(sha1) %s %s cbc(aes)' % (HEX, HEX[:32]),
    '1+ rfc4106(gcm(aes)) %s' % HEX,                      # 3 fields
    '%s\n%s' % (VALUE, VALUE),                            # two lines
]


def _leaks(res):
    text = json.dumps(res) + json.dumps(get_warning_messages())
    return [s[:6] + '...' for s in (HEX, HEX[:-1], HEX[:32], HEX.upper(), DIGITS) if s in text]


@pytest.mark.parametrize('value', MALFORMED_SECRETS,
                         ids=['malformed-%d' % i for i in range(len(MALFORMED_SECRETS))])  # no key in test ids
def test_malformed_secret_never_echoed(cluster, monkeypatch, value):
    _put_key(cluster, value)
    ok, res = module_runner(monkeypatch, ipsec_keys_info.main)(_args(cluster))
    assert ok and res['exists'] and res['valid'] is False and res['error']
    assert _leaks(res) == []
    run = module_runner(monkeypatch, ipsec_keys.main)
    for args in (_args(cluster), _args(cluster, state='rotated'), _args(cluster, _ansible_diff=True)):
        ok, res = run(args)
        assert not ok and cluster.writes == []
        assert _leaks(res) == []
