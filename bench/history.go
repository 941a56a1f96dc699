package bench

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
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

	"github.com/acme/mastertrust/actors"
	"github.com/acme/mastertrust/cluster"
	"github.com/acme/mastertrust/codec"
	"github.com/acme/mastertrust/domain"
	"github.com/acme/mastertrust/internal/procmem"
	"github.com/acme/mastertrust/persistence"
	"github.com/acme/mastertrust/proto/pb"
)

// The history workload: what a pot costs as its history grows. Pots of a
// few sizes — their past orders, every one a buy that was dealt and
// settled by real dealing cycles — are built on one in-process platform,
// then measured side by side in the same run: heap per active pot, snapshot
// bytes, recovery time, CPU per command over HTTP, and the latency of the
// history's pages. A pot keeps only its open work (domain/retire.go), so
// every figure but the journal's bytes should not grow with the history.

// historyRatioTarget: every figure of the largest size within this factor
// of the smallest size's, but the bytes on disk (docs/performance.md,
// "Targets").
const historyRatioTarget = 1.5

const (
	// historyFunding is each pot's one contribution before its orders:
	// far more than 10,000 orders of historyOrderAmount spend, the same
	// for every size.
	historyFunding = "1000000.00"
	// historyOrderAmount is what each past order buys.
	historyOrderAmount = "10.00"
	// historyContribution is each measured contribution.
	historyContribution = "1.00"
	// historyClockJump moves the platform's time past the 7-day key window
	// (domain.RequestRetention) and a day more.
	historyClockJump = domain.RequestRetention + 24*time.Hour
	// historyClockTick: while contributions are measured, the platform's
	// time jumps by historyClockJump this often, so that a pot holds only
	// the last quarter second's keys in its window, as a member making a
	// few requests a week does. Without it the cell's own requests (a few
	// hundred a pot) would stay in the state, and retiring them (at every
	// RequestRecorded, a scan of the keys for each done movement) would
	// be what the cell measures, whatever the pot's history.
	historyClockTick = 250 * time.Millisecond
	// historyPageLimit is the page the history's latency is measured with.
	historyPageLimit = 50
	// historySettleWeeksMax bounds the weeks of cycles after the last
	// orders that settle what is left: one normally, two when a holiday
	// delays the last week's settlements.
	historySettleWeeksMax = 4
)

// HistoryConfig configures RunHistory. Zero fields take the defaults named
// on each.
type HistoryConfig struct {
	// Sizes are the past orders of the pots measured, ascending: each pot
	// of a size has placed that many buys, every one dealt and settled,
	// before the measurements. Ratios are to the first. Default 10,
	// 1,000, 10,000.
	Sizes []int
	// PotsPerSize are the pots of each size; per-pot figures are their
	// averages (medians over pots and repeats). Default 20.
	PotsPerSize int
	// OrdersPerDay bounds the orders one pot places per dealing day while
	// its history is built: the pots place them a week apart (so that each
	// week's keys are forgotten before the next), and a pot takes a day's
	// executions, and its settlements (two days' after a holiday), in one
	// append of an event per trade, which persistence.AppendEventsMax
	// bounds. Default 500: 20 dealing days for 10,000 orders.
	OrdersPerDay int
	// Dir holds the journal, the history read model, NATS and the
	// custodian's ledger (removed afterwards if RunHistory made it).
	// Default: a new temporary directory.
	Dir string
	// Callers are the goroutines placing the past orders at once (each
	// waits for its answer). Default 64.
	Callers int
	// HTTPClients are the HTTP clients of each measured cell, each on its
	// own keep-alive connection, taking a size's pots in turn. At most
	// PotsPerSize, so that a request seldom finds another of the same cell
	// at its pot. Default 8, or PotsPerSize if fewer.
	HTTPClients int
	// Duration of each measured HTTP cell, after a warm-up of a fifth of
	// it. Default 3s.
	Duration time.Duration
	// Repeats runs every measurement this many times, the sizes in turn
	// (every other repeat in reverse order), and prints medians; a ratio
	// is the median of the same-repeat ratios. Default 3.
	Repeats int
	// PotIdleTimeout passivates a pot without messages (the node's
	// PotIdleTimeout): the heap measurement reads the heap with a size's
	// pots active, then waits for them to passivate and reads it again.
	// It must exceed HeapSettle. Default: HeapSettle and 4 s more.
	PotIdleTimeout time.Duration
	// HeapSettle is waited after a size's pots were activated, before the
	// heap is read, so that what their calls left behind until a timer
	// fires is gone (protoactor keeps each call's future until its
	// timeout). Default: the node's request timeout (5 s) and 1 s more.
	HeapSettle time.Duration
	// PhaseTimeout bounds building the history, and each wait for the pots
	// to passivate. Default 30 min.
	PhaseTimeout time.Duration
	// ProfileDir, if set, receives a CPU profile of the last repeat's
	// contributions cell and statement?limit=50 cell of each size
	// (cpu-contributions-<size>.pprof, cpu-statement-<size>.pprof), and
	// RunHistory prints where the CPU went. Default: no profiles.
	ProfileDir string
	// Logger reports progress (Info) and the platform's warnings.
	// Default: discard.
	Logger *slog.Logger
}

