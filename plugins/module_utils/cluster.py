# -*- coding: utf-8 -*-
# Copyright: meshops.cilium contributors
# SPDX-License-Identifier: Apache-2.0
"""The one way this collection reaches a Kubernetes cluster.

* ``CLUSTER_ARGUMENT_SPEC``: the connection options (documented by the
  ``meshops.cilium.cluster`` doc fragment).
* ``Cluster``: an API client built from those options, with typed clients
  (``core``, ``apps``) and small read helpers that always pass the timeouts.
* ``translate_error``: turns any exception raised while talking to a cluster
  into ONE message that names the cluster and the cause.

The kubernetes library is imported lazily-tolerant (``HAS_KUBERNETES``) so
that a missing library gives a clear ``missing_required_lib`` message.
"""

from __future__ import absolute_import, division, print_function
__metaclass__ = type

import json
import os
import re
import ssl
import traceback
from urllib.parse import unquote

from ansible.module_utils.basic import env_fallback

from ansible_collections.meshops.cilium.plugins.module_utils.redact import (
    SECRET_KEYS,
    secret_values,
    url_password,
    worth_masking,
)

try:
    import yaml
    HAS_YAML = True
except ImportError:  # pragma: no cover - PyYAML ships with ansible-core
    HAS_YAML = False

KUBERNETES_IMPORT_ERROR = None
try:
    from kubernetes import client as k8s_client
    from kubernetes.client.rest import ApiException
    from kubernetes.config.config_exception import ConfigException
    from kubernetes.config import kube_config
    HAS_KUBERNETES = True
except ImportError:
    KUBERNETES_IMPORT_ERROR = traceback.format_exc()
    HAS_KUBERNETES = False

    class ApiException(Exception):  # type: ignore[no-redef]
        status = None
        reason = None
        body = None

    class ConfigException(Exception):  # type: ignore[no-redef]
        pass

try:
    from urllib3 import exceptions as urllib3_exc
except ImportError:  # pragma: no cover - kubernetes depends on urllib3
    urllib3_exc = None


CLUSTER_ARGUMENT_SPEC = dict(
    kubeconfig=dict(type='raw', fallback=(env_fallback, ['K8S_AUTH_KUBECONFIG'])),
    context=dict(type='str', fallback=(env_fallback, ['K8S_AUTH_CONTEXT'])),
    host=dict(type='str', fallback=(env_fallback, ['K8S_AUTH_HOST'])),
    api_key=dict(type='str', no_log=True, fallback=(env_fallback, ['K8S_AUTH_API_KEY'])),
    ca_cert=dict(type='path', aliases=['ssl_ca_cert'], no_log=False,
                 fallback=(env_fallback, ['K8S_AUTH_SSL_CA_CERT'])),
    client_cert=dict(type='path', aliases=['cert_file'], no_log=False,
                     fallback=(env_fallback, ['K8S_AUTH_CERT_FILE'])),
    client_key=dict(type='path', aliases=['key_file'], no_log=True,
                    fallback=(env_fallback, ['K8S_AUTH_KEY_FILE'])),
    validate_certs=dict(type='bool', aliases=['verify_ssl'],
                        fallback=(env_fallback, ['K8S_AUTH_VERIFY_SSL'])),
    proxy=dict(type='str', fallback=(env_fallback, ['K8S_AUTH_PROXY'])),
    connect_timeout=dict(type='int', default=10),
    request_timeout=dict(type='int', default=30),
)

CONNECTION_OPTIONS = tuple(CLUSTER_ARGUMENT_SPEC)

DEFAULT_KUBECONFIG = '~/.kube/config'

# kubeconfig keys whose values are credentials (hidden from module output): the
# collection's one list (redact.SECRET_KEYS, compared by redact.is_secret_key).
KUBECONFIG_SECRET_KEYS = SECRET_KEYS


