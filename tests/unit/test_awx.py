# -*- coding: utf-8 -*-
# Copyright: meshops.cilium contributors
# SPDX-License-Identifier: Apache-2.0
"""docs/awx: the survey of site.yml asks only for role variables, with the roles' own types, choices and
defaults (so it cannot drift from roles/*/meta/argument_specs.yml); the credential type injects what its
inputs define."""

import glob
import json
import os
import re

import yaml

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
# survey type -> argument spec types it may feed (a multiple choice of "true"/"false" feeds a bool)
TYPES = {'text': ('str',), 'textarea': ('str',), 'password': ('str',), 'integer': ('int',),
         'float': ('float',), 'multiplechoice': ('str', 'bool')}


def argument_specs():
    options = {}
    for path in sorted(glob.glob(os.path.join(REPO, 'roles', '*', 'meta', 'argument_specs.yml'))):
        with open(path) as f:
            for entry in yaml.safe_load(f)['argument_specs'].values():
                options.update(entry.get('options') or {})
    return options


def choices_of(question):
    raw = question.get('choices') or []
    return raw.split('\n') if isinstance(raw, str) else list(raw)


def _expressions(node, condition=False):
    """The Jinja expressions of a task file: ``when``/``that``/``until`` conditions and ``{{ }}`` blocks."""
    if isinstance(node, dict):
        for key, value in node.items():
            yield from _expressions(value, key in ('when', 'that', 'until', 'changed_when', 'failed_when'))
    elif isinstance(node, list):
        for item in node:
            yield from _expressions(item, condition)
    elif isinstance(node, str):
        if condition:
            yield node
        yield from re.findall(r'{{(.*?)}}', node, re.S)


def roles_read_with_bool(variable):
    """Whether every use of ``variable`` in the roles' tasks goes through ``| bool`` (a survey answer is a
    string; role argument specs validate, they do not convert)."""
    uses = []
    for path in glob.glob(os.path.join(REPO, 'roles', '*', 'tasks', '*.yml')):
        with open(path) as f:
            for expression in _expressions(yaml.safe_load(f)):
                uses += re.findall(r'\b%s\b(\s*\|\s*bool)?' % re.escape(variable), expression)
    return bool(uses) and all(uses)


def test_the_survey_asks_only_for_role_variables_with_their_types_choices_and_defaults():
    with open(os.path.join(REPO, 'docs', 'awx', 'survey_site.json')) as f:
        survey = json.load(f)
    specs = argument_specs()
    assert survey['spec']
    names = [q['variable'] for q in survey['spec']]
    assert len(names) == len(set(names)), names
    for q in survey['spec']:
        var = q['variable']
        assert var in specs, '%s is in the survey but in no role argument spec' % var
        spec = specs[var]
        assert spec.get('type', 'str') in TYPES[q['type']], (var, q['type'], spec.get('type'))
        assert q['question_name'] and var in q['question_description'], var
        if q['type'] == 'multiplechoice':
            choices = choices_of(q)
            assert q['default'] in choices, var
            if spec.get('type') == 'bool':
                assert sorted(choices) == ['false', 'true'] and roles_read_with_bool(var), var
            elif spec.get('choices'):
                assert set(choices) <= set(spec['choices']), (var, choices, spec['choices'])
        if q['type'] == 'integer':
            assert q['min'] <= q['default'] <= q['max'], var
        if 'default' in spec and spec['default'] is not None:
            expected = str(spec['default']).lower() if spec.get('type') == 'bool' else spec['default']
            assert q['default'] == expected, '%s: survey default %r, role default %r' % (var, q['default'], expected)


def test_the_agent_status_choices_are_those_of_clustermesh_status():
    from ansible_collections.meshops.cilium.plugins.modules import clustermesh_status
    doc = yaml.safe_load(clustermesh_status.DOCUMENTATION)
    with open(os.path.join(REPO, 'docs', 'awx', 'survey_site.json')) as f:
        survey = json.load(f)
    for q in survey['spec']:
        if q['variable'].endswith('_agent_status'):
            assert choices_of(q) == doc['options']['agent_status']['choices'], q['variable']


def test_the_credential_type_injects_its_own_input_as_a_file():
    with open(os.path.join(REPO, 'docs', 'awx', 'credential_type.yml')) as f:
        ctype = yaml.safe_load(f)
    fields = {field['id']: field for field in ctype['inputs']['fields']}
    assert fields['kubeconfig']['secret'] is True and ctype['inputs']['required'] == ['kubeconfig']
    injectors = ctype['injectors']
    assert injectors['file'] == {'template.kubeconfig': '{{ kubeconfig }}'}
    # the job gets the file's path, never the content, in both ways the roles and kubectl read it
    assert injectors['env'] == {'KUBECONFIG': '{{ tower.filename.kubeconfig }}'}
    assert injectors['extra_vars'] == {'meshops_kubeconfig': '{{ tower.filename.kubeconfig }}'}