// EnsureDefaults fills zero fields.
func (c *HistoryConfig) EnsureDefaults() {
	if len(c.Sizes) == 0 {
		c.Sizes = []int{10, 1_000, 10_000}
	}
	if c.PotsPerSize == 0 {
		c.PotsPerSize = 20
	}
	if c.OrdersPerDay == 0 {
		c.OrdersPerDay = 500
	}
	if c.Callers == 0 {
		c.Callers = 64
	}
	if c.HTTPClients == 0 {
		c.HTTPClients = min(8, c.PotsPerSize)
	}
	if c.Duration == 0 {
		c.Duration = 3 * time.Second
	}
	if c.Repeats == 0 {
		c.Repeats = 3
	}
	if c.HeapSettle == 0 {
		c.HeapSettle = new(cluster.Config).EnsureDefaults().RequestTimeout + time.Second
	}
	if c.PotIdleTimeout == 0 {
		c.PotIdleTimeout = c.HeapSettle + 4*time.Second
	}
	if c.PhaseTimeout == 0 {
		c.PhaseTimeout = 30 * time.Minute
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
}

// Validate reports every field out of range.
func (c *HistoryConfig) Validate() error {
	var errs []error
	bad := func(format string, args ...any) { errs = append(errs, fmt.Errorf(format, args...)) }
	if len(c.Sizes) < 2 {
		bad("sizes %v: want at least two, to compare", c.Sizes)
	}
	for i, s := range c.Sizes {
		if s < 1 || s > 1_000_000 {
			bad("size %d outside [1, 1,000,000]", s)
		}
		if i > 0 && s <= c.Sizes[i-1] {
			bad("sizes %v are not ascending", c.Sizes)
		}
	}
	if c.PotsPerSize < 1 || c.PotsPerSize > 10_000 {
		bad("pots per size %d outside [1, 10,000]", c.PotsPerSize)
	}
	// A day's executions are one event per order, in one append; so are a
	// day's settlements, which a holiday may add to the next week's.
	if c.OrdersPerDay < 1 || c.OrdersPerDay > persistence.AppendEventsMax/2 {
		bad("orders per day %d outside [1, %d]", c.OrdersPerDay, persistence.AppendEventsMax/2)
	}
	if c.Callers < 1 || c.Callers > 4096 {
		bad("callers %d outside [1, 4096]", c.Callers)
	}
	if c.HTTPClients < 1 || c.HTTPClients > c.PotsPerSize {
		bad("HTTP clients %d outside [1, pots per size %d]", c.HTTPClients, c.PotsPerSize)
	}
	if c.Duration < 10*time.Millisecond {
		bad("duration %s below 10ms", c.Duration)
	}
	if c.Repeats < 1 || c.Repeats > 100 {
		bad("repeats %d outside [1, 100]", c.Repeats)
	}
	if c.HeapSettle < 0 {
		bad("heap settle %s is negative", c.HeapSettle)
	}
	if c.PotIdleTimeout <= c.HeapSettle {
		bad("pot idle timeout %s not above the heap settle %s: the pots would passivate before the heap is read", c.PotIdleTimeout, c.HeapSettle)
	}
	if c.PhaseTimeout < time.Second {
		bad("phase timeout %s below 1s", c.PhaseTimeout)
	}
	return errors.Join(errs...)
}

// RunHistory builds pots of cfg.Sizes past orders on one in-process
// platform (the Pebble journal on disk, a node with its history read model,
// embedded NATS and the simulated custodian, the gateway over HTTP, on a
// clock the run moves) and prints a table of what a pot of each size costs,
// with each size's ratio to the first and the target (the largest within
// historyRatioTarget of the smallest on every figure but the bytes on
// disk).
func RunHistory(ctx context.Context, cfg HistoryConfig, out io.Writer) error {
	cfg.EnsureDefaults()
	if err := cfg.Validate(); err != nil {
		return fmt.Errorf("bench: history config: %w", err)
	}
	root, removeRoot, err := workDirs(cfg.Dir, "mastertrust-bench-history-*", cfg.ProfileDir)
	if err != nil {
		return err
	}
	defer removeRoot()
	r, err := startHistory(ctx, cfg, root, out)
	if err != nil {
		return fmt.Errorf("bench: history world: %w", err)
	}
	defer r.close()
	fmt.Fprintf(out, "A pot's cost and its history: one in-process node (platform.StartNode) with the Pebble journal on disk, its history read model, embedded NATS, the simulated custodian and the gateway over HTTP, on a clock the run moves; %d self-directed pots of each size (%s past orders), built by real dealing cycles; %d repeat(s), the sizes in turn (medians; a ratio is the median of the same-repeat ratios).\n\n",
		cfg.PotsPerSize, sizesText(cfg.Sizes, ", "), cfg.Repeats)
	if err := r.build(ctx); err != nil {
		return fmt.Errorf("bench: history setup: %w", err)
	}
	if err := r.measureJournal(ctx); err != nil {
		return fmt.Errorf("bench: history journal: %w", err)
	}
	if err := r.measureRecovery(ctx); err != nil {
		return fmt.Errorf("bench: history recovery: %w", err)
	}
	if err := r.measureHeap(ctx); err != nil {
		return fmt.Errorf("bench: history heap: %w", err)
	}
	if err := r.measureHTTP(ctx); err != nil {
		return fmt.Errorf("bench: history HTTP: %w", err)
	}
	r.printTable()
	if cfg.ProfileDir != "" {
		return r.printProfiles()
	}
	return nil
}

// historyRun is one RunHistory: the platform and what was measured.
type historyRun struct {
	cfg HistoryConfig
	log *slog.Logger
	out io.Writer

	// world is the platform (NATS, the custodian, the journal, the node,
	// the operator) and its clock.
	world *cycleRun
	// gw serves the gateway over HTTP to world's node, and its clients.
	gw *potsRun

	// members[s] are size s's pots (s indexes cfg.Sizes); tokens[s][i] is
	// members[s][i]'s Authorization header.
	members [][]string
	tokens  [][]string
	// next numbers the measured requests (their pots and keys).
	next atomic.Int64

	// figures, in printing order.
	figures []*historyFigure
	// pages[s] are the items of size s's first pot's pages of orders and
	// of its statement, as served after the measurements.
	pages [][2]int
	// contributions[s] are size s's contributions/s, per repeat.
	contributions [][]float64
	// profiles are the CPU profiles written (one per size).
	profiles []cpuProfileFile
	// others is the cores the rest of the machine used while the HTTP
	// cells ran (-1: unknown).
	others float64
}

// historyFigure is one row of the table: a value per size and repeat.
type historyFigure struct {
	label string
	// values[s][rep] is size s's value in repeat rep (bytes, seconds or a
	// count, as format shows it).
	values [][]float64
	format func(float64) string
	// exempt, if set, says why the target does not hold the figure.
	exempt string
}

func (r *historyRun) figure(label string, format func(float64) string, exempt string) *historyFigure {
	f := &historyFigure{label: label, format: format, exempt: exempt, values: make([][]float64, len(r.cfg.Sizes))}
	r.figures = append(r.figures, f)
	return f
}

// startHistory starts the platform: the dealing cycle's world (bench
// cycle's) with the pots' idle timeout asked for, and the gateway on a
// loopback listener calling its node.
func startHistory(ctx context.Context, cfg HistoryConfig, root string, out io.Writer) (_ *historyRun, err error) {
	wcfg := CycleConfig{Callers: cfg.Callers, PhaseTimeout: cfg.PhaseTimeout, Logger: cfg.Logger}
	wcfg.EnsureDefaults()
	r := &historyRun{cfg: cfg, log: cfg.Logger, out: out, others: -1,
		world: &cycleRun{cfg: wcfg, log: cfg.Logger, out: out, potIdle: cfg.PotIdleTimeout}}
	defer func() {
		if err != nil {
			r.close()
		}
	}()
	if err := r.world.start(ctx, root); err != nil {
		return nil, err
	}
	r.gw = &potsRun{cfg: PotsConfig{HTTPClients: cfg.HTTPClients, Logger: cfg.Logger}, root: root, log: cfg.Logger,
		node: r.world.node, pots: r.world.node.Pots}
	quiet := slog.New(minLevel{cfg.Logger.Handler(), slog.LevelWarn})
	if err := r.gw.serveGateway(r.world.cat, quiet, nil); err != nil {
		return nil, err
	}
	for _, size := range cfg.Sizes {
		var members, tokens []string
		for i := range cfg.PotsPerSize {
			m := fmt.Sprintf("Y%07d-%04d", size, i)
			tok, err := r.gw.memberToken(m)
			if err != nil {
				return nil, err
			}
			members, tokens = append(members, m), append(tokens, tok)
		}
		r.members, r.tokens = append(r.members, members), append(r.tokens, tokens)
		r.contributions = append(r.contributions, nil)
	}
	return r, nil
}

// close stops the gateway, then the platform.
func (r *historyRun) close() {
	if r.gw != nil {
		r.gw.closeHTTP()
	}
	r.world.close()
}

// sizeOrder is the order the sizes are measured in a repeat: ascending,
// and every other repeat descending, so that whatever drifts over a run
// (the machine's other work, Pebble's compactions) favours no size.
func (r *historyRun) sizeOrder(rep int) []int {
	order := make([]int, len(r.cfg.Sizes))
	for s := range order {
		order[s] = s
	}
	if rep%2 == 1 {
		slices.Reverse(order)
	}
	return order
}

// historyOrder is one past order to place: the kth of a pot's.
type historyOrder struct {
	member string
	k      int
}

// build gives every pot its history. The pots are opened and funded, then
// on dealing days a week apart each places its share of its orders (at
// most OrdersPerDay), buys of historyOrderAmount of the catalogue's assets
// in turn, before the cut-off, and the day's cycle deals them (and settles
// the week before's); a last cycle, a week after the last orders, settles
// them with every key of the pots past its 7-day window, so that the pots
// retire everything closed. Every pot must then hold no order and no key.
func (r *historyRun) build(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, r.cfg.PhaseTimeout)
	defer cancel()
	w := r.world
	start := time.Now()
	procmem.ResetPeak()
	largest := r.cfg.Sizes[len(r.cfg.Sizes)-1]
	days := (largest + r.cfg.OrdersPerDay - 1) / r.cfg.OrdersPerDay
	day := cycleFirstDay
	w.setTime(day, 9, 0)
	var all []string
	for _, ms := range r.members {
		all = append(all, ms...)
	}
	if err := r.each(ctx, len(all), func(ctx context.Context, i int) error {
		err := w.call(ctx, all[i], &pb.PotRequest{IdempotencyKey: "open", Command: &pb.PotRequest_OpenPot{OpenPot: &pb.OpenPot{}}})
		if err == nil {
			err = w.call(ctx, all[i], &pb.PotRequest{IdempotencyKey: "fund",
				Command: &pb.PotRequest_Contribute{Contribute: &pb.Contribute{Amount: historyFunding}}})
		}
		return err
	}); err != nil {
		return fmt.Errorf("open pots: %w", err)
	}
	assets := w.cat.Assets()
	var placing, cycling time.Duration
	placed, settled := int64(0), int64(0)
	// The days after the last orders place none: they settle what is left,
	// a week apart (a holiday may push a week's settlements to the next),
	// until every trade has settled.
	for d := 0; d < days || settled < placed; d++ {
		if d >= days+historySettleWeeksMax {
			return fmt.Errorf("%d of %d trades settled %d weeks after the last orders", settled, placed, historySettleWeeksMax)
		}
		if d > 0 {
			day = weekLater(w.cal, day)
		}
		w.setTime(day, 9, 0)
		prices, err := w.dayPrices(1)
		if err != nil {
			return err
		}
		if _, err := w.op.PublishPrices(ctx, actors.PricesPublication{Date: day, Prices: prices, By: "bench"}); err != nil {
			return fmt.Errorf("prices of %s: %w", day, err)
		}
		// Day d places orders [size·d/days, size·(d+1)/days) of each pot.
		var orders []historyOrder
		for s, size := range r.cfg.Sizes {
			if d >= days {
				break
			}
			for _, m := range r.members[s] {
				for k := size * d / days; k < size*(d+1)/days; k++ {
					orders = append(orders, historyOrder{member: m, k: k})
				}
			}
		}
		pstart := time.Now()
		if err := r.each(ctx, len(orders), func(ctx context.Context, i int) error {
			o := orders[i]
			return w.call(ctx, o.member, &pb.PotRequest{IdempotencyKey: "o-" + strconv.Itoa(o.k),
				Command: &pb.PotRequest_PlaceOrder{PlaceOrder: &pb.PlaceOrder{Type: pb.OrderType_ORDER_TYPE_BUY,
					Asset: string(assets[o.k%len(assets)].ISIN), Amount: historyOrderAmount}}})
		}); err != nil {
			return fmt.Errorf("orders of %s: %w", day, err)
		}
		placingDay := time.Since(pstart)
		placing += placingDay
		w.setTime(day, 12, 30) // after the cut-off (11:00)
		cstart := time.Now()
		s, err := w.op.RunCycle(ctx, day, actors.CycleRunOptions{}, nil)
		if err != nil {
			return fmt.Errorf("cycle of %s: %w", day, err)
		}
		cyclingDay := time.Since(cstart)
		cycling += cyclingDay
		// What each day must have done, or the pots' histories are not
		// what the figures claim.
		placed += int64(len(orders))
		settled += s.TradesSettled
		if s.Trades != int64(len(orders)) || settled > placed {
			return fmt.Errorf("cycle of %s: %d trades, %d settled of %d placed, want %d trades", day, s.Trades, settled, placed, len(orders))
		}
		r.log.Info("history day", "day", d+1, "of", days, "date", day, "orders", len(orders), "settled", s.TradesSettled,
			"placing", placingDay.Round(time.Millisecond), "cycle", cyclingDay.Round(time.Millisecond),
			"elapsed", time.Since(start).Round(time.Second))
	}
	took := time.Since(start)
	fmt.Fprintf(r.out, "History: %d dealing days a week apart from %s, each pot placing its orders' share (at most %d a day) before the cut-off, each day's cycle dealing them and settling those due; the last cycle on %s, a week or more after the last orders, settled the rest with every key past its 7-day window. %d orders placed, dealt and settled in %s (placing %s, cycles %s); peak RSS %s.\n",
		days, cycleFirstDay, r.cfg.OrdersPerDay, day, settled, took.Round(time.Second), placing.Round(time.Second), cycling.Round(time.Second),
		mibOrUnknown(procmem.Peak()))
	// Snapshots are saved as pots passivate: the measurements start from
	// every pot passivated, with its snapshot at its last event.
	if err := r.waitPassivated(ctx); err != nil {
		return err
	}
	for _, ms := range r.members {
		for _, m := range ms {
			p, _, err := actors.RecoverPot(ctx, w.journal, m, r.log)
			if err != nil {
				return err
			}
			if len(p.Orders) > 0 || len(p.Movements) > 0 || len(p.Requests) > 0 {
				return fmt.Errorf("pot %s holds %d orders, %d movements and %d keys after its history: it did not retire them",
					m, len(p.Orders), len(p.Movements), len(p.Requests))
			}
		}
	}
	return nil
}

