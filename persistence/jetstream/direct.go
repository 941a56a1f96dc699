package jetstream

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/nats-io/nats.go"
)

// Reads use JetStream's direct get API (streams are created with
// AllowDirect). The jetstream package wraps only its single-message form;
// the journal also needs the batch form (next_by_subj with batch), which
// returns up to batch messages matching a subject filter from a sequence
// on, in sequence order, and ends with an EOB status. On one server a
// direct get never interleaves with a write, and a write returns only after
// its fsync (SyncAlways), so a read sees only durable messages.

const (
	directGetSubjectPrefix = "$JS.API.DIRECT.GET."
	// directGetBytesMax caps the bytes of one batch reply, so that a read
	// of large events does not make the server push more than a client
	// buffers: 16 MiB is a few large appends or thousands of pot events.
	directGetBytesMax = 16 << 20

	hdrStatus      = "Status"
	hdrDescription = "Description"
	hdrStream      = "Nats-Stream"
	hdrSubject     = "Nats-Subject"
	hdrSequence    = "Nats-Sequence"
	hdrTimeStamp   = "Nats-Time-Stamp"
	hdrNumPending  = "Nats-Num-Pending"
	statusNotFound = "404"
	statusEOB      = "204"
)

type directRequest struct {
	Seq      uint64 `json:"seq,omitempty"`
	LastFor  string `json:"last_by_subj,omitempty"`
	NextFor  string `json:"next_by_subj,omitempty"`
	Batch    int    `json:"batch,omitempty"`
	MaxBytes int    `json:"max_bytes,omitempty"`
}

// storedMsg is a message read back with its stream metadata.
type storedMsg struct {
	subject string
	seq     uint64
	time    time.Time
	header  nats.Header
	data    []byte
}

var errNotFound = errors.New("message not found")

func parseStored(m *nats.Msg) (storedMsg, error) {
	if len(m.Data) == 0 {
		switch st := m.Header.Get(hdrStatus); st {
		case "":
		case statusNotFound:
			return storedMsg{}, errNotFound
		default:
			return storedMsg{}, fmt.Errorf("direct get: status %s %s", st, m.Header.Get(hdrDescription))
		}
	}
	seq, err := strconv.ParseUint(m.Header.Get(hdrSequence), 10, 64)
	if err != nil {
		return storedMsg{}, fmt.Errorf("direct get: sequence header %q: %w", m.Header.Get(hdrSequence), err)
	}
	ts, err := time.Parse(time.RFC3339Nano, m.Header.Get(hdrTimeStamp))
	if err != nil {
		return storedMsg{}, fmt.Errorf("direct get: time header %q: %w", m.Header.Get(hdrTimeStamp), err)
	}
	return storedMsg{subject: m.Header.Get(hdrSubject), seq: seq, time: ts.UTC(), header: m.Header, data: m.Data}, nil
}

// directLast returns the last message of a JetStream stream on subject
// (which may hold wildcards); errNotFound when there is none.
func directLast(ctx context.Context, nc *nats.Conn, stream, subject string) (storedMsg, error) {
	body, err := json.Marshal(directRequest{LastFor: subject})
	if err != nil {
		return storedMsg{}, err
	}
	resp, err := nc.RequestWithContext(ctx, directGetSubjectPrefix+stream, body)
	if err != nil {
		return storedMsg{}, fmt.Errorf("direct get last %s: %w", subject, err)
	}
	return parseStored(resp)
}

