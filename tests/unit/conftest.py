# -*- coding: utf-8 -*-
# Copyright: meshops.cilium contributors
# SPDX-License-Identifier: Apache-2.0
"""Make this checkout importable as ``ansible_collections.meshops.cilium``.

Works from a fresh clone at any path: if the repository already sits at
``.../ansible_collections/meshops/cilium`` that root is used, otherwise a
temporary ``ansible_collections/meshops/cilium`` symlink to the repository
is created and put on ``sys.path``. Under ``ansible-test units`` the
collection is already importable and nothing is done.
"""

import atexit
import os
import shutil
import sys
import tempfile

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def _importable():
    try:
        import ansible_collections.meshops.cilium.plugins.module_utils  # noqa: F401
        return True
    except ImportError:
        return False


def _setup():
    if _importable():
        return
    parts = REPO.split(os.sep)
    if parts[-3:-1] == ['ansible_collections', 'meshops'] and parts[-1] == 'cilium':
        root = os.sep.join(parts[:-3]) or os.sep
    else:
        root = tempfile.mkdtemp(prefix='meshops-cilium-units-')
        atexit.register(shutil.rmtree, root, True)
        os.makedirs(os.path.join(root, 'ansible_collections', 'meshops'))
        os.symlink(REPO, os.path.join(root, 'ansible_collections', 'meshops', 'cilium'))
    sys.path.insert(0, root)
    for name in list(sys.modules):
        if name == 'ansible_collections' or name.startswith('ansible_collections.'):
            del sys.modules[name]


_setup()
