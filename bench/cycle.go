package bench

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math"
	"path/filepath"
	"runtime"
	"runtime/debug"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/acme/mastertrust/actors"
	"github.com/acme/mastertrust/cluster"
	"github.com/acme/mastertrust/custodian"
	"github.com/acme/mastertrust/custodian/simulator"
	"github.com/acme/mastertrust/domain"
	"github.com/acme/mastertrust/internal/natsauth"
	"github.com/acme/mastertrust/internal/natsembed"
	"github.com/acme/mastertrust/persistence"
	"github.com/acme/mastertrust/persistence/pebble"
	"github.com/acme/mastertrust/platform"
	"github.com/acme/mastertrust/proto/pb"
)

// The dealing-cycle workload: a whole platform in one process —
// an embedded NATS server, the simulated custodian, the Pebble journal on
// disk and one node hosting the pots and the dealing grains, on a clock the
// run moves — many pots opened and funded, then dealing days run as an
// operator runs them, then reconciliation.

// Targets (docs/performance.md, "Targets"), printed beside the figures.
const (
	// cycleTarget: one dealing day's whole cycle for 100K pots.
	cycleTarget = 30 * time.Second
	// reconcileTarget: a reconciliation of 100K pots.
	reconcileTarget = 2 * time.Second
)

// cycleSteps are the steps of a cycle (actors/cycle.go) in running order,
// as CycleSummary.StepMicros names them.
var cycleSteps = []string{"settle", "cut-off", "prices", "net", "orders", "executions", "allocate", "rebalance"}

// cycleStart names, in cycleDay.use, the window from the run request to the
// first poll that saw a step running: the run's start (the cycle grain's
// activation, the run request's checks and recording) and whatever part of
// the first steps the polls did not see.
const cycleStart = "(start)"

// Assets whose prices the drift day moves (ISINs of the default catalogue).
// With the equity alone up 30%, a cautious pot (20% equity) ends 4.5 points
// over its target, inside its 5-point band; with the bonds down 20% as well,
// every profile leaves its band.
const (
	cycleDriftUp   = "GB00BN7Q2L69" // ACME Global Equity Index Fund: +30%
	cycleDriftDown = "IE00BF4W7M71" // ACME Global Bond Index Fund: −20%
)

// cycleFirstDay is the first dealing day of a run (a Monday).
var cycleFirstDay = domain.MustDate("2026-11-23")

// CycleConfig configures RunCycle. Zero fields take the defaults named on
// each.
type CycleConfig struct {
	// Pots are opened before the first day, each with one contribution
	// (£50 to £10,000): nine in ten with a risk profile (cautious,
	// balanced, adventurous as 3:4:2), one in ten self-directed (its
	// contribution stays cash). Default 100,000.
	Pots int
	// Groups of the journal. Its last group is the system group; the pots
	// spread over the others, one aggregator each. Default 64.
	Groups uint32
	// Days are the dealing days run, each with the rebalance sweep:
	//   - day 1 (2026-11-23) deals every profiled pot's contribution;
	//   - day 2 is as many dealing days later as the longest settlement
	//     period of the catalogue (T+4), so that day 1's units have settled
	//     (its settle step settles them) and can be sold; its prices move
	//     the global equity fund up 30% and the global bond fund down 20%,
	//     so that every profiled pot drifts out of its band and places a
	//     rebalance (sells, and buys funded by their proceeds) for the next
	//     dealing day;
	//   - day 3 and later are the following dealing days at day 2's prices
	//     (with DailyActivity, prices that walk from day 3 on): day 3 deals
	//     the rebalances.
	// At most cycleDaysMax. Default 2.
	Days int
	// DailyActivity is the fraction of the pots, in [0, 1], that make new
	// requests before each day's cycle, a different seeded draw each day,
	// through the path the setup uses: each a contribution (a new
	// idempotency key), and one in four of them an order too (a sell of
	// 10% of a holding with units available, or, for a self-directed pot,
	// else a buy with half the contribution). With it, from day 3 on each
	// day's prices are the day before's moved by a seeded walk (1% a day),
	// so that rebalances happen now and then. Default 0: the same pots
	// and trades as ever, no new requests after the setup.
	DailyActivity float64
	// DataDir holds the journal, JetStream's files and the custodian's
	// ledger, on disk (removed afterwards if RunCycle made it). Default: a
	// new temporary directory. Put it on the disk you want measured.
	DataDir string
	// Callers are the goroutines opening and funding pots at once (each
	// waits for its answer). Default 64.
	Callers int
	// Dealing configures the dealing grains. Default: the platform's
	// defaults, as `mastertrust dev` runs them (32 pot calls in flight per
	// aggregator, execution reports polled every ResendInterval/4 = 0.5 s).
	Dealing actors.DealingConfig
	// PhaseTimeout bounds the setup, each cycle and each reconciliation
	// (and is the operator's call timeout, so that a long reconciliation
	// is measured rather than cut off at the operator's default of 1 min).
	// Default 15 min.
	PhaseTimeout time.Duration
	// HeapSettle is waited after the setup and after each day, before the
	// heap is read, so that the calls' protoactor futures (kept until each
	// call's timeout fires) are gone. Default: the node's request timeout
	// (5 s) and 1 s more.
	HeapSettle time.Duration
	// ProfileDir, if set, receives a CPU profile of each day's cycle
	// (cpu-cycle-day<N>.pprof) and of each reconciliation
	// (cpu-reconcile-fast.pprof, cpu-reconcile-deep.pprof), and heap
	// profiles before and after the setup, after each day and after the
	// cycles (heap-before.pprof, heap-setup.pprof, heap-day<N>.pprof,
	// heap-cycles.pprof; compare with go tool pprof -base); RunCycle
	// prints a summary of each (of the first three days' cycles and the
	// last's), and, after more than three days, what grew from day 3's
	// profiles to the last day's.
	// Default: no profiles.
	ProfileDir string
	// ScaleCheck runs the whole workload twice in this process, each on a
	// fresh platform and data directory: first at a tenth of Pots, then at
	// Pots, and prints each step's time, CPU, peak heap and peak RSS at Pots
	// over the same at a tenth, flagging time ratios above
	// scaleCheckTimeRatioMax. Pots must be 10 or more.
	ScaleCheck bool
	// FastOnly skips the deep reconciliation, which recovers every pot
	// from its journal (~0.4 ms of CPU a pot: minutes at a million).
	FastOnly bool
	// MemoryLimitBytes, if positive, is the Go runtime's soft memory limit
	// during the run (platform.Config.MemoryLimitBytes; the one before is
	// set back afterwards). At least platform.MemoryLimitBytesMin. Default
	// 0: Go's own (GOMEMLIMIT, or none).
	MemoryLimitBytes int64
	// JournalCacheBytes is the Pebble journal's block cache
	// (platform.Config.JournalCacheBytes). Default 64 MiB.
	JournalCacheBytes int64
	// Logger reports progress (Info) and the platform's warnings.
	// Default: discard.
	Logger *slog.Logger
}

