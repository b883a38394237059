#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: meshops.cilium contributors
# SPDX-License-Identifier: Apache-2.0

DOCUMENTATION = r'''
---
module: cilium_ca
short_description: Share one Cilium CA (Secret cilium-ca) across the clusters of a mesh
version_added: 0.1.0
description:
  - Makes Secret C(cilium-ca) (keys C(ca.crt) and C(ca.key), type C(Opaque)) in O(namespace) hold the CA
    that every cluster of the mesh shares. Run it on each cluster B(before) Cilium is installed there.
  - Agents trust a remote clustermesh-apiserver through their local C(ca.crt), so all clusters of a mesh
    must use the same CA. The Cilium chart reuses an existing C(cilium-ca) (Helm C(lookup)).
  - With O(source), the CA is copied from Secret C(cilium-ca) of the source cluster inside the module; the
    key never passes through Ansible variables or the module's result.
  - Without O(source), an existing usable CA is kept; when there is none, a new one is generated
    (CN C(Cilium CA)).
  - The Secret carries Helm's ownership metadata for the Cilium release (label
    C(app.kubernetes.io/managed-by=Helm), annotations C(meta.helm.sh/release-name) and
    C(meta.helm.sh/release-namespace)), so that C(helm install) can adopt it. An identical CA without that
    metadata gets it added (RV(action=adopted)).
  - A different existing CA is only replaced with O(force=true).
  - Only the CA's fingerprint and SubjectKeyId are returned.
author:
  - meshops maintainers (@meshops)
options:
  namespace:
    description:
      - Namespace of Cilium (where Secret C(cilium-ca) lives and where the Helm release is).
    type: str
    default: kube-system
  release_name:
    description:
      - Name of the Cilium Helm release that will own the Secret.
    type: str
    default: cilium
  force:
    description:
      - Replace a different (or unusable) existing CA, or take over a C(cilium-ca) owned by another Helm release.
      - Replacing the CA of a meshed cluster breaks every ClusterMesh connection to it until all peers trust
        the new CA, and certificates issued from the old CA must be re-issued.
    type: bool
    default: false
  key_type:
    description:
      - Key of a generated CA. V(ecdsa) is P-256, V(rsa) is 2048 bits.
    type: str
    choices: [ecdsa, rsa]
    default: ecdsa
  validity_days:
    description:
      - Validity of a generated CA in days, from V(1) to V(36500).
    type: int
    default: 1095
extends_documentation_fragment:
  - meshops.cilium.cluster
  - meshops.cilium.source
  - meshops.cilium.attributes
  - meshops.cilium.attributes.write_module
requirements:
  - cryptography >= 42 (Python library)
notes:
  - Needs get, create, patch and update on Secrets in O(namespace) (and get in the source's namespace).
  - The diff shows fingerprints only, never key material.
seealso:
  - module: meshops.cilium.cilium_install
  - name: Shared certificate authority
    description: Cilium's documentation of sharing the CA between clusters.
    link: https://docs.cilium.io/en/stable/network/clustermesh/clustermesh/#shared-certificate-authority
'''

EXAMPLES = r'''
- name: Create the CA in the first cluster (or keep the one it has)
  meshops.cilium.cilium_ca:
    kubeconfig: ~/.kube/config
    context: mesh-1
  register: ca

- name: Copy it to the other clusters before installing Cilium there
  meshops.cilium.cilium_ca:
    kubeconfig: ~/.kube/config
    context: "{{ item }}"
    source:
      kubeconfig: ~/.kube/config
      context: mesh-1
  loop: [mesh-2, mesh-3]

- name: Every cluster of the inventory, connection options set once
  module_defaults:
    group/meshops.cilium.cluster:
      kubeconfig: "{{ fleet_kubeconfig }}"
  meshops.cilium.cilium_ca:
    context: "{{ inventory_hostname }}"
    source:
      kubeconfig: "{{ fleet_kubeconfig }}"
      context: "{{ groups['mesh'] | first }}"
  when: inventory_hostname != groups['mesh'] | first
  delegate_to: localhost
'''

