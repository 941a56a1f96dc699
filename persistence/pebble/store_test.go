package pebble_test

import (
	"context"
	"errors"
	"log/slog"
	"os"
	"strings"
	"testing"

	"github.com/cockroachdb/pebble/v2/vfs"

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
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.Append(context.Background(), persistence.AppendRequest{Stream: "pot/1", Group: 6, Events: []persistence.NewEvent{{Type: "t"}}}); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := pebble.Open("j", pebble.Options{FS: fs, Groups: 8}); err == nil {
		t.Fatal("reopened a 7-group journal with 8 groups")
	}
	s, err = pebble.Open("j", pebble.Options{FS: fs})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if s.Groups() != 7 {
		t.Fatalf("reopened with Groups 0: %d groups, want the stored 7", s.Groups())
	}
	d, err := pebble.Open("d", pebble.Options{FS: fs})
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	if d.Groups() != pebble.DefaultGroups {
		t.Fatalf("created with Groups 0: %d groups, want %d", d.Groups(), pebble.DefaultGroups)
	}
}

// TestOptionsValidate proves that Validate reports every bad field.
func TestOptionsValidate(t *testing.T) {
	o := pebble.Options{Groups: persistence.GroupsMax + 1, WALMinSyncInterval: -1, CacheBytes: -1, MemTableBytes: 2 << 30}
	err := o.Validate()
	if err == nil {
		t.Fatal("no error")
	}
	for _, want := range []string{"groups 65537", "wal min sync interval -1ns", "cache bytes -1", "memtable bytes 2147483648"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not mention %q", err, want)
		}
	}
	if _, err := pebble.Open(t.TempDir(), o); err == nil {
		t.Error("Open accepted invalid options")
	}
	var ok pebble.Options
	if err := ok.EnsureDefaults().Validate(); err != nil {
		t.Errorf("defaults: %v", err)
	}
	if errors.Is(err, persistence.ErrInvalid) {
		t.Error("option errors are not request errors")
	}
}