// EnsureDefaults fills zero fields.
func (c *CycleConfig) EnsureDefaults() {
	if c.Pots == 0 {
		c.Pots = 100_000
	}
	if c.Groups == 0 {
		c.Groups = 64
	}
	if c.Days == 0 {
		c.Days = 2
	}
	if c.Callers == 0 {
		c.Callers = 64
	}
	if c.PhaseTimeout == 0 {
		c.PhaseTimeout = 15 * time.Minute
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	c.Dealing.EnsureDefaults()
}

// Validate reports every field out of range.
func (c *CycleConfig) Validate() error {
	var errs []error
	bad := func(format string, args ...any) { errs = append(errs, fmt.Errorf(format, args...)) }
	if c.Pots < 1 || c.Pots > 10_000_000 {
		bad("pots %d outside [1, 10,000,000]", c.Pots)
	}
	if c.ScaleCheck && c.Pots < 10 {
		bad("pots %d below 10 for the scale check (it runs a tenth of them too)", c.Pots)
	}
	if c.Groups < actors.JournalGroupsMin || c.Groups > persistence.GroupsMax {
		bad("groups %d outside [%d, %d]", c.Groups, actors.JournalGroupsMin, persistence.GroupsMax)
	}
	if c.Days < 1 || c.Days > cycleDaysMax {
		bad("days %d outside [1, %d]", c.Days, cycleDaysMax)
	}
	if !(c.DailyActivity >= 0 && c.DailyActivity <= 1) {
		bad("daily activity %g outside [0, 1]", c.DailyActivity)
	}
	if c.Callers < 1 || c.Callers > 4096 {
		bad("callers %d outside [1, 4096]", c.Callers)
	}
	if c.PhaseTimeout < time.Second {
		bad("phase timeout %s below 1s", c.PhaseTimeout)
	}
	if c.MemoryLimitBytes < 0 || (c.MemoryLimitBytes > 0 && c.MemoryLimitBytes < platform.MemoryLimitBytesMin) {
		bad("memory limit %d bytes: want 0 (Go's own) or at least %s", c.MemoryLimitBytes, platform.FormatByteSize(platform.MemoryLimitBytesMin))
	}
	if c.HeapSettle < 0 {
		bad("heap settle %s is negative", c.HeapSettle)
	}
	if c.Dealing.PotCallsInFlight < 1 {
		bad("dealing pot calls in flight %d below 1", c.Dealing.PotCallsInFlight)
	}
	if c.Dealing.ResendInterval < 4*time.Millisecond {
		bad("dealing resend interval %s below 4ms", c.Dealing.ResendInterval)
	}
	return errors.Join(errs...)
}

// RunCycle measures the dealing cycle and reconciliation on one in-process
// node and prints to out: the setup (pots opened and funded per second, the
// heap per pot afterwards), for each dealing day the whole cycle's time and
// each step's (CycleSummary.StepMicros) with what the day did (trades, pots
// allocated, checked, traded), then a fast and a deep reconciliation's
// times, and a summary against the targets (a cycle ≤ 30 s and a
// reconciliation ≤ 2 s for 100K pots). A reconciliation with a break is an
// error: a break is a bug. With cfg.ProfileDir it profiles the cycles and
// reconciliations and prints where the CPU and the heap went.
//
// Each step of a day, the setup and each reconciliation is printed with
// its wall time, the process's CPU time, peak heap and peak RSS (see
// stepUse); with cfg.ScaleCheck the whole run is made at a tenth of the
// pots first, and the ratios of each step's figures follow (RunCycle's
// scale check).
func RunCycle(ctx context.Context, cfg CycleConfig, out io.Writer) error {
	cfg.EnsureDefaults()
	if err := cfg.Validate(); err != nil {
		return fmt.Errorf("bench: cycle config: %w", err)
	}
	defer platform.ApplyMemoryLimit(cfg.MemoryLimitBytes, cfg.Logger)()
	if cfg.ScaleCheck {
		return runScaleCheck(ctx, cfg, out)
	}
	_, err := runCycleOnce(ctx, cfg, out)
	return err
}

// runCycleOnce is one RunCycle at cfg.Pots, returning what it measured.
func runCycleOnce(ctx context.Context, cfg CycleConfig, out io.Writer) (_ *cycleRun, err error) {
	root, removeRoot, err := workDirs(cfg.DataDir, "mastertrust-bench-cycle-*", cfg.ProfileDir)
	if err != nil {
		return nil, err
	}
	defer removeRoot()
	r := &cycleRun{cfg: cfg, log: cfg.Logger, out: out}
	if r.heapBefore, r.heapProfileBefore, err = heapSnapshot(r.cfg.ProfileDir, "heap-before.pprof"); err != nil {
		return nil, err
	}
	if err := r.start(ctx, root); err != nil {
		return nil, fmt.Errorf("bench: cycle world: %w", err)
	}
	defer r.close()
	r.meter = startStepMeter()
	defer r.meter.close()

	fmt.Fprintf(out, "Dealing cycle: one in-process node (platform.StartNode) with the Pebble journal on disk (%d groups), embedded NATS and the simulated custodian; %d pots; %d dealing day(s), each run with actors.Operator.RunCycle and the rebalance sweep; GOMAXPROCS %d; %s; pots passivate after %s quiet once more than %d are active.\n\n",
		cfg.Groups, cfg.Pots, cfg.Days, runtime.GOMAXPROCS(0), memoryLimitText(), actors.DefaultPotResidentIdle, actors.DefaultPotResidentMax)
	if err := r.setup(ctx); err != nil {
		return nil, fmt.Errorf("bench: cycle setup: %w", err)
	}
	days := r.days()
	for i, day := range days {
		if err := r.runDay(ctx, i+1, day); err != nil {
			return nil, fmt.Errorf("bench: cycle day %d (%s): %w", i+1, day, err)
		}
	}
	if r.heapCycles, r.heapProfileCycles, err = heapSnapshot(r.cfg.ProfileDir, "heap-cycles.pprof"); err != nil {
		return nil, err
	}
	fmt.Fprintf(out, "Live heap after the cycles: %.1f MiB, %.0f B per pot (the pot grains and the aggregators' replicas); the journal on disk: %.1f MiB.\n\n",
		mib(r.heapCycles), perPot(r.heapCycles, r.heapBefore, cfg.Pots), mib(r.journal.DiskSpaceBytes()))
	for _, deep := range []bool{false, true} {
		if deep && cfg.FastOnly {
			break
		}
		if err := r.reconcile(ctx, deep); err != nil {
			return nil, fmt.Errorf("bench: reconciliation: %w", err)
		}
	}
	r.printSummary()
	if cfg.ProfileDir != "" {
		if err := r.printProfiles(); err != nil {
			return nil, err
		}
	}
	return r, nil
}

// memoryLimitText describes the Go runtime's memory limit in effect.
func memoryLimitText() string {
	if limit := debug.SetMemoryLimit(-1); limit != math.MaxInt64 {
		return "Go memory limit " + platform.FormatByteSize(limit)
	}
	return "no Go memory limit"
}

// cycleRun is one RunCycle: the world under test and what was measured.
type cycleRun struct {
	cfg CycleConfig
	log *slog.Logger
	out io.Writer

	nats    *natsembed.Server
	nc      *nats.Conn // the node's
	custNC  *nats.Conn // the custodian simulator's
	sim     *simulator.Simulator
	journal *pebble.Store
	node    *platform.Node
	op      actors.Operator
	cal     *domain.Calendar
	cat     *domain.Catalogue

	// mu guards clock, the platform's time (NodeConfig.Now).
	mu    sync.Mutex
	clock time.Time
	// potIdle is the node's PotIdleTimeout (0: the cluster's).
	potIdle time.Duration

	// profiled counts the pots opened with a risk profile.
	profiled int
	// priceLevels are the latest day's prices, before rounding (dayPrices).
	priceLevels map[domain.ISIN]float64

	// meter measures the steps' windows; setupUse is the setup's (opening
	// and funding the pots).
	meter    *stepMeter
	setupUse stepUse

	setupTook                                              time.Duration
	setupCores                                             float64
	heapBefore, heapSetup, heapCycles                      uint64
	heapProfileBefore, heapProfileSetup, heapProfileCycles *profile
	results                                                []cycleDay
	recons                                                 []reconResult
	// cpuProfiles are the CPU profiles written, with what each covers.
	cpuProfiles []cpuProfileFile
}

// cycleDay is one day's measurement.
type cycleDay struct {
	n     int
	date  domain.Date
	wall  time.Duration // RunCycle, call to completed summary
	cpu   time.Duration // the process's CPU time over the cycle
	cores float64       // cpu ÷ wall
	// heapAfter is the live heap after the day (a GC, HeapSettle after the
	// cycle).
	heapAfter uint64
	// activity is what the day's new requests did (nil: none).
	activity *dayActivity
	summary  *pb.CycleSummary
	// use is what the process used in each step's window (and, as
	// cycleStart, from the run request to the first poll that saw a step
	// running), for the steps
	// the operator's polls saw running: a window runs from the poll that
	// first saw the step to the poll that first saw another step or the
	// cycle's end, so its edges are as fine as cycleRun.op's PollInterval
	// (20 ms). A step that began and ended between two polls has no
	// window: its use is in the window of the step seen before it (or, for
	// the first, after it).
	use map[string]stepUse
}

type reconResult struct {
	deep     bool
	wall     time.Duration // the operator's call
	recorded time.Duration // the report's DurationMicros (the grain's run)
	cores    float64
	use      stepUse
	report   *pb.ReconciliationReport
}

type cpuProfileFile struct {
	path, label string
	day         int // the day whose cycle it covers; 0: a reconciliation
}

// start starts the world: NATS with JetStream under root/nats, the
// custodian simulator (root/custodian), the Pebble journal (root/journal)
// and one node, as platform.StartDev assembles them, without the gateway.
func (r *cycleRun) start(ctx context.Context, root string) (err error) {
	defer func() {
		if err != nil {
			r.close()
		}
	}()
	// The platform's warnings explain odd numbers; its Info lines do not.
	quiet := slog.New(minLevel{r.log.Handler(), slog.LevelWarn})
	r.cat = domain.DefaultCatalogue()
	if r.cal, err = platform.NewCalendar(); err != nil {
		return err
	}
	r.clock = cycleFirstDay.At(9, 0, r.cal.Location())
	// As dev: TLS, and the node and the custodian each with its role's
	// credential, so that the figures include what dev pays for them.
	secrets := filepath.Join(root, "secrets")
	if _, err := natsauth.Ensure(secrets, nil); err != nil {
		return err
	}
	auth, err := natsauth.LoadServer(secrets)
	if err != nil {
		return err
	}
	if r.nats, err = natsembed.Start(natsembed.Options{Dir: filepath.Join(root, "nats"), Port: -1, Logger: quiet,
		Users: auth.Users, TLS: auth.TLS}); err != nil {
		return err
	}
	connect := func(role natsauth.Role) (*nats.Conn, error) {
		opts, err := natsauth.ClientFromDir(secrets, role).Options()
		if err != nil {
			return nil, err
		}
		return nats.Connect(r.nats.ClientURL(), append(opts, nats.Name("mastertrust-bench-cycle-"+string(role)))...)
	}
	if r.nc, err = connect(natsauth.RoleNode); err != nil {
		return err
	}
	if r.custNC, err = connect(natsauth.RoleCustodian); err != nil {
		return err
	}
	client, err := custodian.NewClient(r.nc, custodian.ClientConfig{Catalogue: r.cat, Logger: quiet})
	if err != nil {
		return err
	}
	if err := client.EnsureStreams(ctx); err != nil {
		return err
	}
	if r.sim, err = simulator.Start(ctx, r.custNC, simulator.Config{Dir: filepath.Join(root, "custodian"),
		Catalogue: r.cat, Calendar: r.cal, Logger: quiet}); err != nil {
		return err
	}
	if r.journal, err = pebble.Open(filepath.Join(root, "journal"), pebble.Options{Groups: r.cfg.Groups, CacheBytes: r.cfg.JournalCacheBytes, Logger: quiet}); err != nil {
		return err
	}
	r.node, err = platform.StartNode(platform.NodeConfig{
		Cluster: cluster.Config{ClusterName: "mastertrust-bench-cycle", Provider: cluster.ProviderInProcess,
			InProcess: cluster.NewInProcess(10 * time.Second), Logger: quiet},
		Journal: r.journal, HistoryDir: filepath.Join(root, "history"), Catalogue: r.cat, Calendar: r.cal, Custodian: client, Dealing: r.cfg.Dealing,
		Now: r.now, PotIdleTimeout: r.potIdle, Logger: quiet,
	})
	if err != nil {
		return err
	}
	wctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	if err := r.node.Cluster.WaitForMembers(wctx, 1); err != nil {
		return err
	}
	r.op = actors.Operator{Node: r.node.Cluster, CallTimeout: r.cfg.PhaseTimeout, PollInterval: 20 * time.Millisecond}
	return nil
}

// close stops what start started, the node first (it is killed: a graceful
// stop passivates every pot, which measures nothing and takes long).
func (r *cycleRun) close() {
	if r.node != nil {
		r.node.Kill()
	}
	if r.sim != nil {
		if err := r.sim.Stop(); err != nil {
			r.log.Warn("bench: stop the custodian simulator", "err", err)
		}
	}
	if r.custNC != nil {
		r.custNC.Close()
	}
	if r.nc != nil {
		r.nc.Close()
	}
	if r.journal != nil {
		if err := r.journal.Close(); err != nil {
			r.log.Warn("bench: close the cycle journal", "err", err)
		}
	}
	if r.nats != nil {
		r.nats.Shutdown()
	}
}

func (r *cycleRun) now() time.Time {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.clock
}

func (r *cycleRun) setTime(d domain.Date, hour, minute int) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.clock = d.At(hour, minute, r.cal.Location())
}

