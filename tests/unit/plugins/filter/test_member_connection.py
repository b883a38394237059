# -*- coding: utf-8 -*-
# Copyright: meshops.cilium contributors
# SPDX-License-Identifier: Apache-2.0
"""How the roles reach a cluster: one rule (filter member_connection) and one place per role
(module_defaults of group inventory), checked on the role files and in a real ansible-playbook run."""

import glob
import json
import os
import subprocess
import sys

import pytest
import yaml

from ansible_collections.meshops.cilium.plugins.filter.connection import member_connection

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))))
HOSTVARS = {
    'own': {'meshops_kubeconfig': '/own/kubeconfig', 'meshops_context': 'own-context'},
    'bare': {'cilium_cluster_id': 2},
}


@pytest.mark.parametrize('name, expected', [
    ('own', {'kubeconfig': '/own/kubeconfig', 'context': 'own-context'}),
    ('bare', {'kubeconfig': '/role/kubeconfig', 'context': 'bare'}),
    # a member the inventory does not hold (meshops_mesh_members of a job slice)
    ('absent', {'kubeconfig': '/role/kubeconfig', 'context': 'absent'}),
])
def test_a_members_own_variables_win_else_the_roles_kubeconfig_and_its_name(name, expected):
    assert member_connection(name, HOSTVARS, '/role/kubeconfig') == expected


def test_without_a_kubeconfig_anywhere_none_is_named():
    assert member_connection('bare', HOSTVARS) == {'kubeconfig': None, 'context': 'bare'}


def _module_tasks(tasks):
    for task in tasks or []:
        for key in ('block', 'rescue', 'always'):
            yield from _module_tasks(task.get(key))
        if any(k.startswith('meshops.cilium.') for k in task):
            yield task


def test_role_tasks_set_no_connection_of_their_own():
    """The connection comes from the module_defaults of the role's block (or of the task that reaches
    another member), never from kubeconfig/context options repeated in each task."""
    files = sorted(glob.glob(os.path.join(REPO, 'roles', '*', 'tasks', '*.yml')))
    assert files
    for path in files:
        with open(path) as f:
            for task in _module_tasks(yaml.safe_load(f)):
                module = [k for k in task if k.startswith('meshops.cilium.')][0]
                args = task[module] or {}
                assert not {'kubeconfig', 'context'} & set(args), (path, task['name'])


def test_the_roles_group_holds_every_module_of_group_cluster():
    with open(os.path.join(REPO, 'meta', 'runtime.yml')) as f:
        groups = yaml.safe_load(f)['action_groups']
    assert groups['inventory'] == [{'metadata': {'extend_group': ['cluster']}}]


PLAY = [{
    'hosts': 'all', 'gather_facts': False, 'connection': 'local',
    # a play's own defaults for group cluster: still reach tasks that set group inventory
    'module_defaults': {'group/meshops.cilium.cluster': {'kubeconfig': '/play/kubeconfig', 'context': 'play'}},
    'tasks': [{
        'name': 'Reach this host',
        'module_defaults': {'group/meshops.cilium.inventory': {
            'kubeconfig': '{{ meshops_kubeconfig | default(omit) }}', 'context': '{{ inventory_hostname }}'}},
        'block': [
            {'name': 'this host', 'meshops.cilium.ipsec_keys_info': {}, 'ignore_errors': True, 'register': 'own'},
            {'name': 'every member', 'meshops.cilium.ipsec_keys_info': {}, 'ignore_errors': True,
             'register': 'members', 'loop': ['own', 'bare', 'absent'],
             'module_defaults': {'group/meshops.cilium.inventory':
                                 "{{ item | meshops.cilium.member_connection(hostvars, '/role/kubeconfig') }}"}},
            {'name': 'results', 'ansible.builtin.copy': {
                'content': "{{ {'own': own.msg, 'members': members.results | map(attribute='msg') | list} | to_json }}",
                'dest': '{{ out }}/{{ inventory_hostname }}.json'}},
        ],
    }],
}]


def test_in_a_play_each_task_reaches_the_cluster_the_inventory_names(tmp_path):
    """No cluster: the modules fail on the kubeconfig file they were given, which names it."""
    collections = tmp_path / 'collections' / 'ansible_collections' / 'meshops'
    collections.mkdir(parents=True)
    (collections / 'cilium').symlink_to(REPO)
    (tmp_path / 'inventory.json').write_text(json.dumps({'all': {'hosts': {
        'own': HOSTVARS['own'], 'bare': HOSTVARS['bare']}}}))
    (tmp_path / 'play.json').write_text(json.dumps(PLAY))
    env = dict(os.environ, ANSIBLE_COLLECTIONS_PATH=str(tmp_path / 'collections'), ANSIBLE_NOCOLOR='1')
    proc = subprocess.run(
        [os.path.join(os.path.dirname(sys.executable), 'ansible-playbook'), '-i', str(tmp_path / 'inventory.json'),
         str(tmp_path / 'play.json'), '-e', 'out=%s' % tmp_path, '-e', 'ansible_python_interpreter=%s' % sys.executable],
        env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, universal_newlines=True, check=False, timeout=300)
    assert proc.returncode == 0, proc.stdout
    got = {h: json.loads((tmp_path / ('%s.json' % h)).read_text()) for h in ('own', 'bare')}
    members = ['own-context: kubeconfig file /own/kubeconfig does not exist',
               'bare: kubeconfig file /role/kubeconfig does not exist',
               'absent: kubeconfig file /role/kubeconfig does not exist']
    assert got['own'] == {'own': 'own: kubeconfig file /own/kubeconfig does not exist', 'members': members}
    # omit replaces the play's kubeconfig too (as a task option set to omit did): the default file is read
    assert got['bare']['own'].startswith('bare: kubeconfig file ') and '/play/kubeconfig' not in got['bare']['own']
    assert got['bare']['members'] == members
