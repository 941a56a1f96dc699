// Package jetstream is the journal on NATS JetStream, for several nodes
// sharing one journal.
//
// Layout. Groups are spread over Options.Streams JetStream streams in
// contiguous ranges; stream i holds the subjects
//
//	<prefix>.ev.<i>.<group>.<stream>   one message per append
//
// and is named <prefix>_ev_<i>. A directory, <prefix>_dir, holds one
// message per stream on <prefix>.dir.<stream> naming its group, written once
// (create-if-absent) before the stream's first append: a reader that does
// not know a stream's group finds it with one lookup (Read has no group
// argument, and a wildcard lookup over a million subjects took ~100ms), and
// a stream cannot be created in two groups. Snapshots live in
// <prefix>_snap, one message per stream on <prefix>.snap.<stream>
// (MaxMsgsPerSubject 1), and the journal's configuration (groups, streams)
// in <prefix>_meta. Every stream uses file storage and AllowDirect; the
// server must run with SyncAlways (sync_interval: always), as
// internal/natsembed does.
//
// Reads: a direct get may be answered by any replica of a replicated
// stream, and a follower can lag the leader by the last few appends. Where
// that would be wrong (the head an append is checked against, the
// directory when registering, snapshots) the store asks the leader
// (STREAM.MSG.GET); Read asks again while the answer is older than what
// this store has already seen; the feed only ever sees a prefix.
//
// Atomicity: an append is one message holding all its events, so it is
// stored whole or not at all, with one fsync.
//
// Version check: each append carries Nats-Expected-Last-Subject-Sequence,
// the JetStream sequence of the stream's last append (0 for a new stream),
// which the server compares with the subject's last sequence before storing.
// A mismatch is error 10071 (JSStreamWrongLastSequenceErrF), or on a
// replicated stream possibly 10164 (JSStreamWrongLastSequenceConstantErr:
// another append to the subject is still in the Raft pipeline); both are
// ErrVersionConflict. The store caches each stream's last (version,
// sequence) so that an append usually needs no lookup; a stale entry only
// makes the server refuse, which is reported as the conflict it is.
//
// Feed: a group's feed is its subjects in sequence order, read with batch
// direct gets filtered by <prefix>.ev.<i>.<group>.*. A message holds up to
// 1024 events, so an event's position is seq×1024 + its index in the
// message: positions strictly increase and a consumer can resume in the
// middle of an append.
package jetstream

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/acme/mastertrust/internal/natsstream"
	"github.com/acme/mastertrust/internal/pause"
	"github.com/acme/mastertrust/persistence"
)

// JetStream's error codes for a failed expected-last-subject-sequence check.
const (
	errCodeWrongLastSequence         jetstream.ErrorCode = 10071 // single server, or the leader's check
	errCodeWrongLastSequenceConstant jetstream.ErrorCode = 10164 // replicated: an append to the subject is in flight
)

// eventIndexBits is how many low bits of a position index an event within
// its message.
const eventIndexBits = 10

// Every event index of an append must fit in eventIndexBits.
const _ = uint(1<<eventIndexBits - persistence.AppendEventsMax)

const (
	// feedBatchMsgsMax bounds the messages of one direct get batch; the
	// server sends them in one go, so this bounds a read's memory together
	// with directGetBytesMax.
	feedBatchMsgsMax = 256
	// snapshotSaveAttemptsMax bounds the compare-and-set loop of
	// SaveSnapshot; each failed attempt means another writer saved in
	// between, so a handful suffices.
	snapshotSaveAttemptsMax = 8
	// layoutVersion is stored at creation; another layout is refused.
	layoutVersion = 1
)

// Store is a persistence.Journal on NATS JetStream. Several Stores (on
// several nodes) may share one journal.
type Store struct {
	nc       *nats.Conn
	js       jetstream.JetStream
	prefix   string
	groups   uint32
	streams  int
	log      *slog.Logger
	timeout  requestTimeout
	heads    *headCache
	snapName string
	dirName  string

	// batchers commit the appends of each JetStream stream in atomic
	// batches (batch.go); nil when Options.BatchAppendsMax is 1.
	batchers []*batcher

	// mu is read-held by every operation and write-held by Close, so that
	// Close waits for operations in flight and later ones see closed.
	mu     sync.RWMutex
	closed bool // guarded by mu
}

var _ persistence.Journal = (*Store)(nil)

type config struct {
	Layout  int    `json:"layout"`
	Groups  uint32 `json:"groups"`
	Streams int    `json:"streams"`
}