// advanceClock moves the platform's time on by d.
func (r *cycleRun) advanceClock(d time.Duration) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.clock = r.clock.Add(d)
}

// days are the run's dealing days (see CycleConfig.Days).
func (r *cycleRun) days() []domain.Date {
	settle := 0
	for _, a := range r.cat.Assets() {
		settle = max(settle, a.SettlementDays)
	}
	days := []domain.Date{cycleFirstDay}
	for n := 2; n <= r.cfg.Days; n++ {
		last := days[len(days)-1]
		if n == 2 {
			days = append(days, r.cal.AddDealingDays(last, max(settle, 1)))
		} else {
			days = append(days, r.cal.NextDealingDay(last))
		}
	}
	return days
}

// cycleMember is pot i's member id.
func cycleMember(i int) string { return fmt.Sprintf("C%07d", i) }

// cycleProfile is pot i's risk profile ("" for self-directed).
func cycleProfile(i int) string {
	switch i % 10 {
	case 0, 1, 2:
		return "cautious"
	case 3, 4, 5, 6:
		return "balanced"
	case 7, 8:
		return "adventurous"
	}
	return ""
}

// cycleContribution is pot i's contribution: £50.00 to £10,049.99, spread
// so that the allocations' rounding varies.
func cycleContribution(i int) string {
	return fmt.Sprintf("%d.%02d", 50+(i*7919)%10_000, (i*37)%100)
}

