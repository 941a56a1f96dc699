package jetstream

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
	natsjs "github.com/nats-io/nats.go/jetstream"
	"github.com/nats-io/nuid"
)

// Group commit on JetStream (docs/persistence.md, "Appends in atomic
// batches"). With SyncAlways a JetStream stream fsyncs each message on its
// own, so one message per append caps a stream at a few thousand appends a
// second whatever the number of pots. The appends waiting for the same
// JetStream stream are therefore published together as one atomic batch
// (nats-server ≥ 2.12, AllowAtomicPublish): the server checks every
// message's expected last subject sequence under one lock, stores the
// whole batch or none of it, and syncs it once.
//
// Fencing. Each append keeps its own Nats-Expected-Last-Subject-Sequence,
// so a second activation's append fails its check as before. But an atomic
// batch fails whole, and its error does not say which message failed. A
// failed batch is therefore resolved by reading: each append's subject is
// looked up on the stream leader, and
//
//   - its last message carries the append's Nats-Msg-Id: stored (by this
//     batch or an earlier try of it);
//   - its last sequence is no longer the expected one: a conflict, answered
//     to that append alone;
//   - otherwise: not stored, and not refused for itself; it goes into the
//     next batch with the others.
//
// The same reading resolves a batch that got no answer (a leader lost in
// the middle), so an outcome is never guessed: the expected sequence lets
// at most one try of an append be stored, whichever it was.

const (
	// batchAppendsMaxDefault: the server accepts up to 1,000 messages in a
	// batch; each batch also costs the server a fixed amount (on a
	// one-replica file stream it stages the batch in a store of its own),
	// so batches are made as large as the waiting appends allow.
	batchAppendsMaxDefault = BatchAppendsMaxLimit
	// batchAppendsMinDefault: a batch's fixed cost on a one-replica file
	// stream (~1.5 ms here: the server stages it in a store of its own) is
	// about what a dozen appends cost published one by one, and with two
	// batches in flight 32 outstanding appends make batches of 16.
	batchAppendsMinDefault = 32

	// batchesInFlightDefault per JetStream stream: one batch being stored
	// while the next fills. The server takes up to 50 per stream.
	batchesInFlightDefault = 2
	batchesInFlightLimit   = 50
	// batchBytesMax bounds one batch's payload, so that the server's
	// staging and the client's buffers stay bounded; an append larger than
	// this goes alone.
	batchBytesMax = 8 << 20
	// batchQueueLength is how many appends may wait for a stream's batcher.
	batchQueueLength = 4096
)

// BatchAppendsMaxLimit is the most Options.BatchAppendsMax may be:
// nats-server's default limit of messages in an atomic batch.
const BatchAppendsMaxLimit = 1000

// Headers of an atomic batch (ADR-50).
const (
	hdrBatchID     = "Nats-Batch-Id"
	hdrBatchSeq    = "Nats-Batch-Sequence"
	hdrBatchCommit = "Nats-Batch-Commit"
)

// JetStream's error codes that say the batch's content will never be
// accepted, whatever is retried.
const (
	errCodeAtomicPublishDisabled  natsjs.ErrorCode = 10174
	errCodeAtomicUnsupportedHdr   natsjs.ErrorCode = 10177
	errCodeAtomicInvalidBatchID   natsjs.ErrorCode = 10179
	errCodeMessageExceedsMaximum  natsjs.ErrorCode = 10054
	errCodeAtomicTooLargeBatch    natsjs.ErrorCode = 10199
	errCodeStreamNotFound         natsjs.ErrorCode = 10059
	errCodeAtomicMissingBatchSeq  natsjs.ErrorCode = 10175
	errCodeStreamSealed           natsjs.ErrorCode = 10109
	errCodeAccountResourcesExceed natsjs.ErrorCode = 10002
)

// pendingAppend is one append waiting for its batch.
type pendingAppend struct {
	ctx      context.Context
	msg      *nats.Msg
	expected uint64 // the subject's expected last sequence
	msgID    string
	bytes    int
	done     chan batchOutcome // buffered: the batcher never waits on it
}

// newPendingAppend gives msg the Nats-Msg-Id by which a failed batch is
// resolved.
func newPendingAppend(ctx context.Context, msg *nats.Msg, expected uint64) *pendingAppend {
	p := &pendingAppend{ctx: ctx, msg: msg, expected: expected, msgID: nuid.Next(),
		bytes: len(msg.Data) + len(msg.Subject), done: make(chan batchOutcome, 1)}
	msg.Header.Set(natsjs.MsgIDHeader, p.msgID)
	return p
}

// batchOutcome is an append's answer: its sequence, or why not. A conflict
// is errWrongLastSequence.
type batchOutcome struct {
	seq uint64
	err error
}

// errWrongLastSequence: the append's expected last subject sequence no
// longer holds; the caller reads the stream to say to what version.
var errWrongLastSequence = errors.New("wrong last subject sequence")

