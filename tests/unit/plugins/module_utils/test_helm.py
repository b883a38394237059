# -*- coding: utf-8 -*-
# Copyright: meshops.cilium contributors
# SPDX-License-Identifier: Apache-2.0
"""helm.py: binary discovery, release decoding, chart rebuild, temp kubeconfig hygiene,
with a stand-in helm script that records what it was given."""

import base64
import gzip
import json
import os
import stat
import sys
import textwrap

import pytest

from ansible_collections.meshops.cilium.plugins.module_utils import helm
from ansible_collections.meshops.cilium.plugins.module_utils.helm import (
    HelmDialect,
    HelmError,
    HelmRunner,
    Release,
    chart_files,
    check_helm_version,
    helm_version,
    mask_text,
    parse_helm_version,
    read_release,
    refuse_pending,
    release_summary,
    require_helm,
)

FAKE_HELM = textwrap.dedent('''\
    #!{python}
    import json, os, stat, sys
    log = os.environ["FAKE_HELM_LOG"]
    args = sys.argv[1:]
    if args[:1] == ["version"]:
        print(os.environ.get("FAKE_HELM_VERSION", "v3.20.2+gabc"))
        sys.exit(0)
    pos = args[args.index("--") + 1:] if "--" in args else []
    rec = {{"argv": args, "positional": pos, "env_kubeconfig": os.environ.get("KUBECONFIG"),
            "env_apiserver": os.environ.get("HELM_KUBEAPISERVER"), "files": {{}}, "modes": {{}}}}
    for flag in ("-f", "--kubeconfig"):
        if flag in args:
            path = args[args.index(flag) + 1]
            rec["files"][flag] = open(path).read()
            rec["modes"][flag] = oct(stat.S_IMODE(os.stat(path).st_mode))
            rec["modes"][flag + " dir"] = oct(stat.S_IMODE(os.stat(os.path.dirname(path)).st_mode))
            rec.setdefault("paths", {{}})[flag] = path
    if len(pos) > 1 and args[0] in ("upgrade", "template") and os.path.isdir(pos[1]):
        tree = {{}}
        for root, dirs, files in os.walk(pos[1]):
            for f in files:
                p = os.path.join(root, f)
                tree[os.path.relpath(p, pos[1])] = open(p, "rb").read().decode("latin-1")
        rec["chart_tree"] = tree
    with open(log, "a") as f:
        f.write(json.dumps(rec) + "\\n")
    if os.environ.get("FAKE_HELM_FAIL"):
        sys.stderr.write(os.environ["FAKE_HELM_FAIL"])
        sys.exit(1)
    print("Release has been upgraded")
''')


@pytest.fixture
def fake_helm(tmp_path, monkeypatch):
    path = tmp_path / 'bin' / 'helm'
    path.parent.mkdir()
    path.write_text(FAKE_HELM.format(python=sys.executable))
    path.chmod(0o755)
    log = tmp_path / 'helm.log'
    monkeypatch.setenv('FAKE_HELM_LOG', str(log))

    return FakeHelm(path, log)


class FakeHelm(object):
    def __init__(self, path, log):
        self.path = path
        self.parent = path.parent
        self.log = log

    def __str__(self):
        return str(self.path)

    def calls(self):
        if not self.log.exists():
            return []
        return [json.loads(line) for line in self.log.read_text().splitlines()]