// weekLater is the first dealing day at least a week after d.
func weekLater(cal *domain.Calendar, d domain.Date) domain.Date {
	next := d.AddDays(7)
	if !cal.IsDealingDay(next) {
		next = cal.NextDealingDay(next)
	}
	return next
}

// each calls f for 0 … n-1 from Callers goroutines, and returns the first
// error.
func (r *historyRun) each(ctx context.Context, n int, f func(ctx context.Context, i int) error) error {
	return callIndexes(ctx, min(r.cfg.Callers, n), n, nil, f)
}

// waitPassivated waits until the node holds no active pot.
func (r *historyRun) waitPassivated(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, r.cfg.PotIdleTimeout+r.cfg.PhaseTimeout)
	defer cancel()
	t := time.NewTicker(50 * time.Millisecond)
	defer t.Stop()
	for r.gw.activePots() != 0 {
		select {
		case <-t.C:
		case <-ctx.Done():
			return fmt.Errorf("%.0f pots still active: %w", r.gw.activePots(), ctx.Err())
		}
	}
	return nil
}

// measureJournal reads each pot's stream: its events and their bytes (the
// bytes on disk, which grow with the history by design).
func (r *historyRun) measureJournal(ctx context.Context) error {
	events := r.figure("journal per pot: events", func(v float64) string { return fmt.Sprintf("%.0f", v) }, "the journal keeps every event")
	eventBytes := r.figure("journal per pot: event bytes", bytesText, "the journal keeps every event")
	for s, ms := range r.members {
		var n, b float64
		for _, m := range ms {
			for from := uint64(1); ; {
				page, err := r.world.journal.Read(ctx, actors.PotStream(m), from, 1000)
				if err != nil {
					return err
				}
				for _, e := range page {
					n++
					b += float64(len(e.Data))
				}
				if len(page) < 1000 {
					break
				}
				from += uint64(len(page))
			}
		}
		events.values[s] = []float64{n / float64(len(ms))}
		eventBytes.values[s] = []float64{b / float64(len(ms))}
	}
	return nil
}