class ClusterError(Exception):
    """An error already phrased for the user; ``str()`` names the cluster."""

    def __init__(self, msg, cluster=None, cause=None, status=None):
        self.cluster = cluster
        self.cause = cause
        self.status = status
        self.detail = msg
        super(ClusterError, self).__init__('%s: %s' % (cluster, msg) if cluster else msg)


def missing_kubernetes_msg():
    """Text for ``missing_required_lib`` when the kubernetes library is absent."""
    return 'kubernetes'


# ---------------------------------------------------------------------------
# kubeconfig helpers (pure)
# ---------------------------------------------------------------------------

def kubeconfig_secret_values(config):
    """Return the credential strings found in an inline kubeconfig dict.

    Modules add them to ``module.no_log_values`` so an inline kubeconfig never
    leaks tokens or keys, while context and server names stay readable. Credentials
    are the values of the secret keys (``redact.SECRET_KEYS``: token, password,
    client-key-data, ...) at any depth, every value of an exec plugin's ``env``
    (``users[].user.exec.env[].value``), every value of an ``auth-provider``'s
    ``config`` and the password of a ``proxy-url`` (``http://user:password@proxy``);
    but for values not ``redact.worth_masking`` (``1``, ``true``: masking them would
    mask every such string of the result).
    """
    found = secret_values(config)

    def walk(node):
        if isinstance(node, dict):
            for k, v in node.items():
                if k == 'exec' and isinstance(v, dict) and isinstance(v.get('env'), list):
                    found.update(e['value'] for e in v['env'] if isinstance(e, dict) and worth_masking(e.get('value')))
                if k == 'auth-provider' and isinstance(v, dict) and isinstance(v.get('config'), dict):
                    found.update(value for value in v['config'].values() if worth_masking(value))
                if k == 'proxy-url':
                    password = url_password(v)
                    if password:
                        found.update(p for p in (password, unquote(password)) if worth_masking(p))
                walk(v)
        elif isinstance(node, list):
            for item in node:
                walk(item)
    walk(config)
    return found


def _kubeconfig_paths(path):
    return [os.path.expanduser(p) for p in str(path).split(os.pathsep) if p]


def load_kubeconfig_dicts(kubeconfig):
    """Load the kubeconfig option into a list of ``(source, dict)``.

    Raises ClusterError (without a cluster name) if a file is missing or unreadable.
    """
    if isinstance(kubeconfig, dict):
        return [('inline kubeconfig', kubeconfig)]
    out = []
    for path in _kubeconfig_paths(kubeconfig or DEFAULT_KUBECONFIG):
        if not os.path.exists(path):
            raise ClusterError('kubeconfig file %s does not exist' % path)
        try:
            with open(path) as f:
                data = yaml.safe_load(f) or {}
        except (IOError, OSError) as e:
            raise ClusterError('cannot read kubeconfig file %s: %s' % (path, e))
        except yaml.YAMLError as e:
            raise ClusterError('kubeconfig file %s is not valid YAML: %s' % (path, e))
        if not isinstance(data, dict):
            raise ClusterError('kubeconfig file %s is not a kubeconfig (top level is not a mapping)' % path)
        out.append((path, data))
    return out


def kubeconfig_contexts(configs):
    """Context names and the first current-context from ``load_kubeconfig_dicts`` output."""
    names = []
    current = None
    for dummy, cfg in configs:
        for ctx in cfg.get('contexts') or []:
            name = (ctx or {}).get('name')
            if name and name not in names:
                names.append(name)
        if current is None and cfg.get('current-context'):
            current = cfg.get('current-context')
    return names, current


def context_not_found_msg(context, available, source=None):
    where = ' in %s' % source if source else ''
    if available:
        return 'context "%s" not found%s; available contexts: %s' % (
            context, where, ', '.join(available))
    return 'context "%s" not found%s; the kubeconfig defines no contexts' % (context, where)