def _record(version=3, status='deployed', config=None, chart_version='1.19.2', templates=None, schema=True):
    chart = {
        'metadata': {'apiVersion': 'v2', 'name': 'cilium', 'version': chart_version,
                     'appVersion': chart_version, 'description': 'eBPF'},
        'values': {'cluster': {'name': 'default', 'id': 0}, 'ipam': {'mode': 'cluster-pool'}},
        'templates': templates if templates is not None else [
            {'name': 'templates/cilium-configmap.yaml',
             'data': base64.b64encode(b'kind: ConfigMap\n').decode()},
            {'name': 'templates/_helpers.tpl', 'data': base64.b64encode(b'{{/* x */}}').decode()}],
        'files': [{'name': 'files/nodeinit/startup.bash', 'data': base64.b64encode(b'#!/bin/bash\n').decode()},
                  {'name': 'README.md', 'data': base64.b64encode(b'readme').decode()}],
    }
    if schema:
        chart['schema'] = base64.b64encode(b'{"type": "object"}').decode()
    return {'name': 'cilium', 'namespace': 'kube-system', 'version': version,
            'info': {'status': status}, 'chart': chart, 'config': config or {}}


def _secret(record, revision=None):
    raw = gzip.compress(json.dumps(record).encode())
    data = base64.b64encode(base64.b64encode(raw)).decode()
    rev = revision or record['version']
    return {'metadata': {'name': 'sh.helm.release.v1.cilium.v%d' % rev,
                         'labels': {'owner': 'helm', 'name': 'cilium', 'version': str(rev),
                                    'status': record['info']['status']}},
            'type': 'helm.sh/release.v1', 'data': {'release': data}}


class FakeCluster(object):
    name = 'mesh-1'

    def __init__(self, secrets):
        self.secrets = secrets
        self.calls = []

    def list_secrets(self, namespace, label_selector=None, field_selector=None):
        self.calls.append((namespace, label_selector, field_selector))
        return self.secrets


# -- binary ---------------------------------------------------------------------------

def test_require_helm_explicit_missing_names_the_path(tmp_path):
    with pytest.raises(HelmError, match='does not exist.*helm_binary'):
        require_helm(str(tmp_path / 'nope'))


def test_require_helm_not_executable(tmp_path):
    p = tmp_path / 'helm'
    p.write_text('x')
    p.chmod(0o644)
    with pytest.raises(HelmError, match='not an executable'):
        require_helm(str(p))


def test_require_helm_from_path(fake_helm, monkeypatch):
    monkeypatch.setenv('PATH', str(fake_helm.parent))
    assert require_helm() == (str(fake_helm), (3, 20, 2))


def test_require_helm_from_path_checks_the_version(fake_helm, monkeypatch):
    # the binary found in PATH (no helm_binary) is version-checked like an explicit one
    monkeypatch.setenv('PATH', str(fake_helm.parent))
    monkeypatch.setenv('FAKE_HELM_VERSION', 'v3.13.3')
    with pytest.raises(HelmError, match=r'>= 3\.14\.0'):
        require_helm()


def test_require_helm_missing_from_path(tmp_path, monkeypatch):
    monkeypatch.setenv('PATH', str(tmp_path))
    with pytest.raises(HelmError, match='not found in PATH'):
        require_helm()


@pytest.mark.parametrize('text,expected', [
    ('v3.20.2+g1234', (3, 20, 2)), ('v3.14.0', (3, 14, 0)), ('version.BuildInfo{Version:"v3.9.4"}', (3, 9, 4)),
    ('v4.0.1', (4, 0, 1)), ('v4.3.2', (4, 3, 2)),
    # a helm built by `go install` without the version ldflag: Helm 4 says only "v4.3", Helm 3 "v3.20"
    ('v4.3', (4, 3, 0)), ('v3.20', (3, 20, 0))])
def test_parse_helm_version(text, expected):
    assert parse_helm_version(text) == expected


def test_parse_helm_version_garbage():
    with pytest.raises(HelmError, match='cannot read the helm version'):
        parse_helm_version('hello')


def test_old_helm_refused_with_reason():
    with pytest.raises(HelmError, match=r'3\.13\.3.*>= 3\.14\.0.*--reset-then-reuse-values'):
        check_helm_version((3, 13, 3))
    assert check_helm_version((3, 14, 0)) == (3, 14, 0)
    assert check_helm_version((4, 0, 0)) == (4, 0, 0)