// snapshotless is a journal without snapshots: RecoverPot replays a stream
// through it from its first event.
type snapshotless struct{ persistence.Journal }

func (snapshotless) LoadSnapshot(context.Context, string) (persistence.Snapshot, bool, error) {
	return persistence.Snapshot{}, false, nil
}

// measureRecovery recovers every pot from the journal, one at a time, as a
// pot's activation does (actors.RecoverPot): from its snapshot (saved when
// it passivated, at its last event), and from its first event; and
// measures the snapshot's bytes (the state recovered, encoded). Both
// recoveries must give the same state. The replays from the first event
// run after every recovery from a snapshot, and the collector runs before
// each size's pots: a large replay's garbage would otherwise be collected
// while the next pot recovers.
func (r *historyRun) measureRecovery(ctx context.Context) error {
	snapshot := r.figure("snapshot (the recovered state, encoded)", bytesText, "")
	fromSnapshot := r.figure("recovery from its snapshot (median of the pots)", secondsText, "")
	fromZero := r.figure("recovery from its first event (median of the pots)", secondsText, "it reads every event: the bytes on disk")
	j := r.world.journal
	// Each pot's first read comes from the disk, or the operating system's
	// cache: an unmeasured pass first, so that every measured recovery
	// finds its pot's blocks where the others found theirs.
	for _, ms := range r.members {
		for _, m := range ms {
			if _, _, err := actors.RecoverPot(ctx, j, m, r.log); err != nil {
				return err
			}
		}
	}
	// recoverAll recovers size s's pots through journal j, returning the
	// median time and the states recovered.
	recoverAll := func(s int, j persistence.Journal) (float64, []*domain.Pot, error) {
		runtime.GC()
		var took []float64
		var pots []*domain.Pot
		for _, m := range r.members[s] {
			start := time.Now()
			p, _, err := actors.RecoverPot(ctx, j, m, r.log)
			if err != nil {
				return 0, nil, err
			}
			took = append(took, time.Since(start).Seconds())
			pots = append(pots, p)
		}
		return median(took, identity), pots, nil
	}
	recovered := make([][]*domain.Pot, len(r.cfg.Sizes))
	for rep := range r.cfg.Repeats {
		for _, s := range r.sizeOrder(rep) {
			t, pots, err := recoverAll(s, j)
			if err != nil {
				return err
			}
			fromSnapshot.values[s] = append(fromSnapshot.values[s], t)
			recovered[s] = pots
		}
	}
	for rep := range r.cfg.Repeats {
		for _, s := range r.sizeOrder(rep) {
			t, pots, err := recoverAll(s, snapshotless{j})
			if err != nil {
				return err
			}
			fromZero.values[s] = append(fromZero.values[s], t)
			if rep > 0 {
				continue
			}
			var snapBytes float64
			for i, m := range r.members[s] {
				p := recovered[s][i]
				enc, err := codec.EncodePotSnapshot(p)
				if err != nil {
					return err
				}
				encZero, err := codec.EncodePotSnapshot(pots[i])
				if err != nil {
					return err
				}
				if !bytes.Equal(enc, encZero) {
					return fmt.Errorf("pot %s recovered from its snapshot differs from its replay from the first event (%d and %d bytes encoded)", m, len(enc), len(encZero))
				}
				stored, found, err := j.LoadSnapshot(ctx, actors.PotStream(m))
				if err != nil {
					return err
				}
				if !found || stored.Version != p.Version {
					return fmt.Errorf("pot %s: stored snapshot at version %d (found %t), want its last event %d: recovery would replay events", m, stored.Version, found, p.Version)
				}
				snapBytes += float64(len(enc))
			}
			snapshot.values[s] = []float64{snapBytes / float64(len(r.members[s]))}
		}
	}
	return nil
}

