#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: meshops.cilium contributors
# SPDX-License-Identifier: Apache-2.0

DOCUMENTATION = r'''
---
module: ipsec_keys_info
short_description: Read a cluster's Cilium IPsec key (SPI and fingerprint only) and whether a rotation is safe
version_added: 0.2.0
description:
  - Reads Secret C(cilium-ipsec-keys) (key C(keys)) in O(namespace) and returns its SPI, algorithm and a short
    fingerprint of the value, never the key. Comparing fingerprints tells whether every cluster of a mesh holds
    the same key.
  - Also reads the Cilium Helm release (encryption settings, C(encryption.ipsec.keyRotationDuration)) and whether
    a rotation would be unsafe now (a Helm operation in progress, the agents or the operator rolling out or not
    ready).
author:
  - meshops maintainers (@meshops)
options:
  secret_name:
    description:
      - Name of the Secret. Defaults to the release's C(encryption.ipsec.secretName), else C(cilium-ipsec-keys).
    type: str
extends_documentation_fragment:
  - meshops.cilium.cluster
  - meshops.cilium.release
  - meshops.cilium.attributes
  - meshops.cilium.attributes.info_module
notes:
  - Needs get on Secrets in O(namespace), list on Secrets (the Helm release), get on DaemonSets and Deployments.
seealso:
  - module: meshops.cilium.ipsec_keys
'''

EXAMPLES = r'''
- name: Read every cluster's key fingerprint
  meshops.cilium.ipsec_keys_info:
    context: "{{ item }}"
  loop: "{{ groups['mesh'] }}"
  register: ipsec

- name: Every cluster holds the same key
  ansible.builtin.assert:
    that: ipsec.results | map(attribute='fingerprint') | unique | length == 1
'''

RETURN = r'''
cluster:
  description: The name this module knows the cluster by.
  returned: always
  type: str
  sample: mesh-1
exists:
  description: Whether the Secret exists.
  returned: always
  type: bool
valid:
  description: Whether it holds a usable key (see RV(error) otherwise).
  returned: always
  type: bool
error:
  description: Why the key is unusable (never the key itself). V(null) when it is usable or absent.
  returned: always
  type: str
  sample: unknown algorithm (field 2, SPI 3); the AEAD form supports rfc4106(gcm(aes))
spi:
  description: The key's SPI. V(null) without a usable key.
  returned: always
  type: int
  sample: 2
fingerprint:
  description: First 16 hex digits of the SHA-256 of the value. V(null) without a usable key.
  returned: always
  type: str
  sample: 9f2c4e1a7b3d5f60
algorithm:
  description: The algorithm(s) of the key.
  returned: always
  type: str
  sample: rfc4106(gcm(aes))
icv:
  description: ICV length in bits (AEAD keys).
  returned: always
  type: int
  sample: 128
key_bytes:
  description: Length of the key material in bytes.
  returned: always
  type: int
  sample: 20
secret_name:
  description: The Secret read.
  returned: always
  type: str
  sample: cilium-ipsec-keys
encryption:
  description: The Cilium release's encryption settings (chart defaults filled in).
  returned: always
  type: dict
  contains:
    installed:
      description: Whether the Cilium release exists.
      type: bool
    enabled:
      description: C(encryption.enabled).
      type: bool
    type:
      description: C(encryption.type).
      type: str
    ipsec:
      description: Whether IPsec is on.
      type: bool
    key_rotation_duration:
      description: C(encryption.ipsec.keyRotationDuration).
      type: str
      sample: 5m
    key_rotation_seconds:
      description: The same in seconds.
      type: float
      sample: 300.0
rollout:
  description: Whether a rotation would be unsafe now.
  returned: always
  type: dict
  contains:
    in_progress:
      description: A Helm operation, or the agents or the operator rolling out or not ready.
      type: bool
    problems:
      description: What is in progress, one entry per workload.
      type: list
      elements: str
      sample: ["DaemonSet kube-system/cilium: 2/3 ready, 1/3 updated"]
'''

from ansible_collections.meshops.cilium.plugins.module_utils.base import RELEASE_ARGUMENT_SPEC, merged_spec, run_module
from ansible_collections.meshops.cilium.plugins.module_utils.ipsec import (
    current_of,
    duration_seconds,
    encryption_settings,
    read,
    rollout_problems,
)


def run(m):
    p = m.params
    ns = p['namespace']
    problems, release = rollout_problems(m.cluster, ns, p['release_name'])
    enc = encryption_settings(release.values if release is not None else {})
    name = p['secret_name'] or enc['secret_name']
    cur = current_of(read(m.cluster, ns, name), enc['key_name'])
    try:
        seconds = duration_seconds(enc['key_rotation_duration'])
    except ValueError:
        seconds = None
        m.warn('encryption.ipsec.keyRotationDuration %r of the release is not a duration'
               % enc['key_rotation_duration'])
    key = cur.key.public() if cur.key is not None else {}
    m.exit(changed=False, exists=cur.exists, valid=cur.key is not None, error=cur.error,
           spi=key.get('spi'), fingerprint=key.get('fingerprint'), algorithm=key.get('algorithm'),
           icv=key.get('icv'), key_bytes=key.get('key_bytes'), secret_name=name,
           encryption={'installed': release is not None, 'enabled': enc['enabled'], 'type': enc['type'],
                       'ipsec': enc['ipsec'], 'key_rotation_duration': enc['key_rotation_duration'],
                       'key_rotation_seconds': seconds},
           rollout={'in_progress': bool(problems), 'problems': problems})


def main():
    run_module(run, merged_spec(RELEASE_ARGUMENT_SPEC, secret_name=dict(type='str')))


if __name__ == '__main__':
    main()
