# -*- coding: utf-8 -*-
# Copyright: meshops.cilium contributors
# SPDX-License-Identifier: Apache-2.0
"""ipsec.py: parsing, generation, fingerprints, SPI wrap and the present/rotated/absent plans."""

import base64
import hashlib

import pytest

from ansible_collections.meshops.cilium.plugins.module_utils.ipsec import (
    Current,
    IPsecKeyError,
    check_install_secret,
    current_of,
    duration_seconds,
    encryption_settings,
    fingerprint,
    generate,
    next_spi,
    parse_key,
    plan_absent,
    plan_present,
    plan_rotated,
    secret_body,
)

HEX20 = '0123456789abcdef0123456789abcdef01234567'
GOOD = '3+ rfc4106(gcm(aes)) %s 128' % HEX20
AUTH = '64' * 32
ENC = 'ab' * 16
GOOD_AUTHENC = '5+ hmac(sha256) %s cbc(aes) %s' % (AUTH, ENC)


def test_parse_aead():
    k = parse_key(GOOD)
    assert (k.spi, k.algo, k.key, k.icv, k.aead) == (3, 'rfc4106(gcm(aes))', HEX20, 128, True)
    assert k.value == GOOD
    assert k.public() == {'spi': 3, 'fingerprint': fingerprint(GOOD), 'per_tunnel': True,
                          'algorithm': 'rfc4106(gcm(aes))', 'icv': 128, 'key_bytes': 20}


def test_parse_normalizes_whitespace_hex_case_and_0x():
    k = parse_key('  3+   rfc4106(gcm(aes))  0x%s\t96 \n' % HEX20.upper())
    assert k.value == '3+ rfc4106(gcm(aes)) %s 96' % HEX20


@pytest.mark.parametrize('nbytes', [20, 28, 36])
def test_parse_aead_key_lengths(nbytes):
    assert len(parse_key('1+ rfc4106(gcm(aes)) %s 128' % ('a1' * nbytes)).key) == 2 * nbytes


def test_parse_auth_enc():
    k = parse_key(GOOD_AUTHENC)
    assert (k.spi, k.algo, k.key, k.enc_algo, k.enc_key, k.aead) == (5, 'hmac(sha256)', AUTH, 'cbc(aes)', ENC, False)
    assert k.value == GOOD_AUTHENC
    assert k.public()['algorithm'] == 'hmac(sha256) cbc(aes)' and k.public()['key_bytes'] == 48


DIGITS = '3141592653589793238462643383279502884197'  # a hex key of digits only

