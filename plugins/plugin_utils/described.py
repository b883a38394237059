# -*- coding: utf-8 -*-
# Copyright: meshops.cilium contributors
# SPDX-License-Identifier: Apache-2.0
"""The action plugins of modules that can give their answer on the controller, without a module
process (a Python start and the module's imports: about 0.5 to 1.2 s of CPU each) and, where the answer
comes from this run's description of a cluster, without a request.

``ControllerAnswerAction``: a subclass names the module's full argument spec (``full_argument_spec``)
and its answer (``answer``, given the task's options validated against that spec, defaults filled in).
The answer is only tried when the task runs synchronously and its module would run on the controller
(``local`` connection: the files the options name are the controller's). Whenever the options do not
validate or the answer is None, the module runs as usual and reports as usual. The secrets inside the
options (``option_secret_values``, as the module's ``MaskingModule`` finds them) are masked in the answer
as the module would mask them.

Where there is no answer and the module would run on the controller under the controller's own Python
(``controller_python``: local connection, no task ``environment``, no ``become``), a subclass that names
the module's ``run`` function (``worker_run``) has it called in the task's own worker instead of a module
process (``base.run_in_worker``: the same ``ClusterModule``, its ``exit``/``fail`` returning the result
the module would print). What that saves is the module process: a Python start, ansible-core's module
start-up and the imports, which the worker inherits from the controller's main process (it loaded this
plugin before forking): about 0.6 s of CPU per cluster and task, the half of a first converge's module
CPU on the local fleet.

``DescribedAnswerAction``: the modules that answer "unchanged" from this run's description of a cluster.
A subclass names the option that carries the description (``DESCRIBED_OPTION``), the module's own argument
spec (``argument_spec``, the connection options are added) and the decision (``described_answer``). The
answer is only tried when the task carries a description.

``WorkerAction``: the modules without an answer of their own, run in the worker where they can be."""

import json
import os
import sys

from ansible.module_utils.common.arg_spec import ArgumentSpecValidator
from ansible.module_utils.common.parameters import remove_values
from ansible.plugins.action import ActionBase
from ansible.utils.vars import merge_hash

# Imported when the plugin is loaded: the strategy loads an action plugin in the controller's main
# process before it forks the task's workers, so every worker inherits these modules instead of
# importing them again (about 0.2 s of CPU per cluster and task, the kubernetes client's light import).
from ansible_collections.meshops.cilium.plugins.module_utils.base import (
    cluster_argument_spec,
    option_secret_values,
    run_in_worker,
)


def controller_python(action, task_vars):
    """Whether ``action``'s module would run as the controller itself does: under the controller's own
    Python (the host's ``ansible_python_interpreter`` is this process's interpreter, as
    ``ansible_playbook_python`` gives it: the same libraries) and without a task ``environment``
    (the same environment variables: PATH, proxies, K8S_AUTH_*)."""
    if any(action._task.environment or []) or action._play_context.become:
        return False
    try:
        wanted = action._templar.template(task_vars.get('ansible_python_interpreter'))
    except Exception:  # pylint: disable=broad-except
        return False
    return isinstance(wanted, str) and os.path.abspath(wanted) == os.path.abspath(sys.executable)


def remove_loader_files():
    """Remove the files kubernetes' kubeconfig loader wrote (certificate data of a kubeconfig it
    handled: exec and auth-provider users). It removes them when its process exits, but a forked worker
    runs no exit handler before Python 3.12."""
    loader = sys.modules.get('kubernetes.config.kube_config')
    files = getattr(loader, '_temp_files', None)
    if isinstance(files, dict):
        for path in list(files.values()):
            try:
                os.remove(path)
            except OSError:
                pass
        files.clear()


class ControllerAnswerAction(ActionBase):

    _supports_check_mode = True
    _supports_async = True

    def full_argument_spec(self):
        """The module's whole argument spec."""
        raise NotImplementedError

    def answer(self, params):
        """The module's result for the validated ``params``, or None to run the module."""
        raise NotImplementedError

    def wants_answer(self, task_vars):  # pylint: disable=unused-argument
        """Whether to try the answer for this task (the module runs otherwise)."""
        return True

    def worker_run(self):
        """``(run, argument_spec)``: the module's ``run`` function and its own argument spec, to call it in
        this worker (``base.run_in_worker``) where the module would run on the controller with its Python;
        None: a module process."""
        return None

    def run(self, tmp=None, task_vars=None):
        result = super(ControllerAnswerAction, self).run(tmp, task_vars)
        del tmp  # no effect since ansible-core 2.5
        task_vars = task_vars or {}
        wrap_async = self._task.async_val and not self._connection.has_native_async
        local = not wrap_async and self._connection.transport == 'local'
        worker = self.worker_run() if local and controller_python(self, task_vars) else None
        wanted = local and self.wants_answer(task_vars)
        answer = None
        if wanted or worker is not None:
            # the options as the module would receive them: JSON, plain types (the controller's templated values
            # are tagged subclasses of str, dict and list, which a type comparison would tell from plain ones)
            args = json.loads(json.dumps(dict(self._task.args), default=str))
            validated = ArgumentSpecValidator(self.full_argument_spec()).validate(args)
            if not validated.error_messages:  # else the module reports them
                params = validated.validated_parameters
                if wanted:
                    answer = self.answer(params)
                    if answer is not None:
                        answer = remove_values(answer, option_secret_values(params))
                if answer is None and worker is not None:
                    # the module's own run in this worker: no Python start, no module start-up, the imports
                    # done (the controller's main process loaded this plugin before forking the worker)
                    try:
                        answer = run_in_worker(worker[0], worker[1], params, self._task.action,
                                               check_mode=bool(self._task.check_mode), diff=bool(self._task.diff),
                                               no_log_values=validated._no_log_values)
                    finally:
                        remove_loader_files()
        if answer is not None:
            return merge_hash(result, answer)
        result = merge_hash(result, self._execute_module(task_vars=task_vars, wrap_async=wrap_async))
        if not wrap_async:
            self._remove_tmp_path(self._connection._shell.tmpdir)
        return result


class DescribedAnswerAction(ControllerAnswerAction):

    DESCRIBED_OPTION = None

    @staticmethod
    def argument_spec():
        """The module's own argument spec (without the connection options)."""
        raise NotImplementedError

    @staticmethod
    def described_answer(params):
        """The module's result for the validated ``params``, or None to run the module."""
        raise NotImplementedError

    def wants_answer(self, task_vars):
        return bool(self._task.args.get(self.DESCRIBED_OPTION))

    def full_argument_spec(self):
        # the spec ClusterModule gives the module: the connection options and the module's own
        return cluster_argument_spec(self.argument_spec())

    def answer(self, params):
        return self.described_answer(params)


class WorkerAction(ControllerAnswerAction):
    """A module without an answer of its own: its ``run`` in the task's worker where the module would run
    on the controller (``worker_run``, given by the subclass), else a module process."""

    def wants_answer(self, task_vars):
        return False

    def full_argument_spec(self):
        return cluster_argument_spec(self.worker_run()[1])
