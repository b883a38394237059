# -*- coding: utf-8 -*-
# Copyright: meshops.cilium contributors
# SPDX-License-Identifier: Apache-2.0
"""Action plugin of ``meshops.cilium.clustermesh_info``: a task with ``members`` describes its clusters
on the controller, in the task's own worker process, when the module would run there anyway (local
connection, the controller's own Python, no task ``environment``): the same reads, side by side, without
a module process (a Python start, ansible-core's module start and the module's imports: about half a second
on every run). Anything else, and every task without ``members``, runs the module. Both run
``module_utils/info.py`` (``members_answer``; the module through ``ClusterModule.read_members``); the rest
is ``plugin_utils/described.py``."""

from ansible.module_utils.common.parameters import remove_values

from ansible_collections.meshops.cilium.plugins.module_utils.base import cluster_argument_spec
from ansible_collections.meshops.cilium.plugins.module_utils.cluster import module_user_agent
from ansible_collections.meshops.cilium.plugins.module_utils.info import INFO_ARGUMENT_SPEC, members_answer
from ansible_collections.meshops.cilium.plugins.plugin_utils.described import (
    ControllerAnswerAction,
    controller_python,
    remove_loader_files,
)


class ActionModule(ControllerAnswerAction):

    def wants_answer(self, task_vars):
        # the module's process would have the task's environment and its interpreter's libraries
        return bool(self._task.args.get('members')) and controller_python(self, task_vars)

    def full_argument_spec(self):
        return cluster_argument_spec(INFO_ARGUMENT_SPEC)

    def answer(self, params):
        try:
            answered = members_answer(params, module_user_agent('clustermesh_info'))
        finally:
            remove_loader_files()
        if answered is None:
            return None
        result, secrets = answered
        return remove_values(result, secrets)
