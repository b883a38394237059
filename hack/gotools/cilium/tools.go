//go:build tools

// Package tools pins the Cilium 1.20 programs the local fleet runs for real: the
// clustermesh-apiserver binary (subcommands clustermesh, kvstoremesh, etcdinit,
// clustermesh-dbg, kvstoremesh-dbg), cilium-dbg, the agent (daemon, installed as
// cilium-agent), cilium-health-responder (which the
// agent starts in its health endpoint) and the CNI plugin cilium-cni.
package tools

import (
	_ "github.com/cilium/cilium/cilium-dbg"
	_ "github.com/cilium/cilium/clustermesh-apiserver"
	_ "github.com/cilium/cilium/cilium-health/responder"
	_ "github.com/cilium/cilium/daemon"
	_ "github.com/cilium/cilium/plugins/cilium-cni"
)
