# -*- coding: utf-8 -*-
# Copyright: meshops.cilium contributors
# SPDX-License-Identifier: Apache-2.0
"""The Helm release: the ONLY code of the collection that runs the helm binary.

* ``require_helm``: the one way to get the binary: locate it (option ``helm_binary``,
  ``base.HELM_BINARY_ARGUMENT_SPEC``) and refuse versions older than 3.14
  (``--reset-then-reuse-values`` appeared in 3.14). Helm 3 (3.14+) and Helm 4 are both
  supported and tested; what differs between the majors is decided here, in
  ``HelmDialect`` (see there), never in a module.
* ``refuse_pending`` / ``pending_problem``: the one refusal of a release another helm
  operation holds; ``release_summary``: what modules return about a release.
* ``Release`` / ``read_release``: the current release, read through the Kubernetes
  API from Helm's release Secret (one LIST request, no helm call), decoded with
  ``info.decode_helm_release``.
* ``HelmRunner``: runs ``helm upgrade`` / ``uninstall`` / ``template`` against one
  cluster. Connection details are given to helm as a kubeconfig: a kubeconfig
  path is passed as is (``--kubeconfig``/``--kube-context``); anything else
  (inline kubeconfig, host + token, overrides) is written to a private
  temporary file (directory 0700, file 0600) that is removed when the call
  ends. Secrets never appear on a command line. Values are always passed as a
  temporary ``-f`` file holding the COMPLETE user values wanted.
* ``chart_files``: rebuilds the deployed chart from the release record, so an
  upgrade can keep the deployed chart version without access to the chart
  source (air-gapped friendly).
"""

import base64
import binascii
import contextlib
import json
import os
import re
import shutil
import subprocess
import tarfile
import tempfile
import time

from ansible_collections.meshops.cilium.plugins.module_utils.cluster import (
    Connection,
    ClusterError,
    forbidden_summary,
    resolve_connection,
    yaml,
)

from ansible_collections.meshops.cilium.plugins.module_utils.common import (
    PENDING_STATUSES, deployment_ready, int_or_none, wait_pauses)
from ansible_collections.meshops.cilium.plugins.module_utils.info import (
    CILIUM_CONFIG,
    DecodeError,
    decode_helm_release,
    dig,
    parse_cilium_config,
    read_newest_release_secret,
)

# Secrets in helm's messages are masked with the collection's one list of secret keys.
from ansible_collections.meshops.cilium.plugins.module_utils.redact import (
    mask_text,
    secret_values as _secret_strings,
)

MIN_HELM_VERSION = (3, 14, 0)

# Environment variables through which helm would pick another cluster or identity than the
# kubeconfig it is given: removed from helm's environment.
_HELM_TARGET_ENV = ('KUBECONFIG', 'HELM_KUBECONTEXT', 'HELM_KUBEAPISERVER', 'HELM_KUBETOKEN', 'HELM_KUBEASUSER',
                    'HELM_KUBEASGROUPS', 'HELM_KUBECAFILE', 'HELM_KUBEINSECURE_SKIP_TLS_VERIFY',
                    'HELM_KUBETLS_SERVER_NAME', 'HELM_NAMESPACE')

# Time limit of a helm call that has no --timeout of its own (version, template, uninstall).
DEFAULT_HELM_TIMEOUT = 300

# Helm's release name rule (a DNS-1123 subdomain of at most 53 characters) and a namespace
# (a DNS-1123 label of at most 63).
_RELEASE_RE = re.compile(r'[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')
_NAMESPACE_RE = re.compile(r'[a-z0-9]([-a-z0-9]*[a-z0-9])?')

# v3.20.2+gabc, v4.3.2; a helm built with `go install` and no version ldflag says only "v4.3"
_VERSION_RE = re.compile(r'v?(\d+)\.(\d+)(?:\.(\d+))?')


class HelmError(ClusterError):
    """A helm failure, phrased for the user; ``str()`` names the cluster."""

    def __init__(self, msg, cluster=None, stderr=None, rc=None):
        self.stderr = stderr
        self.rc = rc
        super().__init__(msg, cluster=cluster)


# ---------------------------------------------------------------------------
# The binary
# ---------------------------------------------------------------------------

