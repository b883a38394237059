# -*- coding: utf-8 -*-
# Copyright: meshops.cilium contributors
# SPDX-License-Identifier: Apache-2.0
"""The collection is controller-only Python 3 (tests/config.yml): no Python 2 boilerplate comes back."""

import os
import re

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
BOILERPLATE = re.compile(r'^(from __future__ import|__metaclass__ = type)', re.M)
SKIP = {'.git', '.venv', '.venv-oldest', '.fleet', 'build', '__pycache__', '.ansible', '.tox'}


def python_files():
    for top in ('plugins', 'tests', 'hack', 'benchmarks', 'molecule'):
        for base, dirs, files in os.walk(os.path.join(REPO, top)):
            dirs[:] = [d for d in dirs if d not in SKIP and not d.startswith('.fleet')]
            for name in files:
                if name.endswith('.py'):
                    yield os.path.join(base, name)


def read(path):
    with open(path, encoding='utf-8') as f:
        return f.read()


def test_no_python2_boilerplate():
    found = [os.path.relpath(path, REPO) for path in python_files() if BOILERPLATE.search(read(path))]
    assert not found, 'remove "from __future__ ..." and "__metaclass__ = type" from: %s' % ', '.join(found)


def test_the_collection_says_it_is_controller_only():
    assert re.search(r'^\s*python_requires:\s*controller\s*$', read(os.path.join(REPO, 'tests', 'config.yml')), re.M)