// Open opens the journal named by opts.Prefix on nc's account, creating its
// JetStream streams if they do not exist. The caller keeps nc: Close does
// not close it.
func Open(ctx context.Context, nc *nats.Conn, opts Options) (*Store, error) {
	opts.EnsureDefaults()
	if err := opts.Validate(); err != nil {
		return nil, err
	}
	if mp := nc.MaxPayload(); mp < appendMessageBytesMax {
		return nil, fmt.Errorf("jetstream journal: the server's max_payload is %d bytes; an append needs up to %d (set max_payload: 8MB on every NATS server; docs/operations.md)", mp, appendMessageBytesMax)
	}
	js, err := jetstream.New(nc)
	if err != nil {
		return nil, fmt.Errorf("jetstream journal: %w", err)
	}
	s := &Store{
		nc:       nc,
		js:       js,
		prefix:   opts.Prefix,
		log:      opts.Logger,
		timeout:  requestTimeout(opts.RequestTimeout),
		heads:    newHeadCache(opts.HeadCacheEntries),
		snapName: opts.Prefix + "_snap",
		dirName:  opts.Prefix + "_dir",
	}
	ctx, cancel := s.timeout.apply(ctx)
	defer cancel()
	meta := jetstream.StreamConfig{
		Name:              opts.Prefix + "_meta",
		Subjects:          []string{opts.Prefix + ".meta.>"},
		Storage:           jetstream.FileStorage,
		Replicas:          opts.Replicas,
		MaxMsgsPerSubject: 1,
		AllowDirect:       true,
	}
	if err := ensureStream(ctx, js, s.log, meta); err != nil {
		return nil, err
	}
	cfg, err := loadOrCreateConfig(ctx, js, nc, meta.Name, opts)
	if err != nil {
		return nil, err
	}
	s.groups, s.streams = cfg.Groups, cfg.Streams
	for i := range s.streams {
		if err := ensureStream(ctx, js, s.log, jetstream.StreamConfig{
			Name:        s.eventStreamName(i),
			Subjects:    []string{fmt.Sprintf("%s.ev.%d.>", s.prefix, i)},
			Storage:     jetstream.FileStorage,
			Replicas:    opts.Replicas,
			AllowDirect: true,
			// The journal is append-only.
			DenyDelete: true,
			DenyPurge:  true,
			// Appends are committed in atomic batches (batch.go).
			AllowAtomicPublish: true,
		}); err != nil {
			return nil, err
		}
	}
	if opts.BatchAppendsMax > 1 {
		for i := range s.streams {
			s.batchers = append(s.batchers, newBatcher(s, s.eventStreamName(i), opts.BatchAppendsMin, opts.BatchAppendsMax, opts.BatchesInFlight))
		}
	}
	if err := ensureStream(ctx, js, s.log, jetstream.StreamConfig{
		Name:              s.dirName,
		Subjects:          []string{s.prefix + ".dir.>"},
		Storage:           jetstream.FileStorage,
		Replicas:          opts.Replicas,
		MaxMsgsPerSubject: 1,
		AllowDirect:       true,
		DenyDelete:        true,
		DenyPurge:         true,
	}); err != nil {
		return nil, err
	}
	if err := ensureStream(ctx, js, s.log, jetstream.StreamConfig{
		Name:              s.snapName,
		Subjects:          []string{s.prefix + ".snap.>"},
		Storage:           jetstream.FileStorage,
		Replicas:          opts.Replicas,
		MaxMsgsPerSubject: 1,
		AllowDirect:       true,
	}); err != nil {
		return nil, err
	}
	s.log.Debug("jetstream journal opened", "prefix", s.prefix, "groups", s.groups, "streams", s.streams)
	return s, nil
}

