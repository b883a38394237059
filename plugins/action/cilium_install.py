# -*- coding: utf-8 -*-
# Copyright: meshops.cilium contributors
# SPDX-License-Identifier: Apache-2.0
"""Action plugin of ``meshops.cilium.cilium_install``: with ``release_described`` showing the release
already deployed with the chart version and values this task would give Helm, the task's answer
(unchanged) is given on the controller, without a module process (about 1.2 s of CPU) and without a
request; otherwise, and whenever in doubt, the module runs as usual (in the task's worker where it would run
on the controller under its Python). The decision is
``module_utils/install.py``'s ``unchanged_by_description``; the rest is ``plugin_utils/described.py``."""

from ansible_collections.meshops.cilium.plugins.module_utils.install import INSTALL_ARGUMENT_SPEC, unchanged_by_description
from ansible_collections.meshops.cilium.plugins.modules.cilium_install import run
from ansible_collections.meshops.cilium.plugins.plugin_utils.described import DescribedAnswerAction


class ActionModule(DescribedAnswerAction):

    DESCRIBED_OPTION = 'release_described'

    @staticmethod
    def argument_spec():
        return INSTALL_ARGUMENT_SPEC

    @staticmethod
    def described_answer(params):
        return unchanged_by_description(params, params.get('release_described'))

    def worker_run(self):
        return run, INSTALL_ARGUMENT_SPEC
