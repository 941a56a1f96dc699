package actors_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/acme/mastertrust/actors"
	"github.com/acme/mastertrust/cluster"
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
	if p := reply.(*pb.PotResponse).GetProblem(); p.GetCode() != actors.CodeUnavailable || !strings.Contains(p.GetDetail(), "nothing was done") {
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
