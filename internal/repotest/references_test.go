package repotest

import (
	"bytes"
	"errors"
	"fmt"
	"go/parser"
	"go/token"
	"io/fs"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// modulePath identifies the repository's root: the directory whose go.mod
// declares it.
const modulePath = "github.com/acme/mastertrust"

// writtenNotCited are *.md names the code writes rather than cites: the
// load generator's report (load/result.go) is written into the report
// directory a run is given.
var writtenNotCited = []string{"report.md"}

// TestMarkdownReferencesExist proves that every *.md file named in the
// repository's code, tests, docs, scripts and test data is a file of the
// repository: a reader of a fresh clone can open every document a comment
// or a page cites. A name resolves relative to the citing file's directory
// (so pages in docs/ cite each other by their bare names) or to the root.
func TestMarkdownReferencesExist(t *testing.T) {
	root := repoRoot(t)
	files := repoFiles(t, root)
	have := make(map[string]bool, len(files))
	for _, f := range files {
		have[f] = true
	}
	var problems []string
	checked := 0
	for _, f := range files {
		if !scanned(f) {
			continue
		}
		text := readFile(t, root, f)
		for _, ref := range markdownRefs(text) {
			checked++
			if !resolves(have, f, ref.name) && !slices.Contains(writtenNotCited, ref.name) {
				problems = append(problems, fmt.Sprintf("%s:%d names %s, which is not a file of the repository",
					f, ref.line, ref.name))
			}
		}
	}
	if checked == 0 {
		t.Fatalf("found no *.md names in %d files: the scan is broken", len(files))
	}
	t.Logf("%d *.md names checked in %d files", checked, len(files))
	report(t, problems, "cite a file of the repository (docs/…), or write the rule down there first")
}

// TestNoIssueNumbers proves that no comment (in Go files) and no document or
// script cites a work item by number ("issue" and a number), which means
// nothing to a reader of the repository. Say what is meant instead, or cite
// the document that holds it.
func TestNoIssueNumbers(t *testing.T) {
	root := repoRoot(t)
	var problems []string
	for _, f := range repoFiles(t, root) {
		if !scanned(f) {
			continue
		}
		text := readFile(t, root, f)
		if strings.HasSuffix(f, ".go") {
			for _, c := range goComments(t, f, text) {
				for _, m := range issueNumber.FindAllStringIndex(c.text, -1) {
					problems = append(problems, fmt.Sprintf("%s:%d: %q", f, c.line+strings.Count(c.text[:m[0]], "\n"), c.text[m[0]:m[1]]))
				}
			}
			continue
		}
		for _, m := range issueNumber.FindAllStringIndex(text, -1) {
			problems = append(problems, fmt.Sprintf("%s:%d: %q", f, lineOf(text, m[0]), text[m[0]:m[1]]))
		}
	}
	report(t, problems, "say what is meant instead of a work item's number")
}

// TestInvariantNumbersCiteTheirSource proves that a file that names an
// invariant by its number ("invariant 4") also says where the numbers come
// from: docs/domain.md ("Invariants") or domain/invariants.go
// (CheckInvariants), so that "invariant 4" can be looked up.
func TestInvariantNumbersCiteTheirSource(t *testing.T) {
	root := repoRoot(t)
	var problems []string
	for _, f := range repoFiles(t, root) {
		if !scanned(f) {
			continue
		}
		text := readFile(t, root, f)
		m := invariantNumber.FindStringIndex(text)
		if m == nil || invariantSource.MatchString(text) {
			continue
		}
		problems = append(problems, fmt.Sprintf("%s:%d names %q without citing docs/domain.md", f, lineOf(text, m[0]), text[m[0]:m[1]]))
	}
	report(t, problems, `cite "docs/domain.md invariant N" (or CheckInvariants) once in the file`)
}

// TestMarkdownRefs pins what counts as a reference to a document: a path
// ending in .md, not part of a URL, not a longer extension.
func TestMarkdownRefs(t *testing.T) {
	// The names are spelled apart so that this file cites none of them.
	md := func(name string) string { return name + ".md" }
	for _, c := range []struct {
		text string
		want []string
	}{
		{"see " + md("docs/api") + ", \"Errors\"", []string{md("docs/api")}},
		{"[api](" + md("api") + "#idempotency) and (" + md("../README") + ")", []string{md("api"), md("../README")}},
		{"the rules of " + md("NOPE") + " and " + md("NOPE") + "'s", []string{md("NOPE"), md("NOPE")}},
		{"`" + md("./docs/domain") + "`: one", []string{md("./docs/domain")}},
		{"https://github.com/acme/x/blob/main/" + md("NOPE"), nil},
		{md("github.com/acme/x/NOPE"), nil},
		{"a *" + md("") + " file, " + md("x") + "x, " + md("y") + "5, z.markdown", nil},
	} {
		var got []string
		for _, r := range markdownRefs(c.text) {
			got = append(got, r.name)
		}
		assert.Equal(t, c.want, got, "markdownRefs(%q)", c.text)
	}
}

var (
	// mdName is a path ending in .md: path characters, then ".md" not
	// followed by another word character.
	mdName = regexp.MustCompile(`[A-Za-z0-9_./-]*[A-Za-z0-9_-]\.md\b`)
	// issueNumber is a work item cited by number.
	issueNumber = regexp.MustCompile(`(?i)\bissues? #?[0-9]`)
	// invariantNumber is an invariant named by its number.
	invariantNumber = regexp.MustCompile(`(?i)\binvariants? [0-9]`)
	// invariantSource is where the invariants' numbers are written down.
	invariantSource = regexp.MustCompile(`docs/domain\.md|invariants\.go|CheckInvariants`)
)

// mdRef is a *.md name and the line it is on.
type mdRef struct {
	name string
	line int
}

// markdownRefs finds the *.md names in text, leaving out URLs (a name
// after "://" or whose first segment is a host such as github.com).
func markdownRefs(text string) []mdRef {
	var out []mdRef
	for _, m := range mdName.FindAllStringIndex(text, -1) {
		name := text[m[0]:m[1]]
		if strings.HasSuffix(text[:m[0]], ":") || strings.Contains(name, "//") {
			continue // a URL
		}
		if first, _, ok := strings.Cut(name, "/"); ok && strings.Contains(first, ".") && first != "." && first != ".." {
			continue // a host: github.com/…
		}
		out = append(out, mdRef{name: name, line: lineOf(text, m[0])})
	}
	return out
}

// resolves reports whether name, cited in file, is a repository file:
// relative to file's directory or to the root.
func resolves(have map[string]bool, file, name string) bool {
	return have[path.Join(path.Dir(file), name)] || have[path.Clean(name)]
}

// scanned reports whether f is text that may cite files: Go, Markdown,
// YAML, shell and protobuf sources, CI's script, and test data (but not
// fuzz corpora, which are arbitrary bytes).
func scanned(f string) bool {
	switch path.Ext(f) {
	case ".go", ".md", ".yaml", ".yml", ".sh", ".proto":
		return true
	}
	if f == ".ci/run" {
		return true
	}
	dirs := strings.Split(path.Dir(f), "/")
	if i := slices.Index(dirs, "testdata"); i >= 0 {
		return i+1 >= len(dirs) || dirs[i+1] != "fuzz"
	}
	return false
}

// goComment is the text of one comment group and its first line.
type goComment struct {
	text string
	line int
}

// goComments returns the comments of a Go source file.
func goComments(t *testing.T, name, src string) []goComment {
	t.Helper()
	fset := token.NewFileSet()
	f, err := parser.ParseFile(fset, name, src, parser.ParseComments|parser.SkipObjectResolution)
	require.NoError(t, err, "parse %s", name)
	var out []goComment
	for _, g := range f.Comments {
		for _, c := range g.List {
			out = append(out, goComment{text: c.Text, line: fset.Position(c.Slash).Line})
		}
	}
	return out
}

// repoRoot is the repository's root: the nearest directory up from the
// test's that holds the module's go.mod.
func repoRoot(t *testing.T) string {
	t.Helper()
	dir, err := os.Getwd()
	require.NoError(t, err)
	for {
		if b, err := os.ReadFile(filepath.Join(dir, "go.mod")); err == nil && bytes.Contains(b, []byte("module "+modulePath+"\n")) {
			return dir
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			t.Fatalf("no go.mod of %s above the test's directory", modulePath)
		}
		dir = parent
	}
}

// repoFiles lists the repository's files, slash-separated and relative to
// root: what git tracks plus new files it does not ignore, or, without git,
// every file under root but .git and the runtime directories .gitignore
// names.
func repoFiles(t *testing.T, root string) []string {
	t.Helper()
	var files []string
	out, err := exec.Command("git", "-C", root, "ls-files", "-z", "--cached", "--others", "--exclude-standard").Output()
	if err == nil {
		for _, f := range strings.Split(string(out), "\x00") {
			// A tracked file deleted in the work tree is not there to cite.
			if _, err := os.Stat(filepath.Join(root, filepath.FromSlash(f))); f != "" && err == nil {
				files = append(files, f)
			}
		}
	} else {
		t.Logf("git ls-files: %v; walking the tree instead", err)
		skip := map[string]bool{".git": true, "data": true, "bin": true, "fuzz-cache": true}
		err = filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
			if err != nil {
				return err
			}
			rel, err := filepath.Rel(root, p)
			if err != nil {
				return err
			}
			rel = filepath.ToSlash(rel)
			if d.IsDir() {
				if skip[rel] || d.Name() == ".git" {
					return fs.SkipDir
				}
				return nil
			}
			if d.Type().IsRegular() {
				files = append(files, rel)
			}
			return nil
		})
		require.NoError(t, err, "walk %s", root)
	}
	if len(files) == 0 {
		t.Fatalf("no files found under %s", root)
	}
	slices.Sort(files)
	return files
}

func readFile(t *testing.T, root, f string) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(root, filepath.FromSlash(f)))
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		t.Fatal(err)
	}
	return string(b)
}

// lineOf is the 1-based line of byte offset i in text.
func lineOf(text string, i int) int { return 1 + strings.Count(text[:i], "\n") }

// report fails the test with every problem, one a line, and what to do.
func report(t *testing.T, problems []string, fix string) {
	t.Helper()
	if len(problems) > 0 {
		t.Errorf("%d problems (%s):\n%s", len(problems), fix, strings.Join(problems, "\n"))
	}
}
