package bench

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	dto "github.com/prometheus/client_model/go"

	"github.com/acme/mastertrust/actors"
	"github.com/acme/mastertrust/cluster"
	"github.com/acme/mastertrust/codec"
	"github.com/acme/mastertrust/domain"
	"github.com/acme/mastertrust/gateway"
	"github.com/acme/mastertrust/internal/pause"
	"github.com/acme/mastertrust/persistence"
	"github.com/acme/mastertrust/persistence/pebble"
	"github.com/acme/mastertrust/platform"
	"github.com/acme/mastertrust/proto/pb"
)

// Measurement names for PotsConfig.Measurements, in the order they run
// within a repeat (heap runs once, before the repeats).
const (
	// PotsRaw: raw Pebble synced batches of a contribution's two encoded
	// events, one batch per op, Callers writers: the ceiling.
	PotsRaw = "raw"
	// PotsJournal: the pots' journal alone: appends of the same events to
	// distinct streams in the pots' groups, Callers writers, no grains.
	PotsJournal = "journal"
	// PotsCommands: Contribute calls to the pre-opened pots through their
	// grains, each made durable in the Pebble journal before its reply.
	PotsCommands = "commands"
	// PotsQueries: GetPot calls to the same pots: the same grain path with
	// no journal write, the grain-call baseline.
	PotsQueries = "queries"
	// PotsHTTP: POST /v1/pots/{memberId}/orders (buys) through the gateway
	// over a real loopback listener, HTTPClients clients.
	PotsHTTP = "http"
	// PotsHTTPGet: GET /v1/pots/{memberId} through the gateway: HTTP, the
	// token check and a grain call without the journal, the HTTP baseline.
	PotsHTTPGet = "http-get"
	// PotsHeap: heap per active pot, from HeapPots new pots.
	PotsHeap = "heap"
)

// potsMeasurements are every measurement, in running order.
var potsMeasurements = []string{PotsRaw, PotsJournal, PotsCommands, PotsQueries, PotsHTTP, PotsHTTPGet, PotsHeap}

// Targets (docs/performance.md, "Targets"), printed beside the figures.
const (
	// potsCommandsRatioTarget: durable pot events/s ÷ raw Pebble events/s.
	potsCommandsRatioTarget = 0.5
	// potsHTTPOrdersTarget: HTTP orders/s through the gateway on the
	// project's 2-core machine.
	potsHTTPOrdersTarget = 20_000
	// potsHeapBytesTarget: heap bytes per active pot.
	potsHeapBytesTarget = 4096
)

// PotsConfig configures RunPots. Zero fields take the defaults named on
// each.
type PotsConfig struct {
	// Dir holds the pots' Pebble journal and the raw Pebble stores
	// (removed afterwards). Default: a new temporary directory. Put it on
	// the disk you want measured.
	Dir string
	// Callers are the goroutines calling pots at once (each waits for its
	// answer), and the raw Pebble writers. Default 64.
	Callers int
	// HTTPClients are the HTTP clients sending requests at once, each on
	// its own keep-alive connection, in this process. Default: Callers.
	HTTPClients int
	// Pots are the distinct pots the throughput measurements spread their
	// calls over, opened and funded before the first repeat. Calls take
	// the pots in turn, so with Pots well above Callers each call finds
	// its pot idle, as on a platform of a million members (no batching of
	// one pot's requests helps). Pot i is also given i mod potsHistoryMax
	// contributions beforehand, so that the pots' ages, and so their
	// snapshots, are spread as on a running platform: pots of one age take
	// their first snapshot together, all in one repeat. Default 10,000.
	Pots int
	// HeapPots are the pots activated (opened, and one contribution each)
	// to measure heap per active pot. Default 20,000.
	HeapPots int
	// HeapSettle is waited after the heap pots were activated, before the
	// heap is read, so that what their calls left behind until a timer
	// fires is gone: protoactor keeps each call's future (~800 bytes) until
	// the call's timeout fires, even after the reply came. Default: the
	// node's request timeout (5 s) and 1 s more.
	HeapSettle time.Duration
	// Duration of each measured cell, after a warm-up of a fifth of it.
	// Default 3s.
	Duration time.Duration
	// Repeats runs every throughput measurement this many times, each
	// repeat running them in turn, and prints medians; ratios are the
	// medians of the same-repeat ratios. Default 3: on a shared machine
	// one cell can be off by 2×.
	Repeats int
	// Measurements to run (PotsRaw, PotsJournal, PotsCommands, PotsQueries,
	// PotsHTTP, PotsHTTPGet, PotsHeap). Default: all. A ratio is printed only when
	// both its measurements ran.
	Measurements []string
	// Groups of the journal (its last one is the system group). Default 64.
	Groups uint32
	// JournalMinSyncInterval is the pots' journal's WAL sync spacing
	// (platform.Config.JournalMinSyncInterval), which the journal-alone
	// cell shares; raw Pebble keeps none, its best. Default 0.
	JournalMinSyncInterval time.Duration
	// PhaseTimeout bounds each setup phase (opening the pots, activating
	// the heap pots). Default 5 min.
	PhaseTimeout time.Duration
	// ProfileDir, if set, receives CPU profiles of the last repeat of the
	// commands and HTTP orders cells (cpu-commands.pprof, cpu-http.pprof)
	// and heap profiles before and after the heap pots were activated
	// (heap-before.pprof, heap-after.pprof; compare them with go tool
	// pprof -base), and RunPots prints a summary of each: where the CPU
	// went, where the heap per pot went. It also lowers the heap
	// profile's sampling (runtime.MemProfileRate) during the heap
	// measurement. Default: no profiles.
	ProfileDir string
	// Logger reports progress (Info) and the platform's warnings.
	// Default: discard.
	Logger *slog.Logger
}

