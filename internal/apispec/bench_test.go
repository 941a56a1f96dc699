package apispec_test

import (
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/acme/mastertrust/internal/apispec"
)

const benchOrder = `{"id":"M1-3","type":"buy","status":"settled","dealingDate":"2026-11-23","createdAt":"2026-11-23T09:00:00Z","movementId":"M1-2","trades":[{"id":"M1-4","asset":"GB00BD8R3K42","side":"buy","amount":"400.00","status":"settled","executedUnits":"200.0000","price":"2.000000","cash":"400.00","settlementDate":"2026-11-26","batchId":"b1"}],"contractNotes":[{"tradeId":"M1-4","dealingDate":"2026-11-23","asset":"GB00BD8R3K42","side":"buy","units":"200.0000","unitPrice":"2.000000","consideration":"400.00","settlementDate":"2026-11-26","batchId":"b1"}]}`

// BenchmarkTransport measures an exchange through the validating transport
// and a stub server: a contribution's request and a 202 with three orders.
func BenchmarkTransport(b *testing.B) {
	spec, err := apispec.Load()
	require.NoError(b, err)
	body := `{"id":"M1-2","kind":"contribution","status":"accepted","amount":"500.00","dealingDate":"2026-11-23","orders":[` +
		benchOrder + `,` + benchOrder + `,` + benchOrder + `]}`
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body)
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(202)
		io.WriteString(w, body)
	}))
	b.Cleanup(srv.Close)
	client := &http.Client{Transport: spec.Transport(srv.Client().Transport, b)}
	for b.Loop() {
		req, _ := http.NewRequest("POST", srv.URL+"/v1/pots/M1/contributions", strings.NewReader(`{"amount":"500.00"}`))
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("Idempotency-Key", "k-1")
		req.Header.Set("Authorization", "Bearer x")
		resp, err := client.Do(req)
		if err != nil { // not require: its t.Helper call would be timed
			b.Fatal(err)
		}
		resp.Body.Close()
	}
}