// setup opens and funds the pots, Callers at a time, printing progress,
// and measures the heap they hold.
func (r *cycleRun) setup(ctx context.Context) error {
	n := r.cfg.Pots
	for i := range n {
		if cycleProfile(i) != "" {
			r.profiled++
		}
	}
	start, cpu0 := time.Now(), processCPU()
	r.meter.begin()
	if err := r.callEach(ctx, n, "setup, pots opened and funded", func(ctx context.Context, i int) error {
		m := cycleMember(i)
		if err := r.call(ctx, m, &pb.PotRequest{IdempotencyKey: "open",
			Command: &pb.PotRequest_OpenPot{OpenPot: &pb.OpenPot{Profile: cycleProfile(i)}}}); err != nil {
			return err
		}
		return r.call(ctx, m, &pb.PotRequest{IdempotencyKey: "pay",
			Command: &pb.PotRequest_Contribute{Contribute: &pb.Contribute{Amount: cycleContribution(i)}}})
	}); err != nil {
		return fmt.Errorf("pots opened: %w", err)
	}
	r.setupUse = r.meter.cut()
	r.setupTook = time.Since(start)
	r.setupCores = (processCPU() - cpu0).Seconds() / r.setupTook.Seconds()
	fmt.Fprintf(r.out, "Setup: %d pots opened (%d with a risk profile) and funded, one contribution each, by %d callers in %s: %.0f pots/s, %.0f commands/s, %.2f cores.\n",
		n, r.profiled, r.cfg.Callers, r.setupTook.Round(time.Millisecond), float64(n)/r.setupTook.Seconds(),
		float64(2*n)/r.setupTook.Seconds(), r.setupCores)
	fmt.Fprintf(r.out, "  setup: %s, CPU %s, peak heap %s, peak RSS %s\n", secs(r.setupUse.wall), secs(r.setupUse.cpu),
		mibOrUnknown(r.setupUse.heap), mibOrUnknown(r.setupUse.rss))

	settle, err := r.settleHeap(ctx)
	if err != nil {
		return err
	}
	if r.heapSetup, r.heapProfileSetup, err = heapSnapshot(r.cfg.ProfileDir, "heap-setup.pprof"); err != nil {
		return err
	}
	fmt.Fprintf(r.out, "Live heap after the setup (a GC, %s after the last call): %.1f MiB, %.0f B per pot (the world before the pots: %.1f MiB).\n\n",
		settle, mib(r.heapSetup), perPot(r.heapSetup, r.heapBefore, n), mib(r.heapBefore))
	return nil
}