// EnsureDefaults fills zero fields.
func (c *PotsConfig) EnsureDefaults() {
	if c.Callers == 0 {
		c.Callers = 64
	}
	if c.HTTPClients == 0 {
		c.HTTPClients = c.Callers
	}
	if c.Pots == 0 {
		c.Pots = 10_000
	}
	if c.HeapPots == 0 {
		c.HeapPots = 20_000
	}
	if c.Duration == 0 {
		c.Duration = 3 * time.Second
	}
	if c.Repeats == 0 {
		c.Repeats = 3
	}
	if len(c.Measurements) == 0 {
		c.Measurements = slices.Clone(potsMeasurements)
	}
	if c.Groups == 0 {
		c.Groups = 64
	}
	if c.PhaseTimeout == 0 {
		c.PhaseTimeout = 5 * time.Minute
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
}

// Validate reports every field out of range.
func (c *PotsConfig) Validate() error {
	var errs []error
	bad := func(format string, args ...any) { errs = append(errs, fmt.Errorf(format, args...)) }
	if c.Callers < 1 || c.Callers > 4096 {
		bad("callers %d outside [1, 4096]", c.Callers)
	}
	if c.HTTPClients < 1 || c.HTTPClients > 4096 {
		bad("HTTP clients %d outside [1, 4096]", c.HTTPClients)
	}
	if c.Pots < 1 || c.Pots > 10_000_000 {
		bad("pots %d outside [1, 10,000,000]", c.Pots)
	}
	if c.Pots < c.Callers || c.Pots < c.HTTPClients {
		bad("pots %d fewer than callers %d or HTTP clients %d: calls would queue at their pots", c.Pots, c.Callers, c.HTTPClients)
	}
	if c.HeapPots < 1 || c.HeapPots > 10_000_000 {
		bad("heap pots %d outside [1, 10,000,000]", c.HeapPots)
	}
	if c.Duration < 10*time.Millisecond {
		bad("duration %s below 10ms", c.Duration)
	}
	if c.Repeats < 1 || c.Repeats > 100 {
		bad("repeats %d outside [1, 100]", c.Repeats)
	}
	for _, m := range c.Measurements {
		if !slices.Contains(potsMeasurements, m) {
			bad("measurement %q is not one of %s", m, strings.Join(potsMeasurements, ", "))
		}
	}
	if c.Groups < actors.JournalGroupsMin || c.Groups > persistence.GroupsMax {
		bad("groups %d outside [%d, %d]", c.Groups, actors.JournalGroupsMin, persistence.GroupsMax)
	}
	if c.HeapSettle < 0 {
		bad("heap settle %s is negative", c.HeapSettle)
	}
	if c.PhaseTimeout < time.Second {
		bad("phase timeout %s below 1s", c.PhaseTimeout)
	}
	return errors.Join(errs...)
}

// RunPots measures pots and the gateway in one process and prints a table
// to out: raw Pebble synced 2-event batches (the ceiling), durable pot
// commands (Contribute through pot grains on one in-process node with the
// Pebble journal on disk), pot queries (GetPot: the grain path without a
// journal write), HTTP orders through the gateway and HTTP GETs of a pot,
// each with ops/s, events/s, p50 and p99 latency and the CPU it used;
// then the ratios against the same-run baselines and the targets, and the
// heap per active pot (measured first, on the fresh node). With
// cfg.ProfileDir it also profiles and summarizes where the CPU and the
// heap went.
func RunPots(ctx context.Context, cfg PotsConfig, out io.Writer) (err error) {
	cfg.EnsureDefaults()
	if err := cfg.Validate(); err != nil {
		return fmt.Errorf("bench: pots config: %w", err)
	}
	root, removeRoot, err := workDirs(cfg.Dir, "mastertrust-bench-pots-*", cfg.ProfileDir)
	if err != nil {
		return err
	}
	defer removeRoot()
	r, err := startPots(ctx, cfg, root, nil)
	if err != nil {
		return err
	}
	defer r.close()

	fmt.Fprintf(out, "Pots and the gateway: one in-process node (platform.StartNode) with the Pebble journal on disk (WAL min sync interval %s); %d callers, %d HTTP clients in this process; %d pots opened and funded beforehand, taken in turn; each cell %s after a %s warm-up; %d repeat(s), the measurements in turn within each (medians; a ratio is the median of the same-repeat ratios).\n\n",
		cfg.JournalMinSyncInterval, cfg.Callers, cfg.HTTPClients, cfg.Pots, cfg.Duration, cfg.Duration/5, cfg.Repeats)

	var heapRes *potsHeapResult
	if r.wants(PotsHeap) {
		if heapRes, err = r.measureHeap(ctx); err != nil {
			return fmt.Errorf("bench: pots heap: %w", err)
		}
	}

	cells := r.cells()
	results := map[string][]rate{}
	if len(cells) > 0 {
		if r.needsPots() {
			if err := r.openBenchPots(ctx, potsHistoryMax); err != nil {
				return err
			}
		}
		for rep := range cfg.Repeats {
			for _, c := range cells {
				profile := cfg.ProfileDir != "" && rep == cfg.Repeats-1 && c.profile
				res, err := r.runCell(ctx, c, profile)
				if err != nil {
					return fmt.Errorf("bench: pots %s, repeat %d: %w", c.name, rep+1, err)
				}
				results[c.name] = append(results[c.name], res)
				r.log.Info("pots bench cell", "measurement", c.name, "repeat", rep+1, "ops_s", int(res.appends),
					"events_s", int(res.events), "p50", res.p50, "p99", res.p99, "cores", fmt.Sprintf("%.2f", res.cores))
			}
		}
	}

	r.printTable(out, cells, results)
	r.printRatios(out, results)
	if heapRes != nil {
		r.printHeap(out, heapRes)
	}
	if cfg.ProfileDir != "" {
		if err := r.printCPUProfiles(out, cells); err != nil {
			return err
		}
	}
	return nil
}

// Amounts: each throughput pot is funded with potsFunding, so that its buys
// of potsOrderAmount never run out.
const (
	potsFunding      = "1000000000.00"
	potsContribution = "1.00"
	potsOrderAmount  = "1.00"
	// potsHistoryMax bounds the contributions a throughput pot is given
	// before the measurements: half of a pot's default SnapshotEvery
	// events, at two events a contribution.
	potsHistoryMax = 50
)

// potsRun is one RunPots: the platform under test and the state of the run.
type potsRun struct {
	cfg  PotsConfig
	root string
	log  *slog.Logger

	journal *pebble.Store
	node    *platform.Node
	server  *http.Server
	url     string
	http    *http.Client
	secret  []byte
	asset   string
	// pots calls the pots: through node, or through client, a client node
	// calling node over the remote (the TLS comparison, tls.go).
	pots   actors.PotClient
	client *cluster.Node
	// tlsServer serves the gateway over HTTPS at urlTLS, for httpTLS
	// (the TLS comparison only).
	tlsServer *http.Server
	urlTLS    string
	httpTLS   *http.Client

	// contribution is a contribution's events as the pot encodes them (the
	// journal cell appends them, the raw ceiling writes their bytes);
	// orderEvents is the number of events of a buy.
	contribution []persistence.NewEvent
	orderEvents  int
	// journalVersions[i] is the version of the journal cell's stream i,
	// and journalTurns[w] counts worker w's appends; only worker w touches
	// journalTurns[w] and the streams it owns (i mod Callers = w).
	journalVersions []uint64
	journalTurns    []int

	// members are the throughput pots, opened and funded; tokens[i] is
	// members[i]'s Authorization header.
	members []string
	tokens  []string
	// next numbers calls across the run: call n goes to members[n mod
	// len(members)] with an idempotency key made of n.
	next atomic.Int64
	cell atomic.Int64 // numbers the raw stores' directories
	// retries503 counts the HTTP requests sent again after a 503 (httpDo).
	retries503 atomic.Int64
	// handlerTimes, when set, receives the time the gateway's handler took
	// for each request, by whether it answered 503 (see timed).
	handlerTimes atomic.Pointer[handlerTimes]
}

// handlerTimes are the gateway handler's times, as the HTTP server saw
// them: from the handler's start to its end, after net/http has accepted
// the connection and read the request's headers.
type handlerTimes struct {
	ok, unavailable *latencies
}

// timed wraps the gateway's handler to time it when r.handlerTimes is set.
func (r *potsRun) timed(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		ht := r.handlerTimes.Load()
		if ht == nil {
			h.ServeHTTP(w, req)
			return
		}
		start := time.Now()
		sw := &statusWriter{ResponseWriter: w}
		h.ServeHTTP(sw, req)
		if sw.status == http.StatusServiceUnavailable {
			ht.unavailable.add(time.Since(start))
		} else {
			ht.ok.add(time.Since(start))
		}
	})
}

