// Command cilium-charts writes released Cilium Helm chart archives, taken from the
// embedded filesystem of the pinned github.com/cilium/charts Go module, into a directory.
//
//	cilium-charts -out DIR 1.17.17 1.18.11 1.19.5
//	cilium-charts -list
package main

import (
	"flag"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"

	charts "github.com/cilium/charts"
)

func main() {
	out := flag.String("out", ".", "directory to write cilium-<version>.tgz archives into")
	list := flag.Bool("list", false, "list the chart versions the pinned module holds")
	flag.Parse()

	if *list {
		entries, err := fs.Glob(charts.HelmFS, "cilium-*.tgz")
		if err != nil {
			fail(err)
		}
		sort.Strings(entries)
		for _, e := range entries {
			fmt.Println(strings.TrimSuffix(strings.TrimPrefix(e, "cilium-"), ".tgz"))
		}
		return
	}
	if flag.NArg() == 0 {
		fail(fmt.Errorf("name at least one chart version, e.g. 1.19.5"))
	}
	if err := os.MkdirAll(*out, 0o755); err != nil {
		fail(err)
	}
	for _, v := range flag.Args() {
		name := "cilium-" + v + ".tgz"
		data, err := charts.HelmFS.ReadFile(name)
		if err != nil {
			fail(fmt.Errorf("chart %s is not in the pinned github.com/cilium/charts module: %w", v, err))
		}
		dst := filepath.Join(*out, name)
		if err := os.WriteFile(dst+".tmp", data, 0o644); err != nil {
			fail(err)
		}
		if err := os.Rename(dst+".tmp", dst); err != nil {
			fail(err)
		}
		fmt.Printf("wrote %s (%d bytes)\n", dst, len(data))
	}
}

func fail(err error) {
	fmt.Fprintln(os.Stderr, "cilium-charts:", err)
	os.Exit(1)
}
