# -*- coding: utf-8 -*-
# Copyright: meshops.cilium contributors
# SPDX-License-Identifier: Apache-2.0

import base64
import gzip
import hashlib
import json

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization

from ansible_collections.meshops.cilium.plugins.module_utils.info import (
    DecodeError,
    build_descriptor,
    ca_fingerprint,
    ca_from_secret,
    decode_helm_release,
    kvstoremesh_enabled,
    newest_release_secret,
    parse_cilium_config,
    parse_peers,
    resolve_endpoint,
    summarize_nodes,
)

from k8s_fakes import make_ca, pem_cert


def helm_secret_data(release, compress=True):
    """What the API returns in Secret.data.release: base64(base64(gzip(json)))."""
    raw = json.dumps(release).encode()
    if compress:
        raw = gzip.compress(raw)
    return base64.b64encode(base64.b64encode(raw)).decode()


def release(version, status='deployed', chart='1.19.5', config=None, name='cilium'):
    return {'name': name, 'namespace': 'kube-system', 'version': version,
            'info': {'status': status},
            'chart': {'metadata': {'name': 'cilium', 'version': chart, 'appVersion': chart}},
            'config': config or {}}


def release_secret(version, name='cilium', **kw):
    return {'metadata': {'name': 'sh.helm.release.v1.%s.v%d' % (name, version),
                         'labels': {'owner': 'helm', 'name': name, 'version': str(version),
                                    'status': kw.get('status', 'deployed')}},
            'type': 'helm.sh/release.v1',
            'data': {'release': helm_secret_data(release(version, name=name, **kw))}}


# -- Helm release -------------------------------------------------------------

def test_decode_release_gzip_roundtrip():
    rel = release(3, config={'cluster': {'name': 'mesh-1', 'id': 1}})
    out = decode_helm_release(helm_secret_data(rel))
    assert out == rel


def test_decode_release_uncompressed_and_bytes():
    rel = release(1)
    assert decode_helm_release(helm_secret_data(rel, compress=False).encode()) == rel


def test_decode_release_rejects_garbage():
    with pytest.raises(DecodeError):
        decode_helm_release(base64.b64encode(base64.b64encode(b'\x1f\x8bnot gzip')).decode())
    with pytest.raises(DecodeError):
        decode_helm_release('!!!not base64!!!')


def test_newest_release_is_numeric_not_lexicographic():
    secrets = [release_secret(9), release_secret(10, status='failed'), release_secret(2),
               release_secret(11, name='hubble')]
    newest = newest_release_secret(secrets, 'cilium')
    assert newest['metadata']['name'] == 'sh.helm.release.v1.cilium.v10'
    decoded = decode_helm_release(newest['data']['release'])
    assert decoded['version'] == 10 and decoded['info']['status'] == 'failed'
    assert newest_release_secret(secrets, 'absent') is None
    assert newest_release_secret([], 'cilium') is None


def test_newest_release_without_version_label_uses_name():
    a, b = release_secret(4), release_secret(12)
    del a['metadata']['labels']['version']
    del b['metadata']['labels']['version']
    assert newest_release_secret([b, a], 'cilium') is b


def test_kvstoremesh_explicit_and_chart_default():
    assert kvstoremesh_enabled({'clustermesh': {'apiserver': {'kvstoremesh': {'enabled': False}}}}, '1.19.5') is False
    assert kvstoremesh_enabled({}, '1.16.0') is True
    assert kvstoremesh_enabled({}, '1.15.7') is False
    assert kvstoremesh_enabled({}, None) is None


# -- cilium-config ------------------------------------------------------------

def test_parse_cilium_config():
    cm = {'metadata': {'name': 'cilium-config'},
          'data': {'cluster-name': 'mesh-2', 'cluster-id': '2', 'max-connected-clusters': '511',
                   'routing-mode': 'tunnel', 'tunnel-protocol': 'vxlan'}}
    assert parse_cilium_config(cm) == {
        'cluster_name': 'mesh-2', 'cluster_id': 2, 'max_connected_clusters': 511,
        'routing_mode': 'tunnel', 'tunnel_protocol': 'vxlan'}
    # absent max-connected-clusters is the chart default 255; junk id is None
    out = parse_cilium_config({'data': {'cluster-name': 'x', 'cluster-id': 'abc'}})
    assert out['max_connected_clusters'] == 255 and out['cluster_id'] is None


# -- CA -----------------------------------------------------------------------

def test_ca_fingerprint_matches_der_sha256_and_ski():
    key, cert = make_ca('Cilium CA')
    fp = ca_fingerprint(pem_cert(cert))
    der = cert.public_bytes(serialization.Encoding.DER)
    expected = ':'.join('%02X' % b for b in hashlib.sha256(der).digest())
    assert fp['sha256'] == expected
    ski = cert.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value.digest
    assert fp['subject_key_id'] == ski.hex()
    assert fp['subject'] == 'CN=Cilium CA'
    # two CAs differ
    assert ca_fingerprint(pem_cert(make_ca('Cilium CA')[1]))['sha256'] != fp['sha256']