def _find_helm(path=None):
    """The helm binary: ``path`` if given (must exist and be executable), else from PATH."""
    if path:
        path = os.path.expanduser(path)
        if os.sep not in path:
            found = shutil.which(path)
            if found:
                return found
        if not os.path.exists(path):
            raise HelmError('helm binary %s does not exist; set helm_binary to the path of helm >= %s'
                            % (path, '.'.join(str(i) for i in MIN_HELM_VERSION)))
        if os.path.isdir(path) or not os.access(path, os.X_OK):
            raise HelmError('helm binary %s is not an executable file' % path)
        return path
    found = shutil.which('helm')
    if not found:
        raise HelmError('the helm binary was not found in PATH (%s); install helm >= %s or set helm_binary'
                        % (os.environ.get('PATH', ''), '.'.join(str(i) for i in MIN_HELM_VERSION)))
    return found


def parse_helm_version(text):
    """``(major, minor, patch)`` from ``helm version --short`` output (``v3.16.2+g...``,
    ``v4.3.2``). A helm built without its version ldflag prints only ``vMAJOR.MINOR`` (Helm 4's
    default is ``v4.3``): its patch counts as 0."""
    m = _VERSION_RE.search(text or '')
    if not m:
        raise HelmError('cannot read the helm version from %r' % (text or '').strip())
    return tuple(int(i or 0) for i in m.groups())


def helm_environment(extra=None):
    """The environment helm runs with: ours, without the variables that would make helm pick
    another cluster than the kubeconfig it is given, updated with ``extra``."""
    environ = dict((k, v) for k, v in os.environ.items() if k not in _HELM_TARGET_ENV)
    environ.update(extra or {})
    return environ


def run_command(argv, module=None, env=None, timeout=None):
    """``(rc, stdout, stderr)`` of ``argv``, run directly (no shell, no ``$VAR``/``~`` expansion
    of any argument), with the environment of ``helm_environment(env)`` and a time limit
    (``timeout`` seconds, default DEFAULT_HELM_TIMEOUT): a stuck helm is killed, never waited
    for forever. ``module`` is accepted for callers' convenience and not used."""
    # AnsibleModule.run_command has no time limit and expands arguments, so helm runs here.
    proc = subprocess.run(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE,  # pylint: disable=ansible-bad-function
                          stdin=subprocess.DEVNULL, universal_newlines=True, env=helm_environment(env),
                          timeout=timeout or DEFAULT_HELM_TIMEOUT, check=False)
    return proc.returncode, proc.stdout, proc.stderr


def release_problems(release_name, namespace):
    """Messages for a release name or namespace helm would refuse or read as a flag."""
    out = []
    if not isinstance(release_name, str) or len(release_name) > 53 or not _RELEASE_RE.fullmatch(release_name):
        out.append('release_name %r is not a valid Helm release name: lower case letters, digits, "-" and '
                   '".", starting and ending with a letter or digit, at most 53 characters' % (release_name,))
    if not isinstance(namespace, str) or len(namespace) > 63 or not _NAMESPACE_RE.fullmatch(namespace):
        out.append('namespace %r is not a valid Kubernetes namespace name: lower case letters, digits and "-", '
                   'starting and ending with a letter or digit, at most 63 characters' % (namespace,))
    return out


def chart_problems(chart_ref=None, chart_version=None, chart_repo_url=None):
    """Messages for chart options helm would read as flags."""
    out = []
    for opt, value in (('chart_ref', chart_ref), ('chart_version', chart_version),
                       ('chart_repo_url', chart_repo_url)):
        if value is not None and (not str(value).strip() or str(value).startswith('-') or '\n' in str(value)):
            out.append('%s %r is not a chart reference: it is empty, spans lines or starts with "-"'
                       % (opt, value))
    return out


def check_release_args(release_name, namespace, chart_ref=None, chart_version=None, chart_repo_url=None):
    """Raise HelmError listing every problem of ``release_problems`` and ``chart_problems``."""
    problems = release_problems(release_name, namespace) + chart_problems(chart_ref, chart_version, chart_repo_url)
    if problems:
        raise HelmError('; '.join(problems))


def helm_version(binary):
    """``(major, minor, patch)`` of ``binary``."""
    try:
        rc, out, err = run_command([binary, 'version', '--short'], timeout=60)
    except (OSError, subprocess.SubprocessError) as e:
        raise HelmError('cannot run %s version: %s' % (binary, e))
    if rc != 0:
        raise HelmError('%s version failed (exit %d): %s' % (binary, rc, (err or '').strip()))
    return parse_helm_version(out)


