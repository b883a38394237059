//go:build tools

// Package tools pins cilium-cli, the command-line tool the Cilium documentation uses for
// `cilium install` and `cilium clustermesh enable|connect|status`: the reference peer of the
// benchmark of issue 13 (benchmarks/peer.py). It is built on demand only
// (python -m hack.fleet build-cilium-cli), never by the fleet's build_all().
package tools

import (
	_ "github.com/cilium/cilium/cilium-cli/cmd/cilium"
)
