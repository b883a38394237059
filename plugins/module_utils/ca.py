# -*- coding: utf-8 -*-
# Copyright: meshops.cilium contributors
# SPDX-License-Identifier: Apache-2.0
"""The shared Cilium CA: key material and Secret ``cilium-ca``.

Pure functions (no cluster access) except ``ensure_ca``, which reads and
writes Secret ``cilium-ca`` through a ``cluster.Cluster``.

Why the Helm metadata: with TLS method ``helm`` (or Hubble's defaults) the
Cilium chart renders Secret ``cilium-ca`` itself, reusing an existing one
through ``lookup``. A pre-created Secret without Helm's ownership metadata
for the release makes ``helm install`` fail ("invalid ownership metadata"),
so the Secret we write carries the label ``app.kubernetes.io/managed-by: Helm``
and the annotations ``meta.helm.sh/release-name`` / ``-namespace``.
"""

import base64
import binascii
import datetime

try:
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec, rsa
    from cryptography.x509.oid import NameOID
    HAS_CRYPTOGRAPHY = True
except ImportError:
    HAS_CRYPTOGRAPHY = False

from ansible_collections.meshops.cilium.plugins.module_utils.errors import MeshopsValueError
from ansible_collections.meshops.cilium.plugins.module_utils.cluster import ClusterError
from ansible_collections.meshops.cilium.plugins.module_utils.info import (
    CILIUM_CA,
    DecodeError,
    ca_fingerprint,
)

CA_COMMON_NAME = 'Cilium CA'
DEFAULT_VALIDITY_DAYS = 3 * 365
KEY_TYPES = ('ecdsa', 'rsa')
MANAGED_BY_LABEL = 'app.kubernetes.io/managed-by'
RELEASE_NAME_ANNOTATION = 'meta.helm.sh/release-name'
RELEASE_NAMESPACE_ANNOTATION = 'meta.helm.sh/release-namespace'


class CAError(MeshopsValueError):
    pass


# ---------------------------------------------------------------------------
# Key material
# ---------------------------------------------------------------------------

VALIDITY_DAYS = (1, 36500)


def validate_options(key_type, validity_days):
    """CAError (one line) for a ``key_type`` or ``validity_days`` a CA cannot be made with.

    Pure: the module calls it before connecting to the cluster.
    """
    if key_type not in KEY_TYPES:
        raise CAError('key_type must be one of %s, got %r' % (', '.join(KEY_TYPES), key_type))
    try:
        days = int(validity_days)
    except (TypeError, ValueError):
        days = None
    if days is None or isinstance(validity_days, bool) or not VALIDITY_DAYS[0] <= days <= VALIDITY_DAYS[1]:
        raise CAError('validity_days must be a whole number of days from %d to %d (100 years), got %s'
                      % (VALIDITY_DAYS[0], VALIDITY_DAYS[1], validity_days))


def generate_ca(key_type='ecdsa', validity_days=DEFAULT_VALIDITY_DAYS, common_name=CA_COMMON_NAME, now=None):
    """A new self-signed CA: ``(cert_pem, key_pem)`` as bytes.

    ``ecdsa``: P-256; ``rsa``: 2048 bits. Keys are written in the traditional
    PEM form (``EC PRIVATE KEY`` / ``RSA PRIVATE KEY``) that Helm's template
    functions and Cilium's certgen both read.
    """
    if not HAS_CRYPTOGRAPHY:
        raise CAError('the Python library "cryptography" is required to generate a CA')
    validate_options(key_type, validity_days)
    if key_type == 'ecdsa':
        key = ec.generate_private_key(ec.SECP256R1())
    elif key_type == 'rsa':
        key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    else:  # pragma: no cover - validate_options refused it
        raise CAError('key_type must be one of %s, got %r' % (', '.join(KEY_TYPES), key_type))
    now = now or datetime.datetime.now(datetime.timezone.utc)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])
    public = key.public_key()
    cert = (x509.CertificateBuilder()
            .subject_name(name).issuer_name(name).public_key(public)
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + datetime.timedelta(days=int(validity_days)))
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .add_extension(x509.KeyUsage(digital_signature=True, content_commitment=False, key_encipherment=True,
                                         data_encipherment=False, key_agreement=False, key_cert_sign=True,
                                         crl_sign=True, encipher_only=False, decipher_only=False), critical=True)
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(public), critical=False)
            .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(public), critical=False)
            .sign(key, hashes.SHA256()))
    cert_pem = cert.public_bytes(serialization.Encoding.PEM)
    key_pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.TraditionalOpenSSL,
                                serialization.NoEncryption())
    return cert_pem, key_pem


