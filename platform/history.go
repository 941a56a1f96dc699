package platform

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"

	"github.com/acme/mastertrust/actors"
	"github.com/acme/mastertrust/domain"
	"github.com/acme/mastertrust/gateway"
	"github.com/acme/mastertrust/history"
	"github.com/acme/mastertrust/persistence"
	"github.com/acme/mastertrust/persistence/pebble"
)

// HistoryDir is the directory of a node's history read model (package
// history) under its data dir.
func HistoryDir(dataDir string) string { return filepath.Join(dataDir, "history") }

// JournalDir is the directory of a node's Pebble journal under its data dir.
func JournalDir(dataDir string) string { return filepath.Join(dataDir, "journal") }

// RebuildHistory drops the history read model of the node whose data dir
// is cfg.DataDir and projects it again from the node's Pebble journal. The
// node must be stopped: the journal's directory lock lets one process open
// it, so a running node makes this fail rather than read under it. A data
// dir without a journal is an error (opening would create an empty one).
func RebuildHistory(ctx context.Context, cfg Config) error {
	cfg.EnsureDefaults()
	if err := cfg.Validate(); err != nil {
		return err
	}
	log := cfg.logger()
	cat, err := LoadCatalogue(cfg.CataloguePath)
	if err != nil {
		return err
	}
	dir := JournalDir(cfg.DataDir)
	if _, err := os.Stat(dir); err != nil {
		return fmt.Errorf("platform: rebuild history: no journal: %w", err)
	}
	j, err := pebble.Open(dir, pebble.Options{CacheBytes: cfg.JournalCacheBytes, Logger: log.With("component", "journal")})
	if err != nil {
		return fmt.Errorf("platform: rebuild history (is the node stopped?): %w", err)
	}
	err = history.Rebuild(ctx, HistoryDir(cfg.DataDir), j, HistoryOptions(cat, log, j))
	return errors.Join(err, j.Close())
}

// HistoryOptions are the history read model's options, the same for a
// node's live store and a rebuild, so that both render alike: the
// catalogue words the statement, and a closed order's view is the API's
// JSON of it, rendered once when the order closes. On a Pebble journal
// the store shares the journal's block cache: one budget for the node's two
// Pebble stores, where the history's own 16 MiB missed on nearly every
// member record it read back at a million members (docs/performance.md,
// "The history on the journal's block cache"). j may be nil (no journal to
// share with).
func HistoryOptions(cat *domain.Catalogue, log *slog.Logger, j persistence.Journal) history.Options {
	opts := history.Options{Catalogue: cat, Logger: log.With("component", "history"),
		RenderClosedOrder: func(b []byte, o *domain.Order) []byte {
			return gateway.AppendOrderJSON(b, actors.ClosedOrderView(cat, o))
		}}
	if pj, ok := j.(*pebble.Store); ok {
		opts.Cache = pj.BlockCache()
	}
	return opts
}

// openHistory opens a node's history read model. A store an older build
// wrote in another key layout is dropped: it is a cache of the journal,
// and the catch-up before the node joins projects it again from the start.
func openHistory(dir string, opts history.Options, log *slog.Logger) (*history.Store, error) {
	s, err := history.Open(dir, opts)
	if !errors.Is(err, history.ErrLayout) {
		return s, err
	}
	log.Warn("history read model of another layout: dropping it, to be projected again from the journal", "dir", dir, "err", err)
	if err := os.RemoveAll(dir); err != nil {
		return nil, fmt.Errorf("drop the history of another layout: %w", err)
	}
	return history.Open(dir, opts)
}
