# -*- coding: utf-8 -*-
# Copyright: meshops.cilium contributors
# SPDX-License-Identifier: Apache-2.0


class ModuleDocFragment:
    """The ``source`` option of modules that copy a secret from another cluster inside the module.

    The argument spec is SOURCE_ARGUMENT_SPEC in plugins/module_utils/base.py; keep them in step.
    """

    DOCUMENTATION = r'''
options:
  source:
    description:
      - Another cluster to copy from, given by the same connection options as the target (environment
        variables are not used for it). The value is read and written inside the module, so it never passes
        through Ansible variables, the module's arguments or its result.
    type: dict
    suboptions:
      namespace:
        description:
          - Namespace of the Secret in the source cluster. Defaults to O(namespace).
        type: str
      kubeconfig:
        description:
          - Path to a kubeconfig file, or the kubeconfig itself as a dictionary.
        type: raw
      context:
        description:
          - The kubeconfig context of the source cluster.
        type: str
      host:
        description:
          - URL of the source cluster's API server.
        type: str
      api_key:
        description:
          - Bearer token for the source cluster.
        type: str
      ca_cert:
        description:
          - CA bundle to verify the source API server's certificate.
        type: path
        aliases: [ssl_ca_cert]
      client_cert:
        description:
          - Client certificate for the source cluster.
        type: path
        aliases: [cert_file]
      client_key:
        description:
          - Key of O(source.client_cert).
        type: path
        aliases: [key_file]
      validate_certs:
        description:
          - Whether to verify the source API server's certificate.
        type: bool
        aliases: [verify_ssl]
      proxy:
        description:
          - HTTP(S) proxy to reach the source API server.
        type: str
      connect_timeout:
        description:
          - Seconds to wait for a connection to the source API server.
        type: int
        default: 10
      request_timeout:
        description:
          - Seconds to wait for one answer of the source API server.
        type: int
        default: 30
'''
