package gateway

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"os"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/getkin/kin-openapi/openapi3"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
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
	require.NoError(t, err)
	return s
}

// TestOpenAPIIsValid: docs/openapi.yaml passes kin-openapi's validator with
// its strict options (apispec.StrictOptions).
func TestOpenAPIIsValid(t *testing.T) {
	_, err := apispec.Load()
	require.NoError(t, err)
}

// TestOpenAPIMatchesRoutes: docs/openapi.yaml describes exactly the routes
// the gateway registers (its mux is built from the same table), every
// path parameter is declared, every $ref resolves, and the security of
// each operation matches the route's access rule.
func TestOpenAPIMatchesRoutes(t *testing.T) {
	data, err := os.ReadFile(openAPIPath)
	require.NoError(t, err)
	var doc map[string]any
	require.NoError(t, yaml.Unmarshal(data, &doc), "parse %s", openAPIPath)
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
		_, pattern := s.mux.Handler(req)
		assert.Equal(t, rt.label(), pattern, "%s %s: the mux's pattern", rt.method, req.URL.Path)
		req = httptest.NewRequest(http.MethodPatch, params.Replace(rt.pattern), nil)
		rec := httptest.NewRecorder()
		s.Handler().ServeHTTP(rec, req)
		assert.Equal(t, http.StatusMethodNotAllowed, rec.Code, "PATCH %s: status", req.URL.Path)
		assert.Equal(t, "application/problem+json", rec.Header().Get("Content-Type"), "PATCH %s: Content-Type", req.URL.Path)
		assert.Contains(t, rec.Header().Get("Allow"), rt.method, "PATCH %s: Allow", req.URL.Path)
	}
	got := s.Routes()
	if assert.Len(t, got, len(s.routes), "Routes()") {
		assert.Equal(t, "POST /v1/pots", got[0], "Routes()[0]")
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

// loadSpec is the document as apispec loads it (once per test binary).
func loadSpec(t *testing.T) *openapi3.T {
	t.Helper()
	spec, err := apispec.Load()
	require.NoError(t, err)
	return spec.Doc
}

// TestOpenAPIStatuses: every operation declares the statuses the gateway
// can answer it with, beyond its own: a 500 (a broken contract) always;
// with a token, a 400 (unknown query parameters, the pot's own refusal of
// a malformed request) and a 503 (the in-flight limit, an unreachable
// pot); with a body, a 415; the requests that move money or trade, a 428
// and a required Idempotency-Key, which no other operation requires.
func TestOpenAPIStatuses(t *testing.T) {
	doc := loadSpec(t)
	s := newTestServer(t)
	keyRequired := []string{
		"POST /v1/pots/{memberId}/contributions", "POST /v1/pots/{memberId}/withdrawals",
		"POST /v1/pots/{memberId}/orders", "DELETE /v1/pots/{memberId}/orders/{orderId}",
	}
	for _, rt := range s.routes {
		label := rt.label()
		op := doc.Paths.Find(rt.pattern).GetOperation(rt.method)
		if op == nil {
			t.Errorf("%s is not in the document", label)
			continue
		}
		want := []int{http.StatusInternalServerError}
		if rt.access != accessPublic {
			want = append(want, http.StatusBadRequest, http.StatusUnauthorized, http.StatusServiceUnavailable)
		}
		if op.RequestBody != nil {
			want = append(want, http.StatusUnsupportedMediaType)
		}
		requires := slices.Contains(keyRequired, label)
		if requires {
			want = append(want, http.StatusPreconditionRequired)
		}
		for _, status := range want {
			if op.Responses.Status(status) == nil {
				t.Errorf("%s does not declare its %d", label, status)
			}
		}
		assert.Equal(t, requires, op.Responses.Status(http.StatusPreconditionRequired) != nil, "%s: declares a 428", label)
		var key *openapi3.Parameter
		for _, p := range op.Parameters {
			if p.Value.In == openapi3.ParameterInHeader && p.Value.Name == "Idempotency-Key" {
				key = p.Value
			}
		}
		if requires && (key == nil || !key.Required) {
			t.Errorf("%s: the Idempotency-Key header is not required", label)
		}
		if !requires && key != nil && key.Required {
			t.Errorf("%s: the Idempotency-Key header is required, but the gateway makes one up", label)
		}
		if r := op.Responses.Status(http.StatusServiceUnavailable); r != nil && rt.raw == nil {
			if r.Value.Headers["Retry-After"] == nil {
				t.Errorf("%s: its 503 does not declare Retry-After", label)
			}
		}
	}
}

// TestOpenAPISchemasAreClosed: every object the document describes lists
// its fields and refuses others (additionalProperties: false, or a schema
// for the values of a map), so that validating a request or an answer
// against it catches any field nobody declared. The second and later
// members of an allOf only constrain the first, which must be closed.
func TestOpenAPISchemasAreClosed(t *testing.T) {
	doc := loadSpec(t)
	seen := map[*openapi3.Schema]bool{}
	var walk func(where string, ref *openapi3.SchemaRef, constraint bool)
	walk = func(where string, ref *openapi3.SchemaRef, constraint bool) {
		if ref == nil || ref.Value == nil || seen[ref.Value] {
			return
		}
		s := ref.Value
		seen[s] = true
		if ref.Ref != "" {
			where = ref.Ref
		}
		closed := s.AdditionalProperties.Schema != nil || (s.AdditionalProperties.Has != nil && !*s.AdditionalProperties.Has)
		if (len(s.Properties) > 0 || s.Type.Is(openapi3.TypeObject)) && !closed && !constraint {
			t.Errorf("%s: an object that does not say additionalProperties: false", where)
		}
		for _, name := range slices.Sorted(maps.Keys(s.Properties)) {
			walk(where+"."+name, s.Properties[name], false)
		}
		walk(where+"[]", s.Items, false)
		walk(where+"{}", s.AdditionalProperties.Schema, false)
		for i, x := range s.AllOf {
			walk(fmt.Sprintf("%s.allOf[%d]", where, i), x, i > 0)
		}
		for i, x := range s.OneOf {
			walk(fmt.Sprintf("%s.oneOf[%d]", where, i), x, false)
		}
		for i, x := range s.AnyOf {
			walk(fmt.Sprintf("%s.anyOf[%d]", where, i), x, false)
		}
	}
	for _, name := range slices.Sorted(maps.Keys(doc.Components.Schemas)) {
		walk("#/components/schemas/"+name, doc.Components.Schemas[name], false)
	}
	for path, item := range doc.Paths.Map() {
		for method, op := range item.Operations() {
			where := method + " " + path
			if op.RequestBody != nil {
				for mt, c := range op.RequestBody.Value.Content {
					walk(where+" request "+mt, c.Schema, false)
				}
			}
			for status, r := range op.Responses.Map() {
				for mt, c := range r.Value.Content {
					walk(where+" "+status+" "+mt, c.Schema, false)
				}
			}
		}
	}
}

// TestOpenAPIPatternsMatchTheGateway: the document's schemas of what a
// client sends accept exactly what the gateway accepts. Each schema and the
// gateway's own check (the domain's parsers, the id rules) judge the same
// generated strings, edge cases and random ones, and must agree; the only
// exception is what no pattern can say (an ISIN's check digit, which the
// schema's description names).
func TestOpenAPIPatternsMatchTheGateway(t *testing.T) {
	doc := loadSpec(t)
	rng := rand.New(rand.NewPCG(0x5eed, 0xa91))
	decimals, ids, isins, dates := decimalCorpus(rng), idCorpus(rng), isinCorpus(rng), dateCorpus(rng)
	ok := func(err error) bool { return err == nil }
	cases := []struct {
		schema string
		inputs []string
		accept func(string) bool
		// unsaid reports a string the schema accepts and the gateway
		// refuses for a reason the schema cannot say (nil: none).
		unsaid func(string) bool
	}{
		{"Amount", decimals, func(s string) bool { _, err := domain.ParseAmount(s); return ok(err) }, nil},
		{"Units", decimals, func(s string) bool { _, err := domain.ParseUnits(s, domain.UnitDecimalsMax); return ok(err) }, nil},
		{"Percent", decimals, func(s string) bool { _, err := domain.ParsePercent(s); return ok(err) }, nil},
		{"Price", decimals, func(s string) bool { _, err := domain.ParsePrice(s, domain.PriceDecimalsMax); return ok(err) }, nil},
		{"MemberId", ids, validMemberID, nil},
		{"OrderId", ids, validOrderID, nil},
		{"ReconciliationId", ids, validReconciliationID, nil},
		{"IdempotencyKey", ids, func(s string) bool {
			r := httptest.NewRequest(http.MethodPost, "/", nil)
			r.Header.Set("Idempotency-Key", s)
			var fe fieldErrors
			idempotencyKey(r, &fe)
			return len(fe) == 0
		}, nil},
		{"RiskProfileName", ids, func(s string) bool {
			var fe fieldErrors
			checkRiskProfile(&fe, "riskProfile", s)
			return len(fe) == 0
		}, nil},
		{"ISIN", isins, func(s string) bool { _, err := domain.ParseISIN(s); return ok(err) }, func(s string) bool {
			var ie *domain.ISINError
			_, err := domain.ParseISIN(s)
			return errors.As(err, &ie) && ie.Reason == domain.ISINBadCheckDigit
		}},
		{"Date", dates, func(s string) bool { _, err := domain.ParseDate(s); return ok(err) }, nil},
	}
	for _, c := range cases {
		ref := doc.Components.Schemas[c.schema]
		if ref == nil {
			t.Errorf("no schema %s", c.schema)
			continue
		}
		var accepted, refused, disagreements int
		for _, s := range c.inputs {
			schemaOK := ref.Value.VisitJSON(s) == nil
			gatewayOK := c.accept(s)
			switch {
			case schemaOK == gatewayOK:
			case schemaOK && c.unsaid != nil && c.unsaid(s):
			default:
				if disagreements++; disagreements <= 5 {
					t.Errorf("%s %q: the schema accepts it: %v, the gateway: %v", c.schema, s, schemaOK, gatewayOK)
				}
				continue
			}
			if gatewayOK {
				accepted++
			} else {
				refused++
			}
		}
		assert.GreaterOrEqual(t, accepted, 20, "%s: strings of the corpus accepted (too few to tell)", c.schema)
		assert.GreaterOrEqual(t, refused, 20, "%s: strings of the corpus refused (too few to tell)", c.schema)
	}
}

// decimalCorpus is strings near the API's decimal grammar and bounds.
func decimalCorpus(rng *rand.Rand) []string {
	out := []string{"", "0", "0.0", "0.00", "00", "01", "1", "1.", ".1", "-1", "+1", "1e3", " 1", "1 ", "1,5", "0x10",
		"0.01", "0.001", "0.1", "0.10", "0.00000001", "0.000000001", "0.000000010", "1.00000000", "1.000000001",
		"99", "100", "100.0", "100.00", "100.000", "100.01", "100.1", "99.99", "101",
		"999999", "1000000", "1000000.0", "1000000.00000000", "1000000.000000001", "1000000.01", "1000001",
		"999999999999", "999999999999.99", "999999999999.99999999", "1000000000000", "1000000000000.0",
		"1000000000000.00", "1000000000000.000", "1000000000000.00000000", "1000000000000.01", "1000000000001",
		"9999999999999", "10000000000000", "NaN", "Infinity", "1.2.3", "１"}
	digits := func(n int) string {
		b := make([]byte, n)
		for i := range b {
			b[i] = byte('0' + rng.IntN(10))
		}
		return string(b)
	}
	for range 20000 {
		var s string
		switch rng.IntN(4) {
		case 0: // random characters from the grammar's alphabet and its neighbours
			const alphabet = "0123456789012345678901234567890123456789..-e "
			b := make([]byte, rng.IntN(24))
			for i := range b {
				b[i] = alphabet[rng.IntN(len(alphabet))]
			}
			s = string(b)
		default: // a decimal of random magnitude and places, sometimes with a leading zero
			s = digits(1 + rng.IntN(14))
			if rng.IntN(3) == 0 {
				s = "0." + digits(1+rng.IntN(10))
			} else if rng.IntN(2) == 0 {
				s += "." + digits(rng.IntN(11))
			}
			if rng.IntN(8) == 0 {
				s = strings.Repeat("0", rng.IntN(20)) + s
			}
		}
		out = append(out, s)
	}
	return out
}

// idCorpus is strings near the id and header rules: letters, digits and
// the characters just outside them, of lengths around the bounds.
func idCorpus(rng *rand.Rand) []string {
	out := []string{"", "a", "-", "_", " ", "a b", "a.b", "é", "\t", "\x7f", "~", "!", "M000123-17"}
	const alphabet = "ABCXYZabcxyz0123456789_-" + "ABCXYZabcxyz0123456789_-" + ".~!/ é\t"
	for _, n := range []int{1, 63, 64, 65, 84, 85, 86, 127, 128, 129} {
		out = append(out, strings.Repeat("k", n), strings.Repeat("~", n))
	}
	for range 5000 {
		n := rng.IntN(20)
		if rng.IntN(4) == 0 {
			n = 55 + rng.IntN(80)
		}
		var b strings.Builder
		for range n {
			r := []rune(alphabet)
			if rng.IntN(30) == 0 {
				b.WriteRune(rune(rng.IntN(0x80)))
			} else {
				b.WriteRune(r[rng.IntN(len(r))])
			}
		}
		out = append(out, b.String())
	}
	return out
}

// isinCorpus is ISINs of the catalogue, ISIN-shaped strings with right and
// wrong check digits, and near misses.
func isinCorpus(rng *rand.Rand) []string {
	out := []string{"", "GB00BD8R3K42", "GB00BD8R3K43", "gb00bd8r3k42", "GB00BD8R3K4", "GB00BD8R3K422", "US0378331005",
		"1B00BD8R3K42", "GB00BD8R3K4X", "GB00BD8R3K4 ", "GB00BD8R-K42"}
	const upper, alnum = "ABCDEFGHIJKLMNOPQRSTUVWXYZ", "ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"
	for range 5000 {
		b := []byte{upper[rng.IntN(26)], upper[rng.IntN(26)]}
		for range 9 {
			b = append(b, alnum[rng.IntN(len(alnum))])
		}
		b = append(b, byte('0'+rng.IntN(10)))
		if rng.IntN(5) == 0 { // a near miss
			b[rng.IntN(len(b))] = "a-. 9Z"[rng.IntN(6)]
		}
		out = append(out, string(b))
	}
	return out
}

// dateCorpus is dates around the API's range and the calendar's edges, and
// malformed ones.
func dateCorpus(rng *rand.Rand) []string {
	out := []string{"", "1899-12-31", "1900-01-01", "2999-12-31", "3000-01-01", "2026-02-29", "2028-02-29", "2026-02-30",
		"2026-04-31", "2026-13-01", "2026-00-10", "2026-1-01", "26-11-23", "2026-11-23T00:00:00Z", "2026/11/23", "0000-01-01"}
	for range 5000 {
		out = append(out, fmt.Sprintf("%04d-%02d-%02d", 1850+rng.IntN(1200), rng.IntN(14), rng.IntN(33)))
	}
	return out
}