func identity(v float64) float64 { return v }

// measureHeap measures heap per active pot: for each size, with every pot
// passivated, the live heap after a GC is read; the size's pots are
// activated (a GetPot each) and it is read again once their calls' timers
// have fired; then a third time once the pots have passivated (their idle
// timeout). The heap with the pots active, minus the heap without them
// (the first and third readings, interpolated to the second's time: the
// process's heap drifts by some KB a second whatever the pots do), over
// the pots, is what an active pot of that size holds beyond what stays
// once it passivated.
func (r *historyRun) measureHeap(ctx context.Context) error {
	heap := r.figure("heap per active pot", bytesText, "")
	type reading struct {
		at    time.Time
		bytes float64
	}
	read := func() (reading, error) {
		b, _, err := heapSnapshot("", "")
		return reading{at: time.Now(), bytes: float64(b)}, err
	}
	for rep := range r.cfg.Repeats {
		for _, s := range r.sizeOrder(rep) {
			if err := r.waitPassivated(ctx); err != nil {
				return err
			}
			before, err := read()
			if err != nil {
				return err
			}
			ms := r.members[s]
			for _, m := range ms {
				if err := r.world.call(ctx, m, &pb.PotRequest{Command: &pb.PotRequest_GetPot{GetPot: &pb.GetPot{}}}); err != nil {
					return err
				}
			}
			select {
			case <-time.After(r.cfg.HeapSettle):
			case <-ctx.Done():
				return ctx.Err()
			}
			active, err := read()
			if err != nil {
				return err
			}
			if n := r.gw.activePots(); n != float64(len(ms)) {
				return fmt.Errorf("%.0f pots active when the heap was read, want %d: raise the pot idle timeout (%s) above the heap settle (%s) by more", n, len(ms), r.cfg.PotIdleTimeout, r.cfg.HeapSettle)
			}
			if err := r.waitPassivated(ctx); err != nil {
				return err
			}
			after, err := read()
			if err != nil {
				return err
			}
			share := active.at.Sub(before.at).Seconds() / after.at.Sub(before.at).Seconds()
			without := before.bytes + share*(after.bytes-before.bytes)
			perPot := (active.bytes - without) / float64(len(ms))
			heap.values[s] = append(heap.values[s], perPot)
			r.log.Info("history heap", "size", r.cfg.Sizes[s], "repeat", rep+1, "before_b", int(before.bytes), "active_b", int(active.bytes),
				"after_b", int(after.bytes), "bytes_per_pot", int(perPot))
		}
	}
	return nil
}