MALFORMED = [
    ('0+ rfc4106(gcm(aes)) %s 128' % HEX20, r'SPI \(field 1\) must be 1\.\.15$'),
    ('16+ rfc4106(gcm(aes)) %s 128' % HEX20, r'SPI \(field 1\) must be 1\.\.15$'),
    ('x+ rfc4106(gcm(aes)) %s 128' % HEX20, r'SPI \(field 1\) must be a number'),
    ('-1+ rfc4106(gcm(aes)) %s 128' % HEX20, r'SPI \(field 1\) must be a number'),
    ('3 rfc4106(gcm(aes)) %s 128' % HEX20, r'without "\+".*insecure.*GHSA-pwqm-x5x6-5586'),
    ('3 hmac(sha256) %s cbc(aes) %s' % (AUTH, ENC), r'without "\+"'),
    ('3+ rfc4106(gcm(aes)) %s 128' % ('zz' + HEX20[2:]), r'key \(field 3, SPI 3\) is not an even number of hex'),
    ('3+ rfc4106(gcm(aes)) %s 128' % HEX20[:-1], r'not an even number of hex'),
    ('3+ rfc4106(gcm(aes)) %s 128' % HEX20[:32], r'is 16 bytes; it must be 20 or 28 or 36 bytes'),
    ('3+ rfc4106(gcm(aes)) %s 128' % (HEX20 + 'ab'), r'is 21 bytes'),
    ('3+ rfc4106(gcm(des)) %s 128' % HEX20, r'unknown algorithm \(field 2, SPI 3\)'),
    ('3+ cbc(aes) %s 128' % HEX20, r'not an AEAD algorithm'),
    ('3+ rfc4106(gcm(aes)) %s 64' % HEX20, r'ICV length \(field 4, SPI 3\) must be one of 96, 128, 256 bits$'),
    ('3+ rfc4106(gcm(aes)) %s 12x' % HEX20, r'ICV length'),
    ('3+ hmac(md5) %s cbc(aes) %s' % (AUTH, ENC), r'unknown authentication algorithm \(field 2, SPI 3\)'),
    ('3+ hmac(sha256) %s cbc(des) %s' % (AUTH, ENC), r'unknown encryption algorithm \(field 4, SPI 3\)'),
    ('3+ hmac(sha256) %s cbc(aes) %s' % (AUTH[:-2], ENC), r'authentication key \(field 3, SPI 3\) is 31 bytes'),
    ('3+ hmac(sha256) %s cbc(aes) %s' % (AUTH, ENC + '00'), r'encryption key \(field 5, SPI 3\) is 17 bytes'),
    ('3+ hmac(sha256) %s cbc(aes) %s' % (AUTH, 'g' * 32), r'encryption key \(field 5, SPI 3\) is not .*hex'),
    ('3+ rfc4106(gcm(aes)) %s' % HEX20, r'4 fields .* or 5 fields .*got 3'),
    ('3+ rfc4106(gcm(aes)) %s 128 extra more' % HEX20, r'got 6'),
    ('3+', r'got 1'),
    ('', r'empty'),
    ('   \n ', r'empty'),
    ('%s\n%s' % (GOOD, GOOD), r'2 lines; exactly one key'),
    # fields in the wrong order: key material where an SPI, an algorithm or the ICV is expected
    ('%s 3+ rfc4106(gcm(aes)) 128' % HEX20, r'SPI \(field 1\) must be a number 1\.\.15 followed by "\+"$'),
    ('%s+ rfc4106(gcm(aes)) %s 128' % (DIGITS, HEX20), r'SPI \(field 1\) must be 1\.\.15$'),
    ('%s rfc4106(gcm(aes)) %s 128' % (DIGITS, HEX20), r'SPI \(field 1\) must be 1\.\.15$'),
    ('3+ %s rfc4106(gcm(aes)) 128' % HEX20, r'unknown algorithm \(field 2, SPI 3\)'),
    ('3+ rfc4106(gcm(aes)) 128 %s' % HEX20, r'key \(field 3, SPI 3\) is not an even number'),
    ('3+ rfc4106(gcm(aes)) %s %s' % (HEX20, DIGITS), r'ICV length \(field 4, SPI 3\)'),
    ('3+ %s hmac(sha256) cbc(aes) %s' % (AUTH, ENC), r'unknown authentication algorithm \(field 2, SPI 3\)'),
    ('3+ hmac(sha256) %s %s cbc(aes)' % (AUTH, ENC), r'unknown encryption algorithm \(field 4, SPI 3\)'),
    ('3+ hmac(sha256) %s cbc(aes) cbc(aes)' % AUTH, r'encryption key \(field 5, SPI 3\) is not .*hex'),
]


@pytest.mark.parametrize('value,match', MALFORMED,
                         ids=['malformed-%d' % i for i in range(len(MALFORMED))])  # no key in test ids
def test_malformed_keys_refused_without_echoing_the_key(value, match):
    with pytest.raises(IPsecKeyError, match=match) as ei:
        parse_key(value)
    msg = str(ei.value)
    for secret in (HEX20, HEX20[:32], HEX20.upper(), AUTH, AUTH[:-2], ENC, DIGITS):
        for i in range(0, len(secret) - 7):  # not even 8 characters of it
            assert secret[i:i + 8] not in msg


def test_spi_wraps_15_to_1():
    assert [next_spi(s) for s in range(1, 16)] == list(range(2, 16)) + [1]
    for bad in (0, 16, -1):
        with pytest.raises(IPsecKeyError, match=r'1\.\.15'):
            next_spi(bad)


