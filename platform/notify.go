package platform

import (
	"context"
	"fmt"
	"strconv"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"

	"github.com/acme/mastertrust/actors"
	"github.com/acme/mastertrust/internal/natsmsg"
	"github.com/acme/mastertrust/internal/natsstream"
	"github.com/acme/mastertrust/proto/pb"
)

// Notifications for members, published on NATS for downstream services
// (email, app push, document store) to pick up.
//
// Subjects are per pot group, not per member: a downstream service reads
// every note (one consumer of notifications.contract-notes.*) or shares
// the groups among its instances (a consumer per group subject), and
// either way sees each member's notes in order, since a member is in one
// group. Members never read NATS (their notes are in the API), so a subject
// per member would serve no reader and cost the server an index entry per
// member (a million at scale). docs/decisions.md has the why.
const (
	// NotificationsStream holds them.
	NotificationsStream = "NOTIFICATIONS"
	// NotificationsSubjects is the stream's subject filter.
	NotificationsSubjects = "notifications.>"
	// ContractNoteSubjectPrefix + the pot group (decimal) is the subject of
	// the contract notes of the group's members: each message is a
	// pb.ContractNotes, many notes in execution order, each note's
	// member_id naming its member; the message id is
	// "cn-<first trade id>..<last trade id>". Notes published before
	// messages held many are one pb.ContractNote each, with the id
	// "cn-<trade id>", and before the subjects were per group they are on
	// ContractNoteSubjectPrefix + member id.
	ContractNoteSubjectPrefix = "notifications.contract-notes."
	// notificationsDuplicateWindow: a message published again within it
	// (after an aggregator's restart) is dropped by JetStream.
	notificationsDuplicateWindow = 24 * time.Hour
	// notificationsMaxAge: downstream services read them within days; the
	// rest is for a service that has to read again after a fault.
	notificationsMaxAge = 90 * 24 * time.Hour
	// notificationsMaxBytes and notificationsMaxMsgs bound the stream below
	// its age (docs/custodian.md, "Limits", has the arithmetic): a note
	// published alone was 310 bytes stored (measured), about 250 in a
	// message of many; a contribution buys 3 to 6 assets (the balanced
	// profile 3), so a 100K-pot scheme whose members pay in monthly makes
	// about 400K notes a month (100 MB) and one whose every pot deals every
	// day 400K a day. 512 MiB holds about 2M notes: the 90 days of the
	// first, 5 days of the second. MaxMsgs binds only the notes earlier
	// versions published one to a message: a message now holds up to ~230.
	// Beyond it the oldest go (DiscardOld): notes are an outbox
	// whose readers are days behind at most, every note is also in the
	// member's orders in the API, and refusing new ones would pile them up
	// in the aggregators' memory instead.
	notificationsMaxBytes = 512 << 20
	notificationsMaxMsgs  = 1_600_000
	// contractNoteBytesMax bounds one message: a note is under 250 bytes,
	// so a message of contractNotesMessageBytes holds about 230.
	contractNoteBytesMax = 64 << 10
	// contractNotesMessageBytes fills a message, below contractNoteBytesMax
	// with room for its headers.
	contractNotesMessageBytes = 56 << 10
)

// ContractNoteSubject is the subject of the contract notes of pot group's
// members.
func ContractNoteSubject(group uint32) string {
	return ContractNoteSubjectPrefix + strconv.FormatUint(uint64(group), 10)
}

// NotificationsStreamConfig is the notifications stream with replicas
// replicas.
func NotificationsStreamConfig(replicas int) jetstream.StreamConfig {
	return jetstream.StreamConfig{
		Name:        NotificationsStream,
		Description: "notifications for members (contract notes), per pot group, for downstream services",
		Subjects:    []string{NotificationsSubjects},
		Retention:   jetstream.LimitsPolicy,
		Storage:     jetstream.FileStorage,
		Replicas:    replicas,
		Duplicates:  notificationsDuplicateWindow,
		MaxAge:      notificationsMaxAge,
		MaxBytes:    notificationsMaxBytes,
		MaxMsgs:     notificationsMaxMsgs,
		MaxMsgSize:  contractNoteBytesMax,
		Discard:     jetstream.DiscardOld,
	}
}

