#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: meshops.cilium contributors
# SPDX-License-Identifier: Apache-2.0

DOCUMENTATION = r'''
---
module: ipsec_keys
short_description: Create, copy, rotate or remove the Cilium IPsec key (Secret cilium-ipsec-keys)
version_added: 0.2.0
description:
  - Manages Secret C(cilium-ipsec-keys) (key C(keys), type C(Opaque)) in O(namespace), which Cilium's IPsec
    transparent encryption reads. The Cilium chart cannot create it.
  - "The value is one line, C(SPI+ rfc4106(gcm(aes)) HEXKEY ICV) (AEAD) or
    C(SPI+ AUTHALGO AUTHKEY ENCALGO ENCKEY) (C(hmac(sha256)) and C(cbc(aes)), for example). SPI (the key
    ID) is 1..15. The C(+) (per-tunnel keys, derived per node pair) is required: keys without it are refused
    because one key and IV space shared by every node pair is insecure (GHSA-pwqm-x5x6-5586)."
  - Every cluster of a ClusterMesh must hold the same value, rotated in all of them within
    C(encryption.ipsec.keyRotationDuration). Copy it with O(source), inside the module, so the key never
    passes through Ansible variables; the M(meshops.cilium.ipsec_keys_info) module and the
    C(meshops.cilium.ipsec) role check that every cluster agrees.
  - O(state=present) keeps a usable existing key, else writes the O(key) option's key, the O(source)
    cluster's key, or a new random key (from the operating system's secure random source) under SPI 1.
    A different existing key is an error unless O(reconcile=true).
  - O(state=rotated) writes a new key under the next SPI (15 is followed by 1) with the same algorithm and key
    length, either a new random one or the O(source) cluster's when that cluster was rotated already. With
    O(from_spi) (and O(from_fingerprint)) the rotation is idempotent and safe to re-run after a partial run.
  - O(state=absent) removes the Secret.
  - Returns the SPI and a short fingerprint of the value, never the key; check mode and C(--diff) show only
    those.
author:
  - meshops maintainers (@meshops)
options:
  state:
    description:
      - V(present), V(rotated) or V(absent), see above.
    type: str
    choices: [present, rotated, absent]
    default: present
  secret_name:
    description:
      - Name of the Secret (the chart's C(encryption.ipsec.secretName)). The value is always under key C(keys).
    type: str
    default: cilium-ipsec-keys
  key:
    description:
      - The key value to write, for keys kept in Ansible Vault or an AWX credential.
      - With O(state=present) it is written when the cluster has no usable key; with O(state=rotated) it must be
        under the next SPI and have the current key's algorithm and length.
      - Prefer O(source) (or generation) to keep the key out of Ansible variables altogether.
    type: str
  icv:
    description:
      - ICV length in bits of a generated C(rfc4106(gcm(aes))) key. A rotation keeps the current key's ICV.
    type: int
    choices: [96, 128, 256]
    default: 128
  from_spi:
    description:
      - With O(state=rotated), the SPI of the key the rotation starts from (the one every cluster agreed on).
      - A cluster that holds that key is rotated; a cluster already under the next SPI counts as rotated
        (RV(action=unchanged)), so a re-run after a partial rotation rotates only the rest; any other
        key is an error.
      - Without it, every run rotates once more.
    type: int
  from_fingerprint:
    description:
      - With O(from_spi), the fingerprint of the key the rotation starts from (RV(fingerprint) of an earlier run).
    type: str
  reconcile:
    description:
      - Overwrite a different (or unusable) existing key with the wanted one (O(key), the O(source)'s key or,
        for an unusable key without either, a new one). This recovers a cluster that missed a rotation.
      - Replacing a key under the same SPI makes the cluster's agents reject the other side's packets until they
        reload the key; rotate the whole mesh afterwards.
    type: bool
    default: false
  ignore_rollout:
    description:
      - With O(state=rotated), rotate even while the Cilium release is being upgraded or its agents
        (DaemonSet C(cilium)) or operator (Deployment C(cilium-operator)) are rolling out or not ready.
        Cilium's documentation says never to rotate during an upgrade.
    type: bool
    default: false
  force:
    description:
      - With O(state=absent), remove the Secret even though the Cilium release has IPsec enabled (agents
        cannot restart without it).
    type: bool
    default: false
extends_documentation_fragment:
  - meshops.cilium.cluster
  - meshops.cilium.release
  - meshops.cilium.source
  - meshops.cilium.attributes
  - meshops.cilium.attributes.write_module
notes:
  - Needs get, create, update and delete on Secrets in O(namespace), get on Secrets in the source's namespace,
    and for O(state=rotated) list on Secrets (the Helm release) and get on DaemonSets and Deployments.
  - The fingerprint is the first 16 hex digits of the SHA-256 of the whole value; equal fingerprints mean equal
    values.
  - In check mode a key that would be generated is not known yet, so RV(fingerprint) is V(null).
  - Agents load a new key within about a minute (C(encryption.ipsec.keyWatcher)) and keep the previous one for
    C(encryption.ipsec.keyRotationDuration) (5m by default), so rotate every cluster of a mesh within that time.
seealso:
  - module: meshops.cilium.ipsec_keys_info
  - module: meshops.cilium.cilium_install
  - name: IPsec transparent encryption
    description: Cilium's documentation, including key rotation.
    link: https://docs.cilium.io/en/stable/security/network/encryption-ipsec/
'''

