package problem_test

import (
	"errors"
	"fmt"
	"go/ast"
	"go/parser"
	"go/token"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/getkin/kin-openapi/openapi3"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/acme/mastertrust/domain"
	"github.com/acme/mastertrust/internal/apispec"
	"github.com/acme/mastertrust/internal/problem"
)

// codePattern is the form of a code: the document's Problem.code pattern.
var codePattern = regexp.MustCompile(`^[a-z]+(-[a-z]+)*$`)

// TestTableHasEachCodeOnce: every code the package declares is one row of
// the table, once, with a title, and with an HTTP status exactly when the
// gateway answers it as an HTTP problem.
func TestTableHasEachCodeOnce(t *testing.T) {
	declared := declaredCodes(t)
	rows := map[string]int{}
	for _, row := range problem.All() {
		rows[row.Code]++
		assert.Regexp(t, codePattern, row.Code)
		assert.NotEmpty(t, row.Title, "code %s has no title", row.Code)
		if row.Use == problem.AsHTTP {
			assert.True(t, row.Status >= 400 && row.Status <= 599, "code %s: status %d is not an error status", row.Code, row.Status)
		} else {
			assert.Zero(t, row.Status, "code %s is never an HTTP problem, but has a status", row.Code)
		}
		got, ok := problem.Lookup(row.Code)
		assert.True(t, ok && got.Code == row.Code, "Lookup(%q)", row.Code)
		_, isHTTP := problem.HTTP(row.Code)
		assert.Equal(t, row.Use == problem.AsHTTP, isHTTP, "HTTP(%q)", row.Code)
	}
	for name, code := range declared {
		assert.Equal(t, 1, rows[code], "code %s (%s) is in the table %d times, want once", code, name, rows[code])
	}
	assert.Len(t, rows, len(declared), "the table has codes no constant names")
	for code, n := range rows {
		assert.Equal(t, 1, n, "code %s is in the table %d times", code, n)
	}
	_, ok := problem.Lookup("no-such-code")
	assert.False(t, ok)
}

// TestEachSentinelHasOneCode: every sentinel the domain refuses with (in
// refuse(…) or a RefusalError, in the domain or the grains) is the
// sentinel of exactly one row, and Of finds that row for the sentinel
// wrapped as the domain wraps it.
func TestEachSentinelHasOneCode(t *testing.T) {
	inTable := tableSentinels(t)
	refused := refusalSentinels(t, "../../domain", "../../actors")
	require.NotEmpty(t, refused, "found no refusals in the domain: the scan is broken")
	for _, name := range refused {
		assert.Equal(t, 1, inTable[name], "domain.%s is the sentinel of %d rows, want 1", name, inTable[name])
	}
	errs := map[error]int{} // by identity, not by message
	for _, row := range problem.All() {
		if row.Err == nil {
			continue
		}
		errs[row.Err]++
		assert.Equal(t, 1, errs[row.Err], "%v is the sentinel of two rows", row.Err)
		wrapped := fmt.Errorf("context: %w", &domain.RefusalError{Err: row.Err, Detail: "why"})
		got, ok := problem.Of(wrapped)
		assert.True(t, ok && got.Code == row.Code, "Of(%v) = %s, want %s", wrapped, got.Code, row.Code)
		assert.Equal(t, "why", problem.Detail(wrapped))
	}
	assert.Len(t, errs, len(refused), "the sentinels of the table (%d) are not those the domain refuses with (%v)", len(errs), refused)
	_, ok := problem.Of(errors.New("something else"))
	assert.False(t, ok)
	_, ok = problem.Of(nil)
	assert.False(t, ok)
	assert.Equal(t, "domain: pot not found", problem.Detail(domain.ErrPotNotFound))
}

// TestStatusesMatchTheOpenAPIDocument: docs/openapi.yaml declares every
// HTTP code under the table's status and no code under another status or
// missing from the table; a run's problem codes are exactly the table's;
// codes that stay between grains are not in the document at all.
func TestStatusesMatchTheOpenAPIDocument(t *testing.T) {
	spec, err := apispec.Load()
	require.NoError(t, err)
	doc := spec.Doc
	// A method that is not served has no operation to declare its 405
	// under; the document's description says it.
	inProse := []string{problem.MethodNotAllowed}

	declared := map[string][]int{} // code → statuses
	for name, ref := range doc.Components.Responses {
		mt := ref.Value.Content.Get("application/problem+json")
		if mt == nil {
			continue
		}
		statuses, codes := statusesAndCodes(mt.Schema.Value)
		require.Len(t, statuses, 1, "response %s: its problem's status is not one enum value", name)
		require.NotEmpty(t, codes, "response %s: its problem's code is not an enum", name)
		for _, c := range codes {
			declared[c] = append(declared[c], statuses[0])
		}
	}
	runCodes := enumStrings(doc.Components.Schemas["RunProblem"].Value.Properties["code"].Value)
	require.NotEmpty(t, runCodes, "RunProblem.code is not an enum")

	var want []string
	for _, row := range problem.All() {
		switch {
		case row.Use == problem.AsHTTP && slices.Contains(inProse, row.Code):
			assert.Contains(t, doc.Info.Description, "`"+row.Code+"`")
			assert.Contains(t, doc.Info.Description, "`"+strconv.Itoa(row.Status)+"`")
		case row.Use == problem.AsHTTP:
			want = append(want, row.Code)
			assert.Equal(t, []int{row.Status}, declared[row.Code], "code %s: statuses in %s", row.Code, apispec.DocumentPath)
		case row.Use == problem.InRun:
			assert.Contains(t, runCodes, row.Code, "a run's problem code %s is not in RunProblem.code", row.Code)
		default:
			assert.NotContains(t, declared, row.Code, "code %s stays between grains, but the document declares it", row.Code)
			assert.NotContains(t, runCodes, row.Code)
		}
	}
	for code := range declared {
		assert.Contains(t, want, code, "the document declares code %s, which the table does not answer over HTTP", code)
	}
	for _, code := range runCodes {
		row, ok := problem.Lookup(code)
		assert.True(t, ok && row.Use == problem.InRun, "RunProblem.code %s is not a run's problem in the table", code)
	}
}