def test_helm_version_runs_binary(fake_helm, monkeypatch):
    monkeypatch.setenv('FAKE_HELM_VERSION', 'v3.15.4+gfa9efb0')
    assert helm_version(str(fake_helm)) == (3, 15, 4)
    monkeypatch.setenv('FAKE_HELM_VERSION', 'v3.12.0')
    with pytest.raises(HelmError, match='3.14'):
        helm.require_helm(str(fake_helm))


# -- Helm 3 and Helm 4 ------------------------------------------------------------------

def test_wait_is_helm_3s_wait_under_either_major():
    # Helm 4's bare --wait is its kstatus "watcher"; Helm 3's rules are Helm 4's "legacy"
    assert HelmDialect((3, 14, 0)).wait_args() == ['--wait']
    assert HelmDialect((3, 20, 2)).wait_args() == ['--wait']
    assert HelmDialect((4, 0, 0)).wait_args() == ['--wait=legacy']
    assert HelmDialect((4, 3, 2)).wait_args() == ['--wait=legacy']


@pytest.mark.parametrize('helm_version_text,wait_flag', [('v3.20.2+g1234', '--wait'), ('v4.3.2', '--wait=legacy')])
def test_runner_asks_the_binary_its_version_when_not_given(fake_helm, monkeypatch, helm_version_text, wait_flag):
    monkeypatch.setenv('FAKE_HELM_VERSION', helm_version_text)
    runner = HelmRunner(str(fake_helm), {'host': 'https://h', 'api_key': 'x'})
    runner.upgrade('cilium', 'kube-system', {}, chart_ref='c.tgz', wait=True)
    runner.uninstall('cilium', 'kube-system', wait=True)
    upgrade, uninstall = fake_helm.calls()
    for call in (upgrade, uninstall):
        waits = [a for a in call['argv'] if a.startswith('--wait')]
        assert waits == [wait_flag], call['argv']
    assert upgrade['argv'].index(wait_flag) < upgrade['argv'].index('--')


def test_runner_uses_the_version_it_is_given(fake_helm, monkeypatch):
    # the version require_helm checked is used as is: the binary is not asked again
    monkeypatch.setenv('FAKE_HELM_VERSION', 'v3.20.2')
    runner = HelmRunner(str(fake_helm), {'host': 'https://h', 'api_key': 'x'}, version=(4, 3, 2))
    runner.upgrade('cilium', 'kube-system', {}, chart_ref='c.tgz', install=True, wait=True)
    call, = fake_helm.calls()
    assert '--wait=legacy' in call['argv'] and '--wait' not in call['argv']
    # the rest of an install is the same command under both majors
    for flag in ('--install', '--reset-values', '--timeout', '-f'):
        assert flag in call['argv']
    # never --create-namespace: Helm 4 would server-side apply an existing namespace (ensure_namespace)
    assert '--create-namespace' not in call['argv']
    # Helm checks the manifests against the cluster's OpenAPI document unless told not to
    assert '--disable-openapi-validation' not in call['argv']


@pytest.mark.parametrize('major', [(3, 20, 2), (4, 3, 2)])
def test_an_upgrade_can_skip_the_openapi_check(fake_helm, major):
    runner = HelmRunner(str(fake_helm), {'host': 'https://h', 'api_key': 'x'}, version=major)
    runner.upgrade('cilium', 'kube-system', {}, chart_ref='c.tgz', openapi_validation=False)
    call, = fake_helm.calls()
    assert call['argv'].index('--disable-openapi-validation') < call['argv'].index('--')


class NamespaceCluster(object):
    """Stands in for cluster.Cluster: ``call`` on the namespace functions of ``core``."""
    name = 'mesh-1'

    def __init__(self, existing):
        self.existing = set(existing)
        self.requests = []
        self.core = self

    def read_namespace(self, name):
        return {'metadata': {'name': name}} if name in self.existing else None

    def create_namespace(self, body):
        self.existing.add(body['metadata']['name'])
        return body

    def call(self, action, func, *args, **kwargs):
        self.requests.append((func.__name__,) + args)
        out = func(*args)
        assert out is not None or kwargs.get('missing_ok')
        return out


