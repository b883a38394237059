# -*- coding: utf-8 -*-
# Copyright: meshops.cilium contributors
# SPDX-License-Identifier: Apache-2.0
"""The one home of small helpers and constants several module_utils share.

Pure (no cluster access, no collection imports): versions, integers, readiness of a
Deployment, Cilium's name rule and cluster limits, digests of data.
"""

import hashlib
import json
import re

# A Cilium cluster name (use with fullmatch: "$" would accept a trailing newline).
CLUSTER_NAME_RE = re.compile(r'([a-z0-9][-a-z0-9]*)?[a-z0-9]')
CLUSTER_NAME_MAX = 32
# The values of maxConnectedClusters Cilium accepts, and its default.
MAX_CONNECTED = (255, 511)
DEFAULT_MAX_CONNECTED = 255
# The Cilium chart minor versions this collection supports and tests (oldest, newest): the one place of
# that range. Below it installs are refused; above it the preflight warns (untested, not refused).
SUPPORTED_CHART_RANGE = ((1, 17), (1, 20))
# Helm release statuses that mean another helm operation holds the release (running or interrupted).
PENDING_STATUSES = ('pending-install', 'pending-upgrade', 'pending-rollback', 'uninstalling')


# A default argument that means "not read yet: read it yourself" (None is a read that found nothing).
UNREAD = object()


def version_tuple(version):
    """``'1.19.2'`` / ``'v1.19'`` / ``'1.20.0-rc.1'`` -> ``(major, minor, patch)``; None when it is not a
    version (``'latest'``, ``'1'``, ``'abc1.2'``). Surrounding white space is ignored."""
    m = re.fullmatch(r'v?(\d+)\.(\d+)(?:\.(\d+))?(?:[-+].*)?', str(version or '').strip())
    if not m:
        return None
    return (int(m.group(1)), int(m.group(2)), int(m.group(3) or 0))


def int_or_none(value):
    """An int from an int or a decimal string (surrounding white space ignored); None for None,
    booleans (``True`` is not cluster ID 1) and anything else (``'1_000'``, ``'+5'``, ``'3.0'``)."""
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, int):
        return value
    text = str(value).strip()
    return int(text) if re.fullmatch(r'-?\d+', text) else None


def deployment_ready(deployment):
    """``{exists, ready, replicas, ready_replicas, updated_replicas}`` of a Deployment dict.

    Ready means: observed the current generation, at least one replica wanted, every wanted
    replica updated and Ready. A Deployment scaled to 0 is not ready: it serves nothing.
    """
    if not deployment:
        return {'exists': False, 'ready': False, 'replicas': 0, 'ready_replicas': 0, 'updated_replicas': 0}
    spec = deployment.get('spec') or {}
    st = deployment.get('status') or {}
    meta = deployment.get('metadata') or {}
    replicas = _int(spec.get('replicas'), 1)
    ready = _int(st.get('readyReplicas'))
    updated = _int(st.get('updatedReplicas'))
    observed = _int(st.get('observedGeneration'), -1) >= _int(meta.get('generation'), 0)
    return {'exists': True,
            'ready': bool(observed and replicas > 0 and ready >= replicas and updated >= replicas),
            'replicas': replicas, 'ready_replicas': ready, 'updated_replicas': updated}


def counted(count, noun):
    """``'1 failure'``, ``'3 failures'``: a count with its noun in the right number."""
    return '%d %s%s' % (count, noun, '' if count == 1 else 's')


def _int(value, default=0):
    number = int_or_none(value)
    return default if number is None else number


def chart_range_text():
    """``'1.17 to 1.20'``: the supported chart range as the messages and docs state it."""
    (a, b), (c, d) = SUPPORTED_CHART_RANGE
    return '%d.%d to %d.%d' % (a, b, c, d)


def chart_support(version):
    """Where chart ``version`` lies against ``SUPPORTED_CHART_RANGE``: ``'below'``, ``'above'``, or None
    (inside it, or not a version number: other checks name that)."""
    v = version_tuple(version)
    if v is None:
        return None
    if v[:2] < SUPPORTED_CHART_RANGE[0]:
        return 'below'
    if v[:2] > SUPPORTED_CHART_RANGE[1]:
        return 'above'
    return None


def json_digest(data):
    """SHA-256 (hex) of ``data`` as canonical JSON (keys sorted, no spaces): equal data, equal digest.
    What a descriptor returns in place of data it must not show (user values, peer entries)."""
    return hashlib.sha256(json.dumps(data, sort_keys=True, separators=(',', ':')).encode('utf-8')).hexdigest()


# the first pause of a wait; each next one is half as long again, up to the module's wait_interval
FIRST_WAIT_PAUSE = 0.5
WAIT_PAUSE_GROWTH = 1.5


def wait_pauses(interval):
    """The pauses between the reads of a wait: 0.5 s, then half as long again each time (0.75, 1.125, ...)
    up to ``interval``. What a wait usually waits for (a rollout, peers connecting) is there within
    seconds: the first reads come soon, a long wait polls every ``interval``."""
    pause = min(FIRST_WAIT_PAUSE, interval)
    while True:
        yield pause
        pause = min(interval, pause * WAIT_PAUSE_GROWTH)
