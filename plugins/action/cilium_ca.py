# -*- coding: utf-8 -*-
# Copyright: meshops.cilium contributors
# SPDX-License-Identifier: Apache-2.0
"""Action plugin of ``meshops.cilium.cilium_ca``: where the module would run on the controller under its own
Python (local connection, no task ``environment``, no ``become``), its ``run`` is called in the task's
worker instead of a module process; otherwise the module runs as usual (``plugin_utils/described.py``)."""

from ansible_collections.meshops.cilium.plugins.modules.cilium_ca import ARGUMENT_SPEC, run
from ansible_collections.meshops.cilium.plugins.plugin_utils.described import WorkerAction


class ActionModule(WorkerAction):

    def worker_run(self):
        return run, ARGUMENT_SPEC