EXAMPLES = r'''
- name: A key in the first cluster (kept if it has one, else generated)
  meshops.cilium.ipsec_keys:
    context: mesh-1
  register: first

- name: The same key in the other clusters, copied inside the module
  meshops.cilium.ipsec_keys:
    context: "{{ item }}"
    source:
      context: mesh-1
  loop: [mesh-2, mesh-3]

- name: Rotate the first cluster, starting from the key every cluster agreed on
  meshops.cilium.ipsec_keys:
    context: mesh-1
    state: rotated
    from_spi: "{{ first.spi }}"
    from_fingerprint: "{{ first.fingerprint }}"

- name: Then copy the rotated key to the others (a re-run does nothing)
  meshops.cilium.ipsec_keys:
    context: "{{ item }}"
    state: rotated
    from_spi: "{{ first.spi }}"
    from_fingerprint: "{{ first.fingerprint }}"
    source:
      context: mesh-1
  loop: [mesh-2, mesh-3]

- name: Recover a cluster that missed a rotation
  meshops.cilium.ipsec_keys:
    context: mesh-3
    source:
      context: mesh-1
    reconcile: true

- name: A key from Ansible Vault
  meshops.cilium.ipsec_keys:
    context: mesh-1
    key: "{{ vault_cilium_ipsec_key }}"
'''

RETURN = r'''
cluster:
  description: The name this module knows the target cluster by.
  returned: always
  type: str
  sample: mesh-2
action:
  description:
    - V(created), V(copied) (from O(source)), V(unchanged), V(replaced) (with O(reconcile)), V(rotated),
      V(deleted) or V(absent). In check mode, what would be done.
  returned: always
  type: str
  sample: rotated
spi:
  description: The SPI of the key the cluster holds afterwards (in check mode, would hold). V(null) without a key.
  returned: always
  type: int
  sample: 3
fingerprint:
  description:
    - First 16 hex digits of the SHA-256 of the key value the cluster holds afterwards.
    - V(null) without a key, and in check mode when the key would be generated or copied from a source that the
      same run rotates first.
  returned: always
  type: str
  sample: 9f2c4e1a7b3d5f60
previous:
  description: What the cluster held before, C(exists), C(valid) and C(spi) and C(fingerprint) or C(error).
  returned: always
  type: dict
  sample: {"exists": true, "valid": true, "spi": 2, "fingerprint": "0d1e2f3a4b5c6d7e"}
source:
  description: The source cluster's name and key (SPI, fingerprint), with O(source).
  returned: when O(source) is given
  type: dict
  sample: {"cluster": "mesh-1", "spi": 3, "fingerprint": "9f2c4e1a7b3d5f60"}
written:
  description:
    - Only when the module failed after it had written to the cluster (for example the IPsec Secret, then a readiness
      wait failed), what was written. The result then says C(changed=true) and C(msg) ends with what was
      written and how to recover (re-run the task, or the C(helm rollback) command for a release).
  returned: failure after a write
  type: list
  elements: str
  sample: ["Secret kube-system/cilium-ipsec-keys (SPI 2, fingerprint 0f1e2d3c4b5a6978)"]
'''

from ansible_collections.meshops.cilium.plugins.module_utils.base import (
    RELEASE_ARGUMENT_SPEC,
    SOURCE_ARGUMENT_SPEC,
    merged_spec,
    run_module,
)
from ansible_collections.meshops.cilium.plugins.module_utils.cluster import (
    ClusterError,
)
from ansible_collections.meshops.cilium.plugins.module_utils.ipsec import (
    SECRET_KEY,
    SPI_MAX,
    SPI_MIN,
    IPsecKeyError,
    current_of,
    delete,
    encryption_settings,
    generate,
    parse_key,
    plan_absent,
    plan_present,
    plan_rotated,
    read,
    read_source_key,
    rollout_problems,
    write,
)


