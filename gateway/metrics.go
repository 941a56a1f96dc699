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
	// shed counts the requests answered 503 at once, having done nothing,
	// because the gateway was at InFlightMax for SlotWaitMax.
	shed prometheus.Counter
	// slotWait is the time requests past InFlightMax waited for a slot,
	// by whether they got one ("admitted") or were shed ("shed").
	slotWait *prometheus.HistogramVec
	// potCalls is the time of calls to pot grains, by command and outcome:
	// ok, refused (a problem from the pot), timeout, unavailable,
	// cancelled (the client went away), error.
	potCalls *prometheus.HistogramVec
	// potRetries counts calls to pots sent again because the pot was
	// moving (see Server.handleRetrying), by command.
	potRetries *prometheus.CounterVec
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
		shed: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "mastertrust_http_requests_shed_total",
			Help: "API requests the gateway refused (503, nothing done) because it was at its limit of requests in flight.",
		}),
		slotWait: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "mastertrust_http_slot_wait_seconds",
			Help:    "Time API requests past the in-flight limit waited for a slot, by result (admitted, shed).",
			Buckets: prometheus.ExponentialBuckets(0.0001, 2, 10), // 0.1 ms … 51 ms
		}, []string{"result"}),
		potCalls: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "mastertrust_gateway_pot_call_seconds",
			Help:    "Time of the gateway's calls to pot grains, by command and outcome (ok, refused, timeout, unavailable, cancelled, error).",
			Buckets: latencyBuckets,
		}, []string{"command", "outcome"}),
		potRetries: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "mastertrust_gateway_pot_call_retries_total",
			Help: "Calls to pot grains sent again within the request's deadline because the pot was moving (its member left, its activation stopped, its journal failed over), by command.",
		}, []string{"command"}),
	}
	var errs []error
	for _, c := range []prometheus.Collector{m.requests, m.duration, m.inFlight, m.shed, m.slotWait, m.potCalls, m.potRetries} {
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
