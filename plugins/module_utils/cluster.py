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

import atexit
import base64
import copy
import importlib
import importlib.util
import json
import os
import re
import shutil
import ssl
import sys
import tempfile
import threading
import traceback
from urllib.parse import unquote

from ansible_collections.meshops.cilium.plugins.module_utils.errors import MeshopsError
from ansible_collections.meshops.cilium.plugins.module_utils.redact import (
    SECRET_KEYS,
    secret_values,
    url_password,
    worth_masking,
)

try:
    import yaml
except ImportError:  # pragma: no cover - PyYAML ships with ansible-core
    yaml = None  # helm.py reads Chart.yaml with the same import

KUBERNETES_IMPORT_ERROR = None


def _import_light(name):
    """Import ``kubernetes.<name>`` without running the ``__init__`` of the packages ``kubernetes``,
    ``kubernetes.client``, ``kubernetes.client.api`` and ``kubernetes.client.models`` when no one
    imported them yet. The first also loads the kubeconfig loader (with requests, requests-oauthlib,
    oauthlib and google-auth), the websocket stream, watch, the dynamic client, leader election and
    informers: about one second of CPU in every module process, which only an exec or auth-provider
    kubeconfig user needs (``kube_config`` is then imported on demand). The other three import every
    API class and every one of about 900 model classes: about 0.4 s more, where a module uses a few
    APIs and the models of the objects it reads. Their names are resolved on first use instead
    (``_lazy_package``), each from the module the package's ``__init__`` would have taken it from."""
    if 'kubernetes' not in sys.modules:
        spec = importlib.util.find_spec('kubernetes')
        if spec is None:
            raise ImportError("No module named 'kubernetes'")
        sys.modules['kubernetes'] = importlib.util.module_from_spec(spec)
        for package in ('kubernetes.client', 'kubernetes.client.api', 'kubernetes.client.models'):
            _lazy_package(package)
    return importlib.import_module('kubernetes.' + name)


_FROM_IMPORT = re.compile(r'^from (kubernetes\.client(?:\.\w+)+) import (\w+)$', re.M)


def _lazy_package(package):
    """``package`` in ``sys.modules`` with its ``__init__`` not run: a name that ``__init__`` imports
    (``from kubernetes.client.models.v1_secret import V1Secret``) is imported when first read."""
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.origin:
        raise ImportError("No module named %r" % package)
    module = importlib.util.module_from_spec(spec)
    with open(spec.origin) as f:
        where = dict((attr, source) for source, attr in _FROM_IMPORT.findall(f.read()))

    def resolve(attr):
        if attr not in where:
            raise AttributeError('module %r has no attribute %r' % (package, attr))
        value = getattr(importlib.import_module(where[attr]), attr)
        setattr(module, attr, value)
        return value
    module.__getattr__ = resolve
    module.__all__ = sorted(where)
    sys.modules[package] = module
    parent, child = package.rsplit('.', 1)
    setattr(sys.modules[parent], child, module)


try:
    k8s_client = _import_light('client')
    ApiException = _import_light('client.rest').ApiException
    HAS_KUBERNETES = True
except ImportError:
    KUBERNETES_IMPORT_ERROR = traceback.format_exc()
    HAS_KUBERNETES = False

    class ApiException(Exception):  # type: ignore[no-redef]
        status = None
        reason = None
        body = None


def _config_exception():
    """kubernetes' ConfigException class if its kubeconfig loader was imported (only then can it
    have been raised), else None."""
    return getattr(sys.modules.get('kubernetes.config.config_exception'), 'ConfigException', None)


try:
    from urllib3 import exceptions as urllib3_exc
except ImportError:  # pragma: no cover - kubernetes depends on urllib3
    urllib3_exc = None


CLUSTER_ARGUMENT_SPEC = dict(
    kubeconfig=dict(type='raw'),
    context=dict(type='str'),
    host=dict(type='str'),
    api_key=dict(type='str', no_log=True),
    ca_cert=dict(type='path', aliases=['ssl_ca_cert'], no_log=False),
    client_cert=dict(type='path', aliases=['cert_file'], no_log=False),
    client_key=dict(type='path', aliases=['key_file'], no_log=True),
    validate_certs=dict(type='bool', aliases=['verify_ssl']),
    proxy=dict(type='str'),
    connect_timeout=dict(type='int', default=10),
    request_timeout=dict(type='int', default=30),
)