def check_helm_version(version, binary='helm'):
    """Refuse helm older than 3.14 (and Helm 2), saying why."""
    if tuple(version) < MIN_HELM_VERSION:
        raise HelmError(
            '%s is version %s; helm >= %s is required: chart version changes use '
            '--reset-then-reuse-values (added in helm 3.14) so that the new chart\'s defaults apply '
            'while the release\'s own values are kept' % (
                binary, '.'.join(str(i) for i in version), '.'.join(str(i) for i in MIN_HELM_VERSION)))
    return version


class HelmDialect(object):
    """What the collection passes to helm of one major version: the ONE place where Helm 3 and
    Helm 4 are told apart (``HelmRunner`` asks it; modules never do).

    What Helm 4 changed, checked flag by flag against ``helm4 <command> --help`` of v4.3.2
    (the flags the collection uses: ``upgrade --install --reset-values
    --reset-then-reuse-values --disable-openapi-validation --version --repo -f --timeout --wait``, ``uninstall --wait
    --timeout``, ``template --kube-version``, ``version --short``, the global ``--kubeconfig
    --kube-context``):

    * ``--wait`` takes a strategy in Helm 4 (``watcher``, ``hookOnly``, ``legacy``); a bare
      ``--wait`` means ``watcher`` (kstatus), while Helm 3's ``--wait`` is Helm 4's ``legacy``.
      Helm 4 gets ``--wait=legacy``: a module's ``wait`` waits for the same readiness (pods
      ready, a LoadBalancer Service's address) whichever helm runs it.
    * Installs use server-side apply (field manager ``helm``, operation ``Apply``) and the
      release record says so (``apply_method: ssa``); upgrades keep the release's method
      (``--server-side=auto``), so a release installed by Helm 3 stays client-side under Helm 4
      and one installed by Helm 4 stays server-side. Nothing to pass; ``Release.apply_method``
      reads it.
    * ``--create-namespace``: Helm 4 server-side applies the release namespace even when it
      exists, a patch of (say) kube-system, which the least-privilege identity (deploy/rbac) may
      only read, and which Helm 3 only read. The collection never passes it to either major:
      ``ensure_namespace`` creates a missing namespace before an install (the get and create
      Helm 3 made).
    * Rendering: Helm 4 drops the null defaults of a chart's values.yaml before rendering, so a
      ``hasKey`` on them is false (Cilium 1.19's cilium-config then lacks ``debug-verbose``,
      ``policy-cidr-match-mode`` and ``nodeport-addresses`` where Helm 3 writes them empty). The
      collection never compares rendered manifests across majors; ``render_chart`` only asks
      whether the chart renders.
    * Unchanged for what we use: the release Secrets (``sh.helm.release.v1.*``, type
      ``helm.sh/release.v1``, labels ``owner/name/status/version``, base64 gzip JSON: records of
      either major decode alike), the statuses (``pending-*`` included; the collection reads them
      from the record, it never parses helm's messages for them), the exit code (1) and the API
      server's 403 text passed through. ``--atomic`` (now ``--rollback-on-failure``) and
      ``--force`` (now ``--force-replace``) are not used.
    """

    def __init__(self, version):
        self.version = tuple(version)
        self.major = self.version[0]

    def wait_args(self):
        """The flag that waits for the release's resources to be ready (Helm 3's rules)."""
        return ['--wait'] if self.major < 4 else ['--wait=legacy']

    def __repr__(self):
        return 'HelmDialect(%s)' % '.'.join(str(i) for i in self.version)


def require_helm(path=None):
    """``(binary, version)`` of a usable helm, or HelmError: the one way modules get helm.

    ``path`` is option ``helm_binary`` (None: ``helm`` from PATH); the binary must exist, be
    executable and be helm >= MIN_HELM_VERSION."""
    binary = _find_helm(path)
    return binary, check_helm_version(helm_version(binary), binary)


# ---------------------------------------------------------------------------
# The release, read through the API
# ---------------------------------------------------------------------------