RETURN = r'''
cluster:
  description: The name this module knows the target cluster by.
  returned: always
  type: str
  sample: mesh-2
fingerprint:
  description: SHA-256 of the CA certificate (DER), colon separated upper-case hex.
  returned: always
  type: str
  sample: "3A:1F:...:9C"
subject_key_id:
  description: SubjectKeyIdentifier of the CA (hex), what cilium-cli compares between clusters.
  returned: always
  type: str
  sample: 5d0e3c0f3a8d8a4f6e7b1c2d3e4f5a6b7c8d9e0f
action:
  description:
    - V(created) (a new CA), V(copied) (from O(source)), V(unchanged), V(adopted) (same CA, Helm ownership
      metadata added) or V(replaced) (with O(force)).
    - In check mode, what would be done.
  returned: always
  type: str
  sample: copied
written:
  description:
    - Only when the module failed after it had written to the cluster (for example Secret C(cilium-ca), then a readiness
      wait failed), what was written. The result then says C(changed=true) and C(msg) ends with what was
      written and how to recover (re-run the task, or the C(helm rollback) command for a release).
  returned: failure after a write
  type: list
  elements: str
  sample: ["Secret kube-system/cilium-ca (create, CA fingerprint 3A:1F:...:9C)"]
'''

from ansible.module_utils.basic import missing_required_lib

from ansible_collections.meshops.cilium.plugins.module_utils.base import (
    RELEASE_ARGUMENT_SPEC,
    SOURCE_ARGUMENT_SPEC,
    merged_spec,
    run_module,
)
from ansible_collections.meshops.cilium.plugins.module_utils.ca import (
    HAS_CRYPTOGRAPHY,
    apply,
    complete_material,
    generate_ca,
    identity,
    owner_release,
    plan,
    read_ca_secret,
    source_material,
    validate_options,
)
from ansible_collections.meshops.cilium.plugins.module_utils.cluster import (
    CONNECTION_OPTIONS,
    Cluster,
    ClusterError,
)
from ansible_collections.meshops.cilium.plugins.module_utils.info import CILIUM_CA


def _state(secret, namespace):
    if secret is None:
        return {'exists': False}
    material = complete_material(secret)
    out = {'exists': True, 'fingerprint': None, 'subject_key_id': None, 'helm_release': None}
    if material:
        ident = identity(material[0])
        out.update(fingerprint=ident['fingerprint'], subject_key_id=ident['subject_key_id'])
    owner = owner_release(secret)
    if owner:
        out['helm_release'] = '%s/%s' % (owner[1], owner[0])
    return out


def run(m):
    p = m.params
    if not HAS_CRYPTOGRAPHY:
        m.module.fail_json(msg=missing_required_lib('cryptography'))
    ns = p['namespace']
    validate_options(p['key_type'], p['validity_days'])  # before connecting (CAError: ClusterModule.run fails)
    current = read_ca_secret(m.cluster, ns)
    copied = False
    if p['source']:
        src_params = dict((k, p['source'].get(k)) for k in CONNECTION_OPTIONS)
        src = None
        try:
            src = Cluster(src_params, environ={})  # never the target's environment
            material = source_material(src, p['source'].get('namespace') or ns)
        except ClusterError as e:
            m.fail('source cluster %s' % e)
        finally:
            if src is not None:
                src.close()
        copied = True
    else:
        material = complete_material(current) if current is not None else None
        if material is None:
            material = generate_ca(p['key_type'], p['validity_days'])
    action, write = plan(current, material, copied, p['force'], p['release_name'], ns)
    ident = identity(material[0])
    if write and not m.check_mode:
        apply(m.cluster, ns, write, material, p['release_name'], ns, current=current)
        m.wrote('Secret %s/%s (%s, CA fingerprint %s)' % (ns, CILIUM_CA, write, ident['fingerprint']),
                recover='re-run the task once the cause is fixed (the Secret is kept as written)')
    before = _state(current, ns)
    after = {'exists': True, 'fingerprint': ident['fingerprint'], 'subject_key_id': ident['subject_key_id'],
             'helm_release': '%s/%s' % (ns, p['release_name'])}
    m.exit(changed=write is not None, action=action, fingerprint=ident['fingerprint'],
           subject_key_id=ident['subject_key_id'], before=before, after=after)


# the module's own options (ClusterModule adds the connection's); also the action plugin's
ARGUMENT_SPEC = merged_spec(
    RELEASE_ARGUMENT_SPEC,
    SOURCE_ARGUMENT_SPEC,
    force=dict(type='bool', default=False),
    key_type=dict(type='str', choices=['ecdsa', 'rsa'], default='ecdsa'),
    validity_days=dict(type='int', default=1095),
)


def main():
    run_module(run, ARGUMENT_SPEC)


if __name__ == '__main__':
    main()
