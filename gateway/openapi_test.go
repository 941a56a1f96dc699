package gateway

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"regexp"
	"slices"
	"strings"
	"testing"

	"go.yaml.in/yaml/v2"

	"github.com/acme/mastertrust/cluster"
	"github.com/acme/mastertrust/domain"
	"github.com/acme/mastertrust/internal/apispec"
	"github.com/acme/mastertrust/internal/testkit"
	"github.com/acme/mastertrust/proto/pb"
)

// openAPIPath is the API's OpenAPI document, relative to this package.
const openAPIPath = "../docs/openapi.yaml"

// nopPots and nopCluster satisfy Config for tests that never call a pot.
type nopPots struct{}

func (nopPots) Handle(context.Context, string, *pb.PotRequest) (*pb.PotResponse, error) {
	return nil, cluster.ErrUnavailable
}

type nopCluster struct{}

func (nopCluster) Members(context.Context) ([]cluster.MemberInfo, error) {
	return nil, cluster.ErrUnavailable
}

func newTestServer(t *testing.T) *Server {
	t.Helper()
	logger, _ := testkit.Logger(t)
	s, err := New(Config{Pots: nopPots{}, Cluster: nopCluster{}, Ready: func(context.Context) error { return nil },
		Catalogue: domain.DefaultCatalogue(), TokenSecret: testSecret, Logger: logger})
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// TestOpenAPIIsValid: docs/openapi.yaml passes kin-openapi's validator with
// its strict options (apispec.StrictOptions).
func TestOpenAPIIsValid(t *testing.T) {
	if _, err := apispec.Load(); err != nil {
		t.Fatal(err)
	}
}

// TestOpenAPIMatchesRoutes: docs/openapi.yaml describes exactly the routes
// the gateway registers (its mux is built from the same table), every
// path parameter is declared, every $ref resolves, and the security of
// each operation matches the route's access rule.
func TestOpenAPIMatchesRoutes(t *testing.T) {
	data, err := os.ReadFile(openAPIPath)
	if err != nil {
		t.Fatal(err)
	}
	var doc map[string]any
	if err := yaml.Unmarshal(data, &doc); err != nil {
		t.Fatalf("parse %s: %v", openAPIPath, err)
	}
	// 3.0, not 3.1: kin-openapi validates a 3.1 document's schemas by
	// compiling them for JSON Schema 2020-12 on every call, ~30 times slower,
	// which the end-to-end tests' validation of every exchange cannot afford
	// (docs/decisions.md).
	if v := fmt.Sprint(doc["openapi"]); !strings.HasPrefix(v, "3.0.") {
		t.Fatalf("openapi version %q, want 3.0.x", v)
	}
	paths := asMap(t, doc["paths"], "paths")
	methods := []string{"get", "put", "post", "delete", "patch", "head", "options"}

	documented := map[string]map[string]any{} // "METHOD /path" → operation
	for path, item := range paths {
		for key, op := range asMap(t, item, path) {
			if slices.Contains(methods, key) {
				documented[strings.ToUpper(key)+" "+path] = asMap(t, op, path+" "+key)
			}
		}
	}

	s := newTestServer(t)
	served := map[string]route{}
	for _, rt := range s.routes {
		served[rt.label()] = rt
	}
	for label, rt := range served {
		op, ok := documented[label]
		if !ok {
			t.Errorf("route %s is served but not in %s", label, openAPIPath)
			continue
		}
		responses := asMap(t, op["responses"], label+" responses")
		public := false
		if sec, ok := op["security"]; ok {
			list, _ := sec.([]any)
			public = len(list) == 0
		}
		switch {
		case rt.access == accessPublic && !public:
			t.Errorf("%s needs no token, but the document does not say security: []", label)
		case rt.access != accessPublic && public:
			t.Errorf("%s needs a token, but the document says security: []", label)
		case rt.access != accessPublic && responses["401"] == nil:
			t.Errorf("%s needs a token, but the document lists no 401", label)
		}
		if (rt.access == accessPot || rt.access == accessOperator) && responses["403"] == nil {
			t.Errorf("%s can be forbidden, but the document lists no 403", label)
		}
		// Every {param} of the path is declared.
		declared := map[string]bool{}
		path := rt.pattern
		for _, src := range []any{asMap(t, paths[path], path)["parameters"], op["parameters"]} {
			list, _ := src.([]any)
			for _, p := range list {
				pm := asMap(t, p, label+" parameter")
				if ref, ok := pm["$ref"].(string); ok {
					pm = resolve(t, doc, ref)
				}
				if pm["in"] == "path" {
					declared[fmt.Sprint(pm["name"])] = true
				}
			}
		}
		for _, m := range regexp.MustCompile(`\{([^}]+)\}`).FindAllStringSubmatch(path, -1) {
			if !declared[m[1]] {
				t.Errorf("%s: path parameter %s is not declared", label, m[1])
			}
		}
	}
	for label := range documented {
		if _, ok := served[label]; !ok {
			t.Errorf("%s is in %s but the gateway does not serve it", label, openAPIPath)
		}
	}

	// Every $ref points at something.
	for _, ref := range regexp.MustCompile(`\$ref:\s*"?([^"\s]+)"?`).FindAllStringSubmatch(string(data), -1) {
		resolve(t, doc, ref[1])
	}
}

// TestMuxServesTheTable: each route of the table is what the mux picks for
// a request to it, and other methods on its path get a 405.
func TestMuxServesTheTable(t *testing.T) {
	s := newTestServer(t)
	params := strings.NewReplacer("{memberId}", "M000123", "{orderId}", "M000123-4")
	for _, rt := range s.routes {
		req := httptest.NewRequest(rt.method, params.Replace(rt.pattern), nil)
		if _, pattern := s.mux.Handler(req); pattern != rt.label() {
			t.Errorf("%s %s is served by %q, want %q", rt.method, req.URL.Path, pattern, rt.label())
		}
		req = httptest.NewRequest(http.MethodPatch, params.Replace(rt.pattern), nil)
		rec := httptest.NewRecorder()
		s.Handler().ServeHTTP(rec, req)
		if rec.Code != http.StatusMethodNotAllowed || rec.Header().Get("Content-Type") != "application/problem+json" ||
			!strings.Contains(rec.Header().Get("Allow"), rt.method) {
			t.Errorf("PATCH %s: %d %v, want a 405 problem allowing %s", req.URL.Path, rec.Code, rec.Header(), rt.method)
		}
	}
	if got := s.Routes(); len(got) != len(s.routes) || got[0] != "POST /v1/pots" {
		t.Errorf("Routes() = %v", got)
	}
}

// asMap converts a YAML mapping (go.yaml.in/yaml/v2 decodes nested ones
// with interface keys) to map[string]any.
func asMap(t *testing.T, v any, what string) map[string]any {
	t.Helper()
	switch m := v.(type) {
	case map[string]any:
		return m
	case map[any]any:
		out := make(map[string]any, len(m))
		for k, v := range m {
			out[fmt.Sprint(k)] = v
		}
		return out
	}
	t.Fatalf("%s: want a mapping, got %T", what, v)
	return nil
}

// resolve follows a local $ref ("#/components/schemas/X").
func resolve(t *testing.T, doc map[string]any, ref string) map[string]any {
	t.Helper()
	rest, ok := strings.CutPrefix(ref, "#/")
	if !ok {
		t.Fatalf("$ref %q is not local", ref)
	}
	var node any = doc
	for _, part := range strings.Split(rest, "/") {
		m := asMap(t, node, ref)
		next, ok := m[part]
		if !ok {
			t.Fatalf("$ref %q does not resolve (no %q)", ref, part)
		}
		node = next
	}
	return asMap(t, node, ref)
}