def test_ca_without_ski_and_from_secret():
    key, cert = make_ca('no-ski', with_ski=False)
    secret = {'data': {'ca.crt': base64.b64encode(pem_cert(cert)).decode(), 'ca.key': 'c2VjcmV0'}}
    fp = ca_from_secret(secret)
    assert fp['subject_key_id'] is None
    assert 'c2VjcmV0' not in json.dumps(fp)
    assert ca_from_secret({'data': {}}) is None
    with pytest.raises(DecodeError):
        ca_fingerprint(b'-----BEGIN CERTIFICATE-----\nnope\n-----END CERTIFICATE-----\n')


# -- endpoints ----------------------------------------------------------------

def node(name, ready=True, internal=None, external=None, cidrs=None):
    addrs = [{'type': 'Hostname', 'address': name}]
    addrs += [{'type': 'InternalIP', 'address': a} for a in internal or []]
    addrs += [{'type': 'ExternalIP', 'address': a} for a in external or []]
    return {'metadata': {'name': name}, 'spec': {'podCIDRs': cidrs or []},
            'status': {'addresses': addrs,
                       'conditions': [{'type': 'MemoryPressure', 'status': 'False'},
                                      {'type': 'Ready', 'status': 'True' if ready else 'False'}]}}


NODES = [node('n1', internal=['172.18.0.2'], cidrs=['10.1.0.0/24']),
         node('n2', ready=False, internal=['172.18.0.3'], cidrs=['10.1.1.0/24']),
         node('n3', internal=['172.18.0.4'], external=['198.51.100.4'], cidrs=['10.1.2.0/24', 'fd00::/64'])]


def svc(stype, ports, ingress=None, cluster_ip='10.96.0.10'):
    s = {'metadata': {'name': 'clustermesh-apiserver'},
         'spec': {'type': stype, 'clusterIP': cluster_ip, 'ports': ports}, 'status': {}}
    if ingress is not None:
        s['status'] = {'loadBalancer': {'ingress': ingress}}
    return s


def test_loadbalancer_all_ips():
    ep = resolve_endpoint(svc('LoadBalancer', [{'port': 2379, 'nodePort': 31000}],
                              [{'ip': '203.0.113.1'}, {'ip': '203.0.113.2'}]), NODES)
    assert ep['ips'] == ['203.0.113.1', '203.0.113.2']
    assert ep['port'] == 2379 and ep['address'] is None and ep['warnings'] == []


def test_loadbalancer_hostname_kept_unresolved():
    ep = resolve_endpoint(svc('LoadBalancer', [{'port': 2379}],
                              [{'hostname': 'internal-abc.elb.amazonaws.com'}]), NODES)
    assert ep['ips'] == [] and ep['address'] == 'internal-abc.elb.amazonaws.com'


def test_loadbalancer_pending():
    ep = resolve_endpoint(svc('LoadBalancer', [{'port': 2379}], []), NODES)
    assert ep['ips'] == [] and ep['address'] is None
    assert any('no ingress' in w for w in ep['warnings'])


def test_nodeport_every_ready_node_external_preferred():
    ep = resolve_endpoint(svc('NodePort', [{'port': 2379, 'nodePort': 32379}]), NODES)
    assert ep['port'] == 32379
    assert ep['ips'] == ['172.18.0.2', '198.51.100.4']   # n2 NotReady skipped, n3 ExternalIP
    assert ep['service_type'] == 'NodePort'
    assert any('n2' in w for w in ep['warnings'])


def test_override_wins_and_is_validated():
    ep = resolve_endpoint(svc('NodePort', [{'port': 2379, 'nodePort': 32379}]), NODES,
                          override={'ips': ['192.0.2.9'], 'port': 2379})
    assert ep == {'source': 'override', 'service_type': None, 'ips': ['192.0.2.9'],
                  'address': None, 'port': 2379, 'warnings': []}
    assert resolve_endpoint(None, [], {'address': 'mesh.example', 'port': '443'})['address'] == 'mesh.example'
    with pytest.raises(ValueError):
        resolve_endpoint(None, [], {'ips': [], 'port': 2379})
    with pytest.raises(ValueError):
        resolve_endpoint(None, [], {'ips': ['1.2.3.4'], 'port': 70000})


def test_clusterip_warns_and_no_service_is_none():
    ep = resolve_endpoint(svc('ClusterIP', [{'port': 2379}]), NODES)
    assert ep['ips'] == ['10.96.0.10'] and ep['warnings']
    assert resolve_endpoint(None, NODES) is None


def test_summarize_nodes():
    out = summarize_nodes(NODES)
    assert [n['ready'] for n in out] == [True, False, True]
    assert out[2]['pod_cidrs'] == ['10.1.2.0/24', 'fd00::/64']
    assert out[2]['internal_ips'] == ['172.18.0.4'] and out[2]['external_ips'] == ['198.51.100.4']


# -- peers --------------------------------------------------------------------