def check_pair(cert_pem, key_pem):
    """Raise CAError unless ``key_pem`` is the private key of ``cert_pem`` and the cert is a CA."""
    if not HAS_CRYPTOGRAPHY:
        raise CAError('the Python library "cryptography" is required to read the CA')
    try:
        cert = x509.load_pem_x509_certificate(cert_pem)
    except ValueError as e:
        raise CAError('ca.crt is not a PEM certificate: %s' % e)
    try:
        key = serialization.load_pem_private_key(key_pem, password=None)
    except (ValueError, TypeError) as e:
        raise CAError('ca.key is not an unencrypted PEM private key: %s' % e)
    spki = serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    if cert.public_key().public_bytes(*spki) != key.public_key().public_bytes(*spki):
        raise CAError('ca.key does not belong to ca.crt')
    try:
        bc = cert.extensions.get_extension_for_class(x509.BasicConstraints).value
        if not bc.ca:
            raise CAError('ca.crt is not a CA certificate (basicConstraints CA:FALSE)')
    except x509.ExtensionNotFound:
        raise CAError('ca.crt is not a CA certificate (no basicConstraints)')


def identity(cert_pem):
    """``{'fingerprint', 'subject_key_id', 'subject', 'not_after'}`` of a CA certificate."""
    try:
        fp = ca_fingerprint(cert_pem)
    except DecodeError as e:
        raise CAError(str(e))
    return {'fingerprint': fp['sha256'], 'subject_key_id': fp['subject_key_id'],
            'subject': fp['subject'], 'not_after': fp['not_after']}


# ---------------------------------------------------------------------------
# The Secret
# ---------------------------------------------------------------------------

def _b64(data):
    return base64.b64encode(data).decode('ascii')


def secret_material(secret):
    """``(cert_pem, key_pem)`` bytes of a ``cilium-ca`` Secret dict; missing parts are None."""
    data = (secret or {}).get('data') or {}
    out = []
    for k in ('ca.crt', 'ca.key'):
        v = data.get(k)
        if not v:
            out.append(None)
            continue
        try:
            out.append(base64.b64decode(v))
        except (binascii.Error, ValueError, TypeError):
            raise CAError('%s of Secret %s is not base64' % (k, CILIUM_CA))
    return tuple(out)


def helm_metadata(release_name, release_namespace):
    return ({MANAGED_BY_LABEL: 'Helm'},
            {RELEASE_NAME_ANNOTATION: release_name, RELEASE_NAMESPACE_ANNOTATION: release_namespace})


def owner_release(secret):
    """``(release name, release namespace)`` of the Helm metadata of a Secret, or None."""
    meta = (secret or {}).get('metadata') or {}
    labels = meta.get('labels') or {}
    ann = meta.get('annotations') or {}
    if labels.get(MANAGED_BY_LABEL) != 'Helm' or not ann.get(RELEASE_NAME_ANNOTATION):
        return None
    return ann.get(RELEASE_NAME_ANNOTATION), ann.get(RELEASE_NAMESPACE_ANNOTATION)


def has_helm_metadata(secret, release_name, release_namespace):
    return owner_release(secret) == (release_name, release_namespace)


def secret_body(cert_pem, key_pem, namespace, release_name='cilium', release_namespace=None):
    """Secret ``cilium-ca`` (type Opaque, keys ``ca.crt`` and ``ca.key``) owned by the Helm release."""
    labels, annotations = helm_metadata(release_name, release_namespace or namespace)
    return {
        'apiVersion': 'v1',
        'kind': 'Secret',
        'type': 'Opaque',
        'metadata': {'name': CILIUM_CA, 'namespace': namespace, 'labels': labels, 'annotations': annotations},
        'data': {'ca.crt': _b64(cert_pem), 'ca.key': _b64(key_pem)},
    }


def metadata_patch(release_name, release_namespace):
    labels, annotations = helm_metadata(release_name, release_namespace)
    return {'metadata': {'labels': labels, 'annotations': annotations}}


def same_material(a, b):
    """Whether two ``(cert_pem, key_pem)`` pairs are the same CA (same certificate and key)."""
    if not a or not b or None in a or None in b:
        return False
    return _der(a[0]) == _der(b[0]) and _key_der(a[1]) == _key_der(b[1])


def _der(cert_pem):
    try:
        return x509.load_pem_x509_certificate(cert_pem).public_bytes(serialization.Encoding.DER)
    except ValueError:
        return cert_pem


