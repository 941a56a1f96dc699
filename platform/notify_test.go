package platform_test

import (
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"google.golang.org/protobuf/proto"

	"github.com/acme/mastertrust/actors"
	"github.com/acme/mastertrust/internal/natsembed"
	"github.com/acme/mastertrust/internal/natsmsg"
	"github.com/acme/mastertrust/platform"
	"github.com/acme/mastertrust/proto/pb"
)

// The notifications stream is bounded (age, bytes, messages), also when it
// was made unbounded by an earlier version, whose notes it keeps; a note is
// published on its member's group's subject with headers naming its type.
func TestNotificationsBoundedAndTyped(t *testing.T) {
	t.Parallel()
	srv, err := natsembed.Start(natsembed.Options{Dir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(srv.Shutdown)
	nc, err := nats.Connect(srv.ClientURL())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	ctx := t.Context()
	// The stream as it was: an age limit only, a subject per member.
	if _, err := js.CreateStream(ctx, jetstream.StreamConfig{Name: platform.NotificationsStream, Subjects: []string{"notifications.>"},
		Storage: jetstream.FileStorage, Duplicates: 24 * time.Hour, MaxAge: 90 * 24 * time.Hour}); err != nil {
		t.Fatal(err)
	}
	old, _ := proto.Marshal(&pb.ContractNote{MemberId: "M000001", TradeId: "M000001-3"})
	if _, err := js.Publish(ctx, platform.ContractNoteSubjectPrefix+"M000001", old, jetstream.WithMsgID("cn-M000001-3")); err != nil {
		t.Fatal(err)
	}

	const potGroups = 63
	n, err := platform.NewNotifier(ctx, nc, 1, potGroups)
	if err != nil {
		t.Fatal(err)
	}
	note := &pb.ContractNote{MemberId: "M000002", TradeId: "M000002-5", Units: "1.0000"}
	if err := n.PublishContractNotes(ctx, []*pb.ContractNote{note}); err != nil {
		t.Fatal(err)
	}
	stream, err := js.Stream(ctx, platform.NotificationsStream)
	if err != nil {
		t.Fatal(err)
	}
	info, err := stream.Info(ctx)
	if err != nil {
		t.Fatal(err)
	}
	want := platform.NotificationsStreamConfig(1)
	c := info.Config
	if c.MaxAge <= 0 || c.MaxBytes <= 0 || c.MaxMsgs <= 0 || c.MaxMsgSize <= 0 ||
		c.MaxAge != want.MaxAge || c.MaxBytes != want.MaxBytes || c.MaxMsgs != want.MaxMsgs ||
		c.Discard != jetstream.DiscardOld || c.Duplicates != 24*time.Hour {
		t.Fatalf("limits: age %s bytes %d msgs %d msg size %d discard %v duplicates %s",
			c.MaxAge, c.MaxBytes, c.MaxMsgs, c.MaxMsgSize, c.Discard, c.Duplicates)
	}
	if info.State.Msgs != 2 {
		t.Fatalf("%d notes, want the old one and the new one", info.State.Msgs)
	}
	msg, err := stream.GetMsg(ctx, 2)
	if err != nil {
		t.Fatal(err)
	}
	if want := platform.ContractNoteSubject(actors.PotGroup("M000002", potGroups)); msg.Subject != want {
		t.Fatalf("note on %s, want %s", msg.Subject, want)
	}
	var back pb.ContractNote
	if err := natsmsg.Decode(msg.Header, msg.Data, &back); err != nil || !proto.Equal(&back, note) ||
		msg.Header.Get("Mastertrust-Type") != "mastertrust.v1.ContractNote" || msg.Header.Get("Content-Type") != "application/protobuf" {
		t.Fatalf("note %v, headers %v: %v", &back, msg.Header, err)
	}
	// A second publication (an aggregator's restart) is dropped.
	if err := n.PublishContractNotes(ctx, []*pb.ContractNote{note}); err != nil {
		t.Fatal(err)
	}
	if info, err := stream.Info(ctx); err != nil || info.State.Msgs != 2 {
		t.Fatalf("after publishing again: %v %v", info.State, err)
	}
}
