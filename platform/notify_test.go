package platform_test

import (
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
// published on its member's group's subject with headers naming its type.
func TestNotificationsBoundedAndTyped(t *testing.T) {
	t.Parallel()
	srv, err := natsembed.Start(natsembed.Options{Dir: t.TempDir()})
	require.NoError(t, err)
	t.Cleanup(srv.Shutdown)
	nc, err := nats.Connect(srv.ClientURL())
	require.NoError(t, err)
	t.Cleanup(nc.Close)
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
	var back pb.ContractNote
	require.NoError(t, natsmsg.Decode(msg.Header, msg.Data, &back), "decode the note")
	require.True(t, proto.Equal(&back, note), "the note decoded: %v, want %v", &back, note)
	require.Equal(t, "mastertrust.v1.ContractNote", msg.Header.Get("Mastertrust-Type"), "the note's Mastertrust-Type header")
	require.Equal(t, "application/protobuf", msg.Header.Get("Content-Type"), "the note's Content-Type header")
	// A second publication (an aggregator's restart) is dropped.
	require.NoError(t, n.PublishContractNotes(ctx, []*pb.ContractNote{note}))
	info, err = stream.Info(ctx)
	require.NoError(t, err, "after publishing again")
	require.Equal(t, uint64(2), info.State.Msgs, "notes after publishing again")
}
