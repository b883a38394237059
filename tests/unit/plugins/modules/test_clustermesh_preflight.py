# -*- coding: utf-8 -*-
# Copyright: meshops.cilium contributors
# SPDX-License-Identifier: Apache-2.0
"""clustermesh_preflight: the module's argument handling, result and failure (no cluster)."""

import os
import re
import subprocess
import sys

import pytest
import yaml

from module_runner import module_runner

from ansible_collections.meshops.cilium.plugins.modules import clustermesh_preflight

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))))


@pytest.fixture
def run_module(monkeypatch):
    return module_runner(monkeypatch, clustermesh_preflight.main)


def cluster(i, **kw):
    c = {'host': 'mesh-%d' % i, 'cluster_name': 'mesh-%d' % i, 'cluster_id': i, 'max_connected_clusters': 255,
         'routing_mode': 'tunnel', 'chart_version': '1.19.2', 'kube_proxy_replacement': False,
         'info': {'installed': False, 'nodes': [], 'pod_cidrs': []}}
    c.update(kw)
    return c


def test_a_good_mesh_passes(run_module):
    ok, res = run_module({'clusters': [cluster(1), cluster(2)], 'ca_source': 'mesh-1'})
    assert ok and res['changed'] is False and res['problems'] == [] and res['errors'] == 0
    assert res['msg'] == 'preflight passed for 2 clusters'


def test_warnings_do_not_fail(run_module):
    ok, res = run_module({'clusters': [cluster(1, service_cidrs=['10.96.0.0/12']),
                                       cluster(2, service_cidrs=['10.96.0.0/12'])]})
    assert ok and res['errors'] == 0 and res['warning_count'] == 1
    assert [(p['cluster'], p['field'], p['severity']) for p in res['problems']] == [
        ('mesh-2', 'cilium_service_cidr', 'warning')]
    assert 'preflight passed for 2 clusters with 1 warning(s)' in res['msg'] and 'mesh-2' in res['table']


def test_all_errors_at_once_as_a_table(run_module):
    ok, res = run_module({'clusters': [
        cluster(1, cluster_name='default'),
        cluster(2, cluster_id='0', kube_proxy_replacement='strict'),
        cluster(3, cluster_id=2, info={'failed': True, 'msg': 'mesh-3: connection refused'}),
    ]})
    assert not ok and res['errors'] == 4
    assert res['msg'].startswith('preflight found 4 error(s) and 0 warning(s) in 3 of 3 clusters; nothing was changed')
    assert res['table'] in res['msg']
    fields = [(p['cluster'], p['field']) for p in res['problems']]
    assert sorted(fields) == [('mesh-1', 'cilium_cluster_name'), ('mesh-2', 'cilium_cluster_id'),
                              ('mesh-2', 'cilium_kube_proxy_replacement'),
                              ('mesh-3', 'meshops_kubeconfig/meshops_context')]
    for p in res['problems']:
        assert p['cluster'] in res['msg'] and p['fix'] in res['msg']


def test_a_missing_host_is_an_argument_error_not_a_traceback(run_module):
    ok, res = run_module({'clusters': [{'cluster_id': 1}]})
    assert not ok and 'host' in res['msg']


def test_role_defaults_mirror_the_cilium_role():
    """roles/preflight falls back to the cilium role's defaults; they must not drift apart."""
    with open(os.path.join(REPO, 'roles', 'preflight', 'defaults', 'main.yml')) as f:
        mirrored = yaml.safe_load(f)['preflight_cilium_defaults']
    with open(os.path.join(REPO, 'roles', 'cilium', 'defaults', 'main.yml')) as f:
        cilium = yaml.safe_load(f)
    with open(os.path.join(REPO, 'roles', 'cilium', 'vars', 'main.yml')) as f:
        cilium.update(yaml.safe_load(f))
    for key, value in mirrored.items():
        assert key in cilium, key
        assert cilium[key] == value, key


def _play_hosts(playbook, inventory, *extra):
    """[(play name, [hosts])] of ``ansible-playbook --list-hosts``: the plays as Ansible resolves them."""
    collections = os.path.join(os.path.dirname(inventory), 'collections')
    link = os.path.join(collections, 'ansible_collections', 'meshops', 'cilium')
    if not os.path.islink(link):
        os.makedirs(os.path.dirname(link))
        os.symlink(REPO, link)
    proc = subprocess.run(
        [os.path.join(os.path.dirname(sys.executable), 'ansible-playbook'), '-i', inventory,
         os.path.join(REPO, 'playbooks', playbook), '--list-hosts'] + list(extra),
        env=dict(os.environ, ANSIBLE_COLLECTIONS_PATH=collections, ANSIBLE_NOCOLOR='1'),
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, universal_newlines=True, check=False, timeout=120)
    assert proc.returncode == 0, proc.stdout
    plays = []
    for line in proc.stdout.splitlines():
        m = re.match(r'\s+play #\d+ \([^)]*\): (.*?)\tTAGS', line)
        if m:
            plays.append((m.group(1), []))
        elif plays and re.match(r'^\s{6}\S', line):
            plays[-1][1].append(line.strip())
    return [(name, sorted(hosts)) for name, hosts in plays]


def test_site_runs_the_preflight_first_and_once(tmp_path):
    inventory = tmp_path / 'hosts.yml'
    inventory.write_text('mesh:\n  hosts:\n    mesh-1:\n    mesh-2:\n')
    plays = _play_hosts('site.yml', str(inventory))
    assert plays[0] == ('Preflight the ClusterMesh', ['mesh-1', 'mesh-2'])
    # install.yml's own preflight has no hosts in site.yml (not even skipped tasks), the install play has all
    assert plays[1] == ('Preflight the ClusterMesh', [])
    assert plays[2] == ('Install Cilium on every cluster of the mesh', ['mesh-1', 'mesh-2'])
    assert [p for p, dummy in plays].count('Preflight the ClusterMesh') == 2
    # install.yml alone runs it; -e meshops_preflight=false leaves it out there too
    alone = _play_hosts('install.yml', str(inventory))
    assert alone[0] == ('Preflight the ClusterMesh', ['mesh-1', 'mesh-2'])
    assert _play_hosts('install.yml', str(inventory), '-e', 'meshops_preflight=false')[0] == (
        'Preflight the ClusterMesh', [])
