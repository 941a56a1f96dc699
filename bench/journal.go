// Package bench holds the workloads that measure mastertrust: each exports
// a config struct and a Run function, and cmd/ binds flags to them.
package bench

import (
	"cmp"
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
	natsjs "github.com/nats-io/nats.go/jetstream"
	"github.com/nats-io/nuid"

	"github.com/acme/mastertrust/internal/natsembed"
	"github.com/acme/mastertrust/persistence"
	"github.com/acme/mastertrust/persistence/jetstream"
	"github.com/acme/mastertrust/persistence/pebble"
)

// Backend names for JournalConfig.Backends.
const (
	BackendPebble    = "pebble"
	BackendJetStream = "jetstream"
)

// JournalConfig configures RunJournal. Zero fields take the defaults named
// on each.
type JournalConfig struct {
	// Dir holds the stores (removed afterwards). Default: a new temporary
	// directory. Put it on the disk you want measured.
	Dir string
	// Backends to measure. Default: pebble and jetstream.
	Backends []string
	// Writers are the concurrencies measured: each writer appends to its
	// own stream and waits for each append. Default 1, 16, 64, 256.
	Writers []int
	// BatchEvents is N in the N-event rows (the 1-event rows always run).
	// Default 64.
	BatchEvents int
	// EventBytes is each event's payload size. Default 200 (a pot event).
	EventBytes int
	// Duration of each measured cell, after a warm-up of a fifth of it.
	// Default 3s.
	Duration time.Duration
	// Repeats measures each cell this many times, raw and journal in turn,
	// and prints the medians and the median of the per-pair ratios: on a
	// shared machine one pair can be off by 2×. Default 1.
	Repeats int
	// Groups of the journals. Default 64.
	Groups uint32
	// ReadStreams is how many streams exist when one stream of ReadEvents
	// events is read back. Default 1,000,000 (ReadStreams 0 with
	// SkipReadBack runs no read-back).
	ReadStreams int
	// ReadEvents is the length of the stream read back. Default 100.
	ReadEvents int
	// SkipReadBack skips the read-back and bytes-on-disk measurement.
	SkipReadBack bool
	// WALMinSyncIntervals are measured for Pebble with 64 single-event
	// writers. Default 0, 100µs, 500µs, 1ms; empty after defaults only if
	// SkipWALSyncIntervals.
	WALMinSyncIntervals []time.Duration
	// SkipWALSyncIntervals skips that table.
	SkipWALSyncIntervals bool
	// Logger reports progress. Default: discard.
	Logger *slog.Logger
}