def _state(key, spi=None):
    if key is None:
        return {'exists': spi is not None, 'valid': spi is not None, 'spi': spi, 'fingerprint': None}
    return {'exists': True, 'valid': True, 'spi': key.spi, 'fingerprint': key.fingerprint}


def run(m):
    p = m.params
    ns, name = p['namespace'], p['secret_name']
    # the options first, before connecting
    wanted = None
    if p['key'] is not None:
        try:
            wanted = parse_key(p['key'])
        except IPsecKeyError as e:
            m.fail('the key option is not a usable IPsec key: %s' % e)
    if p['state'] == 'rotated':
        if p['from_fingerprint'] is not None and p['from_spi'] is None:
            m.fail('from_fingerprint needs from_spi (the SPI of the key the rotation starts from)')
        if p['from_spi'] is not None and not SPI_MIN <= p['from_spi'] <= SPI_MAX:
            m.fail('from_spi must be %d..%d, got %d' % (SPI_MIN, SPI_MAX, p['from_spi']))
    secret = read(m.cluster, ns, name)
    current = current_of(secret, SECRET_KEY)
    extra = {}
    if p['state'] == 'absent':
        plan = plan_absent(current)
        if plan.write and not p['force']:
            problems, release = rollout_problems(m.cluster, ns, p['release_name'])
            enc = encryption_settings(release.values if release else {})
            if release is not None and enc['ipsec'] and enc['secret_name'] == name:
                m.fail('the Cilium release %s/%s has IPsec enabled with Secret %s: its agents cannot restart '
                       'without it. Disable encryption first (cilium_install encryption_type=disabled), or set '
                       'force=true' % (ns, p['release_name'], name))
        if plan.write and not m.check_mode:
            delete(m.cluster, ns, name)
            m.wrote('deleted Secret %s/%s' % (ns, name))
        m.exit(changed=plan.write is not None, action=plan.action, spi=None, fingerprint=None,
               previous=current.state, before=current.state, after={'exists': False})
        return

    source_name = source = None
    if p['source']:
        try:
            source_name, source = read_source_key(p['source'], ns, name, SECRET_KEY)
        except ClusterError as e:
            m.fail('source cluster %s' % e)
        extra['source'] = {'cluster': source_name, 'spi': source.spi, 'fingerprint': source.fingerprint}

    generated = []

    def new_key(spi=1, like=None):
        key = generate(spi, like=like, icv=p['icv'])
        generated.append(key)
        return key

    # an IPsecKeyError of the planners fails the module in ClusterModule.run
    if p['state'] == 'present':
        plan = plan_present(current, wanted if wanted is not None else source, source_name,
                            p['reconcile'], generate_key=new_key)
    else:
        if not p['ignore_rollout']:
            problems, dummy = rollout_problems(m.cluster, ns, p['release_name'])
            if problems:
                m.fail('a Cilium rollout is in progress (%s): never rotate IPsec keys during an upgrade or '
                       'rollout. Wait for it to finish, or set ignore_rollout=true' % '; '.join(problems))
        plan = plan_rotated(current, source, source_name, p['from_spi'], p['from_fingerprint'],
                            p['reconcile'], m.check_mode, generate_key=new_key, wanted=wanted)
    for w in plan.warnings:
        m.warn(w)
    if plan.write and not m.check_mode:
        write(m.cluster, ns, plan.key, secret, name, SECRET_KEY)
        m.wrote('Secret %s/%s (SPI %s, fingerprint %s)' % (ns, name, plan.key.spi, plan.key.fingerprint),
                recover='re-run the task once the cause is fixed (the Secret is kept as written)')
    # a key generated in check mode is thrown away: its fingerprint would name a key that never exists
    shown = None if (m.check_mode and plan.key is not None and plan.key in generated) else plan.key
    after = _state(shown, plan.spi)
    m.exit(changed=plan.write is not None, action=plan.action, spi=plan.spi,
           fingerprint=shown.fingerprint if shown is not None else None, previous=current.state,
           before=current.state, after=after, **extra)


def main():
    run_module(run, merged_spec(
        RELEASE_ARGUMENT_SPEC,
        SOURCE_ARGUMENT_SPEC,
        state=dict(type='str', choices=['present', 'rotated', 'absent'], default='present'),
        secret_name=dict(type='str', default='cilium-ipsec-keys'),
        key=dict(type='str', no_log=True),
        icv=dict(type='int', choices=[96, 128, 256], default=128),
        from_spi=dict(type='int'),
        from_fingerprint=dict(type='str'),
        reconcile=dict(type='bool', default=False),
        ignore_rollout=dict(type='bool', default=False),
        force=dict(type='bool', default=False),
    ), mutually_exclusive=[('key', 'source')])


if __name__ == '__main__':
    main()
