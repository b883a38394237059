# -*- coding: utf-8 -*-
# Copyright: meshops.cilium contributors
# SPDX-License-Identifier: Apache-2.0
"""The action plugins of modules that can answer "unchanged" from this run's description of a
cluster, on the controller, without a module process (about 1.2 s of CPU each) and without a request.

A subclass names the option that carries the description (``DESCRIBED_OPTION``), the module's own
argument spec (``argument_spec``) and the decision (``described_answer``, given the task's options
validated against the module's spec with the connection options, defaults filled in). The answer is
only tried when the task carries a description, runs synchronously and its module would run on the
controller (``local`` connection: the files the options name are the controller's). Whenever the
options do not validate or the decision is None, the module runs as usual and reports as usual."""

from ansible.module_utils.common.arg_spec import ArgumentSpecValidator
from ansible.plugins.action import ActionBase
from ansible.utils.vars import merge_hash

# Imported when the plugin is loaded: the strategy loads an action plugin in the controller's main
# process before it forks the task's workers, so every worker inherits these modules instead of
# importing them again (about 0.2 s of CPU per cluster and task, the kubernetes client's light import).
from ansible_collections.meshops.cilium.plugins.module_utils.base import cluster_argument_spec


class DescribedAnswerAction(ActionBase):

    _supports_check_mode = True
    _supports_async = True

    DESCRIBED_OPTION = None

    @staticmethod
    def argument_spec():
        """The module's own argument spec (without the connection options)."""
        raise NotImplementedError

    @staticmethod
    def described_answer(params):
        """The module's result for the validated ``params``, or None to run the module."""
        raise NotImplementedError

    def run(self, tmp=None, task_vars=None):
        result = super(DescribedAnswerAction, self).run(tmp, task_vars)
        del tmp  # no effect since ansible-core 2.5
        wrap_async = self._task.async_val and not self._connection.has_native_async
        answer = None
        if self._task.args.get(self.DESCRIBED_OPTION) and not wrap_async and self._connection.transport == 'local':
            params = self._validated(dict(self._task.args))
            if params is not None:
                answer = self.described_answer(params)
        if answer is not None:
            return merge_hash(result, answer)
        result = merge_hash(result, self._execute_module(task_vars=task_vars, wrap_async=wrap_async))
        if not wrap_async:
            self._remove_tmp_path(self._connection._shell.tmpdir)
        return result

    def _validated(self, args):
        # the spec ClusterModule gives the module: the connection options and the module's own
        validated = ArgumentSpecValidator(cluster_argument_spec(self.argument_spec())).validate(args)
        if validated.error_messages:
            return None  # the module reports them
        return validated.validated_parameters
