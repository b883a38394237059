# -*- coding: utf-8 -*-
# Copyright: meshops.cilium contributors
# SPDX-License-Identifier: Apache-2.0
"""Modules whose ``run`` is called in the task's own worker (plugin_utils/described.py, base.run_in_worker)
where the module would run on the controller under its Python: in a real play, with Ansible told to keep
the module files it writes (ANSIBLE_KEEP_REMOTE_FILES), no module file is written for them, while a task
with an ``environment`` (the module's process would have it) still runs a module process; both give the
same result, and secrets stay masked either way."""

import json
import os

SERVER = 'https://127.0.0.1:9'  # nothing listens there
TOKEN = 'token-that-must-not-show'


def kubeconfig_dict(server=SERVER):
    return {'apiVersion': 'v1', 'kind': 'Config', 'current-context': 'mesh-1',
            'clusters': [{'name': 'mesh-1', 'cluster': {'server': server, 'insecure-skip-tls-verify': True}}],
            'users': [{'name': 'mesh-1', 'user': {'token': TOKEN}}],
            'contexts': [{'name': 'mesh-1', 'context': {'cluster': 'mesh-1', 'user': 'mesh-1'}}]}


def module_files(root):
    # this collection's (the play also runs ansible.builtin.copy to keep each result)
    return sorted(f for dirpath, dummy, files in os.walk(root) for f in files
                  if f in ('AnsiballZ_cilium_ca.py', 'AnsiballZ_clustermesh_status.py'))


def test_modules_run_in_the_worker_and_give_the_module_process_answer(tmp_path, play_results):
    remote = tmp_path / 'remote'
    inline = {'kubeconfig': kubeconfig_dict(), 'context': 'mesh-1', 'connect_timeout': 1, 'request_timeout': 2}
    cases = [
        ('ca', {'namespace': 'kube-system'}),
        ('ca_env', {'namespace': 'kube-system'}, {'environment': {'MESHOPS_TEST': '1'}}),
        ('status', {'agent_status': 'skip'}),
        ('status_env', {'agent_status': 'skip'}, {'environment': {'MESHOPS_TEST': '1'}}),
    ]
    modules = {'ca': 'meshops.cilium.cilium_ca', 'status': 'meshops.cilium.clustermesh_status'}
    results = {}
    for key, module in modules.items():
        results.update(play_results(module, [c for c in cases if c[0].startswith(key)],
                                    module_defaults={'group/meshops.cilium.inventory': inline},
                                    env={'ANSIBLE_KEEP_REMOTE_FILES': '1', 'ANSIBLE_REMOTE_TMP': str(remote)}))
    # only the tasks with an environment ran a module process (normal and check mode: two each)
    assert module_files(remote) == ['AnsiballZ_cilium_ca.py'] * 2 + ['AnsiballZ_clustermesh_status.py'] * 2
    for key in modules:
        for check in (False, True):
            worker, process = results[key, check], results[key + '_env', check]
            # the API server does not answer: the same failure, naming the cluster and the server
            assert worker['failed'] is True and process['failed'] is True
            assert worker['msg'] == process['msg'] and worker['msg'].startswith('mesh-1: ') and '127.0.0.1:9' in worker['msg']
            assert worker['cluster'] == process['cluster'] == 'mesh-1'
            assert worker['api_server'] == process['api_server'] == SERVER
            for r in (worker, process):
                assert TOKEN not in json.dumps(r)
