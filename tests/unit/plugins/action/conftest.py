# -*- coding: utf-8 -*-
# Copyright: meshops.cilium contributors
# SPDX-License-Identifier: Apache-2.0
"""One real play for the action-plugin tests: each case's task runs in normal and in check mode, through
ansible-playbook with this checkout as the meshops.cilium collection, and its registered result is read back."""

import json
import os
import subprocess
import sys

import pytest

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))))


@pytest.fixture
def play_results(tmp_path):
    """``play_results(module, cases, module_defaults=None, env=None)``: ``cases`` is a list of (name, args) or of
    (name, args, task keywords such as ``environment``); returns {(name, check_mode): registered result}.
    The play itself must succeed (each task ignores its errors)."""

    def run(module, cases, module_defaults=None, env=None):
        tasks = []
        for case in cases:
            name, args = case[0], case[1]
            keywords = case[2] if len(case) > 2 else {}
            for check in (False, True):
                tasks.append(dict(keywords, name='%s check=%s' % (name, check), check_mode=check, register='r',
                                  ignore_errors=True, **{module: args}))
                tasks.append({'ansible.builtin.copy': {'content': '{{ r | to_json }}',
                                                       'dest': '%s/%s-%s.json' % (tmp_path, name, check)}})
        collections = tmp_path / 'collections' / 'ansible_collections' / 'meshops'
        collections.mkdir(parents=True, exist_ok=True)
        if not (collections / 'cilium').exists():  # a second play of the same test
            (collections / 'cilium').symlink_to(REPO)
        play = {'hosts': 'localhost', 'gather_facts': False, 'tasks': tasks}
        if module_defaults:
            play['module_defaults'] = module_defaults
        (tmp_path / 'play.json').write_text(json.dumps([play]))
        env = dict(os.environ, ANSIBLE_COLLECTIONS_PATH=str(tmp_path / 'collections'), ANSIBLE_NOCOLOR='1',
                   ANSIBLE_LOCALHOST_WARNING='0', **(env or {}))
        proc = subprocess.run(
            [os.path.join(os.path.dirname(sys.executable), 'ansible-playbook'), '-i', 'localhost,', '-c', 'local',
             str(tmp_path / 'play.json'), '-e', 'ansible_python_interpreter=%s' % sys.executable],
            env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, universal_newlines=True, check=False,
            timeout=300)
        assert proc.returncode == 0, proc.stdout
        return dict(((name, check), json.loads((tmp_path / ('%s-%s.json' % (name, check))).read_text()))
                    for name in [c[0] for c in cases] for check in (False, True))

    return run