def test_ensure_namespace_reads_and_creates_only_a_missing_one():
    cluster = NamespaceCluster(['kube-system'])
    assert helm.ensure_namespace(cluster, 'kube-system') is False
    assert cluster.requests == [('read_namespace', 'kube-system')]  # an existing namespace is not written
    cluster.requests = []
    assert helm.ensure_namespace(cluster, 'cilium') is True
    assert cluster.requests == [('read_namespace', 'cilium'),
                                ('create_namespace', {'apiVersion': 'v1', 'kind': 'Namespace',
                                                      'metadata': {'name': 'cilium'}})]


def test_no_wait_passes_no_wait_flag_under_either_major(fake_helm):
    for version in ((3, 20, 2), (4, 3, 2)):
        runner = HelmRunner(str(fake_helm), {'host': 'https://h', 'api_key': 'x'}, version=version)
        runner.upgrade('cilium', 'kube-system', {}, chart_ref='c.tgz')
    for call in fake_helm.calls():
        assert not [a for a in call['argv'] if a.startswith('--wait')]


def test_release_apply_method_helm_4_records_it_helm_3_does_not():
    helm3 = _record()
    helm4 = dict(_record(), apply_method='ssa')
    assert Release(helm3).apply_method == 'csa'
    assert Release(helm4).apply_method == 'ssa'
    # a Helm 4 record decodes like a Helm 3 one (the same Secret format)
    rel = read_release(FakeCluster([_secret(helm4)]), 'kube-system', 'cilium')
    assert rel.apply_method == 'ssa' and rel.chart_version == '1.19.2' and rel.deployed


# -- release --------------------------------------------------------------------------

def test_read_release_newest_revision_one_list():
    cluster = FakeCluster([_secret(_record(version=1, status='superseded')),
                           _secret(_record(version=2, config={'cluster': {'name': 'mesh-1'}}))])
    rel = read_release(cluster, 'kube-system', 'cilium')
    assert len(cluster.calls) == 1
    # the revisions Helm has superseded (its history) are not listed
    assert cluster.calls[0][1] == 'owner=helm,name=cilium,status!=superseded'
    assert (rel.name, rel.namespace, rel.revision, rel.status, rel.chart_version, rel.app_version) == (
        'cilium', 'kube-system', 2, 'deployed', '1.19.2', '1.19.2')
    assert rel.values == {'cluster': {'name': 'mesh-1'}}
    assert rel.chart['metadata']['name'] == 'cilium'
    assert rel.deployed and not rel.pending
    assert release_summary(rel) == {'name': 'cilium', 'namespace': 'kube-system', 'revision': 2,
                                    'status': 'deployed', 'chart_version': '1.19.2'}
    assert release_summary(None) is None


@pytest.mark.parametrize('status', ['pending-install', 'pending-upgrade', 'pending-rollback', 'uninstalling'])
def test_refuse_pending_one_wording(status):
    rel = Release({'name': 'cilium', 'namespace': 'kube-system', 'version': 3, 'info': {'status': status}})
    with pytest.raises(HelmError) as ei:
        refuse_pending(rel)
    assert str(ei.value) == ('Helm release kube-system/cilium is %s: another helm operation is running or was '
                             'interrupted; wait for it or roll it back (helm rollback cilium --namespace '
                             'kube-system) first' % status)


@pytest.mark.parametrize('status', ['deployed', 'failed', 'superseded'])
def test_refuse_pending_lets_settled_releases_through(status):
    refuse_pending(None)
    refuse_pending(Release({'name': 'cilium', 'namespace': 'kube-system', 'info': {'status': status}}))


