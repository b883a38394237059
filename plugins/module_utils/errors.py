# -*- coding: utf-8 -*-
# Copyright: meshops.cilium contributors
# SPDX-License-Identifier: Apache-2.0
"""The collection's one base exception.

Every error class in ``module_utils`` derives from ``MeshopsError``; ``ClusterModule.run``
(module_utils/base.py) turns any of them into one ``fail_json`` (cluster name first, no
traceback). Messages are phrased for the user and never hold secret material.
"""


class MeshopsError(Exception):
    """An error already phrased for the user (one line, no secrets)."""


class MeshopsValueError(MeshopsError, ValueError):
    """A ``MeshopsError`` that is also a ``ValueError`` (bad input or bad data), so callers that
    catch ``ValueError`` (parsers, option checks) keep catching it."""