// statusWriter remembers the status written.
type statusWriter struct {
	http.ResponseWriter
	status int
}

func (w *statusWriter) WriteHeader(status int) {
	if w.status == 0 {
		w.status = status
	}
	w.ResponseWriter.WriteHeader(status)
}

// startPots starts the platform under test: a Pebble journal under root,
// one node hosting the pots (as `mastertrust dev` does, with an in-process
// membership), and the gateway on a loopback listener, calling the pots
// through the node (dev's deployment: one process). tune, if not nil,
// adjusts the gateway's config before the gateway is made.
func startPots(ctx context.Context, cfg PotsConfig, root string, tune func(*gateway.Config)) (_ *potsRun, err error) {
	r := &potsRun{cfg: cfg, root: root, log: cfg.Logger,
		journalVersions: make([]uint64, cfg.Pots), journalTurns: make([]int, cfg.Callers)}
	defer func() {
		if err != nil {
			r.close()
		}
	}()
	// The platform's warnings explain odd numbers; its Info lines do not.
	quiet := slog.New(minLevel{cfg.Logger.Handler(), slog.LevelWarn})
	cat := domain.DefaultCatalogue()
	cal, err := platform.NewCalendar()
	if err != nil {
		return nil, err
	}
	r.asset = string(cat.Assets()[0].ISIN)
	if r.contribution, r.orderEvents, err = potEvents(cat, cal, r.asset); err != nil {
		return nil, err
	}
	if r.journal, err = pebble.Open(filepath.Join(root, "journal"), pebble.Options{Groups: cfg.Groups, WALMinSyncInterval: cfg.JournalMinSyncInterval, Logger: quiet}); err != nil {
		return nil, err
	}
	r.node, err = platform.StartNode(platform.NodeConfig{
		Cluster: cluster.Config{ClusterName: "mastertrust-bench", Provider: cluster.ProviderInProcess,
			InProcess: cluster.NewInProcess(10 * time.Second), Logger: quiet},
		Journal: r.journal, HistoryDir: filepath.Join(root, "history"), Catalogue: cat, Calendar: cal, Logger: quiet,
	})
	if err != nil {
		return nil, err
	}
	wctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	if err := r.node.Cluster.WaitForMembers(wctx, 1); err != nil {
		return nil, err
	}
	r.pots = r.node.Pots
	if err := r.serveGateway(cat, quiet, tune); err != nil {
		return nil, err
	}
	return r, nil
}

// serveGateway serves the gateway, calling the pots through r.node, on a
// loopback listener at r.url, with a new token secret, and makes r.http,
// the clients' keep-alive client (cfg.HTTPClients connections). tune, if
// not nil, adjusts the gateway's config before the gateway is made.
func (r *potsRun) serveGateway(cat *domain.Catalogue, log *slog.Logger, tune func(*gateway.Config)) error {
	r.secret = make([]byte, 32)
	rand.Read(r.secret)
	gcfg := gateway.Config{Pots: r.node.Pots, Cluster: r.node.Cluster, Catalogue: cat, TokenSecret: r.secret,
		Ready: func(context.Context) error { return nil }, Registry: r.node.Registry, Logger: log}
	if tune != nil {
		tune(&gcfg)
	}
	gw, err := gateway.New(gcfg)
	if err != nil {
		return err
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return err
	}
	r.url = "http://" + ln.Addr().String()
	r.server = &http.Server{Handler: r.timed(gw.Handler()), ReadHeaderTimeout: 10 * time.Second}
	go r.server.Serve(ln)
	r.http = &http.Client{Transport: &http.Transport{MaxIdleConns: r.cfg.HTTPClients, MaxIdleConnsPerHost: r.cfg.HTTPClients,
		DisableCompression: true}}
	return nil
}

