# -*- coding: utf-8 -*-
# Copyright: meshops.cilium contributors
# SPDX-License-Identifier: Apache-2.0
"""ca.py: CA generation, Secret body with Helm ownership metadata, and the plan."""

import base64
import datetime

import pytest

from cryptography import x509

from ansible_collections.meshops.cilium.plugins.module_utils.ca import (
    CAError,
    check_pair,
    complete_material,
    generate_ca,
    identity,
    owner_release,
    plan,
    same_material,
    secret_body,
)


@pytest.fixture(scope='module')
def ca_a():
    return generate_ca('ecdsa')


@pytest.fixture(scope='module')
def ca_b():
    return generate_ca('rsa')


@pytest.mark.parametrize('key_type,marker', [('ecdsa', b'EC PRIVATE KEY'), ('rsa', b'RSA PRIVATE KEY')])
def test_generate_ca(key_type, marker):
    now = datetime.datetime(2026, 1, 1, tzinfo=datetime.timezone.utc)
    cert_pem, key_pem = generate_ca(key_type, 1095, now=now)
    assert marker in key_pem
    check_pair(cert_pem, key_pem)
    cert = x509.load_pem_x509_certificate(cert_pem)
    assert cert.subject.rfc4514_string() == 'CN=Cilium CA' and cert.issuer == cert.subject
    assert cert.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
    assert cert.extensions.get_extension_for_class(x509.KeyUsage).value.key_cert_sign
    assert cert.not_valid_after_utc - cert.not_valid_before_utc == datetime.timedelta(days=1095, minutes=5)
    ident = identity(cert_pem)
    assert len(ident['fingerprint'].split(':')) == 32 and len(ident['subject_key_id']) == 40


def test_generate_ca_bad_input():
    with pytest.raises(CAError, match='key_type'):
        generate_ca('dsa')
    with pytest.raises(CAError, match='validity_days'):
        generate_ca('ecdsa', 0)


def test_check_pair_mismatch(ca_a, ca_b):
    with pytest.raises(CAError, match='does not belong'):
        check_pair(ca_a[0], ca_b[1])
    with pytest.raises(CAError, match='not a PEM certificate'):
        check_pair(b'junk', ca_a[1])


def test_secret_body_has_helm_ownership(ca_a):
    body = secret_body(ca_a[0], ca_a[1], 'kube-system', 'cilium')
    assert body['type'] == 'Opaque' and body['metadata']['name'] == 'cilium-ca'
    assert body['metadata']['labels'] == {'app.kubernetes.io/managed-by': 'Helm'}
    assert body['metadata']['annotations'] == {'meta.helm.sh/release-name': 'cilium',
                                               'meta.helm.sh/release-namespace': 'kube-system'}
    assert base64.b64decode(body['data']['ca.crt']) == ca_a[0]
    assert base64.b64decode(body['data']['ca.key']) == ca_a[1]
    assert owner_release(body) == ('cilium', 'kube-system')
    assert complete_material(body) == ca_a


def _bare(material):
    body = secret_body(material[0], material[1], 'kube-system')
    body['metadata'] = {'name': 'cilium-ca'}
    return body


def test_plan_create_and_copy(ca_a):
    assert plan(None, ca_a, False, False, 'cilium', 'kube-system') == ('created', 'create')
    assert plan(None, ca_a, True, False, 'cilium', 'kube-system') == ('copied', 'create')


def test_plan_unchanged_and_adopt(ca_a):
    owned = secret_body(ca_a[0], ca_a[1], 'kube-system')
    assert plan(owned, ca_a, True, False, 'cilium', 'kube-system') == ('unchanged', None)
    assert plan(_bare(ca_a), ca_a, False, False, 'cilium', 'kube-system') == ('adopted', 'patch')


def test_plan_other_release_needs_force(ca_a):
    other = secret_body(ca_a[0], ca_a[1], 'kube-system', 'cilium-old')
    with pytest.raises(CAError, match='owned by Helm release kube-system/cilium-old'):
        plan(other, ca_a, False, False, 'cilium', 'kube-system')
    assert plan(other, ca_a, False, True, 'cilium', 'kube-system') == ('adopted', 'patch')


def test_plan_different_ca_refused_with_consequence(ca_a, ca_b):
    current = secret_body(ca_a[0], ca_a[1], 'kube-system')
    with pytest.raises(CAError) as e:
        plan(current, ca_b, True, False, 'cilium', 'kube-system')
    text = str(e.value)
    assert identity(ca_a[0])['fingerprint'] in text and identity(ca_b[0])['fingerprint'] in text
    assert 'breaks every ClusterMesh connection' in text and 'force=true' in text
    assert plan(current, ca_b, True, True, 'cilium', 'kube-system') == ('replaced', 'replace')


def test_plan_broken_secret(ca_a):
    broken = {'metadata': {'name': 'cilium-ca'}, 'data': {'ca.crt': base64.b64encode(ca_a[0]).decode()}}
    with pytest.raises(CAError, match='does not hold a usable CA'):
        plan(broken, ca_a, False, False, 'cilium', 'kube-system')
    assert plan(broken, ca_a, False, True, 'cilium', 'kube-system') == ('replaced', 'replace')
    assert complete_material(broken) is None


def test_same_material(ca_a, ca_b):
    assert same_material(ca_a, (ca_a[0] + b'\n', ca_a[1]))
    assert not same_material(ca_a, ca_b)
    assert not same_material(ca_a, (ca_a[0], None))
