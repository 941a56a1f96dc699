package simulator

import (
	"cmp"
	"context"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"slices"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/nats-io/nuid"
	"google.golang.org/protobuf/proto"

	"github.com/acme/mastertrust/custodian"
	"github.com/acme/mastertrust/domain"
	"github.com/acme/mastertrust/internal/natsmsg"
	"github.com/acme/mastertrust/internal/recovered"
	"github.com/acme/mastertrust/proto/pb"
)

// Limits of the fault injection.
const (
	// delayMaxLimit bounds Faults.DelayMax: a delayed report waits in a
	// timer in memory; a longer silence is what OutageDuration is for.
	delayMaxLimit = 10 * time.Minute
	// reorderWindowMax bounds Faults.ReorderWindow: held reports sit in
	// memory, and a few dozen already scramble any day's reports (one per
	// asset).
	reorderWindowMax = 1000
	// reorderHoldMaxDefault releases a partly filled reorder window after
	// this long, so that the last reports of a day are not held forever.
	reorderHoldMaxDefault = 500 * time.Millisecond
	// reorderHoldMaxLimit bounds Faults.ReorderHoldMax, as delayMaxLimit.
	reorderHoldMaxLimit = 10 * time.Minute
	// outageDurationMax bounds Faults.OutageDuration: a day is longer than
	// any test or demo needs, and orders wait in the stream for a month.
	outageDurationMax = 24 * time.Hour
	// outageOrdersMax bounds Faults.OutageOrders.
	outageOrdersMax = 1_000_000
	// dupMsgIDInfix marks the Nats-Msg-Id of a duplicated report's extra
	// copy: "<execution_id>#dup-<nuid>", so that JetStream stores it and
	// ACME receives the same report twice, as from a custodian that sent it
	// twice.
	dupMsgIDInfix = "#dup-"
)

// Faults configures the simulator's fault injection: everything a real
// custodian's link does wrong, as far as ACME can tell. The zero value
// injects nothing. All randomness comes from one generator seeded with Seed;
// the draws are made by the order loop, in the order orders are handled, so
// a run with the same seed and the same orders makes the same decisions
// (the timing of delayed reports still depends on the machine).
type Faults struct {
	// Seed seeds the generator. 0: a seed is drawn at start; either way the
	// seed in use is logged, so that a run can be repeated.
	Seed uint64
	// DropProbability is the chance that a report (a first one or a
	// re-sent one) is not sent at all. ACME recovers by resending the
	// order: the custodian answers a repeat with the same report. In
	// [0, 1]; 1 is a custodian that never answers.
	DropProbability float64
	// DuplicateProbability is the chance that a report that is sent is
	// sent twice: the extra copy has another Nats-Msg-Id, so it passes
	// JetStream's deduplication and ACME receives the same execution twice.
	// In [0, 1].
	DuplicateProbability float64
	// DelayMax delays each copy of a report by a uniformly random duration
	// in [0, DelayMax]. 0: no delay. At most 10 minutes. Delayed reports
	// are in memory only: a simulator stopped before sending one has in
	// effect dropped it.
	DelayMax time.Duration
	// ReorderWindow holds reports (after their delay) until this many are
	// held, then sends them in a random order. 0 or 1: no reordering. At
	// most 1000.
	ReorderWindow int
	// ReorderHoldMax sends what the reorder window holds, shuffled, once
	// its oldest report has waited this long. Default 500ms (with a
	// ReorderWindow); at most 10 minutes.
	ReorderHoldMax time.Duration
	// OutageDuration keeps the simulator from taking any order for this
	// long after it starts: orders wait in the stream, as at a custodian
	// that is down, and execute after it. Holdings requests are still
	// answered. At most 24h.
	OutageDuration time.Duration
	// OutageOrders refuses the first N order deliveries after the
	// simulator starts (each refusal puts the message back in the stream
	// for redelivery after RetryInterval), counting redeliveries too.
	OutageOrders int
}

// enabled reports whether any fault is configured.
func (f *Faults) enabled() bool {
	return f.DropProbability > 0 || f.DuplicateProbability > 0 || f.DelayMax > 0 || f.ReorderWindow > 1 ||
		f.OutageDuration > 0 || f.OutageOrders > 0
}

// ensureDefaults fills the defaults documented on the fields; the seed is
// drawn in start, so that the config keeps saying "random".
func (f *Faults) ensureDefaults() {
	if f.ReorderWindow > 1 && f.ReorderHoldMax == 0 {
		f.ReorderHoldMax = reorderHoldMaxDefault
	}
}