def test_read_release_absent_and_uninstalled():
    assert read_release(FakeCluster([]), 'kube-system', 'cilium') is None
    assert read_release(FakeCluster([_secret(_record(status='uninstalled'))]), 'kube-system', 'cilium') is None


def test_read_release_pending():
    rel = read_release(FakeCluster([_secret(_record(status='pending-upgrade'))]), 'kube-system', 'cilium')
    assert rel.pending and not rel.deployed


def test_read_release_undecodable_names_cluster():
    s = _secret(_record())
    s['data']['release'] = base64.b64encode(b'!!!not base64!!!').decode()
    with pytest.raises(Exception, match='mesh-1.*cannot decode Helm release Secret'):
        read_release(FakeCluster([s]), 'kube-system', 'cilium')


# -- chart rebuild --------------------------------------------------------------------

def test_chart_files_rebuilds_everything():
    files = chart_files(_record()['chart'])
    assert set(files) == {'Chart.yaml', 'values.yaml', 'values.schema.json', 'templates/cilium-configmap.yaml',
                          'templates/_helpers.tpl', 'files/nodeinit/startup.bash', 'README.md'}
    assert json.loads(files['Chart.yaml'])['version'] == '1.19.2'
    assert json.loads(files['values.yaml'])['ipam']['mode'] == 'cluster-pool'
    assert files['templates/cilium-configmap.yaml'] == b'kind: ConfigMap\n'


@pytest.mark.parametrize('bad', ['../evil', '/etc/passwd', 'templates/../../x'])
def test_chart_files_refuses_escaping_names(bad):
    chart = _record(templates=[{'name': bad, 'data': ''}])['chart']
    with pytest.raises(HelmError, match='unsafe name'):
        chart_files(chart)


def test_chart_files_refuses_dependencies():
    chart = _record()['chart']
    chart['metadata']['dependencies'] = [{'name': 'sub'}]
    with pytest.raises(HelmError, match='give chart_ref'):
        chart_files(chart)


# -- kubeconfig -----------------------------------------------------------------------

def _kubeconfig(tmp_path):
    cfg = {
        'apiVersion': 'v1', 'kind': 'Config', 'current-context': 'mesh-1',
        'clusters': [{'name': 'c1',
                      'cluster': {'server': 'https://127.0.0.1:6443', 'certificate-authority': 'ca.crt'}},
                     {'name': 'c2', 'cluster': {'server': 'https://127.0.0.2:6443'}}],
        'users': [{'name': 'u1', 'user': {'token': 'tok-1-secret'}},
                  {'name': 'u2', 'user': {'client-key-data': 'a2V5LWRhdGE='}}],
        'contexts': [{'name': 'mesh-1', 'context': {'cluster': 'c1', 'user': 'u1'}},
                     {'name': 'mesh-2', 'context': {'cluster': 'c2', 'user': 'u2', 'namespace': 'x'}}],
    }
    path = tmp_path / 'kubeconfig'
    path.write_text(json.dumps(cfg))
    return cfg, path


# -- running --------------------------------------------------------------------------

def test_upgrade_gets_the_resolved_one_context_kubeconfig(fake_helm, tmp_path, monkeypatch):
    dummy, path = _kubeconfig(tmp_path)
    # variables through which helm could pick another cluster are not passed on
    monkeypatch.setenv('HELM_KUBEAPISERVER', 'https://elsewhere:6443')
    monkeypatch.setenv('KUBECONFIG', '/elsewhere/kubeconfig')
    runner = HelmRunner(str(fake_helm), {'kubeconfig': str(path), 'context': 'mesh-2'})
    runner.upgrade('cilium', 'kube-system', {'cluster': {'name': 'mesh-2'}}, chart_ref='/charts/cilium.tgz',
                   chart_version='1.19.2', install=True, timeout=120)
    call, = fake_helm.calls()
    argv = call['argv']
    assert argv[0] == 'upgrade' and call['positional'] == ['cilium', '/charts/cilium.tgz']
    assert argv[-3:] == ['--', 'cilium', '/charts/cilium.tgz']
    given = json.loads(call['files']['--kubeconfig'])
    assert given['clusters'][0]['cluster']['server'] == 'https://127.0.0.2:6443'
    assert argv[argv.index('--kube-context') + 1] == 'mesh-2' == given['current-context']
    assert call['env_apiserver'] is None and call['env_kubeconfig'] is None
    assert argv[argv.index('--version') + 1] == '1.19.2'
    assert '--install' in argv and '--reset-values' in argv and '--create-namespace' not in argv
    assert argv[argv.index('--timeout') + 1] == '120s'
    assert json.loads(call['files']['-f']) == {'cluster': {'name': 'mesh-2'}}
    assert call['modes']['-f'] == '0o600' and call['modes']['-f dir'] == '0o700'
    assert not os.path.exists(call['paths']['-f'])
    assert not os.path.exists(os.path.dirname(call['paths']['-f']))


