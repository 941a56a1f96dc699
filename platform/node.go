// Package platform assembles mastertrust's processes from their parts: a
// node (pot grains on a cluster member over a journal) and the pieces the
// gateway needs. cmd/mastertrust binds flags to it; tests start whole
// platforms with it, so that what is tested is what runs.
package platform

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/acme/mastertrust/actors"
	"github.com/acme/mastertrust/cluster"
	"github.com/acme/mastertrust/custodian"
	"github.com/acme/mastertrust/domain"
	"github.com/acme/mastertrust/internal/problem"
	"github.com/acme/mastertrust/persistence"
	"github.com/acme/mastertrust/proto/pb"
)

// NodeConfig configures a node that hosts pot grains.
type NodeConfig struct {
	// Cluster configures the cluster member (provider, host, port,
	// timeouts). Its Kinds are set by StartNode.
	Cluster cluster.Config
	// Journal is the node's journal: its own Pebble store, or the JetStream
	// journal every node of a cluster shares. StartNode does not close it.
	Journal   persistence.Journal
	Catalogue *domain.Catalogue
	Calendar  *domain.Calendar
	// HistoryDir is the directory of the node's history read model
	// (package history): its own Pebble store, built from Journal's feed,
	// which StartNode opens and Stop closes. Required.
	HistoryDir string
	// Market gives pots the latest prices and the first open dealing day;
	// StartNode keeps it in step with the journal. Default: a new one.
	Market *actors.MarketState
	// Custodian is ACME's side of the custodian protocol; nil on a node
	// without NATS, which then cannot run dealing cycles (its pots serve
	// members all the same).
	Custodian *custodian.Client
	// Notifier publishes contract notes on NATS; nil publishes none.
	Notifier actors.Notifier
	// Dealing configures the dealing cycle's grains.
	Dealing actors.DealingConfig
	// Now is the pots' clock. Default: time.Now.
	Now  func() time.Time
	Pots actors.PotConfig
	// PotIdleTimeout passivates a pot that has had no message for this
	// long. Default: the cluster's IdleTimeout.
	PotIdleTimeout time.Duration
	// Registry receives the node's metrics. Default: a new registry.
	Registry *prometheus.Registry
	Logger   *slog.Logger
}

// Node is a running node.
type Node struct {
	Cluster  *cluster.Node
	Journal  persistence.Journal
	Market   *actors.MarketState
	Metrics  *actors.Metrics
	Registry *prometheus.Registry
	// Pots calls pot grains from this node.
	Pots actors.PotClient

	// stop ends the market follower and the reports consumer.
	stop func()
	// potDeps are the pot grains' shared parts, stopped after the cluster.
	potDeps *actors.PotDeps
	// closeHistory closes the history read model once its follower has
	// stopped (after stop).
	closeHistory func() error
}

// marketFollowInterval: how often a node reads the system feed for prices
// and cut-offs published by others (a cut-off also reaches every member at
// once through the fence; this covers members that join later).
const marketFollowInterval = time.Second

// historyFollowInterval: how often the history read model catches up with
// the journal's feed. A read of the history catches up itself first
// (History.WaitVersion), so this bounds only how far behind an idle node's
// history lags, and how much one catch-up has to read on a busy one.
const historyFollowInterval = 200 * time.Millisecond

// historyCatchUpBeforeJoin bounds the history's catch-up before a node
// joins the cluster (see StartNode): a journal this node has not seen for
// long, or a first start on a long one, catches up in the background.
const historyCatchUpBeforeJoin = time.Minute

// pricesConsumer is the durable consumer of the price feed shared by every
// member.
const pricesConsumer = "acme-prices"

// recordFeedPrices records prices from the feed as POST /v1/prices does. A
// permanent refusal (prices missing an asset, or differing from those
// recorded) is logged for operators and not retried; anything else is.
func recordFeedPrices(op actors.Operator, log *slog.Logger) custodian.PricesHandler {
	return func(ctx context.Context, date domain.Date, prices map[domain.ISIN]domain.Price) error {
		_, err := op.PublishPrices(ctx, actors.PricesPublication{Date: date, Prices: prices, By: "feed"})
		var oe *actors.OperatorError
		if errors.As(err, &oe) && oe.Code != problem.OperationFailed {
			// Refused for good (invalid, other prices recorded, not a
			// dealing day…): redelivering would not change it.
			log.Warn("prices on the feed refused", "date", date, "code", oe.Code, "reason", oe.Message)
			return nil
		}
		return err
	}
}