// settleHeap waits HeapSettle (default: the node's request timeout and 1 s
// more), so that the calls' protoactor futures are gone before the heap is
// read, and returns how long it waited.
func (r *cycleRun) settleHeap(ctx context.Context) (time.Duration, error) {
	settle := r.cfg.HeapSettle
	if settle == 0 {
		settle = r.node.Cluster.Config().RequestTimeout + time.Second
	}
	select {
	case <-time.After(settle):
		return settle, nil
	case <-ctx.Done():
		return 0, ctx.Err()
	}
}

// call sends req to member's pot and turns a problem into an error.
func (r *cycleRun) call(ctx context.Context, member string, req *pb.PotRequest) error {
	_, err := r.potCall(ctx, member, req)
	return err
}

// potCall sends req to member's pot and returns the answer, a problem as an
// error. The context has no cancellation (the node's RequestTimeout bounds
// the call), so that cluster.Call makes the call on this goroutine.
func (r *cycleRun) potCall(ctx context.Context, member string, req *pb.PotRequest) (*pb.PotResponse, error) {
	resp, err := r.node.Pots.Handle(context.WithoutCancel(ctx), member, req)
	if err != nil {
		return nil, fmt.Errorf("pot %s %s: %w", member, req.IdempotencyKey, err)
	}
	if p := resp.GetProblem(); p != nil {
		return nil, fmt.Errorf("pot %s %s: problem %s: %s", member, req.IdempotencyKey, p.Code, p.Detail)
	}
	return resp, nil
}

// dayPrices are day n's closing prices: asset i of the catalogue at
// 1 + 0.37·i, from day 2 on with the drift (see CycleConfig.Days), and with
// DailyActivity from day 3 on walked from the day before's (walkPrices).
// Days are asked for in order.
func (r *cycleRun) dayPrices(n int) (map[domain.ISIN]domain.Price, error) {
	assets := r.cat.Assets()
	if r.priceLevels == nil {
		r.priceLevels = map[domain.ISIN]float64{}
		for i, a := range assets {
			r.priceLevels[a.ISIN] = 1 + 0.37*float64(i)
		}
	}
	switch {
	case n == 2:
		r.priceLevels[cycleDriftUp] *= 1.3
		r.priceLevels[cycleDriftDown] *= 0.8
	case n >= 3 && r.cfg.DailyActivity > 0:
		walkPrices(r.priceLevels, assets, n)
	}
	prices := map[domain.ISIN]domain.Price{}
	for _, a := range assets {
		p := r.priceLevels[a.ISIN]
		price, err := domain.ParsePrice(fmt.Sprintf("%.*f", a.PriceDecimals, p), a.PriceDecimals)
		if err != nil {
			return nil, err
		}
		prices[a.ISIN] = price
	}
	return prices, nil
}

// runDay publishes day n's prices and runs its cycle, timing it.
func (r *cycleRun) runDay(ctx context.Context, n int, day domain.Date) error {
	prices, err := r.dayPrices(n)
	if err != nil {
		return err
	}
	r.setTime(day, 9, 0)
	ctx, cancel := context.WithTimeout(ctx, r.cfg.PhaseTimeout)
	defer cancel()
	pstart := time.Now()
	if _, err := r.op.PublishPrices(ctx, actors.PricesPublication{Date: day, Prices: prices, By: "bench"}); err != nil {
		return fmt.Errorf("prices: %w", err)
	}
	pricesTook := time.Since(pstart)
	activity, err := r.runActivity(ctx, n, day)
	if err != nil {
		return err
	}
	if activity != nil {
		r.printActivity(n, activity)
	}
	r.setTime(day, 12, 30) // after the cut-off (11:00)

	stopProfile, err := r.startCPUProfile(fmt.Sprintf("cpu-cycle-day%d.pprof", n), fmt.Sprintf("day %d's cycle (%s)", n, day), n)
	if err != nil {
		return err
	}
	// Each step's window (cycleDay.use) runs from the poll that first saw
	// it to the poll that saw the next; the window before the first step
	// seen is cycleStart's.
	use := map[string]stepUse{}
	current := ""
	start, cpu0 := time.Now(), processCPU()
	r.meter.begin()
	s, err := r.op.RunCycle(ctx, day, actors.CycleRunOptions{Rebalance: true}, func(s *pb.CycleSummary) {
		if s.Step == "" || s.Step == current {
			return
		}
		if current != "" {
			use[current] = r.meter.cut()
		} else {
			use[cycleStart] = r.meter.cut()
		}
		current = s.Step
		r.log.Info("cycle", "day", n, "date", day, "step", s.Step, "elapsed", time.Since(start).Round(time.Millisecond))
	})
	last := r.meter.cut()
	if current != "" {
		use[current] = last
	}
	wall, cpu := time.Since(start), processCPU()-cpu0
	stopProfile()
	if err != nil {
		return fmt.Errorf("after %s: %w", wall.Round(time.Millisecond), err)
	}
	res := cycleDay{n: n, date: day, wall: wall, cpu: cpu, cores: cpu.Seconds() / wall.Seconds(), activity: activity, summary: s, use: use}
	settle, err := r.settleHeap(ctx)
	if err != nil {
		return err
	}
	// The profile is read back from its file by printDaysProfiles: kept
	// decoded, it would count in the later days' heap.
	if res.heapAfter, _, err = heapSnapshot(r.cfg.ProfileDir, fmt.Sprintf("heap-day%d.pprof", n)); err != nil {
		return err
	}
	r.results = append(r.results, res)
	r.printDay(res, pricesTook, settle)
	// What each day must have done, or its figures measure something else.
	if err := checkActivityDealt(res); err != nil {
		return err
	}
	switch n {
	case 1:
		// The day's requests add the self-directed pots that bought.
		if s.PotsAllocated != int64(r.profiled) && (activity == nil || s.PotsAllocated < int64(r.profiled)) {
			return fmt.Errorf("%d pots allocated, want every profiled pot (%d): %v", s.PotsAllocated, r.profiled, s)
		}
	case 2:
		if s.PotsChecked != int64(r.profiled) {
			return fmt.Errorf("the sweep checked %d pots, want every profiled pot (%d)", s.PotsChecked, r.profiled)
		}
	}
	return nil
}