CONNECTION_OPTIONS = tuple(CLUSTER_ARGUMENT_SPEC)

# kubeconfig entries the client is configured from directly (Cluster._direct_configuration); a
# kubeconfig with any other key (exec, auth-provider, username/password) goes through kubernetes'
# own kubeconfig loader instead.
DIRECT_CLUSTER_KEYS = frozenset(('server', 'certificate-authority', 'certificate-authority-data',
                                 'insecure-skip-tls-verify', 'tls-server-name', 'proxy-url'))
DIRECT_USER_KEYS = frozenset(('token', 'tokenFile', 'client-certificate', 'client-certificate-data',
                              'client-key', 'client-key-data'))

DEFAULT_KUBECONFIG = '~/.kube/config'

# kubeconfig keys whose values are credentials (hidden from module output): the
# collection's one list (redact.SECRET_KEYS, compared by redact.is_secret_key).
KUBECONFIG_SECRET_KEYS = SECRET_KEYS


USER_AGENT = 'meshops.cilium'


def module_user_agent(module_name):
    """``meshops.cilium/<module>``: every request says which module made it (audit logs)."""
    return '%s/%s' % (USER_AGENT, module_name.rsplit('.', 1)[-1])


def unresolved_name(params):
    """The name a result gives a cluster whose connection options did not resolve."""
    return params.get('context') or params.get('host') or 'cluster'


class ClusterError(MeshopsError):
    """An error already phrased for the user; ``str()`` names the cluster."""

    def __init__(self, msg, cluster=None, cause=None, status=None):
        self.cluster = cluster
        self.cause = cause
        self.status = status
        self.detail = msg
        super().__init__('%s: %s' % (cluster, msg) if cluster else msg)


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


# Parsed kubeconfig files of this process, by path, kept while the file's size and modification time
# stay the same: a task that reads many members through one merged kubeconfig parses it once, not once
# per member (with 50 clusters in the file, 50 parses of 50 clusters' credentials).
_KUBECONFIG_CACHE = {}
_KUBECONFIG_LOCK = threading.Lock()


def _parse_kubeconfig_file(path):
    """The parsed file ``path`` (a private deep copy: callers may change it)."""
    try:
        st = os.stat(path)
        key = (path, st.st_mtime_ns, st.st_size)
        with _KUBECONFIG_LOCK:
            cached = _KUBECONFIG_CACHE.get(path)
        if cached is None or cached[0] != key:
            with open(path, 'rb') as f:
                # libyaml's parser when PyYAML has it (the same documents, several times faster)
                data = yaml.load(f, Loader=getattr(yaml, 'CSafeLoader', yaml.SafeLoader)) or {}
            cached = (key, data)
            with _KUBECONFIG_LOCK:
                _KUBECONFIG_CACHE[path] = cached
    except (IOError, OSError) as e:
        raise ClusterError('cannot read kubeconfig file %s: %s' % (path, e))
    except yaml.YAMLError as e:
        raise ClusterError('kubeconfig file %s is not valid YAML: %s' % (path, e))
    return copy.deepcopy(cached[1])


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
        data = _parse_kubeconfig_file(path)
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


def describe_params(params, environ=None):
    """A short name for the cluster the options point at: the context (given, or the
    kubeconfig's current-context), else the host, else "cluster"."""
    try:
        return resolve_connection(params, environ).name
    except Exception:
        return params.get('context') or params.get('host') or 'cluster'


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
    config_exception = _config_exception()
    if config_exception is not None and isinstance(exc, config_exception):
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
# The one resolved connection
# ---------------------------------------------------------------------------

# The environment variable of each connection option (AWX's Kubernetes credential sets the
# K8S_AUTH_* variables). They are NOT argument-spec fallbacks: resolve_connection decides
# when the environment may be used at all.
ENVIRONMENT = (
    ('kubeconfig', 'K8S_AUTH_KUBECONFIG'),
    ('context', 'K8S_AUTH_CONTEXT'),
    ('host', 'K8S_AUTH_HOST'),
    ('api_key', 'K8S_AUTH_API_KEY'),
    ('ca_cert', 'K8S_AUTH_SSL_CA_CERT'),
    ('client_cert', 'K8S_AUTH_CERT_FILE'),
    ('client_key', 'K8S_AUTH_KEY_FILE'),
    ('validate_certs', 'K8S_AUTH_VERIFY_SSL'),
    ('proxy', 'K8S_AUTH_PROXY'),
)