// validate appends a problem for each field out of range.
func (f *Faults) validate(problems []string) []string {
	add := func(format string, args ...any) { problems = append(problems, fmt.Sprintf(format, args...)) }
	// !(p >= 0 && p <= 1) also refuses NaN.
	if p := f.DropProbability; !(p >= 0 && p <= 1) {
		add("Faults.DropProbability %v: want a probability in [0, 1]", p)
	}
	if p := f.DuplicateProbability; !(p >= 0 && p <= 1) {
		add("Faults.DuplicateProbability %v: want a probability in [0, 1]", p)
	}
	if d := f.DelayMax; d < 0 || d > delayMaxLimit {
		add("Faults.DelayMax %s: want [0, %s]", d, delayMaxLimit)
	}
	if n := f.ReorderWindow; n < 0 || n > reorderWindowMax {
		add("Faults.ReorderWindow %d: want [0, %d]", n, reorderWindowMax)
	}
	if d := f.ReorderHoldMax; d < 0 || d > reorderHoldMaxLimit {
		add("Faults.ReorderHoldMax %s: want [0, %s]", d, reorderHoldMaxLimit)
	}
	if d := f.OutageDuration; d < 0 || d > outageDurationMax {
		add("Faults.OutageDuration %s: want [0, %s]", d, outageDurationMax)
	}
	if n := f.OutageOrders; n < 0 || n > outageOrdersMax {
		add("Faults.OutageOrders %d: want [0, %d]", n, outageOrdersMax)
	}
	return problems
}

// logAttrs are the faults as log attributes.
func (f *Faults) logAttrs(seed uint64) []any {
	return []any{"seed", seed, "drop", f.DropProbability, "duplicate", f.DuplicateProbability,
		"delay_max", f.DelayMax, "reorder_window", f.ReorderWindow, "reorder_hold_max", f.ReorderHoldMax,
		"outage_duration", f.OutageDuration, "outage_orders", f.OutageOrders}
}

// outgoing is one copy of a report on its way to the reports stream.
type outgoing struct {
	subject string
	data    []byte
	msgID   string
	dup     bool   // the duplicate fault's extra copy
	key     uint64 // random sort key in the reorder window
}

// reportSender publishes execution reports through the faults.
//
// The order loop calls send; timers (delays, the reorder window's hold) and
// publishing goroutines run beside it. Lock order: mu only.
type reportSender struct {
	js             jetstream.JetStream
	log            *slog.Logger
	faults         Faults
	publishTimeout time.Duration
	stats          *counters
	// base is cancelled by stop, aborting publications in flight. It is
	// the sender's own context, not a caller's.
	base context.Context

	// mu guards everything below.
	mu        sync.Mutex
	rng       *rand.Rand
	held      []outgoing             // the reorder window
	holdTimer *time.Timer            // releases held after ReorderHoldMax
	holdGen   uint64                 // generation of holdTimer, so a stale firing does nothing
	delayed   map[uint64]*time.Timer // delay timers by id
	timerSeq  uint64
	stopped   bool
	// inflight counts publishing goroutines; Add only under mu while not
	// stopped, so that stop's Wait sees them all.
	inflight sync.WaitGroup
}

func newReportSender(base context.Context, js jetstream.JetStream, log *slog.Logger, f Faults, seed uint64,
	publishTimeout time.Duration, stats *counters) *reportSender {
	return &reportSender{
		js: js, log: log, faults: f, publishTimeout: publishTimeout, stats: stats, base: base,
		rng:     rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15)),
		delayed: make(map[uint64]*time.Timer),
	}
}

// async reports whether reports leave after send returns (delay or
// reordering configured): the order is then acknowledged once its report is
// scheduled, and a report lost after that is recovered by ACME's resend.
func (r *reportSender) async() bool { return r.faults.DelayMax > 0 || r.faults.ReorderWindow > 1 }

// send publishes rep through the faults. Without delay or reordering it
// publishes before it returns, and an error means the report may not be in
// the stream: the caller puts the order back, and the redelivery re-sends
// the report (a repeat). A dropped report returns nil: as far as the
// custodian knows, it was sent.
func (r *reportSender) send(ctx context.Context, rep *pb.ExecutionReport) error {
	data, err := proto.MarshalOptions{Deterministic: true}.Marshal(rep)
	if err != nil {
		return fmt.Errorf("custodian: encode report %s: %w", rep.GetExecutionId(), err)
	}
	subject := custodian.ReportSubject(domain.ISIN(rep.GetAsset()))
	r.mu.Lock()
	if r.stopped {
		r.mu.Unlock()
		return fmt.Errorf("custodian: report %s: simulator stopping", rep.GetExecutionId())
	}
	if r.faults.DropProbability > 0 && r.rng.Float64() < r.faults.DropProbability {
		r.mu.Unlock()
		r.stats.reportsDropped.Add(1)
		r.log.Info("fault: report dropped", "execution_id", rep.GetExecutionId())
		return nil
	}
	copies := []outgoing{{subject: subject, data: data, msgID: rep.GetExecutionId()}}
	if r.faults.DuplicateProbability > 0 && r.rng.Float64() < r.faults.DuplicateProbability {
		copies = append(copies, outgoing{subject: subject, data: data, msgID: rep.GetExecutionId() + dupMsgIDInfix + nuid.Next(), dup: true})
	}
	if !r.async() {
		r.mu.Unlock()
		for i, o := range copies {
			if err := r.publish(ctx, o); err != nil && i == 0 {
				return err
			}
		}
		return nil
	}
	defer r.mu.Unlock()
	for _, o := range copies {
		var delay time.Duration
		if r.faults.DelayMax > 0 {
			delay = time.Duration(r.rng.Int64N(int64(r.faults.DelayMax) + 1))
		}
		if r.faults.ReorderWindow > 1 {
			o.key = r.rng.Uint64()
		}
		if delay > 0 {
			r.stats.reportsDelayed.Add(1)
			r.scheduleLocked(delay, o)
		} else {
			r.enqueueLocked(o)
		}
	}
	return nil
}

