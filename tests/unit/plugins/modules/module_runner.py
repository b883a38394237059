# -*- coding: utf-8 -*-
# Copyright: meshops.cilium contributors
# SPDX-License-Identifier: Apache-2.0
"""Run a module's main() in-process and get what it would have returned."""

import json

import pytest

from ansible.module_utils import basic
from ansible.module_utils.common.text.converters import to_bytes


class Exit(Exception):
    pass


class Fail(Exception):
    pass


def set_module_args(monkeypatch, args):
    monkeypatch.setattr(basic, '_ANSIBLE_ARGS', to_bytes(json.dumps({'ANSIBLE_MODULE_ARGS': args})))
    if hasattr(basic, '_ANSIBLE_PROFILE'):  # ansible-core >= 2.19
        monkeypatch.setattr(basic, '_ANSIBLE_PROFILE', 'legacy')


def module_runner(monkeypatch, main):
    """``run(args) -> (ok, result)``: ``main`` run with ``args``; exit_json/fail_json raise."""
    def exit_json(self, **kw):
        raise Exit(kw)

    def fail_json(self, **kw):
        raise Fail(kw)
    monkeypatch.setattr(basic.AnsibleModule, 'exit_json', exit_json)
    monkeypatch.setattr(basic.AnsibleModule, 'fail_json', fail_json)

    def run(args):
        set_module_args(monkeypatch, args)
        with pytest.raises((Exit, Fail)) as ei:
            main()
        return ei.type is Exit, ei.value.args[0]
    return run