class Release:
    """One revision of a Helm release, from its decoded release record.

    ``values`` are the user-supplied values (Helm's ``config``): they may hold
    secrets, never return them from a module unmasked.
    """

    def __init__(self, record):
        record = record or {}
        chart = record.get('chart') or {}
        meta = chart.get('metadata') or {}
        info = record.get('info') or {}
        self.record = record
        self.name = record.get('name')
        self.namespace = record.get('namespace')
        self.revision = record.get('version')
        self.status = info.get('status')
        self.chart_name = meta.get('name')
        self.chart_version = meta.get('version')
        self.app_version = meta.get('appVersion')
        self.values = record.get('config') or {}
        self.chart = chart
        # how helm wrote the release's objects: 'ssa' (server-side apply: Helm 4's installs and
        # their upgrades) or 'csa' (client-side: Helm 3, which does not record it)
        self.apply_method = record.get('apply_method') or 'csa'

    @property
    def deployed(self):
        return self.status == 'deployed'

    @property
    def pending(self):
        return self.status in PENDING_STATUSES

    def __repr__(self):
        return 'Release(%s/%s rev %s, %s, chart %s)' % (
            self.namespace, self.name, self.revision, self.status, self.chart_version)


def release_summary(release):
    """What modules return about a release (no values), or None for no release."""
    if release is None:
        return None
    return {
        'name': release.name,
        'namespace': release.namespace,
        'revision': release.revision,
        'status': release.status,
        'chart_version': release.chart_version,
    }


def pending_problem(release):
    """Why ``release`` cannot be changed now (a Helm operation is running or was interrupted), or
    None. The one wording of that refusal (modules raise it with ``refuse_pending``)."""
    if release is None or not release.pending:
        return None
    return ('Helm release %s/%s is %s: another helm operation is running or was interrupted; wait for it '
            'or roll it back (helm rollback %s --namespace %s) first'
            % (release.namespace, release.name, release.status, release.name, release.namespace))


def refuse_pending(release):
    """HelmError (``pending_problem``) when ``release`` is pending; nothing otherwise."""
    problem = pending_problem(release)
    if problem:
        raise HelmError(problem)


def read_release(cluster, namespace, name):
    """The newest revision of release ``name`` in ``namespace`` (a Release), or None.

    One LIST of Secrets (``info.read_newest_release_secret``: the revisions that are not superseded).
    A release whose newest revision is ``uninstalled`` (kept history) counts as absent.
    """
    newest = read_newest_release_secret(cluster, namespace, name)
    if newest is None:
        return None
    try:
        record = decode_helm_release((newest.get('data') or {}).get('release') or '')
    except DecodeError as e:
        raise ClusterError('cannot decode Helm release Secret %s/%s: %s'
                           % (namespace, newest['metadata']['name'], e), cluster=cluster.name)
    release = Release(record)
    if release.status == 'uninstalled':
        return None
    return release


def ensure_namespace(cluster, namespace):
    """Create Namespace ``namespace`` unless it exists; True when it was created. What an install
    does instead of helm's ``--create-namespace`` (see ``HelmDialect``): one get, and a create only
    when it is missing, under either helm major."""
    if cluster.call('read Namespace %s' % namespace, cluster.core.read_namespace, namespace,
                    missing_ok=True) is not None:
        return False
    cluster.call('create Namespace %s' % namespace, cluster.core.create_namespace,
                 {'apiVersion': 'v1', 'kind': 'Namespace', 'metadata': {'name': namespace}})
    return True


def read_identity(cluster, namespace='kube-system', release_name='cilium'):
    """A cluster's installed Cilium identity, for an inventory: two reads (ConfigMap ``cilium-config``
    and the release's Secrets), nothing else.

    ``{installed, cluster_name, cluster_id, chart_version, release_status}``: name and ID as the running
    Cilium has them (``cilium-config``), else as the release's values set them; None for what is not
    there. The release's values never leave this function.
    """
    config_map = cluster.read_config_map(namespace, CILIUM_CONFIG, missing_ok=True)
    release = read_release(cluster, namespace, release_name)
    ident = parse_cilium_config(config_map) if config_map is not None else {}
    values = release.values if release is not None else {}
    name = ident.get('cluster_name') or dig(values, 'cluster.name')
    cluster_id = ident.get('cluster_id')
    if cluster_id is None:
        cluster_id = int_or_none(dig(values, 'cluster.id'))
    return {
        'installed': config_map is not None or release is not None,
        'cluster_name': name if isinstance(name, str) else None,
        'cluster_id': cluster_id,
        'chart_version': release.chart_version if release is not None else None,
        'release_status': release.status if release is not None else None,
    }


# ---------------------------------------------------------------------------
# Rebuilding the deployed chart from the release record
# ---------------------------------------------------------------------------

