// Package custodian is the protocol between ACME and its external asset
// custodian over NATS JetStream, and ACME's client of it. The simulated
// custodian that speaks it (for dev mode, tests and fault drills) is package
// custodian/simulator, so that the platform's side links no Pebble.
//
// Once per dealing day and asset ACME sends one net order, identified by its
// client order id "<dealing date>-<ISIN>" (domain.BatchID); the custodian
// executes it at the day's closing price from the price feed and answers
// with an execution report. Reports can arrive late, twice or not at all:
// ACME resends the order with the same client order id until it has
// recorded the report, the custodian answers every repeat with the same
// report, and ACME applies a report once by its execution id.
//
// protocol.go holds the names, ids and stream settings; messages.go the
// checks both sides make on orders, reports, statements and prices;
// client.go ACME's side; internal/consume the JetStream consumer loop both
// sides use. docs/custodian.md describes the protocol for people.
package custodian
