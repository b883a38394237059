# -*- coding: utf-8 -*-
# Copyright: meshops.cilium contributors
# SPDX-License-Identifier: Apache-2.0
"""The Galaxy tarball built from a developer's working tree.

A copy of the working tree (git's view: tracked and untracked files, not ignored ones) gets
secret-bearing files planted where developers' tools put them (a second fleet folder with its
PKI, kubeconfigs, ansible-lint's cache, build output, virtual environments, test output) and one
file for every line of .gitignore. ``ansible-galaxy collection build`` runs there; the tarball
must hold none of them, nothing git ignores, and nothing that needs the excluded developer
tooling. The tarball is then installed into an empty collections path, and its playbooks are
run by their full names from there alone: a syntax check of every shipped playbook and one real
run of ``meshops.cilium.preflight`` that must refuse bad input by name (no cluster, no network).

Runs only from a git checkout (the tarball's own copy of this file skips).
"""

import json
import os
import re
import shutil
import subprocess
import sys
import tarfile

import pytest
import yaml

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
BIN = os.path.dirname(sys.executable)
GALAXY = os.path.join(BIN, 'ansible-galaxy')
PLAYBOOK = os.path.join(BIN, 'ansible-playbook')
SECRET = 'meshops-planted-secret\n'

# Where developers' tools write credentials or their own state, relative to the tree's root.
PLANTED = [
    '.fleet/kubeconfig',
    '.fleet/state.json',
    '.fleet-shard1/pki/ca.key',
    '.fleet-shard1/mesh-1/kubeconfig-meshops-automation',
    '.ansible/tmp/x',
    '.ansible/collections/ansible_collections/meshops/cilium/galaxy.yml',
    'build/collections/x',
    'build/bench/fleet/pki/ca.key',
    '.venv/lib/x.py',
    '.venv-foo/x',
    'tests/output/junit/x.xml',
    '.pytest_cache/v/cache/lastfailed',
    'plugins/modules/__pycache__/cilium_ca.cpython-313.pyc',
    'plugins/module_utils/x.pyc',
    'meshops-cilium-0.0.1.tar.gz',
    'molecule/default/.cache/x',
]
# Developer tooling, and what cannot run without it or the local fleet it starts.
TOOLING = ('hack/', '.ci/', 'Makefile', 'benchmarks/', 'tests/integration/', 'tests/unit/hack/',
           'molecule/default/', 'inventories/local/', 'inventories/local-kubeconfig/')
IMPORTS_TOOLING = re.compile(r'^(from|import) (hack|benchmarks)\b', re.MULTILINE)


def _git(*args, **kwargs):
    return subprocess.run(['git', '-C', REPO] + list(args), check=True, stdout=subprocess.PIPE,
                          stderr=subprocess.PIPE, **kwargs).stdout


def _in_git_checkout():
    if not shutil.which('git'):
        return False
    try:
        return _git('rev-parse', '--show-toplevel').decode().strip() == os.path.realpath(REPO)
    except (subprocess.CalledProcessError, OSError):
        return False


pytestmark = [
    pytest.mark.skipif(not _in_git_checkout(), reason='builds the tarball from a git checkout only'),
    pytest.mark.skipif(not (os.path.exists(GALAXY) and os.path.exists(PLAYBOOK)),
                       reason='ansible-galaxy / ansible-playbook not next to this Python'),
]


def _gitignore_samples():
    """One path per .gitignore line that git ignores: at the root and, for a pattern that
    applies at any depth, below plugins/ too."""
    samples = []
    with open(os.path.join(REPO, '.gitignore')) as f:
        for line in f:
            pattern = line.strip()
            if not pattern or pattern.startswith(('#', '!')):
                continue
            is_dir = pattern.endswith('/')
            body = pattern.strip('/')
            anchored = pattern.startswith('/') or '/' in body
            name = body.replace('**', 'x').replace('*', 'x').replace('?', 'x')
            paths = [name] if anchored else [name, 'plugins/modules/' + name]
            samples += [p + '/planted-secret' if is_dir else p for p in paths]
    return samples


def _tree_files():
    out = _git('ls-files', '-z', '--cached', '--others', '--exclude-standard')
    return [p for p in out.decode().split('\0') if p and os.path.isfile(os.path.join(REPO, p))]


def _env(collections):
    env = dict(os.environ)
    for name in list(env):
        if name.startswith('ANSIBLE_'):
            del env[name]
    env.update({
        'ANSIBLE_COLLECTIONS_PATH': collections,
        'ANSIBLE_COLLECTIONS_SCAN_SYS_PATH': 'false',
        # an empty configuration: nothing from the developer's ansible.cfg or ~/.ansible.cfg
        'ANSIBLE_CONFIG': os.path.join(collections, '..', 'ansible.cfg'),
        'ANSIBLE_NOCOLOR': '1',
        'ANSIBLE_FORCE_COLOR': '0',
        'ANSIBLE_LOCAL_TEMP': os.path.join(collections, '..', 'tmp'),
        'ANSIBLE_HOME': os.path.join(collections, '..', 'home'),
        'ANSIBLE_GALAXY_SERVER': 'http://127.0.0.1:9/',
    })
    env.pop('PYTHONPATH', None)
    return env


def _run(argv, cwd, env):
    proc = subprocess.run(argv, cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                          timeout=300, check=False)
    return proc.returncode, proc.stdout.decode('utf-8', 'replace')