def test_inline_kubeconfig_is_a_private_temp_file_removed_after(fake_helm, tmp_path):
    cfg, dummy = _kubeconfig(tmp_path)
    runner = HelmRunner(str(fake_helm), {'kubeconfig': cfg, 'context': 'mesh-1'})
    runner.upgrade('cilium', 'kube-system', {}, chart_ref='cilium/cilium', chart_repo_url='https://helm.cilium.io',
                   reset_then_reuse=True)
    call, = fake_helm.calls()
    assert 'tok-1-secret' not in ' '.join(call['argv'])
    assert '--reset-then-reuse-values' in call['argv'] and '--reset-values' not in call['argv']
    assert call['argv'][call['argv'].index('--repo') + 1] == 'https://helm.cilium.io'
    assert json.loads(call['files']['--kubeconfig'])['users'][0]['user']['token'] == 'tok-1-secret'
    assert call['modes']['--kubeconfig'] == '0o600' and call['modes']['--kubeconfig dir'] == '0o700'
    assert not os.path.exists(call['paths']['--kubeconfig'])


def test_host_and_token_never_on_command_line(fake_helm):
    runner = HelmRunner(str(fake_helm), {'host': 'https://10.1.1.1:6443', 'api_key': 'super-secret-token'})
    runner.uninstall('cilium', 'kube-system', wait=True, timeout=60)
    call, = fake_helm.calls()
    assert 'super-secret-token' not in ' '.join(call['argv'])
    assert call['argv'][:3] == ['uninstall', '--namespace', 'kube-system'] and call['positional'] == ['cilium']
    assert '--wait' in call['argv']
    assert 'super-secret-token' in call['files']['--kubeconfig']


def test_upgrade_without_chart_ref_rebuilds_deployed_chart(fake_helm, tmp_path):
    dummy, path = _kubeconfig(tmp_path)
    current = Release(_record(config={'a': 1}))
    runner = HelmRunner(str(fake_helm), {'kubeconfig': str(path), 'context': 'mesh-1'})
    runner.upgrade('cilium', 'kube-system', {'a': 2}, current=current)
    call, = fake_helm.calls()
    tree = call['chart_tree']
    assert json.loads(tree['Chart.yaml'])['version'] == '1.19.2'
    assert tree['templates/cilium-configmap.yaml'] == 'kind: ConfigMap\n'
    assert 'values.schema.json' in tree and 'files/nodeinit/startup.bash' in tree
    assert '--version' not in call['argv']


def test_upgrade_without_chart_or_release_fails(fake_helm):
    runner = HelmRunner(str(fake_helm), {'host': 'https://h', 'api_key': 'x'})
    with pytest.raises(HelmError, match='no chart_ref'):
        runner.upgrade('cilium', 'kube-system', {})


