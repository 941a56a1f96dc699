package actors_test

import (
	"context"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/cockroachdb/pebble/v2/vfs"

	"github.com/acme/mastertrust/actors"
	"github.com/acme/mastertrust/cluster"
	"github.com/acme/mastertrust/internal/problem"
	"github.com/acme/mastertrust/persistence"
	"github.com/acme/mastertrust/persistence/pebble"
	"github.com/acme/mastertrust/proto/pb"
)

// TestPotDropsExpiredCalls proves that a pot reaching a call after its
// caller's deadline answers "unavailable" without deciding it: nothing is
// appended, and the caller's retry does the command.
func TestPotDropsExpiredCalls(t *testing.T) {
	w, metrics := newMeteredWorld(t, worldOptions{})
	const m = "M400001"
	w.must(m, openPot("open", ""))
	before := w.journalPot(m).Version
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	reply, err := cluster.Request(ctx, w.client, m, actors.PotKind, func(id uint64, _ time.Time) any {
		return &pb.PotCall{CallId: id, Request: contribute("late", "3.00"), DeadlineUnixNano: time.Now().Add(-time.Millisecond).UnixNano()}
	})
	if err != nil {
		t.Fatal(err)
	}
	if p := reply.(*pb.PotResponse).GetProblem(); p.GetCode() != problem.Unavailable || !strings.Contains(p.GetDetail(), "nothing was done") {
		t.Fatalf("expired call answered %v, want unavailable", reply)
	}
	if v := w.journalPot(m).Version; v != before {
		t.Fatalf("an expired call was appended: version %d → %d", before, v)
	}
	if n := counterValue(t, metrics.Shed.WithLabelValues("expired")); n != 1 {
		t.Fatalf("expired calls counted %v, want 1", n)
	}
	if resp := w.must(m, contribute("late", "3.00")); resp.Replayed {
		t.Fatal("the retry of an expired call was a replay")
	}
}

// TestPotShedsMemberRequestsAtPendingMax proves that once a node's pots
// hold PendingMax requests waiting for the journal, a member's request is
// answered "unavailable" at once with nothing done, the dealing cycle's
// commands still go through, and the retry succeeds once the journal
// catches up.
func TestPotShedsMemberRequestsAtPendingMax(t *testing.T) {
	j, err := pebble.Open("journal", pebble.Options{FS: vfs.NewMem(), Groups: 8})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { j.Close() })
	gate := &gatedJournal{Journal: j, blocked: map[string]chan struct{}{}, waiting: make(chan string, 8)}
	w, metrics := newMeteredWorld(t, worldOptions{journal: gate, potConfig: actors.PotConfig{PendingMax: 1}})
	// Registered after the world's, so it runs first: a stopping pot must
	// not wait on a blocked append.
	t.Cleanup(gate.releaseAll)
	const a, b = "M400011", "M400012"
	w.must(a, openPot("open", ""))
	w.must(b, openPot("open", ""))

	// a's contribution waits for the journal: the node is at PendingMax.
	gate.block(actors.PotStream(a))
	hung := make(chan error, 1)
	go func() {
		resp, err := w.call(a, contribute("c", "5.00"))
		if err == nil && resp.GetProblem() != nil {
			err = errors.New(resp.GetProblem().GetDetail())
		}
		hung <- err
	}()
	<-gate.waiting

	before := w.journalPot(b).Version
	start := time.Now()
	resp, err := w.call(b, contribute("c", "7.00"))
	if err != nil {
		t.Fatal(err)
	}
	if p := resp.GetProblem(); p.GetCode() != problem.Unavailable || !strings.Contains(p.GetDetail(), "nothing was done") {
		t.Fatalf("member request at PendingMax answered %v, want unavailable", resp)
	}
	if took := time.Since(start); took > time.Second {
		t.Fatalf("refused after %s, want at once", took)
	}
	if v := w.journalPot(b).Version; v != before {
		t.Fatalf("a refused request was appended: version %d → %d", before, v)
	}
	if n := counterValue(t, metrics.Shed.WithLabelValues("pending")); n != 1 {
		t.Fatalf("requests shed at PendingMax counted %v, want 1", n)
	}
	// The dealing cycle's commands are decided whatever the load: this one
	// is refused by the pot itself, for its own reason.
	resp, err = w.call(b, &pb.PotRequest{Command: &pb.PotRequest_RollOrder{RollOrder: &pb.RollOrder{
		OrderId: b + "-99", FromDate: "2026-11-23", ToDate: "2026-11-24"}}})
	if err != nil {
		t.Fatal(err)
	}
	if p := resp.GetProblem(); p == nil || p.Code == problem.Unavailable {
		t.Fatalf("system command at PendingMax answered %v, want the pot's own refusal", resp)
	}

	gate.release(actors.PotStream(a))
	if err := <-hung; err != nil {
		t.Fatalf("the waiting contribution: %v", err)
	}
	if resp := w.must(b, contribute("c", "7.00")); resp.Replayed {
		t.Fatal("the retry of a refused request was a replay")
	}
}

// gatedJournal is a journal whose appends to a blocked stream wait until it
// is released, as if the disk hung; waiting receives the stream of each
// append that starts to wait.
type gatedJournal struct {
	persistence.Journal
	mu      sync.Mutex
	blocked map[string]chan struct{}
	waiting chan string
}

func (j *gatedJournal) block(stream string) {
	j.mu.Lock()
	defer j.mu.Unlock()
	j.blocked[stream] = make(chan struct{})
}

func (j *gatedJournal) release(stream string) {
	j.mu.Lock()
	defer j.mu.Unlock()
	if g, ok := j.blocked[stream]; ok {
		close(g)
		delete(j.blocked, stream)
	}
}

func (j *gatedJournal) releaseAll() {
	j.mu.Lock()
	defer j.mu.Unlock()
	for s, g := range j.blocked {
		close(g)
		delete(j.blocked, s)
	}
}

func (j *gatedJournal) Append(ctx context.Context, req persistence.AppendRequest) (uint64, error) {
	j.mu.Lock()
	g := j.blocked[req.Stream]
	j.mu.Unlock()
	if g != nil {
		select {
		case j.waiting <- req.Stream:
		default:
		}
		select {
		case <-g:
		case <-ctx.Done():
			return 0, ctx.Err()
		}
	}
	return j.Journal.Append(ctx, req)
}