// printDay prints a day's cycle: its time, each step's, and what it did.
func (r *cycleRun) printDay(d cycleDay, pricesTook, settle time.Duration) {
	s := d.summary
	what := map[int]string{1: "deals every profiled pot's contribution", 2: "prices drift after day 1's units settled: rebalances placed",
		3: "deals day 2's rebalances"}[d.n]
	switch {
	case d.activity != nil && what == "":
		what = "deals the day's new requests, at walked prices"
	case d.activity != nil:
		what += ", and the day's new requests"
	case what == "":
		what = "no new orders"
	}
	fmt.Fprintf(r.out, "Day %d, %s (%s): cycle %s (target ≤ %s: %s), %.2f cores; prices published beforehand in %s.\n",
		d.n, d.date, what, secs(d.wall), secs(cycleTarget), metOrMissed(d.wall <= cycleTarget), d.cores, pricesTook.Round(time.Millisecond))
	var sum time.Duration
	fmt.Fprintf(r.out, "  %-11s %9s  %6s  %9s %9s %6s %10s %10s\n", "step", "time", "share", "window", "CPU", "cores", "peak heap", "peak RSS")
	if u, ok := d.use[cycleStart]; ok {
		fmt.Fprintf(r.out, "  %-11s %9s  %6s  %9s %9s %6.2f %10s %10s\n", cycleStart, "—", "", secs(u.wall), secs(u.cpu), u.cores(), mibOrUnknown(u.heap), mibOrUnknown(u.rss))
	}
	for _, name := range cycleSteps {
		us, ok := s.StepMicros[name]
		if !ok {
			continue
		}
		t := time.Duration(us) * time.Microsecond
		sum += t
		window := "  (no window: between two polls)"
		if u, ok := d.use[name]; ok {
			window = fmt.Sprintf("  %9s %9s %6.2f %10s %10s", secs(u.wall), secs(u.cpu), u.cores(), mibOrUnknown(u.heap), mibOrUnknown(u.rss))
		}
		fmt.Fprintf(r.out, "  %-11s %9s  %5.1f%%%s\n", name, secs(t), 100*t.Seconds()/d.wall.Seconds(), window)
	}
	fmt.Fprintf(r.out, "  (time: the step's own, as the cycle recorded it; window: from the poll that first saw the step running to the one that saw the next, every %s, with the process's CPU time, cores, peak heap objects sampled every %s, and peak RSS, reset at the window's start)\n",
		r.op.PollInterval, stepSampleEvery)
	fmt.Fprintf(r.out, "  %-11s %9s  (the rest of the wall time: the operator's calls and polls, recording each step)\n", "steps", secs(sum))
	fmt.Fprintf(r.out, "  trades %d, pots allocated %d, trades settled %d, orders rolled %d, pots checked %d, pots traded %d (%.0f%% of checked)\n",
		s.Trades, s.PotsAllocated, s.TradesSettled, s.OrdersRolled, s.PotsChecked, s.PotsTraded, pct(s.PotsTraded, s.PotsChecked))
	fmt.Fprintf(r.out, "  day %d: cycle %s, CPU %s (%.2f cores), live heap after the day %.1f MiB (a GC, %s after the cycle)\n",
		d.n, secs(d.wall), secs(d.cpu), d.cores, mib(d.heapAfter), settle)
	for _, o := range s.Orders {
		fmt.Fprintf(r.out, "  order %s: %s %s units at %s, %s\n", o.ClOrdId, o.Side, o.Units, o.Price, o.Status)
	}
	fmt.Fprintln(r.out)
}