def _b64(data, what):
    if data is None:
        return b''
    if isinstance(data, (bytes, bytearray)):
        return bytes(data)
    try:
        return base64.b64decode(data)
    except (binascii.Error, ValueError, TypeError) as e:
        raise HelmError('the release record has an undecodable %s: %s' % (what, e))


def _safe_rel(name):
    norm = os.path.normpath(name or '')
    if not name or os.path.isabs(name) or norm.startswith('..') or norm in ('.', ''):
        raise HelmError('the release record has a file with an unsafe name: %r' % name)
    return norm


def chart_files(chart):
    """``{relative path: bytes}`` of the chart stored in a release record.

    Chart.yaml from ``metadata``, values.yaml from ``values``, values.schema.json
    from ``schema``, plus ``templates`` and ``files``. YAML files are written as
    JSON (valid YAML) so types survive exactly.
    """
    chart = chart or {}
    meta = chart.get('metadata')
    if not meta or not meta.get('name') or not meta.get('version'):
        raise HelmError('the release record has no chart metadata; give chart_ref')
    if meta.get('dependencies'):
        raise HelmError('the deployed chart %s has dependencies (subcharts), which a release record does '
                        'not hold; give chart_ref' % meta.get('name'))
    files = {}
    files['Chart.yaml'] = json.dumps(meta, indent=1, sort_keys=True).encode('utf-8')
    files['values.yaml'] = json.dumps(chart.get('values') or {}, indent=1, sort_keys=True).encode('utf-8')
    if chart.get('schema'):
        files['values.schema.json'] = _b64(chart['schema'], 'values.schema.json')
    for group in ('templates', 'files'):
        for f in chart.get(group) or []:
            rel = _safe_rel(f.get('name'))
            if rel in ('Chart.yaml', 'values.yaml', 'values.schema.json'):
                continue
            files[rel] = _b64(f.get('data'), rel)
    return files


def write_chart(chart, directory):
    """Write ``chart_files(chart)`` under ``directory/<name>``; returns that path."""
    files = chart_files(chart)
    root = os.path.join(directory, _safe_rel(chart['metadata']['name']))
    for rel, data in files.items():
        path = os.path.join(root, rel)
        parent = os.path.dirname(path)
        if not os.path.isdir(parent):
            os.makedirs(parent, 0o700)
        with open(path, 'wb') as f:
            f.write(data)
    return root


# ---------------------------------------------------------------------------
# Running helm
# ---------------------------------------------------------------------------

def _write_private(path, data):
    if isinstance(data, str):
        data = data.encode('utf-8')
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, 'wb') as f:
        f.write(data)
    return path


@contextlib.contextmanager
def private_dir(prefix='meshops-helm-'):
    """A private temporary directory (0700), removed with everything in it on exit."""
    path = tempfile.mkdtemp(prefix=prefix)
    os.chmod(path, 0o700)
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