// batcher publishes the appends waiting for one JetStream stream as atomic
// batches, inFlight batches at a time, once at least appendMin of them are
// outstanding; fewer go on their own, as they would without it.
type batcher struct {
	s           *Store
	stream      string
	queue       chan *pendingAppend
	appendMin   int
	appendMax   int
	outstanding atomic.Int64 // appends submitted and not yet answered
	wg          sync.WaitGroup
}

func newBatcher(s *Store, stream string, appendMin, appendMax, inFlight int) *batcher {
	b := &batcher{s: s, stream: stream, queue: make(chan *pendingAppend, batchQueueLength), appendMin: appendMin, appendMax: appendMax}
	for range inFlight {
		b.wg.Go(b.run)
	}
	return b
}

// close stops the batcher once every queued append is answered. The
// caller guarantees no append is submitted after it.
func (b *batcher) close() {
	close(b.queue)
	b.wg.Wait()
}

// submit queues msg, which expects its subject's last sequence to be
// expected, and waits for its outcome or ctx. An append given up on by
// ctx after it was published may still be stored: as with any append that
// got no answer, the caller reads the stream to know.
func (b *batcher) submit(ctx context.Context, msg *nats.Msg, expected uint64) (uint64, error) {
	n := b.outstanding.Add(1)
	defer b.outstanding.Add(-1)
	if n < int64(b.appendMin) && len(b.queue) == 0 {
		// Too few to share a batch's fixed cost: alone, as ever.
		ack, err := b.s.publishDurably(ctx, msg)
		if err != nil {
			return 0, err
		}
		return ack.Sequence, nil
	}
	p := newPendingAppend(ctx, msg, expected)
	select {
	case b.queue <- p:
	case <-ctx.Done():
		return 0, ctx.Err()
	}
	select {
	case o := <-p.done:
		return o.seq, o.err
	case <-ctx.Done():
		return 0, ctx.Err()
	}
}

// run takes the waiting appends, as many as fit in one batch, and commits
// them, until the queue is closed.
func (b *batcher) run() {
	var carry []*pendingAppend // taken, but their subject was already in the batch
	for {
		batch, open := b.take(carry)
		carry = carry[:0]
		if len(batch) == 0 && !open {
			return
		}
		batch, carry = splitSameSubject(batch, carry)
		b.commit(batch)
		if !open && len(carry) == 0 {
			return
		}
	}
}

// take returns carry and then the queue's waiting appends, blocking for
// the first one when carry is empty; open is false once the queue is
// closed and drained.
func (b *batcher) take(carry []*pendingAppend) (batch []*pendingAppend, open bool) {
	batch = append(batch, carry...)
	bytes := 0
	for _, p := range batch {
		bytes += p.bytes
	}
	if len(batch) == 0 {
		p, ok := <-b.queue
		if !ok {
			return nil, false
		}
		batch, bytes = append(batch, p), p.bytes
	}
	for len(batch) < b.appendMax && bytes < batchBytesMax {
		select {
		case p, ok := <-b.queue:
			if !ok {
				return batch, false
			}
			batch, bytes = append(batch, p), bytes+p.bytes
		default:
			return batch, true
		}
	}
	return batch, true
}

// splitSameSubject keeps the first append of each subject in the batch and
// moves the others to carry: the server refuses an expected sequence on a
// subject the same batch writes before it.
func splitSameSubject(batch, carry []*pendingAppend) ([]*pendingAppend, []*pendingAppend) {
	if len(batch) < 2 {
		return batch, carry
	}
	seen := make(map[string]struct{}, len(batch))
	kept := batch[:0]
	for _, p := range batch {
		if _, dup := seen[p.msg.Subject]; dup {
			carry = append(carry, p)
			continue
		}
		seen[p.msg.Subject] = struct{}{}
		kept = append(kept, p)
	}
	return kept, carry
}

// commit stores batch, trying again the appends that were neither stored
// nor refused, until each is answered or its context ends.
func (b *batcher) commit(batch []*pendingAppend) {
	pause := publishRetryPause
	for len(batch) > 0 {
		batch = dropAbandoned(batch)
		if len(batch) == 0 {
			return
		}
		var err error
		if len(batch) == 1 {
			err = b.publishOne(batch[0])
		} else {
			err = b.publishBatch(batch)
		}
		if err == nil {
			return
		}
		if final(err) {
			for _, p := range batch {
				p.done <- batchOutcome{err: err}
			}
			return
		}
		// Neither stored nor refused for certain: read each append's
		// subject to tell.
		batch = b.resolve(batch, err)
		if len(batch) == 0 {
			return
		}
		t := time.NewTimer(pause)
		<-t.C
		pause = min(2*pause, publishRetryPauseMax)
	}
}

// dropAbandoned answers the appends whose caller has gone before they were
// (again) published, and returns the others.
func dropAbandoned(batch []*pendingAppend) []*pendingAppend {
	kept := batch[:0]
	for _, p := range batch {
		if err := p.ctx.Err(); err != nil {
			p.done <- batchOutcome{err: err}
			continue
		}
		kept = append(kept, p)
	}
	return kept
}

