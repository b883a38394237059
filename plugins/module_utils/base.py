# -*- coding: utf-8 -*-
# Copyright: meshops.cilium contributors
# SPDX-License-Identifier: Apache-2.0
"""A small base for the collection's modules.

* merges the shared connection options with the module's own,
* builds the cluster client once (``module.cluster``),
* ``fail(msg, **kw)`` prefixes the cluster's name,
* check mode / diff helpers, with secrets masked in diffs,
* secret strings inside free-form options (``values``, inline kubeconfigs, ``peers``,
  URLs with a password) are registered as ``no_log_values`` before AnsibleModule logs
  its invocation (``MaskingModule``),
* writes are recorded (``wrote``, ``write_release``) so that a failure after a write
  returns ``changed: true``, says what was written and how to recover.
"""

import copy
import time
import traceback
from urllib.parse import unquote

from ansible.module_utils.basic import AnsibleModule, missing_required_lib
from ansible.module_utils.common.parameters import remove_values

from ansible_collections.meshops.cilium.plugins.module_utils.cluster import (
    CLUSTER_ARGUMENT_SPEC,
    HAS_KUBERNETES,
    KUBERNETES_IMPORT_ERROR,
    Cluster,
    ClusterError,
    kubeconfig_secret_values,
    module_user_agent,
    resolve_connection,
    translate_error,
    unresolved_name,
)
from ansible_collections.meshops.cilium.plugins.module_utils.common import wait_pauses
from ansible_collections.meshops.cilium.plugins.module_utils.errors import MeshopsError
from ansible_collections.meshops.cilium.plugins.module_utils.redact import (
    MASK,
    mask_secrets,
    mask_text,
    secret_values,
    url_password,
    worth_masking,
)


# Options shared by several modules. Pass them through cluster_argument_spec()
# (directly or via ClusterModule), which deep-copies, so these dicts are never changed.

# The Cilium Helm release (documented by doc fragment meshops.cilium.release).
RELEASE_ARGUMENT_SPEC = dict(
    release_name=dict(type='str', default='cilium'),
    namespace=dict(type='str', default='kube-system'),
)

# The helm binary of every module that runs helm (documented by doc fragment meshops.cilium.helm,
# or by the module): None means "helm" from PATH. helm.require_helm reads it (and checks the version).
HELM_BINARY_ARGUMENT_SPEC = dict(helm_binary=dict(type='path'))

