package pebble_test

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"testing"

	"github.com/cockroachdb/pebble/v2/vfs"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/acme/mastertrust/persistence"
	"github.com/acme/mastertrust/persistence/pebble"
	"github.com/acme/mastertrust/persistence/persistencetest"
)

// testLogger routes the store's logs to t, and keeps them quiet unless
// MASTERTRUST_LOG=1.
func testLogger(t testing.TB) *slog.Logger {
	if os.Getenv("MASTERTRUST_LOG") == "" {
		return slog.New(slog.DiscardHandler)
	}
	return slog.New(slog.NewTextHandler(tWriter{t}, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

type tWriter struct{ t testing.TB }

func (w tWriter) Write(p []byte) (int, error) {
	w.t.Log(string(p))
	return len(p), nil
}

// memBackend runs the suite on an in-memory file system: the suite is about
// the contract, and TestCrash and TestPowerLoss cover the disk.
func memBackend() persistencetest.Backend {
	return persistencetest.Backend{
		NewStorage: func(t *testing.T, groups uint32) persistencetest.OpenFunc {
			fs := vfs.NewMem()
			return func(t *testing.T) (persistence.Journal, error) {
				return pebble.Open("journal", pebble.Options{FS: fs, Groups: groups, Logger: testLogger(t)})
			}
		},
	}
}

// TestContract runs the acceptance suite on Pebble in memory.
func TestContract(t *testing.T) {
	persistencetest.Run(t, memBackend())
}

// TestContractOnDisk runs the suite's reopen cases on a real directory, so
// that closing and reopening goes through the operating system's files.
func TestContractOnDisk(t *testing.T) {
	persistencetest.Run(t, persistencetest.Backend{
		NewStorage: func(t *testing.T, groups uint32) persistencetest.OpenFunc {
			dir := t.TempDir()
			return func(t *testing.T) (persistence.Journal, error) {
				return pebble.Open(dir, pebble.Options{Groups: groups, Logger: testLogger(t)})
			}
		},
	})
}

// TestGroupsAreKept proves that the number of groups is stored at creation:
// reopening with 0 finds it, reopening with another number is refused.
func TestGroupsAreKept(t *testing.T) {
	fs := vfs.NewMem()
	s, err := pebble.Open("j", pebble.Options{FS: fs, Groups: 7})
	require.NoError(t, err)
	_, err = s.Append(context.Background(), persistence.AppendRequest{Stream: "pot/1", Group: 6, Events: []persistence.NewEvent{{Type: "t"}}})
	require.NoError(t, err)
	require.NoError(t, s.Close())
	_, err = pebble.Open("j", pebble.Options{FS: fs, Groups: 8})
	require.Error(t, err, "reopen a 7-group journal with 8 groups")
	s, err = pebble.Open("j", pebble.Options{FS: fs})
	require.NoError(t, err)
	defer s.Close()
	require.EqualValues(t, 7, s.Groups(), "groups of a journal reopened with Groups 0 (the stored ones)")
	d, err := pebble.Open("d", pebble.Options{FS: fs})
	require.NoError(t, err)
	defer d.Close()
	require.EqualValues(t, pebble.DefaultGroups, d.Groups(), "groups of a journal created with Groups 0")
}

// TestOptionsValidate proves that Validate reports every bad field.
func TestOptionsValidate(t *testing.T) {
	o := pebble.Options{Groups: persistence.GroupsMax + 1, WALMinSyncInterval: -1, CacheBytes: -1, MemTableBytes: 2 << 30}
	err := o.Validate()
	require.Error(t, err, "invalid options")
	for _, want := range []string{"groups 65537", "wal min sync interval -1ns", "cache bytes -1", "memtable bytes 2147483648"} {
		assert.ErrorContains(t, err, want, "invalid options")
	}
	_, openErr := pebble.Open(t.TempDir(), o)
	assert.Error(t, openErr, "Open with invalid options")
	var ok pebble.Options
	assert.NoError(t, ok.EnsureDefaults().Validate(), "defaults")
	assert.NotErrorIs(t, err, persistence.ErrInvalid, "option errors are not request errors")
}

// TestSnapshotSavesKeepTheNewerOnceForgotten proves a snapshot save keeps
// the newer snapshot of a stream whose stored version the store no longer
// remembers (its cache of snapshot versions, bounded by HeadCacheEntries,
// holds one stream per shard here): it reads the stored version instead.
func TestSnapshotSavesKeepTheNewerOnceForgotten(t *testing.T) {
	ctx := context.Background()
	s, err := pebble.Open("j", pebble.Options{FS: vfs.NewMem(), HeadCacheEntries: 1, Logger: testLogger(t)})
	require.NoError(t, err)
	defer s.Close()
	const streams = 300
	name := func(i int) string { return fmt.Sprintf("pot/%03d", i) }
	save := func(version uint64) {
		for i := range streams {
			data := fmt.Appendf(nil, "%s@%d", name(i), version)
			require.NoError(t, s.SaveSnapshot(ctx, persistence.Snapshot{Stream: name(i), Version: version, Data: data}))
		}
	}
	save(10)
	save(7) // older, and most streams forgotten since their save at 10
	for i := range streams {
		got, found, err := s.LoadSnapshot(ctx, name(i))
		require.NoError(t, err)
		require.True(t, found, name(i))
		require.EqualValues(t, 10, got.Version, name(i))
		require.Equal(t, fmt.Sprintf("%s@10", name(i)), string(got.Data))
	}
	// Remembered after the loads (the last few streams of each shard):
	// still the newer kept.
	save(8)
	for i := range streams {
		got, _, err := s.LoadSnapshot(ctx, name(i))
		require.NoError(t, err)
		require.EqualValues(t, 10, got.Version, name(i))
	}
}