def test_parse_peers_list_and_map_drop_tls():
    as_list = [{'name': 'mesh-3', 'ips': ['172.18.0.9'], 'port': 32379,
                'tls': {'cert': 'Q0VSVA==', 'key': 'S0VZ'}},
               {'name': 'mesh-2', 'address': 'mesh-2.example', 'port': 2379, 'enabled': False}]
    as_map = {'mesh-3': {'ips': ['172.18.0.9'], 'port': 32379},
              'mesh-2': {'address': 'mesh-2.example', 'port': 2379, 'enabled': False}}
    expected = [
        {'name': 'mesh-2', 'ips': [], 'address': 'mesh-2.example', 'port': 2379, 'enabled': False},
        {'name': 'mesh-3', 'ips': ['172.18.0.9'], 'address': None, 'port': 32379, 'enabled': True},
    ]
    assert parse_peers(as_list) == expected
    assert parse_peers(as_map) == expected
    assert 'S0VZ' not in json.dumps(parse_peers(as_list))
    assert parse_peers(None) == [] and parse_peers([]) == []


# -- whole descriptor ---------------------------------------------------------

def test_descriptor_not_installed():
    d = build_descriptor(config_map=None, release=None, ca_secret=None, service=None, nodes=NODES)
    assert d['installed'] is False and d['release'] is None and d['endpoint'] is None
    assert d['peers'] == [] and d['kvstoremesh'] is None
    assert d['pod_cidrs'] == ['10.1.0.0/24', '10.1.1.0/24', '10.1.2.0/24', 'fd00::/64']
    assert any('not installed' in w for w in d['warnings'])


def test_descriptor_installed_never_returns_values():
    config = {'clustermesh': {'useAPIServer': True, 'config': {'enabled': True, 'clusters': [
        {'name': 'mesh-2', 'ips': ['172.18.0.5'], 'port': 32380}]}},
        'tls': {'ca': {'key': 'U0VDUkVUS0VZ'}}}
    d = build_descriptor(
        config_map={'data': {'cluster-name': 'mesh-1', 'cluster-id': '1'}},
        release=release(5, config=config),
        service=svc('NodePort', [{'port': 2379, 'nodePort': 32379}]), nodes=NODES)
    assert d['installed'] is True and d['cluster_name'] == 'mesh-1'
    assert d['release']['revision'] == 5 and d['release']['chart_version'] == '1.19.5'
    assert d['kvstoremesh'] is True and d['clustermesh_enabled'] is True
    assert d['peers'][0]['name'] == 'mesh-2'
    assert 'values' not in d['release']
    assert 'U0VDUkVUS0VZ' not in json.dumps(d)


class _GatherStub(object):
    """The reads ``info.read_descriptor`` makes, answered from a CA Secret (nothing else installed)."""
    name = 'stub'

    def __init__(self, ca_secret):
        self.ca_secret = ca_secret
        self.selectors = []

    def read_config_map(self, namespace, name, missing_ok=False):
        return None

    def list_secrets(self, namespace, label_selector=None, field_selector=None):
        self.selectors.append((label_selector, field_selector))
        return []

    def read_secret(self, namespace, name, missing_ok=False):
        assert name == 'cilium-ca'
        return self.ca_secret

    def read_service(self, namespace, name, missing_ok=False):
        return None

    def list_nodes(self):
        return []


def _ca_secret(key_from_other=False, drop_key=False, owned=True):
    from ansible_collections.meshops.cilium.plugins.module_utils import ca
    cert, key = ca.generate_ca()
    if key_from_other:
        key = ca.generate_ca()[1]
    body = ca.secret_body(cert, key, 'kube-system')
    if drop_key:
        del body['data']['ca.key']
    if not owned:
        body['metadata'].pop('labels')
        body['metadata'].pop('annotations')
    return body, key


@pytest.mark.parametrize('kw,complete,owner', [
    ({}, True, 'kube-system/cilium'),
    ({'key_from_other': True}, False, 'kube-system/cilium'),
    ({'drop_key': True}, False, 'kube-system/cilium'),
    ({'owned': False}, True, None),
])
def test_gather_says_whether_the_ca_is_complete_and_who_owns_it_never_the_key(kw, complete, owner):
    from ansible_collections.meshops.cilium.plugins.module_utils.info import read_descriptor
    secret, key = _ca_secret(**kw)
    desc = read_descriptor(_GatherStub(secret))
    assert desc['ca']['complete'] is complete
    assert desc['ca']['helm_release'] == owner
    text = json.dumps(desc)
    assert key.decode() not in text and base64.b64encode(key).decode() not in text
    assert 'ca.key' not in text


def test_gather_without_ca_secret_has_no_ca():
    from ansible_collections.meshops.cilium.plugins.module_utils.info import read_descriptor
    stub = _GatherStub(None)
    assert read_descriptor(stub)['ca'] is None
    # the release's Secrets are listed without the revisions Helm superseded (its history)
    assert stub.selectors == [('owner=helm,name=cilium,status!=superseded', 'type=helm.sh/release.v1')]
