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
	"github.com/acme/mastertrust/domain"
	"github.com/acme/mastertrust/persistence"
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
	// Market gives pots the latest prices and the first open dealing day.
	// Default: a new, empty MarketState.
	Market actors.Market
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
	Market   actors.Market
	Metrics  *actors.Metrics
	Registry *prometheus.Registry
	// Pots calls pot grains from this node.
	Pots actors.PotClient
}

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
	metrics := actors.NewMetrics(cfg.Registry)
	deps := &actors.PotDeps{Journal: cfg.Journal, Catalogue: cfg.Catalogue, Calendar: cfg.Calendar,
		Market: cfg.Market, Now: cfg.Now, Config: cfg.Pots, Metrics: metrics, Logger: cfg.Logger}
	cc := cfg.Cluster
	cc.Kinds = []cluster.Kind{{Name: actors.PotKind, New: actors.NewPotKind(deps), IdleTimeout: cfg.PotIdleTimeout}}
	if cc.Logger == nil {
		cc.Logger = cfg.Logger
	}
	member, err := cluster.Start(cc)
	if err != nil {
		return nil, fmt.Errorf("platform: start node: %w", err)
	}
	return &Node{Cluster: member, Journal: cfg.Journal, Market: cfg.Market, Metrics: metrics,
		Registry: cfg.Registry, Pots: actors.PotClient{Node: member}}, nil
}

// Stop leaves the cluster gracefully: the node's pots passivate, and their
// next requests activate them on other members.
func (n *Node) Stop(ctx context.Context) error {
	return n.Cluster.Stop(ctx)
}
