package actors

import (
	"log/slog"
	"testing"

	"github.com/asynkron/protoactor-go/actor"
)

// TestPotMailboxIsHandedToItsPot proves protoactor's spawn hands a pot its
// mailbox (enqueue asks it whether messages wait, to flush at once).
func TestPotMailboxIsHandedToItsPot(t *testing.T) {
	system := actor.NewActorSystem()
	defer system.Shutdown()
	a := &potActor{deps: &PotDeps{Logger: slog.New(slog.DiscardHandler)}}
	pid := system.Root.Spawn(actor.PropsFromProducer(func() actor.Actor { return a }, actor.WithMailbox(grainMailboxes())))
	defer system.Root.Stop(pid)
	if a.mailbox == nil {
		t.Fatal("the pot was not handed its mailbox")
	}
	if n := a.mailbox.UserMessageCount(); n != 0 {
		t.Fatalf("%d user messages waiting in a new pot's mailbox", n)
	}
}