// measureHTTP measures, through the gateway, the CPU of a contribution
// (the process's CPU time per request, the HTTP clients included), then the
// latency and the CPU of pages of orders and of the statement, each size in
// turn, Repeats times; and what the rest of the machine used meanwhile.
func (r *historyRun) measureHTTP(ctx context.Context) error {
	busy0, total0, machineKnown := machineCPU()
	cpu0, start := processCPU(), time.Now()
	cpu := r.figure("CPU per contribution over HTTP", secondsText, "")
	for rep := range r.cfg.Repeats {
		for _, s := range r.sizeOrder(rep) {
			stopClock := r.tickClock()
			res, err := r.cell(ctx, rep, s, "contributions", func(ctx context.Context) (int, error) { return r.contribute(ctx, s) })
			stopClock()
			if err != nil {
				return err
			}
			cpu.values[s] = append(cpu.values[s], res.cpuPerOp.Seconds())
			r.contributions[s] = append(r.contributions[s], res.appends)
		}
	}
	// The smallest pots' pages are not like the others': their page of 50
	// orders is shorter, and their statement's first 50 entries are mostly
	// the measured contributions where the others' are buys. The pages as
	// long as the smallest pots' orders (their statement's: the funding
	// and a buy per order, at every size) show what the history's size
	// costs alone.
	type page struct{ name, path, profile string }
	pages := []page{{fmt.Sprintf("GET orders?limit=%d", historyPageLimit), fmt.Sprintf("/orders?limit=%d", historyPageLimit), "orders"}}
	first := r.cfg.Sizes[0]
	if first < historyPageLimit {
		pages = append(pages, page{fmt.Sprintf("GET orders?limit=%d (as long at every size)", first), fmt.Sprintf("/orders?limit=%d", first), ""})
	}
	pages = append(pages, page{fmt.Sprintf("GET statement?limit=%d", historyPageLimit), fmt.Sprintf("/statement?limit=%d", historyPageLimit), "statement"})
	if first+1 < historyPageLimit {
		pages = append(pages, page{fmt.Sprintf("GET statement?limit=%d (alike at every size)", first+1), fmt.Sprintf("/statement?limit=%d", first+1), ""})
	}
	var p50s, p99s, cpus []*historyFigure
	for _, pg := range pages {
		p50s = append(p50s, r.figure(pg.name+", p50", secondsText, ""))
		p99s = append(p99s, r.figure(pg.name+", p99", secondsText, ""))
		cpus = append(cpus, r.figure(pg.name+", CPU", secondsText, ""))
	}
	for rep := range r.cfg.Repeats {
		for _, s := range r.sizeOrder(rep) {
			for i, pg := range pages {
				res, err := r.cell(ctx, rep, s, pg.profile, func(ctx context.Context) (int, error) { return 0, r.getPage(ctx, s, pg.path) })
				if err != nil {
					return fmt.Errorf("%s: %w", pg.name, err)
				}
				p50s[i].values[s] = append(p50s[i].values[s], res.p50.Seconds())
				p99s[i].values[s] = append(p99s[i].values[s], res.p99.Seconds())
				cpus[i].values[s] = append(cpus[i].values[s], res.cpuPerOp.Seconds())
			}
		}
	}
	if busy1, total1, ok := machineCPU(); ok && machineKnown {
		wall := time.Since(start).Seconds()
		cores := (total1 - total0).Seconds() / wall
		r.others = ((busy1 - busy0) - (processCPU() - cpu0)).Seconds() / wall
		r.log.Info("history HTTP cells", "cores", cores, "others", r.others)
	}
	for s := range r.cfg.Sizes {
		orders, entries, err := r.pageItems(ctx, s)
		if err != nil {
			return err
		}
		if want := min(r.cfg.Sizes[s], historyPageLimit); orders != want {
			return fmt.Errorf("pot %s's page of orders has %d, want %d: the history read model did not serve its orders", r.members[s][0], orders, want)
		}
		r.pages = append(r.pages, [2]int{orders, entries})
	}
	return nil
}

