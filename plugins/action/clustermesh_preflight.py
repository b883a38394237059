# -*- coding: utf-8 -*-
# Copyright: meshops.cilium contributors
# SPDX-License-Identifier: Apache-2.0
"""Action plugin of ``meshops.cilium.clustermesh_preflight``: the checks are pure functions of the task's
options (plus the target chart's schema and ``helm template``, both on the controller), so when the module
would run there anyway (local connection, the controller's own Python, no task ``environment``) the answer
is given on the controller, without a module process (about 0.5 s of CPU and of wall time on every run);
otherwise the module runs. Both run ``module_utils/preflight.py``'s
``run_preflight``; the rest is ``plugin_utils/described.py``."""

from ansible_collections.meshops.cilium.plugins.module_utils.preflight import PREFLIGHT_ARGUMENT_SPEC, run_preflight
from ansible_collections.meshops.cilium.plugins.plugin_utils.described import ControllerAnswerAction, controller_python


class ActionModule(ControllerAnswerAction):

    def wants_answer(self, task_vars):
        # the module's process would have the task's environment (helm from its PATH) and its interpreter's
        # libraries (jsonschema)
        return controller_python(self, task_vars)

    def full_argument_spec(self):
        return PREFLIGHT_ARGUMENT_SPEC

    def answer(self, params):
        result, warnings = run_preflight(params)
        if warnings:
            result['warnings'] = warnings
        return result
