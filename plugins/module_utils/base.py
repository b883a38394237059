# -*- coding: utf-8 -*-
# Copyright: meshops.cilium contributors
# SPDX-License-Identifier: Apache-2.0
"""A small base for the collection's modules.

* merges the shared connection options with the module's own,
* builds the cluster client once (``module.cluster``),
* ``fail(msg, **kw)`` prefixes the cluster's name,
* check mode / diff helpers, with secrets masked in diffs.
"""

from __future__ import absolute_import, division, print_function
__metaclass__ = type

import copy

from ansible.module_utils.basic import AnsibleModule, missing_required_lib

from ansible_collections.meshops.cilium.plugins.module_utils.cluster import (
    CLUSTER_ARGUMENT_SPEC,
    HAS_KUBERNETES,
    KUBERNETES_IMPORT_ERROR,
    Cluster,
    ClusterError,
    kubeconfig_secret_values,
    resolve_connection,
    translate_error,
)

MASK = '********'

# Keys whose values are secret wherever they appear in a diff or a result.
SECRET_KEYS = frozenset([
    'ca.key', 'tls.key', 'key', 'keys', 'token', 'password', 'api_key',
    'client-key-data', 'private_key', 'privateKey',
])


# Options shared by several modules. Pass them through cluster_argument_spec()
# (directly or via ClusterModule), which deep-copies, so these dicts are never changed.

# The Cilium Helm release (documented by doc fragment meshops.cilium.release).
RELEASE_ARGUMENT_SPEC = dict(
    release_name=dict(type='str', default='cilium'),
    namespace=dict(type='str', default='kube-system'),
)

# The chart and the helm binary of modules that run helm (chart_repo_url and helm_binary
# are documented by doc fragment meshops.cilium.helm; chart_ref and chart_version by
# each module).
HELM_CHART_ARGUMENT_SPEC = dict(
    chart_ref=dict(type='str'),
    chart_version=dict(type='str'),
    chart_repo_url=dict(type='str'),
    helm_binary=dict(type='path'),
)

# The clustermesh-apiserver settings beside clustermesh.useAPIServer.
CLUSTERMESH_APISERVER_ARGUMENT_SPEC = dict(
    service_type=dict(type='str', choices=['NodePort', 'LoadBalancer']),
    node_port=dict(type='int'),
    annotations=dict(type='dict'),
    kvstoremesh=dict(type='bool'),
    tls_auto_method=dict(type='str', choices=['helm', 'cronJob']),
)


def _source_options():
    spec = copy.deepcopy(CLUSTER_ARGUMENT_SPEC)
    for opt in spec.values():
        opt.pop('fallback', None)  # the source never comes from the target's environment
    spec['namespace'] = dict(type='str')
    return spec


# Another cluster to copy a Secret from inside the module (documented by doc fragment
# meshops.cilium.source): the connection options without environment fallbacks, and namespace.
SOURCE_ARGUMENT_SPEC = dict(source=dict(type='dict', options=_source_options()))


def merged_spec(*specs, **options):
    """One argument spec from ``specs`` (later ones win) and ``options``; deep copies."""
    out = {}
    for spec in specs:
        out.update(copy.deepcopy(spec))
    out.update(copy.deepcopy(options))
    return out


def cluster_argument_spec(extra=None):
    """The shared connection options merged with ``extra`` (module options win)."""
    spec = copy.deepcopy(CLUSTER_ARGUMENT_SPEC)
    if extra:
        spec.update(copy.deepcopy(extra))
    return spec


def mask_secrets(data, secret_keys=SECRET_KEYS):
    """A copy of ``data`` with the value of every key in ``secret_keys`` replaced by MASK.

    Kubernetes Secret objects (``kind: Secret``) also get every value of
    ``data`` and ``stringData`` masked, whatever the key is called.
    """
    if isinstance(data, dict):
        out = {}
        is_secret_object = data.get('kind') == 'Secret'
        for k, v in data.items():
            if is_secret_object and k in ('data', 'stringData') and isinstance(v, dict):
                out[k] = dict((dk, MASK) for dk in v)
            elif k in secret_keys and v not in (None, '', {}, []):
                out[k] = MASK
            else:
                out[k] = mask_secrets(v, secret_keys)
        return out
    if isinstance(data, list):
        return [mask_secrets(i, secret_keys) for i in data]
    return data


