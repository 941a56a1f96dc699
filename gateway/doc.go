// Package gateway is mastertrust's HTTP API (docs/api.md, docs/openapi.yaml): a
// stateless translation from JSON over HTTP to requests to members' pot
// grains, and back.
//
// A request goes through, in order: the route (Go's http.ServeMux with
// method and path patterns, built from one table, routes.go), the request
// id, the in-flight limit, the bearer token and the route's access rule
// (token.go, auth.go), strict decoding and validation of the path, query and
// body (decode.go, validate.go), and then one call to the member's pot with
// the configured timeout. Nothing reaches a pot until the request is known
// to be well formed: a bad request is a 400 and costs the pot nothing.
//
// Errors are RFC 7807 problem details (problems.go): every problem code
// (the grains' refusals and the gateway's own) gets its HTTP status and
// title from the one table of internal/problem, and its type URI from its
// code. A pot that cannot be reached in time is a 503 with
// Retry-After; a Go error string never reaches a client.
//
// Idempotency is the pot's: the gateway passes the Idempotency-Key header
// (or a key it makes up, so that a client's blind retry is not deduplicated)
// to the pot, which answers a repeat with the original result, flagged as
// replayed; the gateway answers it with the original status code. The
// gateway keeps no state of its own, so any number of gateways can serve the
// same cluster.
//
// Graceful shutdown is the caller's: http.Server.Shutdown waits for the
// handlers, which end by RequestTimeout at the latest because every pot call
// is bounded by it and by the request's context. The caller's http.Server
// should also set ReadHeaderTimeout, ReadTimeout and IdleTimeout (slow
// clients are its business, not the handlers').
package gateway