// ensureStream creates a JetStream stream, or checks that the existing one
// has the subjects, storage and direct access the journal relies on. It
// never changes an existing stream: that is an operator's decision. Nodes
// opening a new journal together create its streams concurrently:
// natsstream.Ensure makes each end up with the stream.
func ensureStream(ctx context.Context, js jetstream.JetStream, log *slog.Logger, cfg jetstream.StreamConfig) error {
	st, err := natsstream.Ensure(ctx, js, cfg, false)
	if err != nil {
		return fmt.Errorf("jetstream journal: %w", err)
	}
	have := st.CachedInfo().Config
	// An unset limit is 0 in a request and -1 in the server's answer.
	limit := func(n int64) int64 {
		if n <= 0 {
			return -1
		}
		return n
	}
	if strings.Join(have.Subjects, ",") != strings.Join(cfg.Subjects, ",") || have.Storage != jetstream.FileStorage ||
		!have.AllowDirect || limit(have.MaxMsgsPerSubject) != limit(cfg.MaxMsgsPerSubject) {
		return fmt.Errorf("jetstream journal: stream %s exists with subjects %v, storage %v, allow direct %v, max msgs per subject %d; want %v, file, true, %d",
			cfg.Name, have.Subjects, have.Storage, have.AllowDirect, have.MaxMsgsPerSubject, cfg.Subjects, cfg.MaxMsgsPerSubject)
	}
	if cfg.AllowAtomicPublish && !have.AllowAtomicPublish {
		// A journal created before appends were batched. Allowing atomic
		// batches changes nothing stored and nothing a reader sees.
		have.AllowAtomicPublish = true
		if st, err = natsstream.Ensure(ctx, js, have, true); err != nil {
			return fmt.Errorf("jetstream journal: allowing atomic batches on %s: %w", cfg.Name, err)
		}
		log.Info("jetstream journal: allowed atomic batch publishing on an existing stream", "stream", cfg.Name)
	}
	if have.Replicas != max(cfg.Replicas, 1) {
		// Not an error: the stream works, and changing its replicas is
		// the operator's move (docs/operations.md). But a journal asked
		// for 3 replicas and running on 1 loses acknowledged appends with
		// one server's disk, so say it at every start.
		log.Warn("jetstream journal: a stream has other replicas than configured; the journal does not change an existing stream",
			"stream", cfg.Name, "replicas", have.Replicas, "configured", cfg.Replicas)
	}
	return waitForLeader(ctx, st, cfg.Replicas)
}

// waitForLeader polls a replicated stream until it has a leader: a new
// stream's Raft group elects one a moment after the stream is created, and
// the journal's first read or write would otherwise find no one to answer.
func waitForLeader(ctx context.Context, st jetstream.Stream, replicas int) error {
	if replicas <= 1 {
		return nil
	}
	wait := readRetryWaitMin
	for {
		// Each ask bounded: one sent to a leader that has just changed
		// gets no answer at all.
		attempt, cancel := context.WithTimeout(ctx, configAttemptTimeout)
		info, err := st.Info(attempt)
		cancel()
		if err == nil && info.Cluster != nil && info.Cluster.Leader != "" {
			return nil
		}
		if perr := pause.For(ctx, wait); perr != nil {
			return fmt.Errorf("jetstream journal: stream %s has no leader: %w (last error: %v)", st.CachedInfo().Config.Name, perr, err)
		}
		wait = min(2*wait, readRetryWaitMax)
	}
}

// configAttemptTimeout bounds one read or write of the journal's
// configuration while it is opened. A new replicated stream's leader can
// change just after its election, and a request to the old one gets no
// answer at all: it is asked again rather than waited for until the
// caller's deadline.
const configAttemptTimeout = 2 * time.Second

func loadOrCreateConfig(ctx context.Context, js jetstream.JetStream, nc *nats.Conn, metaStream string, opts Options) (config, error) {
	subject := opts.Prefix + ".meta.config"
	wait := readRetryWaitMin
	backoff := func() error {
		t := time.NewTimer(wait)
		defer t.Stop()
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-t.C:
		}
		wait = min(2*wait, readRetryWaitMax)
		return nil
	}
	// unanswered: err is an attempt's own timeout, with time left.
	unanswered := func(err error) bool { return errors.Is(err, context.DeadlineExceeded) && ctx.Err() == nil }
	for {
		actx, cancel := context.WithTimeout(ctx, configAttemptTimeout)
		m, err := leaderLast(actx, nc, metaStream, subject)
		cancel()
		if unanswered(err) {
			if err := backoff(); err != nil {
				return config{}, fmt.Errorf("jetstream journal: config: %w", err)
			}
			continue
		}
		if err == nil {
			var c config
			if err := json.Unmarshal(m.data, &c); err != nil {
				return config{}, fmt.Errorf("jetstream journal: config: %w", err)
			}
			switch {
			case c.Layout != layoutVersion:
				return config{}, fmt.Errorf("jetstream journal: layout %d, this build reads %d", c.Layout, layoutVersion)
			case opts.Groups != 0 && opts.Groups != c.Groups:
				return config{}, fmt.Errorf("jetstream journal: created with %d groups, not %d", c.Groups, opts.Groups)
			case opts.Streams != 0 && opts.Streams != c.Streams:
				return config{}, fmt.Errorf("jetstream journal: created with %d streams, not %d", c.Streams, opts.Streams)
			case c.Groups == 0 || c.Groups > persistence.GroupsMax || c.Streams < 1 || c.Streams > int(c.Groups):
				return config{}, fmt.Errorf("jetstream journal: stored config %+v out of range", c)
			}
			return c, nil
		}
		if !errors.Is(err, errNotFound) {
			return config{}, fmt.Errorf("jetstream journal: config: %w", err)
		}
		c := config{Layout: layoutVersion, Groups: opts.Groups, Streams: opts.Streams}
		if c.Groups == 0 {
			c.Groups = DefaultGroups
		}
		if c.Streams == 0 {
			c.Streams = min(int(c.Groups), streamsDefault)
		}
		if c.Streams > int(c.Groups) {
			return config{}, fmt.Errorf("jetstream journal: streams %d exceed groups %d", c.Streams, c.Groups)
		}
		data, err := json.Marshal(c)
		if err != nil {
			return config{}, err
		}
		msg := nats.NewMsg(subject)
		msg.Header.Set(hdrExpectedLastSubjSeq, "0")
		msg.Data = data
		// Nodes creating the journal at once: one wins, the others read
		// the winner's config on a later turn. On a replicated stream the
		// winner's message may still be in the Raft pipeline (10164):
		// refused, yet not visible for a moment, so wait and look again
		// (as register does), until ctx ends.
		// A write that times out may have been stored: the next turn
		// reads it, or writes again (at expected sequence 0, harmless).
		actx, cancel = context.WithTimeout(ctx, configAttemptTimeout)
		_, err = js.PublishMsg(actx, msg)
		cancel()
		switch {
		case err == nil:
			continue
		case !isWrongLastSequence(err) && !unanswered(err):
			return config{}, fmt.Errorf("jetstream journal: store config: %w", err)
		}
		if err := backoff(); err != nil {
			return config{}, fmt.Errorf("jetstream journal: config stored by another node is not visible: %w", err)
		}
	}
}

