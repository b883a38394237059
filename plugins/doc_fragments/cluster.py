# -*- coding: utf-8 -*-
# Copyright: meshops.cilium contributors
# SPDX-License-Identifier: Apache-2.0

from __future__ import absolute_import, division, print_function
__metaclass__ = type


class ModuleDocFragment(object):
    """Connection options shared by every module that talks to a cluster.

    The argument spec that matches this fragment lives in
    plugins/module_utils/cluster.py (CLUSTER_ARGUMENT_SPEC); keep them in step.
    """

    DOCUMENTATION = r'''
options:
  kubeconfig:
    description:
      - Path to a kubeconfig file, or the kubeconfig itself as a dictionary (inline).
      - A path may list several files separated by C(:), as C(KUBECONFIG) does.
      - When neither O(kubeconfig) nor O(host) is given, C(~/.kube/config) is used.
      - Leaf values of an inline kubeconfig that hold credentials (C(token), C(password),
        C(client-key-data), C(client-certificate-data), every value of an exec plugin's C(env) and of an
        C(auth-provider)'s C(config), the password of a C(proxy-url)) are hidden from the module's output
        and its logged invocation.
      - Can also be set with the E(K8S_AUTH_KUBECONFIG) environment variable.
    type: raw
  context:
    description:
      - The kubeconfig context to use. Defaults to the kubeconfig's C(current-context).
      - If the context does not exist the module fails and lists the contexts that do.
      - Can also be set with the E(K8S_AUTH_CONTEXT) environment variable.
    type: str
  host:
    description:
      - URL of the Kubernetes API server, for example C(https://10.0.0.1:6443).
      - Overrides the server of the kubeconfig context when both are given.
      - Can also be set with the E(K8S_AUTH_HOST) environment variable.
    type: str
  api_key:
    description:
      - Bearer token used to authenticate to the API server.
      - Can also be set with the E(K8S_AUTH_API_KEY) environment variable.
    type: str
  ca_cert:
    description:
      - Path to a CA bundle used to verify the API server's certificate.
      - Can also be set with the E(K8S_AUTH_SSL_CA_CERT) environment variable.
    type: path
    aliases: [ssl_ca_cert]
  client_cert:
    description:
      - Path to a client certificate used to authenticate to the API server.
      - Can also be set with the E(K8S_AUTH_CERT_FILE) environment variable.
    type: path
    aliases: [cert_file]
  client_key:
    description:
      - Path to the private key of O(client_cert).
      - Only the path is passed; it is still treated as sensitive and hidden from output.
      - Can also be set with the E(K8S_AUTH_KEY_FILE) environment variable.
    type: path
    aliases: [key_file]
  validate_certs:
    description:
      - Whether to verify the API server's TLS certificate.
      - Can also be set with the E(K8S_AUTH_VERIFY_SSL) environment variable.
      - When not set, the kubeconfig's C(insecure-skip-tls-verify) decides (verification on by default).
    type: bool
    aliases: [verify_ssl]
  proxy:
    description:
      - URL of an HTTP(S) proxy to reach the API server through, for example C(http://proxy:3128).
      - Can also be set with the E(K8S_AUTH_PROXY) environment variable.
    type: str
  connect_timeout:
    description:
      - Seconds to wait for a TCP/TLS connection to the API server.
      - Kept small so that an unreachable cluster fails fast instead of stalling a fleet run.
    type: int
    default: 10
  request_timeout:
    description:
      - Seconds to wait for the API server to answer one request once connected.
    type: int
    default: 30
requirements:
  - kubernetes >= 31 (Python library)
notes:
  - Every request is made at most once (no client-side retries), so an unreachable API server
    fails after O(connect_timeout) seconds with a message naming the cluster.
  - Set these options once per play with C(module_defaults) and the group
    C(group/meshops.cilium.cluster).
'''