def describe_params(params):
    """A short name for the cluster the options point at.

    The context name if one was given, else the kubeconfig's current-context
    (best effort, only when no host was given), else the host, else "cluster".
    """
    if params.get('context'):
        return params['context']
    if params.get('host'):
        return params['host']
    try:
        dummy, current = kubeconfig_contexts(load_kubeconfig_dicts(params.get('kubeconfig')))
        if current:
            return current
    except Exception:
        pass
    return 'cluster'


# ---------------------------------------------------------------------------
# Error translation (pure: takes an exception, returns text)
# ---------------------------------------------------------------------------

_FORBIDDEN_RE = re.compile(
    r'User "(?P<user>[^"]*)" cannot (?P<verb>[\w-]+) resource "(?P<resource>[^"]*)"'
    r'(?: in API group "(?P<group>[^"]*)")?'
    r'(?: in the namespace "(?P<namespace>[^"]*)"| at the cluster scope)?')

_CONTEXT_RE = re.compile(r'Expected object with name (?P<name>.*) in kube-config/contexts list')


def _status_body(exc):
    body = getattr(exc, 'body', None)
    if isinstance(body, bytes):
        body = body.decode('utf-8', 'replace')
    if not body:
        return {}
    try:
        data = json.loads(body)
    except (ValueError, TypeError):
        return {'message': str(body).strip()}
    return data if isinstance(data, dict) else {}


def _api_exception_msg(exc, action):
    status = getattr(exc, 'status', None)
    body = _status_body(exc)
    message = body.get('message') or getattr(exc, 'reason', None) or ''
    doing = ' while trying to %s' % action if action else ''
    if status == 401:
        return ('the API server rejected the credentials (401 Unauthorized)%s: the token or client '
                'certificate is wrong or expired' % doing)
    if status == 403:
        m = _FORBIDDEN_RE.search(message)
        if m:
            group = m.group('group')
            group_txt = 'the core API group' if not group else 'API group "%s"' % group
            if m.group('namespace'):
                scope = 'in namespace "%s" (a Role + RoleBinding there, or a ClusterRole)' % m.group('namespace')
            else:
                scope = 'at cluster scope (a ClusterRole + ClusterRoleBinding)'
            return ('permission denied (403)%s: user "%s" is missing the permission to %s "%s" '
                    'in %s %s. API server said: %s' % (
                        doing, m.group('user'), m.group('verb'), m.group('resource'),
                        group_txt, scope, message))
        return 'permission denied (403)%s: %s' % (doing, message or 'Forbidden')
    if status == 404:
        details = body.get('details') or {}
        if details.get('kind') and details.get('name'):
            what = '%s "%s"' % (details['kind'], details['name'])
            return 'not found (404)%s: %s does not exist' % (doing, what)
        return 'not found (404)%s: %s' % (doing, message or 'the resource does not exist')
    if status is None or status == 0:
        return 'request failed%s: %s' % (doing, message or exc)
    return 'the API server answered %s %s%s: %s' % (
        status, getattr(exc, 'reason', '') or '', doing, message or '(no message)')


_ESCALATE_RE = re.compile(r'(?P<resource>[\w.-]+) "(?P<name>[^"]*)" is forbidden: user "(?P<user>[^"]*)"'
                          r'[^\n]* is attempting to grant RBAC permissions not currently held')


def forbidden_summary(text):
    """One sentence for a 403 found in a tool's error text (helm's stderr), or None.

    Names the user, the verb, the resource and its API group and scope, like
    ``translate_error`` does for the Python client, so a refused permission reads the
    same whichever tool hit it. Helm creating a role with permissions the user does
    not hold gets a hint about the ``escalate`` verb.
    """
    text = text or ''
    m = _FORBIDDEN_RE.search(text)
    if m:
        group = m.group('group')
        group_txt = 'the core API group' if not group else 'API group "%s"' % group
        scope = ('in namespace "%s"' % m.group('namespace')) if m.group('namespace') else 'at cluster scope'
        return ('permission denied (403): user "%s" is missing the permission to %s "%s" in %s %s'
                % (m.group('user'), m.group('verb'), m.group('resource'), group_txt, scope))
    m = _ESCALATE_RE.search(text)
    if m:
        resource = m.group('resource').split('.')[0]
        return ('permission denied (403): user "%s" may not create or update %s "%s" granting permissions '
                'it does not hold: it needs the "escalate" verb on %s (API group '
                '"rbac.authorization.k8s.io")' % (m.group('user'), resource, m.group('name'), resource))
    return None


