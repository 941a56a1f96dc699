package domain

import (
	"go/ast"
	"go/parser"
	"go/token"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// forbiddenImports are what the pure core must not use (docs/architecture.md,
// "Conventions" 1): actors, storage, messaging, the network, the process
// environment, logging and randomness. An entry ending in "/" forbids the
// path and everything under it; any other entry forbids that path and its
// sub-packages (so "log" also forbids log/slog, and "math/rand"
// math/rand/v2).
var forbiddenImports = []string{
	"github.com/asynkron/protoactor-go",
	"github.com/cockroachdb/pebble",
	"github.com/nats-io/",
	"net",
	"os",
	"syscall",
	"log",
	"math/rand",
}

// forbiddenTimeFuncs read or wait on the wall clock; the time is passed in.
var forbiddenTimeFuncs = map[string]bool{
	"Now": true, "Since": true, "Until": true, "Sleep": true, "After": true,
	"Tick": true, "NewTimer": true, "NewTicker": true, "AfterFunc": true,
}

func importForbidden(path string) bool {
	for _, f := range forbiddenImports {
		if strings.HasSuffix(f, "/") {
			if strings.HasPrefix(path, f) {
				return true
			}
			continue
		}
		// A prefix match on the module path covers major versions
		// (pebble/v2) and sub-packages (net/http, os/exec).
		if path == f || strings.HasPrefix(path, f+"/") {
			return true
		}
	}
	return false
}

// impurities lists, as "file:line:col: …", every forbidden import and every
// use of a clock function of package time in one parsed file.
func impurities(fset *token.FileSet, file *ast.File) []string {
	var out []string
	timeName := ""
	for _, imp := range file.Imports {
		path, err := strconv.Unquote(imp.Path.Value)
		if err != nil {
			continue
		}
		pos := fset.Position(imp.Pos())
		if importForbidden(path) {
			out = append(out, pos.String()+": imports "+path)
		}
		if path == "time" {
			timeName = "time"
			if imp.Name != nil {
				timeName = imp.Name.Name
				if timeName == "." {
					out = append(out, pos.String()+`: dot-imports "time", which hides its clock functions from this test`)
				}
			}
		}
	}
	if timeName == "" || timeName == "_" || timeName == "." {
		return out
	}
	ast.Inspect(file, func(n ast.Node) bool {
		sel, ok := n.(*ast.SelectorExpr)
		if !ok {
			return true
		}
		// A local variable that shadows the package name would be reported
		// too; in a file that imports time, that is worth renaming anyway.
		if id, ok := sel.X.(*ast.Ident); ok && id.Name == timeName && forbiddenTimeFuncs[sel.Sel.Name] {
			out = append(out, fset.Position(sel.Pos()).String()+": uses time."+sel.Sel.Name+": the clock must be passed in")
		}
		return true
	})
	return out
}

// TestDomainIsPure proves package domain does no I/O and reads no clock: no
// non-test file imports a forbidden package or calls time.Now and the like.
func TestDomainIsPure(t *testing.T) {
	files, err := filepath.Glob("*.go")
	require.NoError(t, err)
	fset := token.NewFileSet()
	checked := 0
	for _, name := range files {
		if strings.HasSuffix(name, "_test.go") {
			continue
		}
		file, err := parser.ParseFile(fset, name, nil, parser.SkipObjectResolution)
		if err != nil {
			t.Errorf("parse %s: %v", name, err)
			continue
		}
		checked++
		for _, p := range impurities(fset, file) {
			t.Error(p)
		}
	}
	if checked == 0 {
		t.Fatal("no non-test Go files found: is the test running in the package directory?")
	}
}

// TestImpurities proves the checker itself finds what it must, with the
// file and line, and leaves alone what it must.
func TestImpurities(t *testing.T) {
	const src = `package domain

import (
	"encoding/json"
	"net/http"
	clock "time"
	"github.com/cockroachdb/pebble/v2"
	"log/slog"
)

func f(time int) int { return time }

func g() {
	_ = clock.Now()
	_ = clock.Duration(1)
	since := clock.Since
	_ = since
	_ = json.Marshal
}
`
	fset := token.NewFileSet()
	file, err := parser.ParseFile(fset, "bad.go", src, parser.SkipObjectResolution)
	require.NoError(t, err)
	got := impurities(fset, file)
	want := []string{
		"bad.go:5:2: imports net/http",
		"bad.go:7:2: imports github.com/cockroachdb/pebble/v2",
		"bad.go:8:2: imports log/slog",
		"bad.go:14:6: uses time.Now: the clock must be passed in",
		"bad.go:16:11: uses time.Since: the clock must be passed in",
	}
	assert.Equal(t, want, got, "impurities")
	for _, path := range []string{"os", "os/exec", "net", "syscall", "math/rand", "math/rand/v2", "log",
		"github.com/nats-io/nats.go", "github.com/asynkron/protoactor-go/actor"} {
		assert.True(t, importForbidden(path), "importForbidden(%q)", path)
	}
	for _, path := range []string{"time", "errors", "encoding/json", "embed", "math/big", "network", "osx", "logic",
		"github.com/shopspring/decimal", "github.com/cockroachdb/datadriven"} {
		assert.False(t, importForbidden(path), "importForbidden(%q)", path)
	}
}
