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

// forbiddenTimeFuncs read or wait on the wall clock; the time is passed in.
var forbiddenTimeFuncs = map[string]bool{
	"Now": true, "Since": true, "Until": true, "Sleep": true, "After": true,
	"Tick": true, "NewTimer": true, "NewTicker": true, "AfterFunc": true,
}

// clockUses lists, as "file:line:col: …", every use of a clock function of
// package time in one parsed file. (What the pure core may import is the
// layer table's to say: internal/repotest, TestLayers.)
func clockUses(fset *token.FileSet, file *ast.File) []string {
	var out []string
	timeName := ""
	for _, imp := range file.Imports {
		path, err := strconv.Unquote(imp.Path.Value)
		if err != nil || path != "time" {
			continue
		}
		timeName = "time"
		if imp.Name != nil {
			timeName = imp.Name.Name
			if timeName == "." {
				out = append(out, fset.Position(imp.Pos()).String()+`: dot-imports "time", which hides its clock functions from this test`)
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

// TestDomainReadsNoClock proves package domain reads no clock: no non-test
// file calls time.Now and the like (docs/architecture.md, Conventions 1).
func TestDomainReadsNoClock(t *testing.T) {
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
		for _, p := range clockUses(fset, file) {
			t.Error(p)
		}
	}
	if checked == 0 {
		t.Fatal("no non-test Go files found: is the test running in the package directory?")
	}
}

// TestClockUses proves the checker itself finds what it must, with the
// file and line, and leaves alone what it must.
func TestClockUses(t *testing.T) {
	const src = `package domain

import (
	"encoding/json"
	clock "time"
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
	got := clockUses(fset, file)
	want := []string{
		"bad.go:11:6: uses time.Now: the clock must be passed in",
		"bad.go:13:11: uses time.Since: the clock must be passed in",
	}
	assert.Equal(t, want, got, "clockUses")
	file, err = parser.ParseFile(fset, "dot.go", "package domain\n\nimport . \"time\"\n\nvar _ = Now\n", parser.SkipObjectResolution)
	require.NoError(t, err)
	got = clockUses(fset, file)
	if assert.Len(t, got, 1, "clockUses of a dot import") {
		assert.Contains(t, got[0], "dot-imports", "clockUses of a dot import")
	}
}