def _network_msg(reason, host, timeout):
    """Text for a urllib3/ssl/socket level failure (the ``reason`` of a MaxRetryError)."""
    target = ' %s' % host if host else ''
    text = str(reason)
    is_ssl = (isinstance(reason, ssl.SSLError) or
              (urllib3_exc is not None and isinstance(reason, urllib3_exc.SSLError)) or
              'CERTIFICATE_VERIFY_FAILED' in text or 'certificate verify failed' in text)
    if is_ssl:
        hint = ('set ca_cert to the CA that signed the API server certificate '
                '(or validate_certs=false for a throw-away cluster)')
        if 'hostname' in text.lower() or "doesn't match" in text or 'IP address mismatch' in text:
            hint = 'the certificate does not name this host; connect by a name the certificate lists'
        return 'TLS verification of the API server%s failed (%s); %s' % (target, text, hint)
    if urllib3_exc is not None and isinstance(reason, urllib3_exc.ProxyError):
        return 'cannot reach the API server%s through the proxy: %s' % (target, text)
    if (urllib3_exc is not None and isinstance(reason, urllib3_exc.ConnectTimeoutError)
            and "refused" not in text.lower()):
        if 'timed out' in text.lower() or 'timeout' in text.lower():
            return ('cannot connect to the API server%s: no answer within %ss (unreachable or '
                    'filtered)' % (target, timeout if timeout else 'the connect timeout'))
    low = text.lower()
    if 'refused' in low:
        return 'cannot connect to the API server%s: connection refused (nothing listens there)' % target
    if ('name or service not known' in low or 'nodename nor servname' in low or
            'failed to resolve' in low or 'temporary failure in name resolution' in low or
            'getaddrinfo failed' in low):
        return 'cannot connect to the API server%s: its name does not resolve (%s)' % (target, text)
    if 'timed out' in low:
        return 'cannot reach the API server%s: timed out (%s)' % (target, text)
    if 'no route to host' in low or 'network is unreachable' in low:
        return 'cannot connect to the API server%s: unreachable (%s)' % (target, text)
    return 'cannot connect to the API server%s: %s' % (target, text)


def _host_of(exc):
    url = getattr(exc, 'url', None)
    pool = getattr(exc, 'pool', None)
    if pool is not None and getattr(pool, 'host', None):
        scheme = getattr(pool, 'scheme', 'https')
        port = getattr(pool, 'port', None)
        return '%s://%s%s' % (scheme, pool.host, ':%s' % port if port else '')
    return url