# Options that select WHICH cluster: when a task sets any of them, the environment is ignored.
TARGET_OPTIONS = ('kubeconfig', 'context', 'host')

_TRUE = ('1', 'true', 'yes', 'on', 'y', 't')
_FALSE = ('0', 'false', 'no', 'off', 'n', 'f')


def _env_bool(name, text):
    low = str(text).strip().lower()
    if low in _TRUE:
        return True
    if low in _FALSE:
        return False
    raise ClusterError('environment variable %s=%r is not a boolean (use true or false)' % (name, text))


def connection_settings(params, environ=None):
    """``(settings, origin, ignored)``: the connection options that apply, by one precedence.

    1. Options set in the task (module parameters) always win.
    2. The environment (``K8S_AUTH_*``) fills in ONLY when the task selects no cluster itself
       (none of ``kubeconfig``, ``context``, ``host``); otherwise every ``K8S_AUTH_*`` variable
       is ignored and listed in ``ignored`` so that an AWX credential never redirects a task
       that names its cluster.
    3. Without either, ``~/.kube/config`` and its current-context.

    ``origin`` is ``task``, ``environment`` or ``default kubeconfig``.
    """
    environ = os.environ if environ is None else environ
    explicit = dict((k, params.get(k)) for k, dummy in ENVIRONMENT if params.get(k) not in (None, ''))
    env = dict((k, environ.get(var)) for k, var in ENVIRONMENT if environ.get(var) not in (None, ''))
    if any(k in explicit for k in TARGET_OPTIONS):
        ignored = sorted(var for k, var in ENVIRONMENT if k in env)
        return explicit, 'task', ignored
    settings = dict(env)
    if 'validate_certs' in settings:
        settings['validate_certs'] = _env_bool('K8S_AUTH_VERIFY_SSL', settings['validate_certs'])
    settings.update(explicit)
    if any(k in env and k not in explicit for k in TARGET_OPTIONS):
        return settings, 'environment', []
    return settings, 'default kubeconfig' if 'host' not in settings else 'task', []


def _auth_form(user):
    user = user or {}
    if user.get('exec'):
        return 'exec plugin'
    if user.get('auth-provider'):
        return 'auth provider'
    if user.get('token') or user.get('tokenFile'):
        return 'token'
    if user.get('client-certificate') or user.get('client-certificate-data'):
        return 'client certificate'
    if user.get('username'):
        return 'basic'
    return 'none'


def _same_server(a, b):
    return (a or '').rstrip('/').lower() == (b or '').rstrip('/').lower()


class Connection:
    """Where and how to reach ONE cluster, resolved once from the options, the kubeconfig,
    the context and the environment.

    Both the Python client (``Cluster``) and helm (``HelmRunner``) are made from the same
    one-context kubeconfig (``kubeconfig``), so they cannot talk to different API servers.

    * ``name``: what messages call the cluster (the context, else the host);
    * ``server``: the API server URL every request goes to;
    * ``context``: the context name inside ``kubeconfig``;
    * ``auth``: token, client certificate, exec plugin, auth provider, basic or none;
    * ``origin``: task, environment or default kubeconfig;
    * ``ignored_environment``: K8S_AUTH_* variables set but ignored (the task named its cluster).
    """

    def __init__(self, kubeconfig, name, origin, ignored_environment, proxy=None):
        self.kubeconfig = kubeconfig
        self.context = kubeconfig['current-context']
        cluster = kubeconfig['clusters'][0]['cluster']
        self.server = cluster['server']
        self.auth = _auth_form(kubeconfig['users'][0]['user'])
        self.name = name
        self.origin = origin
        self.ignored_environment = list(ignored_environment)
        self.proxy = proxy

    def secrets(self):
        """Credential strings inside the resolved kubeconfig (to mask in any output)."""
        return kubeconfig_secret_values(self.kubeconfig)

    def describe(self):
        """What module results say about the connection (no credentials)."""
        return {
            'api_server': self.server,
            'context': self.context,
            'auth': self.auth,
            'origin': self.origin,
            'ignored_environment': self.ignored_environment,
        }


def _named(items, name):
    for item in items or []:
        if (item or {}).get('name') == name:
            return copy.deepcopy(item)
    return None