def _key_der(key_pem):
    try:
        key = serialization.load_pem_private_key(key_pem, password=None)
        return key.private_bytes(serialization.Encoding.DER, serialization.PrivateFormat.PKCS8,
                                 serialization.NoEncryption())
    except (ValueError, TypeError):
        return key_pem


# ---------------------------------------------------------------------------
# Planning (pure) and applying
# ---------------------------------------------------------------------------

def complete_material(secret):
    """``(cert_pem, key_pem)`` of a Secret when both parts are there and belong together, else None."""
    try:
        material = secret_material(secret)
        if None in material:
            return None
        check_pair(*material)
        return material
    except CAError:
        return None


def plan(current, desired, copied, force, release_name, release_namespace):
    """What to do with Secret ``cilium-ca`` (pure).

    :param current: the existing Secret dict or None.
    :param desired: ``(cert_pem, key_pem)`` wanted (the source's CA, the current
        one, or a new one).
    :param copied: whether ``desired`` comes from a source cluster.
    Returns ``(action, write)``: action is created, copied, unchanged, adopted or
    replaced; write is None, ``'create'``, ``'patch'`` or ``'replace'``.
    Raises CAError when a different (or broken) CA exists and ``force`` is false.
    """
    if current is None:
        return ('copied' if copied else 'created'), 'create'
    try:
        cur = secret_material(current)
    except CAError:
        cur = (None, None)
    if same_material(cur, desired):
        owner = owner_release(current)
        if owner == (release_name, release_namespace):
            return 'unchanged', None
        if owner is not None and not force:
            raise CAError(
                'Secret %s is owned by Helm release %s/%s, not %s/%s: helm would refuse to adopt it. Set '
                'release_name and namespace to the release that owns it, or force=true to take it over'
                % (CILIUM_CA, owner[1], owner[0], release_namespace, release_name))
        return 'adopted', 'patch'
    if not force:
        if complete_material(current) is None:
            raise CAError('Secret %s exists but does not hold a usable CA (ca.crt and a matching ca.key); set '
                          'force=true to replace it' % CILIUM_CA)
        have = identity(cur[0])
        want = identity(desired[0])
        raise CAError(
            'a different CA already exists in Secret %s (fingerprint %s, wanted %s). Replacing it breaks every '
            'ClusterMesh connection to this cluster until all peers trust the new CA (and the certificates '
            'issued from the old CA must be re-issued). Set force=true to replace it anyway'
            % (CILIUM_CA, have['fingerprint'], want['fingerprint']))
    return 'replaced', 'replace'


def read_ca_secret(cluster, namespace):
    return cluster.read_secret(namespace, CILIUM_CA, missing_ok=True)


def source_material(cluster, namespace):
    """``(cert_pem, key_pem)`` from Secret ``cilium-ca`` of a source cluster, checked."""
    secret = read_ca_secret(cluster, namespace)
    if secret is None:
        raise ClusterError('the source cluster has no Secret %s/%s; create it there first (cilium_ca without '
                           'source) or install Cilium there' % (namespace, CILIUM_CA), cluster=cluster.name)
    material = secret_material(secret)
    if None in material:
        raise ClusterError('Secret %s/%s of the source cluster lacks ca.crt or ca.key' % (namespace, CILIUM_CA),
                           cluster=cluster.name)
    try:
        check_pair(*material)
    except CAError as e:
        raise ClusterError('Secret %s/%s of the source cluster: %s' % (namespace, CILIUM_CA, e),
                           cluster=cluster.name)
    return material


def apply(cluster, namespace, write, material, release_name, release_namespace, current=None):
    """Perform ``write`` (create/patch/replace) on Secret ``cilium-ca``."""
    action = '%s Secret %s/%s' % (write, namespace, CILIUM_CA)
    if write == 'create':
        body = secret_body(material[0], material[1], namespace, release_name, release_namespace)
        cluster.call(action, cluster.core.create_namespaced_secret, namespace, body)
    elif write == 'patch':
        cluster.call(action, cluster.core.patch_namespaced_secret, CILIUM_CA, namespace,
                     metadata_patch(release_name, release_namespace))
    elif write == 'replace':
        body = secret_body(material[0], material[1], namespace, release_name, release_namespace)
        meta = (current or {}).get('metadata') or {}
        labels = dict(meta.get('labels') or {})
        labels.update(body['metadata']['labels'])
        annotations = dict(meta.get('annotations') or {})
        annotations.update(body['metadata']['annotations'])
        body['metadata'].update(labels=labels, annotations=annotations,
                                resourceVersion=meta.get('resourceVersion'))
        cluster.call(action, cluster.core.replace_namespaced_secret, CILIUM_CA, namespace, body)
    else:
        raise ValueError('unknown write %r' % write)
