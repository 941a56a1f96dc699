package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"runtime/debug"
	"strings"
)

// runVersion prints what the binary was built from: its module and version,
// the VCS revision (and whether the tree had changes), and the Go version
// and platform.
func runVersion(_ context.Context, args []string, stdout, stderr io.Writer) error {
	f := newFlags("version", stderr)
	if err := f.parse(args); err != nil {
		return err
	}
	bi, ok := debug.ReadBuildInfo()
	if !ok {
		return errors.New("no build information in this binary")
	}
	_, err := io.WriteString(stdout, versionText(bi))
	return err
}

// versionText is the version command's output for a build:
//
//	mastertrust v0.0.0-20261205101500-0e319dc8a1b2+dirty (github.com/acme/mastertrust)
//	revision 0e319dc8a1b2c3d4e5f60718293a4b5c6d7e8f90 of 2026-12-05T10:15:00Z, with uncommitted changes
//	built with go1.26.8 for linux/amd64
//
// A binary built without VCS information (go run, go build -buildvcs=false,
// a test binary) says so instead of the revision.
func versionText(bi *debug.BuildInfo) string {
	settings := make(map[string]string, len(bi.Settings))
	for _, s := range bi.Settings {
		settings[s.Key] = s.Value
	}
	var b strings.Builder
	version := bi.Main.Version
	if version == "" {
		version = "(devel)"
	}
	module := bi.Main.Path
	if module == "" {
		module = bi.Path
	}
	fmt.Fprintf(&b, "mastertrust %s (%s)\n", version, module)
	if rev := settings["vcs.revision"]; rev != "" {
		fmt.Fprintf(&b, "revision %s", rev)
		if t := settings["vcs.time"]; t != "" {
			fmt.Fprintf(&b, " of %s", t)
		}
		if settings["vcs.modified"] == "true" {
			b.WriteString(", with uncommitted changes")
		}
		b.WriteString("\n")
	} else {
		b.WriteString("revision unknown: built without VCS information (go run, or -buildvcs=false)\n")
	}
	goos, goarch := settings["GOOS"], settings["GOARCH"]
	fmt.Fprintf(&b, "built with %s", bi.GoVersion)
	if goos != "" && goarch != "" {
		fmt.Fprintf(&b, " for %s/%s", goos, goarch)
	}
	b.WriteString("\n")
	return b.String()
}
