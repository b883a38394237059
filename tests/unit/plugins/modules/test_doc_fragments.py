# -*- coding: utf-8 -*-
# Copyright: meshops.cilium contributors
# SPDX-License-Identifier: Apache-2.0
"""The modules' shared documentation: the connection options (doc fragment meshops.cilium.cluster)
and membership of action group ``cluster`` (meta/runtime.yml) go together, so that fragment is the
one place that documents the C(action_group) attribute."""

import ast
import glob
import os

import yaml

from ansible_collections.meshops.cilium.plugins.doc_fragments.cluster import ModuleDocFragment

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))))


def _documentation(path):
    with open(path) as f:
        tree = ast.parse(f.read())
    for node in tree.body:
        if isinstance(node, ast.Assign) and getattr(node.targets[0], 'id', None) == 'DOCUMENTATION':
            return yaml.safe_load(node.value.value)
    raise AssertionError('%s has no DOCUMENTATION' % path)


def test_group_cluster_is_the_modules_that_extend_the_connection_fragment():
    with open(os.path.join(REPO, 'meta', 'runtime.yml')) as f:
        members = set(yaml.safe_load(f)['action_groups']['cluster'])
    extending = set()
    for path in glob.glob(os.path.join(REPO, 'plugins', 'modules', '*.py')):
        fragments = _documentation(path).get('extends_documentation_fragment') or []
        assert 'meshops.cilium.attributes.action_group' not in fragments, path
        if 'meshops.cilium.cluster' in fragments:
            extending.add(os.path.basename(path)[:-3])
    assert extending == members


def test_the_connection_fragment_documents_the_action_group():
    doc = yaml.safe_load(ModuleDocFragment.DOCUMENTATION)
    assert doc['attributes']['action_group']['membership'] == ['meshops.cilium.cluster']
    assert 'kubeconfig' in doc['options']
