# -*- coding: utf-8 -*-
# Copyright: meshops.cilium contributors
# SPDX-License-Identifier: Apache-2.0
"""Action plugin of ``meshops.cilium.clustermesh_connect``: when the task's ``local`` descriptor (this
cluster's ``clustermesh_info`` result of this run, read from the API server the task's connection
options name) shows exactly the peers this task wants already deployed, the task's answer (unchanged)
is given on the controller, without a module process (about 1.2 s of CPU) and without a request;
otherwise, and whenever in doubt, the module runs as usual. The decision is
``module_utils/connect.py``'s ``unchanged_by_description``; the rest is ``plugin_utils/described.py``."""

from ansible_collections.meshops.cilium.plugins.module_utils.cluster import resolve_connection
from ansible_collections.meshops.cilium.plugins.module_utils.connect import CONNECT_ARGUMENT_SPEC, unchanged_by_description
from ansible_collections.meshops.cilium.plugins.modules.clustermesh_connect import run
from ansible_collections.meshops.cilium.plugins.plugin_utils.described import DescribedAnswerAction


class ActionModule(DescribedAnswerAction):

    DESCRIBED_OPTION = 'local'

    @staticmethod
    def argument_spec():
        return CONNECT_ARGUMENT_SPEC

    def worker_run(self):
        return run, CONNECT_ARGUMENT_SPEC

    @staticmethod
    def described_answer(params):
        try:
            # the API server the module would talk to, resolved as it would (no request: files only)
            connection = resolve_connection(params, environ={})
        except Exception:  # pylint: disable=broad-except
            return None  # the module reports it, naming the cluster
        if connection.origin != 'task':
            return None  # K8S_AUTH_* of the task's environment are the module's, not the controller's
        answer = unchanged_by_description(params, connection.server)
        if answer is not None:
            answer.update(cluster=connection.name, connection=connection.describe())
        return answer
