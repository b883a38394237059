# -*- coding: utf-8 -*-
# Copyright: meshops.cilium contributors
# SPDX-License-Identifier: Apache-2.0
"""docs/troubleshooting.md quotes the collection's real wording: the preflight rows and the Helm refusal it
shows are produced here by the real checks, and each must be in the document as the run prints it."""

import os

import pytest

from ansible_collections.meshops.cilium.plugins.module_utils.helm import Release, pending_problem
from ansible_collections.meshops.cilium.plugins.module_utils.preflight import check, format_table, summary

from test_preflight import mesh  # the preflight tests' fleet-like mesh (this folder is on sys.path)

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))))
FINGERPRINTS = ('AA:' * 7 + 'AA', 'BB:' * 7 + 'BB')


def doc_lines():
    with open(os.path.join(REPO, 'docs', 'troubleshooting.md')) as f:
        return f.read().splitlines()


def duplicate_id(clusters):
    clusters[1]['cluster_id'] = 1


def duplicate_name(clusters):
    clusters[1]['cluster_name'] = 'mesh-1'


def same_context(clusters):
    clusters[0]['context'] = clusters[1]['context'] = 'prod'


def changed_id(clusters):
    clusters[0]['cluster_id'] = 7


def other_ca(clusters):
    clusters[1]['info']['ca'] = {'sha256': 'BB:' * 31 + 'BB'}


def pending(clusters):
    clusters[0]['info']['release']['status'] = 'pending-upgrade'


def failed(clusters):
    clusters[0]['info']['release']['status'] = 'failed'


def old_chart(clusters):
    for c in clusters:
        c['chart_version'] = '1.16.19'


def new_chart(clusters):
    for c in clusters:
        c['chart_version'] = '1.21.0'


@pytest.mark.parametrize('change, cluster, installed', [
    (duplicate_id, 'mesh-2', False), (duplicate_name, 'mesh-2', False), (same_context, 'mesh-2', False),
    (changed_id, 'mesh-1', True), (other_ca, 'mesh-2', True), (pending, 'mesh-1', True), (failed, 'mesh-1', True),
    (old_chart, 'mesh-1', False), (new_chart, 'mesh-1', False)])
def test_the_preflight_rows_the_document_shows_are_the_real_ones(change, cluster, installed):
    clusters = mesh(3, installed=installed)
    change(clusters)
    rows = [p for p in check(clusters) if p['cluster'] == cluster]
    assert rows
    row = rows[0]
    text = '%s | %s | %s | %s | fix: %s' % (row['cluster'], row['severity'].upper(), row['field'], row['problem'],
                                            row['fix'])
    for fingerprint in FINGERPRINTS:
        text = text.replace(fingerprint, '<fingerprint>')
    assert text in doc_lines(), text


def test_the_helm_refusal_the_document_shows_is_the_real_one():
    rel = Release({'name': 'cilium', 'namespace': 'kube-system', 'version': 4, 'info': {'status': 'pending-upgrade'}})
    assert 'mesh-1: ' + pending_problem(rel) in doc_lines()


def test_the_table_the_document_shows_is_the_real_one():
    """The whole output of a preflight with one duplicate ID: the summary line and the padded table."""
    clusters = mesh(3)
    duplicate_id(clusters)
    problems = check(clusters)
    printed = [summary(problems, len(clusters))] + format_table(problems).splitlines()
    lines = [line.strip() for line in doc_lines()]
    start = lines.index(printed[0])
    assert lines[start:start + len(printed)] == printed