class HelmRunner:
    """Runs helm for one cluster.

    ``connection`` is the cluster's resolved ``cluster.Connection`` (the same object the
    Python client was made from) or connection options to resolve. Helm always gets that
    connection's one-context kubeconfig as a private temporary file (directory 0700, file
    0600, removed when the call ends) and ``--kube-context`` naming it; the variables through
    which helm could pick another cluster are removed from its environment. Arguments come
    after ``--`` and are never expanded; every call has a time limit.
    """

    def __init__(self, binary, connection, module=None, version=None):
        """``version``: the binary's ``(major, minor, patch)`` as ``require_helm`` returned it;
        None: asked from the binary (``helm version``) when a flag depends on it."""
        self.binary = binary
        self._version = tuple(version) if version else None
        if not isinstance(connection, Connection):
            connection = resolve_connection(connection or {})
        self.connection = connection
        self.module = module
        self.name = connection.name
        self.secrets = set(connection.secrets())
        self.commands = []  # argv of every helm run (no secrets in them), for tests and debugging

    @property
    def dialect(self):
        """The ``HelmDialect`` of this binary."""
        if self._version is None:
            self._version = helm_version(self.binary)
        return HelmDialect(self._version)

    # -- connection ------------------------------------------------------
    def connection_args(self, tmpdir):
        """helm flags selecting the cluster (and extra environment)."""
        path = _write_private(os.path.join(tmpdir, 'kubeconfig'), json.dumps(self.connection.kubeconfig))
        return ['--kubeconfig', path, '--kube-context', self.connection.context], {}

    # -- running ---------------------------------------------------------
    def _run(self, flags, positional, action, tmpdir, timeout=None, extra_secrets=()):
        conn, env = self.connection_args(tmpdir)
        argv = [self.binary] + list(flags) + conn + ['--'] + list(positional)
        self.commands.append(list(argv))
        secrets = set(self.secrets) | set(extra_secrets)
        # The process gets its own deadline a little after helm's --timeout.
        proc_timeout = (timeout or DEFAULT_HELM_TIMEOUT) + 120
        try:
            rc, out, err = run_command(argv, env=env, timeout=proc_timeout)
        except subprocess.TimeoutExpired:
            raise HelmError('helm did not finish %s within %ss and was stopped' % (action, proc_timeout),
                            cluster=self.name)
        except OSError as e:
            raise HelmError('cannot run %s: %s' % (self.binary, e), cluster=self.name)
        if rc != 0:
            err = mask_text((err or '').strip() or (out or '').strip(), secrets)
            denied = forbidden_summary(err)
            lead = '%s; helm failed to %s' % (denied, action) if denied else 'helm failed to %s' % action
            raise HelmError('%s (exit %d): %s' % (lead, rc, err), cluster=self.name, stderr=err, rc=rc)
        return out

    # -- commands --------------------------------------------------------
    def _chart_args(self, tmpdir, chart_ref, chart_version, chart_repo_url, current):
        """``(flags, chart)``: the chart to use and the flags that go with it."""
        if chart_ref:
            flags = []
            if chart_version:
                flags += ['--version', str(chart_version)]
            if chart_repo_url:
                flags += ['--repo', chart_repo_url]
            return flags, chart_ref
        if current is None:
            raise HelmError('no chart_ref given and no deployed release to take the chart from',
                            cluster=self.name)
        return [], write_chart(current.chart, os.path.join(tmpdir, 'chart'))

    def _check(self, release, namespace, chart_ref=None, chart_version=None, chart_repo_url=None):
        try:
            check_release_args(release, namespace, chart_ref, chart_version, chart_repo_url)
        except HelmError as e:
            raise HelmError(e.detail, cluster=self.name)

    def upgrade(self, release, namespace, values, chart_ref=None, chart_version=None, install=False,
                reset_then_reuse=False, wait=False, timeout=None, current=None, chart_repo_url=None,
                openapi_validation=True):
        """``helm upgrade`` with the COMPLETE user values ``values``.

        Values go in a temporary ``-f`` file; ``--reset-values`` makes the result
        exactly those values on the chart's defaults. ``reset_then_reuse`` uses
        ``--reset-then-reuse-values`` instead (the current user values are kept
        under the given ones). Without ``chart_ref`` the chart of ``current``
        (a Release) is rebuilt from the release record: the deployed chart
        version is kept. Returns helm's output (text); read the new revision with
        ``read_release`` (helm's JSON output would carry the whole chart). An install needs its
        namespace to exist (``ensure_namespace``): helm never gets ``--create-namespace``.
        ``openapi_validation=False`` passes ``--disable-openapi-validation``: helm then neither fetches the
        cluster's OpenAPI document nor checks the rendered manifests against it (about a third of an
        upgrade's CPU here), for a change whose manifests differ from a deployed revision's, which the API
        server accepted, only in values the chart writes as Secret or ConfigMap data.
        """
        self._check(release, namespace, chart_ref, chart_version, chart_repo_url)
        timeout = int(timeout or DEFAULT_HELM_TIMEOUT)
        with private_dir() as tmpdir:
            flags, chart = self._chart_args(tmpdir, chart_ref, chart_version, chart_repo_url, current)
            values_file = _write_private(os.path.join(tmpdir, 'values.yaml'),
                                         json.dumps(values or {}, indent=1, sort_keys=True))
            flags = ['upgrade'] + flags + ['--namespace', namespace, '-f', values_file]
            flags.append('--reset-then-reuse-values' if reset_then_reuse else '--reset-values')
            if install:
                flags.append('--install')
            if not openapi_validation:
                flags.append('--disable-openapi-validation')
            if wait:
                flags += self.dialect.wait_args()
            flags += ['--timeout', '%ss' % timeout]
            action = '%s release %s/%s' % ('install or upgrade' if install else 'upgrade', namespace, release)
            out = self._run(flags, [release, chart], action, tmpdir, timeout=timeout,
                            extra_secrets=_secret_strings(values))
        return out

    def uninstall(self, release, namespace, wait=False, timeout=None):
        self._check(release, namespace)
        timeout = int(timeout or DEFAULT_HELM_TIMEOUT)
        with private_dir() as tmpdir:
            flags = ['uninstall', '--namespace', namespace]
            if wait:
                flags += self.dialect.wait_args()
            flags += ['--timeout', '%ss' % timeout]
            return self._run(flags, [release], 'uninstall release %s/%s' % (namespace, release), tmpdir,
                             timeout=timeout)

    def template(self, release, namespace, values, chart_ref=None, chart_version=None, current=None,
                 chart_repo_url=None):
        """The manifests ``helm template`` renders (str). No write to the cluster."""
        self._check(release, namespace, chart_ref, chart_version, chart_repo_url)
        with private_dir() as tmpdir:
            flags, chart = self._chart_args(tmpdir, chart_ref, chart_version, chart_repo_url, current)
            values_file = _write_private(os.path.join(tmpdir, 'values.yaml'),
                                         json.dumps(values or {}, indent=1, sort_keys=True))
            flags = ['template'] + flags + ['--namespace', namespace, '-f', values_file]
            return self._run(flags, [release, chart], 'render release %s/%s' % (namespace, release), tmpdir,
                             extra_secrets=_secret_strings(values))