// close stops what startPots started. The node is killed rather than
// stopped: a graceful stop passivates every pot, which takes seconds per
// ten thousand pots and measures nothing.
func (r *potsRun) close() {
	r.closeHTTP()
	if r.client != nil {
		r.client.Kill()
	}
	if r.node != nil {
		r.node.Kill()
	}
	if r.journal != nil {
		if err := r.journal.Close(); err != nil {
			r.log.Warn("bench: close pots journal", "err", err)
		}
	}
}

// closeHTTP closes the HTTP clients' connections and the gateway's servers.
func (r *potsRun) closeHTTP() {
	for _, c := range []*http.Client{r.http, r.httpTLS} {
		if c != nil {
			c.CloseIdleConnections()
		}
	}
	for _, s := range []*http.Server{r.server, r.tlsServer} {
		if s != nil {
			s.Close()
		}
	}
}

// potEvents decides, with the domain, what the measured requests append:
// a contribution's events, encoded as the pot encodes them, and the number
// of events of a buy.
func potEvents(cat *domain.Catalogue, cal *domain.Calendar, asset string) (contribution []persistence.NewEvent, orderEvents int, err error) {
	dctx := &domain.Context{Now: time.Now(), Catalogue: cat, Calendar: cal, Prices: map[domain.ISIN]domain.PricePoint{}}
	p := domain.NewPot("B0000001")
	decide := func(cmd domain.Command) ([]domain.Event, error) {
		dec, err := domain.Decide(p, cmd, dctx)
		if err != nil {
			return nil, fmt.Errorf("bench: decide %T: %w", cmd, err)
		}
		for _, e := range dec.Events {
			p.Apply(e)
		}
		return dec.Events, nil
	}
	if _, err := decide(domain.OpenPot{Key: "open"}); err != nil {
		return nil, 0, err
	}
	events, err := decide(domain.Contribute{Key: "c-1", Amount: domain.MustMoney(potsContribution)})
	if err != nil {
		return nil, 0, err
	}
	for _, e := range events {
		typ, data, err := codec.EncodePotEvent(e)
		if err != nil {
			return nil, 0, err
		}
		contribution = append(contribution, persistence.NewEvent{Type: typ, Data: data})
	}
	events, err = decide(domain.PlaceOrder{Key: "buy", Order: domain.OrderRequest{Type: domain.OrderBuy,
		Asset: domain.ISIN(asset), Amount: domain.MustMoney(potsOrderAmount)}})
	if err != nil {
		return nil, 0, err
	}
	return contribution, len(events), nil
}

func (r *potsRun) wants(m string) bool { return slices.Contains(r.cfg.Measurements, m) }

// needsPots reports whether a selected measurement calls the pots.
func (r *potsRun) needsPots() bool {
	return r.wants(PotsCommands) || r.wants(PotsQueries) || r.wants(PotsHTTP) || r.wants(PotsHTTPGet)
}

// potsCell is one throughput measurement.
type potsCell struct {
	name, label string
	// profile: a CPU profile of its last repeat is written and summarized.
	profile bool
	workers int
	op      func(ctx context.Context, w int) (events int, err error)
	// raw cells run on their own store (see runCell).
	raw bool
}

// cells are the selected throughput measurements, in running order.
func (r *potsRun) cells() []potsCell {
	all := []potsCell{
		{name: PotsRaw, label: fmt.Sprintf("raw Pebble: synced %d-event batches", len(r.contribution)), workers: r.cfg.Callers, raw: true},
		{name: PotsJournal, label: fmt.Sprintf("journal alone: %d-event appends", len(r.contribution)), workers: r.cfg.Callers,
			op: r.journalAppend},
		{name: PotsCommands, label: fmt.Sprintf("pot Contribute, durable (%d events)", len(r.contribution)), workers: r.cfg.Callers,
			profile: true, op: r.contribute},
		{name: PotsQueries, label: "pot GetPot (no journal write)", workers: r.cfg.Callers, op: r.getPot},
		{name: PotsHTTP, label: fmt.Sprintf("HTTP POST orders, durable (%d events)", r.orderEvents), workers: r.cfg.HTTPClients,
			profile: true, op: r.httpOrder},
		{name: PotsHTTPGet, label: "HTTP GET pot (no journal write)", workers: r.cfg.HTTPClients, op: r.httpGetPot},
	}
	var cells []potsCell
	for _, c := range all {
		if r.wants(c.name) {
			cells = append(cells, c)
		}
	}
	return cells
}

// runCell measures one cell, with a CPU profile if asked.
func (r *potsRun) runCell(ctx context.Context, c potsCell, profile bool) (rate, error) {
	shape := loadShape{workers: c.workers, warmup: r.cfg.Duration / 5, duration: r.cfg.Duration}
	if profile {
		stop, _, err := startCPUProfile(r.cpuProfilePath(c.name), r.log)
		if err != nil {
			return rate{}, err
		}
		defer stop()
	}
	if c.raw {
		dir := filepath.Join(r.root, fmt.Sprintf("raw-%d", r.cell.Add(1)))
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return rate{}, err
		}
		defer os.RemoveAll(dir)
		payloads := make([][]byte, len(r.contribution))
		for i, e := range r.contribution {
			payloads[i] = e.Data
		}
		return rawPebbleAppends(ctx, dir, shape, payloads, 0)
	}
	return drive(ctx, shape, c.op)
}

func (r *potsRun) cpuProfilePath(name string) string {
	return filepath.Join(r.cfg.ProfileDir, "cpu-"+name+".pprof")
}

// nextPot returns the number of the next call and the index of its pot.
func (r *potsRun) nextPot() (int64, int) {
	n := r.next.Add(1)
	return n, int(n % int64(len(r.members)))
}

