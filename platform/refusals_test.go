package platform_test

import (
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/acme/mastertrust/custodian/simulator"
	"github.com/acme/mastertrust/gateway"
	"github.com/acme/mastertrust/internal/problem"
)

// A refusal from each kind of system grain that operators call (prices,
// cycle, reconciliation) reaches the HTTP API as a problem with its code,
// its status and the table's title (internal/problem), through a whole dev
// platform. The grains answer it as a pb.Problem; the gateway maps it. The
// other system grains (aggregators, asset books) refuse nothing an operator
// asks: their failures end a cycle run, whose problem its summary shows.

// refused makes an operator's request and checks that it is refused with
// code and status, as a problem of the table.
func (d *operatorDev) refused(status int, code, method, path, body string) gateway.Problem {
	d.t.Helper()
	got, h, b := d.call(method, path, d.op, "", body)
	var p gateway.Problem
	require.NoError(d.t, json.Unmarshal(b, &p), "%s %s: %s", method, path, b)
	require.Equal(d.t, status, got, "%s %s %s: %s", method, path, body, b)
	assert.Equal(d.t, "application/problem+json", h.Get("Content-Type"))
	row, ok := problem.HTTP(code)
	require.True(d.t, ok, "code %s is not an HTTP code of the table", code)
	assert.Equal(d.t, gateway.Problem{Type: gateway.ProblemTypeBase + code, Title: row.Title, Status: row.Status, Code: code,
		Detail: p.Detail, RequestID: p.RequestID}, p)
	assert.Equal(d.t, status, row.Status, "the table's status for %s", code)
	assert.NotEmpty(d.t, p.Detail)
	assert.NotContains(d.t, p.Detail, "domain: ", "a Go error in the detail")
	return p
}

// TestPricesGrainRefusalsReachHTTP: the prices grain's refusals: no prices
// for the date, not a dealing day, outside the window, other prices
// without a reason, prices a cycle used.
func TestPricesGrainRefusalsReachHTTP(t *testing.T) {
	d := startOperatorDev(t, 1, simulator.Faults{}, time.Time{})
	d.clock.Set(monday(d.cal))
	d.refused(http.StatusNotFound, problem.NotFound, "GET", "/v1/prices/2026-11-23", "")
	d.refused(http.StatusUnprocessableEntity, problem.NotDealingDay, "POST", "/v1/prices", `{"date":"2026-11-28","prices":{`+operatorPrices+`}}`)
	d.refused(http.StatusUnprocessableEntity, problem.OutsideWindow, "POST", "/v1/prices", `{"date":"2026-11-30","prices":{`+operatorPrices+`}}`)
	d.prices("2026-11-23")
	other := strings.Replace(operatorPrices, `"GB00BN7Q2L69":"2.000000"`, `"GB00BN7Q2L69":"2.500000"`, 1)
	d.refused(http.StatusConflict, problem.PricesConflict, "POST", "/v1/prices", `{"date":"2026-11-23","prices":{`+other+`}}`)
	s := d.cycle("2026-11-23", `{}`)
	require.Equal(t, "complete", s.Status, "cycle: %s", s.raw)
	d.refused(http.StatusUnprocessableEntity, problem.PricesUsed, "POST", "/v1/prices", `{"date":"2026-11-23","prices":{`+other+`},"reason":"too late"}`)
	assert.Empty(t, d.logs.take(), "errors logged")
}

// TestCycleGrainRefusalsReachHTTP: the cycle grain's refusals: no cycle ran
// for the date, no prices for it, not a dealing day, an earlier dealing day
// with open trades.
func TestCycleGrainRefusalsReachHTTP(t *testing.T) {
	d := startOperatorDev(t, 1, simulator.Faults{}, time.Time{})
	d.clock.Set(monday(d.cal))
	d.refused(http.StatusNotFound, problem.NotFound, "GET", "/v1/cycles/2026-11-23", "")
	d.refused(http.StatusConflict, problem.NoPrices, "POST", "/v1/cycles/2026-11-23/run", `{}`)
	d.refused(http.StatusUnprocessableEntity, problem.NotDealingDay, "POST", "/v1/cycles/2026-11-28/run", `{}`)
	d.member("RFC001") // an open order for Monday
	d.prices("2026-11-23")
	d.prices("2026-11-24")
	p := d.refused(http.StatusUnprocessableEntity, problem.EarlierDayOpen, "POST", "/v1/cycles/2026-11-24/run", `{}`)
	assert.Contains(t, p.Detail, "2026-11-23")
	assert.Empty(t, d.logs.take(), "errors logged")
}

// TestReconciliationGrainRefusalsReachHTTP: the reconciliation grain's
// refusals: no such reconciliation, and a date the pots' state is not as
// of.
func TestReconciliationGrainRefusalsReachHTTP(t *testing.T) {
	d := startOperatorDev(t, 1, simulator.Faults{}, time.Time{})
	d.clock.Set(monday(d.cal))
	d.refused(http.StatusNotFound, problem.NotFound, "GET", "/v1/reconciliations/no-such-run", "")
	d.refused(http.StatusUnprocessableEntity, problem.AsOfUnavailable, "POST", "/v1/reconciliations", `{"asOf":"2026-11-20"}`)
	assert.Empty(t, d.logs.take(), "errors logged")
}
