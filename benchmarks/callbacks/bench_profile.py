# -*- coding: utf-8 -*-
# Copyright: meshops.cilium contributors
# SPDX-License-Identifier: Apache-2.0
"""make bench's profile of one ansible-playbook run: the wall time from the start of each task (all
hosts of the play) to the start of the next, written as JSON to $MESHOPS_BENCH_PROFILE. The benchmark
prints the costliest tasks of each no-op run, so what to make faster is read from a profile."""

import json
import os
import time

from ansible.plugins.callback import CallbackBase

DOCUMENTATION = """
name: bench_profile
type: aggregate
short_description: per-task wall time of a benchmarked run (make bench)
description:
  - Writes the wall time of every task, from its start to the next task's start, to the JSON file
    named by the environment variable MESHOPS_BENCH_PROFILE.
requirements:
  - enabled with ANSIBLE_CALLBACKS_ENABLED=bench_profile (benchmarks/bench.py does)
"""


class CallbackModule(CallbackBase):
    CALLBACK_VERSION = 2.0
    CALLBACK_TYPE = 'aggregate'
    CALLBACK_NAME = 'bench_profile'
    CALLBACK_NEEDS_ENABLED = True

    def __init__(self):
        super(CallbackModule, self).__init__()
        self._started = time.time()
        self._current = None
        self._tasks = []

    def _next(self, label):
        now = time.time()
        if self._current is not None:
            self._tasks.append({'task': self._current[0], 'wall_s': round(now - self._current[1], 3)})
        self._current = (label, now) if label is not None else None

    def v2_playbook_on_play_start(self, play):
        self._next('(play) %s' % play.get_name())

    def v2_playbook_on_task_start(self, task, is_conditional):
        self._next(task.get_name())

    def v2_playbook_on_handler_task_start(self, task):
        self._next('(handler) %s' % task.get_name())

    def v2_playbook_on_stats(self, stats):
        self._next(None)
        path = os.environ.get('MESHOPS_BENCH_PROFILE')
        if path:
            with open(path, 'w') as f:
                json.dump({'total_s': round(time.time() - self._started, 3), 'tasks': self._tasks}, f, indent=1)
