package platform_test

import (
	"fmt"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/stretchr/testify/require"
	"google.golang.org/protobuf/proto"

	"github.com/acme/mastertrust/actors"
	"github.com/acme/mastertrust/internal/natsembed"
	"github.com/acme/mastertrust/internal/natsmsg"
	"github.com/acme/mastertrust/internal/natsstream"
	"github.com/acme/mastertrust/platform"
	"github.com/acme/mastertrust/proto/pb"
)

// The notifications stream is bounded (age, bytes, messages), also when it
// was made unbounded by an earlier version, whose notes it keeps; a note is
// published on its member's group's subject, in a message of notes, with
// headers naming its type.
func TestNotificationsBoundedAndTyped(t *testing.T) {
	t.Parallel()
	nc := connectToNewNATS(t)
	js, err := jetstream.New(nc)
	require.NoError(t, err)
	ctx := t.Context()
	// The stream as it was: an age limit only, a subject per member.
	_, err = js.CreateStream(ctx, jetstream.StreamConfig{Name: platform.NotificationsStream, Subjects: []string{"notifications.>"},
		Storage: jetstream.FileStorage, Duplicates: 24 * time.Hour, MaxAge: 90 * 24 * time.Hour})
	require.NoError(t, err)
	old, _ := proto.Marshal(&pb.ContractNote{MemberId: "M000001", TradeId: "M000001-3"})
	_, err = js.Publish(ctx, platform.ContractNoteSubjectPrefix+"M000001", old, jetstream.WithMsgID("cn-M000001-3"))
	require.NoError(t, err)

	const potGroups = 63
	n, err := platform.NewNotifier(ctx, nc, 1, potGroups)
	require.NoError(t, err)
	note := &pb.ContractNote{MemberId: "M000002", TradeId: "M000002-5", Units: "1.0000"}
	require.NoError(t, n.PublishContractNotes(ctx, []*pb.ContractNote{note}))
	stream, err := js.Stream(ctx, platform.NotificationsStream)
	require.NoError(t, err)
	info, err := stream.Info(ctx)
	require.NoError(t, err)
	want := platform.NotificationsStreamConfig(1)
	c := info.Config
	require.Positive(t, c.MaxAge, "limits: max age")
	require.Positive(t, c.MaxBytes, "limits: max bytes")
	require.Positive(t, c.MaxMsgs, "limits: max messages")
	require.Positive(t, c.MaxMsgSize, "limits: max message size")
	require.Equal(t, want.MaxAge, c.MaxAge, "limits: max age")
	require.Equal(t, want.MaxBytes, c.MaxBytes, "limits: max bytes")
	require.Equal(t, want.MaxMsgs, c.MaxMsgs, "limits: max messages")
	require.Equal(t, jetstream.DiscardOld, c.Discard, "limits: discard policy")
	require.Equal(t, 24*time.Hour, c.Duplicates, "limits: duplicates window")
	// As the server shows it, the updated stream has every setting asked
	// for: the next start finds nothing to update.
	require.False(t, natsstream.Differs(c, want), "settings differ after the update: %+v", c)
	require.Equal(t, uint64(2), info.State.Msgs, "notes: the old one and the new one")
	msg, err := stream.GetMsg(ctx, 2)
	require.NoError(t, err)
	require.Equal(t, platform.ContractNoteSubject(actors.PotGroup("M000002", potGroups)), msg.Subject, "the note's subject")
	var back pb.ContractNotes
	require.NoError(t, natsmsg.Decode(msg.Header, msg.Data, &back), "decode the note")
	require.Len(t, back.Notes, 1, "notes in the message")
	require.True(t, proto.Equal(back.Notes[0], note), "the note decoded: %v, want %v", back.Notes[0], note)
	require.Equal(t, "mastertrust.v1.ContractNotes", msg.Header.Get("Mastertrust-Type"), "the note's Mastertrust-Type header")
	require.Equal(t, "application/protobuf", msg.Header.Get("Content-Type"), "the note's Content-Type header")
	// A second publication (an aggregator's restart) is dropped.
	require.NoError(t, n.PublishContractNotes(ctx, []*pb.ContractNote{note}))
	info, err = stream.Info(ctx)
	require.NoError(t, err, "after publishing again")
	require.Equal(t, uint64(2), info.State.Msgs, "notes after publishing again")
}

// Many notes go in few messages, each of one pot group's members, whose
// notes come back in the order published; publishing them again adds none.
func TestContractNotesShareMessages(t *testing.T) {
	t.Parallel()
	nc := connectToNewNATS(t)
	ctx := t.Context()
	const potGroups, members, notesEach = 4, 40, 25
	n, err := platform.NewNotifier(ctx, nc, 1, potGroups)
	require.NoError(t, err)
	var notes []*pb.ContractNote
	for i := range notesEach {
		for m := range members {
			member := fmt.Sprintf("M%06d", m)
			notes = append(notes, &pb.ContractNote{MemberId: member, TradeId: fmt.Sprintf("%s-%d", member, i), OrderId: fmt.Sprintf("%s-o%d", member, i),
				DealingDate: "2026-12-08", Asset: "GB00B4PQW151", Side: "buy", Units: "12.3456", UnitPrice: "1.234567",
				Consideration: "15.24", SettlementDate: "2026-12-11", BatchId: "2026-12-08/GB00B4PQW151/3"})
		}
	}
	require.NoError(t, n.PublishContractNotes(ctx, notes))
	js, err := jetstream.New(nc)
	require.NoError(t, err)
	stream, err := js.Stream(ctx, platform.NotificationsStream)
	require.NoError(t, err)
	info, err := stream.Info(ctx)
	require.NoError(t, err)
	require.Less(t, info.State.Msgs, uint64(len(notes)/50), "messages for %d notes", len(notes))
	got := map[string][]string{} // subject → trade ids, in order
	for seq := uint64(1); seq <= info.State.LastSeq; seq++ {
		msg, err := stream.GetMsg(ctx, seq)
		require.NoError(t, err)
		var batch pb.ContractNotes
		require.NoError(t, natsmsg.Decode(msg.Header, msg.Data, &batch), "message %d", seq)
		require.LessOrEqual(t, len(msg.Data), int(platform.NotificationsStreamConfig(1).MaxMsgSize), "message %d: bytes", seq)
		for _, note := range batch.Notes {
			require.Equal(t, platform.ContractNoteSubject(actors.PotGroup(note.MemberId, potGroups)), msg.Subject, "note %s: subject", note.TradeId)
			got[msg.Subject] = append(got[msg.Subject], note.TradeId)
		}
	}
	want := map[string][]string{}
	for _, note := range notes {
		subject := platform.ContractNoteSubject(actors.PotGroup(note.MemberId, potGroups))
		want[subject] = append(want[subject], note.TradeId)
	}
	require.Equal(t, want, got, "each group's notes, in order")

	require.NoError(t, n.PublishContractNotes(ctx, notes))
	again, err := stream.Info(ctx)
	require.NoError(t, err)
	require.Equal(t, info.State.Msgs, again.State.Msgs, "messages after publishing the same notes again")
}

// connectToNewNATS starts an embedded NATS server of the test's own and
// connects to it.
func connectToNewNATS(t *testing.T) *nats.Conn {
	t.Helper()
	srv, err := natsembed.Start(natsembed.Options{Dir: t.TempDir()})
	require.NoError(t, err)
	t.Cleanup(srv.Shutdown)
	nc, err := nats.Connect(srv.ClientURL())
	require.NoError(t, err)
	t.Cleanup(nc.Close)
	return nc
}