// call sends req to member's pot from the node, and turns a problem into
// an error. The context has no cancellation (the node's RequestTimeout
// bounds the call) so that cluster.Call makes the call on this goroutine:
// the grain path and nothing else.
func (r *potsRun) call(ctx context.Context, member string, req *pb.PotRequest) (*pb.PotResponse, error) {
	resp, err := r.pots.Handle(context.WithoutCancel(ctx), member, req)
	if err != nil {
		return nil, fmt.Errorf("pot %s %s: %w", member, req.IdempotencyKey, err)
	}
	if p := resp.GetProblem(); p != nil {
		return nil, fmt.Errorf("pot %s %s: problem %s: %s", member, req.IdempotencyKey, p.Code, p.Detail)
	}
	return resp, nil
}

// journalAppend appends a contribution's events to the next of worker w's
// streams: worker w owns streams w, w+Callers, w+2·Callers, … below Pots
// (Validate sees that there are at least Callers), so that, as with the
// pots, each append finds its stream idle; the streams are spread over the
// pots' groups as pots are.
func (r *potsRun) journalAppend(ctx context.Context, w int) (int, error) {
	workers := r.cfg.Callers
	owned := (r.cfg.Pots - w + workers - 1) / workers
	i := w + workers*(r.journalTurns[w]%owned)
	r.journalTurns[w]++
	member := "J" + strconv.Itoa(i)
	v, err := r.journal.Append(ctx, persistence.AppendRequest{Stream: actors.PotStream(member),
		Group: actors.PotGroup(member, actors.PotGroups(r.journal)), ExpectedVersion: r.journalVersions[i], Events: r.contribution})
	if err != nil {
		return 0, err
	}
	r.journalVersions[i] = v
	return len(r.contribution), nil
}

func (r *potsRun) contribute(ctx context.Context, _ int) (int, error) {
	n, i := r.nextPot()
	resp, err := r.call(ctx, r.members[i], &pb.PotRequest{IdempotencyKey: "c-" + strconv.FormatInt(n, 10),
		Command: &pb.PotRequest_Contribute{Contribute: &pb.Contribute{Amount: potsContribution}}})
	if err != nil {
		return 0, err
	}
	if resp.GetMovement() == nil {
		return 0, fmt.Errorf("contribution answered %v", resp)
	}
	return len(r.contribution), nil
}

func (r *potsRun) getPot(ctx context.Context, _ int) (int, error) {
	_, i := r.nextPot()
	resp, err := r.call(ctx, r.members[i], &pb.PotRequest{Command: &pb.PotRequest_GetPot{GetPot: &pb.GetPot{}}})
	if err != nil {
		return 0, err
	}
	if resp.GetPot() == nil {
		return 0, fmt.Errorf("GetPot answered %v", resp)
	}
	return 0, nil
}

func (r *potsRun) httpOrder(ctx context.Context, _ int) (int, error) {
	return r.httpOrderAt(ctx, r.url, r.http)
}

// httpOrderAt sends a buy to the gateway at base through client.
func (r *potsRun) httpOrderAt(ctx context.Context, base string, client *http.Client) (int, error) {
	n, i := r.nextPot()
	body := `{"type":"buy","asset":"` + r.asset + `","amount":"` + potsOrderAmount + `"}`
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, base+"/v1/pots/"+r.members[i]+"/orders", strings.NewReader(body))
	if err != nil {
		return 0, err
	}
	req.Header.Set("Authorization", r.tokens[i])
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Idempotency-Key", "o-"+strconv.FormatInt(n, 10))
	if err := r.httpDo(client, req, http.StatusAccepted); err != nil {
		return 0, err
	}
	return r.orderEvents, nil
}

func (r *potsRun) httpGetPot(ctx context.Context, _ int) (int, error) {
	_, i := r.nextPot()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, r.url+"/v1/pots/"+r.members[i], nil)
	if err != nil {
		return 0, err
	}
	req.Header.Set("Authorization", r.tokens[i])
	return 0, r.httpDo(r.http, req, http.StatusOK)
}

// httpBodies are the clients' buffers for answers: a client reads each
// answer whole, into a buffer it reuses, so that the clients' own garbage
// does not grow with the pages measured.
var httpBodies = sync.Pool{New: func() any { return new(bytes.Buffer) }}

// httpDo sends req, reads the answer whole (so that the connection is
// reused) and checks its status. A 503 with the problem code unavailable
// (the gateway or the pot refused the request having done nothing, or could
// not answer in time) is sent again with the same Idempotency-Key, as
// docs/openapi.yaml tells clients to, after a short pause, up to
// httpRetriesMax attempts; r.retries503 counts the retries.
func (r *potsRun) httpDo(client *http.Client, req *http.Request, want int) error {
	for attempt := 1; ; attempt++ {
		resp, err := client.Do(req)
		if err != nil {
			return err
		}
		body := httpBodies.Get().(*bytes.Buffer)
		body.Reset()
		_, err = body.ReadFrom(resp.Body)
		resp.Body.Close()
		if err != nil {
			httpBodies.Put(body)
			return err
		}
		if resp.StatusCode == http.StatusServiceUnavailable && attempt < httpRetriesMax &&
			bytes.Contains(body.Bytes(), []byte(`"code":"unavailable"`)) {
			httpBodies.Put(body)
			r.retries503.Add(1)
			if err := pause.For(req.Context(), min(time.Duration(attempt)*httpRetryPause, 20*httpRetryPause)); err != nil {
				return err
			}
			if req, err = again(req); err != nil {
				return err
			}
			continue
		}
		defer httpBodies.Put(body)
		if resp.StatusCode != want {
			return fmt.Errorf("%s %s answered %d, want %d: %s", req.Method, req.URL.Path, resp.StatusCode, want, body.Bytes())
		}
		return nil
	}
}

// Retries of a 503 in httpDo: attempt n waits n × httpRetryPause, at most
// 20 × it. The gateway's Retry-After (1 s) is for clients that have
// nothing else to do; a closed-loop worker waiting a second would measure
// its own sleep.
const (
	httpRetriesMax = 20
	httpRetryPause = 5 * time.Millisecond
)

// again is req to send once more: the same headers (and so the same
// Idempotency-Key), the body rewound.
func again(req *http.Request) (*http.Request, error) {
	next := req.Clone(req.Context())
	if req.GetBody != nil {
		body, err := req.GetBody()
		if err != nil {
			return nil, err
		}
		next.Body = body
	}
	return next, nil
}

