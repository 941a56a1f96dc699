package platform

import (
	"context"
	"fmt"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"google.golang.org/protobuf/proto"

	"github.com/acme/mastertrust/actors"
	"github.com/acme/mastertrust/proto/pb"
)

// Notifications for members, published on NATS for downstream services
// (email, app push, document store) to pick up.
const (
	// NotificationsStream holds them.
	NotificationsStream = "NOTIFICATIONS"
	// ContractNoteSubjectPrefix + member id is the subject of a member's
	// contract notes (pb.ContractNote); the message id is "cn-<trade id>".
	ContractNoteSubjectPrefix = "notifications.contract-notes."
	// notificationsDuplicateWindow: a note published again within it (after
	// an aggregator's restart) is dropped by JetStream.
	notificationsDuplicateWindow = 24 * time.Hour
	// notificationsMaxAge: downstream services read them within days.
	notificationsMaxAge = 90 * 24 * time.Hour
)

// natsNotifier publishes contract notes to the notifications stream.
type natsNotifier struct {
	js jetstream.JetStream
}

// NewNotifier connects a notifier publishing to the notifications stream,
// and makes sure the stream exists.
func NewNotifier(ctx context.Context, nc *nats.Conn, replicas int) (actors.Notifier, error) {
	js, err := jetstream.New(nc)
	if err != nil {
		return nil, fmt.Errorf("platform: notifications: %w", err)
	}
	_, err = js.CreateOrUpdateStream(ctx, jetstream.StreamConfig{
		Name: NotificationsStream, Subjects: []string{"notifications.>"}, Storage: jetstream.FileStorage,
		Replicas: replicas, Duplicates: notificationsDuplicateWindow, MaxAge: notificationsMaxAge,
	})
	if err != nil {
		return nil, fmt.Errorf("platform: notifications stream: %w", err)
	}
	return &natsNotifier{js: js}, nil
}

// PublishContractNotes publishes notes and returns once JetStream has
// stored every one (or says it already had it).
func (n *natsNotifier) PublishContractNotes(ctx context.Context, notes []*pb.ContractNote) error {
	futures := make([]jetstream.PubAckFuture, 0, len(notes))
	for _, note := range notes {
		data, err := proto.Marshal(note)
		if err != nil {
			return err
		}
		f, err := n.js.PublishAsync(ContractNoteSubjectPrefix+note.MemberId, data, jetstream.WithMsgID("cn-"+note.TradeId))
		if err != nil {
			return fmt.Errorf("publish contract note %s: %w", note.TradeId, err)
		}
		futures = append(futures, f)
	}
	for i, f := range futures {
		select {
		case <-f.Ok():
		case err := <-f.Err():
			return fmt.Errorf("publish contract note %s: %w", notes[i].TradeId, err)
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	return nil
}