def _absolutize(entry, keys, base):
    for k in keys:
        v = entry.get(k)
        if v and isinstance(v, str) and not os.path.isabs(v) and base:
            entry[k] = os.path.join(base, os.path.expanduser(v))


def _context_entries(configs, context):
    """``(context, cluster, user)`` dicts of ``context`` across the kubeconfig files (first wins)."""
    ctx = cl = us = None
    for source, cfg in configs:
        base = os.path.dirname(source) if source != 'inline kubeconfig' else None
        if ctx is None:
            found = _named(cfg.get('contexts'), context)
            if found:
                ctx = found.get('context') or {}
        if ctx is None:
            continue
        if cl is None:
            found = _named(cfg.get('clusters'), ctx.get('cluster'))
            if found:
                cl = found.get('cluster') or {}
                _absolutize(cl, ('certificate-authority',), base)
        if us is None and ctx.get('user'):
            found = _named(cfg.get('users'), ctx.get('user'))
            if found:
                us = found.get('user') or {}
                _absolutize(us, ('client-certificate', 'client-key', 'tokenFile'), base)
                if isinstance(us.get('exec'), dict) and base:
                    cmd = us['exec'].get('command')
                    if isinstance(cmd, str) and os.sep in cmd and not os.path.isabs(cmd):
                        us['exec']['command'] = os.path.join(base, cmd)
    return ctx, cl, us


def resolve_connection(params, environ=None):
    """The ``Connection`` for the connection options ``params`` (see ``connection_settings``).

    Raises ClusterError (naming the cluster) for a missing kubeconfig or context, for options
    that contradict each other, and for an explicit ``host`` that would send a kubeconfig
    context's credentials to a different API server.
    """
    s, origin, ignored = connection_settings(params, environ)
    name = s.get('context') or s.get('host')
    if s.get('client_cert') and not s.get('client_key') or s.get('client_key') and not s.get('client_cert'):
        raise ClusterError('client_cert and client_key must be given together', cluster=name or 'cluster')
    if s.get('api_key') and s.get('client_cert'):
        raise ClusterError('api_key and client_cert/client_key are two different identities; give only one',
                           cluster=name or 'cluster')
    kc_name = 'meshops'
    cluster, user, namespace = {}, {}, None
    if s.get('kubeconfig') is not None or s.get('context') or not s.get('host'):
        try:
            configs = load_kubeconfig_dicts(s.get('kubeconfig'))
        except ClusterError as e:
            raise ClusterError(e.detail, cluster=name or 'cluster')
        names, current = kubeconfig_contexts(configs)
        context = s.get('context') or current
        name = name or context
        if not context:
            raise ClusterError('the kubeconfig has no current-context; set the context option (available '
                               'contexts: %s)' % (', '.join(names) or 'none'), cluster=name or 'cluster')
        ctx, cl, us = _context_entries(configs, context)
        if ctx is None:
            source = configs[0][0] if len(configs) == 1 else 'kubeconfig'
            raise ClusterError(context_not_found_msg(context, names, source), cluster=name)
        if cl is None:
            raise ClusterError('context "%s" names cluster "%s", which the kubeconfig does not define'
                               % (context, ctx.get('cluster')), cluster=name)
        cluster, user, namespace, kc_name = cl, us or {}, ctx.get('namespace'), context
        if s.get('host') and not _same_server(s['host'], cluster.get('server')) and \
                not (s.get('api_key') or s.get('client_cert')):
            raise ClusterError(
                'host %s differs from the server %s of context "%s": the context\'s credentials would be '
                'sent to another API server. Drop host to use the context, or give host with its own '
                'api_key or client_cert/client_key' % (s['host'], cluster.get('server'), context), cluster=name)
    if s.get('host'):
        cluster['server'] = s['host'].rstrip('/')
    if s.get('api_key'):
        token = s['api_key'].strip()
        if token.lower().startswith('bearer '):
            token = token[7:].strip()
        user = {'token': token}
    for opt, entry, key, data_key in (('ca_cert', cluster, 'certificate-authority', 'certificate-authority-data'),
                                      ('client_cert', user, 'client-certificate', 'client-certificate-data'),
                                      ('client_key', user, 'client-key', 'client-key-data')):
        if s.get(opt):
            path = os.path.abspath(os.path.expanduser(s[opt]))
            if not os.path.exists(path):
                raise ClusterError('%s file %s does not exist' % (opt, path), cluster=name)
            entry.pop(data_key, None)
            entry[key] = path
    if s.get('client_cert'):
        for k in ('token', 'tokenFile', 'exec', 'auth-provider', 'username', 'password'):
            user.pop(k, None)
    if s.get('validate_certs') is not None:
        if s['validate_certs']:
            cluster.pop('insecure-skip-tls-verify', None)
        else:
            cluster['insecure-skip-tls-verify'] = True
            cluster.pop('certificate-authority', None)
            cluster.pop('certificate-authority-data', None)
    if s.get('proxy'):
        cluster['proxy-url'] = s['proxy']
    if not cluster.get('server'):
        raise ClusterError('no API server: set host or kubeconfig', cluster=name or 'cluster')
    context = {'cluster': kc_name, 'user': kc_name}
    if namespace:
        context['namespace'] = namespace
    kubeconfig = {
        'apiVersion': 'v1', 'kind': 'Config', 'current-context': kc_name, 'preferences': {},
        'clusters': [{'name': kc_name, 'cluster': cluster}],
        'users': [{'name': kc_name, 'user': user}],
        'contexts': [{'name': kc_name, 'context': context}],
    }
    return Connection(kubeconfig, name or cluster['server'], origin, ignored, proxy=cluster.get('proxy-url'))


