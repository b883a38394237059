# -*- coding: utf-8 -*-
# Copyright: meshops.cilium contributors
# SPDX-License-Identifier: Apache-2.0
"""Cilium IPsec keys: the value of Secret ``cilium-ipsec-keys`` (key ``keys``).

Pure functions (parse, validate, format, generate, fingerprint, plan) plus a
few helpers that read and write the Secret through a ``cluster.Cluster``.

The value is one line in one of two forms (Cilium's key file format):

* AEAD:     ``SPI[+] rfc4106(gcm(aes)) HEXKEY ICVBITS``
* auth+enc: ``SPI[+] AUTHALGO AUTHHEXKEY ENCALGO ENCHEXKEY``

SPI (the key ID) is 1..15. The ``+`` makes the agents derive a key per node
pair from the shared key (per-tunnel keys); without it every node pair
shares one key and one IV space, which is insecure (GHSA-pwqm-x5x6-5586), so
this module refuses keys without it.

Nothing here ever puts key material into an exception message, a return
value or a diff: only the SPI, the algorithms, the key lengths and a short
fingerprint (a prefix of the SHA-256 of the whole value).
"""

import base64
import binascii
import hashlib
import re
import secrets

from ansible_collections.meshops.cilium.plugins.module_utils.errors import MeshopsValueError
from ansible_collections.meshops.cilium.plugins.module_utils.cluster import (
    CONNECTION_OPTIONS,
    Cluster,
    ClusterError,
)

SECRET_NAME = 'cilium-ipsec-keys'
SECRET_KEY = 'keys'
DEFAULT_ROTATION_DURATION = '5m'

AEAD_ALGO = 'rfc4106(gcm(aes))'
# rfc4106: an AES key (16, 24 or 32 bytes) followed by a 4-byte salt.
AEAD_KEY_BYTES = {AEAD_ALGO: (20, 28, 36)}
ICV_BITS = (96, 128, 256)
DEFAULT_ICV = 128
GENERATED_KEY_BYTES = 20
AUTH_KEY_BYTES = {'hmac(sha1)': (20,), 'hmac(sha256)': (32,), 'hmac(sha384)': (48,), 'hmac(sha512)': (64,)}
ENC_KEY_BYTES = {'cbc(aes)': (16, 24, 32)}
SPI_MIN, SPI_MAX = 1, 15
FINGERPRINT_HEX = 16

_SPI_RE = re.compile(r'(\d+)(\+?)')
_HEX_RE = re.compile(r'(?:0x)?([0-9a-fA-F]+)')


class IPsecKeyError(MeshopsValueError):
    """A malformed or unacceptable key. The message never holds key material."""


def fingerprint(value):
    """A short public name of a key value: the first 16 hex digits of SHA-256 of the value."""
    if isinstance(value, IPsecKey):
        value = value.value
    return hashlib.sha256(value.strip().encode('utf-8')).hexdigest()[:FINGERPRINT_HEX]


def next_spi(spi):
    """The SPI after ``spi``: 1..14 -> +1, 15 -> 1."""
    spi = int(spi)
    if not SPI_MIN <= spi <= SPI_MAX:
        raise IPsecKeyError('SPI must be %d..%d, got %s' % (SPI_MIN, SPI_MAX, spi))
    return spi % SPI_MAX + 1


def _parse_spi(text):
    m = _SPI_RE.fullmatch(text)
    if not m:
        raise IPsecKeyError('the SPI (field 1) must be a number 1..15 followed by "+"')
    digits = m.group(1)
    if len(digits) > 2 or not SPI_MIN <= int(digits) <= SPI_MAX:
        raise IPsecKeyError('the SPI (field 1) must be 1..15')
    spi = int(digits)
    if not m.group(2):
        raise IPsecKeyError('the SPI (field 1) is %d without "+": global keys (one key and IV space shared by every '
                            'node pair) are insecure (GHSA-pwqm-x5x6-5586). Write it as "%d+" so the agents derive '
                            'per-tunnel keys (changing an existing key\'s form needs a rotation)' % (spi, spi))
    return spi


def _where(field, spi):
    """``(field N, SPI S)``: how parse errors point at a field; never the field's content."""
    return '(field %d, SPI %d)' % (field, spi)