// reconcile runs a reconciliation as of the last day cut off and fails on
// any break.
func (r *cycleRun) reconcile(ctx context.Context, deep bool) error {
	kind := map[bool]string{false: "fast", true: "deep"}[deep]
	ctx, cancel := context.WithTimeout(ctx, r.cfg.PhaseTimeout)
	defer cancel()
	stopProfile, err := r.startCPUProfile("cpu-reconcile-"+kind+".pprof", kind+" reconciliation", 0)
	if err != nil {
		return err
	}
	start, cpu0 := time.Now(), processCPU()
	r.meter.begin()
	rep, err := r.op.Reconcile(ctx, "bench-"+kind, deep, domain.Date{})
	use := r.meter.cut()
	wall := time.Since(start)
	cores := (processCPU() - cpu0).Seconds() / wall.Seconds()
	stopProfile()
	if err != nil {
		return fmt.Errorf("%s, after %s: %w", kind, wall.Round(time.Millisecond), err)
	}
	res := reconResult{deep: deep, wall: wall, recorded: time.Duration(rep.DurationMicros) * time.Microsecond, cores: cores, use: use, report: rep}
	r.recons = append(r.recons, res)
	fmt.Fprintf(r.out, "Reconciliation, %s (%s) as of %s: %s (target ≤ %s: %s; the grain's own run %s), %.2f cores; %d pots, %d internal and %d external breaks.\n",
		kind, rep.Scope, rep.AsOf, secs(wall), secs(reconcileTarget), metOrMissed(wall <= reconcileTarget), secs(res.recorded), cores,
		rep.Pots, len(rep.InternalBreaks), len(rep.ExternalBreaks))
	fmt.Fprintf(r.out, "  reconcile-%s: %s, CPU %s, peak heap %s, peak RSS %s\n", kind, secs(use.wall), secs(use.cpu), mibOrUnknown(use.heap), mibOrUnknown(use.rss))
	var problems []string
	if n := len(rep.InternalBreaks) + len(rep.ExternalBreaks); n > 0 {
		for i, b := range append(append([]*pb.ReconciliationBreak{}, rep.InternalBreaks...), rep.ExternalBreaks...) {
			if i == 10 {
				problems = append(problems, fmt.Sprintf("… and %d more", n-10))
				break
			}
			problems = append(problems, fmt.Sprintf("%s %s %s %s: expected %s, actual %s: %s", b.Kind, b.MemberId, b.Date, b.Asset,
				b.Expected, b.Actual, b.Detail))
		}
	}
	if rep.Pots != int64(r.cfg.Pots) {
		problems = append(problems, fmt.Sprintf("reconciled %d pots, want %d", rep.Pots, r.cfg.Pots))
	}
	if len(problems) > 0 {
		for _, p := range problems {
			fmt.Fprintf(r.out, "  BREAK: %s\n", p)
		}
		return fmt.Errorf("%s reconciliation %s has breaks (a bug to report): %s", kind, rep.Id, strings.Join(problems, "; "))
	}
	for _, a := range rep.Assets {
		fmt.Fprintf(r.out, "  %s: pots settled %s + pending %s, house %s + %s; custodian %s + %s\n", a.Asset, a.PotSettledUnits,
			a.PotPendingUnits, a.HouseUnits, a.HousePendingUnits, a.CustodianSettledUnits, a.CustodianPendingUnits)
	}
	fmt.Fprintln(r.out)
	return nil
}

// printSummary prints one row per day and reconciliation against the
// targets.
func (r *cycleRun) printSummary() {
	fmt.Fprintf(r.out, "Summary, %d pots (seconds; targets for 100K pots: cycle ≤ %s, reconciliation ≤ %s):\n", r.cfg.Pots, secs(cycleTarget), secs(reconcileTarget))
	fmt.Fprintf(r.out, "  %-14s", "day")
	for _, name := range cycleSteps {
		fmt.Fprintf(r.out, " %10s", name)
	}
	fmt.Fprintf(r.out, " %10s %6s %8s %9s %7s\n", "cycle", "cores", "CPU", "heap MiB", "target")
	for _, d := range r.results {
		fmt.Fprintf(r.out, "  %-14s", fmt.Sprintf("%d %s", d.n, d.date))
		for _, name := range cycleSteps {
			if us, ok := d.summary.StepMicros[name]; ok {
				fmt.Fprintf(r.out, " %10.2f", (time.Duration(us) * time.Microsecond).Seconds())
			} else {
				fmt.Fprintf(r.out, " %10s", "—")
			}
		}
		fmt.Fprintf(r.out, " %10.2f %6.2f %8.2f %9.1f %7s\n", d.wall.Seconds(), d.cores, d.cpu.Seconds(), mib(d.heapAfter), metOrMissed(d.wall <= cycleTarget))
	}
	for _, rc := range r.recons {
		kind := map[bool]string{false: "fast", true: "deep"}[rc.deep]
		fmt.Fprintf(r.out, "  reconciliation, %s: %.2f s (grain %.2f s), %.2f cores, target %s\n", kind, rc.wall.Seconds(),
			rc.recorded.Seconds(), rc.cores, metOrMissed(rc.wall <= reconcileTarget))
	}
	fmt.Fprintf(r.out, "  (CPU: the process's CPU seconds over the cycle; heap: the live heap after the day, a GC after HeapSettle)\n")
	fmt.Fprintf(r.out, "  setup: %.1f s, %.0f pots/s; heap per pot after setup %.0f B, after the cycles %.0f B\n\n",
		r.setupTook.Seconds(), float64(r.cfg.Pots)/r.setupTook.Seconds(), perPot(r.heapSetup, r.heapBefore, r.cfg.Pots),
		perPot(r.heapCycles, r.heapBefore, r.cfg.Pots))
	r.printDaysRatios()
}

// startCPUProfile starts a CPU profile into ProfileDir/name, if profiling,
// and records it for printProfiles; the function returned stops it.
func (r *cycleRun) startCPUProfile(name, label string, day int) (func(), error) {
	if r.cfg.ProfileDir == "" {
		return func() {}, nil
	}
	path := filepath.Join(r.cfg.ProfileDir, name)
	stop, started, err := startCPUProfile(path, r.log)
	if started {
		r.cpuProfiles = append(r.cpuProfiles, cpuProfileFile{path: path, label: label, day: day})
	}
	return stop, err
}