def test_generate_uses_20_random_bytes_and_is_valid():
    calls = []

    def rand(n):
        calls.append(n)
        return bytes(range(n))
    k = generate(7, randbytes=rand)
    assert calls == [20]
    assert k.value == '7+ rfc4106(gcm(aes)) %s 128' % bytes(range(20)).hex()
    assert parse_key(k.value) == k


def test_generate_is_random_and_parses():
    keys = set(generate(1).value for dummy in range(50))
    assert len(keys) == 50
    for v in keys:
        k = parse_key(v)
        assert k.spi == 1 and len(k.key) == 40 and k.icv == 128


def test_generate_like_keeps_the_shape():
    old = parse_key(GOOD_AUTHENC)
    new = generate(6, like=old)
    assert new.spi == 6 and new.shape() == old.shape() and new.key != old.key and new.enc_key != old.enc_key
    aead = generate(2, like=parse_key('1+ rfc4106(gcm(aes)) %s 96' % ('a1' * 36)))
    assert (len(aead.key), aead.icv) == (72, 96)


@pytest.mark.parametrize('spi,icv', [(0, 128), (16, 128), (1, 64)])
def test_generate_refuses_bad_spi_or_icv(spi, icv):
    with pytest.raises(IPsecKeyError):
        generate(spi, icv=icv)


def test_fingerprint_is_a_short_sha256_prefix_of_the_value():
    assert fingerprint(GOOD) == hashlib.sha256(GOOD.encode()).hexdigest()[:16]
    assert fingerprint(GOOD + '\n') == fingerprint(GOOD)
    assert fingerprint(parse_key(GOOD)) == fingerprint(GOOD)
    assert fingerprint(GOOD) != fingerprint(GOOD.replace('3+', '4+'))
    assert HEX20 not in fingerprint(GOOD)


@pytest.mark.parametrize('text,seconds', [('5m', 300), ('90s', 90), ('1h30m', 5400), ('1.5h', 5400),
                                          ('500ms', 0.5), ('0', 0)])
def test_duration_seconds(text, seconds):
    assert duration_seconds(text) == pytest.approx(seconds)


@pytest.mark.parametrize('text', ['5', '5 m', 'm5', '', '5min', '-5m'])
def test_duration_seconds_refuses(text):
    with pytest.raises(ValueError):
        duration_seconds(text)


# ---------------------------------------------------------------------------
# The Secret
# ---------------------------------------------------------------------------

def _secret(value, key='keys'):
    return {'metadata': {'name': 'cilium-ipsec-keys', 'resourceVersion': '7', 'labels': {'a': 'b'}},
            'data': {key: base64.b64encode(value.encode()).decode()}}


def test_current_of():
    assert current_of(None).state == {'exists': False}
    assert current_of(_secret(GOOD)).state == {'exists': True, 'valid': True, 'spi': 3,
                                               'fingerprint': fingerprint(GOOD)}
    bad = current_of(_secret('3 rfc4106(gcm(aes)) %s 128' % HEX20))
    assert bad.key is None and 'without "+"' in bad.error and HEX20 not in str(bad.state)
    assert 'no key "keys"' in current_of(_secret(GOOD, key='other')).error
    assert 'base64' in current_of({'data': {'keys': '@@@'}}).error


def test_secret_body_keeps_metadata_and_resource_version():
    body = secret_body(parse_key(GOOD), 'kube-system', current=_secret(GOOD))
    assert body['metadata'] == {'name': 'cilium-ipsec-keys', 'namespace': 'kube-system', 'labels': {'a': 'b'},
                                'resourceVersion': '7'}
    assert body['type'] == 'Opaque' and base64.b64decode(body['data']['keys']).decode() == GOOD
    assert 'resourceVersion' not in secret_body(parse_key(GOOD), 'kube-system')['metadata']


# ---------------------------------------------------------------------------
# Plans
# ---------------------------------------------------------------------------