func (s *Store) eventStreamName(i int) string { return fmt.Sprintf("%s_ev_%d", s.prefix, i) }

// streamIndex is the JetStream stream holding group's subjects.
func (s *Store) streamIndex(group uint32) int {
	return int(uint64(group) * uint64(s.streams) / uint64(s.groups))
}

func (s *Store) eventSubject(group uint32, stream string) string {
	return fmt.Sprintf("%s.ev.%d.%d.%s", s.prefix, s.streamIndex(group), group, stream)
}

// groupFilter matches every subject of group.
func (s *Store) groupFilter(group uint32) string {
	return fmt.Sprintf("%s.ev.%d.%d.*", s.prefix, s.streamIndex(group), group)
}

func (s *Store) snapSubject(stream string) string { return s.prefix + ".snap." + stream }

func (s *Store) dirSubject(stream string) string { return s.prefix + ".dir." + stream }

// Groups implements persistence.Journal.
func (s *Store) Groups() uint32 { return s.groups }

// isWrongLastSequence reports whether err is a refused expected last
// subject sequence: the server's error, or a batched append found
// overtaken (errWrongLastSequence, batch.go).
func isWrongLastSequence(err error) bool {
	if errors.Is(err, errWrongLastSequence) {
		return true
	}
	var apiErr *jetstream.APIError
	return errors.As(err, &apiErr) &&
		(apiErr.ErrorCode == errCodeWrongLastSequence || apiErr.ErrorCode == errCodeWrongLastSequenceConstant)
}

// usable reports why the store cannot serve an operation; s.mu must be
// read-held.
func (s *Store) usable(ctx context.Context) error {
	if s.closed {
		return persistence.ErrClosed
	}
	return ctx.Err()
}