// EnsureDefaults fills zero fields.
func (c *JournalConfig) EnsureDefaults() {
	if len(c.Backends) == 0 {
		c.Backends = []string{BackendPebble, BackendJetStream}
	}
	if len(c.Writers) == 0 {
		c.Writers = []int{1, 16, 64, 256}
	}
	if c.BatchEvents == 0 {
		c.BatchEvents = 64
	}
	if c.EventBytes == 0 {
		c.EventBytes = 200
	}
	if c.Duration == 0 {
		c.Duration = 3 * time.Second
	}
	if c.Repeats == 0 {
		c.Repeats = 1
	}
	if c.Groups == 0 {
		c.Groups = 64
	}
	if c.ReadStreams == 0 {
		c.ReadStreams = 1_000_000
	}
	if c.ReadEvents == 0 {
		c.ReadEvents = 100
	}
	if len(c.WALMinSyncIntervals) == 0 {
		c.WALMinSyncIntervals = []time.Duration{0, 100 * time.Microsecond, 500 * time.Microsecond, time.Millisecond}
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
}

// Validate reports every field out of range.
func (c *JournalConfig) Validate() error {
	var errs []error
	for _, b := range c.Backends {
		if b != BackendPebble && b != BackendJetStream {
			errs = append(errs, fmt.Errorf("backend %q is not %s or %s", b, BackendPebble, BackendJetStream))
		}
	}
	for _, w := range c.Writers {
		if w < 1 || w > 4096 {
			errs = append(errs, fmt.Errorf("writers %d outside [1, 4096]", w))
		}
	}
	if c.BatchEvents < 1 || c.BatchEvents > persistence.AppendEventsMax {
		errs = append(errs, fmt.Errorf("batch events %d outside [1, %d]", c.BatchEvents, persistence.AppendEventsMax))
	}
	if c.EventBytes < 0 || c.BatchEvents*c.EventBytes > persistence.AppendDataBytesMax/2 {
		errs = append(errs, fmt.Errorf("event bytes %d × batch %d exceeds %d", c.EventBytes, c.BatchEvents, persistence.AppendDataBytesMax/2))
	}
	if c.Repeats < 1 || c.Repeats > 100 {
		errs = append(errs, fmt.Errorf("repeats %d outside [1, 100]", c.Repeats))
	}
	if c.Duration < 10*time.Millisecond {
		errs = append(errs, fmt.Errorf("duration %s below 10ms", c.Duration))
	}
	if c.ReadEvents < 1 || c.ReadStreams < 1 {
		errs = append(errs, fmt.Errorf("read streams %d and read events %d must be positive", c.ReadStreams, c.ReadEvents))
	}
	return errors.Join(errs...)
}

// RunJournal measures the journal backends and prints tables to out:
// appends/s and events/s for 1-event and N-event appends at each writer
// count, each beside the raw ceiling measured in the same run (raw Pebble
// synced batches of the same events, raw JetStream publishes of the same
// bytes to the same number of streams, with no journal logic) and the
// ratio; Pebble with several WALMinSyncInterval values; the time to read
// one stream among many; and bytes on disk per event.
func RunJournal(ctx context.Context, cfg JournalConfig, out io.Writer) (err error) {
	cfg.EnsureDefaults()
	if err := cfg.Validate(); err != nil {
		return fmt.Errorf("bench: journal config: %w", err)
	}
	root, removeRoot, err := workDirs(cfg.Dir, "mastertrust-bench-*")
	if err != nil {
		return err
	}
	defer removeRoot()
	r := &journalRun{cfg: cfg, root: root, log: cfg.Logger, payload: make([]byte, cfg.EventBytes)}
	rand.Read(r.payload)
	var js *jsEnv
	if slices.Contains(cfg.Backends, BackendJetStream) {
		if js, err = startJetStream(filepath.Join(root, "nats"), cfg.Logger); err != nil {
			return err
		}
		defer js.close()
	}
	fmt.Fprintf(out, "Journal throughput: %d-byte events, each cell %s after a %s warm-up, %d time(s) (medians); raw = the same batches with no journal logic, measured in turn with the journal.\n\n",
		cfg.EventBytes, cfg.Duration, cfg.Duration/5, cfg.Repeats)
	fmt.Fprintf(out, "%-10s %13s %8s %18s %17s %14s %13s %12s\n", "backend", "events/append", "writers", "journal appends/s", "journal events/s", "raw appends/s", "raw events/s", "journal/raw")
	for _, backend := range cfg.Backends {
		for _, batch := range []int{1, cfg.BatchEvents} {
			for _, w := range cfg.Writers {
				var journal, raw rate
				var ratio float64
				switch backend {
				case BackendPebble:
					journal, raw, ratio, err = r.pairs(func() (rate, error) { return r.rawPebble(ctx, w, batch) },
						func() (rate, error) { return r.pebbleJournal(ctx, w, batch, 0) })
				case BackendJetStream:
					journal, raw, ratio, err = r.pairs(func() (rate, error) { return r.rawJetStream(ctx, js, w, batch) },
						func() (rate, error) { return r.jetStreamJournal(ctx, js, w, batch) })
				}
				if err != nil {
					return fmt.Errorf("bench: %s, %d events, %d writers: %w", backend, batch, w, err)
				}
				fmt.Fprintf(out, "%-10s %13d %8d %18.0f %17.0f %14.0f %13.0f %12.2f\n", backend, batch, w,
					journal.appends, journal.events, raw.appends, raw.events, ratio)
				r.log.Info("journal bench cell", "backend", backend, "batch", batch, "writers", w, "journal_events_s", journal.events, "raw_events_s", raw.events)
			}
		}
	}

	if slices.Contains(cfg.Backends, BackendJetStream) {
		if err := r.jetStreamBatches(ctx, js, out); err != nil {
			return err
		}
	}

	if slices.Contains(cfg.Backends, BackendPebble) && !cfg.SkipWALSyncIntervals {
		fmt.Fprintf(out, "\nPebble journal, 64 writers, 1-event appends, by WALMinSyncInterval (raw Pebble with the same interval beside it):\n\n")
		fmt.Fprintf(out, "%18s %17s %20s %13s %12s\n", "WALMinSyncInterval", "journal events/s", "mean append latency", "raw events/s", "journal/raw")
		for _, d := range cfg.WALMinSyncIntervals {
			r.walInterval = d
			journal, raw, ratio, err := r.pairs(func() (rate, error) { return r.rawPebble(ctx, 64, 1) },
				func() (rate, error) { return r.pebbleJournal(ctx, 64, 1, d) })
			if err != nil {
				return err
			}
			fmt.Fprintf(out, "%18s %17.0f %20s %13.0f %12.2f\n", d, journal.events, journal.meanLatency.Round(time.Microsecond), raw.events, ratio)
		}
		r.walInterval = 0
	}

	if !cfg.SkipReadBack {
		fmt.Fprintf(out, "\nRead-back: one stream of %d events (appended 10 at a time among the others) among %d streams of 1 event; bytes on disk per event after loading.\n\n", cfg.ReadEvents, cfg.ReadStreams)
		fmt.Fprintf(out, "%-10s %12s %14s %12s %12s %20s\n", "backend", "load time", "load events/s", "first read", "median read", "bytes on disk/event")
		for _, backend := range cfg.Backends {
			res, err := r.readBack(ctx, js, backend)
			if err != nil {
				return fmt.Errorf("bench: read-back %s: %w", backend, err)
			}
			fmt.Fprintf(out, "%-10s %12s %14.0f %12s %12s %20.0f\n", backend, res.load.Round(time.Millisecond), float64(res.events)/res.load.Seconds(),
				res.first.Round(time.Microsecond), res.median.Round(time.Microsecond), res.bytesPerEvent)
		}
	}
	return nil
}

type journalRun struct {
	cfg         JournalConfig
	root        string
	log         *slog.Logger
	payload     []byte
	cell        atomic.Int64 // numbers each cell's directory or prefix
	walInterval time.Duration
}

// pairs measures raw and journal cfg.Repeats times in turn and returns
// the median of each (by events/s) and the median ratio of the pairs.
func (r *journalRun) pairs(raw, journal func() (rate, error)) (j, w rate, ratio float64, err error) {
	var js, ws []rate
	var ratios []float64
	for range r.cfg.Repeats {
		rw, err := raw()
		if err != nil {
			return rate{}, rate{}, 0, err
		}
		jr, err := journal()
		if err != nil {
			return rate{}, rate{}, 0, err
		}
		js, ws = append(js, jr), append(ws, rw)
		ratios = append(ratios, jr.events/rw.events)
	}
	slices.SortFunc(js, byEvents)
	slices.SortFunc(ws, byEvents)
	slices.Sort(ratios)
	return js[len(js)/2], ws[len(ws)/2], ratios[len(ratios)/2], nil
}

// shape is the load of one cell: writers goroutines, measured for
// cfg.Duration after a warm-up of a fifth of it.
func (r *journalRun) shape(writers int) loadShape {
	return loadShape{workers: writers, warmup: r.cfg.Duration / 5, duration: r.cfg.Duration}
}

func (r *journalRun) newDir() (string, error) {
	dir := filepath.Join(r.root, fmt.Sprintf("cell-%d", r.cell.Add(1)))
	return dir, os.MkdirAll(dir, 0o755)
}

// rawPebble measures synced Pebble batches of batch events, one writer
// per goroutine, with the journal's Pebble settings and nothing else.
func (r *journalRun) rawPebble(ctx context.Context, writers, batch int) (rate, error) {
	dir, err := r.newDir()
	if err != nil {
		return rate{}, err
	}
	defer os.RemoveAll(dir)
	payloads := make([][]byte, batch)
	for i := range payloads {
		payloads[i] = r.payload
	}
	return rawPebbleAppends(ctx, dir, r.shape(writers), payloads, r.walInterval)
}

// writerEvents is the batch a writer appends, again and again.
func (r *journalRun) writerEvents(batch int) []persistence.NewEvent {
	evs := make([]persistence.NewEvent, batch)
	for i := range evs {
		evs[i] = persistence.NewEvent{Type: "pot.BenchEvent", Data: r.payload}
	}
	return evs
}

// writerGroup spreads writers evenly over the groups, as hashing member ids
// does: 16 writers in 64 groups land in groups 0, 4, 8, …, so that they
// also spread over JetStream streams, which hold contiguous ranges of groups.
func writerGroup(w, writers int, groups uint32) uint32 {
	if writers >= int(groups) {
		return uint32(w) % groups
	}
	return uint32(w * int(groups) / writers)
}

// appendLoop returns an op that appends batch to writer w's own stream.
func (r *journalRun) appendLoop(j persistence.Journal, writers, batch int) func(ctx context.Context, w int) (int, error) {
	evs := r.writerEvents(batch)
	versions := make([]uint64, writers)
	return func(ctx context.Context, w int) (int, error) {
		v, err := j.Append(ctx, persistence.AppendRequest{
			Stream:          fmt.Sprintf("pot/bench-%05d", w),
			Group:           writerGroup(w, writers, r.cfg.Groups),
			ExpectedVersion: versions[w],
			Events:          evs,
		})
		if err != nil {
			return 0, err
		}
		versions[w] = v
		return batch, nil
	}
}

func (r *journalRun) pebbleJournal(ctx context.Context, writers, batch int, walInterval time.Duration) (rate, error) {
	dir, err := r.newDir()
	if err != nil {
		return rate{}, err
	}
	defer os.RemoveAll(dir)
	s, err := pebble.Open(dir, pebble.Options{Groups: r.cfg.Groups, WALMinSyncInterval: walInterval})
	if err != nil {
		return rate{}, err
	}
	defer s.Close()
	return drive(ctx, r.shape(writers), r.appendLoop(s, writers, batch))
}

// jsEnv is one embedded server for the whole run.
type jsEnv struct {
	srv *natsembed.Server
	nc  *nats.Conn
	js  natsjs.JetStream
	dir string
}

func startJetStream(dir string, log *slog.Logger) (*jsEnv, error) {
	// The server's warnings (stalls, slow consumers) explain odd numbers;
	// its start-up banner does not.
	srv, err := natsembed.Start(natsembed.Options{Dir: dir, Logger: slog.New(minLevel{log.Handler(), slog.LevelWarn})})
	if err != nil {
		return nil, err
	}
	nc, err := nats.Connect(srv.ClientURL())
	if err != nil {
		srv.Shutdown()
		return nil, err
	}
	js, err := natsjs.New(nc)
	if err == nil {
		// The cells delete their streams when done. After deleting a
		// stream, nats-server removes the account's streams directory in
		// a goroutine if it is empty, and that races with the next cell's
		// stream being created in it ("could not create storage
		// directory"). A stream kept for the whole run keeps the directory
		// from ever being empty.
		_, err = js.CreateStream(context.Background(), natsjs.StreamConfig{
			Name: "keep", Subjects: []string{"keep"}, Storage: natsjs.FileStorage,
		})
	}
	if err != nil {
		nc.Close()
		srv.Shutdown()
		return nil, err
	}
	return &jsEnv{srv: srv, nc: nc, js: js, dir: dir}, nil
}

func (e *jsEnv) close() {
	e.nc.Close()
	e.srv.Shutdown()
}

// rawStreams creates the raw cells' jsStreamsPerJournal streams,
// <prefix>_<i> on <prefix>.<i>.>, allowing atomic batches if atomic, and
// returns what deletes those it created.
func (e *jsEnv) rawStreams(ctx context.Context, prefix string, atomic bool) (remove func(), err error) {
	var names []string
	remove = func() {
		for _, name := range names {
			e.js.DeleteStream(context.Background(), name)
		}
	}
	for i := range jsStreamsPerJournal {
		name := fmt.Sprintf("%s_%d", prefix, i)
		if _, err := e.js.CreateStream(ctx, natsjs.StreamConfig{
			Name: name, Subjects: []string{fmt.Sprintf("%s.%d.>", prefix, i)}, Storage: natsjs.FileStorage,
			AllowAtomicPublish: atomic,
		}); err != nil {
			remove()
			return nil, err
		}
		names = append(names, name)
	}
	return remove, nil
}

// jsStreamsPerJournal matches the journal's default spread of groups.
const jsStreamsPerJournal = 4

// rawJetStream measures synchronous publishes (each writer waits for its
// acknowledgement, so writers = publishes in flight) of the bytes of one
// append, spread over as many streams as the journal uses, with no headers
// and no expected-sequence check.
func (r *journalRun) rawJetStream(ctx context.Context, e *jsEnv, writers, batch int) (rate, error) {
	prefix := fmt.Sprintf("raw%d", r.cell.Add(1))
	remove, err := e.rawStreams(ctx, prefix, false)
	if err != nil {
		return rate{}, err
	}
	defer remove()
	payload := make([]byte, 0, batch*(len(r.payload)+20))
	for range batch {
		payload = append(payload, "pot.BenchEvent"...)
		payload = append(payload, r.payload...)
	}
	return drive(ctx, r.shape(writers), func(ctx context.Context, w int) (int, error) {
		stream := int(writerGroup(w, writers, r.cfg.Groups)) * jsStreamsPerJournal / int(r.cfg.Groups)
		_, err := e.js.Publish(ctx, fmt.Sprintf("%s.%d.%d", prefix, stream, w), payload)
		return batch, err
	})
}

func (r *journalRun) jetStreamJournal(ctx context.Context, e *jsEnv, writers, batch int) (rate, error) {
	return r.jetStreamJournalWith(ctx, e, writers, batch, 0)
}

// jetStreamJournalWith measures the journal with Options.BatchAppendsMax
// batchAppendsMax (0: the default).
func (r *journalRun) jetStreamJournalWith(ctx context.Context, e *jsEnv, writers, batch, batchAppendsMax int) (rate, error) {
	prefix := fmt.Sprintf("j%d", r.cell.Add(1))
	s, err := jetstream.Open(ctx, e.nc, jetstream.Options{Prefix: prefix, Groups: r.cfg.Groups, Streams: jsStreamsPerJournal, BatchAppendsMax: batchAppendsMax})
	if err != nil {
		return rate{}, err
	}
	defer func() {
		s.Close()
		for _, name := range []string{prefix + "_meta", prefix + "_snap"} {
			e.js.DeleteStream(context.Background(), name)
		}
		for i := range jsStreamsPerJournal {
			e.js.DeleteStream(context.Background(), fmt.Sprintf("%s_ev_%d", prefix, i))
		}
	}()
	return drive(ctx, r.shape(writers), r.appendLoop(s, writers, batch))
}

// jetStreamBatches prints the JetStream journal's 1-event appends with
// its appends batched (the default) beside each published on its own
// (BatchAppendsMax 1), and beside raw atomic batches of the same bytes in
// the same shape: as many messages in flight as writers, spread over the
// same streams, each stream's share in as many batches at once as the
// journal commits. Each cell is measured cfg.Repeats times, the three in
// turn.
func (r *journalRun) jetStreamBatches(ctx context.Context, e *jsEnv, out io.Writer) error {
	fmt.Fprintf(out, "\nJetStream journal, 1-event appends: batched (the default) against each append published alone, and against raw atomic batches of the same bytes (%d streams, %d batches in flight per stream):\n\n",
		jsStreamsPerJournal, jsBatchesInFlight)
	fmt.Fprintf(out, "%8s %18s %20s %16s %18s %12s %17s\n", "writers", "batched appends/s", "one-by-one appends/s", "batched/one-by-one", "raw batches msgs/s", "batched/raw", "batched CPU/append")
	for _, w := range r.cfg.Writers {
		var batched, alone, raw []rate
		for range r.cfg.Repeats {
			b, err := r.jetStreamJournalWith(ctx, e, w, 1, 0)
			if err != nil {
				return fmt.Errorf("bench: jetstream batched, %d writers: %w", w, err)
			}
			a, err := r.jetStreamJournalWith(ctx, e, w, 1, 1)
			if err != nil {
				return fmt.Errorf("bench: jetstream one by one, %d writers: %w", w, err)
			}
			rb, err := r.rawJetStreamBatches(ctx, e, w)
			if err != nil {
				return fmt.Errorf("bench: raw atomic batches, %d writers: %w", w, err)
			}
			batched, alone, raw = append(batched, b), append(alone, a), append(raw, rb)
		}
		b, a, rb := medianRate(batched), medianRate(alone), medianRate(raw)
		// A raw op is a batch; its events are its messages.
		fmt.Fprintf(out, "%8d %18.0f %20.0f %16.2f %18.0f %12.2f %17s\n", w, b.appends, a.appends, b.appends/a.appends,
			rb.events, b.appends/rb.events, b.cpuPerOp.Round(time.Microsecond))
		r.log.Info("journal bench batches", "writers", w, "batched", b.appends, "one_by_one", a.appends, "raw_batch_msgs", rb.events)
	}
	return nil
}

// jsBatchesInFlight matches the journal's default batches in flight per
// stream.
const jsBatchesInFlight = 2

// medianRate is the median of rs by events/s; it sorts rs.
func medianRate(rs []rate) rate {
	slices.SortFunc(rs, byEvents)
	return rs[len(rs)/2]
}

// byEvents orders rates by events/s.
func byEvents(a, b rate) int { return cmp.Compare(a.events, b.events) }

// rawJetStreamBatches publishes atomic batches of one message per writer
// with no journal logic: each stream's writers' messages go in
// jsBatchesInFlight batches at once, back to back. Appends/s are messages.
func (r *journalRun) rawJetStreamBatches(ctx context.Context, e *jsEnv, writers int) (rate, error) {
	prefix := fmt.Sprintf("rawb%d", r.cell.Add(1))
	remove, err := e.rawStreams(ctx, prefix, true)
	if err != nil {
		return rate{}, err
	}
	defer remove()
	publishers := jsStreamsPerJournal * jsBatchesInFlight
	size := max(writers/publishers, 1)
	publishers = min(publishers, writers)
	payload := append([]byte("pot.BenchEvent"), r.payload...)
	return drive(ctx, r.shape(publishers), func(ctx context.Context, p int) (int, error) {
		stream := p % jsStreamsPerJournal
		if size == 1 {
			_, err := e.js.Publish(ctx, fmt.Sprintf("%s.%d.%d", prefix, stream, p), payload)
			return 1, err
		}
		id := nuid.Next()
		for i := 1; i <= size; i++ {
			m := nats.NewMsg(fmt.Sprintf("%s.%d.%d.%d", prefix, stream, p, i))
			m.Data = payload
			m.Header.Set("Nats-Batch-Id", id)
			m.Header.Set("Nats-Batch-Sequence", strconv.Itoa(i))
			if i < size {
				if err := e.nc.PublishMsg(m); err != nil {
					return 0, err
				}
				continue
			}
			m.Header.Set("Nats-Batch-Commit", "1")
			resp, err := e.nc.RequestMsgWithContext(ctx, m)
			if err != nil {
				return 0, err
			}
			var ack struct {
				Error *natsjs.APIError `json:"error"`
				Count int              `json:"count"`
			}
			if err := json.Unmarshal(resp.Data, &ack); err != nil {
				return 0, err
			}
			if ack.Error != nil {
				return 0, ack.Error
			}
			if ack.Count != size {
				return 0, fmt.Errorf("batch of %d acknowledged as %d", size, ack.Count)
			}
		}
		return size, nil
	})
}

type readBackResult struct {
	events        int
	load          time.Duration
	first, median time.Duration
	bytesPerEvent float64
}

// readBackWriters load the streams; enough to keep either backend's group
// commit busy.
const readBackWriters = 256

// readBack loads cfg.ReadStreams streams of one event and one stream of
// cfg.ReadEvents events appended 10 at a time spread over the load, then
// reopens the journal (cold caches) and times reads of that stream.
func (r *journalRun) readBack(ctx context.Context, e *jsEnv, backend string) (readBackResult, error) {
	var (
		open    func() (persistence.Journal, error)
		diskDir string
		cleanup func()
	)
	switch backend {
	case BackendPebble:
		dir, err := r.newDir()
		if err != nil {
			return readBackResult{}, err
		}
		diskDir, cleanup = dir, func() { os.RemoveAll(dir) }
		open = func() (persistence.Journal, error) {
			return pebble.Open(dir, pebble.Options{Groups: r.cfg.Groups})
		}
	case BackendJetStream:
		prefix := fmt.Sprintf("rb%d", r.cell.Add(1))
		diskDir, cleanup = e.dir, func() {
			for _, name := range []string{prefix + "_meta", prefix + "_snap"} {
				e.js.DeleteStream(context.Background(), name)
			}
			for i := range jsStreamsPerJournal {
				e.js.DeleteStream(context.Background(), fmt.Sprintf("%s_ev_%d", prefix, i))
			}
		}
		open = func() (persistence.Journal, error) {
			return jetstream.Open(ctx, e.nc, jetstream.Options{Prefix: prefix, Groups: r.cfg.Groups, Streams: jsStreamsPerJournal})
		}
	}
	defer cleanup()
	before, err := dirBytes(diskDir)
	if err != nil {
		return readBackResult{}, err
	}
	j, err := open()
	if err != nil {
		return readBackResult{}, err
	}
	const target = "pot/read-back"
	evs := r.writerEvents(1)
	tenEvents := r.writerEvents(10)
	every := max(1, r.cfg.ReadStreams/(r.cfg.ReadEvents/10+1))
	var (
		next, loaded atomic.Int64
		targetMu     sync.Mutex
		targetV      uint64
		wg           sync.WaitGroup
		errOnce      sync.Once
		firstErr     error
	)
	start := time.Now()
	lctx, cancel := context.WithCancel(ctx)
	defer cancel()
	for range readBackWriters {
		wg.Go(func() {
			for lctx.Err() == nil {
				i := int(next.Add(1)) - 1
				if i >= r.cfg.ReadStreams {
					return
				}
				_, err := j.Append(lctx, persistence.AppendRequest{Stream: fmt.Sprintf("pot/rb-%07d", i), Group: uint32(i) % r.cfg.Groups, Events: evs})
				if err == nil && i%every == every-1 {
					targetMu.Lock()
					if targetV < uint64(r.cfg.ReadEvents) {
						var v uint64
						if v, err = j.Append(lctx, persistence.AppendRequest{Stream: target, Group: 0, ExpectedVersion: targetV, Events: tenEvents[:min(10, r.cfg.ReadEvents-int(targetV))]}); err == nil {
							targetV = v
						}
					}
					targetMu.Unlock()
				}
				if err != nil {
					errOnce.Do(func() { firstErr = err; cancel() })
					return
				}
				if n := loaded.Add(1); n%100_000 == 0 {
					r.log.Info("read-back load", "backend", backend, "streams", n)
				}
			}
		})
	}
	wg.Wait()
	if firstErr != nil {
		j.Close()
		return readBackResult{}, firstErr
	}
	for targetV < uint64(r.cfg.ReadEvents) {
		v, err := j.Append(ctx, persistence.AppendRequest{Stream: target, Group: 0, ExpectedVersion: targetV, Events: tenEvents[:min(10, r.cfg.ReadEvents-int(targetV))]})
		if err != nil {
			j.Close()
			return readBackResult{}, err
		}
		targetV = v
	}
	res := readBackResult{events: r.cfg.ReadStreams + r.cfg.ReadEvents, load: time.Since(start)}
	if err := j.Close(); err != nil {
		return readBackResult{}, err
	}
	after, err := dirBytes(diskDir)
	if err != nil {
		return readBackResult{}, err
	}
	res.bytesPerEvent = float64(after-before) / float64(res.events)

	// Reopen: the journal's caches are cold (the operating system's page
	// cache is not).
	if j, err = open(); err != nil {
		return readBackResult{}, err
	}
	defer j.Close()
	const reads = 101
	times := make([]time.Duration, 0, reads)
	for i := range reads {
		t0 := time.Now()
		got, err := j.Read(ctx, target, 1, 0)
		d := time.Since(t0)
		if err != nil {
			return readBackResult{}, err
		}
		if len(got) != r.cfg.ReadEvents {
			return readBackResult{}, fmt.Errorf("read %d events of %s, want %d", len(got), target, r.cfg.ReadEvents)
		}
		if i == 0 {
			res.first = d
		}
		times = append(times, d)
	}
	sort.Slice(times, func(a, b int) bool { return times[a] < times[b] })
	res.median = times[len(times)/2]
	return res, nil
}

// dirBytes is the size of the files under dir.
func dirBytes(dir string) (int64, error) {
	var n int64
	err := filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			if errors.Is(err, fs.ErrNotExist) {
				return nil // removed while walking (compactions, WAL recycling)
			}
			return err
		}
		if d.Type().IsRegular() {
			if info, err := d.Info(); err == nil {
				n += info.Size()
			}
		}
		return nil
	})
	return n, err
}

// minLevel drops records below a level.
type minLevel struct {
	slog.Handler
	level slog.Level
}

func (h minLevel) Enabled(ctx context.Context, l slog.Level) bool {
	return l >= h.level && h.Handler.Enabled(ctx, l)
}

func (h minLevel) WithAttrs(attrs []slog.Attr) slog.Handler {
	return minLevel{h.Handler.WithAttrs(attrs), h.level}
}

func (h minLevel) WithGroup(name string) slog.Handler {
	return minLevel{h.Handler.WithGroup(name), h.level}
}
