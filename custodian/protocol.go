package custodian

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/acme/mastertrust/domain"
	"github.com/acme/mastertrust/internal/natsmsg"
	"github.com/acme/mastertrust/internal/natsstream"
)

// The protocol between ACME and the custodian, all of it in this file:
// stream and subject names, message ids, limits and the streams' settings.
// docs/custodian.md tells the same story for people.
//
//	stream             subject                     Nats-Msg-Id                     payload
//	CUSTODIAN_ORDERS   custodian.orders.<ISIN>     cl_ord_id, cl_ord_id#<attempt>   pb.CustodianOrder
//	CUSTODIAN_REPORTS  custodian.reports.<ISIN>    execution_id                     pb.ExecutionReport
//	PRICES             prices.<YYYY-MM-DD>         —                               pb.PriceFeed
//	(request/reply)    custodian.holdings          —                               pb.HoldingsRequest → pb.HoldingsStatement
//
// Every message carries TypeHeader (the payload's protobuf full name, e.g.
// mastertrust.v1.CustodianOrder) and ContentTypeHeader (ContentTypeProtobuf);
// a reader refuses a message whose headers name another type, and reads one
// without them (published before they existed) as before.
const (
	// TypeHeader names a message's type: its payload's protobuf full name.
	TypeHeader = natsmsg.TypeHeader
	// ContentTypeHeader names a message's encoding; ContentTypeProtobuf is
	// the only one of the protocol.
	ContentTypeHeader   = natsmsg.ContentTypeHeader
	ContentTypeProtobuf = natsmsg.ContentTypeProtobuf

	// OrdersStream holds ACME's orders to the custodian.
	OrdersStream = "CUSTODIAN_ORDERS"
	// ReportsStream holds the custodian's execution reports.
	ReportsStream = "CUSTODIAN_REPORTS"
	// PricesStream holds the closing prices, one message per dealing day.
	PricesStream = "PRICES"

	// OrdersSubjects and ReportsSubjects are the streams' subject filters;
	// the last token is the asset's ISIN.
	OrdersSubjects  = "custodian.orders.*"
	ReportsSubjects = "custodian.reports.*"
	// PricesSubjects is the price feed's filter; the last token is the date.
	PricesSubjects = "prices.*"

	// HoldingsSubject is where the custodian answers holdings requests
	// (core NATS request/reply: a statement is computed, not stored).
	HoldingsSubject = "custodian.holdings"
	// HoldingsQueue is the queue group of the custodian's holdings
	// responders, so that a second instance would not answer twice.
	HoldingsQueue = "custodian"
	// ErrorHeader carries the custodian's reason when it refuses a holdings
	// request; the reply then has no payload.
	ErrorHeader = "Custodian-Error"

	// resendSeparator joins a client order id and a resend attempt in an
	// order's Nats-Msg-Id. '#' cannot occur in a client order id
	// (<YYYY-MM-DD>-<ISIN>).
	resendSeparator = "#"
)