@pytest.fixture(scope='module')
def built(tmp_path_factory):
    """(tarball path, its member names, the planted paths) from a planted copy of the tree."""
    base = tmp_path_factory.mktemp('build')
    (base / 'ansible.cfg').write_text('[defaults]\n')
    tree = base / 'tree'
    for rel in _tree_files():
        target = tree / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(os.path.join(REPO, rel), str(target))
    planted = sorted(set(PLANTED + _gitignore_samples()))
    for rel in planted:
        target = tree / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(SECRET)
    out = base / 'dist'
    rc, log = _run([GALAXY, 'collection', 'build', '--output-path', str(out), str(tree)], str(base),
                   _env(str(base / 'collections')))
    assert rc == 0, 'ansible-galaxy collection build failed:\n' + log
    tarballs = list(out.glob('meshops-cilium-*.tar.gz'))
    assert len(tarballs) == 1, log
    with tarfile.open(str(tarballs[0])) as tar:
        members = [m.name[2:] if m.name.startswith('./') else m.name for m in tar.getmembers()]
        files = {m.name: tar.extractfile(m).read() for m in tar.getmembers() if m.isfile()}
    return {'tarball': str(tarballs[0]), 'members': members, 'files': files, 'planted': planted,
            'base': base}


def test_the_planted_files_stay_out_of_the_tarball(built):
    leaked = [rel for rel in built['planted'] if rel in built['members']]
    assert not leaked, 'planted files reached the tarball (add them to build_ignore in galaxy.yml): ' \
        + ', '.join(leaked)
    carrying = sorted(name for name, data in built['files'].items() if SECRET.encode() in data)
    assert not carrying, 'tarball members carry a planted secret: ' + ', '.join(carrying)


def test_nothing_git_ignores_reaches_the_tarball(built):
    names = [m for m in built['members'] if m not in ('MANIFEST.json', 'FILES.json')]
    proc = subprocess.run(['git', '-C', REPO, 'check-ignore', '--no-index', '--stdin', '-z'],
                          input='\0'.join(names).encode(), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                          check=False)
    assert proc.returncode in (0, 1), proc.stderr.decode()
    ignored = [p for p in proc.stdout.decode().split('\0') if p]
    assert not ignored, 'paths .gitignore names reached the tarball (add them to build_ignore): ' \
        + ', '.join(ignored)


def test_the_tarball_holds_nothing_that_needs_the_developer_tooling(built):
    tooling = [m for m in built['members'] if m.startswith(TOOLING) or m + '/' in TOOLING]
    assert not tooling, 'developer tooling or what needs it reached the tarball: ' + ', '.join(tooling)
    needs = sorted(name for name, data in built['files'].items()
                   if name.endswith('.py') and IMPORTS_TOOLING.search(data.decode('utf-8', 'replace')))
    assert not needs, 'these tarball files import hack/ or benchmarks/, which are not in it: ' + ', '.join(needs)


def test_the_tarball_holds_the_collection(built):
    members = set(built['members'])
    for rel in ('LICENSE', 'README.md', 'meta/runtime.yml', 'meta/execution-environment.yml',
                'execution-environment.yml', 'requirements.txt', 'plugins/modules/clustermesh_info.py',
                'roles/preflight/tasks/main.yml', 'plugins/inventory/kubeconfig.py'):
        assert rel in members, rel + ' is missing from the tarball'
    shipped = sorted(p for p in os.listdir(os.path.join(REPO, 'playbooks')) if p.endswith('.yml'))
    assert shipped and all('playbooks/' + p in members for p in shipped)
    manifest = json.loads(built['files']['MANIFEST.json'])
    assert manifest['collection_info']['license'] == ['Apache-2.0']


def test_installed_tarball_runs_its_playbooks_by_full_name(built):
    base = built['base']
    collections = base / 'installed'
    env = _env(str(collections))
    run_dir = base / 'run'
    run_dir.mkdir()
    rc, log = _run([GALAXY, 'collection', 'install', '--offline', '--force', '-p', str(collections),
                    built['tarball']], str(run_dir), env)
    assert rc == 0, 'ansible-galaxy collection install failed:\n' + log
    installed = collections / 'ansible_collections' / 'meshops' / 'cilium'
    assert (installed / 'MANIFEST.json').is_file(), log

    playbooks = sorted('meshops.cilium.' + p[:-len('.yml')] for p in os.listdir(str(installed / 'playbooks'))
                       if p.endswith('.yml'))
    assert 'meshops.cilium.preflight' in playbooks

    # Bad input on a localhost inventory: cluster ID 0 and a kubeconfig that does not exist. The
    # preflight must read nothing over the network and name both problems with their fields.
    inventory = run_dir / 'hosts.yml'
    inventory.write_text(yaml.safe_dump({'mesh': {
        'hosts': {'east': {'cilium_cluster_id': 0}},
        'vars': {'ansible_connection': 'local',
                 'ansible_python_interpreter': sys.executable,
                 'meshops_kubeconfig': str(run_dir / 'missing-kubeconfig')}}}))
    # Both runs at once: they are independent and mostly start-up time.
    syntax = subprocess.Popen([PLAYBOOK, '--syntax-check'] + playbooks, cwd=str(run_dir), env=env,
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    rc, log = _run([PLAYBOOK, '-i', str(inventory), 'meshops.cilium.preflight'], str(run_dir), env)
    syntax_log = syntax.communicate(timeout=300)[0].decode('utf-8', 'replace')

    assert syntax.returncode == 0, 'syntax check of the installed playbooks failed:\n' + syntax_log
    for name in playbooks:
        path = str(installed / 'playbooks' / (name.rsplit('.', 1)[1] + '.yml'))
        assert 'playbook: ' + path in syntax_log, name + ' was not found in the installed collection:\n' + syntax_log

    assert rc == 2, 'preflight with bad input should fail (exit 2), got %d:\n%s' % (rc, log)
    assert 'preflight found 2 error(s)' in log, log
    assert 'cilium_cluster_id' in log and 'cluster ID 0' in log, log
    assert 'missing-kubeconfig does not exist' in log, log
    assert 'Traceback' not in log, log
