package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/acme/mastertrust/gateway"
	"github.com/acme/mastertrust/load"
	"github.com/acme/mastertrust/platform"
)

const loadUsage = `usage: mastertrust load gen --members N --days D --seed S --out FILE [flags]
       mastertrust load run [--workload FILE | --members N --days D --seed S]
                            [--gateway URL,... | --start dev] --report DIR [flags]

gen writes a workload: every member's pot, and each dealing day's prices and
members' requests (payroll on each member's pay day, ad hoc contributions,
withdrawals, buys, sells, switches, profile changes, cancellations), from a
seed and the rates (docs/load.md has the format). The same flags write the
same file.

run replays a workload (or the one gen would write from --members, --days
and --seed) through the gateways, with each day's prices, cycle and fast
reconciliation, settling days after the last and a deep reconciliation;
then checks that every acknowledged request is in its pot exactly once and
that every pot's cash and units agree with the requests and the executed
prices. It writes summary.json, report.md and charts to --report, and exits
1 if anything was lost, doubled or mismatched, a reconciliation broke, or a
gateway answered a 5xx other than 503 (2 if it could not run). Run it against a fresh platform:
--start dev starts one in this process, on a temporary data dir.

flags (each also from its environment variable):
`

func runLoad(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 || isHelp(args[0]) {
		fmt.Fprint(stderr, loadUsage)
		if len(args) == 0 {
			return errors.New("name what to do: gen or run")
		}
		return flag.ErrHelp
	}
	switch args[0] {
	case "gen":
		return runLoadGen(args[1:], stdout, stderr)
	case "run":
		return runLoadRun(ctx, args[1:], stdout, stderr)
	}
	fmt.Fprint(stderr, loadUsage)
	return fmt.Errorf("load %s: name what to do: gen or run", args[0])
}

// workloadFlags bind what a generated workload is made of; the returned
// function, called after parsing, sets the seed.
func workloadFlags(f *flags, cfg *load.GenConfig) (parsed func()) {
	f.intVar(&cfg.Members, "members", 1000, "members in the workload")
	f.intVar(&cfg.Days, "days", 3, "dealing days in the workload")
	var seed int
	f.intVar(&seed, "seed", 1, "the workload's random seed")
	f.intVar(&cfg.WarmUpDays, "warm-up-days", 5, "dealing days before day 1, the first with every member's opening balance (the pot it brings): "+
		"day 1 meets a scheme already invested, with trades settling every day; 0 starts the workload on pots opened that morning")
	cfg.Rates = load.DefaultRates
	r := &cfg.Rates
	f.float64Var(&r.Contribution, "contribution-rate", r.Contribution, "chance a member pays in ad hoc on a dealing day (besides the monthly payroll)")
	f.float64Var(&r.Withdrawal, "withdrawal-rate", r.Withdrawal, "chance a member withdraws on a dealing day")
	f.float64Var(&r.Buy, "buy-rate", r.Buy, "chance a member buys on a dealing day")
	f.float64Var(&r.Sell, "sell-rate", r.Sell, "chance a member sells on a dealing day")
	f.float64Var(&r.Switch, "switch-rate", r.Switch, "chance a member switches on a dealing day")
	f.float64Var(&r.Profile, "profile-rate", r.Profile, "chance a member changes risk profile on a dealing day")
	f.float64Var(&r.Cancel, "cancel-rate", r.Cancel, "chance a buy is cancelled the same day")
	return func() { cfg.Seed = int64(seed) }
}

func runLoadGen(args []string, stdout, stderr io.Writer) error {
	f := newFlags("load gen", stderr)
	var cfg load.GenConfig
	parsed := workloadFlags(f, &cfg)
	var out string
	f.stringVar(&out, "out", "", "the workload file to write")
	if err := f.parse(args); err != nil {
		return err
	}
	parsed()
	if out == "" {
		f.Usage()
		return errors.New("give --out FILE")
	}
	file, err := os.Create(out)
	if err != nil {
		return err
	}
	if err := errors.Join(load.Generate(file, cfg), file.Close()); err != nil {
		return fmt.Errorf("load gen: %w", err)
	}
	fmt.Fprintf(stdout, "wrote %s: %d members, %d dealing days after %d warm-up days, seed %d\n", out, cfg.Members, cfg.Days, cfg.WarmUpDays, cfg.Seed)
	return nil
}

// chaosDelay is how far into a day's requests --chaos kills its process,
// and how long after the first's restart it kills the second.
const chaosDelay = 500 * time.Millisecond

// The processes --chaos kills.
const (
	chaosKillNode    = "kill-node"
	chaosKillGateway = "kill-gateway"
)