// publishOne publishes a batch of one as a plain message: an atomic batch
// would cost the server more for nothing. A refused expected sequence is
// answered at once.
func (b *batcher) publishOne(p *pendingAppend) error {
	// A try after a failed batch: the message is no longer in one.
	for _, h := range []string{hdrBatchID, hdrBatchSeq, hdrBatchCommit} {
		p.msg.Header.Del(h)
	}
	ctx, cancel := context.WithTimeout(p.ctx, publishAttemptTimeout)
	ack, err := b.s.js.PublishMsg(ctx, p.msg)
	cancel()
	switch {
	case err == nil:
		p.done <- batchOutcome{seq: ack.Sequence}
		return nil
	case isWrongLastSequence(err):
		p.done <- batchOutcome{err: fmt.Errorf("%w: %w", errWrongLastSequence, err)}
		return nil
	}
	return err
}

// publishBatch publishes batch as one atomic batch and answers every append
// if it was stored.
func (b *batcher) publishBatch(batch []*pendingAppend) error {
	id := nuid.Next()
	last := len(batch) - 1
	for i, p := range batch {
		p.msg.Header.Set(hdrBatchID, id)
		p.msg.Header.Set(hdrBatchSeq, strconv.Itoa(i+1))
		if i < last {
			p.msg.Header.Del(hdrBatchCommit)
			if err := b.s.nc.PublishMsg(p.msg); err != nil {
				return err
			}
		}
	}
	commit := batch[last].msg
	commit.Header.Set(hdrBatchCommit, "1")
	ctx, cancel := context.WithTimeout(context.Background(), publishAttemptTimeout)
	defer cancel()
	resp, err := b.s.nc.RequestMsgWithContext(ctx, commit)
	if err != nil {
		return err
	}
	var ack struct {
		Error *natsjs.APIError `json:"error"`
		Seq   uint64           `json:"seq"`
		Batch string           `json:"batch"`
		Count int              `json:"count"`
	}
	if err := json.Unmarshal(resp.Data, &ack); err != nil {
		return fmt.Errorf("batch acknowledgement: %w", err)
	}
	if ack.Error != nil {
		return ack.Error
	}
	if ack.Batch != id || ack.Count != len(batch) || ack.Seq < uint64(last) {
		// Stored, by the look of it, but not as sent: resolve by reading
		// rather than trust the sequences.
		return fmt.Errorf("batch acknowledged as %q of %d ending at %d; sent %q of %d", ack.Batch, ack.Count, ack.Seq, id, len(batch))
	}
	// The batch's messages have consecutive sequences, in order.
	first := ack.Seq - uint64(last)
	for i, p := range batch {
		p.done <- batchOutcome{seq: first + uint64(i)}
	}
	return nil
}

// final reports whether err says the appends can never be stored as sent:
// retrying would only fail again.
func final(err error) bool {
	if errors.Is(err, nats.ErrConnectionClosed) {
		return true // the store's owner closed it: nothing more can be sent
	}
	var apiErr *natsjs.APIError
	if !errors.As(err, &apiErr) {
		return false
	}
	switch apiErr.ErrorCode {
	case errCodeAtomicPublishDisabled, errCodeAtomicUnsupportedHdr, errCodeAtomicInvalidBatchID,
		errCodeMessageExceedsMaximum, errCodeAtomicTooLargeBatch, errCodeStreamNotFound,
		errCodeAtomicMissingBatchSeq, errCodeStreamSealed, errCodeAccountResourcesExceed:
		return true
	}
	return false
}

// resolve reads each append's subject on the stream leader after a batch
// that failed with why, answers the appends that were stored or refused,
// and returns the others, to be published again.
func (b *batcher) resolve(batch []*pendingAppend, why error) []*pendingAppend {
	again := batch[:0]
	for _, p := range batch {
		ctx, cancel := context.WithTimeout(p.ctx, publishAttemptTimeout)
		m, err := leaderLast(ctx, b.s.nc, b.stream, p.msg.Subject)
		cancel()
		var lastSeq uint64
		switch {
		case err == nil:
			lastSeq = m.seq
		case errors.Is(err, errNotFound):
			// No message on the subject: not stored, and not overtaken.
		default:
			if p.ctx.Err() != nil {
				p.done <- batchOutcome{err: fmt.Errorf("outcome unknown after %w: %w", why, err)}
				continue
			}
			again = append(again, p) // the leader is away too: read again after the next try
			continue
		}
		switch {
		case err == nil && m.header.Get(natsjs.MsgIDHeader) == p.msgID:
			p.done <- batchOutcome{seq: lastSeq}
		case lastSeq != p.expected:
			p.done <- batchOutcome{err: fmt.Errorf("%w: the subject is at sequence %d, not %d (batch failed: %w)", errWrongLastSequence, lastSeq, p.expected, why)}
		default:
			again = append(again, p)
		}
	}
	return again
}