// openBenchPots opens and funds cfg.Pots pots, pot i with i mod historyMax
// contributions of history (potsRun.openPots), and signs their tokens.
func (r *potsRun) openBenchPots(ctx context.Context, historyMax int) error {
	pctx, cancel := context.WithTimeout(ctx, r.cfg.PhaseTimeout)
	defer cancel()
	var err error
	if r.members, err = r.openPots(pctx, "B", r.cfg.Pots, potsFunding, historyMax); err != nil {
		return fmt.Errorf("bench: open pots: %w", err)
	}
	for _, m := range r.members {
		tok, err := r.memberToken(m)
		if err != nil {
			return err
		}
		r.tokens = append(r.tokens, tok)
	}
	return nil
}

// memberToken is the Authorization header of member's requests to the
// gateway: a member token signed with the gateway's secret, valid for a
// day.
func (r *potsRun) memberToken(member string) (string, error) {
	tok, err := gateway.SignToken(r.secret, gateway.Claims{Subject: member, Role: gateway.RoleMember,
		IssuedAt: time.Now().Unix(), ExpiresAt: time.Now().Add(24 * time.Hour).Unix()})
	if err != nil {
		return "", fmt.Errorf("bench: sign a token for %s: %w", member, err)
	}
	return "Bearer " + tok, nil
}

// openPots opens n pots named prefix + a number, each with one
// contribution of fund and then, pot i, i mod historyMax contributions of
// potsContribution (none for historyMax 0), from Callers goroutines, and
// returns their member ids. Every pot is active afterwards.
func (r *potsRun) openPots(ctx context.Context, prefix string, n int, fund string, historyMax int) ([]string, error) {
	members := make([]string, n)
	for i := range members {
		members[i] = fmt.Sprintf("%s%07d", prefix, i)
	}
	start := time.Now()
	var (
		next, done atomic.Int64
		wg         sync.WaitGroup
		errOnce    sync.Once
		firstErr   error
	)
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	progress := time.NewTicker(2 * time.Second)
	defer progress.Stop()
	finished := make(chan struct{})
	go func() {
		for {
			select {
			case <-progress.C:
				r.log.Info("opening pots", "prefix", prefix, "done", done.Load(), "of", n, "elapsed", time.Since(start).Round(time.Millisecond))
			case <-finished:
				return
			}
		}
	}()
	for range r.cfg.Callers {
		wg.Go(func() {
			for ctx.Err() == nil {
				i := int(next.Add(1)) - 1
				if i >= n {
					return
				}
				_, err := r.call(ctx, members[i], &pb.PotRequest{IdempotencyKey: "open",
					Command: &pb.PotRequest_OpenPot{OpenPot: &pb.OpenPot{}}})
				if err == nil {
					_, err = r.call(ctx, members[i], &pb.PotRequest{IdempotencyKey: "fund",
						Command: &pb.PotRequest_Contribute{Contribute: &pb.Contribute{Amount: fund}}})
				}
				history := 0
				if historyMax > 0 {
					history = i % historyMax
				}
				for k := 0; k < history && err == nil; k++ {
					_, err = r.call(ctx, members[i], &pb.PotRequest{IdempotencyKey: "history-" + strconv.Itoa(k),
						Command: &pb.PotRequest_Contribute{Contribute: &pb.Contribute{Amount: potsContribution}}})
				}
				if err != nil {
					errOnce.Do(func() { firstErr = err; cancel() })
					return
				}
				done.Add(1)
			}
		})
	}
	wg.Wait()
	close(finished)
	if firstErr != nil {
		return nil, firstErr
	}
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("%d of %d pots opened: %w", done.Load(), n, err)
	}
	r.log.Info("pots opened", "prefix", prefix, "pots", n, "elapsed", time.Since(start).Round(time.Millisecond))
	return members, nil
}

// potsHeapResult is the heap measurement.
type potsHeapResult struct {
	pots                  int
	before, after         uint64 // HeapAlloc after a GC
	activeBefore, active  float64
	goroutinesBefore, gor int
	elapsed, settle       time.Duration
	// profileBefore and profileAfter are heap profiles (nil without
	// ProfileDir).
	profileBefore, profileAfter *profile
}

// heapProfileRate samples one allocation per this many bytes in the heap
// measurement (the runtime's default, 512 KiB, gives too few samples of
// objects of a few hundred bytes).
const heapProfileRate = 4096