A1 = parse_key(GOOD.replace('3+', '1+'))
A2 = parse_key('2+ rfc4106(gcm(aes)) %s 128' % ('b2' * 20))
B1 = parse_key('1+ rfc4106(gcm(aes)) %s 128' % ('c3' * 20))
B2 = parse_key('2+ rfc4106(gcm(aes)) %s 128' % ('d4' * 20))
A3 = parse_key('3+ rfc4106(gcm(aes)) %s 128' % ('e5' * 20))


def _gen(spi=1, like=None):
    return generate(spi, like=like)


def test_present_creates_copies_keeps():
    p = plan_present(Current(False), generate_key=_gen)
    assert (p.action, p.write, p.spi) == ('created', 'put', 1)
    p = plan_present(Current(False), A1, 'mesh-1', generate_key=_gen)
    assert (p.action, p.write, p.key) == ('copied', 'put', A1)
    p = plan_present(Current(False), A1, generate_key=_gen)
    assert (p.action, p.key) == ('created', A1)
    assert plan_present(Current(True, A1), generate_key=_gen).write is None
    assert plan_present(Current(True, A1), A1, 'mesh-1').action == 'unchanged'


def test_present_refuses_a_different_key_unless_reconcile():
    with pytest.raises(IPsecKeyError, match='different IPsec key .*source cluster mesh-1.*reconcile=true') as ei:
        plan_present(Current(True, A2), A1, 'mesh-1')
    assert A1.key not in str(ei.value) and A2.key not in str(ei.value)
    p = plan_present(Current(True, A2), A1, 'mesh-1', reconcile=True)
    assert (p.action, p.write, p.key, p.warnings) == ('replaced', 'put', A1, [])
    # same SPI, different key: replaced with a warning about XfrmInStateProtoError
    p = plan_present(Current(True, B1), A1, 'mesh-1', reconcile=True)
    assert p.action == 'replaced' and 'XfrmInStateProtoError' in p.warnings[0]


def test_present_with_an_unusable_key():
    broken = Current(True, error='the SPI (field 1) must be 1..15, got 16')
    with pytest.raises(IPsecKeyError, match='unusable: the SPI'):
        plan_present(broken, generate_key=_gen)
    p = plan_present(broken, reconcile=True, generate_key=_gen)
    assert p.action == 'replaced' and p.key.spi == 1


def test_rotated_generates_the_next_spi_with_the_same_shape():
    p = plan_rotated(Current(True, A1), generate_key=_gen)
    assert (p.action, p.write, p.spi) == ('rotated', 'put', 2) and p.key.shape() == A1.shape() and p.key != A1
    fifteen = parse_key('15+ rfc4106(gcm(aes)) %s 96' % HEX20)
    p = plan_rotated(Current(True, fifteen), generate_key=_gen)
    assert p.spi == 1 and p.key.icv == 96


def test_rotated_needs_a_key():
    with pytest.raises(IPsecKeyError, match='nothing to rotate: Secret cilium-ipsec-keys does not exist'):
        plan_rotated(Current(False), generate_key=_gen)
    with pytest.raises(IPsecKeyError, match='nothing to rotate: broken'):
        plan_rotated(Current(True, error='broken'), generate_key=_gen)


def test_rotated_with_from_is_idempotent():
    p = plan_rotated(Current(True, A1), from_spi=1, from_fingerprint=A1.fingerprint, generate_key=_gen)
    assert p.action == 'rotated' and p.spi == 2
    # a re-run after the write: already under the next SPI
    p = plan_rotated(Current(True, A2), from_spi=1, from_fingerprint=A1.fingerprint, generate_key=_gen)
    assert (p.action, p.write, p.key) == ('unchanged', None, A2)
    # neither start nor end of this rotation
    with pytest.raises(IPsecKeyError, match='neither at the start nor at the end'):
        plan_rotated(Current(True, A3), from_spi=1, from_fingerprint=A1.fingerprint, generate_key=_gen)
    # right SPI, wrong key at the start
    with pytest.raises(IPsecKeyError, match='neither at the start'):
        plan_rotated(Current(True, B1), from_spi=1, from_fingerprint=A1.fingerprint, generate_key=_gen)


