# -*- coding: utf-8 -*-
# Copyright: meshops.cilium contributors
# SPDX-License-Identifier: Apache-2.0
"""The action plugin of clustermesh_info in a real play, against a fake API server: a task with ``members``
is answered in the task's worker on the controller, and that answer is the module's own (the same task with
a task ``environment`` runs the module) — the same descriptors, the failed member named, the same warnings,
the task's own connection named — with every token masked; without members the module runs."""

import base64
import json
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), 'modules'))

from test_clustermesh_info import install_cilium  # noqa: E402  pylint: disable=wrong-import-position


def test_members_are_described_on_the_controller_as_the_module_describes_them(tmp_path, apiserver, play_results):
    install_cilium(apiserver)
    path = tmp_path / 'kubeconfig-two'
    path.write_text(json.dumps(apiserver.kubeconfig('ctx-two', token='tok-two-in-a-file')))
    # certificate data: written to a private file for the TLS library, removed when the member is read
    inline = apiserver.kubeconfig('mesh-1', token='tok-one-inline', with_ca=False)
    inline['clusters'][0]['cluster']['certificate-authority-data'] = base64.b64encode(
        apiserver.ca_path.read_bytes()).decode()
    members = [{'name': 'mesh-1', 'kubeconfig': inline},
               {'name': 'inventory_host.2', 'context': 'ctx-two', 'kubeconfig': str(path)},
               {'name': 'mesh-3', 'context': 'nope', 'kubeconfig': str(path)}]
    args = {'members': members, 'read_status': False}
    tmp_dir = tmp_path / 'tmp'
    tmp_dir.mkdir()
    own = {'kubeconfig': str(path), 'context': 'ctx-two'}  # the task's own connection (module_defaults in a role)
    before = len(apiserver.requests)
    results = play_results('meshops.cilium.clustermesh_info', [
        ('controller', dict(args, **own)),
        ('module', dict(args, **own), {'environment': {'MESHOPS_UNIT_TEST': '1'}}),
        ('one_cluster', {'kubeconfig': str(path), 'context': 'ctx-two'})],
        # every module process leaves its AnsiballZ file here
        env={'ANSIBLE_KEEP_REMOTE_FILES': '1', 'ANSIBLE_REMOTE_TMP': str(tmp_path / 'remote'),
             'TMPDIR': str(tmp_dir)})
    # a worker process runs no exit handler before Python 3.12: no private file may be left for one
    assert [f for f in os.listdir(str(tmp_dir)) if f.startswith('meshops-tls-')] == []
    started = [f for dummy, dummy, files in os.walk(str(tmp_path / 'remote')) for f in files
               if f == 'AnsiballZ_clustermesh_info.py']
    assert len(started) == 4  # 'module' and 'one_cluster', each in normal and check mode: not 'controller'
    tokens = [auth for _path, auth in apiserver.requests[before:]]
    assert 'Bearer tok-one-inline' in tokens and 'Bearer tok-two-in-a-file' in tokens
    for check in (False, True):
        here, there = results['controller', check], results['module', check]
        assert 'invocation' not in here and here['failed'] is False, here
        assert 'tok-' not in json.dumps(here) and 'tok-' not in json.dumps(there)
        assert sorted(here['members']) == ['inventory_host.2', 'mesh-1', 'mesh-3']
        assert here['members'] == there['members']
        assert here['members']['mesh-1']['installed'] is True and here['members']['mesh-1']['cluster_name'] == 'mesh-1'
        assert here['members']['inventory_host.2']['connection']['context'] == 'ctx-two'
        failed = here['members']['mesh-3']
        assert failed['failed'] is True and failed['msg'].startswith('mesh-3: ') and '"nope"' in failed['msg']
        for key in ('changed', 'cluster', 'api_server', 'connection'):
            assert here[key] == there[key], key
        assert [str(w) for w in here.get('warnings', [])] == [str(w) for w in there.get('warnings', [])]
        assert results['one_cluster', check]['installed'] is True  # no members: the module