// cell measures op on size s's pots, HTTPClients at once, with a CPU
// profile of the last repeat into ProfileDir/cpu-<profile>-<size>.pprof if
// profile is set.
func (r *historyRun) cell(ctx context.Context, rep, s int, profile string, op func(ctx context.Context) (int, error)) (rate, error) {
	if profile != "" && r.cfg.ProfileDir != "" && rep == r.cfg.Repeats-1 {
		path := filepath.Join(r.cfg.ProfileDir, fmt.Sprintf("cpu-%s-%d.pprof", profile, r.cfg.Sizes[s]))
		stop, started, err := startCPUProfile(path, r.log)
		if err != nil {
			return rate{}, err
		}
		defer stop()
		if started {
			r.profiles = append(r.profiles, cpuProfileFile{path: path, label: fmt.Sprintf("%s of pots of %s orders", profile, groupDigits(r.cfg.Sizes[s]))})
		}
	}
	shape := loadShape{workers: r.cfg.HTTPClients, warmup: r.cfg.Duration / 5, duration: r.cfg.Duration}
	res, err := drive(ctx, shape, func(ctx context.Context, _ int) (int, error) { return op(ctx) })
	if err != nil {
		return rate{}, fmt.Errorf("size %d: %w", r.cfg.Sizes[s], err)
	}
	r.log.Info("history cell", "cell", profile, "size", r.cfg.Sizes[s], "repeat", rep+1, "ops_s", int(res.appends),
		"cpu_per_op", res.cpuPerOp, "p50", res.p50, "p99", res.p99)
	return res, nil
}

// tickClock moves the platform's time on by historyClockJump every
// historyClockTick until stop is called.
func (r *historyRun) tickClock() (stop func()) {
	done := make(chan struct{})
	var wg sync.WaitGroup
	wg.Go(func() {
		t := time.NewTicker(historyClockTick)
		defer t.Stop()
		for {
			select {
			case <-t.C:
				r.world.advanceClock(historyClockJump)
			case <-done:
				return
			}
		}
	})
	return func() { close(done); wg.Wait() }
}

// nextPot returns the number of the next request and the index of its pot
// among size s's.
func (r *historyRun) nextPot(s int) (int64, int) {
	n := r.next.Add(1)
	return n, int(n % int64(len(r.members[s])))
}

// contribute posts a contribution to the next of size s's pots.
func (r *historyRun) contribute(ctx context.Context, s int) (int, error) {
	n, i := r.nextPot(s)
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, r.gw.url+"/v1/pots/"+r.members[s][i]+"/contributions",
		strings.NewReader(`{"amount":"`+historyContribution+`"}`))
	if err != nil {
		return 0, err
	}
	req.Header.Set("Authorization", r.tokens[s][i])
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Idempotency-Key", "c-"+strconv.FormatInt(n, 10))
	return 2, r.gw.httpDo(r.gw.http, req, http.StatusAccepted)
}

// getPage gets a page (path after the pot's) of the next of size s's pots.
func (r *historyRun) getPage(ctx context.Context, s int, path string) error {
	_, i := r.nextPot(s)
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, r.gw.url+"/v1/pots/"+r.members[s][i]+path, nil)
	if err != nil {
		return err
	}
	req.Header.Set("Authorization", r.tokens[s][i])
	return r.gw.httpDo(r.gw.http, req, http.StatusOK)
}

// pageItems are the items of size s's first pot's pages of orders and of
// its statement, as the measured requests get them.
func (r *historyRun) pageItems(ctx context.Context, s int) (orders, entries int, err error) {
	get := func(path string, into any) error {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, r.gw.url+"/v1/pots/"+r.members[s][0]+path, nil)
		if err != nil {
			return err
		}
		req.Header.Set("Authorization", r.tokens[s][0])
		resp, err := r.gw.http.Do(req)
		if err != nil {
			return err
		}
		defer resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			return fmt.Errorf("GET %s answered %d", req.URL.Path, resp.StatusCode)
		}
		return json.NewDecoder(resp.Body).Decode(into)
	}
	var list struct{ Orders []json.RawMessage }
	var st struct{ Entries []json.RawMessage }
	if err := get(fmt.Sprintf("/orders?limit=%d", historyPageLimit), &list); err != nil {
		return 0, 0, err
	}
	if err := get(fmt.Sprintf("/statement?limit=%d", historyPageLimit), &st); err != nil {
		return 0, 0, err
	}
	return len(list.Orders), len(st.Entries), nil
}

