# -*- coding: utf-8 -*-
# Copyright: meshops.cilium contributors
# SPDX-License-Identifier: Apache-2.0
"""Test helpers: a throw-away CA and a tiny HTTPS server that answers like a
Kubernetes API server (JSON objects and real Status bodies)."""

import datetime
import json
from urllib.parse import unquote
import ssl
import threading

from http.server import BaseHTTPRequestHandler, HTTPServer

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
import ipaddress


def make_ca(cn='Cilium CA', with_ski=True):
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])
    now = datetime.datetime.now(datetime.timezone.utc)
    builder = (x509.CertificateBuilder().subject_name(name).issuer_name(name)
               .public_key(key.public_key()).serial_number(x509.random_serial_number())
               .not_valid_before(now - datetime.timedelta(minutes=5))
               .not_valid_after(now + datetime.timedelta(days=365))
               .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
               .add_extension(x509.KeyUsage(digital_signature=True, content_commitment=False,
                                            key_encipherment=False, data_encipherment=False,
                                            key_agreement=False, key_cert_sign=True, crl_sign=True,
                                            encipher_only=False, decipher_only=False), critical=True))
    if with_ski:
        builder = builder.add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()),
                                        critical=False)
    cert = builder.sign(key, hashes.SHA256())
    return key, cert


def make_server_cert(ca_key, ca_cert, host='127.0.0.1'):
    key = ec.generate_private_key(ec.SECP256R1())
    now = datetime.datetime.now(datetime.timezone.utc)
    cert = (x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, 'kube-apiserver')]))
            .issuer_name(ca_cert.subject).public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + datetime.timedelta(days=1))
            .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address(host))]),
                           critical=False)
            # Python >= 3.13 verifies strictly (VERIFY_X509_STRICT): AKI required.
            .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()),
                           critical=False)
            .add_extension(x509.ExtendedKeyUsage([x509.oid.ExtendedKeyUsageOID.SERVER_AUTH]),
                           critical=False)
            .sign(ca_key, hashes.SHA256()))
    return key, cert


def pem_cert(cert):
    return cert.public_bytes(serialization.Encoding.PEM)


def pem_key(key):
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption())


def status_body(code, reason, message, details=None):
    body = {'kind': 'Status', 'apiVersion': 'v1', 'metadata': {}, 'status': 'Failure',
            'message': message, 'reason': reason, 'code': code}
    if details is not None:
        body['details'] = details
    return body


class FakeAPIServer(object):
    """routes: {path: (code, json_dict)}; anything else is a 404 Status.

    POST, PUT and DELETE are recorded in ``writes`` as ``(method, path, body)`` and answered
    with the body (201 for POST, 200 otherwise); they do not change ``routes``.
    """

    def __init__(self, tmp_path):
        self.routes = {}
        self.requests = []
        self.writes = []
        self.ca_key, self.ca_cert = make_ca('fake-apiserver-ca')
        key, cert = make_server_cert(self.ca_key, self.ca_cert)
        self.ca_path = tmp_path / 'apiserver-ca.crt'
        self.ca_path.write_bytes(pem_cert(self.ca_cert))
        cert_path = tmp_path / 'apiserver.crt'
        key_path = tmp_path / 'apiserver.key'
        cert_path.write_bytes(pem_cert(cert))
        key_path.write_bytes(pem_key(key))
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(str(cert_path), str(key_path))
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def do_GET(self):
                path = unquote(self.path.split('?', 1)[0])  # pods/NAME%3APORT/proxy -> pods/NAME:PORT/proxy
                server.requests.append((self.path, self.headers.get('Authorization')))
                code, body = server.routes.get(path, (404, status_body(
                    404, 'NotFound', 'the server could not find the requested resource')))
                # a str route is served as text (a pod's metrics through pods/proxy)
                text = isinstance(body, str)
                data = body.encode() if text else json.dumps(body).encode()
                self.send_response(code)
                self.send_header('Content-Type', 'text/plain; version=0.0.4' if text else 'application/json')
                self.send_header('Content-Length', str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def _write(self, method, code):
                length = int(self.headers.get('Content-Length') or 0)
                raw = self.rfile.read(length) if length else b''
                body = json.loads(raw.decode('utf-8')) if raw else None
                server.writes.append((method, self.path.split('?', 1)[0], body))
                data = json.dumps(body if body is not None else {'kind': 'Status', 'status': 'Success'}).encode()
                self.send_response(code)
                self.send_header('Content-Type', 'application/json')
                self.send_header('Content-Length', str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def do_POST(self):
                self._write('POST', 201)

            def do_PUT(self):
                self._write('PUT', 200)

            def do_DELETE(self):
                self._write('DELETE', 200)

        self.httpd = HTTPServer(('127.0.0.1', 0), Handler)
        self.httpd.socket = ctx.wrap_socket(self.httpd.socket, server_side=True)
        self.port = self.httpd.server_address[1]
        self.url = 'https://127.0.0.1:%d' % self.port
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def kubeconfig(self, context='mesh-1', token='secret-token', with_ca=True):
        cluster = {'server': self.url}
        if with_ca:
            cluster['certificate-authority'] = str(self.ca_path)
        return {
            'apiVersion': 'v1', 'kind': 'Config', 'current-context': context,
            'clusters': [{'name': context, 'cluster': cluster}],
            'users': [{'name': context, 'user': {'token': token}}],
            'contexts': [{'name': context, 'context': {'cluster': context, 'user': context}}],
        }

    def stop(self):
        self.httpd.shutdown()
        self.httpd.server_close()