def _parse_hex(text, what, lengths):
    m = _HEX_RE.fullmatch(text)
    if not m or len(m.group(1)) % 2:
        raise IPsecKeyError('%s is not an even number of hex digits' % what)
    n = len(m.group(1)) // 2
    if n not in lengths:
        raise IPsecKeyError('%s is %d bytes; it must be %s bytes' % (
            what, n, ' or '.join(str(x) for x in lengths)))
    return m.group(1).lower()


class IPsecKey:
    """One parsed key. ``value`` is the normalized line (secret); ``public()`` is safe to show."""

    def __init__(self, spi, algo, key, icv=None, enc_algo=None, enc_key=None):
        self.spi = spi
        self.algo = algo          # AEAD algorithm, or the auth algorithm of the auth+enc form
        self.key = key            # hex (secret)
        self.icv = icv            # AEAD only
        self.enc_algo = enc_algo  # auth+enc only
        self.enc_key = enc_key    # hex (secret), auth+enc only

    @property
    def aead(self):
        return self.enc_algo is None

    @property
    def value(self):
        if self.aead:
            return '%d+ %s %s %d' % (self.spi, self.algo, self.key, self.icv)
        return '%d+ %s %s %s %s' % (self.spi, self.algo, self.key, self.enc_algo, self.enc_key)

    @property
    def fingerprint(self):
        return fingerprint(self.value)

    def shape(self):
        """What a rotation must keep: algorithms, key lengths and ICV."""
        return (self.algo, len(self.key), self.icv, self.enc_algo, len(self.enc_key or ''))

    def describe_shape(self):
        if self.aead:
            return '%s, %d-byte key, ICV %d' % (self.algo, len(self.key) // 2, self.icv)
        return '%s (%d-byte key) + %s (%d-byte key)' % (self.algo, len(self.key) // 2, self.enc_algo,
                                                        len(self.enc_key) // 2)

    def public(self):
        """SPI, algorithms, sizes and fingerprint: never the key."""
        return {'spi': self.spi, 'fingerprint': self.fingerprint, 'per_tunnel': True,
                'algorithm': self.algo if self.aead else '%s %s' % (self.algo, self.enc_algo),
                'icv': self.icv, 'key_bytes': len(self.key) // 2 + len(self.enc_key or '') // 2}

    def __eq__(self, other):
        return isinstance(other, IPsecKey) and self.value == other.value

    def __ne__(self, other):
        return not self.__eq__(other)

    def __hash__(self):
        return hash(self.value)

    def __repr__(self):
        return 'IPsecKey(spi=%d, %s, fingerprint=%s)' % (self.spi, self.describe_shape(), self.fingerprint)


def parse_key(value):
    """Parse one key line into an IPsecKey; IPsecKeyError (no key material in it) when it is unusable."""
    if value is None:
        raise IPsecKeyError('the key is empty')
    if not isinstance(value, str):
        try:
            value = value.decode('utf-8')
        except (AttributeError, UnicodeDecodeError):
            raise IPsecKeyError('the key is not text')
    lines = [ln for ln in value.strip().splitlines() if ln.strip()]
    if not lines:
        raise IPsecKeyError('the key is empty')
    if len(lines) > 1:
        raise IPsecKeyError('the value holds %d lines; exactly one key is expected' % len(lines))
    fields = lines[0].split()
    # Messages name a field by its position and the SPI, never its content: a field that is not
    # what its position expects may well be key material (fields in the wrong order).
    if len(fields) == 4:
        spi = _parse_spi(fields[0])
        algo = fields[1]
        if algo not in AEAD_KEY_BYTES:
            if algo in ENC_KEY_BYTES or algo in AUTH_KEY_BYTES:
                raise IPsecKeyError('%s %s is not an AEAD algorithm; the 4-field form is "SPI+ %s HEXKEY ICV", '
                                    'the auth+enc form has 5 fields' % (algo, _where(2, spi), AEAD_ALGO))
            raise IPsecKeyError('unknown algorithm %s; the AEAD form supports %s' % (
                _where(2, spi), ', '.join(sorted(AEAD_KEY_BYTES))))
        key = _parse_hex(fields[2], 'the key %s' % _where(3, spi), AEAD_KEY_BYTES[algo])
        if not fields[3].isdigit() or int(fields[3]) not in ICV_BITS:
            raise IPsecKeyError('the ICV length %s must be one of %s bits' % (
                _where(4, spi), ', '.join(str(i) for i in ICV_BITS)))
        return IPsecKey(spi, algo, key, icv=int(fields[3]))
    if len(fields) == 5:
        spi = _parse_spi(fields[0])
        auth, enc = fields[1], fields[3]
        if auth not in AUTH_KEY_BYTES:
            raise IPsecKeyError('unknown authentication algorithm %s; supported: %s' % (
                _where(2, spi), ', '.join(sorted(AUTH_KEY_BYTES))))
        if enc not in ENC_KEY_BYTES:
            raise IPsecKeyError('unknown encryption algorithm %s; supported: %s' % (
                _where(4, spi), ', '.join(sorted(ENC_KEY_BYTES))))
        akey = _parse_hex(fields[2], 'the authentication key %s' % _where(3, spi), AUTH_KEY_BYTES[auth])
        ekey = _parse_hex(fields[4], 'the encryption key %s' % _where(5, spi), ENC_KEY_BYTES[enc])
        return IPsecKey(spi, auth, akey, enc_algo=enc, enc_key=ekey)
    raise IPsecKeyError('a key has 4 fields ("SPI+ %s HEXKEY ICV") or 5 fields ("SPI+ AUTHALGO AUTHKEY ENCALGO '
                        'ENCKEY"), got %d' % (AEAD_ALGO, len(fields)))


def generate(spi=1, like=None, icv=DEFAULT_ICV, randbytes=secrets.token_bytes):
    """A new random key under ``spi`` from the OS's secure random source.

    Without ``like``: ``rfc4106(gcm(aes))`` with a 20-byte key (16-byte AES key + 4-byte salt) and ``icv``.
    With ``like`` (an IPsecKey): the same algorithms, key lengths and ICV (what a rotation must keep).
    """
    spi = int(spi)
    if not SPI_MIN <= spi <= SPI_MAX:
        raise IPsecKeyError('SPI must be %d..%d, got %s' % (SPI_MIN, SPI_MAX, spi))
    if like is None:
        if int(icv) not in ICV_BITS:
            raise IPsecKeyError('icv must be one of %s, got %s' % (', '.join(str(i) for i in ICV_BITS), icv))
        return IPsecKey(spi, AEAD_ALGO, binascii.hexlify(randbytes(GENERATED_KEY_BYTES)).decode('ascii'),
                        icv=int(icv))
    if like.aead:
        return IPsecKey(spi, like.algo, binascii.hexlify(randbytes(len(like.key) // 2)).decode('ascii'),
                        icv=like.icv)
    return IPsecKey(spi, like.algo, binascii.hexlify(randbytes(len(like.key) // 2)).decode('ascii'),
                    enc_algo=like.enc_algo,
                    enc_key=binascii.hexlify(randbytes(len(like.enc_key) // 2)).decode('ascii'))


# ---------------------------------------------------------------------------
# Go durations (encryption.ipsec.keyRotationDuration)
# ---------------------------------------------------------------------------

_DURATION_RE = re.compile(r'(\d+(?:\.\d*)?|\.\d+)(ns|us|\u00b5s|ms|s|m|h)')
_UNIT_SECONDS = {'ns': 1e-9, 'us': 1e-6, u'\u00b5s': 1e-6, 'ms': 1e-3, 's': 1.0, 'm': 60.0, 'h': 3600.0}


def duration_seconds(text):
    """Seconds of a Go duration such as ``5m``, ``1h30m`` or ``90s``; ValueError otherwise."""
    text = str(text).strip()
    if text in ('0',):
        return 0.0
    pos, total = 0, 0.0
    for m in _DURATION_RE.finditer(text):
        if m.start() != pos:
            break
        total += float(m.group(1)) * _UNIT_SECONDS[m.group(2)]
        pos = m.end()
    if not text or pos != len(text):
        raise MeshopsValueError('%r is not a duration such as 5m, 90s or 1h30m' % text)
    return total


# ---------------------------------------------------------------------------
# Planning (pure)
# ---------------------------------------------------------------------------

class Current:
    """What a cluster holds: ``exists`` (the Secret), ``key`` (IPsecKey) or ``error`` (why it is unusable)."""

    def __init__(self, exists=False, key=None, error=None):
        self.exists = exists
        self.key = key
        self.error = error

    @property
    def state(self):
        """For diffs and results: never the key."""
        if not self.exists:
            return {'exists': False}
        if self.key is None:
            return {'exists': True, 'valid': False, 'error': self.error}
        return {'exists': True, 'valid': True, 'spi': self.key.spi, 'fingerprint': self.key.fingerprint}

    def __repr__(self):
        return 'Current(%r)' % self.state


def describe(key):
    return 'SPI %d, fingerprint %s' % (key.spi, key.fingerprint)


class Plan:
    """``action`` (created, copied, unchanged, replaced, rotated, deleted, absent), ``write`` (None, put,
    delete), ``key`` (the IPsecKey the cluster holds afterwards; None when check mode cannot know it
    yet, or after a delete), ``spi`` (the SPI afterwards) and ``warnings``."""

    def __init__(self, action, write=None, key=None, spi=None, warnings=None):
        self.action = action
        self.write = write
        self.key = key
        self.spi = key.spi if key is not None else spi
        self.warnings = warnings or []

    def __repr__(self):
        return 'Plan(%s, write=%s, key=%r, spi=%s)' % (self.action, self.write, self.key, self.spi)


def _replace_warnings(current, new):
    if current.key is not None and current.key.spi == new.spi and current.key != new:
        return ['the key under SPI %d is replaced by a different key under the same SPI: agents that loaded '
                'the old one reject packets with the new one (XfrmInStateProtoError) until they reload. Rotate '
                'the whole mesh to a new SPI afterwards (state=rotated)' % new.spi]
    return []


def plan_present(current, wanted=None, source_name=None, reconcile=False, generate_key=None):
    """State ``present``.

    :param current: a Current.
    :param wanted: the IPsecKey from the ``key`` option or from the source cluster, or None.
    :param source_name: the source cluster's name when ``wanted`` comes from it (for messages).
    :param generate_key: callable returning a new IPsecKey (when nothing is wanted and nothing usable exists).
    """
    origin = 'the source cluster %s' % source_name if source_name else 'the key option'
    if current.key is not None:
        if wanted is None or wanted == current.key:
            return Plan('unchanged', key=current.key)
        if not reconcile:
            raise IPsecKeyError(
                'holds a different IPsec key (%s) than %s (%s). Every cluster of a mesh must hold the same key. '
                'Set reconcile=true to overwrite it with the wanted key (see the ipsec role\'s docs on recovering '
                'a cluster)' % (describe(current.key), origin, describe(wanted)))
        return Plan('replaced', 'put', wanted, warnings=_replace_warnings(current, wanted))
    if current.exists and current.error:
        if not reconcile:
            raise IPsecKeyError('Secret %s exists but its key is unusable: %s. Fix it, or set reconcile=true to '
                                'replace it' % (SECRET_NAME, current.error))
        new = wanted if wanted is not None else generate_key()
        return Plan('replaced', 'put', new)
    if wanted is not None:
        return Plan('copied' if source_name else 'created', 'put', wanted)
    return Plan('created', 'put', generate_key())


def plan_rotated(current, source=None, source_name=None, from_spi=None, from_fingerprint=None,
                 reconcile=False, check_mode=False, generate_key=None, wanted=None):
    """State ``rotated``: the key under the next SPI.

    :param source: the source cluster's IPsecKey (copy it when it is this cluster's next key), or None to
        generate (or take ``wanted``, a key from the ``key`` option).
    :param from_spi, from_fingerprint: the key the rotation starts from. With them a re-run is idempotent:
        a cluster already under SPI ``next(from_spi)`` counts as rotated. Without them every run rotates.
    """
    if current.key is None:
        why = current.error if current.exists else 'Secret %s does not exist' % SECRET_NAME
        raise IPsecKeyError('nothing to rotate: %s. Create the key with state=present first' % why)
    cur = current.key
    guarded = from_spi is not None
    if guarded:
        nxt = next_spi(from_spi)
        at_start = cur.spi == int(from_spi) and (from_fingerprint is None or cur.fingerprint == from_fingerprint)
        if not at_start:
            if cur.spi != nxt:
                raise IPsecKeyError(
                    'holds %s, but the rotation starts from SPI %s%s: this cluster is neither at the start nor '
                    'at the end (SPI %d) of this rotation. Bring it in line first (the ipsec role\'s distribute '
                    'action with reconcile)' % (describe(cur), from_spi,
                                                ', fingerprint %s' % from_fingerprint if from_fingerprint else '',
                                                nxt))
            # already under the next SPI
            if source is None or source == cur:
                return Plan('unchanged', key=cur)
            if not reconcile:
                raise IPsecKeyError(
                    'already holds a key under SPI %d (%s) but the source cluster %s holds a different one (%s): '
                    'the rotation produced two keys. Set reconcile=true to take the source\'s' % (
                        nxt, cur.fingerprint, source_name, describe(source)))
            return Plan('replaced', 'put', source, warnings=_replace_warnings(current, source))
    else:
        nxt = next_spi(cur.spi)
    if source is not None:
        if source == cur or (guarded and source.spi == int(from_spi)
                             and (from_fingerprint is None or source.fingerprint == from_fingerprint)):
            if check_mode:
                # the source is rotated by the same run, which check mode only previews
                return Plan('rotated', 'put', None, spi=nxt)
            raise IPsecKeyError('the source cluster %s still holds %s: rotate it first, then copy from it'
                                % (source_name, describe(source)))
        if source.spi != nxt:
            raise IPsecKeyError('the source cluster %s holds %s, but this cluster\'s next SPI is %d (it holds %s): '
                                'they are not one rotation apart' % (source_name, describe(source), nxt, describe(cur)))
        new = source
    elif wanted is not None:
        if wanted.spi != nxt:
            raise IPsecKeyError('the key option has SPI %d; the next SPI after %d is %d' % (wanted.spi, cur.spi, nxt))
        new = wanted
    else:
        new = generate_key(nxt, cur)
    if new.shape() != cur.shape():
        raise IPsecKeyError('a rotation must keep the algorithm and key length (%s), the new key has %s' % (
            cur.describe_shape(), new.describe_shape()))
    return Plan('rotated', 'put', new)


def plan_absent(current):
    if not current.exists:
        return Plan('absent')
    return Plan('deleted', 'delete')


# ---------------------------------------------------------------------------
# The Secret
# ---------------------------------------------------------------------------

def secret_value(secret, key_name=SECRET_KEY):
    """The decoded value of ``key_name`` in a Secret dict, or None."""
    data = (secret or {}).get('data') or {}
    raw = data.get(key_name)
    if raw is None:
        return None
    try:
        return base64.b64decode(raw, validate=True).decode('utf-8')
    except (binascii.Error, ValueError, TypeError, UnicodeDecodeError):
        raise IPsecKeyError('the value is not base64-encoded UTF-8 text')


def current_of(secret, key_name=SECRET_KEY):
    """A Current from a Secret dict (or None)."""
    if secret is None:
        return Current(False)
    try:
        value = secret_value(secret, key_name)
    except IPsecKeyError as e:
        return Current(True, error='key %s: %s' % (key_name, e))
    if value is None:
        return Current(True, error='the Secret has no key "%s"' % key_name)
    try:
        return Current(True, parse_key(value))
    except IPsecKeyError as e:
        return Current(True, error=str(e))


def secret_body(key, namespace, name=SECRET_NAME, key_name=SECRET_KEY, current=None):
    """The Secret (type Opaque) holding ``key``; with ``current`` (the existing Secret dict) its labels,
    annotations and resourceVersion are kept, so a concurrent change fails instead of being lost."""
    meta = {'name': name, 'namespace': namespace}
    if current is not None:
        cmeta = current.get('metadata') or {}
        for k in ('labels', 'annotations', 'resourceVersion'):
            if cmeta.get(k):
                meta[k] = cmeta[k]
    return {'apiVersion': 'v1', 'kind': 'Secret', 'type': 'Opaque', 'metadata': meta,
            'data': {key_name: base64.b64encode(key.value.encode('utf-8')).decode('ascii')}}


def read(cluster, namespace, name=SECRET_NAME):
    """The Secret dict or None."""
    return cluster.read_secret(namespace, name, missing_ok=True)


def write(cluster, namespace, key, current_secret, name=SECRET_NAME, key_name=SECRET_KEY):
    """Create or replace the Secret with ``key``."""
    body = secret_body(key, namespace, name, key_name, current_secret)
    if current_secret is None:
        cluster.call('create Secret %s/%s' % (namespace, name), cluster.core.create_namespaced_secret,
                     namespace, body)
    else:
        cluster.call('replace Secret %s/%s' % (namespace, name), cluster.core.replace_namespaced_secret,
                     name, namespace, body)


def delete(cluster, namespace, name=SECRET_NAME):
    cluster.call('delete Secret %s/%s' % (namespace, name), cluster.core.delete_namespaced_secret, name,
                 namespace, missing_ok=True)


def source_params(source):
    return dict((k, (source or {}).get(k)) for k in CONNECTION_OPTIONS)


def read_source_key(source, namespace, name=SECRET_NAME, key_name=SECRET_KEY):
    """``(cluster name, IPsecKey)`` from the ``source`` option (connection options of another cluster)."""
    src = Cluster(source_params(source), environ={})  # never the target's environment
    try:
        return src.name, source_key(src, source.get('namespace') or namespace, name, key_name)
    finally:
        src.close()


def source_key(cluster, namespace, name=SECRET_NAME, key_name=SECRET_KEY):
    """The IPsecKey of a source cluster; ClusterError naming it when it has none or an unusable one."""
    cur = current_of(read(cluster, namespace, name), key_name)
    if cur.key is None:
        why = cur.error if cur.exists else 'no Secret %s/%s' % (namespace, name)
        raise ClusterError('the source cluster has no usable IPsec key (%s); create it there first '
                           '(ipsec_keys state=present without source)' % why, cluster=cluster.name)
    return cur.key


# ---------------------------------------------------------------------------
# What Cilium does in the cluster (for the rotation's guards and cilium_install)
# ---------------------------------------------------------------------------

def encryption_settings(values):
    """``{'ipsec', 'type', 'enabled', 'secret_name', 'key_rotation_duration'}`` from chart user values
    (chart defaults filled in)."""
    enc = (values or {}).get('encryption') or {}
    ipsec = enc.get('ipsec') or {}
    enabled = enc.get('enabled') is True or str(enc.get('enabled')).lower() == 'true'
    etype = enc.get('type') or 'ipsec'
    return {'enabled': enabled, 'type': etype, 'ipsec': enabled and etype == 'ipsec',
            'secret_name': ipsec.get('secretName') or SECRET_NAME,
            'key_name': ipsec.get('keyFile') or SECRET_KEY,
            'key_rotation_duration': str(ipsec.get('keyRotationDuration') or DEFAULT_ROTATION_DURATION)}


def check_install_secret(values, secret, namespace):
    """The reason ``values`` (chart user values) cannot be installed given ``secret`` (the IPsec Secret dict or
    None), or None when they can. Only IPsec needs the Secret."""
    enc = encryption_settings(values)
    if not enc['ipsec']:
        return None
    where = 'Secret %s/%s' % (namespace, enc['secret_name'])
    fix = ('create it first: run the meshops.cilium.ipsec role (playbooks/ipsec.yml) or the meshops.cilium.ipsec_keys '
           'module for this cluster, then install')
    if secret is None:
        return ('IPsec encryption needs %s (key "%s"), which does not exist; the Cilium chart cannot create it and '
                'the agents would not start. %s' % (where, enc['key_name'], fix))
    cur = current_of(secret, enc['key_name'])
    if cur.key is None:
        return 'IPsec encryption needs a usable key in %s: %s. %s' % (where, cur.error, fix)
    return None


def rollout_problems(cluster, namespace, release_name='cilium'):
    """What makes a rotation unsafe now: a Helm operation in progress, the agents (DaemonSet cilium) or the
    operator (Deployment cilium-operator) rolling out or not ready.

    Returns ``(problems, release)``: a list of strings (empty: safe) and the Helm release (or None).
    Workloads that do not exist are not a problem (Cilium not installed yet)."""
    # imported here: helm.py imports much more than a key parser needs
    from ansible_collections.meshops.cilium.plugins.module_utils.helm import (
        daemonset_ready, deployment_rollout, pending_problem, read_release)
    out = []
    release = read_release(cluster, namespace, release_name)
    pending = pending_problem(release)
    if pending:
        out.append(pending)
    ds = cluster.to_dict(cluster.call('read DaemonSet %s/cilium' % namespace,
                                      cluster.apps.read_namespaced_daemon_set, 'cilium', namespace,
                                      missing_ok=True))
    if ds is not None:
        ok, detail = daemonset_ready(ds)
        if not ok and detail != 'no node scheduled':
            out.append('DaemonSet %s/cilium: %s' % (namespace, detail))
    dep = cluster.read_deployment(namespace, 'cilium-operator', missing_ok=True)
    if dep is not None:
        ok, detail = deployment_rollout(dep)
        if not ok:
            out.append('Deployment %s/cilium-operator: %s' % (namespace, detail))
    return out, release