def translate_error(exc, cluster=None, action=None, host=None, contexts=None, timeout=None):
    """Turn ``exc`` into one user-facing message (a str) naming ``cluster``.

    :param action: what we were doing, e.g. ``read Secret kube-system/cilium-ca``.
    :param host: the API server URL (for network errors).
    :param contexts: known context names (for a missing-context error).
    :param timeout: the connect timeout in seconds (for timeouts).
    """
    prefix = '%s: ' % cluster if cluster else ''
    if isinstance(exc, ClusterError):
        return exc.detail if not cluster else prefix + exc.detail
    if isinstance(exc, ApiException):
        return prefix + _api_exception_msg(exc, action)
    if isinstance(exc, ConfigException):
        text = str(exc)
        m = _CONTEXT_RE.search(text)
        if m:
            return prefix + context_not_found_msg(m.group('name'), contexts or [])
        if 'File does not exist' in text:
            return prefix + 'kubeconfig file %s does not exist' % text.split('File does not exist:', 1)[-1].strip()
        if 'Service host/port is not set' in text or 'Invalid kube-config' in text:
            return prefix + 'invalid kubeconfig: %s' % text
        return prefix + 'kubeconfig problem: %s' % text
    if urllib3_exc is not None and isinstance(exc, urllib3_exc.MaxRetryError):
        reason = exc.reason if exc.reason is not None else exc
        return prefix + _network_msg(reason, host or _host_of(exc), timeout)
    if urllib3_exc is not None and isinstance(exc, urllib3_exc.ProtocolError):
        inner = exc.args[1] if len(exc.args) > 1 else exc
        return prefix + _network_msg(inner, host, timeout)
    if (urllib3_exc is not None and isinstance(exc, urllib3_exc.HTTPError)) or \
            isinstance(exc, (ssl.SSLError, OSError)):
        if isinstance(exc, (IOError, OSError)) and getattr(exc, 'filename', None) and \
                not isinstance(exc, ssl.SSLError):
            return prefix + 'cannot read %s: %s' % (exc.filename, exc.strerror or exc)
        return prefix + _network_msg(exc, host or _host_of(exc), timeout)
    return prefix + '%s: %s' % (type(exc).__name__, exc)


# ---------------------------------------------------------------------------
# The client
# ---------------------------------------------------------------------------

def _bearer(token):
    token = token.strip()
    return token if token.lower().startswith('bearer ') else 'Bearer %s' % token


