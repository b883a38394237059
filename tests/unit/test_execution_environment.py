# -*- coding: utf-8 -*-
# Copyright: meshops.cilium contributors
# SPDX-License-Identifier: Apache-2.0
"""execution-environment.yml (ansible-builder v3) installs the collection with its Python
requirements and a pinned helm that the playbooks can find on PATH; the real ``ansible-builder create``
makes a build context of it."""

import os
import re
import subprocess
import sys

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


def test_ansible_builder_create_writes_a_context_whose_final_image_gets_helm(tmp_path):
    """The real ``ansible-builder create`` (no container engine needed) accepts the definition; the
    Containerfile builds helm in the builder stage, copies only the binary into the final image and runs
    it there; the collection is installed from the galaxy requirements it writes."""
    builder = os.path.join(os.path.dirname(sys.executable), 'ansible-builder')
    context = tmp_path / 'context'
    proc = subprocess.run([builder, 'create', '-f', os.path.join(REPO, 'execution-environment.yml'),
                           '-c', str(context), '--output-filename', 'Containerfile'],
                          cwd=str(tmp_path), stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                          universal_newlines=True, check=False, timeout=300)
    assert proc.returncode == 0, proc.stdout
    containerfile = (context / 'Containerfile').read_text()
    stages = dict((m.group(1), m.start()) for m in re.finditer(r'^FROM \S+ AS (\w+)$', containerfile, re.M))
    assert set(stages) >= {'base', 'galaxy', 'builder', 'final'}, stages
    go_install = containerfile.index('"helm.sh/helm/v3/cmd/helm@${HELM_VERSION}"')
    copy = containerfile.index('COPY --from=builder /output/helm /usr/local/bin/helm')
    assert stages['builder'] < go_install < stages['final'] < copy < containerfile.index('RUN helm version')
    assert containerfile.count('/output/helm') == 2
    galaxy = yaml.safe_load((context / '_build' / 'requirements.yml').read_text())
    assert {'name': 'meshops.cilium'} in galaxy['collections']
