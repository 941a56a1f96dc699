package gateway

import (
	"errors"
	"fmt"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/acme/mastertrust/internal/recovered"
)

// metrics are the gateway's own, registered on Config.Registry.
type metrics struct {
	// requests counts answered requests by route (the ServeMux pattern,
	// "GET /v1/pots/{memberId}", or "unmatched") and status code.
	requests *prometheus.CounterVec
	// duration is the time to answer, by route.
	duration *prometheus.HistogramVec
	// inFlight is the API requests being served (see Config.InFlightMax).
	inFlight prometheus.Gauge
	// potCalls is the time of calls to pot grains, by command and outcome:
	// ok, refused (a problem from the pot), timeout, unavailable,
	// cancelled (the client went away), error.
	potCalls *prometheus.HistogramVec
}

// latencyBuckets span 0.5 ms (a cached read on the same machine) to ~8 s
// (past the default RequestTimeout).
var latencyBuckets = prometheus.ExponentialBuckets(0.0005, 2, 15)

func newMetrics(reg prometheus.Registerer) (*metrics, error) {
	m := &metrics{
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "mastertrust_http_requests_total",
			Help: "HTTP requests answered by the gateway, by route pattern and status code.",
		}, []string{"route", "code"}),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "mastertrust_http_request_duration_seconds",
			Help:    "Time the gateway took to answer an HTTP request, by route pattern.",
			Buckets: latencyBuckets,
		}, []string{"route"}),
		inFlight: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "mastertrust_http_requests_in_flight",
			Help: "API requests the gateway is serving now.",
		}),
		potCalls: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "mastertrust_gateway_pot_call_seconds",
			Help:    "Time of the gateway's calls to pot grains, by command and outcome (ok, refused, timeout, unavailable, cancelled, error).",
			Buckets: latencyBuckets,
		}, []string{"command", "outcome"}),
	}
	var errs []error
	for _, c := range []prometheus.Collector{m.requests, m.duration, m.inFlight, m.potCalls} {
		if err := reg.Register(c); err != nil {
			errs = append(errs, err)
		}
	}
	if err := recovered.Register(reg); err != nil {
		errs = append(errs, err)
	}
	if len(errs) > 0 {
		return nil, fmt.Errorf("gateway: register metrics (one registry per gateway): %w", errors.Join(errs...))
	}
	return m, nil
}
