# -*- coding: utf-8 -*-
# Copyright: meshops.cilium contributors
# SPDX-License-Identifier: Apache-2.0
"""Filter mesh_services_check, and playbooks/services.yml (role services) in a real ansible-playbook run against
the fake API server: bad input anywhere in the mesh stops before any cluster is read or written."""

import json
import os
import subprocess
import sys

import pytest

from ansible_collections.meshops.cilium.plugins.filter.services import FilterModule, mesh_services_check
from ansible_collections.meshops.cilium.plugins.module_utils.errors import MeshopsValueError

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))))
ECHO = {'name': 'echo', 'namespace': 'demo', 'selector': {'app': 'echo'}, 'ports': [{'name': 'http', 'port': 80}],
        'affinity': 'local'}


def test_filter_is_registered_and_checks_members():
    assert FilterModule().filters()['mesh_services_check'] is mesh_services_check
    with pytest.raises(MeshopsValueError, match='members must be a list of cluster names'):
        mesh_services_check([ECHO], [], 'mesh-1')
    out = mesh_services_check([ECHO], [], ['mesh-1', 'mesh-2'])
    assert out['problems'] == [] and [s['name'] for s in out['services']['mesh-2']] == ['echo']


def _play(tmp_path, apiserver, services, extra_args=()):
    collections = tmp_path / 'collections' / 'ansible_collections' / 'meshops'
    collections.mkdir(parents=True, exist_ok=True)
    if not (collections / 'cilium').exists():
        (collections / 'cilium').symlink_to(REPO)
    kubeconfig = apiserver.kubeconfig('mesh-1')
    # two contexts on the one fake API server
    kubeconfig['contexts'].append({'name': 'mesh-2', 'context': {'cluster': 'mesh-1', 'user': 'mesh-1'}})
    (tmp_path / 'kubeconfig').write_text(json.dumps(kubeconfig))
    inventory = {'mesh': {'hosts': {'mesh-1': {}, 'mesh-2': {}}, 'vars': {
        'ansible_connection': 'local', 'ansible_python_interpreter': sys.executable,
        'meshops_kubeconfig': str(tmp_path / 'kubeconfig'), 'meshops_global_services': services}}}
    (tmp_path / 'inventory.json').write_text(json.dumps(inventory))
    env = dict(os.environ, ANSIBLE_COLLECTIONS_PATH=str(tmp_path / 'collections'), ANSIBLE_NOCOLOR='1')
    return subprocess.run(
        [os.path.join(os.path.dirname(sys.executable), 'ansible-playbook'), '-i', str(tmp_path / 'inventory.json'),
         os.path.join(REPO, 'playbooks', 'services.yml')] + list(extra_args),
        env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, universal_newlines=True, check=False, timeout=300)


def test_playbook_stops_on_bad_input_in_one_cluster_before_any_request(tmp_path, apiserver):
    bad = dict(ECHO, affinity={'mesh-1': 'local', 'mesh-2': 'loacl'})
    proc = _play(tmp_path, apiserver, [bad])
    assert proc.returncode != 0, proc.stdout
    assert "cluster mesh-2, Service demo/echo: field affinity must be one of local, remote, none, got 'loacl'" in proc.stdout
    assert apiserver.requests == [] and apiserver.writes == []


def test_playbook_check_mode_reads_every_cluster_and_writes_nothing(tmp_path, apiserver):
    proc = _play(tmp_path, apiserver, [ECHO], ['--check'])
    assert proc.returncode == 0, proc.stdout
    assert apiserver.writes == []
    reads = [path for path, dummy in apiserver.requests if path.startswith('/api/v1/namespaces/demo/services/echo')]
    assert len(reads) == 2  # one per cluster
    assert 'changed=1' in proc.stdout