// Append implements persistence.Journal.
func (s *Store) Append(ctx context.Context, req persistence.AppendRequest) (uint64, error) {
	const op = "append"
	if err := req.Validate(s.groups); err != nil {
		return 0, err
	}
	fail := func(err error) (uint64, error) {
		return 0, &persistence.Error{Op: op, Stream: req.Stream, Group: req.Group, ExpectedVersion: req.ExpectedVersion, Err: err}
	}
	conflict := func(actual uint64) (uint64, error) {
		return 0, &persistence.Error{Op: op, Stream: req.Stream, Group: req.Group, ExpectedVersion: req.ExpectedVersion,
			ActualVersion: actual, Err: persistence.ErrVersionConflict}
	}
	conflictUnknown := func(why error) (uint64, error) {
		return 0, &persistence.Error{Op: op, Stream: req.Stream, Group: req.Group, ExpectedVersion: req.ExpectedVersion,
			ActualUnknown: why, Err: persistence.ErrVersionConflict}
	}
	s.mu.RLock()
	defer s.mu.RUnlock()
	if err := s.usable(ctx); err != nil {
		return fail(err)
	}
	ctx, cancel := s.timeout.apply(ctx)
	defer cancel()

	// A cached head is a registered stream (version ≥ 1).
	h, registered := s.heads.get(req.Stream)
	if !registered && req.ExpectedVersion == 0 {
		// Creating a stream, most likely: register it without looking it
		// up first. If it exists, register says whether in this group, and
		// the append below fails its expected sequence 0 as a conflict.
		if err := s.register(ctx, req.Stream, req.Group); err != nil {
			return fail(err)
		}
		h, registered = head{group: req.Group}, true
	} else if !registered || h.version != req.ExpectedVersion || h.group != req.Group {
		var err error
		if h, registered, err = s.lookupHead(ctx, req.Stream, req.Group); err != nil {
			return fail(err)
		}
	}
	if registered && h.group != req.Group {
		return fail(fmt.Errorf("%w: stream is in group %d", persistence.ErrInvalid, h.group))
	}
	if h.version != req.ExpectedVersion {
		return conflict(h.version)
	}
	if !registered {
		if err := s.register(ctx, req.Stream, req.Group); err != nil {
			return fail(err)
		}
	}
	newVersion := req.ExpectedVersion + uint64(len(req.Events))
	seq, err := s.publish(ctx, req.Group, s.appendMessage(req, h.seq), h.seq)
	if err != nil {
		s.heads.drop(req.Stream)
		if isWrongLastSequence(err) {
			// Someone appended since the head was read. Say to what
			// version, if a lookup can tell; if it cannot, say so rather
			// than name a version (the expected one, once: "expected 204,
			// stream is at 204").
			lh, _, lerr := s.lookupHead(ctx, req.Stream, req.Group)
			switch {
			case lerr != nil:
				return conflictUnknown(lerr)
			case lh.version == req.ExpectedVersion:
				// On a replicated stream the other append may still be
				// in the Raft pipeline (10164), not yet on the leader.
				return conflictUnknown(errors.New("the competing append is not visible yet"))
			}
			return conflict(lh.version)
		}
		// No acknowledgement: the message may or may not be stored.
		return fail(err)
	}
	s.heads.put(req.Stream, head{group: req.Group, version: newVersion, seq: seq})
	return newVersion, nil
}

// appendMessage is req's message, expecting its subject's last sequence
// to be lastSeq.
func (s *Store) appendMessage(req persistence.AppendRequest, lastSeq uint64) *nats.Msg {
	msg := nats.NewMsg(s.eventSubject(req.Group, req.Stream))
	msg.Header.Set(hdrExpectedLastSubjSeq, strconv.FormatUint(lastSeq, 10))
	msg.Header.Set(hdrVersion, strconv.FormatUint(req.ExpectedVersion+uint64(len(req.Events)), 10))
	msg.Header.Set(hdrCount, strconv.Itoa(len(req.Events)))
	msg.Data = encodeEvents(req.Events)
	return msg
}

// publish stores an append's message, which expects its subject's last
// sequence to be expected, and returns its sequence: in the group's
// stream's next atomic batch, or on its own.
func (s *Store) publish(ctx context.Context, group uint32, msg *nats.Msg, expected uint64) (uint64, error) {
	if s.batchers != nil {
		return s.batchers[s.streamIndex(group)].submit(ctx, msg, expected)
	}
	ack, err := s.publishDurably(ctx, msg)
	if err != nil {
		return 0, err
	}
	return ack.Sequence, nil
}

// lookupHead asks the stream leaders for a stream's last append, on the
// subject of the group the caller named. Without one, it looks the stream up
// in the directory: registered then tells whether the stream exists, and
// head.group its group (head.version is 0: the caller named another group,
// or the first append was lost). It fills the head cache.
func (s *Store) lookupHead(ctx context.Context, stream string, group uint32) (h head, registered bool, err error) {
	m, err := leaderLast(ctx, s.nc, s.eventStreamName(s.streamIndex(group)), s.eventSubject(group, stream))
	if err == nil {
		if h, err = headOf(m, group); err != nil {
			return head{}, false, err
		}
		s.heads.put(stream, h)
		return h, true, nil
	}
	if !errors.Is(err, errNotFound) {
		return head{}, false, err
	}
	g, found, err := s.dirGroup(ctx, stream, leaderLast)
	if err != nil || !found {
		return head{group: group}, false, err
	}
	return head{group: g}, true, nil
}

// dirGroup reads a stream's group from the directory.
func (s *Store) dirGroup(ctx context.Context, stream string, get lastGetter) (group uint32, found bool, err error) {
	m, err := get(ctx, s.nc, s.dirName, s.dirSubject(stream))
	if errors.Is(err, errNotFound) {
		return 0, false, nil
	}
	if err != nil {
		return 0, false, err
	}
	g, err := strconv.ParseUint(m.header.Get(hdrGroup), 10, 32)
	if err != nil || uint32(g) >= s.groups {
		return 0, false, fmt.Errorf("%w: directory entry of %s has group %q", errCorrupt, stream, m.header.Get(hdrGroup))
	}
	return uint32(g), true, nil
}

