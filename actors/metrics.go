package actors

import (
	"github.com/prometheus/client_golang/prometheus"

	"github.com/acme/mastertrust/internal/recovered"
)

// Metrics of the grains of a node. Register them on the node's own
// registry (no global state): NewMetrics(registry).
type Metrics struct {
	Requests        *prometheus.CounterVec // by command and outcome
	AppendSeconds   prometheus.Histogram
	BatchEvents     prometheus.Histogram
	ActivePots      prometheus.Gauge
	Activations     prometheus.Counter
	RecoverySeconds prometheus.Histogram
	SnapshotBytes   prometheus.Histogram // its count: the snapshots taken
	// Shed counts the calls pots answered "unavailable" at once without
	// deciding them, by reason: expired (the caller's deadline had
	// passed), pending (the node was at PotConfig.PendingMax).
	Shed *prometheus.CounterVec
	// ExecutionsRefused counts the custodian's execution reports refused
	// for not matching an order ACME sent: an alarm (docs/dealing.md,
	// "Execution reports are checked").
	ExecutionsRefused prometheus.Counter
}

// NewMetrics creates the pot metrics and registers them on reg.
func NewMetrics(reg prometheus.Registerer) *Metrics {
	m := &Metrics{
		Requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "mastertrust_pot_requests_total",
			Help: "Requests handled by pot grains, by command and outcome (ok, replayed, refused, failed).",
		}, []string{"command", "outcome"}),
		AppendSeconds: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "mastertrust_pot_append_seconds",
			Help:    "Time a pot's journal append takes until durable.",
			Buckets: prometheus.ExponentialBuckets(0.0005, 2, 14),
		}),
		BatchEvents: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "mastertrust_pot_batch_events",
			Help:    "Events in one pot append (a pot batches what its mailbox holds).",
			Buckets: prometheus.ExponentialBuckets(1, 2, 10),
		}),
		ActivePots: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "mastertrust_pot_active",
			Help: "Pot grains active on this node.",
		}),
		Activations: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "mastertrust_pot_activations_total",
			Help: "Pot grain activations on this node.",
		}),
		RecoverySeconds: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "mastertrust_pot_recovery_seconds",
			Help:    "Time a pot takes to recover from its snapshot and journal on activation.",
			Buckets: prometheus.ExponentialBuckets(0.0005, 2, 14),
		}),
		SnapshotBytes: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "mastertrust_pot_snapshot_bytes",
			Help:    "Size of the snapshots pots take (a pot's state grows with its history; snapshots wait for their weight in events).",
			Buckets: prometheus.ExponentialBuckets(256, 4, 10),
		}),
		Shed: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "mastertrust_pot_calls_shed_total",
			Help: "Calls pots refused at once without deciding them (nothing done), by reason: expired (the caller had given up), pending (the node was at its limit of requests waiting for the journal).",
		}, []string{"reason"}),
		ExecutionsRefused: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "mastertrust_execution_reports_refused_total",
			Help: "Execution reports refused for not matching an order ACME sent (ClOrdID, asset, side, units, the day's price): an alarm; each is kept in the alarms stream and shown by reconciliation.",
		}),
	}
	reg.MustRegister(m.Requests, m.AppendSeconds, m.BatchEvents, m.ActivePots, m.Activations, m.RecoverySeconds, m.SnapshotBytes, m.Shed,
		m.ExecutionsRefused)
	// The grains' panics (and every other goroutine's of the process).
	if err := recovered.Register(reg); err != nil {
		panic(err)
	}
	return m
}

// What a node reports about itself for GET /v1/cluster, beside its
// activations (cluster.Config.Gauges): readings an operator needs when a
// member seems stuck.
const (
	GaugeRecoveries  = "recoveriesInProgress"   // pots reading their journal now
	GaugeCutOffHolds = "cutOffHoldsOutstanding" // commands a cut-off waits for
	// The node process's memory (platform adds them): the Go heap's
	// objects, live and not yet collected, and its resident set.
	GaugeHeapBytes     = "heapBytes"
	GaugeResidentBytes = "residentBytes"
)

// NodeGauges reads a node's gauges from its pots' dependencies and market.
func NodeGauges(pots *PotDeps, market *MarketState) func() map[string]int64 {
	return func() map[string]int64 {
		return map[string]int64{GaugeRecoveries: pots.RecoveriesInProgress(), GaugeCutOffHolds: market.HoldsOutstanding()}
	}
}