// Retention, deduplication and size limits of the streams. Every stream is
// bounded by age, bytes and messages; docs/custodian.md ("Limits") has the
// arithmetic. A message stored takes its payload, its subject and headers
// and about 30 bytes of the server's framing; measured: an order 300 bytes,
// a report 380, a day's prices 405 for the 7 assets of the default
// catalogue (about 20 KB for 500).
//
// What a limit discards differs by stream, by what losing a message not yet
// processed would mean:
//   - orders: the oldest go (DiscardOld). ACME resends every order until it
//     is reported, each resend with a message id of its own, so the newest
//     copies always carry every outstanding order; refusing new ones
//     instead would stop trading until the old ones aged out.
//   - reports: new ones are refused (DiscardNew). A report discarded before
//     ACME read it could not be sent again for DuplicateWindow (the server
//     remembers its id and drops the copy), while a refused publish makes
//     the custodian put the order back and retry: nothing is lost.
//   - prices: the oldest go (DiscardOld): one message per date, so the
//     oldest are dates executed and recorded long ago.
//
// The bytes limits are reserved on the server when the streams are created
// (JetStream refuses a stream its max store cannot hold: by default 75% of
// the free disk), 128 MiB in all here.
const (
	// DuplicateWindow is how long JetStream remembers a Nats-Msg-Id on the
	// order and report streams and drops a second message with it. A week:
	// an order of a dealing day that still has no report after a week is an
	// incident for people, not for a resend loop; within the week a cycle
	// that runs twice, or a node that restarts and sends again, cannot put
	// a second copy of the first send in the stream. (The server keeps the
	// ids of the window in memory: a few thousand per week here.)
	DuplicateWindow = 7 * 24 * time.Hour
	// ordersMaxAge keeps orders a month: for audit, and so that orders sent
	// while the custodian is down for days wait for it. About 7 assets × 22
	// dealing days plus resends: a few hundred small messages.
	ordersMaxAge = 30 * 24 * time.Hour
	// ordersMaxBytes and ordersMaxMsgs: the worst month the cycle can
	// make is every order of the largest catalogue (500 assets) waiting
	// the whole ExecutionWait (2 min, a resend every 2 s: 61 sends) on each
	// of 23 dealing days, 701,500 orders of 300 bytes (210 MB); the default
	// catalogue's is 9,800 (2.9 MB). 48 MiB holds 160,000: 16 such months
	// of the default catalogue, a quarter of the worst one, and beyond it
	// the oldest go (see above).
	ordersMaxBytes = 48 << 20
	ordersMaxMsgs  = 160_000
	// reportsMaxAge keeps reports a month whether or not they were
	// consumed: a durable consumer that is down for a month has bigger
	// problems, and a report that expired unconsumed is sent again when
	// ACME resends its order (the custodian answers every repeat). Limits
	// retention rather than work-queue or interest: a report published
	// while no consumer exists is kept, several consumers (a second node,
	// an audit tool) may read, and a consumer that is re-created from the
	// start replays instead of losing anything.
	reportsMaxAge = 30 * 24 * time.Hour
	// reportsMaxBytes and reportsMaxMsgs: a report is stored once per
	// order and week (repeats within DuplicateWindow are dropped), so a
	// month is at most 500 assets × 23 dealing days × 2 (the duplicate
	// fault) = 23,000 reports of 380 bytes (8.7 MB). 64 MiB holds 170,000
	// and the stream takes 150,000, six times that: only a custodian
	// publishing reports no order explains reaches it, and it is refused
	// (see above).
	reportsMaxBytes = 64 << 20
	reportsMaxMsgs  = 150_000
	// pricesMaxAge keeps a year of closing prices and a margin: 253
	// dealing days of messages under a kilobyte, re-readable for late
	// orders, valuations and audits.
	pricesMaxAge = 400 * 24 * time.Hour
	// pricesMaxMsgs and pricesMaxBytes: one message per date, and 400 days
	// hold at most 400 dates (about 280 dealing days); 1,000 dates of the
	// largest catalogue's 20 KB feeds is 20 MB, of the default one's 0.4 MB.
	pricesMaxMsgs  = 1_000
	pricesMaxBytes = 16 << 20
	// orderBytesMax and reportBytesMax bound one message: an order is under
	// 100 bytes and a report under 300; 64 KiB refuses only garbage.
	orderBytesMax  = 64 << 10
	reportBytesMax = 64 << 10
	// priceFeedBytesMax bounds one day's feed: 500 assets (the catalogue's
	// limit) at about 40 bytes each is 20 KB.
	priceFeedBytesMax = 256 << 10
	// ReplicasMax is the largest JetStream replication factor.
	ReplicasMax = 5
)

// Sentinel errors of the package, checked with errors.Is.
var (
	// ErrInvalidOrder: an order breaks the protocol or the catalogue.
	ErrInvalidOrder = errors.New("custodian: invalid order")
	// ErrNothingToOrder: the day's net units of an asset are zero, so
	// there is no order to send.
	ErrNothingToOrder = errors.New("custodian: net units are zero, nothing to order")
	// ErrInvalidReport: an execution report is malformed or its numbers
	// break the rounding rule.
	ErrInvalidReport = errors.New("custodian: invalid execution report")
	// ErrInvalidPrices: a price feed is malformed or names an unknown asset.
	ErrInvalidPrices = errors.New("custodian: invalid price feed")
	// ErrPriceConflict: prices for the date exist and differ from the ones
	// being published.
	ErrPriceConflict = errors.New("custodian: prices for the date differ from the published ones")
	// ErrUnavailable: nobody answers on the custodian's subjects.
	ErrUnavailable = errors.New("custodian: custodian unavailable")
	// ErrRefused: the custodian answered a request with an error.
	ErrRefused = errors.New("custodian: request refused")
	// ErrInvalidConfig: a configuration was refused by Validate.
	ErrInvalidConfig = errors.New("custodian: invalid configuration")
)

// OrderSubject is the subject of asset's orders.
func OrderSubject(asset domain.ISIN) string { return "custodian.orders." + string(asset) }