// directBatch returns up to batch messages of a JetStream stream matching
// filter with a sequence of at least start, and whether more may follow.
func directBatch(ctx context.Context, nc *nats.Conn, stream, filter string, start uint64, batch int) ([]storedMsg, bool, error) {
	body, err := json.Marshal(directRequest{Seq: start, NextFor: filter, Batch: batch, MaxBytes: directGetBytesMax})
	if err != nil {
		return nil, false, err
	}
	inbox := nc.NewInbox()
	// The server answers with at most batch messages and then an
	// end-of-batch (or one not-found) status, so a channel of batch+1
	// holds the whole answer. SubscribeSync would allocate its default
	// 64K-slot channel (512 KiB) per call: the history read model's
	// polling made that most of an idle node's CPU, in the collector.
	answers := make(chan *nats.Msg, batch+1)
	sub, err := nc.ChanSubscribe(inbox, answers)
	if err != nil {
		return nil, false, fmt.Errorf("direct get batch: %w", err)
	}
	defer sub.Unsubscribe()
	if err := nc.PublishRequest(directGetSubjectPrefix+stream, inbox, body); err != nil {
		return nil, false, fmt.Errorf("direct get batch: %w", err)
	}
	var out []storedMsg
	for {
		var m *nats.Msg
		select {
		case m = <-answers:
		case <-ctx.Done():
			return nil, false, fmt.Errorf("direct get batch %s from %d: %w", filter, start, ctx.Err())
		}
		if len(m.Data) == 0 && m.Header.Get(hdrStatus) == statusEOB {
			pending, _ := strconv.ParseUint(m.Header.Get(hdrNumPending), 10, 64)
			return out, pending > 0, nil
		}
		sm, err := parseStored(m)
		if errors.Is(err, errNotFound) {
			// Nothing at or after start matches.
			return out, false, nil
		}
		if err != nil {
			return nil, false, err
		}
		out = append(out, sm)
	}
}

// msgGetSubjectPrefix is the stream leader's get API. Unlike a direct get,
// which any replica of a replicated stream may answer (and a follower may
// lag the leader by the last few appends), the leader's answer includes
// every acknowledged append. The journal uses it where a stale answer would
// be wrong: the head an append is checked against, and snapshots.
const msgGetSubjectPrefix = "$JS.API.STREAM.MSG.GET."

// errCodeNoMessageFound is JSNoMessageFoundErr.
const errCodeNoMessageFound = 10037

type msgGetResponse struct {
	Error   *jsAPIError `json:"error,omitempty"`
	Message *struct {
		Subject  string    `json:"subject"`
		Sequence uint64    `json:"seq"`
		Header   []byte    `json:"hdrs,omitempty"`
		Data     []byte    `json:"data,omitempty"`
		Time     time.Time `json:"time"`
	} `json:"message,omitempty"`
}

type jsAPIError struct {
	Code        int    `json:"code"`
	ErrCode     int    `json:"err_code"`
	Description string `json:"description"`
}

// leaderLast returns the last message on subject (which may hold
// wildcards) as the stream's leader has it; errNotFound when there is none.
func leaderLast(ctx context.Context, nc *nats.Conn, stream, subject string) (storedMsg, error) {
	body, err := json.Marshal(directRequest{LastFor: subject})
	if err != nil {
		return storedMsg{}, err
	}
	resp, err := nc.RequestWithContext(ctx, msgGetSubjectPrefix+stream, body)
	if err != nil {
		return storedMsg{}, fmt.Errorf("get last %s: %w", subject, err)
	}
	var r msgGetResponse
	if err := json.Unmarshal(resp.Data, &r); err != nil {
		return storedMsg{}, fmt.Errorf("get last %s: %w", subject, err)
	}
	if r.Error != nil {
		if r.Error.ErrCode == errCodeNoMessageFound {
			return storedMsg{}, errNotFound
		}
		return storedMsg{}, fmt.Errorf("get last %s: %s (%d)", subject, r.Error.Description, r.Error.ErrCode)
	}
	if r.Message == nil {
		return storedMsg{}, fmt.Errorf("get last %s: empty response", subject)
	}
	var hdr nats.Header
	if len(r.Message.Header) > 0 {
		if hdr, err = nats.DecodeHeadersMsg(r.Message.Header); err != nil {
			return storedMsg{}, fmt.Errorf("get last %s: headers: %w", subject, err)
		}
	}
	return storedMsg{subject: r.Message.Subject, seq: r.Message.Sequence, time: r.Message.Time.UTC(), header: hdr, data: r.Message.Data}, nil
}