// parseChaos reads --chaos: the processes to kill each day, in order.
func parseChaos(spec, start string) ([]string, error) {
	if spec == "" {
		return nil, nil
	}
	if start != "cluster" {
		return nil, fmt.Errorf("--chaos %q: kills the processes of --start cluster (the custodian's faults are its own flags)", spec)
	}
	var kills []string
	for _, k := range strings.Split(spec, ",") {
		k = strings.TrimSpace(k)
		if k != chaosKillNode && k != chaosKillGateway {
			return nil, fmt.Errorf("--chaos %q: %q is neither %s nor %s", spec, k, chaosKillNode, chaosKillGateway)
		}
		if !slices.Contains(kills, k) {
			kills = append(kills, k)
		}
	}
	return kills, nil
}

func runLoadRun(ctx context.Context, args []string, stdout, stderr io.Writer) (runErr error) {
	f := newFlags("load run", stderr)
	var res *load.Result
	var gen load.GenConfig
	parsed := workloadFlags(f, &gen)
	var workload, start, report string
	var gateways []string
	var cfg platform.Config
	run := load.Config{}
	f.stringVar(&workload, "workload", "", "the workload file to replay (default: generate one from --members, --days and --seed)")
	f.listVar(&gateways, "gateway", "", "comma-separated base URLs of the gateways to drive (tokens signed from the secret in --data-dir or MASTERTRUST_TOKEN_SECRET)")
	f.stringVar(&start, "start", "", "start the platform to drive: dev (the whole platform in this process) or cluster "+
		"(NATS, the simulated custodian, --nodes nodes and a gateway as processes of this binary), on a temporary directory")
	var nodes int
	var chaos string
	f.intVar(&nodes, "nodes", 3, "with --start cluster: the nodes")
	f.stringVar(&chaos, "chaos", "", "with --start cluster, comma-separated: kill-node (each day, kill -9 one node, in turn, while the day's requests run, and restart it), "+
		"kill-gateway (the same, the gateway, restarted on its address); the custodian's faults are its own flags")
	custodianFlags(f, &cfg.CustodianFaults)
	f.stringVar(&report, "report", "", "directory to write summary.json and report.md to")
	f.stringVar(&cfg.DataDir, "data-dir", platform.DefaultDataDir, "with --gateway: the directory holding the token secret")
	tokenSecretFromEnv(&cfg)
	f.intVar(&run.Clients, "clients", 64, "members' requests in flight at once")
	f.intVar(&run.SettleDays, "settle-days", 5, "dealing days run after the workload's last, without requests, so that every trade settles and every withdrawal is paid before the checks (at least 4: trades settle T+3 or T+4)")
	f.float64Var(&run.Racing, "racing", 0.02, "fraction of each day's members whose requests race the cut-off: sent while the day's cycle runs")
	f.durationVar(&run.Retry, "retry", 2*time.Minute, "how long one request is sent again while the platform cannot take it (503, timeouts)")
	var quiet bool
	f.boolVar(&quiet, "quiet", false, "no progress bars: log each day instead (and the platform's own lines with --start dev)")
	// What a million pots in one process need (docs/performance.md, "A
	// million pots on one node"); with --start cluster each node takes its
	// own from the environment.
	memoryLimitFlag(f, &cfg.MemoryLimitBytes)
	journalCacheFlag(f, &cfg.JournalCacheBytes)
	potFlags(f, &cfg)
	f.stringVar(&run.ProfileDir, "profile-dir", "", "write a CPU profile of each day and its heap at the end here (day-N.cpu.pprof, day-N.heap.pprof): "+
		"this process's, with --start dev the platform's too")
	if err := f.parse(args); err != nil {
		return err
	}
	parsed()
	if report == "" || (len(gateways) == 0) == (start == "") {
		f.Usage()
		return errors.New("give --report DIR and one of --gateway URL,... or --start dev|cluster")
	}
	if run.Racing < 0 || run.Racing > 1 {
		return fmt.Errorf("--racing %g: want a fraction between 0 and 1", run.Racing)
	}
	if run.SettleDays < 4 {
		return fmt.Errorf("--settle-days %d: want at least 4, or the checks would find trades unsettled and withdrawals unpaid", run.SettleDays)
	}
	chaosKills, err := parseChaos(chaos, start)
	if err != nil {
		return err
	}
	// With progress bars the log says only what went wrong: each day's
	// figures are in the report.
	level := slog.LevelWarn
	if quiet {
		level = slog.LevelInfo
	} else {
		run.Progress = stderr
	}
	log := slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: level}))
	run.Log = log
	cal, err := platform.NewCalendar()
	if err != nil {
		return err
	}
	run.Calendar = cal
	switch {
	case start == "dev":
		dir, err := os.MkdirTemp("", "mastertrust-load-")
		if err != nil {
			return err
		}
		defer os.RemoveAll(dir)
		// The platform's own lines would drown the run's: only its
		// warnings and errors.
		devLog := slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: slog.LevelWarn})).With("component", "dev")
		// The platform's clock follows the run's dealing days, so that
		// keys pass their retention and pots retire closed orders as they
		// would over a month.
		run.Clock = load.NewDayClock(cal)
		d, err := platform.StartDev(platform.Config{DataDir: dir, HTTPAddr: "127.0.0.1:0", Logger: devLog, Now: run.Clock.Now,
			MemoryLimitBytes: cfg.MemoryLimitBytes, JournalCacheBytes: cfg.JournalCacheBytes, CustodianFaults: cfg.CustodianFaults,
			PotIdleTimeout: cfg.PotIdleTimeout, PotResidentMax: cfg.PotResidentMax, PotResidentIdle: cfg.PotResidentIdle})
		if err != nil {
			return err
		}
		defer func() {
			stop, cancel := context.WithTimeout(context.Background(), time.Minute)
			defer cancel()
			if err := d.Stop(stop); err != nil {
				log.Error("load: stop dev", "err", err)
			}
		}()
		run.URLs = []string{d.URL}
		run.Token = func(member string) (string, error) { return d.Token(member, 24*time.Hour) }
	case start == "cluster":
		if nodes < 1 {
			return fmt.Errorf("--nodes %d: want at least 1", nodes)
		}
		dir, err := os.MkdirTemp("", "mastertrust-load-cluster-")
		if err != nil {
			return err
		}
		fmt.Fprintf(stderr, "starting NATS, the custodian, %d nodes and a gateway under %s (each process's output in its <name>.log)\n", nodes, dir)
		c, err := startLocalCluster(ctx, localClusterConfig{Dir: dir, Nodes: nodes, CustodianArgs: custodianFaultArgs(cfg.CustodianFaults), Log: log})
		if err != nil {
			return fmt.Errorf("start the cluster (its logs are in %s): %w", dir, err)
		}
		kept := true
		defer func() {
			c.stop()
			if !kept {
				os.RemoveAll(dir)
			}
		}()
		defer func() { kept = runErr != nil || res == nil || res.Failed() }()
		run.URLs, run.Token, run.Processes = []string{c.gateway}, c.token, c.pids
		if len(chaosKills) > 0 {
			run.Chaos = func(ctx context.Context, day int) error {
				for _, kill := range chaosKills {
					select {
					case <-ctx.Done():
						return ctx.Err()
					case <-time.After(chaosDelay):
					}
					var err error
					if kill == chaosKillNode {
						err = c.killNode(ctx, (day-1)%nodes+1)
					} else {
						err = c.killGateway(ctx)
					}
					if err != nil {
						return err
					}
				}
				return nil
			}
		}
	case start != "":
		return fmt.Errorf("--start %s: want dev or cluster", start)
	default:
		secret, err := cfg.LoadTokenSecret(false)
		if err != nil {
			return err
		}
		run.URLs = gateways
		run.Token = func(member string) (string, error) {
			now := time.Now()
			c := gateway.Claims{Role: gateway.RoleOperator, Subject: "load", IssuedAt: now.Unix(), ExpiresAt: now.Add(24 * time.Hour).Unix()}
			if member != "" {
				c.Role, c.Subject = gateway.RoleMember, member
			}
			return gateway.SignToken(secret, c)
		}
	}

	var in io.Reader
	if workload != "" {
		file, err := os.Open(workload)
		if err != nil {
			return err
		}
		defer file.Close()
		in = file
	} else {
		// Generated to a file and read back a day at a time: a workload of
		// a million members is ~100 MB.
		file, err := os.CreateTemp("", "mastertrust-*.load")
		if err != nil {
			return err
		}
		defer os.Remove(file.Name())
		defer file.Close()
		if err := load.Generate(file, gen); err != nil {
			return err
		}
		if _, err := file.Seek(0, io.SeekStart); err != nil {
			return err
		}
		in = file
	}
	r, err := load.NewReader(in)
	if err != nil {
		return err
	}
	res, runErr = load.Run(ctx, run, r)
	if res != nil {
		if err := res.WriteReport(report); err != nil {
			return errors.Join(runErr, err)
		}
		s := res.Summary
		checks := fmt.Sprintf("lost %d, doubled %d, mismatched %d", s.Lost, s.Doubled, s.Mismatched)
		if !s.Checked {
			checks = "not checked (ended before its checks)"
		}
		fmt.Fprintf(stdout, "%d members, %d days in %.0f s: %d acknowledged, %d refused; %s, breaks %d, 5xx %d; report in %s\n",
			s.Members, s.Days, s.DurationSeconds, s.Acknowledged, s.Refused, checks, s.Breaks, s.Errors5xx,
			filepath.Join(report, "report.md"))
	}
	if runErr != nil {
		return runErr
	}
	if res.Failed() {
		return exitStatus{code: 1, err: errors.New("load run: checks failed (see the report)")}
	}
	return nil
}
