# -*- coding: utf-8 -*-
# Copyright: meshops.cilium contributors
# SPDX-License-Identifier: Apache-2.0
"""execution-environment.yml (ansible-builder v3) installs the collection with its Python
requirements and a pinned helm that the playbooks can find on PATH."""

import os
import re

import pytest
import yaml

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def _load(rel):
    with open(os.path.join(REPO, rel)) as f:
        return yaml.safe_load(f)


def _steps(definition, stage):
    return ' '.join(definition.get('additional_build_steps', {}).get(stage, []))


def test_definition_installs_the_collection_and_ansible():
    ee = _load('execution-environment.yml')
    assert ee['version'] == 3
    deps = ee['dependencies']
    assert {'name': 'meshops.cilium'} in deps['galaxy']['collections']
    assert deps['ansible_core']['package_pip'].startswith('ansible-core')
    assert 'ansible-runner' in deps['ansible_runner']['package_pip']
    assert ee['images']['base_image']['name']


def test_definition_installs_a_pinned_helm_on_path():
    ee = _load('execution-environment.yml')
    builder, final = _steps(ee, 'append_builder'), _steps(ee, 'append_final')
    pinned = re.search(r'ARG HELM_VERSION=(v3\.(\d+)\.\d+)\b', builder)
    assert pinned, 'append_builder must pin HELM_VERSION'
    assert int(pinned.group(2)) >= 14, 'the modules need helm 3.14 or newer'
    assert 'helm.sh/helm/v3/cmd/helm@${HELM_VERSION}' in builder
    assert 'COPY --from=builder /output/helm /usr/local/bin/helm' in final
    assert 'helm version' in final


def test_helm_of_the_definition_is_the_one_the_fleet_tests_with():
    build = os.path.join(REPO, 'hack', 'fleet', 'build.py')
    if not os.path.exists(build):
        pytest.skip('hack/ is not part of this tree')
    with open(build) as f:
        fleet = re.search(r'^HELM_VERSION = "([^"]+)"', f.read(), re.MULTILINE).group(1)
    ee = _load('execution-environment.yml')
    assert 'ARG HELM_VERSION=%s' % fleet in _steps(ee, 'append_builder')


def test_collection_dependencies_for_ansible_builder_exist():
    meta = _load('meta/execution-environment.yml')
    assert meta['version'] == 3
    for rel in meta['dependencies'].values():
        assert os.path.isfile(os.path.join(REPO, rel)), rel