// scheduleLocked enqueues o after delay; r.mu must be held.
func (r *reportSender) scheduleLocked(delay time.Duration, o outgoing) {
	r.timerSeq++
	id := r.timerSeq
	r.delayed[id] = time.AfterFunc(delay, func() {
		// On the timer's goroutine a panic would end the process; the
		// report is then lost, and ACME's resend recovers it.
		recovered.Run(r.log, "custodian-simulator", func() {
			r.mu.Lock()
			defer r.mu.Unlock()
			if r.stopped {
				return
			}
			delete(r.delayed, id)
			r.enqueueLocked(o)
		})
	})
}

// enqueueLocked puts o in the reorder window, or publishes it if there is
// none; r.mu must be held.
func (r *reportSender) enqueueLocked(o outgoing) {
	if r.faults.ReorderWindow <= 1 {
		r.publishAsyncLocked([]outgoing{o})
		return
	}
	r.stats.reportsReordered.Add(1)
	r.held = append(r.held, o)
	if len(r.held) >= r.faults.ReorderWindow {
		r.flushLocked()
		return
	}
	if r.holdTimer == nil {
		r.holdGen++
		gen := r.holdGen
		r.holdTimer = time.AfterFunc(r.faults.ReorderHoldMax, func() {
			recovered.Run(r.log, "custodian-simulator", func() { // as in scheduleLocked
				r.mu.Lock()
				defer r.mu.Unlock()
				if r.stopped || gen != r.holdGen {
					return // stopped, or flushed (and maybe re-armed) since
				}
				r.flushLocked()
			})
		})
	}
}

// flushLocked publishes the reorder window in the order of the copies'
// random keys; r.mu must be held.
func (r *reportSender) flushLocked() {
	if r.holdTimer != nil {
		r.holdTimer.Stop()
		r.holdTimer = nil
		r.holdGen++
	}
	batch := r.held
	r.held = nil
	slices.SortStableFunc(batch, func(a, b outgoing) int { return cmp.Compare(a.key, b.key) })
	r.publishAsyncLocked(batch)
}

// publishAsyncLocked publishes batch, in order, on a goroutine; r.mu must be
// held and the sender not stopped.
func (r *reportSender) publishAsyncLocked(batch []outgoing) {
	if len(batch) == 0 {
		return
	}
	r.inflight.Add(1)
	go func() {
		defer r.inflight.Done()
		for _, o := range batch {
			// A panic loses the report, which ACME's resend recovers.
			var err error
			if perr := recovered.Run(r.log, "custodian-simulator", func() { err = r.publish(r.base, o) }); perr != nil || err != nil {
				r.stats.reportsLost.Add(1)
			}
		}
	}()
}

// publish stores one copy in the reports stream and counts it.
func (r *reportSender) publish(ctx context.Context, o outgoing) error {
	ctx, cancel := context.WithTimeout(ctx, r.publishTimeout)
	defer cancel()
	// A header per copy: the publish adds the copy's own Nats-Msg-Id to it.
	msg := &nats.Msg{Subject: o.subject, Data: o.data, Header: natsmsg.Header(&pb.ExecutionReport{})}
	ack, err := r.js.PublishMsg(ctx, msg, jetstream.WithMsgID(o.msgID), jetstream.WithExpectStream(custodian.ReportsStream))
	if err != nil {
		r.stats.publishErrors.Add(1)
		r.log.Warn("publish report failed", "msg_id", o.msgID, "err", err)
		return fmt.Errorf("custodian: publish report %s: %w", o.msgID, err)
	}
	switch {
	case o.dup:
		r.stats.reportsDuplicated.Add(1)
		r.log.Info("fault: report duplicated", "msg_id", o.msgID)
	case ack.Duplicate:
		// The stream holds this report already (a repeat within the
		// deduplication window): ACME's consumer has it or will.
		r.stats.reportsDeduped.Add(1)
	default:
		r.stats.reportsPublished.Add(1)
	}
	return nil
}

// stop cancels every pending report (they count as lost: ACME's resends
// recover them) and waits for publications in flight.
func (r *reportSender) stop() {
	r.mu.Lock()
	r.stopped = true
	lost := len(r.held) + len(r.delayed)
	for _, t := range r.delayed {
		t.Stop()
	}
	r.delayed = nil
	if r.holdTimer != nil {
		r.holdTimer.Stop()
		r.holdTimer = nil
	}
	r.held = nil
	r.mu.Unlock()
	r.stats.reportsLost.Add(int64(lost))
	if lost > 0 {
		r.log.Info("reports pending at stop are lost; ACME's resends recover them", "reports", lost)
	}
	r.inflight.Wait()
}