// printProfiles summarizes the CPU profiles (of the first daysBaseDay
// days' cycles, the last day's and the reconciliations) and the heap
// profiles, and what grew from day daysBaseDay to the last day.
func (r *cycleRun) printProfiles() error {
	for _, c := range r.cpuProfiles {
		if c.day > daysBaseDay && c.day != len(r.results) {
			continue
		}
		p, err := readProfile(c.path)
		if err != nil {
			return err
		}
		if p == nil {
			continue
		}
		total, byArea, byPackage, byFunction, err := profileShares(p, nil, "cpu", cycleCPUAreas, nil)
		if err != nil {
			return err
		}
		fmt.Fprintf(r.out, "Where the CPU went: %s (%s: %s of CPU):\n", c.label, c.path, time.Duration(total).Round(time.Millisecond))
		writeShares(r.out, total, byArea, byPackage, byFunction, 15, func(v int64) string { return time.Duration(v).Round(time.Millisecond).String() })
		fmt.Fprintln(r.out)
	}
	n := r.cfg.Pots
	perPotUnit := func(v int64) string { return fmt.Sprintf("%.0f B/pot", float64(v)/float64(n)) }
	for _, h := range []struct {
		label       string
		after, base *profile
	}{
		{"after the setup − before it", r.heapProfileSetup, r.heapProfileBefore},
		{"after the cycles − after the setup (the aggregators' replicas, mostly)", r.heapProfileCycles, r.heapProfileSetup},
	} {
		if h.after == nil || h.base == nil {
			continue
		}
		total, byArea, byPackage, byFunction, err := profileShares(h.after, h.base, "inuse_space", cycleHeapAreas, skipAllocator)
		if err != nil {
			return err
		}
		fmt.Fprintf(r.out, "Where the heap went, %s (in-use bytes, sampled; %s in all; profiles in %s):\n", h.label, perPotUnit(total), r.cfg.ProfileDir)
		writeShares(r.out, total, byArea, byPackage, byFunction, 10, perPotUnit)
		fmt.Fprintln(r.out)
	}
	return r.printDaysProfiles()
}

// cycleCPUAreas are the parts of the process a cycle's or a
// reconciliation's CPU profile is summarized by.
var cycleCPUAreas = []area{
	{"aggregators: reading the group feed into replicas (catchUp)", []string{mt + "actors.(*aggregator).catchUp"}},
	{"aggregators: building batches (freezeUpTo) and netting (AllocateDay)", []string{mt + "actors.(*aggregator).freezeUpTo", mt + "domain.AllocateDay"}},
	{"aggregators: calling their pots (callPots, caller side)", []string{mt + "actors.(*aggregator).callPots"}},
	{"aggregators: reconciliation parts (invariants, ledgers, deep replays)", []string{mt + "actors.(*aggregator).reconcile"}},
	{"  deep: recovering each pot from the journal (RecoverPot)", []string{mt + "actors.RecoverPot"}},
	{"pot grains (decode, decide, apply, encode, reply)", []string{mt + "actors.(*potActor)"}},
	{"domain (decide, apply, postings, allocation and rebalancing maths)", []string{mt + "domain."}},
	{"decimal arithmetic (shopspring/decimal, math/big)", []string{"github.com/shopspring/decimal.", "math/big."}},
	{"history read model (projecting the feed, its Pebble, reads)", []string{mt + "history."}},
	{"journal appends (persistence/pebble Append)", []string{mt + "persistence/pebble.(*Store).Append"}},
	{"journal reads (feed, streams, snapshots)", []string{mt + "persistence/pebble.(*Store).ReadFeed", mt + "persistence/pebble.(*Store).Read", mt + "persistence/pebble.(*Store).LoadSnapshot"}},
	{"Pebble (all: commit pipeline, WAL, reads, flushes, compactions)", []string{"github.com/cockroachdb/pebble/"}},
	{"protobuf (marshal, unmarshal)", []string{"google.golang.org/protobuf/"}},
	{"inside protoactor mailboxes (all grain work, aggregators and pots, and its dispatch)", []string{pa + "actor.(*defaultMailbox)"}},
	{"grain calls, caller side (cluster.Call and Request, protoactor request)", []string{mt + "cluster.Call", mt + "cluster.Request", pa + "cluster.(*DefaultContext).Request"}},
	{"custodian and NATS (simulator, client, nats-server, nats.go)", []string{mt + "custodian.", mt + "custodian/", "github.com/nats-io/"}},
	{"garbage collection (mark workers, assists, sweeping)", []string{"runtime.gcBgMarkWorker", "runtime.gcAssistAlloc", "runtime.bgsweep", "runtime.bgscavenge", "runtime.markroot"}},
	{"allocation (runtime.mallocgc)", []string{"runtime.mallocgc"}},
	{"scheduler (finding, parking and switching goroutines)", []string{"runtime.schedule", "runtime.findRunnable", "runtime.park_m", "runtime.goschedImpl", "runtime.goready", "runtime.ready"}},
	{"system calls (read, write, fsync, futex, epoll)", []string{"syscall.Syscall", "syscall.RawSyscall", "internal/runtime/syscall.", "runtime.futex", "runtime.netpoll", "runtime.epollwait", "runtime/internal/syscall."}},
}

// cycleHeapAreas are the parts of the process a heap profile of the
// cycle's run is summarized by.
var cycleHeapAreas = []area{
	{"aggregators (replicas and their ledgers, built from the feed; batches)", []string{mt + "actors.(*aggregator)"}},
	{"pot grains (state, recovered or applied, and the shell)", []string{mt + "actors.(*potActor)", mt + "actors.RecoverPot"}},
	{"  domain (Pot and its maps, ledgers)", []string{mt + "domain."}},
	{"  decimal values (shopspring/decimal, math/big)", []string{"github.com/shopspring/decimal.", "math/big."}},
	{"protoactor (actors, mailboxes, registry, cluster identities)", []string{pa}},
	{"history read model (its replica cache, Pebble)", []string{mt + "history."}},
	{"journal (stream head cache, Pebble)", []string{mt + "persistence/", "github.com/cockroachdb/pebble/"}},
	{"protobuf", []string{"google.golang.org/protobuf/"}},
	{"NATS (server, client) and the custodian", []string{"github.com/nats-io/", mt + "custodian.", mt + "custodian/"}},
}

func secs(d time.Duration) string { return fmt.Sprintf("%.2f s", d.Seconds()) }

func mib(b uint64) float64 { return float64(b) / (1 << 20) }

// mibOrUnknown is b in MiB, or "?" for 0 (not measured here).
func mibOrUnknown(b uint64) string {
	if b == 0 {
		return "?"
	}
	return fmt.Sprintf("%.1f MiB", mib(b))
}

func perPot(after, before uint64, pots int) float64 {
	return (float64(after) - float64(before)) / float64(pots)
}

func pct(n, of int64) float64 {
	if of == 0 {
		return 0
	}
	return 100 * float64(n) / float64(of)
}