// executionsConsumer is the durable consumer of execution reports shared by
// every member (each report goes to one of them).
const executionsConsumer = "acme-executions"

// StartNode starts a member hosting pot grains.
func StartNode(cfg NodeConfig) (*Node, error) {
	var problems []error
	if cfg.Journal == nil {
		problems = append(problems, errors.New("no journal"))
	}
	if cfg.Catalogue == nil {
		problems = append(problems, errors.New("no catalogue"))
	}
	if cfg.Calendar == nil {
		problems = append(problems, errors.New("no calendar"))
	}
	if cfg.HistoryDir == "" {
		problems = append(problems, errors.New("no history directory"))
	}
	if len(problems) > 0 {
		return nil, fmt.Errorf("platform: start node: %w", errors.Join(problems...))
	}
	if cfg.Market == nil {
		cfg.Market = actors.NewMarketState()
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Registry == nil {
		cfg.Registry = prometheus.NewRegistry()
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	cfg.Pots.EnsureDefaults()
	if err := cfg.Pots.Validate(); err != nil {
		return nil, fmt.Errorf("platform: start node: %w", err)
	}
	if cfg.Journal.Groups() < actors.JournalGroupsMin {
		return nil, fmt.Errorf("platform: start node: the journal has %d groups, want at least %d", cfg.Journal.Groups(), actors.JournalGroupsMin)
	}
	ctx, cancel := context.WithCancel(context.Background())
	ok := false
	defer func() {
		if !ok {
			cancel()
		}
	}()
	if err := actors.FollowMarket(ctx, cfg.Journal, cfg.Market, marketFollowInterval, cfg.Logger); err != nil {
		return nil, fmt.Errorf("platform: start node: %w", err)
	}
	hist, err := openHistory(cfg.HistoryDir, HistoryOptions(cfg.Catalogue, cfg.Logger, cfg.Journal), cfg.Logger)
	if err != nil {
		return nil, fmt.Errorf("platform: start node: %w", err)
	}
	defer func() {
		if !ok {
			hist.Close()
		}
	}()
	// Catch the history up before joining. Pots that have forgotten old
	// idempotency keys ask the history about every key they do not
	// remember (actors' pastRequest), and wait for it to reach them: a node
	// that joined behind the journal (new, or back after a while) stalled
	// every call to the pots it took over while it caught up, at once and
	// on the cluster's clock. Catching up first costs only this node's
	// start. A journal too long to catch up within historyCatchUpBeforeJoin
	// (or failing) is left to the follower, as before.
	caughtUpStart := time.Now()
	catchUpCtx, cancelCatchUp := context.WithTimeout(ctx, historyCatchUpBeforeJoin)
	caughtUp := hist.CatchUpAll(catchUpCtx, cfg.Journal)
	cancelCatchUp()
	took := time.Since(caughtUpStart).Round(time.Millisecond)
	if caughtUp {
		cfg.Logger.Info("history caught up with the journal before joining", "took", took)
	} else {
		cfg.Logger.Warn("history still behind the journal; joining anyway: pots that ask it about old keys wait for it", "took", took)
	}
	followed := make(chan struct{})
	go func() {
		defer close(followed)
		hist.Follow(ctx, cfg.Journal, historyFollowInterval)
	}()
	metrics := actors.NewMetrics(cfg.Registry)
	deps := &actors.PotDeps{Journal: cfg.Journal, Catalogue: cfg.Catalogue, Calendar: cfg.Calendar,
		Market: cfg.Market, Now: cfg.Now, Config: cfg.Pots, History: hist, Metrics: metrics, Logger: cfg.Logger}
	dealing := &actors.DealingDeps{Journal: cfg.Journal, Catalogue: cfg.Catalogue, Calendar: cfg.Calendar,
		Market: cfg.Market, Now: cfg.Now, Config: cfg.Dealing, Logger: cfg.Logger, Metrics: metrics}
	if cfg.Custodian != nil {
		dealing.Custodian = custodianAdapter{cfg.Custodian}
	}
	dealing.Notifier = cfg.Notifier
	cc := cfg.Cluster
	cc.Kinds = append([]cluster.Kind{{Name: actors.PotKind, New: actors.NewPotKind(deps), IdleTimeout: cfg.PotIdleTimeout}},
		dealing.Kinds()...)
	cc.Services = map[string]cluster.MemberService{actors.MarketService: actors.MarketMember(cfg.Market)}
	cc.Gauges = withMemoryGauges(actors.NodeGauges(deps, cfg.Market))
	if cc.Logger == nil {
		cc.Logger = cfg.Logger
	}
	member, err := cluster.Start(cc)
	if err != nil {
		return nil, fmt.Errorf("platform: start node: %w", err)
	}
	dealing.SetNode(member)
	if cfg.Custodian != nil {
		stopReports, err := cfg.Custodian.Reports(ctx, executionsConsumer, dealing.ExecutionRecorder())
		if err != nil {
			member.Kill()
			return nil, fmt.Errorf("platform: start node: consume execution reports: %w", err)
		}
		stopPrices, err := cfg.Custodian.PriceFeed(ctx, pricesConsumer, recordFeedPrices(actors.Operator{Node: member}, cfg.Logger))
		if err != nil {
			stopReports()
			member.Kill()
			return nil, fmt.Errorf("platform: start node: consume the price feed: %w", err)
		}
		prev := cancel
		cancel = func() { stopPrices(); stopReports(); prev() }
	}
	ok = true
	stop := cancel
	return &Node{Cluster: member, Journal: cfg.Journal, Market: cfg.Market, Metrics: metrics,
		Registry: cfg.Registry, Pots: actors.PotClient{Node: member}, stop: stop, potDeps: deps,
		closeHistory: func() error {
			<-followed
			return hist.Close()
		}}, nil
}

// Stop leaves the cluster gracefully: the node's pots passivate, and their
// next requests activate them on other members. A nil Node, or one with
// parts missing (a Node literal in a test), stops what it has.
func (n *Node) Stop(ctx context.Context) error {
	if n == nil {
		return nil
	}
	if n.stop != nil {
		n.stop()
	}
	var err error
	if n.Cluster != nil {
		err = n.Cluster.Stop(ctx)
	}
	if n.potDeps != nil {
		n.potDeps.Stop()
	}
	if n.closeHistory != nil {
		err = errors.Join(err, n.closeHistory())
	}
	return err
}

// Kill stops the node at once, as a crash would (for tests).
func (n *Node) Kill() {
	if n == nil {
		return
	}
	if n.stop != nil {
		n.stop()
	}
	if n.Cluster != nil {
		n.Cluster.Kill()
	}
	if n.potDeps != nil {
		n.potDeps.Stop()
	}
	if n.closeHistory != nil {
		if err := n.closeHistory(); err != nil {
			log := slog.Default()
			if n.potDeps != nil {
				log = n.potDeps.Logger
			}
			log.Warn("close history", "err", err)
		}
	}
}

// custodianAdapter gives the dealing grains the custodian client.
type custodianAdapter struct{ *custodian.Client }

func (c custodianAdapter) SendOrder(ctx context.Context, o *pb.CustodianOrder, attempt int) error {
	if attempt <= 1 {
		return c.Client.SendOrder(ctx, o)
	}
	return c.Client.ResendOrder(ctx, o, attempt)
}

func (c custodianAdapter) PublishPrices(ctx context.Context, date domain.Date, prices map[domain.ISIN]domain.Price) error {
	err := c.Client.PublishPrices(ctx, date, prices)
	if errors.Is(err, custodian.ErrPriceConflict) {
		return fmt.Errorf("%w: %w", actors.ErrPriceFeedConflict, err)
	}
	return err
}