// measureHeap activates HeapPots new pots (open, and one contribution
// each) and returns the live heap before and after, each after a full GC.
func (r *potsRun) measureHeap(ctx context.Context) (*potsHeapResult, error) {
	res := &potsHeapResult{pots: r.cfg.HeapPots}
	if r.cfg.ProfileDir != "" {
		defer func(rate int) { runtime.MemProfileRate = rate }(runtime.MemProfileRate)
		runtime.MemProfileRate = heapProfileRate
	}
	var err error
	if res.before, res.profileBefore, err = heapSnapshot(r.cfg.ProfileDir, "heap-before.pprof"); err != nil {
		return nil, err
	}
	res.activeBefore, res.goroutinesBefore = r.activePots(), runtime.NumGoroutine()
	start := time.Now()
	pctx, cancel := context.WithTimeout(ctx, r.cfg.PhaseTimeout)
	defer cancel()
	if _, err := r.openPots(pctx, "H", r.cfg.HeapPots, potsContribution, 0); err != nil {
		return nil, err
	}
	res.elapsed = time.Since(start)
	settle := r.cfg.HeapSettle
	if settle == 0 {
		settle = r.node.Cluster.Config().RequestTimeout + time.Second
	}
	r.log.Info("heap pots activated; waiting for the calls' timers", "pots", res.pots, "settle", settle)
	select {
	case <-time.After(settle):
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	res.settle = settle
	if res.after, res.profileAfter, err = heapSnapshot(r.cfg.ProfileDir, "heap-after.pprof"); err != nil {
		return nil, err
	}
	res.active, res.gor = r.activePots(), runtime.NumGoroutine()
	r.log.Info("heap per pot measured", "pots", res.pots, "bytes_per_pot", (int64(res.after)-int64(res.before))/int64(res.pots))
	return res, nil
}

// activePots reads the node's gauge of active pots.
func (r *potsRun) activePots() float64 {
	var m dto.Metric
	if err := r.node.Metrics.ActivePots.Write(&m); err != nil {
		return -1
	}
	return m.GetGauge().GetValue()
}

// median returns the median of f over rs.
func median[T any](rs []T, f func(T) float64) float64 {
	if len(rs) == 0 {
		return 0
	}
	vs := make([]float64, len(rs))
	for i, r := range rs {
		vs[i] = f(r)
	}
	slices.Sort(vs)
	return vs[len(vs)/2]
}

func (r *potsRun) printTable(out io.Writer, cells []potsCell, results map[string][]rate) {
	if len(cells) == 0 {
		return
	}
	fmt.Fprintf(out, "%-42s %10s %10s %9s %9s %6s %9s %10s\n", "measurement", "ops/s", "events/s", "p50", "p99", "cores", "CPU/op", "CPU cap/s")
	for _, c := range cells {
		rs := results[c.name]
		d := func(f func(rate) time.Duration) time.Duration {
			return time.Duration(median(rs, func(x rate) float64 { return float64(f(x)) }))
		}
		cpuPerOp := d(func(x rate) time.Duration { return x.cpuPerOp })
		capacity := 0.0
		if cpuPerOp > 0 {
			capacity = float64(runtime.NumCPU()) / cpuPerOp.Seconds()
		}
		fmt.Fprintf(out, "%-42s %10.0f %10.0f %9s %9s %6.2f %9s %10.0f\n", c.label,
			median(rs, func(x rate) float64 { return x.appends }), median(rs, func(x rate) float64 { return x.events }),
			roundDuration(d(func(x rate) time.Duration { return x.p50 })), roundDuration(d(func(x rate) time.Duration { return x.p99 })),
			median(rs, func(x rate) float64 { return x.cores }), cpuPerOp.Round(100*time.Nanosecond), capacity)
	}
	fmt.Fprintf(out, "(cores: this process's CPU time ÷ wall time; CPU/op: its CPU time per op, load generator included; CPU cap/s: the ops/s at which the process would use all %d CPUs at that cost.)\n", runtime.NumCPU())
	if n := r.retries503.Load(); n > 0 {
		fmt.Fprintf(out, "(%d HTTP requests were answered 503 and sent again with the same Idempotency-Key; an op counts once.)\n", n)
	}
	fmt.Fprintln(out)
}

// roundDuration keeps three significant digits or so.
func roundDuration(d time.Duration) time.Duration {
	switch {
	case d >= 100*time.Millisecond:
		return d.Round(time.Millisecond)
	case d >= 10*time.Millisecond:
		return d.Round(100 * time.Microsecond)
	case d >= time.Millisecond:
		return d.Round(10 * time.Microsecond)
	}
	return d.Round(time.Microsecond)
}

// printRatios prints each ratio whose two measurements ran: the median of
// the per-repeat ratios.
func (r *potsRun) printRatios(out io.Writer, results map[string][]rate) {
	type ratio struct {
		label    string
		num, den string
		value    func(num, den rate) float64
		target   string
		met      func(v float64) bool
	}
	events := func(n, d rate) float64 { return n.events / d.events }
	ops := func(n, d rate) float64 { return n.appends / d.appends }
	ratios := []ratio{
		{"durable pot commands: events/s ÷ raw Pebble events/s", PotsCommands, PotsRaw, events,
			fmt.Sprintf("target ≥ %.2f", potsCommandsRatioTarget), func(v float64) bool { return v >= potsCommandsRatioTarget }},
		{"durable pot commands/s ÷ GetPot calls/s (grain-call baseline)", PotsCommands, PotsQueries, ops, "", nil},
		{"HTTP orders/s ÷ durable pot commands/s (the gateway's cost)", PotsHTTP, PotsCommands, ops, "", nil},
		{"HTTP orders/s ÷ HTTP GETs/s (the journal's cost over HTTP)", PotsHTTP, PotsHTTPGet, ops, "", nil},
		{"HTTP GETs/s ÷ GetPot calls/s (HTTP's cost without the journal)", PotsHTTPGet, PotsQueries, ops, "", nil},
	}
	printed := false
	for _, q := range ratios {
		nums, dens := results[q.num], results[q.den]
		if len(nums) == 0 || len(dens) == 0 {
			continue
		}
		if !printed {
			fmt.Fprintf(out, "Ratios (median of the same-repeat ratios):\n")
			printed = true
		}
		vs := make([]float64, min(len(nums), len(dens)))
		for i := range vs {
			vs[i] = q.value(nums[i], dens[i])
		}
		v := median(vs, func(x float64) float64 { return x })
		line := fmt.Sprintf("  %-66s %6.2f", q.label, v)
		if q.met != nil {
			line += fmt.Sprintf("   (%s: %s)", q.target, metOrMissed(q.met(v)))
		}
		fmt.Fprintln(out, line)
	}
	if rs := results[PotsHTTP]; len(rs) > 0 {
		if !printed {
			fmt.Fprintf(out, "Ratios (median of the same-repeat ratios):\n")
			printed = true
		}
		v := median(rs, func(x rate) float64 { return x.appends })
		fmt.Fprintf(out, "  %-66s %6.0f   (target ≥ %d/s: %s)\n", "HTTP orders/s through the gateway", v, potsHTTPOrdersTarget, metOrMissed(v >= potsHTTPOrdersTarget))
	}
	if printed {
		fmt.Fprintln(out)
	}
}

func metOrMissed(ok bool) string {
	if ok {
		return "met"
	}
	return "missed"
}

func (r *potsRun) printHeap(out io.Writer, h *potsHeapResult) {
	perPot := (float64(h.after) - float64(h.before)) / float64(h.pots)
	fmt.Fprintf(out, "Heap per active pot: %d new pots activated (opened, one contribution each) in %s, then %s for the calls' timers; live heap after a GC %.1f MiB → %.1f MiB; active pots %.0f → %.0f; goroutines %d → %d.\n",
		h.pots, h.elapsed.Round(time.Millisecond), h.settle, float64(h.before)/(1<<20), float64(h.after)/(1<<20), h.activeBefore, h.active, h.goroutinesBefore, h.gor)
	fmt.Fprintf(out, "  %.0f bytes per active pot (target ≤ %d: %s)\n\n", perPot, potsHeapBytesTarget, metOrMissed(perPot <= potsHeapBytesTarget))
	if h.profileAfter == nil {
		return
	}
	total, byArea, byPackage, byFunction, err := profileShares(h.profileAfter, h.profileBefore, "inuse_space", heapAreas, skipAllocator)
	if err != nil {
		fmt.Fprintf(out, "  heap profile: %v\n\n", err)
		return
	}
	perPotUnit := func(v int64) string { return fmt.Sprintf("%.0f B/pot", float64(v)/float64(h.pots)) }
	fmt.Fprintf(out, "Where the heap per pot went (heap profile after − before, in-use bytes sampled every %d B: %s in all; profiles in %s):\n",
		heapProfileRate, perPotUnit(total), r.cfg.ProfileDir)
	writeShares(out, total, byArea, byPackage, byFunction, 10, perPotUnit)
	fmt.Fprintln(out)
}

// printCPUProfiles summarizes the CPU profiles written.
func (r *potsRun) printCPUProfiles(out io.Writer, cells []potsCell) error {
	for _, c := range cells {
		if !c.profile {
			continue
		}
		data, err := os.ReadFile(r.cpuProfilePath(c.name))
		if err != nil {
			return err
		}
		if len(data) == 0 {
			continue // the profiler was busy (see runCell)
		}
		p, err := parseProfile(data)
		if err != nil {
			return err
		}
		total, byArea, byPackage, byFunction, err := profileShares(p, nil, "cpu", cpuAreas, nil)
		if err != nil {
			return err
		}
		fmt.Fprintf(out, "Where the CPU went: %s, last repeat (%s, warm-up included: %s of CPU):\n", c.label, r.cpuProfilePath(c.name),
			time.Duration(total).Round(time.Millisecond))
		writeShares(out, total, byArea, byPackage, byFunction, 12, func(v int64) string { return time.Duration(v).Round(time.Millisecond).String() })
		fmt.Fprintln(out)
	}
	return nil
}

// skipAllocator passes over the runtime's allocation frames, so that heap
// bytes are charged to the code that asked for them.
func skipAllocator(frame string) bool {
	return strings.HasPrefix(frame, "runtime.") || strings.HasPrefix(frame, "internal/runtime/")
}

const (
	mt = "github.com/acme/mastertrust/"
	pa = "github.com/asynkron/protoactor-go/"
)

// cpuAreas are the parts of the process a CPU profile is summarized by.
var cpuAreas = []area{
	{"HTTP load generator (the clients, in this process)", []string{"net/http.(*Client)", "net/http.(*Transport)", "net/http.(*persistConn)", mt + "bench.(*potsRun).http", mt + "bench.(*overloadRun).openOrder"}},
	{"HTTP server (net/http: connections, parsing, writing)", []string{"net/http.(*conn)"}},
	{"gateway handlers (auth, decode, validate, encode, metrics)", []string{mt + "gateway."}},
	{"  token check", []string{mt + "gateway.VerifyToken"}},
	{"  encoding/json", []string{"encoding/json."}},
	{"grain call, caller side (cluster.Call and Request, protoactor request)", []string{mt + "cluster.Call", mt + "cluster.Request", pa + "cluster.(*DefaultContext).Request"}},
	{"protoactor mailboxes and actor contexts (both sides)", []string{pa + "actor.(*defaultMailbox)"}},
	{"pot grain (decode, decide, apply, encode, reply)", []string{mt + "actors.(*potActor)"}},
	{"  domain (decide, apply)", []string{mt + "domain."}},
	{"journal append (persistence/pebble: Append and its commit queue)", []string{mt + "persistence/pebble.(*Store).Append", mt + "persistence/pebble.(*committer)"}},
	{"Pebble (all: commit pipeline, WAL, flushes, compactions)", []string{"github.com/cockroachdb/pebble/"}},
	{"protobuf (marshal, unmarshal)", []string{"google.golang.org/protobuf/"}},
	{"Prometheus metrics", []string{"github.com/prometheus/"}},
	{"garbage collection (mark workers, assists, sweeping)", []string{"runtime.gcBgMarkWorker", "runtime.gcAssistAlloc", "runtime.bgsweep", "runtime.bgscavenge", "runtime.markroot"}},
	{"allocation (runtime.mallocgc)", []string{"runtime.mallocgc"}},
	{"scheduler (finding, parking and switching goroutines)", []string{"runtime.schedule", "runtime.findRunnable", "runtime.park_m", "runtime.goschedImpl", "runtime.goready", "runtime.ready"}},
	{"system calls (read, write, fsync, futex, epoll)", []string{"syscall.Syscall", "syscall.RawSyscall", "internal/runtime/syscall.", "runtime.futex", "runtime.netpoll", "runtime.epollwait", "runtime/internal/syscall."}},
}

// heapAreas are the parts of the process a heap profile is summarized by.
var heapAreas = []area{
	{"pot state (domain: the Pot and its maps of requests, movements, orders)", []string{mt + "domain."}},
	{"pot grain shell (actors)", []string{mt + "actors."}},
	{"protoactor actors (process, mailbox, context, registry)", []string{pa + "actor."}},
	{"protoactor cluster (identity lookup, PID cache, placement)", []string{pa + "cluster.", mt + "cluster."}},
	{"journal (stream head cache, Pebble)", []string{mt + "persistence/", "github.com/cockroachdb/pebble/"}},
	{"protobuf", []string{"google.golang.org/protobuf/"}},
	{"Prometheus metrics", []string{"github.com/prometheus/"}},
}