// register writes a new stream's directory entry, once: the expected last
// sequence 0 makes it a create-if-absent across every group, so a stream
// cannot be created in two groups, even by two nodes at once.
func (s *Store) register(ctx context.Context, stream string, group uint32) error {
	wait := readRetryWaitMin
	for {
		msg := nats.NewMsg(s.dirSubject(stream))
		msg.Header.Set(hdrExpectedLastSubjSeq, "0")
		msg.Header.Set(hdrGroup, strconv.FormatUint(uint64(group), 10))
		_, err := s.js.PublishMsg(ctx, msg)
		if err == nil {
			return nil
		}
		if !isWrongLastSequence(err) {
			return err
		}
		// Registered by a concurrent creator: fine if in this group (the
		// appends then race on the stream's subject). On a replicated
		// stream the other entry may still be in the Raft pipeline (error
		// 10164), neither visible nor certain: look until it shows, or
		// try again if it failed.
		g, found, err := s.dirGroup(ctx, stream, leaderLast)
		switch {
		case err != nil:
			return err
		case found && g != group:
			return fmt.Errorf("%w: stream is in group %d", persistence.ErrInvalid, g)
		case found:
			return nil
		}
		if err := pause.For(ctx, wait); err != nil {
			return fmt.Errorf("registering %s: %w", stream, err)
		}
		wait = min(2*wait, readRetryWaitMax)
	}
}

// lastGetter is leaderLast or directLast.
type lastGetter func(ctx context.Context, nc *nats.Conn, stream, subject string) (storedMsg, error)

func headOf(m storedMsg, group uint32) (head, error) {
	last, _, err := versionHeaders(m.header)
	if err != nil {
		return head{}, err
	}
	return head{group: group, version: last, seq: m.seq}, nil
}

// Read implements persistence.Journal.
func (s *Store) Read(ctx context.Context, stream string, fromVersion uint64, limit int) ([]persistence.Event, error) {
	const op = "read"
	if err := persistence.ValidateStream(op, stream); err != nil {
		return nil, err
	}
	fail := func(err error) ([]persistence.Event, error) {
		return nil, &persistence.Error{Op: op, Stream: stream, Err: err}
	}
	s.mu.RLock()
	defer s.mu.RUnlock()
	if err := s.usable(ctx); err != nil {
		return fail(err)
	}
	ctx, cancel := s.timeout.apply(ctx)
	defer cancel()
	if fromVersion == 0 {
		fromVersion = 1
	}
	if limit <= 0 {
		limit = math.MaxInt
	}
	// A stream's group never changes, so a cached one is always right; its
	// cached version may be old (another node appended), so it only tells
	// where to start.
	h, ok := s.heads.get(stream)
	start := uint64(1)
	if !ok {
		g, found, err := s.dirGroup(ctx, stream, directLast)
		if err != nil {
			return fail(err)
		}
		if !found {
			return nil, nil
		}
		h = head{group: g}
	} else if fromVersion > h.version {
		// Every message up to h.seq ends at or below h.version.
		start = h.seq + 1
	}
	// This store has seen the stream at version h.version (if ok): an
	// answer that ends earlier came from a replica that lags the leader,
	// so ask again (another replica may answer) until it catches up.
	want := uint64(0)
	if ok {
		want = h.version
	}
	wait := readRetryWaitMin
	for {
		out, err := s.readOnce(ctx, stream, h.group, start, fromVersion, limit)
		if err != nil {
			return fail(err)
		}
		if len(out) == limit || fromVersion-1+uint64(len(out)) >= want {
			return out, nil
		}
		if err := pause.For(ctx, wait); err != nil {
			return fail(fmt.Errorf("replicas still behind version %d: %w", want, err))
		}
		wait = min(2*wait, readRetryWaitMax)
	}
}

// Waits between reads of a lagging replica: a follower applies an append
// within a few milliseconds of the leader.
const (
	readRetryWaitMin = time.Millisecond
	readRetryWaitMax = 50 * time.Millisecond
)

