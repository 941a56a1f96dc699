package platform

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"github.com/acme/mastertrust/history"
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
	err = history.Rebuild(ctx, HistoryDir(cfg.DataDir), j, history.Options{Logger: log.With("component", "history"), Catalogue: cat})
	return errors.Join(err, j.Close())
}