class Cluster(object):
    """An API client for one cluster, built from the connection options.

    Build errors are raised as ``ClusterError`` with the cluster named.
    """

    def __init__(self, params):
        if not HAS_KUBERNETES:
            raise ClusterError('the Python library "kubernetes" is required (pip install kubernetes)')
        self.params = dict((k, params.get(k)) for k in CONNECTION_OPTIONS)
        self.connect_timeout = self.params.get('connect_timeout') or 10
        self.request_timeout = self.params.get('request_timeout') or 30
        self.contexts = []
        self.name = describe_params(self.params)
        self.configuration = self._configuration()
        self.host = self.configuration.host
        self.api_client = k8s_client.ApiClient(configuration=self.configuration)
        self.core = k8s_client.CoreV1Api(self.api_client)
        self.apps = k8s_client.AppsV1Api(self.api_client)

    # -- building --------------------------------------------------------
    def _configuration(self):
        p = self.params
        configuration = k8s_client.Configuration()
        use_kubeconfig = p.get('kubeconfig') is not None or not p.get('host')
        if use_kubeconfig:
            self._load_kubeconfig(configuration)
        if p.get('host'):
            configuration.host = p['host'].rstrip('/')
        if p.get('api_key'):
            configuration.api_key = {'authorization': _bearer(p['api_key'])}
            configuration.refresh_api_key_hook = None
        if p.get('ca_cert'):
            configuration.ssl_ca_cert = p['ca_cert']
        if p.get('client_cert'):
            configuration.cert_file = p['client_cert']
        if p.get('client_key'):
            configuration.key_file = p['client_key']
        if p.get('validate_certs') is not None:
            configuration.verify_ssl = bool(p['validate_certs'])
        if p.get('proxy'):
            configuration.proxy = p['proxy']
        for path_opt in ('ca_cert', 'client_cert', 'client_key'):
            if p.get(path_opt) and not os.path.exists(p[path_opt]):
                raise ClusterError('%s file %s does not exist' % (path_opt, p[path_opt]), cluster=self.name)
        # One attempt per request: fail fast on an unreachable cluster.
        configuration.retries = 0
        if not configuration.host or configuration.host == 'http://localhost':
            if not use_kubeconfig:
                raise ClusterError('no API server: set host or kubeconfig', cluster=self.name)
        return configuration

    def _load_kubeconfig(self, configuration):
        p = self.params
        try:
            configs = load_kubeconfig_dicts(p.get('kubeconfig'))
        except ClusterError as e:
            raise ClusterError(e.detail, cluster=self.name)
        self.contexts, current = kubeconfig_contexts(configs)
        context = p.get('context')
        source = configs[0][0] if len(configs) == 1 else 'kubeconfig'
        if context and context not in self.contexts:
            raise ClusterError(context_not_found_msg(context, self.contexts, source), cluster=self.name)
        if not context and not current:
            raise ClusterError('the kubeconfig has no current-context; set the context option (available '
                               'contexts: %s)' % (', '.join(self.contexts) or 'none'), cluster=self.name)
        try:
            if isinstance(p.get('kubeconfig'), dict):
                kube_config.load_kube_config_from_dict(
                    p['kubeconfig'], context=context, client_configuration=configuration,
                    persist_config=False)
            else:
                kube_config.load_kube_config(
                    config_file=os.pathsep.join(_kubeconfig_paths(p.get('kubeconfig') or DEFAULT_KUBECONFIG)),
                    context=context, client_configuration=configuration, persist_config=False)
        except Exception as e:
            raise ClusterError(translate_error(e, contexts=self.contexts), cluster=self.name, cause=e)

    # -- calls -----------------------------------------------------------
    @property
    def timeouts(self):
        """``_request_timeout`` for every call: (connect, read)."""
        return (self.connect_timeout, self.request_timeout)

    def error(self, exc, action=None):
        """A ClusterError for ``exc`` raised while doing ``action``."""
        if isinstance(exc, ClusterError):
            return exc
        return ClusterError(
            translate_error(exc, action=action, host=None if self.host == self.name else self.host,
                            contexts=self.contexts,
                            timeout=self.connect_timeout),
            cluster=self.name, cause=exc, status=getattr(exc, 'status', None))

    def call(self, action, func, *args, **kwargs):
        """Run ``func`` with the timeouts; translate any failure.

        ``missing_ok=True`` returns None on 404 instead of raising.
        """
        missing_ok = kwargs.pop('missing_ok', False)
        kwargs.setdefault('_request_timeout', self.timeouts)
        try:
            return func(*args, **kwargs)
        except ApiException as e:
            if missing_ok and e.status == 404:
                return None
            raise self.error(e, action)
        except ClusterError:
            raise
        except Exception as e:
            raise self.error(e, action)

    def to_dict(self, obj):
        """A typed model object as the plain API JSON dict (camelCase keys)."""
        if obj is None:
            return None
        return self.api_client.sanitize_for_serialization(obj)

    def read_config_map(self, namespace, name, missing_ok=False):
        return self.to_dict(self.call('read ConfigMap %s/%s' % (namespace, name),
                                      self.core.read_namespaced_config_map, name, namespace,
                                      missing_ok=missing_ok))

    def read_secret(self, namespace, name, missing_ok=False):
        return self.to_dict(self.call('read Secret %s/%s' % (namespace, name),
                                      self.core.read_namespaced_secret, name, namespace,
                                      missing_ok=missing_ok))

    def list_secrets(self, namespace, label_selector=None, field_selector=None):
        kwargs = {}
        if label_selector:
            kwargs['label_selector'] = label_selector
        if field_selector:
            kwargs['field_selector'] = field_selector
        res = self.call('list Secrets in namespace %s' % namespace,
                        self.core.list_namespaced_secret, namespace, **kwargs)
        return [self.to_dict(i) for i in (res.items or [])]

    def read_service(self, namespace, name, missing_ok=False):
        return self.to_dict(self.call('read Service %s/%s' % (namespace, name),
                                      self.core.read_namespaced_service, name, namespace,
                                      missing_ok=missing_ok))

    def list_nodes(self):
        res = self.call('list Nodes', self.core.list_node)
        return [self.to_dict(i) for i in (res.items or [])]

    def read_deployment(self, namespace, name, missing_ok=False):
        return self.to_dict(self.call('read Deployment %s/%s' % (namespace, name),
                                      self.apps.read_namespaced_deployment, name, namespace,
                                      missing_ok=missing_ok))

    def close(self):
        try:
            self.api_client.close()
        except Exception:
            pass
