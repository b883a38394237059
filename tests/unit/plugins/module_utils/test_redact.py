# -*- coding: utf-8 -*-
# Copyright: meshops.cilium contributors
# SPDX-License-Identifier: Apache-2.0
"""The one list of secret key names and what finds secrets with it."""

import pytest

from ansible_collections.meshops.cilium.plugins.module_utils import base, cluster, helm, redact
from ansible_collections.meshops.cilium.plugins.module_utils.base import option_secret_values
from ansible_collections.meshops.cilium.plugins.module_utils.cluster import kubeconfig_secret_values
from ansible_collections.meshops.cilium.plugins.module_utils.redact import (
    MASK,
    is_secret_key,
    mask_secrets,
    secret_values,
    url_password,
)


def test_one_list_of_secret_keys():
    assert cluster.KUBECONFIG_SECRET_KEYS is redact.SECRET_KEYS
    assert base.MASK is MASK and base.mask_secrets is redact.mask_secrets
    assert not hasattr(base, 'SECRET_KEYS') and not hasattr(helm, 'MASK')
    assert helm.mask_text is redact.mask_text
    assert not hasattr(helm, '_SECRET_VALUE_KEYS')


@pytest.mark.parametrize('name', ['key', 'keys', 'tls.ca.key', 'clustermesh.apiserver.tls.server.key', 'caKey',
                                  'ca_key', 'privateKey', 'private_key', 'password', 'Password', 'token',
                                  'id-token', 'client-key-data', 'client-secret', 'api_key', 'apiKey'])
def test_secret_key_names(name):
    assert is_secret_key(name)


@pytest.mark.parametrize('name', ['cert', 'tls.ca.cert', 'name', 'secretName', 'keyRotationDuration',
                                  'server', 'cluster_id', 'namespace', None, 3])
def test_public_key_names(name):
    assert not is_secret_key(name)


def test_secret_values_any_depth_and_form():
    values = {
        'tls': {'ca': {'cert': 'PUBLIC-CERT', 'key': 'CA-KEY-1'}},
        'tls.ca.key': 'CA-KEY-2',
        'clustermesh': {'apiserver': {'tls': {'server': {'cert': 'C', 'key': 'SRV-KEY'}}},
                        'config': {'clusters': [{'name': 'mesh-2', 'tls': {'key': 'CLIENT-KEY'}}]}},
        'caKey': 'CA-KEY-3',
        'extra': [{'password': 'PW-1'}, {'token': 'TOK-1'}],
        'keys': ['KEY-1', {'nested': 'KEY-2'}],
        'empty': {'key': ''},
        'number': {'key': 5},
    }
    found = secret_values(values)
    assert found == {'CA-KEY-1', 'CA-KEY-2', 'SRV-KEY', 'CLIENT-KEY', 'CA-KEY-3', 'PW-1', 'TOK-1', 'KEY-1', 'KEY-2'}


def test_key_of_toleration_selector_and_secret_ref_is_public():
    values = {'tolerations': [{'key': 'node-role.kubernetes.io/control-plane', 'operator': 'Exists'}],
              'nodeSelector': {'matchExpressions': [{'key': 'zone', 'operator': 'In', 'values': ['a']}]},
              'extraEnv': [{'name': 'X', 'valueFrom': {'secretKeyRef': {'name': 's', 'key': 'user'}}}]}
    assert secret_values(values) == set()
    assert mask_secrets(values) == values


def test_mask_secrets_masks_every_form():
    values = {'tls': {'ca': {'cert': 'Q0VSVA==', 'key': 'S0VZ'}}, 'caKey': 'x', 'tls.ca.key': 'y'}
    out = mask_secrets(values)
    assert out == {'tls': {'ca': {'cert': 'Q0VSVA==', 'key': MASK}}, 'caKey': MASK, 'tls.ca.key': MASK}
    assert values['caKey'] == 'x'


@pytest.mark.parametrize('url,password', [
    ('https://user:s3cr%40t@charts.example.com/cilium', 's3cr%40t'),
    ('http://u:pw@proxy:3128', 'pw'),
    ('https://user@charts.example.com', None),
    ('https://charts.example.com/a@b', None),
    ('not a url user:pw@x', None),
    (None, None),
])
def test_url_password(url, password):
    assert url_password(url) == password


def test_kubeconfig_secret_values_exec_env_auth_provider_and_proxy_password():
    cfg = {
        'clusters': [{'name': 'c', 'cluster': {'server': 'https://h:6443', 'proxy-url': 'http://px:Pr0xyPa%24s@proxy:3128'}}],
        'users': [
            {'name': 'exec', 'user': {'exec': {'command': 'aws', 'args': ['eks', 'get-token'],
                                               'env': [{'name': 'AWS_SECRET_ACCESS_KEY', 'value': 'EXEC-ENV-SECRET'},
                                                       {'name': 'AWS_PROFILE', 'value': 'prod'}]}}},
            {'name': 'oidc', 'user': {'auth-provider': {'name': 'oidc', 'config': {
                'client-id': 'CLIENT-ID-VALUE', 'idp-certificate-authority-data': 'IDPCA', 'extra': 'AP-EXTRA'}}}},
            {'name': 'tok', 'user': {'token': 'TOKEN-VALUE'}},
        ],
        'contexts': [{'name': 'ctx', 'context': {'cluster': 'c', 'user': 'tok'}}],
        'current-context': 'ctx',
    }
    found = kubeconfig_secret_values(cfg)
    assert {'EXEC-ENV-SECRET', 'prod', 'CLIENT-ID-VALUE', 'IDPCA', 'AP-EXTRA', 'TOKEN-VALUE',
            'Pr0xyPa%24s', 'Pr0xyPa$s'} <= found
    for public in ('ctx', 'c', 'https://h:6443', 'aws', 'AWS_SECRET_ACCESS_KEY', 'oidc', 'tok'):
        assert public not in found


def test_option_secret_values_covers_values_kubeconfigs_and_urls():
    params = {
        'values': {'tls': {'ca': {'key': 'VALUES-CA-KEY'}}},
        'kubeconfig': {'users': [{'name': 'u', 'user': {'exec': {'env': [{'name': 'E', 'value': 'ENV-V'}]}}}]},
        'source': {'kubeconfig': {'users': [{'name': 'u', 'user': {'token': 'SRC-TOK'}}]}},
        'clusters': [{'name': 'm', 'kubeconfig': {'users': [{'user': {'auth-provider': {'config': {'a': 'AP-1'}}}}]}}],
        'chart_repo_url': 'https://me:REPO-PW@charts.example.com',
        'release_name': 'cilium',
        'namespace': 'kube-system',
    }
    found = option_secret_values(params)
    assert {'VALUES-CA-KEY', 'ENV-V', 'SRC-TOK', 'AP-1', 'REPO-PW'} <= found
    assert not {'cilium', 'kube-system', 'me', 'm', 'u', 'E'} & found


def test_short_strings_and_flags_are_not_registered():
    """Ansible masks every occurrence of a no_log value: "1" would mask cluster IDs everywhere."""
    data = {'password': 'abc', 'token': 'true', 'keys': ['1', 'No'], 'caKey': 'abcd'}
    assert secret_values(data) == {'abcd'}
    cfg = {'users': [{'user': {'exec': {'env': [{'name': 'A', 'value': '1'}, {'name': 'B', 'value': 'false'},
                                                {'name': 'C', 'value': 'long-enough'}]}}}]}
    assert kubeconfig_secret_values(cfg) == {'long-enough'}
    # diffs still mask by key name, whatever the length
    assert mask_secrets({'password': 'abc'}) == {'password': MASK}