// ReportSubject is the subject of asset's execution reports.
func ReportSubject(asset domain.ISIN) string { return "custodian.reports." + string(asset) }

// PriceSubject is the subject of date's closing prices.
func PriceSubject(date domain.Date) string { return "prices." + date.String() }

// OrderMsgID is the Nats-Msg-Id of an order's attempt: the client order id
// itself for the first send (attempt 1), "<cl_ord_id>#<attempt>" for a
// resend. JetStream drops a message whose id it saw within DuplicateWindow,
// so the first send is idempotent (a cycle that runs twice sends one order),
// while each numbered resend reaches the custodian, which answers any order
// it has already executed with the same report. The payload always carries
// the bare client order id: the custodian never reads the message id.
func OrderMsgID(clOrdID string, attempt int) string {
	if attempt <= 1 {
		return clOrdID
	}
	return clOrdID + resendSeparator + strconv.Itoa(attempt)
}

// OrderMsgIDMatches reports whether msgID is one OrderMsgID could give for
// clOrdID; the simulator logs orders whose id does not, as a sign of a
// client that does not follow the protocol.
func OrderMsgIDMatches(msgID, clOrdID string) bool {
	if msgID == clOrdID {
		return true
	}
	rest, ok := strings.CutPrefix(msgID, clOrdID+resendSeparator)
	if !ok {
		return false
	}
	n, err := strconv.Atoi(rest)
	return err == nil && n >= 2
}

// StreamConfigs are the three streams of the protocol with replicas
// replicas (0 means 1).
func StreamConfigs(replicas int) []jetstream.StreamConfig {
	if replicas == 0 {
		replicas = 1
	}
	return []jetstream.StreamConfig{
		{
			Name:        OrdersStream,
			Description: "ACME's net orders to the custodian (one per dealing day and asset; resends)",
			Subjects:    []string{OrdersSubjects},
			Retention:   jetstream.LimitsPolicy,
			Storage:     jetstream.FileStorage,
			Replicas:    replicas,
			MaxAge:      ordersMaxAge,
			MaxBytes:    ordersMaxBytes,
			MaxMsgs:     ordersMaxMsgs,
			Duplicates:  DuplicateWindow,
			MaxMsgSize:  orderBytesMax,
			Discard:     jetstream.DiscardOld,
		},
		{
			Name:        ReportsStream,
			Description: "the custodian's execution reports",
			Subjects:    []string{ReportsSubjects},
			Retention:   jetstream.LimitsPolicy,
			Storage:     jetstream.FileStorage,
			Replicas:    replicas,
			MaxAge:      reportsMaxAge,
			MaxBytes:    reportsMaxBytes,
			MaxMsgs:     reportsMaxMsgs,
			Duplicates:  DuplicateWindow,
			MaxMsgSize:  reportBytesMax,
			Discard:     jetstream.DiscardNew,
		},
		{
			Name:        PricesStream,
			Description: "closing prices, one message per dealing day",
			Subjects:    []string{PricesSubjects},
			Retention:   jetstream.LimitsPolicy,
			Storage:     jetstream.FileStorage,
			Replicas:    replicas,
			MaxAge:      pricesMaxAge,
			MaxMsgs:     pricesMaxMsgs,
			MaxBytes:    pricesMaxBytes,
			// A date's feed is one message: a republish (prices added for
			// assets the feed lacked) replaces it, and readers take the
			// last message of the date's subject.
			MaxMsgsPerSubject: 1,
			MaxMsgSize:        priceFeedBytesMax,
			Discard:           jetstream.DiscardOld,
			AllowDirect:       true,
		},
	}
}

// EnsureStreams creates the protocol's streams, or updates them to the
// settings of StreamConfigs (an existing stream is updated only where its
// settings differ). It is idempotent; ACME and the custodian both
// call it at start, and must pass the same replicas (or they would undo
// each other's update). A change JetStream cannot apply in place (storage,
// retention) is an error, left to an operator.
func EnsureStreams(ctx context.Context, js jetstream.JetStream, replicas int) error {
	if replicas < 0 || replicas > ReplicasMax {
		return fmt.Errorf("%w: replicas %d outside [0, %d]", ErrInvalidConfig, replicas, ReplicasMax)
	}
	for _, cfg := range StreamConfigs(replicas) {
		// Every node and the custodian ask for them at start, often at
		// once on a fresh cluster.
		if _, err := natsstream.Ensure(ctx, js, cfg, true); err != nil {
			return fmt.Errorf("custodian: ensure stream %s: %w", cfg.Name, err)
		}
	}
	return nil
}