# The Kubernetes version a client-side render assumes (helm's own default is 1.20, older than
# every supported chart accepts); the cluster's version is checked by helm at install time.
RENDER_KUBE_VERSION = '1.34.0'


def render_chart(binary, release, namespace, values, chart_ref, kube_version=RENDER_KUBE_VERSION, timeout=120):
    """``helm template`` of the local chart ``chart_ref`` with the complete user values ``values``,
    client-side only (no cluster is contacted, no kubeconfig is given). Returns None when the chart
    renders, else helm's error (secrets of ``values`` masked). The values go in a private temporary
    file, removed when the call ends."""
    with private_dir() as tmpdir:
        values_file = _write_private(os.path.join(tmpdir, 'values.yaml'),
                                     json.dumps(values or {}, indent=1, sort_keys=True))
        argv = [binary, 'template', '--namespace', namespace, '--kube-version', kube_version, '-f', values_file,
                '--', release, chart_ref]
        try:
            rc, _out, err = run_command(argv, timeout=timeout)
        except subprocess.TimeoutExpired:
            return 'helm template did not finish within %ss' % timeout
        except OSError as e:
            return 'cannot run %s: %s' % (binary, e)
    if rc == 0:
        return None
    lines = [line for line in (err or '').splitlines() if line.strip() and not line.startswith('Use --debug')]
    return mask_text(' '.join(lines) or 'helm template failed (exit %d)' % rc, set(_secret_strings(values)))


# ---------------------------------------------------------------------------
# Chart version of a local chart
# ---------------------------------------------------------------------------

def local_chart_version(chart_ref):
    """The ``version`` of a local chart (directory or .tgz), or None when ``chart_ref``
    is not a local path (a repo chart or an ``oci://`` reference)."""
    if not chart_ref or '://' in chart_ref:
        return None
    path = os.path.expanduser(chart_ref)
    if not os.path.exists(path):
        return None
    try:
        if os.path.isdir(path):
            with open(os.path.join(path, 'Chart.yaml')) as f:
                meta = yaml.safe_load(f) or {}
        else:
            with tarfile.open(path, 'r:*') as tar:
                member = None
                for m in tar.getmembers():
                    parts = m.name.split('/')
                    if len(parts) == 2 and parts[1] == 'Chart.yaml' and m.isfile():
                        member = m
                        break
                if member is None:
                    raise HelmError('%s is not a chart archive (no <name>/Chart.yaml)' % chart_ref)
                meta = yaml.safe_load(tar.extractfile(member).read()) or {}
    except (IOError, OSError, tarfile.TarError, yaml.YAMLError) as e:
        raise HelmError('cannot read the chart %s: %s' % (chart_ref, e))
    version = meta.get('version') if isinstance(meta, dict) else None
    return str(version) if version is not None else None


# ---------------------------------------------------------------------------
# Waiting for the release's workloads
# ---------------------------------------------------------------------------

def _generation_pending(meta, status):
    return (status.get('observedGeneration') or 0) < (meta.get('generation') or 0)


def _rollout(meta, status, want, ready, updated):
    """``(ready, detail)`` of a rollout: observed, then every replica ready and updated."""
    if _generation_pending(meta, status):
        return False, 'rollout not observed yet'
    if ready < want or updated < want:
        return False, '%d/%d ready, %d/%d updated' % (ready, want, updated, want)
    return True, '%d/%d ready' % (ready, want)