// readOnce reads a stream's events from version fromVersion, scanning its
// messages from JetStream sequence start.
func (s *Store) readOnce(ctx context.Context, stream string, group uint32, start, fromVersion uint64, limit int) ([]persistence.Event, error) {
	jsStream := s.eventStreamName(s.streamIndex(group))
	subject := s.eventSubject(group, stream)
	var out []persistence.Event
	for {
		msgs, more, err := directBatch(ctx, s.nc, jsStream, subject, start, feedBatchMsgsMax)
		if err != nil {
			return nil, err
		}
		for _, m := range msgs {
			last, count, err := versionHeaders(m.header)
			if err != nil {
				return nil, err
			}
			first := last - uint64(count) + 1
			if last < fromVersion {
				continue
			}
			if want := fromVersion + uint64(len(out)); len(out) > 0 && first != want || len(out) == 0 && first > fromVersion {
				return nil, fmt.Errorf("%w: %s append at versions %d..%d where %d was due", errCorrupt, stream, first, last, want)
			}
			evs, err := decodeEvents(m.data, count)
			if err != nil {
				return nil, err
			}
			for k, e := range evs {
				v := first + uint64(k)
				if v < fromVersion {
					continue
				}
				out = append(out, persistence.Event{Stream: stream, Version: v, Group: group, Type: e.typ, Time: m.time, Data: e.data})
				if len(out) == limit {
					return out, nil
				}
			}
		}
		if !more || len(msgs) == 0 {
			if len(msgs) > 0 {
				m := msgs[len(msgs)-1]
				if last, _, err := versionHeaders(m.header); err == nil {
					s.heads.putIfNewer(stream, head{group: group, version: last, seq: m.seq})
				}
			}
			return out, nil
		}
		start = msgs[len(msgs)-1].seq + 1
	}
}

// ReadFeed implements persistence.Journal.
func (s *Store) ReadFeed(ctx context.Context, group uint32, after uint64, limit int) ([]persistence.FeedEvent, error) {
	const op = "read feed"
	if err := persistence.ValidateFeed(group, s.groups, limit); err != nil {
		return nil, err
	}
	fail := func(err error) ([]persistence.FeedEvent, error) {
		return nil, &persistence.Error{Op: op, Group: group, Err: err}
	}
	s.mu.RLock()
	defer s.mu.RUnlock()
	if err := s.usable(ctx); err != nil {
		return fail(err)
	}
	ctx, cancel := s.timeout.apply(ctx)
	defer cancel()
	// Resume inside the message holding position after, skipping the
	// events at or before it.
	start := max(after>>eventIndexBits, 1)
	jsStream := s.eventStreamName(s.streamIndex(group))
	filter := s.groupFilter(group)
	prefix := fmt.Sprintf("%s.ev.%d.%d.", s.prefix, s.streamIndex(group), group)
	var out []persistence.FeedEvent
	for {
		msgs, more, err := directBatch(ctx, s.nc, jsStream, filter, start, min(limit, feedBatchMsgsMax))
		if err != nil {
			return fail(err)
		}
		for _, m := range msgs {
			stream, ok := strings.CutPrefix(m.subject, prefix)
			if !ok {
				return fail(fmt.Errorf("%w: subject %q in group %d's feed", errCorrupt, m.subject, group))
			}
			last, count, err := versionHeaders(m.header)
			if err != nil {
				return fail(err)
			}
			evs, err := decodeEvents(m.data, count)
			if err != nil {
				return fail(err)
			}
			first := last - uint64(count) + 1
			for k, e := range evs {
				pos := m.seq<<eventIndexBits | uint64(k)
				if pos <= after {
					continue
				}
				out = append(out, persistence.FeedEvent{Position: pos, Event: persistence.Event{
					Stream: stream, Version: first + uint64(k), Group: group, Type: e.typ, Time: m.time, Data: e.data}})
				if len(out) == limit {
					return out, nil
				}
			}
		}
		if !more || len(msgs) == 0 {
			return out, nil
		}
		start = msgs[len(msgs)-1].seq + 1
	}
}

// SaveSnapshot implements persistence.Journal: a compare-and-set on the
// stream's snapshot subject, so that an older snapshot never replaces a
// newer one even when two nodes save at once.
func (s *Store) SaveSnapshot(ctx context.Context, snap persistence.Snapshot) error {
	const op = "save snapshot"
	if err := snap.Validate(); err != nil {
		return err
	}
	fail := func(err error) error {
		return &persistence.Error{Op: op, Stream: snap.Stream, Err: err}
	}
	s.mu.RLock()
	defer s.mu.RUnlock()
	if err := s.usable(ctx); err != nil {
		return fail(err)
	}
	ctx, cancel := s.timeout.apply(ctx)
	defer cancel()
	subject := s.snapSubject(snap.Stream)
	for range snapshotSaveAttemptsMax {
		var seq uint64
		m, err := leaderLast(ctx, s.nc, s.snapName, subject)
		switch {
		case err == nil:
			stored, err := strconv.ParseUint(m.header.Get(hdrVersion), 10, 64)
			if err != nil {
				return fail(fmt.Errorf("%w: snapshot version %q", errCorrupt, m.header.Get(hdrVersion)))
			}
			if stored > snap.Version {
				return nil
			}
			seq = m.seq
		case errors.Is(err, errNotFound):
		default:
			return fail(err)
		}
		msg := nats.NewMsg(subject)
		msg.Header.Set(hdrExpectedLastSubjSeq, strconv.FormatUint(seq, 10))
		msg.Header.Set(hdrVersion, strconv.FormatUint(snap.Version, 10))
		msg.Data = snap.Data
		_, err = s.js.PublishMsg(ctx, msg)
		if err == nil {
			return nil
		}
		if !isWrongLastSequence(err) {
			return fail(err)
		}
	}
	return fail(fmt.Errorf("%d attempts lost to concurrent saves", snapshotSaveAttemptsMax))
}