# ---------------------------------------------------------------------------
# The client
# ---------------------------------------------------------------------------

class Cluster:
    """An API client for one cluster, built from the connection options.

    Build errors are raised as ``ClusterError`` with the cluster named.
    """

    def __init__(self, params, connection=None, environ=None, user_agent=None):
        if not HAS_KUBERNETES:
            raise ClusterError('the Python library "kubernetes" is required (pip install kubernetes)')
        self.params = dict((k, params.get(k)) for k in CONNECTION_OPTIONS)
        self.connect_timeout = self.params.get('connect_timeout') or 10
        self.request_timeout = self.params.get('request_timeout') or 30
        self.connection = connection or resolve_connection(self.params, environ)
        self.name = self.connection.name
        self.contexts = []
        self._private_dir = None
        try:
            self.configuration = self._configuration()
        except BaseException:
            # no private file outlives a failed start (a forked worker runs no exit handler before Python 3.12)
            self._remove_private_dir()
            raise
        self.host = self.configuration.host
        self.api_client = k8s_client.ApiClient(configuration=self.configuration)
        # the cluster's audit log names the module that made each request
        self.api_client.user_agent = user_agent or USER_AGENT
        self.core = k8s_client.CoreV1Api(self.api_client)
        self.apps = k8s_client.AppsV1Api(self.api_client)
        self._custom_objects = None

    # -- building --------------------------------------------------------
    def _configuration(self):
        """The client configuration, made from the connection's one-context kubeconfig (the
        same one helm gets), so every request goes to ``connection.server``."""
        conn = self.connection
        try:
            configuration = self._direct_configuration()
            if configuration is None:
                configuration = k8s_client.Configuration()
                kube_config = importlib.import_module('kubernetes.config.kube_config')
                kube_config.load_kube_config_from_dict(
                    copy.deepcopy(conn.kubeconfig), context=conn.context, client_configuration=configuration,
                    persist_config=False)
        except ClusterError:
            raise
        except Exception as e:
            raise ClusterError(translate_error(e), cluster=self.name, cause=e)
        if conn.proxy:
            configuration.proxy = conn.proxy
        # One attempt per request: fail fast on an unreachable cluster.
        configuration.retries = 0
        if not _same_server(configuration.host, conn.server):
            raise ClusterError('the client would talk to %s instead of %s; refusing' % (
                configuration.host, conn.server), cluster=self.name)
        return configuration

    def _direct_configuration(self):
        """The configuration for a kubeconfig user given by token, token file or client
        certificate, built here without kubernetes' kubeconfig loader (and its imports); None
        for any other form (exec, auth-provider, basic auth), which that loader handles.

        Certificate and key data are written to files of a private directory (the TLS library
        reads files), removed by ``close()`` or at the latest when the process exits.
        """
        kc = self.connection.kubeconfig
        cluster = kc['clusters'][0]['cluster']
        user = kc['users'][0]['user'] or {}
        if set(user) - DIRECT_USER_KEYS or set(cluster) - DIRECT_CLUSTER_KEYS:
            return None
        configuration = k8s_client.Configuration()
        configuration.host = cluster['server'].rstrip('/')
        if 'insecure-skip-tls-verify' in cluster:
            configuration.verify_ssl = not cluster['insecure-skip-tls-verify']
        if cluster.get('tls-server-name'):
            configuration.tls_server_name = cluster['tls-server-name']
        if cluster.get('proxy-url'):
            configuration.proxy = cluster['proxy-url']
        if configuration.host.startswith('https'):
            configuration.ssl_ca_cert = self._file_or_data(cluster, 'certificate-authority')
            configuration.cert_file = self._file_or_data(user, 'client-certificate')
            configuration.key_file = self._file_or_data(user, 'client-key')
        token = user.get('token')
        if not token and user.get('tokenFile'):
            with open(user['tokenFile']) as f:
                token = f.read()
        if token:
            configuration.api_key['authorization'] = 'Bearer ' + token.strip()
        return configuration

    def _file_or_data(self, entry, key):
        """The path of ``entry[key]``, or of a private file holding the base64 ``entry[key-data]``."""
        if entry.get(key + '-data'):
            if self._private_dir is None:
                self._private_dir = tempfile.mkdtemp(prefix='meshops-tls-')
                atexit.register(self._remove_private_dir)
            fd, path = tempfile.mkstemp(dir=self._private_dir)
            with os.fdopen(fd, 'wb') as f:
                f.write(base64.standard_b64decode(entry[key + '-data']))
            return path
        return entry.get(key) or None

    def _remove_private_dir(self):
        if self._private_dir:
            shutil.rmtree(self._private_dir, ignore_errors=True)
            self._private_dir = None

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

    def call_json(self, action, func, *args, **kwargs):
        """``call`` for a read whose answer is used as the plain API JSON dict: the body is parsed
        once, without the client's typed models (building them and turning them back into a dict cost
        more CPU than the request). Same errors as ``call``; None for a missing object and ``missing_ok``."""
        resp = self.call(action, func, *args, _preload_content=False, **kwargs)
        if resp is None:
            return None
        try:
            return json.loads(resp.data)
        except (TypeError, ValueError) as e:
            raise ClusterError('%s: the API server answered with no JSON object: %s' % (action, e), cluster=self.name)
        except Exception as e:
            raise self.error(e, action)
        finally:
            release = getattr(resp, 'release_conn', None)
            if release is not None:
                release()

    def _read(self, kind, func, namespace, name, missing_ok):
        """One namespaced object as a dict; None when it is missing and ``missing_ok``."""
        return self.call_json('read %s %s/%s' % (kind, namespace, name), func, name, namespace, missing_ok=missing_ok)

    def list_items(self, action, func, *args, **kwargs):
        """The ``items`` of a list read, as plain API JSON dicts."""
        return (self.call_json(action, func, *args, **kwargs) or {}).get('items') or []

    def read_config_map(self, namespace, name, missing_ok=False):
        return self._read('ConfigMap', self.core.read_namespaced_config_map, namespace, name, missing_ok)

    def read_secret(self, namespace, name, missing_ok=False):
        return self._read('Secret', self.core.read_namespaced_secret, namespace, name, missing_ok)

    def list_secrets(self, namespace, label_selector=None, field_selector=None):
        kwargs = {}
        if label_selector:
            kwargs['label_selector'] = label_selector
        if field_selector:
            kwargs['field_selector'] = field_selector
        return self.list_items('list Secrets in namespace %s' % namespace, self.core.list_namespaced_secret,
                               namespace, **kwargs)

    def read_service(self, namespace, name, missing_ok=False):
        return self._read('Service', self.core.read_namespaced_service, namespace, name, missing_ok)

    def list_nodes(self):
        return self.list_items('list Nodes', self.core.list_node)

    def read_deployment(self, namespace, name, missing_ok=False):
        return self._read('Deployment', self.apps.read_namespaced_deployment, namespace, name, missing_ok)

    @property
    def custom_objects(self):
        """The CustomObjectsApi (Cilium's CRDs), built on first use."""
        if self._custom_objects is None:
            self._custom_objects = k8s_client.CustomObjectsApi(self.api_client)
        return self._custom_objects

    def close(self):
        try:
            self.api_client.close()
        except Exception:
            pass
        self._remove_private_dir()