def test_failure_names_cluster_and_masks_secrets(fake_helm, tmp_path, monkeypatch):
    monkeypatch.setenv('FAKE_HELM_FAIL', 'Error: bad value ca.key=SECRETKEYMATERIAL token=super-secret-token')
    cfg = {'apiVersion': 'v1', 'kind': 'Config', 'current-context': 'mesh-3',
           'clusters': [{'name': 'c', 'cluster': {'server': 'https://10.1.1.1:6443'}}],
           'users': [{'name': 'u', 'user': {'token': 'super-secret-token'}}],
           'contexts': [{'name': 'mesh-3', 'context': {'cluster': 'c', 'user': 'u'}}]}
    runner = HelmRunner(str(fake_helm), {'kubeconfig': cfg, 'context': 'mesh-3'})
    with pytest.raises(HelmError) as e:
        runner.upgrade('cilium', 'kube-system', {'tls': {'ca': {'key': 'SECRETKEYMATERIAL'}}}, chart_ref='x')
    text = str(e.value)
    assert text.startswith('mesh-3: helm failed to upgrade release kube-system/cilium (exit 1)')
    assert 'SECRETKEYMATERIAL' not in text and 'super-secret-token' not in text
    assert '********' in text
    # the temp dir is gone even on failure
    call, = fake_helm.calls()
    assert not os.path.exists(os.path.dirname(call['paths']['-f']))


def test_template_returns_output(fake_helm):
    runner = HelmRunner(str(fake_helm), {'host': 'https://h', 'api_key': 'x'})
    assert 'upgraded' in runner.template('cilium', 'kube-system', {}, chart_ref='c.tgz')


def test_mask_text_longest_first():
    assert mask_text('abcdef abc', ['abc', 'abcdef']) == '******** ********'


def test_private_dir_mode_and_cleanup():
    with helm.private_dir() as d:
        assert stat.S_IMODE(os.stat(d).st_mode) == 0o700
    assert not os.path.exists(d)


def test_a_refused_permission_in_helm_is_summarised_first(fake_helm, monkeypatch, tmp_path):
    monkeypatch.setenv('FAKE_HELM_FAIL', 'Error: UPGRADE FAILED: configmaps "cilium-config" is forbidden: User '
                       '"meshops-automation" cannot patch resource "configmaps" in API group "" in the namespace '
                       '"kube-system"')
    runner = HelmRunner(str(fake_helm), {'kubeconfig': _kubeconfig(tmp_path)[0], 'context': 'mesh-2'})
    with pytest.raises(HelmError) as e:
        runner.upgrade('cilium', 'kube-system', {}, chart_ref='x')
    assert str(e.value).startswith('mesh-2: permission denied (403): user "meshops-automation" is missing the '
                                   'permission to patch "configmaps" in the core API group in namespace '
                                   '"kube-system"; helm failed to upgrade release kube-system/cilium (exit 1)')


@pytest.mark.parametrize('release,namespace,bad', [
    ('--dry-run', 'kube-system', 'release_name'),
    ('cilium\n', 'kube-system', 'release_name'),
    ('Cilium', 'kube-system', 'release_name'),
    ('x' * 54, 'kube-system', 'release_name'),
    ('cilium', '-n', 'namespace'),
    ('cilium', 'kube-system\n', 'namespace'),
    ('cilium', 'a.b', 'namespace'),
])
def test_bad_release_or_namespace_never_reaches_helm(fake_helm, release, namespace, bad):
    runner = HelmRunner(str(fake_helm), {'host': 'https://h', 'api_key': 'x'})
    with pytest.raises(HelmError) as e:
        runner.upgrade(release, namespace, {}, chart_ref='c.tgz')
    assert bad in str(e.value) and str(e.value).startswith('https://h: ')
    with pytest.raises(HelmError):
        runner.uninstall(release, namespace)
    assert fake_helm.calls() == []


@pytest.mark.parametrize('opt,value', [('chart_ref', '--post-renderer=/bin/sh'), ('chart_version', '-1'),
                                       ('chart_repo_url', '--insecure-skip-tls-verify'), ('chart_ref', 'a\nb')])
