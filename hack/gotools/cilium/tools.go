//go:build tools

// Package tools pins the Cilium 1.20 programs the local fleet runs for real: the
// clustermesh-apiserver binary (subcommands clustermesh, kvstoremesh, etcdinit,
// clustermesh-dbg, kvstoremesh-dbg) and cilium-dbg.
package tools

import (
	_ "github.com/cilium/cilium/cilium-dbg"
	_ "github.com/cilium/cilium/clustermesh-apiserver"
)