# The chart and the helm binary of modules that run helm (chart_repo_url and helm_binary
# are documented by doc fragment meshops.cilium.helm; chart_ref and chart_version by
# each module).
HELM_CHART_ARGUMENT_SPEC = dict(
    chart_ref=dict(type='str'),
    chart_version=dict(type='str'),
    chart_repo_url=dict(type='str'),
    **HELM_BINARY_ARGUMENT_SPEC
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
    return merged_spec(CLUSTER_ARGUMENT_SPEC, extra or {})


def build_diff(before, after):
    """``{'before': ..., 'after': ...}`` with secrets masked."""
    return {'before': mask_secrets(before), 'after': mask_secrets(after)}


def chart_repo_url_problem(url):
    """Why ``url`` (option ``chart_repo_url``) is refused, or None.

    Credentials in the URL (``https://user:password@host``) would reach helm's command line
    (``--repo``), visible to every local user in the process list. The message shows the URL
    with its user information masked.
    """
    if not url or '://' not in url:
        return None
    scheme, rest = url.split('://', 1)
    netloc, sep, path = rest.partition('/')
    if '@' not in netloc:
        return None
    masked = '%s://%s@%s%s%s' % (scheme, MASK, netloc.rsplit('@', 1)[1], sep, path)
    return ('chart_repo_url %s holds credentials (user:password@), which would be passed to helm on its command '
            'line. Add the repository once with "helm repo add NAME URL --username USER --password-stdin" '
            '(helm keeps the credentials in its repository config file), then set chart_ref to NAME/CHART '
            '(e.g. NAME/cilium) and leave chart_repo_url unset' % masked)


def option_secret_values(params):
    """The secret strings inside module options, whatever their type.

    * every string under a secret key name (``redact.SECRET_KEYS``) at any depth, e.g.
      ``values.tls.ca.key``, ``values.clustermesh.apiserver.tls.server.key``, ``caKey``,
      ``password`` or ``token`` anywhere in a dict or list option;
    * the credentials of every inline kubeconfig (a dict under a ``kubeconfig`` key, at
      any depth: ``kubeconfig``, ``source.kubeconfig``, ``clusters[].kubeconfig``);
    * the password of every URL with credentials (``https://user:password@host``).
    """
    found = secret_values(params)

    def walk(node):
        if isinstance(node, dict):
            for k, v in node.items():
                if k == 'kubeconfig' and isinstance(v, dict):
                    found.update(kubeconfig_secret_values(v))
                walk(v)
        elif isinstance(node, (list, tuple)):
            for item in node:
                walk(item)
        elif isinstance(node, str):
            password = url_password(node)
            if password:
                found.update(p for p in (password, unquote(password)) if worth_masking(p))
    walk(params)
    return found


class MaskingModule(AnsibleModule):
    """AnsibleModule that hides the secrets inside free-form options.

    AnsibleModule registers ``no_log_values`` only for options declared ``no_log``,
    then logs its invocation (syslog/journal) at the end of ``__init__``; with
    ``ANSIBLE_INJECT_INVOCATION`` (always on ansible-core 2.18) every result carries the
    options too. This class registers ``option_secret_values(params)`` first: in
    ``_log_invocation`` (before anything is logged), and again before any result
    (``exit_json``/``fail_json``, also a failure of the option validation itself). Warnings
    are masked when given (ansible-core 2.19+ keeps them out of exit_json's masking).
    """

    def _register_option_secrets(self):
        params = getattr(self, 'params', None)
        if isinstance(params, dict):
            self.no_log_values.update(option_secret_values(params))

    def _log_invocation(self):
        self._register_option_secrets()
        super()._log_invocation()

    def warn(self, warning):
        # ansible-core >= 2.19 keeps warnings as objects that exit_json's no_log masking does not reach
        self._register_option_secrets()
        super().warn(mask_text(warning, self.no_log_values) if isinstance(warning, str) else warning)

    def exit_json(self, *args, **kwargs):
        self._register_option_secrets()
        super().exit_json(*args, **kwargs)

    def fail_json(self, *args, **kwargs):
        self._register_option_secrets()
        super().fail_json(*args, **kwargs)


class ModuleExit(BaseException):
    """Raised by ``WorkerModule.exit_json``/``fail_json``: ``result`` is what the module would have printed.
    A BaseException, as AnsibleModule's SystemExit: no ``except Exception`` of a module takes it for an error."""

    def __init__(self, result):
        super().__init__('module exit')
        self.result = result


class WorkerModule:
    """What ``ClusterModule`` uses of an AnsibleModule, for a module's ``run`` function called in the task's
    own worker on the controller (``run_in_worker``): options already validated against the module's spec,
    check and diff mode, the values to mask (the spec's no_log options and ``option_secret_values``),
    warnings; ``exit_json`` and ``fail_json`` raise ``ModuleExit`` with the result, masked as
    ``MaskingModule`` masks it."""

    def __init__(self, name, params, check_mode=False, diff=False, no_log_values=()):
        self._name = name
        self.params = params
        self.check_mode = check_mode
        self._diff = diff
        self.no_log_values = set(no_log_values) | option_secret_values(params)
        self._warnings = []

    def warn(self, warning):
        self._warnings.append(warning)

    def _result(self, kwargs):
        if self._warnings:
            kwargs['warnings'] = list(kwargs.get('warnings') or []) + self._warnings
        return remove_values(kwargs, self.no_log_values)

    def exit_json(self, **kwargs):
        raise ModuleExit(self._result(kwargs))

    def fail_json(self, msg, **kwargs):
        kwargs.update(failed=True, msg=msg)
        raise ModuleExit(self._result(kwargs))


def run_in_worker(run, argument_spec, params, name, check_mode=False, diff=False, no_log_values=()):
    """The result of a module's ``run`` function for ``params`` (validated against the module's whole spec,
    ``cluster_argument_spec(argument_spec)``), called in this process instead of a module process: the
    same ``ClusterModule``, on a ``WorkerModule``. Exceptions other than the module's own results go on,
    as they would fail the module process."""
    module = WorkerModule(name, params, check_mode=check_mode, diff=diff, no_log_values=no_log_values)
    try:
        ClusterModule(argument_spec, module=module).run(run)
        module.fail_json(msg='%s: the module returned no result' % name)
    except ModuleExit as e:
        return e.result


def recovery_of_release(release, previous):
    """How to undo or retry a written Helm revision (one sentence)."""
    rerun = 're-run the task once the cause is fixed (it converges from what is deployed now)'
    if previous is not None:
        return '%s, or roll back with: helm rollback %s %s --namespace %s' % (
            rerun, release.name, previous.revision, release.namespace)
    return '%s, or remove the release with: helm uninstall %s --namespace %s' % (
        rerun, release.name, release.namespace)


# ``members`` of a module that reads several clusters in one process (clustermesh_status, clustermesh_info)
MEMBERS_SPEC = dict(
    name=dict(type='str', required=True),
    kubeconfig=dict(type='raw'),
    context=dict(type='str'),
)
# members read at the same time
MAX_MEMBER_THREADS = 32


def member_cluster(entry, params, user_agent, secrets):
    """A ``Cluster`` for one entry of a ``members`` option (MEMBERS_SPEC): its own kubeconfig and
    context only, never the module's host, token or client certificate (they belong to another
    cluster), with the timeouts of ``params``. The credentials it resolved are added to ``secrets``
    (a set). Raises ClusterError naming the entry."""
    name = entry['name']
    member = dict((k, None) for k in CLUSTER_ARGUMENT_SPEC)
    member.update(kubeconfig=entry.get('kubeconfig'), context=entry.get('context') or name,
                  connect_timeout=params.get('connect_timeout'), request_timeout=params.get('request_timeout'))
    try:
        connection = resolve_connection(member)
    except ClusterError as e:
        raise ClusterError(e.detail, cluster=name)
    secrets.update(connection.secrets())
    return Cluster(member, connection=connection, user_agent=user_agent)


def member_names_problem(entries):
    """The message when the names of ``members`` cannot key a result (blank, control characters,
    duplicates), else None."""
    names = [e.get('name') for e in entries]
    bad = [n for n in names if not n or not n.strip() or any(ord(ch) < 32 for ch in n)]
    if bad or len(set(names)) != len(names):
        return ('members: each entry needs a unique name (a cluster name or an inventory host name); '
                'got %s' % ', '.join(repr(n) for n in names))
    return None


def read_members(entries, read, params, user_agent, secrets):
    """``{name: result}`` of ``read(cluster, entry)`` for every entry of ``members`` (unique names),
    side by side (threads, MAX_MEMBER_THREADS at a time), each through ``member_cluster`` (its
    credentials added to ``secrets``). Each result names the member's API server as a one-cluster
    result does; a member that cannot be reached or read is ``{'cluster', 'failed': True, 'msg'}``
    (the message starts with its name) and the others are still read. Every member's client is
    closed (its private files removed) before this returns."""
    from concurrent.futures import ThreadPoolExecutor

    def one(entry):
        name = entry['name']
        cluster = None
        try:
            cluster = member_cluster(entry, params, user_agent, secrets)
            out = read(cluster, entry)
            connection = cluster.connection
            out.setdefault('cluster', name)
            out.setdefault('api_server', connection.server)
            out.setdefault('connection', connection.describe())
            return out
        except MeshopsError as e:
            text = str(e)  # a ClusterError names its cluster: member_cluster's names this member
            return {'cluster': name, 'failed': True,
                    'msg': text if text.startswith(name + ':') else '%s: %s' % (name, text)}
        finally:
            if cluster is not None:
                cluster.close()
    with ThreadPoolExecutor(max_workers=min(len(entries), MAX_MEMBER_THREADS) or 1) as pool:
        return dict(zip([e['name'] for e in entries], pool.map(one, entries)))


def member_warnings(results, warnings_key):
    """The members' warnings (the list under ``warnings_key`` of each result), each starting with the
    member's name, in the order of ``results``."""
    return ['%s: %s' % (name, w) for name, r in results.items() for w in (r.get(warnings_key) or [])]


class ClusterModule:
    """Wraps AnsibleModule for modules that talk to one cluster."""

    def __init__(self, argument_spec=None, supports_check_mode=True, module=None, **kwargs):
        # MaskingModule: inline kubeconfigs' credentials and secrets in free-form options
        # are no_log before the invocation is logged; names stay readable. ``module``: a WorkerModule
        # (run_in_worker), its options already validated.
        self.module = module or MaskingModule(
            argument_spec=cluster_argument_spec(argument_spec),
            supports_check_mode=supports_check_mode,
            **kwargs)
        self.params = self.module.params
        self._writes = []
        self._finishing = False
        problem = chart_repo_url_problem(self.params.get('chart_repo_url'))
        if problem:
            self.module.fail_json(msg=problem)
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
        return unresolved_name(self.params)

    @property
    def user_agent(self):
        """``meshops.cilium/<module>``: every request says which module made it (audit logs)."""
        return module_user_agent(self.module._name)

    @property
    def cluster(self):
        if self._cluster is None:
            if not HAS_KUBERNETES:
                self.module.fail_json(msg=missing_required_lib('kubernetes'),
                                      exception=KUBERNETES_IMPORT_ERROR)
            connection = self.connection
            try:
                self._cluster = Cluster(self.params, connection=connection, user_agent=self.user_agent)
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

    # -- members: several clusters read by one module process ------------
    def member_cluster(self, entry):
        """A ``Cluster`` for one entry of a ``members`` option (``member_cluster``, module-level), its
        credentials registered as no_log values. Raises ClusterError naming the entry."""
        return member_cluster(entry, self.params, self.user_agent, self.module.no_log_values)

    def read_members(self, entries, read, warnings_key):
        """``{name: result}`` of ``read(cluster, entry)`` for every entry of ``members``
        (``read_members``, module-level), the members' credentials registered as no_log values;
        each of a member's warnings (the list under ``warnings_key``) becomes an Ansible warning that
        starts with the member's name. Names are checked first: a name that cannot key the result fails
        the module before any request."""
        problem = member_names_problem(entries)
        if problem:
            # no cluster is named: this is about the option, not one cluster
            self._fail_json(problem)
        results = read_members(entries, read, self.params, self.user_agent, self.module.no_log_values)
        for warning in member_warnings(results, warnings_key):
            self.module.warn(warning)
        return results

    # -- writes ----------------------------------------------------------
    def wrote(self, what, recover=None):
        """Record a write to the cluster that has happened.

        ``what`` names it (``"Secret kube-system/cilium-ca (created)"``), ``recover`` says
        how to undo or retry it. Every later failure returns ``changed: true``,
        ``written: [what, ...]`` and a message that ends with both.
        """
        self._writes.append({'what': what, 'recover': recover})

    @property
    def written(self):
        """What this run wrote so far (list of str)."""
        return [w['what'] for w in self._writes]

    def write_release(self, upgrade, read, previous):
        """Run ``upgrade()`` (a helm call that stores a release revision) and return ``read()``
        (the release after it), recording the revision written.

        When ``upgrade()`` raises, the release is read again: helm may have stored a new
        (failed) revision before failing; that is recorded too, then the error goes on.
        """
        try:
            upgrade()
        except Exception:
            try:
                self._note_release(read(), previous)
            except Exception:  # pylint: disable=broad-except
                pass  # the upgrade's own error is the one to report
            raise
        release = read()
        self._note_release(release, previous)
        return release

    def _note_release(self, release, previous):
        if release is None or (previous is not None and release.revision == previous.revision):
            return
        self.wrote('Helm release %s/%s revision %s (chart %s, status %s)' % (
            release.namespace, release.name, release.revision, release.chart_version, release.status),
            recover=recovery_of_release(release, previous))

    def _after_writes(self, msg, kwargs):
        """``msg`` and ``kwargs`` of a failure, completed with what was written before it."""
        if not self._writes:
            return msg
        kwargs['changed'] = True
        kwargs['written'] = self.written
        msg = '%s. This run had already written %s' % (msg.rstrip('.'), '; '.join(self.written))
        recover = []
        for w in self._writes:
            if w['recover'] and w['recover'] not in recover:
                recover.append(w['recover'])
        if recover:
            msg += '. To recover: %s' % '; '.join(recover)
        return msg

    # -- results ---------------------------------------------------------
    def _fail_json(self, msg, **kwargs):
        msg = self._after_writes(msg, kwargs)
        self._finishing = True
        self.module.fail_json(msg=msg, **kwargs)

    def fail(self, msg, **kwargs):
        """Fail with ``<cluster>: msg`` (and what this run wrote before, see ``wrote``)."""
        prefix = '%s: ' % self.name
        if not msg.startswith(prefix):
            msg = prefix + msg
        self._fail_json(msg, **self._where(kwargs))

    def fail_from(self, exc, action=None):
        """Fail with the message of ``exc``: a ``MeshopsError`` as phrased (prefixed with the
        cluster's name), any other exception translated (``cluster.translate_error``)."""
        if isinstance(exc, ClusterError) and exc.cluster:
            self._fail_json(str(exc), **self._where({'cluster': exc.cluster}))
        if isinstance(exc, MeshopsError):
            self.fail(str(exc))
        self.fail(translate_error(exc, action=action))

    def exit(self, changed=False, before=None, after=None, **kwargs):
        """Exit; adds ``diff`` (secrets masked) only in diff mode and when given."""
        if self.diff_mode and (before is not None or after is not None):
            kwargs['diff'] = build_diff(before, after)
        self._finishing = True
        self.module.exit_json(changed=changed, **self._where(kwargs))

    def run(self, func):
        """Call ``func(self)``; any ``MeshopsError`` (the base of every module_utils error)
        becomes one failure, ``<cluster>: message``, without a traceback. This is the one place
        that turns them into ``fail_json``. After a write, any other error too (so the result
        still says ``changed: true`` and what was written)."""
        try:
            return func(self)
        except MeshopsError as e:
            self.fail_from(e)
        except Exception as e:  # pylint: disable=broad-except
            if not self._writes or self._finishing:  # nothing written, or raised by exit_json/fail_json
                raise
            self._fail_json('%s: unexpected error: %s: %s' % (self.name, type(e).__name__, e),
                            cluster=self.name, exception=traceback.format_exc())
        finally:
            if self._cluster is not None:
                self._cluster.close()


def wait_argument_spec(wait=False, timeout=300):
    """Options ``wait`` (bool, default ``wait``) and ``wait_timeout`` (seconds, default ``timeout``)
    of modules that can wait for what they wrote or read; each module documents what it waits for.
    Spread it with ``**`` where the two options stand, so the spec keeps its order."""
    return dict(wait=dict(type='bool', default=wait), wait_timeout=dict(type='int', default=timeout))


def read_until(read, done, params):
    """``read()`` once, or with ``params['wait']`` again after each pause of ``wait_pauses(wait_interval)``
    until ``done(result)`` or ``wait_timeout`` would pass: ``(last result, number of reads)``. The polling
    of every module with ``wait_argument_spec`` and a ``wait_interval`` option."""
    deadline = time.time() + max(0, params['wait_timeout'])
    pauses = wait_pauses(params['wait_interval'])
    attempts = 0
    while True:
        attempts += 1
        result = read()
        pause = next(pauses)
        if done(result) or not params['wait'] or time.time() + pause > deadline:
            return result, attempts
        time.sleep(pause)


def run_module(run, argument_spec, **kwargs):
    """The whole ``main()`` of a module that talks to one cluster: a ``ClusterModule`` (check mode
    supported) with ``argument_spec`` and ``kwargs`` (``mutually_exclusive``, ...), then
    ``ClusterModule.run(run)``, which turns every collection error into one failure."""
    ClusterModule(argument_spec=argument_spec, **kwargs).run(run)
