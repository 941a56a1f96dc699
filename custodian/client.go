package custodian

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/acme/mastertrust/custodian/internal/consume"
	"github.com/acme/mastertrust/domain"
	"github.com/acme/mastertrust/internal/natsmsg"
	"github.com/acme/mastertrust/internal/recovered"
	"github.com/acme/mastertrust/proto/pb"
)

// Defaults and limits of ClientConfig.
const (
	// requestTimeoutDefault bounds a call whose context has no deadline: a
	// publish waits for the server's fsync, a holdings statement is
	// computed over a few thousand executions.
	requestTimeoutDefault = 10 * time.Second
	// reportAckWaitDefault: how long JetStream waits for the report handler
	// (which persists: a journal append) before redelivering the report.
	reportAckWaitDefault = 30 * time.Second
	// reportRetryIntervalDefault and reportRetryIntervalMaxDefault pace the
	// redeliveries of a report whose handler failed: 1s doubling to a
	// minute, so a handler that fails for an hour (a journal down) costs
	// about 60 deliveries per report.
	reportRetryIntervalDefault    = time.Second
	reportRetryIntervalMaxDefault = time.Minute
	// reportPullMsgsMax is how many reports nats.go pulls ahead: a day has
	// one per asset.
	reportPullMsgsMax = 64
	// publishPricesAttemptsMax bounds PublishPrices' compare-and-set loop;
	// each failed attempt means another publisher wrote the date's feed in
	// between, so a handful suffices.
	publishPricesAttemptsMax = 8
	// resendAttemptsMax bounds ResendOrder's attempt number: resending every
	// minute for the whole DuplicateWindow is 10,080 attempts.
	resendAttemptsMax = 1_000_000
	// durationMax bounds the client's timing settings: beyond an hour a
	// setting is a typo.
	durationMax = time.Hour
)

// ClientConfig configures ACME's side of the protocol. Zero values take the
// defaults documented on each field.
type ClientConfig struct {
	// Catalogue is ACME's assets; orders and prices are checked against it.
	// Default domain.DefaultCatalogue().
	Catalogue *domain.Catalogue
	// Replicas of the protocol's streams, for EnsureStreams. Default 1;
	// the custodian must use the same.
	Replicas int
	// RequestTimeout bounds a call whose context has no deadline. Default
	// 10s.
	RequestTimeout time.Duration
	// ReportAckWait is how long a report handler may run before JetStream
	// delivers the report again. Default 30s.
	ReportAckWait time.Duration
	// ReportRetryInterval is the delay before a report whose handler
	// failed is delivered again; it doubles with each delivery up to
	// ReportRetryIntervalMax. Defaults 1s and 1 minute.
	ReportRetryInterval    time.Duration
	ReportRetryIntervalMax time.Duration
	// Logger receives the client's log lines. Default: discard.
	Logger *slog.Logger
}

