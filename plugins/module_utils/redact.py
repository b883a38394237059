# -*- coding: utf-8 -*-
# Copyright: meshops.cilium contributors
# SPDX-License-Identifier: Apache-2.0
"""The one list of secret key names of the collection, and what uses it.

* ``SECRET_KEYS``: names whose values are secret wherever they appear (Helm values,
  inline kubeconfigs, diffs, results), compared by ``normalize_key``: lower case,
  without ``-`` and ``_`` and, for dotted names such as ``tls.ca.key``, by the last
  part. So ``caKey``, ``ca_key``, ``private-key``, ``clustermesh.apiserver.tls.server.key``
  and ``client-key-data`` all match.
* ``secret_values(data)``: the secret strings inside any nested data, to register
  as ``no_log_values`` or to mask in a tool's messages.
* ``mask_secrets(data)`` / ``mask_text(text, secrets)``: masked copies.

No imports from the rest of the collection: every other module_utils file may use it.
"""

MASK = '********'

# Normalized (see normalize_key). The kubeconfig names (token, password, client-key-data,
# client-certificate-data, id-token, refresh-token, access-token, client-secret) are here too.
SECRET_KEYS = frozenset([
    'key', 'keys', 'cakey', 'tlskey', 'privatekey', 'clientkey', 'clientkeydata',
    'clientcertificatedata', 'token', 'idtoken', 'refreshtoken', 'accesstoken', 'bearertoken',
    'apikey', 'password', 'passwd', 'passphrase', 'secret', 'clientsecret', 'secretkey',
])

# Where ``key`` names something public: a toleration or a label selector requirement
# (``{key, operator, values}``) and a reference to a key of a Secret or ConfigMap.
_REFERENCE_PARENTS = frozenset(['secretkeyref', 'configmapkeyref'])
_SELECTOR_SIBLINGS = ('operator', 'effect')


def normalize_key(name):
    """``name`` compared the way SECRET_KEYS is: last dotted part, lower case, no ``-``/``_``."""
    if not isinstance(name, str):
        return ''
    return name.rsplit('.', 1)[-1].lower().replace('-', '').replace('_', '')


def is_secret_key(name, siblings=None, parent=None):
    """Whether the value under ``name`` is secret.

    ``siblings`` (the dict holding ``name``) and ``parent`` (the key that dict is under)
    tell a toleration's or a secretKeyRef's ``key`` (a public name) from a TLS ``key``.
    """
    norm = normalize_key(name)
    if norm not in SECRET_KEYS:
        return False
    if norm == 'key':
        if normalize_key(parent) in _REFERENCE_PARENTS:
            return False
        if siblings is not None and any(s in siblings for s in _SELECTOR_SIBLINGS):
            return False
    return True


# Shorter strings and these words are never registered as no_log values: Ansible masks every
# occurrence of a no_log value in the whole result, so "1" or "true" would mask IDs and flags.
MIN_SECRET_LENGTH = 4
_NOT_SECRETS = frozenset(['true', 'false', 'yes', 'no', 'null', 'none'])


def worth_masking(value):
    """Whether ``value`` (str) can be a credential worth registering as a no_log value."""
    return isinstance(value, str) and len(value) >= MIN_SECRET_LENGTH and value.lower() not in _NOT_SECRETS


def _strings(value, out):
    if isinstance(value, bytes):
        value = value.decode('utf-8', 'replace')
    if isinstance(value, str):
        if worth_masking(value):
            out.add(value)
    elif isinstance(value, dict):
        for v in value.values():
            _strings(v, out)
    elif isinstance(value, (list, tuple)):
        for v in value:
            _strings(v, out)


def secret_values(data, out=None, parent=None):
    """Every string under a secret key of ``data`` (dicts and lists at any depth), but for
    strings not ``worth_masking`` (shorter than 4 characters, true/false/yes/no/null/none).

    A secret key holding a list or a dict (``keys: [...]``) makes every string in it secret.
    """
    out = set() if out is None else out
    if isinstance(data, dict):
        for k, v in data.items():
            if is_secret_key(k, siblings=data, parent=parent):
                _strings(v, out)
            else:
                secret_values(v, out, parent=k)
    elif isinstance(data, (list, tuple)):
        for item in data:
            secret_values(item, out, parent=parent)
    return out


def mask_secrets(data, parent=None):
    """A copy of ``data`` with the value of every secret key replaced by MASK.

    Kubernetes Secret objects (``kind: Secret``) also get every value of
    ``data`` and ``stringData`` masked, whatever the key is called.
    """
    if isinstance(data, dict):
        out = {}
        is_secret_object = data.get('kind') == 'Secret'
        for k, v in data.items():
            if is_secret_object and k in ('data', 'stringData') and isinstance(v, dict):
                out[k] = dict((dk, MASK) for dk in v)
            elif is_secret_key(k, siblings=data, parent=parent) and v not in (None, '', {}, []):
                out[k] = MASK
            else:
                out[k] = mask_secrets(v, parent=k)
        return out
    if isinstance(data, list):
        return [mask_secrets(i, parent=parent) for i in data]
    return data


def mask_text(text, secrets):
    """``text`` with every one of ``secrets`` (longest first) replaced by MASK."""
    text = text or ''
    for s in sorted((s for s in secrets if s), key=len, reverse=True):
        text = text.replace(s, MASK)
    return text


def url_password(url):
    """The password of a ``scheme://user:password@host/...`` URL, or None."""
    if not isinstance(url, str) or '://' not in url or '@' not in url:
        return None
    netloc = url.split('://', 1)[1].split('/', 1)[0]
    if '@' not in netloc:
        return None
    userinfo = netloc.rsplit('@', 1)[0]
    if ':' not in userinfo:
        return None
    return userinfo.split(':', 1)[1] or None