// statusesAndCodes are the status and code enums of a problem schema and
// the schemas it is all of.
func statusesAndCodes(s *openapi3.Schema) (statuses []int, codes []string) {
	if p := s.Properties["status"]; p != nil {
		for _, v := range p.Value.Enum {
			if f, ok := v.(float64); ok {
				statuses = append(statuses, int(f))
			}
		}
	}
	if p := s.Properties["code"]; p != nil {
		codes = append(codes, enumStrings(p.Value)...)
	}
	for _, sub := range s.AllOf {
		st, c := statusesAndCodes(sub.Value)
		statuses, codes = append(statuses, st...), append(codes, c...)
	}
	return statuses, codes
}

func enumStrings(s *openapi3.Schema) []string {
	var out []string
	for _, v := range s.Enum {
		if str, ok := v.(string); ok {
			out = append(out, str)
		}
	}
	return out
}

// declaredCodes are the string constants of problem.go, by name.
func declaredCodes(t *testing.T) map[string]string {
	t.Helper()
	f := parseFile(t, "problem.go")
	out := map[string]string{}
	for _, decl := range f.Decls {
		g, ok := decl.(*ast.GenDecl)
		if !ok || g.Tok != token.CONST {
			continue
		}
		for _, spec := range g.Specs {
			vs := spec.(*ast.ValueSpec)
			for i, v := range vs.Values {
				lit, ok := v.(*ast.BasicLit)
				if !ok || lit.Kind != token.STRING {
					continue
				}
				s, err := strconv.Unquote(lit.Value)
				require.NoError(t, err)
				out[vs.Names[i].Name] = s
			}
		}
	}
	require.NotEmpty(t, out, "found no codes in problem.go: the scan is broken")
	return out
}

// tableSentinels counts the rows naming each domain sentinel (domain.ErrX)
// in problem.go's table.
func tableSentinels(t *testing.T) map[string]int {
	t.Helper()
	f := parseFile(t, "problem.go")
	out := map[string]int{}
	rows := 0
	ast.Inspect(f, func(n ast.Node) bool {
		vs, ok := n.(*ast.ValueSpec)
		if !ok || len(vs.Names) != 1 || vs.Names[0].Name != "table" {
			return true
		}
		for _, elt := range vs.Values[0].(*ast.CompositeLit).Elts {
			rows++
			for _, field := range elt.(*ast.CompositeLit).Elts {
				if name, ok := domainSentinel(field); ok {
					out[name]++
				}
			}
		}
		return false
	})
	require.Equal(t, len(problem.All()), rows, "the scan of the table is broken")
	return out
}

// refusalSentinels are the sentinels (by name) that the Go files of dirs
// refuse with: refuse(ErrX, …) and RefusalError{Err: ErrX}, with or
// without the domain. qualifier.
func refusalSentinels(t *testing.T, dirs ...string) []string {
	t.Helper()
	var out []string
	add := func(e ast.Expr) {
		if name, ok := domainSentinel(e); ok && !slices.Contains(out, name) {
			out = append(out, name)
		}
	}
	for _, dir := range dirs {
		files, err := filepath.Glob(filepath.Join(dir, "*.go"))
		require.NoError(t, err)
		for _, path := range files {
			if strings.HasSuffix(path, "_test.go") {
				continue
			}
			ast.Inspect(parseFile(t, path), func(n ast.Node) bool {
				switch n := n.(type) {
				case *ast.CallExpr:
					if id, ok := n.Fun.(*ast.Ident); ok && id.Name == "refuse" && len(n.Args) > 0 {
						add(n.Args[0])
					}
				case *ast.CompositeLit:
					if typeName(n.Type) == "RefusalError" {
						for _, elt := range n.Elts {
							if kv, ok := elt.(*ast.KeyValueExpr); ok && typeName(kv.Key) == "Err" {
								add(kv.Value)
							}
						}
					}
				}
				return true
			})
		}
	}
	return out
}

// domainSentinel is the name of ErrX or domain.ErrX.
func domainSentinel(e ast.Expr) (string, bool) {
	switch e := e.(type) {
	case *ast.Ident:
		return e.Name, strings.HasPrefix(e.Name, "Err")
	case *ast.SelectorExpr:
		pkg, ok := e.X.(*ast.Ident)
		return e.Sel.Name, ok && pkg.Name == "domain" && strings.HasPrefix(e.Sel.Name, "Err")
	}
	return "", false
}

func typeName(e ast.Expr) string {
	switch e := e.(type) {
	case *ast.Ident:
		return e.Name
	case *ast.SelectorExpr:
		return e.Sel.Name
	}
	return ""
}

func parseFile(t *testing.T, path string) *ast.File {
	t.Helper()
	f, err := parser.ParseFile(token.NewFileSet(), path, nil, parser.SkipObjectResolution)
	require.NoError(t, err)
	return f
}