// EnsureDefaults fills zero fields with their defaults and returns c.
func (c *ClientConfig) EnsureDefaults() *ClientConfig {
	if c.Catalogue == nil {
		c.Catalogue = domain.DefaultCatalogue()
	}
	if c.Replicas == 0 {
		c.Replicas = 1
	}
	if c.RequestTimeout == 0 {
		c.RequestTimeout = requestTimeoutDefault
	}
	if c.ReportAckWait == 0 {
		c.ReportAckWait = reportAckWaitDefault
	}
	if c.ReportRetryInterval == 0 {
		c.ReportRetryInterval = reportRetryIntervalDefault
	}
	if c.ReportRetryIntervalMax == 0 {
		c.ReportRetryIntervalMax = max(reportRetryIntervalMaxDefault, c.ReportRetryInterval)
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	return c
}

// Validate reports every field out of range, with its value, in one error
// wrapping ErrInvalidConfig.
func (c *ClientConfig) Validate() error {
	var problems []string
	add := func(format string, args ...any) { problems = append(problems, fmt.Sprintf(format, args...)) }
	if c.Catalogue == nil {
		add("Catalogue is nil")
	}
	if c.Replicas < 1 || c.Replicas > ReplicasMax {
		add("Replicas %d: want [1, %d]", c.Replicas, ReplicasMax)
	}
	for _, d := range []struct {
		name  string
		value time.Duration
	}{
		{"RequestTimeout", c.RequestTimeout}, {"ReportAckWait", c.ReportAckWait},
		{"ReportRetryInterval", c.ReportRetryInterval}, {"ReportRetryIntervalMax", c.ReportRetryIntervalMax},
	} {
		if d.value <= 0 || d.value > durationMax {
			add("%s %s: want (0, %s]", d.name, d.value, durationMax)
		}
	}
	if c.ReportRetryIntervalMax < c.ReportRetryInterval {
		add("ReportRetryIntervalMax %s is less than ReportRetryInterval %s", c.ReportRetryIntervalMax, c.ReportRetryInterval)
	}
	if len(problems) == 0 {
		return nil
	}
	return fmt.Errorf("%w: %s", ErrInvalidConfig, strings.Join(problems, "; "))
}

// Client is ACME's side of the custodian protocol over one NATS
// connection. It keeps no state of its own: what was sent and what was
// reported is the caller's to persist (the asset book's journal), so that a
// crash loses nothing. Safe for concurrent use.
type Client struct {
	nc  *nats.Conn
	js  jetstream.JetStream
	cfg ClientConfig
	log *slog.Logger

	// mu guards prices, the price stream's handle, looked up on first use
	// (the stream may not exist when the client is made).
	mu     sync.Mutex
	prices jetstream.Stream
}

// NewClient is a client on nc.
func NewClient(nc *nats.Conn, cfg ClientConfig) (*Client, error) {
	cfg.EnsureDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	js, err := jetstream.New(nc)
	if err != nil {
		return nil, fmt.Errorf("custodian: client: %w", err)
	}
	return &Client{nc: nc, js: js, cfg: cfg, log: cfg.Logger.With("component", "custodian-client")}, nil
}

// EnsureStreams creates or updates the protocol's streams (see the
// package-level EnsureStreams).
func (c *Client) EnsureStreams(ctx context.Context) error {
	ctx, cancel := c.withTimeout(ctx)
	defer cancel()
	return EnsureStreams(ctx, c.js, c.cfg.Replicas)
}

// SendOrder sends an order for the first time: it checks it (ParseOrder),
// publishes it on the orders stream with Nats-Msg-Id = cl_ord_id, and
// returns once JetStream has stored it (or found it already stored: within
// DuplicateWindow a second SendOrder of the same order is a no-op, so a
// cycle that runs twice, or a node that crashed before recording "sent",
// may call it again). An error leaves it unknown whether the order was
// stored: call again.
//
// The order is executed once however often it is sent. Until its report
// has been recorded, the caller resends it with ResendOrder.
func (c *Client) SendOrder(ctx context.Context, o *pb.CustodianOrder) error {
	return c.publishOrder(ctx, o, 1)
}

// ResendOrder sends an order again, as attempt number attempt (2 for the
// first resend), with Nats-Msg-Id = "<cl_ord_id>#<attempt>": a new message
// id, so JetStream lets it through and the custodian sees it, and answers
// with the order's report (the same report as before, if it had executed
// the order: a lost report is recovered this way). Two resends with the
// same attempt number within DuplicateWindow count as one: nodes that
// resend the same attempt do not flood the custodian. A caller that does
// not persist its attempt numbers may derive them from a clock (e.g. the
// minutes since the dealing day's valuation point, plus 2).
func (c *Client) ResendOrder(ctx context.Context, o *pb.CustodianOrder, attempt int) error {
	if attempt < 2 || attempt > resendAttemptsMax {
		return fmt.Errorf("%w %q: resend attempt %d: want [2, %d]", ErrInvalidOrder, o.GetClOrdId(), attempt, resendAttemptsMax)
	}
	return c.publishOrder(ctx, o, attempt)
}

func (c *Client) publishOrder(ctx context.Context, o *pb.CustodianOrder, attempt int) error {
	order, err := ParseOrder(c.cfg.Catalogue, o)
	if err != nil {
		return err
	}
	msg, err := natsmsg.New(OrderSubject(order.Asset.ISIN), o)
	if err != nil {
		return fmt.Errorf("custodian: order %s: %w", order.ClOrdID, err)
	}
	ctx, cancel := c.withTimeout(ctx)
	defer cancel()
	msgID := OrderMsgID(order.ClOrdID, attempt)
	ack, err := c.js.PublishMsg(ctx, msg, jetstream.WithMsgID(msgID), jetstream.WithExpectStream(OrdersStream))
	if err != nil {
		return fmt.Errorf("custodian: send order %s (attempt %d): %w", order.ClOrdID, attempt, err)
	}
	c.log.Debug("order sent", "cl_ord_id", order.ClOrdID, "msg_id", msgID, "duplicate", ack.Duplicate, "seq", ack.Sequence)
	return nil
}

// ReportHandler handles one execution report. It must be idempotent by
// execution id: the same report can arrive more than once (a redelivery
// after a failed or lost acknowledgement, a custodian that sends it twice, a
// repeat answered after JetStream's deduplication window). Returning nil
// acknowledges the report, so return nil only once the report is recorded
// durably; an error puts it back for redelivery (after
// ReportRetryInterval, doubling). A report that can never be accepted
// (ParseExecutionReport fails) should be recorded as a break and
// acknowledged, not refused forever.
type ReportHandler func(ctx context.Context, r *pb.ExecutionReport) error

// Reports consumes execution reports with the durable consumer durableName
// of the reports stream, from the first report the consumer has not yet
// acknowledged, handing them to handle one at a time. It returns once the
// consumer exists; consuming goes on in the background until stop is called
// or ctx is done, so pass a context that lives as long as the node, not a
// request's. stop waits for the handler in progress (its context is
// cancelled) and puts back the reports pulled but not handled.
//
// Nodes that share durableName share the reports: each report goes to one of
// them at a time (and to another if it is not acknowledged). A report that
// cannot be decoded, or whose headers say it is another message
// (natsmsg.Check), is terminated with the reason and logged as an error.
func (c *Client) Reports(ctx context.Context, durableName string, handle ReportHandler) (stop func(), err error) {
	return c.consume(ctx, ReportsStream, ReportsSubjects, durableName, "ACME's execution reports",
		func(ctx context.Context, msg jetstream.Msg, log *slog.Logger) { c.handleReport(ctx, msg, handle, log) })
}

// consume runs a durable consumer of a stream's subjects in the background,
// handing each message to handle, until stop or ctx. It returns once the
// consumer exists. Messages are never given up on: handle acknowledges,
// naks or terminates each.
func (c *Client) consume(ctx context.Context, stream, subjects, durableName, description string,
	handle func(ctx context.Context, msg jetstream.Msg, log *slog.Logger)) (stop func(), err error) {
	if !consume.ValidConsumerName(durableName) {
		return nil, fmt.Errorf("%w: durable name %q: want a non-empty name without '.', '*', '>' or spaces", ErrInvalidConfig, durableName)
	}
	cfg := jetstream.ConsumerConfig{
		Durable:       durableName,
		Description:   description,
		FilterSubject: subjects,
		DeliverPolicy: jetstream.DeliverAllPolicy,
		AckPolicy:     jetstream.AckExplicitPolicy,
		AckWait:       c.cfg.ReportAckWait,
		MaxDeliver:    -1,
	}
	setupCtx, cancelSetup := c.withTimeout(ctx)
	cons, err := c.js.CreateOrUpdateConsumer(setupCtx, stream, cfg)
	cancelSetup()
	if err != nil {
		return nil, fmt.Errorf("custodian: consumer %s of %s: %w", durableName, stream, err)
	}
	runCtx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	log := c.log.With("consumer", durableName)
	go func() {
		defer close(done)
		consume.PullLoop(runCtx, c.js, stream, cfg, cons, reportPullMsgsMax, c.cfg.ReportRetryInterval, log,
			func(ctx context.Context, msg jetstream.Msg) {
				// A handler that panics (ours: it persists the message) is
				// recovered, logged and counted, and the message comes back
				// after the retry delay, as after an error: one bad message
				// or one bug must not end the process, nor the consumer.
				perr := recovered.Run(log, "custodian-consumer", func() { handle(ctx, msg, log) }, "subject", msg.Subject())
				if perr != nil {
					c.redeliver(msg, log, perr)
				}
			})
	}()
	var once sync.Once
	return func() {
		once.Do(func() {
			cancel()
			<-done
		})
	}, nil
}

// redeliver puts a message back for delivery after the retry delay its
// deliveries so far call for.
func (c *Client) redeliver(msg jetstream.Msg, log *slog.Logger, cause error) {
	n := consume.NumDelivered(msg)
	d := consume.RetryDelay(n, c.cfg.ReportRetryInterval, c.cfg.ReportRetryIntervalMax)
	log.Warn("message handler failed; redelivering", "subject", msg.Subject(), "delivery", n, "redeliver_in", d, "err", cause)
	if err := msg.NakWithDelay(d); err != nil {
		log.Warn("nak", "subject", msg.Subject(), "err", err) // redelivered after AckWait
	}
}

// handleReport hands one delivery to handle and acknowledges it if handle
// succeeded.
func (c *Client) handleReport(ctx context.Context, msg jetstream.Msg, handle ReportHandler, log *slog.Logger) {
	var r pb.ExecutionReport
	if err := natsmsg.Decode(msg.Headers(), msg.Data(), &r); err != nil {
		refuse(msg, log, "execution report", err)
		return
	}
	if err := handle(ctx, &r); err != nil {
		n := consume.NumDelivered(msg)
		d := consume.RetryDelay(n, c.cfg.ReportRetryInterval, c.cfg.ReportRetryIntervalMax)
		log.Warn("report handler failed; redelivering", "execution_id", r.GetExecutionId(), "delivery", n,
			"redeliver_in", d, "err", err)
		if err := msg.NakWithDelay(d); err != nil {
			log.Warn("nak report", "execution_id", r.GetExecutionId(), "err", err) // redelivered after AckWait
		}
		return
	}
	if err := msg.Ack(); err != nil {
		// Redelivered after AckWait; the handler is idempotent.
		log.Warn("ack report", "execution_id", r.GetExecutionId(), "err", err)
	}
}

// Holdings asks the custodian for its holdings statement as of asOf. Check
// it with ParseHoldingsStatement.
func (c *Client) Holdings(ctx context.Context, asOf domain.Date) (*pb.HoldingsStatement, error) {
	if asOf.IsZero() {
		return nil, errors.New("custodian: holdings: no as-of date")
	}
	req, err := natsmsg.New(HoldingsSubject, &pb.HoldingsRequest{AsOf: asOf.String()})
	if err != nil {
		return nil, fmt.Errorf("custodian: holdings: %w", err)
	}
	ctx, cancel := c.withTimeout(ctx)
	defer cancel()
	resp, err := c.nc.RequestMsgWithContext(ctx, req)
	if errors.Is(err, nats.ErrNoResponders) {
		return nil, fmt.Errorf("%w: no responder on %s", ErrUnavailable, HoldingsSubject)
	}
	if err != nil {
		return nil, fmt.Errorf("custodian: holdings as of %s: %w", asOf, err)
	}
	if reason := resp.Header.Get(ErrorHeader); reason != "" {
		return nil, fmt.Errorf("%w: holdings as of %s: %s", ErrRefused, asOf, reason)
	}
	var st pb.HoldingsStatement
	if err := natsmsg.Decode(resp.Header, resp.Data, &st); err != nil {
		return nil, fmt.Errorf("custodian: holdings as of %s: %w", asOf, err)
	}
	if st.GetAsOf() != asOf.String() {
		return nil, fmt.Errorf("custodian: holdings as of %s: statement is as of %q", asOf, st.GetAsOf())
	}
	return &st, nil
}

// PublishPrices publishes date's closing prices on the price feed. A
// date's prices never change once published: if the feed of the date
// already has a price for an asset, it must be the same (equal as a number)
// or PublishPrices fails with ErrPriceConflict and publishes nothing.
// Prices for assets the feed lacks are added (the feed message is replaced
// by the union). Publishing what is already there is a no-op, so a retry is
// safe. Concurrent publishers are serialised by JetStream's
// expected-last-subject-sequence check.
func (c *Client) PublishPrices(ctx context.Context, date domain.Date, prices map[domain.ISIN]domain.Price) error {
	if len(prices) == 0 {
		return fmt.Errorf("%w %s: no prices", ErrInvalidPrices, date)
	}
	if _, err := encodePriceFeed(c.cfg.Catalogue, date, prices); err != nil {
		return err
	}
	ctx, cancel := c.withTimeout(ctx)
	defer cancel()
	for range publishPricesAttemptsMax {
		have, seq, err := c.lastPrices(ctx, date)
		if err != nil {
			return err
		}
		merged := maps.Clone(have)
		if merged == nil {
			merged = make(map[domain.ISIN]domain.Price, len(prices))
		}
		added := 0
		for _, isin := range slices.Sorted(maps.Keys(prices)) {
			p := prices[isin]
			old, ok := have[isin]
			if ok && !old.Equal(p) {
				return fmt.Errorf("%w: %s %s: published %s, now %s", ErrPriceConflict, date, isin, old, p)
			}
			if !ok {
				merged[isin] = p
				added++
			}
		}
		if added == 0 {
			return nil
		}
		feed, err := encodePriceFeed(c.cfg.Catalogue, date, merged)
		if err != nil {
			return err
		}
		msg, err := natsmsg.New(PriceSubject(date), feed)
		if err != nil {
			return fmt.Errorf("custodian: prices of %s: %w", date, err)
		}
		_, err = c.js.PublishMsg(ctx, msg, jetstream.WithExpectStream(PricesStream), jetstream.WithExpectLastSequencePerSubject(seq))
		if isWrongLastSequence(err) {
			continue // another publisher wrote the date's feed: compare again
		}
		if err != nil {
			return fmt.Errorf("custodian: publish prices of %s: %w", date, err)
		}
		c.log.Info("prices published", "date", date, "assets", len(merged), "added", added)
		return nil
	}
	return fmt.Errorf("custodian: publish prices of %s: the feed kept changing under %d attempts", date, publishPricesAttemptsMax)
}

// Prices are date's closing prices from the feed (the latest message of the
// date); found is false when the feed has none for the date. Prices of
// assets outside the catalogue are left out (and logged).
func (c *Client) Prices(ctx context.Context, date domain.Date) (map[domain.ISIN]domain.Price, bool, error) {
	ctx, cancel := c.withTimeout(ctx)
	defer cancel()
	prices, seq, err := c.lastPrices(ctx, date)
	return prices, seq != 0, err
}

// lastPrices reads date's feed: its prices and its stream sequence (0 and a
// nil map when there is none).
func (c *Client) lastPrices(ctx context.Context, date domain.Date) (map[domain.ISIN]domain.Price, uint64, error) {
	if date.IsZero() {
		return nil, 0, fmt.Errorf("%w: no date", ErrInvalidPrices)
	}
	stream, err := c.pricesStream(ctx)
	if err != nil {
		return nil, 0, err
	}
	raw, err := stream.GetLastMsgForSubject(ctx, PriceSubject(date))
	if errors.Is(err, jetstream.ErrMsgNotFound) {
		return nil, 0, nil
	}
	if err != nil {
		return nil, 0, fmt.Errorf("custodian: read prices of %s: %w", date, err)
	}
	var f pb.PriceFeed
	if err := natsmsg.Decode(raw.Header, raw.Data, &f); err != nil {
		return nil, 0, fmt.Errorf("%w %s: %w", ErrInvalidPrices, date, err)
	}
	prices, ignored, err := ParsePriceFeed(c.cfg.Catalogue, date, &f)
	if err != nil {
		return nil, 0, err
	}
	if len(ignored) > 0 {
		c.log.Warn("price feed names assets outside the catalogue; ignored", "date", date, "assets", ignored)
	}
	return prices, raw.Sequence, nil
}

// pricesStream is the price feed's stream.
func (c *Client) pricesStream(ctx context.Context) (jetstream.Stream, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.prices != nil {
		return c.prices, nil
	}
	s, err := c.js.Stream(ctx, PricesStream)
	if err != nil {
		return nil, fmt.Errorf("custodian: prices stream: %w", err)
	}
	c.prices = s
	return s, nil
}

// withTimeout bounds ctx by RequestTimeout when it has no deadline.
func (c *Client) withTimeout(ctx context.Context) (context.Context, context.CancelFunc) {
	if _, ok := ctx.Deadline(); ok {
		return ctx, func() {}
	}
	return context.WithTimeout(ctx, c.cfg.RequestTimeout)
}

// JetStream's error codes for a failed expected-last-subject-sequence
// check (as in persistence/jetstream).
const (
	errCodeWrongLastSequence         jetstream.ErrorCode = 10071 // single server, or the leader's check
	errCodeWrongLastSequenceConstant jetstream.ErrorCode = 10164 // replicated: a write to the subject is in flight
)

func isWrongLastSequence(err error) bool {
	var apiErr *jetstream.APIError
	return errors.As(err, &apiErr) &&
		(apiErr.ErrorCode == errCodeWrongLastSequence || apiErr.ErrorCode == errCodeWrongLastSequenceConstant)
}

// PricesHandler records one day's closing prices from the feed; it must be
// idempotent (the same day may be delivered again) and return nil only once
// the prices are recorded durably.
type PricesHandler func(ctx context.Context, date domain.Date, prices map[domain.ISIN]domain.Price) error

// PriceFeed consumes the price feed (the fund managers' closing prices, and
// ACME's own publications) with the durable consumer durableName, handing
// each day's prices to handle and acknowledging them once it succeeds. Like
// Reports, it returns once the consumer exists and goes on in the
// background until stop or ctx; nodes sharing durableName share the feed.
// A message that cannot be read, or whose headers say it is another message,
// is terminated with the reason and logged.
func (c *Client) PriceFeed(ctx context.Context, durableName string, handle PricesHandler) (stop func(), err error) {
	return c.consume(ctx, PricesStream, PricesSubjects, durableName, "ACME's price feed",
		func(ctx context.Context, msg jetstream.Msg, log *slog.Logger) { c.handlePrices(ctx, msg, handle, log) })
}

func (c *Client) handlePrices(ctx context.Context, msg jetstream.Msg, handle PricesHandler, log *slog.Logger) {
	var feed pb.PriceFeed
	date, prices, err := func() (domain.Date, map[domain.ISIN]domain.Price, error) {
		if err := natsmsg.Decode(msg.Headers(), msg.Data(), &feed); err != nil {
			return domain.Date{}, nil, err
		}
		date, err := domain.ParseDate(feed.Date)
		if err != nil {
			return domain.Date{}, nil, err
		}
		prices := make(map[domain.ISIN]domain.Price, len(feed.Prices))
		for isin, s := range feed.Prices {
			p, err := domain.ParsePrice(s, domain.PriceDecimalsMax)
			if err != nil {
				return domain.Date{}, nil, fmt.Errorf("%s: %w", isin, err)
			}
			prices[domain.ISIN(isin)] = p
		}
		return date, prices, nil
	}()
	if err != nil {
		refuse(msg, log, "price feed", err)
		return
	}
	if err := handle(ctx, date, prices); err != nil {
		n := consume.NumDelivered(msg)
		d := consume.RetryDelay(n, c.cfg.ReportRetryInterval, c.cfg.ReportRetryIntervalMax)
		log.Warn("prices handler failed; redelivering", "date", date, "delivery", n, "redeliver_in", d, "err", err)
		if err := msg.NakWithDelay(d); err != nil {
			log.Warn("nak prices", "date", date, "err", err)
		}
		return
	}
	if err := msg.Ack(); err != nil {
		log.Warn("ack prices", "date", date, "err", err)
	}
}

// refuse terminates a message that can never be read as what (a message of
// another type, by its headers, or bytes that do not decode), with the
// reason, so that JetStream neither redelivers it nor lets it block the
// consumer, and logs it as an error: someone published something that is
// not the protocol.
func refuse(msg jetstream.Msg, log *slog.Logger, what string, err error) {
	reason := fmt.Sprintf("not a readable %s: %v", what, err)
	log.Error("message refused and terminated", "subject", msg.Subject(), "reason", reason, "err", err)
	if err := msg.TermWithReason(reason); err != nil {
		log.Warn("terminate message", "subject", msg.Subject(), "err", err)
	}
}