// LoadSnapshot implements persistence.Journal.
func (s *Store) LoadSnapshot(ctx context.Context, stream string) (persistence.Snapshot, bool, error) {
	const op = "load snapshot"
	if err := persistence.ValidateStream(op, stream); err != nil {
		return persistence.Snapshot{}, false, err
	}
	fail := func(err error) (persistence.Snapshot, bool, error) {
		return persistence.Snapshot{}, false, &persistence.Error{Op: op, Stream: stream, Err: err}
	}
	s.mu.RLock()
	defer s.mu.RUnlock()
	if err := s.usable(ctx); err != nil {
		return fail(err)
	}
	ctx, cancel := s.timeout.apply(ctx)
	defer cancel()
	m, err := leaderLast(ctx, s.nc, s.snapName, s.snapSubject(stream))
	if errors.Is(err, errNotFound) {
		return persistence.Snapshot{}, false, nil
	}
	if err != nil {
		return fail(err)
	}
	v, err := strconv.ParseUint(m.header.Get(hdrVersion), 10, 64)
	if err != nil {
		return fail(fmt.Errorf("%w: snapshot version %q", errCorrupt, m.header.Get(hdrVersion)))
	}
	return persistence.Snapshot{Stream: stream, Version: v, Data: append([]byte{}, m.data...)}, true, nil
}

// Close implements persistence.Journal. It waits for the operations in
// flight and does not close the NATS connection; a second Close returns
// nil.
// A nil Store (a failed Open's, held in a Journal) closes as nothing:
// cleanup after a failed start must not panic over the error it reports.
func (s *Store) Close() error {
	if s == nil {
		return nil
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if !s.closed {
		// No append is in flight (each holds mu), so each batcher
		// stops with an empty queue.
		for _, b := range s.batchers {
			b.close()
		}
	}
	s.closed = true
	return nil
}

// Check reports whether the journal can write now: its NATS connection is
// up and every JetStream stream of the journal has a leader that reaches a
// majority of its replicas (without, appends to a replicated stream fail
// until the cluster heals; a server that lost its peers keeps the
// connection up). It asks each stream for
// its info, one request per stream: a caller that asks often (a readiness
// probe) should cache the answer.
func (s *Store) Check(ctx context.Context) error {
	s.mu.RLock()
	defer s.mu.RUnlock()
	if err := s.usable(ctx); err != nil {
		return err
	}
	if st := s.nc.Status(); st != nats.CONNECTED {
		return fmt.Errorf("jetstream journal: NATS connection %s", st)
	}
	names := []string{s.prefix + "_meta", s.dirName, s.snapName}
	for i := range s.streams {
		names = append(names, s.eventStreamName(i))
	}
	for _, name := range names {
		st, err := s.js.Stream(ctx, name)
		if err != nil {
			return fmt.Errorf("jetstream journal: stream %s: %w", name, err)
		}
		if err := quorum(st.CachedInfo().Cluster); err != nil {
			return fmt.Errorf("jetstream journal: stream %s: %w", name, err)
		}
	}
	return nil
}

// peerSilenceMax: a replica its leader has not heard from for this long
// counts as gone (Raft heartbeats are every second).
const peerSilenceMax = 5 * time.Second

// quorum reports whether a stream as its leader describes it can store an
// append: it has a leader, and the leader with the replicas it hears from
// are a majority. A leader that lost its peers stays leader for a while
// (nats-server steps down after 10 s without quorum) and answers reads,
// but its writes time out.
func quorum(c *jetstream.ClusterInfo) error {
	if c == nil {
		return nil // a single server's stream
	}
	if c.Leader == "" {
		return errors.New("no leader")
	}
	live, all := 1, 1+len(c.Replicas)
	for _, r := range c.Replicas {
		if !r.Offline && r.Active < peerSilenceMax {
			live++
		}
	}
	if 2*live <= all {
		return fmt.Errorf("leader %s reaches %d of %d replicas, not a majority", c.Leader, live, all)
	}
	return nil
}

// requestTimeout applies Options.RequestTimeout to contexts without a
// deadline.
type requestTimeout time.Duration

func (d requestTimeout) apply(ctx context.Context) (context.Context, context.CancelFunc) {
	if _, ok := ctx.Deadline(); ok {
		return ctx, func() {}
	}
	return context.WithTimeout(ctx, time.Duration(d))
}