def test_rotated_copies_from_a_rotated_source():
    p = plan_rotated(Current(True, A1), A2, 'mesh-1', from_spi=1, from_fingerprint=A1.fingerprint)
    assert (p.action, p.key) == ('rotated', A2)
    # re-run
    assert plan_rotated(Current(True, A2), A2, 'mesh-1', from_spi=1, from_fingerprint=A1.fingerprint).write is None
    # without from: the source must be one rotation ahead
    assert plan_rotated(Current(True, A1), A2, 'mesh-1').key == A2
    with pytest.raises(IPsecKeyError, match='not one rotation apart'):
        plan_rotated(Current(True, A1), A3, 'mesh-1')


def test_rotated_source_not_rotated_yet():
    with pytest.raises(IPsecKeyError, match='source cluster mesh-1 still holds SPI 1.*rotate it first'):
        plan_rotated(Current(True, A1), A1, 'mesh-1', from_spi=1, from_fingerprint=A1.fingerprint)
    # check mode previews it: the same run rotates the source first
    p = plan_rotated(Current(True, A1), A1, 'mesh-1', from_spi=1, from_fingerprint=A1.fingerprint, check_mode=True)
    assert (p.action, p.write, p.key, p.spi) == ('rotated', 'put', None, 2)


def test_rotated_two_keys_under_the_next_spi():
    with pytest.raises(IPsecKeyError, match='produced two keys'):
        plan_rotated(Current(True, B2), A2, 'mesh-1', from_spi=1, from_fingerprint=A1.fingerprint)
    p = plan_rotated(Current(True, B2), A2, 'mesh-1', from_spi=1, from_fingerprint=A1.fingerprint, reconcile=True)
    assert p.action == 'replaced' and p.key == A2 and p.warnings


def test_rotated_keeps_algorithm_and_length():
    with pytest.raises(IPsecKeyError, match='must keep the algorithm and key length'):
        plan_rotated(Current(True, A1), wanted=parse_key('2+ rfc4106(gcm(aes)) %s 128' % ('a1' * 36)))
    with pytest.raises(IPsecKeyError, match='SPI 3; the next SPI after 1 is 2'):
        plan_rotated(Current(True, A1), wanted=A3)
    assert plan_rotated(Current(True, A1), wanted=A2).key == A2


def test_absent():
    assert plan_absent(Current(False)).action == 'absent'
    p = plan_absent(Current(True, A1))
    assert (p.action, p.write) == ('deleted', 'delete')


# ---------------------------------------------------------------------------
# cilium_install's guard
# ---------------------------------------------------------------------------

def test_encryption_settings_defaults():
    assert encryption_settings({}) == {'enabled': False, 'type': 'ipsec', 'ipsec': False,
                                       'secret_name': 'cilium-ipsec-keys', 'key_name': 'keys',
                                       'key_rotation_duration': '5m'}
    e = encryption_settings({'encryption': {'enabled': True,
                                            'ipsec': {'secretName': 'k', 'keyRotationDuration': '9m'}}})
    assert e['ipsec'] and e['secret_name'] == 'k' and e['key_rotation_duration'] == '9m'
    assert not encryption_settings({'encryption': {'enabled': True, 'type': 'wireguard'}})['ipsec']


def test_check_install_secret():
    ipsec = {'encryption': {'enabled': True, 'type': 'ipsec'}}
    msg = check_install_secret(ipsec, None, 'kube-system')
    assert 'Secret kube-system/cilium-ipsec-keys' in msg and 'does not exist' in msg and 'ipsec role' in msg
    assert 'without "+"' in check_install_secret(ipsec, _secret('3 rfc4106(gcm(aes)) %s 128' % HEX20), 'kube-system')
    assert check_install_secret(ipsec, _secret(GOOD), 'kube-system') is None
    assert check_install_secret({'encryption': {'enabled': True, 'type': 'wireguard'}}, None, 'kube-system') is None
    assert check_install_secret({}, None, 'kube-system') is None
