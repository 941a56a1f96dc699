package gateway

import (
	"net/http"
	"testing"

	"github.com/stretchr/testify/assert"

	"github.com/acme/mastertrust/internal/problem"
)

// TestNewProblemFollowsTheTable: every code the table answers over HTTP
// becomes a problem with its row's status and title; a code that is not
// one (a run's problem, a code between grains, an unknown one) is a bug
// and becomes a bare 500, its detail unsaid.
func TestNewProblemFollowsTheTable(t *testing.T) {
	for _, row := range problem.All() {
		p := newProblem(row.Code, "x")
		if row.Use != problem.AsHTTP {
			assert.Equal(t, &Problem{Type: ProblemTypeBase + "internal", Title: "Internal error",
				Status: http.StatusInternalServerError, Code: "internal"}, p, "code %s", row.Code)
			continue
		}
		assert.Equal(t, &Problem{Type: ProblemTypeBase + row.Code, Title: row.Title, Status: row.Status,
			Code: row.Code, Detail: "x"}, p)
	}
	p := newProblem("no-such-code", "secret detail")
	assert.Equal(t, http.StatusInternalServerError, p.Status)
	assert.Empty(t, p.Detail)
}

// TestPotDetail: the pot's Go error wording loses its package prefix.
func TestPotDetail(t *testing.T) {
	for in, want := range map[string]string{
		"domain: insufficient funds: buy of 20.00 with 0.00 available": "buy of 20.00 with 0.00 available",
		"domain: pot not found":                         "pot not found",
		"the pot could not complete the request":        "the pot could not complete the request",
		`cash "1.000": domain: too many decimal places`: `cash "1.000": too many decimal places`,
		"actors: bad request: order type 0":             "bad request: order type 0",
	} {
		if got := potDetail(in); got != want {
			t.Errorf("potDetail(%q) = %q, want %q", in, got, want)
		}
	}
}