// natsNotifier publishes contract notes to the notifications stream.
type natsNotifier struct {
	js        jetstream.JetStream
	potGroups uint32
}

// NewNotifier connects a notifier publishing to the notifications stream,
// and creates the stream or updates it to NotificationsStreamConfig.
// potGroups is the journal's number of pot groups (actors.PotGroups): a
// note's subject is its member's group.
func NewNotifier(ctx context.Context, nc *nats.Conn, replicas int, potGroups uint32) (actors.Notifier, error) {
	if potGroups == 0 {
		return nil, fmt.Errorf("platform: notifications: no pot groups")
	}
	js, err := jetstream.New(nc)
	if err != nil {
		return nil, fmt.Errorf("platform: notifications: %w", err)
	}
	// Nodes starting together on a fresh cluster ask for it at once.
	if _, err := natsstream.Ensure(ctx, js, NotificationsStreamConfig(replicas), true); err != nil {
		return nil, fmt.Errorf("platform: notifications stream: %w", err)
	}
	return &natsNotifier{js: js, potGroups: potGroups}, nil
}

// PublishContractNotes publishes notes, many to a message (pb.ContractNotes,
// in order, per subject), and returns once JetStream has stored every
// message (or says it already had it). A message's id names its first and
// last trade, so publishing the same notes again (an aggregator's restart)
// is dropped; notes published again in other company come again, which a
// downstream service tells by their trade ids.
func (n *natsNotifier) PublishContractNotes(ctx context.Context, notes []*pb.ContractNote) error {
	var futures []jetstream.PubAckFuture
	var ids []string
	for _, m := range packContractNotes(notes, n.potGroups, contractNotesMessageBytes) {
		msg, err := natsmsg.New(m.subject, m.notes)
		if err != nil {
			return err
		}
		id := "cn-" + m.notes.Notes[0].TradeId + ".." + m.notes.Notes[len(m.notes.Notes)-1].TradeId
		f, err := n.js.PublishMsgAsync(msg, jetstream.WithMsgID(id))
		if err != nil {
			return fmt.Errorf("publish contract notes %s: %w", id, err)
		}
		futures, ids = append(futures, f), append(ids, id)
	}
	for i, f := range futures {
		select {
		case <-f.Ok():
		case err := <-f.Err():
			return fmt.Errorf("publish contract notes %s: %w", ids[i], err)
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	return nil
}

// contractNotesMessage is one message's notes and subject.
type contractNotesMessage struct {
	subject string
	notes   *pb.ContractNotes
}

// packContractNotes packs notes into messages of at most maxBytes encoded
// (one note at least), each of one subject (its members' pot group), the
// notes of each subject in their order.
func packContractNotes(notes []*pb.ContractNote, potGroups uint32, maxBytes int) []contractNotesMessage {
	var out []contractNotesMessage
	open := map[string]int{}   // subject → its message being filled, in out
	filled := map[string]int{} // subject → bytes of its message being filled
	for _, note := range notes {
		subject := ContractNoteSubject(actors.PotGroup(note.MemberId, potGroups))
		// A repeated field's element costs its size, a tag and a length.
		size := proto.Size(note)
		noteBytes := size + 1 + protowire.SizeVarint(uint64(size))
		i, ok := open[subject]
		if !ok || filled[subject]+noteBytes > maxBytes {
			out = append(out, contractNotesMessage{subject: subject, notes: &pb.ContractNotes{}})
			i, filled[subject] = len(out)-1, 0
			open[subject] = i
		}
		out[i].notes.Notes = append(out[i].notes.Notes, note)
		filled[subject] += noteBytes
	}
	return out
}
