# -*- coding: utf-8 -*-
# Copyright: meshops.cilium contributors
# SPDX-License-Identifier: Apache-2.0
"""Action plugin of ``meshops.cilium.cilium_install``: with ``release_described`` showing the release
already deployed with the chart version and values this task would give Helm, the task's answer
(unchanged) is given on the controller, without a module process (about 1.2 s of CPU) and without a
request; otherwise, and whenever in doubt, the module runs as usual. The decision is
``module_utils/install.py``'s ``unchanged_by_description``, on the task's options validated against
the module's own argument spec."""

from ansible.plugins.action import ActionBase
from ansible.utils.vars import merge_hash


class ActionModule(ActionBase):

    _supports_check_mode = True
    _supports_async = True

    def run(self, tmp=None, task_vars=None):
        result = super(ActionModule, self).run(tmp, task_vars)
        del tmp  # no effect since ansible-core 2.5
        wrap_async = self._task.async_val and not self._connection.has_native_async
        answer = None
        if self._task.args.get('release_described') and not wrap_async:
            answer = self._described_answer(dict(self._task.args))
        if answer is not None:
            return merge_hash(result, answer)
        result = merge_hash(result, self._execute_module(task_vars=task_vars, wrap_async=wrap_async))
        if not wrap_async:
            self._remove_tmp_path(self._connection._shell.tmpdir)
        return result

    @staticmethod
    def _described_answer(args):
        # imported here: a task without release_described pays nothing for it
        from ansible.module_utils.common.arg_spec import ArgumentSpecValidator
        from ansible_collections.meshops.cilium.plugins.module_utils.base import cluster_argument_spec
        from ansible_collections.meshops.cilium.plugins.module_utils.install import (
            INSTALL_ARGUMENT_SPEC,
            unchanged_by_description,
        )
        # the spec ClusterModule gives the module: the connection options and the module's own
        validated = ArgumentSpecValidator(cluster_argument_spec(INSTALL_ARGUMENT_SPEC)).validate(args)
        if validated.error_messages:
            return None  # the module reports them
        params = validated.validated_parameters
        return unchanged_by_description(params, params.get('release_described'))