def build_diff(before, after, secret_keys=SECRET_KEYS):
    """``{'before': ..., 'after': ...}`` with secrets masked."""
    return {'before': mask_secrets(before, secret_keys), 'after': mask_secrets(after, secret_keys)}


class ClusterModule(object):
    """Wraps AnsibleModule for modules that talk to one cluster."""

    def __init__(self, argument_spec=None, supports_check_mode=True, **kwargs):
        self.module = AnsibleModule(
            argument_spec=cluster_argument_spec(argument_spec),
            supports_check_mode=supports_check_mode,
            **kwargs)
        self.params = self.module.params
        # An inline kubeconfig: hide its credentials, keep names readable.
        if isinstance(self.params.get('kubeconfig'), dict):
            self.module.no_log_values.update(kubeconfig_secret_values(self.params['kubeconfig']))
        source = self.params.get('source')
        if isinstance(source, dict) and isinstance(source.get('kubeconfig'), dict):
            self.module.no_log_values.update(kubeconfig_secret_values(source['kubeconfig']))
        if self.params.get('kubeconfig') is not None and not isinstance(self.params['kubeconfig'], (str, dict)):
            self.module.fail_json(msg='kubeconfig must be a path or a dictionary, got %s'
                                  % type(self.params['kubeconfig']).__name__)
        self._cluster = None
        self._connection = None
        self._connection_error = None

    # -- identity --------------------------------------------------------
    def _set_connection(self, connection):
        self._connection = connection
        # Credentials that came from the kubeconfig or the environment never show either.
        self.module.no_log_values.update(connection.secrets())

    @property
    def connection(self):
        """The resolved ``Connection`` (built once; fails the module with one message)."""
        if self._connection is None:
            try:
                self._set_connection(resolve_connection(self.params))
            except ClusterError as e:
                self._connection_error = e
                self.module.fail_json(msg=str(e), cluster=e.cluster or self.name)
        return self._connection

    @property
    def name(self):
        if self._connection is None and self._connection_error is None:
            try:
                self._set_connection(resolve_connection(self.params))
            except ClusterError as e:
                self._connection_error = e
        if self._connection is not None:
            return self._connection.name
        return self.params.get('context') or self.params.get('host') or 'cluster'

    @property
    def cluster(self):
        if self._cluster is None:
            if not HAS_KUBERNETES:
                self.module.fail_json(msg=missing_required_lib('kubernetes'),
                                      exception=KUBERNETES_IMPORT_ERROR)
            connection = self.connection
            try:
                self._cluster = Cluster(self.params, connection=connection)
            except ClusterError as e:
                self.fail_from(e)
        return self._cluster

    def _where(self, kwargs):
        """Every result names the cluster and the API server it talked to."""
        kwargs.setdefault('cluster', self.name)
        if self._connection is not None:
            kwargs.setdefault('api_server', self._connection.server)
            kwargs.setdefault('connection', self._connection.describe())
        return kwargs

    # -- modes -----------------------------------------------------------
    @property
    def check_mode(self):
        return self.module.check_mode

    @property
    def diff_mode(self):
        return self.module._diff

    def warn(self, msg):
        self.module.warn('%s: %s' % (self.name, msg))

    # -- results ---------------------------------------------------------
    def fail(self, msg, **kwargs):
        """Fail with ``<cluster>: msg``."""
        prefix = '%s: ' % self.name
        if not msg.startswith(prefix):
            msg = prefix + msg
        self.module.fail_json(msg=msg, **self._where(kwargs))

    def fail_from(self, exc, action=None):
        """Fail with the translated message for ``exc``."""
        if isinstance(exc, ClusterError):
            self.module.fail_json(msg=str(exc), **self._where({'cluster': exc.cluster or self.name}))
        self.fail(translate_error(exc, action=action))

    def exit(self, changed=False, before=None, after=None, secret_keys=SECRET_KEYS, **kwargs):
        """Exit; adds ``diff`` (secrets masked) only in diff mode and when given."""
        if self.diff_mode and (before is not None or after is not None):
            kwargs['diff'] = build_diff(before, after, secret_keys)
        self.module.exit_json(changed=changed, **self._where(kwargs))

    def run(self, func):
        """Call ``func(self)``; any ClusterError (or other error) becomes one failure."""
        try:
            return func(self)
        except ClusterError as e:
            self.fail_from(e)
        finally:
            if self._cluster is not None:
                self._cluster.close()