// printTable prints each figure per size, each size's ratio to the first
// and the verdict against historyRatioTarget.
func (r *historyRun) printTable() {
	sizes := r.cfg.Sizes
	first := groupDigits(sizes[0])
	fmt.Fprintf(r.out, "%-52s", "figure (per pot)")
	for _, size := range sizes {
		fmt.Fprintf(r.out, " %15s", groupDigits(size)+" orders")
	}
	for _, size := range sizes[1:] {
		fmt.Fprintf(r.out, " %14s", groupDigits(size)+" ÷ "+first)
	}
	fmt.Fprintf(r.out, "  target\n")
	var missed []string
	for _, f := range r.figures {
		fmt.Fprintf(r.out, "%-52s", f.label)
		for s := range sizes {
			fmt.Fprintf(r.out, " %15s", f.format(median(f.values[s], identity)))
		}
		last := 0.0
		for s := 1; s < len(sizes); s++ {
			last = sameRepeatRatio(f.values[s], f.values[0])
			fmt.Fprintf(r.out, " %14.2f", last)
		}
		switch {
		case f.exempt != "":
			fmt.Fprintf(r.out, "  exempt: %s\n", f.exempt)
		case last <= historyRatioTarget:
			fmt.Fprintf(r.out, "  met\n")
		default:
			fmt.Fprintf(r.out, "  MISSED\n")
			missed = append(missed, f.label)
		}
	}
	fmt.Fprintf(r.out, "(medians over %d repeat(s) and, for recovery, over the %d pots of a size; a ratio is the median of the same-repeat ratios. Heap per active pot: the live heap after a GC with the size's pots active, minus the same once they passivated, over the pots. CPU per contribution: this process's CPU time per request, HTTP clients included, %d clients over the size's pots, the platform's time jumping %s every %s.)\n",
		r.cfg.Repeats, r.cfg.PotsPerSize, r.cfg.HTTPClients, historyClockJump, historyClockTick)
	if r.others >= 0 {
		fmt.Fprintf(r.out, "(the rest of the machine used %.2f cores while the HTTP cells ran)\n", r.others)
	}
	fmt.Fprintf(r.out, "%-52s", "contributions/s (for reading the CPU; not a target)")
	for s := range sizes {
		fmt.Fprintf(r.out, " %15.0f", median(r.contributions[s], identity))
	}
	fmt.Fprintln(r.out)
	fmt.Fprintf(r.out, "%-52s", "items on a page: orders, statement entries")
	for s := range sizes {
		fmt.Fprintf(r.out, " %15s", fmt.Sprintf("%d, %d", r.pages[s][0], r.pages[s][1]))
	}
	fmt.Fprintln(r.out)
	verdict := "met"
	if len(missed) > 0 {
		verdict = "MISSED on " + strings.Join(missed, "; ")
	}
	fmt.Fprintf(r.out, "\nTarget: the %s-order pot within %.1f× of the %s-order pot on every figure but the bytes on disk: %s.\n\n",
		groupDigits(sizes[len(sizes)-1]), historyRatioTarget, first, verdict)
}

// sameRepeatRatio is the median over the repeats of num's value over
// den's in the same repeat (a figure measured once has one).
func sameRepeatRatio(num, den []float64) float64 {
	var rs []float64
	for i := range min(len(num), len(den)) {
		if den[i] != 0 {
			rs = append(rs, num[i]/den[i])
		}
	}
	return median(rs, identity)
}

// printProfiles summarizes the CPU profiles of the contributions cells.
func (r *historyRun) printProfiles() error {
	for _, c := range r.profiles {
		data, err := os.ReadFile(c.path)
		if err != nil {
			return err
		}
		if len(data) == 0 {
			continue
		}
		p, err := parseProfile(data)
		if err != nil {
			return err
		}
		total, byArea, byPackage, byFunction, err := profileShares(p, nil, "cpu", historyCPUAreas, nil)
		if err != nil {
			return err
		}
		fmt.Fprintf(r.out, "Where the CPU went: %s, last repeat (%s, warm-up included: %s of CPU):\n", c.label, c.path, time.Duration(total).Round(time.Millisecond))
		writeShares(r.out, total, byArea, byPackage, byFunction, 12, func(v int64) string { return time.Duration(v).Round(time.Millisecond).String() })
		fmt.Fprintln(r.out)
	}
	return nil
}

// historyCPUAreas are the pots' areas and the history's own.
var historyCPUAreas = append(slices.Clone(cpuAreas),
	area{"history read model (projection, reads)", []string{mt + "history."}},
	area{"  retiring closed work (domain.(*Pot).retire)", []string{mt + "domain.(*Pot).retire"}},
)

func bytesText(v float64) string { return groupDigits(int(v+0.5)) + " B" }

func secondsText(v float64) string {
	return roundDuration(time.Duration(v * float64(time.Second))).String()
}

// groupDigits writes n with a comma every three digits.
func groupDigits(n int) string {
	s := strconv.Itoa(n)
	neg := strings.HasPrefix(s, "-")
	s = strings.TrimPrefix(s, "-")
	var b strings.Builder
	for i, c := range s {
		if i > 0 && (len(s)-i)%3 == 0 {
			b.WriteByte(',')
		}
		b.WriteRune(c)
	}
	if neg {
		return "-" + b.String()
	}
	return b.String()
}

// sizesText lists sizes with their digits grouped.
func sizesText(sizes []int, sep string) string {
	parts := make([]string, len(sizes))
	for i, s := range sizes {
		parts[i] = groupDigits(s)
	}
	return strings.Join(parts, sep)
}
