package gateway

import "net/http"

// route is one endpoint: a method and a ServeMux path pattern, who may use
// it, and its handler. The mux, the 405s, the metrics' route labels and
// the OpenAPI check (openapi_test.go) are all built from routeTable.
type route struct {
	method  string
	pattern string
	access  access
	// handle serves the route, after the access rule passed; claims are
	// the token's (zero for accessPublic).
	handle func(w http.ResponseWriter, r *http.Request, claims Claims)
	// raw, if set, serves the route instead of handle (for handlers that
	// are not JSON, such as /metrics).
	raw http.Handler
}

// label is the route's ServeMux pattern, "METHOD /path", which is also its
// metrics label.
func (rt route) label() string { return rt.method + " " + rt.pattern }

// routeTable lists every endpoint. Adding one is one line here, its
// handler, and its entry in docs/openapi.yaml (a test fails until the two
// agree).
func (s *Server) routeTable() []route {
	return []route{
		// Members (docs/api.md "Member endpoints").
		{http.MethodPost, "/v1/pots", accessToken, s.openPot, nil},
		{http.MethodGet, "/v1/pots/{memberId}", accessPot, s.getPot, nil},
		{http.MethodPost, "/v1/pots/{memberId}/contributions", accessPot, s.contribute, nil},
		{http.MethodPost, "/v1/pots/{memberId}/withdrawals", accessPot, s.withdraw, nil},
		{http.MethodPost, "/v1/pots/{memberId}/orders", accessPot, s.placeOrder, nil},
		{http.MethodGet, "/v1/pots/{memberId}/orders", accessPot, s.listOrders, nil},
		{http.MethodGet, "/v1/pots/{memberId}/orders/{orderId}", accessPot, s.getOrder, nil},
		{http.MethodDelete, "/v1/pots/{memberId}/orders/{orderId}", accessPot, s.cancelOrder, nil},
		{http.MethodPut, "/v1/pots/{memberId}/risk-profile", accessPot, s.setRiskProfile, nil},
		{http.MethodGet, "/v1/pots/{memberId}/statement", accessPot, s.getStatement, nil},

		// The catalogue (any valid token).
		{http.MethodGet, "/v1/assets", accessToken, s.getAssets, nil},
		{http.MethodGet, "/v1/risk-profiles", accessToken, s.getRiskProfiles, nil},

		// Operators.
		{http.MethodGet, "/v1/cluster", accessOperator, s.getCluster, nil},
		{http.MethodPost, "/v1/prices", accessOperator, s.postPrices, nil},
		{http.MethodGet, "/v1/prices/{date}", accessOperator, s.getPrices, nil},
		{http.MethodPost, "/v1/cycles/{date}/run", accessOperator, s.runCycle, nil},
		{http.MethodGet, "/v1/cycles/{date}", accessOperator, s.getCycle, nil},
		{http.MethodPost, "/v1/reconciliations", accessOperator, s.postReconciliation, nil},
		{http.MethodGet, "/v1/reconciliations/{id}", accessOperator, s.getReconciliation, nil},

		// Health and metrics (no token).
		{http.MethodGet, "/healthz", accessPublic, s.healthz, nil},
		{http.MethodGet, "/readyz", accessPublic, s.readyz, nil},
		{http.MethodGet, "/metrics", accessPublic, nil, s.metricsHandler()},
	}
}
