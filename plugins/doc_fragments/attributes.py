# -*- coding: utf-8 -*-
# Copyright: meshops.cilium contributors
# SPDX-License-Identifier: Apache-2.0


class ModuleDocFragment:
    """Attribute blocks shared by the collection's modules.

    Modules extend ``meshops.cilium.attributes`` (the common set) and then one of
    the narrower fragments, for example ``meshops.cilium.attributes.info_module``.
    The C(action_group) attribute comes with the connection options (doc fragment
    ``meshops.cilium.cluster``): the modules that take them are the group's members.
    """

    DOCUMENTATION = r'''
options: {}
attributes:
  check_mode:
    description: Can run in C(check_mode) and return changed status prediction without modifying target.
  diff_mode:
    description: Will return details on what has changed (or possibly needs changing in C(check_mode)), when in diff mode.
'''

    INFO_MODULE = r'''
options: {}
attributes:
  check_mode:
    support: full
    details:
      - This module only reads from the cluster; it behaves the same in check mode.
  diff_mode:
    support: none
    details:
      - This module changes nothing, so it has no diff.
'''

    # Secrets are never shown: values of Secret data and key material appear as C(********).
    WRITE_MODULE = r'''
options: {}
attributes:
  check_mode:
    support: full
    details:
      - Reports what would change and changes nothing.
  diff_mode:
    support: full
    details:
      - Secret values are masked as C(********) in the diff.
'''
