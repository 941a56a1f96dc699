package load

import (
	"context"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// A request answered 503 with Retry-After is sent again, with the same
// key, no sooner than the gateway asked; a 500 is sent again too, and
// counted against the platform.
func TestClientRetriesAsTheGatewayAsks(t *testing.T) {
	var calls atomic.Int32
	var keys []string
	var at []time.Time
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		keys = append(keys, r.Header.Get("Idempotency-Key"))
		at = append(at, time.Now())
		switch calls.Add(1) {
		case 1:
			w.Header().Set("Retry-After", "1")
			w.WriteHeader(http.StatusServiceUnavailable)
		case 2:
			w.WriteHeader(http.StatusInternalServerError)
		default:
			w.WriteHeader(http.StatusAccepted)
		}
	}))
	defer srv.Close()
	rec := newRecorder()
	c := &client{urls: []string{srv.URL}, http: srv.Client(), retry: time.Minute, metrics: rec,
		token: func(string) (string, error) { return "t", nil }}
	a, err := c.call(context.Background(), "contribute", "M1", http.MethodPost, "/x", "k-1", map[string]string{"amount": "1.00"})
	require.NoError(t, err)
	require.Equal(t, http.StatusAccepted, a.status)
	require.Equal(t, []string{"k-1", "k-1", "k-1"}, keys, "every attempt with the request's key")
	require.GreaterOrEqual(t, at[1].Sub(at[0]), time.Second, "the 503's Retry-After waited for")
	counts, errors5xx := rec.byStatus()
	require.Equal(t, map[int]int64{503: 1, 500: 1, 202: 1}, counts)
	require.Equal(t, int64(1), errors5xx, "the 500, not the 503")
}