def daemonset_ready(ds):
    """``(ready, detail)`` for a DaemonSet dict."""
    if ds is None:
        return False, 'does not exist'
    meta, status = ds.get('metadata') or {}, ds.get('status') or {}
    want = status.get('desiredNumberScheduled') or 0
    if want == 0 and not _generation_pending(meta, status):
        return False, 'no node scheduled'
    return _rollout(meta, status, want, status.get('numberReady') or 0,
                    status.get('updatedNumberScheduled') or 0)


def deployment_rollout(dep):
    """``(ready, detail)`` for a Deployment dict: ready as ``common.deployment_ready`` says (a
    Deployment scaled to 0 is not ready), the detail says why not."""
    state = deployment_ready(dep)
    if not state['exists']:
        return False, 'does not exist'
    if state['replicas'] <= 0:
        return False, 'scaled to 0 replicas'
    return _rollout(dep.get('metadata') or {}, dep.get('status') or {}, state['replicas'],
                    state['ready_replicas'], state['updated_replicas'])


def service_ingress(svc):
    """``(ready, detail)``: whether a LoadBalancer Service has an ingress address."""
    if svc is None:
        return False, 'does not exist'
    ingress = ((svc.get('status') or {}).get('loadBalancer') or {}).get('ingress') or []
    addrs = [i.get('ip') or i.get('hostname') for i in ingress if i.get('ip') or i.get('hostname')]
    if not addrs:
        return False, 'no load balancer address yet'
    return True, ', '.join(addrs)


def _read(cluster, kind, namespace, name):
    if kind == 'DaemonSet':
        return cluster.to_dict(cluster.call('read DaemonSet %s/%s' % (namespace, name),
                                            cluster.apps.read_namespaced_daemon_set, name, namespace,
                                            missing_ok=True))
    if kind == 'Deployment':
        return cluster.read_deployment(namespace, name, missing_ok=True)
    return cluster.read_service(namespace, name, missing_ok=True)


def install_components(values, load_balancer=False, apiserver='ready'):
    """What to wait for after an install: the agents, the operator and, when
    ``clustermesh.useAPIServer`` is on, the clustermesh-apiserver: with ``apiserver='ready'`` its
    Deployment (and with ``load_balancer`` its LoadBalancer address when the Service is one); with
    ``apiserver='address'`` only the address peers reach it at (the LoadBalancer Service's ingress;
    nothing for other Service types), for a run that connects the cluster next and then waits for its
    mesh status, which includes the clustermesh-apiserver's readiness (its pods start meanwhile)."""
    comps = [('DaemonSet', 'cilium'), ('Deployment', 'cilium-operator')]
    cm = (values or {}).get('clustermesh') or {}
    if cm.get('useAPIServer') is True:
        if apiserver == 'ready':
            comps.append(('Deployment', 'clustermesh-apiserver'))
        stype = ((cm.get('apiserver') or {}).get('service') or {}).get('type')
        if (load_balancer or apiserver == 'address') and stype == 'LoadBalancer':
            comps.append(('Service', 'clustermesh-apiserver'))
    return comps


_CHECKS = {'DaemonSet': daemonset_ready, 'Deployment': deployment_rollout, 'Service': service_ingress}


def wait_ready(cluster, namespace, components, timeout=300, interval=1.0, sleep=time.sleep, clock=time.time):
    """Poll ``components`` (list of ``(kind, name)``; kind DaemonSet, Deployment or
    Service for a LoadBalancer address) until all are ready (pauses of ``common.wait_pauses(interval)``).

    Returns ``{"Kind/name": detail}``; raises ClusterError naming what is not
    ready at the deadline.
    """
    deadline = clock() + timeout
    pauses = wait_pauses(interval)
    while True:
        states = {}
        for kind, name in components:
            states['%s/%s' % (kind, name)] = _CHECKS[kind](_read(cluster, kind, namespace, name))
        pending = dict((k, v[1]) for k, v in states.items() if not v[0])
        if not pending:
            return dict((k, v[1]) for k, v in states.items())
        if clock() >= deadline:
            raise ClusterError('not ready after %ss in namespace %s: %s' % (
                timeout, namespace, '; '.join('%s: %s' % kv for kv in sorted(pending.items()))),
                cluster=cluster.name)
        sleep(next(pauses))