def test_chart_options_that_look_like_flags_are_refused(fake_helm, opt, value):
    kwargs = {'chart_ref': 'c.tgz'}
    kwargs[opt] = value
    runner = HelmRunner(str(fake_helm), {'host': 'https://h', 'api_key': 'x'})
    with pytest.raises(HelmError, match=opt):
        runner.upgrade('cilium', 'kube-system', {}, **kwargs)
    assert fake_helm.calls() == []


def test_arguments_are_not_expanded(fake_helm, monkeypatch):
    monkeypatch.setenv('HOME', '/home/nobody')
    monkeypatch.setenv('SECRETVAR', 'expanded')
    runner = HelmRunner(str(fake_helm), {'host': 'https://h', 'api_key': 'x'})
    runner.upgrade('cilium', 'kube-system', {}, chart_ref='~/charts/$SECRETVAR.tgz')
    call, = fake_helm.calls()
    assert call['positional'] == ['cilium', '~/charts/$SECRETVAR.tgz']


def test_every_helm_call_has_a_time_limit(tmp_path, monkeypatch):
    slow = tmp_path / 'helm'
    slow.write_text('#!/bin/sh\nsleep 30\n')
    slow.chmod(0o755)
    with pytest.raises(helm.subprocess.TimeoutExpired):
        helm.run_command([str(slow)], timeout=1)
    seen = []

    def stuck(argv, env=None, timeout=None, module=None):
        seen.append(timeout)
        raise helm.subprocess.TimeoutExpired(argv, timeout)
    monkeypatch.setattr(helm, 'run_command', stuck)
    runner = HelmRunner(str(slow), {'host': 'https://h', 'api_key': 'x'})
    with pytest.raises(HelmError, match='did not finish render release kube-system/cilium within 420s'):
        runner.template('cilium', 'kube-system', {}, chart_ref='c.tgz')
    with pytest.raises(HelmError, match='within 180s and was stopped'):
        runner.upgrade('cilium', 'kube-system', {}, chart_ref='c.tgz', timeout=60)
    assert seen == [420, 180]


def test_wait_ready_polls_soon_then_every_interval(monkeypatch):
    """The readiness wait of cilium_install and clustermesh_enable: pauses of 0.5, 0.75, 1.125, 1.6875, then 2 s."""
    reads = iter([False, False, False, False, True])
    now, slept = [0.0], []

    def sleep(s):
        slept.append(s)
        now[0] += s
    monkeypatch.setitem(helm._CHECKS, 'Test', lambda obj: (obj, 'ok' if obj else 'not yet'))
    monkeypatch.setattr(helm, '_read', lambda cluster, kind, ns, name: next(reads))
    out = helm.wait_ready(None, 'kube-system', [('Test', 'x')], timeout=60, interval=2.0,
                          sleep=sleep, clock=lambda: now[0])
    assert out == {'Test/x': 'ok'} and slept == [0.5, 0.75, 1.125, 1.6875]


def test_install_components_with_the_apiserver_ready_or_only_its_address():
    lb = {'clustermesh': {'useAPIServer': True, 'apiserver': {'service': {'type': 'LoadBalancer'}}}}
    base = [('DaemonSet', 'cilium'), ('Deployment', 'cilium-operator')]
    assert helm.install_components(lb) == base + [('Deployment', 'clustermesh-apiserver')]
    assert helm.install_components(lb, load_balancer=True) == base + [
        ('Deployment', 'clustermesh-apiserver'), ('Service', 'clustermesh-apiserver')]
    assert helm.install_components(lb, apiserver='address') == base + [('Service', 'clustermesh-apiserver')]
    node_port = {'clustermesh': {'useAPIServer': True, 'apiserver': {'service': {'type': 'NodePort'}}}}
    assert helm.install_components(node_port, apiserver='address') == base
    assert helm.install_components({'clustermesh': {'useAPIServer': False}}, apiserver='ready') == base
