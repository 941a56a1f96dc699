package actors

import (
	"log/slog"
	"sync"
	"sync/atomic"

	"github.com/asynkron/protoactor-go/actor"

	"github.com/acme/mastertrust/internal/recovered"
)

// workers runs functions on goroutines that outlive them. A function that
// panics is recovered (logged, counted) and its worker goes on with the
// next one: the functions are a pot's snapshot save, or a mailbox run,
// which protoactor already recovers itself. A new goroutine
// starts with a small stack, and the pot path is deep (protobuf decoding,
// decimal arithmetic, Pebble's skiplist insert): started fresh for every
// mailbox run and every append, goroutines spent 13% of a durable command's
// CPU growing their stacks (runtime.newstack, docs/performance.md). A
// worker that has run once keeps its grown stack for the next function.
//
// It never makes a function wait for a worker: with no worker idle, Go
// starts one. So a function that blocks (an append waiting for its sync, an
// actor reading the journal) cannot starve the others, and a function may
// schedule another and wait for it. Up to idleMax workers stay parked for
// more work; the rest exit, and all exit once stopped.
type workers struct {
	log      *slog.Logger
	work     chan func() // unbuffered: a send succeeds only to an idle worker
	idle     atomic.Int32
	idleMax  int32
	done     chan struct{}
	stopOnce sync.Once
}

func newWorkers(idleMax int, log *slog.Logger) *workers {
	return &workers{log: log, work: make(chan func()), idleMax: int32(idleMax), done: make(chan struct{})}
}

// stop lets the idle workers exit; functions given to Go later still run,
// each on its own goroutine.
func (w *workers) stop() { w.stopOnce.Do(func() { close(w.done) }) }

// Go runs fn on an idle worker, or on a new one.
func (w *workers) Go(fn func()) {
	select {
	case w.work <- fn:
	default:
		go w.run(fn)
	}
}

func (w *workers) run(fn func()) {
	for {
		// A panic is logged and counted; nobody waits for fn's outcome.
		recovered.Run(w.log, "pot-worker", fn)
		fn = nil // do not keep what fn refers to alive while parked
		if w.idle.Add(1) > w.idleMax {
			w.idle.Add(-1)
			return
		}
		select {
		case fn = <-w.work:
			w.idle.Add(-1)
		case <-w.done:
			w.idle.Add(-1)
			return
		}
	}
}

// dispatcher is a protoactor dispatcher that runs mailboxes on w.
func (w *workers) dispatcher(throughput int) actor.Dispatcher {
	return workerDispatcher{w: w, throughput: throughput}
}

type workerDispatcher struct {
	w          *workers
	throughput int
}

func (d workerDispatcher) Schedule(fn func()) { d.w.Go(fn) }
func (d workerDispatcher) Throughput() int    { return d.throughput }
