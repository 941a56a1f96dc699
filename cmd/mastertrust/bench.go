package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"strconv"
	"strings"

	"github.com/acme/mastertrust/bench"
)

// benchWorkloads are the workloads runBench runs, for its help.
var benchWorkloads = []struct{ name, summary string }{
	{"journal", "the journal: Pebble and JetStream against their raw ceilings"},
	{"pots", "durable pot commands, grain calls, HTTP orders, heap per pot; -tls: TLS on vs off"},
	{"cycle", "the dealing cycle (100K pots by default), per step, and reconciliation"},
	{"overload", "HTTP orders at the sustainable rate and 3x it: shedding, latency, heap"},
	{"history", "pots of 10, 1,000 and 10,000 past orders side by side: heap, snapshot, recovery, CPU, history pages"},
}

// benchUsage lists the workloads; with flags, each one's flags too (from
// the workload's own --help).
func benchUsage(ctx context.Context, stderr io.Writer, flags bool) {
	fmt.Fprintln(stderr, "usage: mastertrust bench <workload> [flags]\n\nworkloads (figures beside same-run baselines; docs/performance.md):")
	for _, w := range benchWorkloads {
		fmt.Fprintf(stderr, "  %-8s %s\n", w.name, w.summary)
	}
	if !flags {
		fmt.Fprintln(stderr, "\nRun 'mastertrust bench --help' for every workload's flags, 'mastertrust bench <workload> --help' for one's.")
		return
	}
	for _, w := range benchWorkloads {
		fmt.Fprintln(stderr)
		_ = runBench(ctx, []string{w.name, "--help"}, io.Discard, stderr) // flag.ErrHelp, after the usage
	}
}

// runBench binds flags to the workloads of package bench; the workloads
// and their figures are described in docs/performance.md.
func runBench(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) > 0 && isHelp(args[0]) {
		benchUsage(ctx, stderr, true)
		return flag.ErrHelp
	}
	if len(args) == 0 || strings.HasPrefix(args[0], "-") {
		benchUsage(ctx, stderr, false)
		return errors.New("name a workload: journal, pots, cycle, overload or history")
	}
	log := slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: slog.LevelInfo}))
	switch args[0] {
	case "journal":
		f := newFlags("bench journal", stderr)
		var cfg bench.JournalConfig
		f.stringVar(&cfg.Dir, "dir", "", "directory for the stores (default: a temporary one)")
		f.durationVar(&cfg.Duration, "duration", 0, "length of each measurement (default: the workload's)")
		f.intVar(&cfg.Repeats, "repeats", 0, "measurements of each cell, the median reported (default: the workload's)")
		f.intVar(&cfg.ReadStreams, "read-streams", 0, "streams written before the read-back test (default 1M)")
		f.boolVar(&cfg.SkipReadBack, "skip-read-back", false, "skip the read-back and bytes-on-disk measurement")
		f.boolVar(&cfg.SkipWALSyncIntervals, "skip-wal-sync-intervals", false, "skip Pebble's table by WAL sync interval")
		backends := ""
		f.stringVar(&backends, "backends", "", "comma-separated backends: pebble, jetstream (default both)")
		var writers []string
		f.listVar(&writers, "writers", "", "comma-separated concurrent writers (default 1,16,64,256)")
		if err := f.parse(args[1:]); err != nil {
			return err
		}
		if backends != "" {
			cfg.Backends = strings.Split(backends, ",")
		}
		for _, w := range writers {
			n, err := strconv.Atoi(w)
			if err != nil {
				return fmt.Errorf("--writers: %q is not a number", w)
			}
			cfg.Writers = append(cfg.Writers, n)
		}
		cfg.Logger = log
		return bench.RunJournal(ctx, cfg, stdout)
	case "pots":
		f := newFlags("bench pots", stderr)
		var cfg bench.PotsConfig
		f.stringVar(&cfg.Dir, "dir", "", "directory for the journal (default: a temporary one)")
		f.intVar(&cfg.Pots, "pots", 0, "distinct pots the calls go to (default 10,000)")
		f.intVar(&cfg.Callers, "callers", 0, "concurrent callers (default 64)")
		f.intVar(&cfg.HeapPots, "heap-pots", 0, "pots activated to measure heap per pot (default the workload's)")
		f.durationVar(&cfg.Duration, "duration", 0, "length of each measurement (default: the workload's)")
		f.intVar(&cfg.Repeats, "repeats", 0, "measurements of each cell, the median reported (default: the workload's)")
		f.stringVar(&cfg.ProfileDir, "profile-dir", "", "write CPU and heap profiles here and summarise where time and bytes go")
		f.durationVar(&cfg.JournalMinSyncInterval, "journal-min-sync-interval", 0, "the pots' journal's WAL sync spacing (dev and node: --journal-min-sync-interval)")
		measurements := ""
		f.stringVar(&measurements, "measurements", "", "comma-separated cells: raw, journal, commands, queries, http, http-get, heap (default all)")
		tls := false
		f.boolVar(&tls, "tls", false, "instead, TLS on and off in the same run: durable calls over the cluster's remote (mTLS vs plaintext) and HTTP orders through the gateway (HTTPS vs HTTP), as ratios")
		if err := f.parse(args[1:]); err != nil {
			return err
		}
		if measurements != "" {
			cfg.Measurements = strings.Split(measurements, ",")
		}
		cfg.Logger = log
		if tls {
			return bench.RunPotsTLS(ctx, cfg, stdout)
		}
		return bench.RunPots(ctx, cfg, stdout)
	case "cycle":
		f := newFlags("bench cycle", stderr)
		var cfg bench.CycleConfig
		f.intVar(&cfg.Pots, "pots", 0, "pots opened and funded (default 100,000)")
		f.intVar(&cfg.Days, "days", 0, "dealing days run, at most 260 (default: the workload's)")
		f.float64Var(&cfg.DailyActivity, "daily-activity", 0, "fraction of the pots, a new seeded draw each day, that contribute (and one in four place an order) before each day's cycle, with prices walking from day 3 on; 0: no new requests after the setup")
		f.intVar(&cfg.Callers, "callers", 0, "concurrent callers while setting up (default: the workload's)")
		f.stringVar(&cfg.DataDir, "dir", "", "directory for the journal, NATS and the custodian (default: a temporary one)")
		f.stringVar(&cfg.ProfileDir, "profile-dir", "", "write CPU and heap profiles here and summarise where time and bytes go")
		memoryLimitFlag(f, &cfg.MemoryLimitBytes)
		journalCacheFlag(f, &cfg.JournalCacheBytes)
		f.boolVar(&cfg.FastOnly, "fast-only", false, "run only the fast reconciliation (the deep one recovers every pot from its journal: minutes at a million pots)")
		f.boolVar(&cfg.ScaleCheck, "scale-check", false, "run a tenth of --pots first, on a fresh platform in this process, and print each step's time, CPU, peak heap and RSS at --pots over the tenth's")
		if err := f.parse(args[1:]); err != nil {
			return err
		}
		cfg.Logger = log
		return bench.RunCycle(ctx, cfg, stdout)
	case "overload":
		f := newFlags("bench overload", stderr)
		var cfg bench.OverloadConfig
		f.stringVar(&cfg.Dir, "dir", "", "directory for the journal (default: a temporary one)")
		f.intVar(&cfg.Pots, "pots", 0, "pots the orders go to, in turn (default 10,000)")
		f.float64Var(&cfg.Rate, "rate", 0, "the sustainable rate in orders/s (default: found by a search)")
		f.float64Var(&cfg.Factor, "factor", 0, "the overload, as a multiple of the sustainable rate (default 3)")
		f.durationVar(&cfg.Step, "step", 0, "length of each step of the search (default 3s)")
		f.durationVar(&cfg.Duration, "duration", 0, "length of each run at the sustainable rate and under overload (default 10s)")
		f.intVar(&cfg.Repeats, "repeats", 0, "pairs of runs, medians reported (default 3)")
		f.intVar(&cfg.InFlightMax, "in-flight-max", 0, "the gateway's InFlightMax (default: the gateway's)")
		f.durationVar(&cfg.SlotWaitMax, "slot-wait-max", 0, "the gateway's SlotWaitMax (default: the gateway's)")
		f.stringVar(&cfg.Generator, "generator", "", "where the load generator runs: process (its own, the default) or inline (this one)")
		f.stringVar(&cfg.ProfileDir, "profile-dir", "", "write a CPU profile and a runtime trace of the last overload run here")
		if err := f.parse(args[1:]); err != nil {
			return err
		}
		cfg.Logger = log
		return bench.RunOverload(ctx, cfg, stdout)
	case "history":
		f := newFlags("bench history", stderr)
		var cfg bench.HistoryConfig
		var sizes []string
		f.listVar(&sizes, "sizes", "", "comma-separated past orders of the pots measured, ascending (default 10,1000,10000)")
		f.intVar(&cfg.PotsPerSize, "pots", 0, "pots of each size (default 20)")
		f.intVar(&cfg.OrdersPerDay, "orders-per-day", 0, "orders a pot places per dealing day while its history is built (default 500)")
		f.intVar(&cfg.Callers, "callers", 0, "concurrent callers placing the orders (default 64)")
		f.intVar(&cfg.HTTPClients, "http-clients", 0, "HTTP clients of each measured cell, at most --pots (default 8)")
		f.durationVar(&cfg.Duration, "duration", 0, "length of each measured HTTP cell (default 3s)")
		f.intVar(&cfg.Repeats, "repeats", 0, "measurements of each figure, the median reported (default 3)")
		f.durationVar(&cfg.PotIdleTimeout, "pot-idle-timeout", 0, "pots passivate after this long without a message; the heap measurement waits for it (default 10s)")
		f.stringVar(&cfg.Dir, "dir", "", "directory for the journal, the history, NATS and the custodian (default: a temporary one)")
		f.stringVar(&cfg.ProfileDir, "profile-dir", "", "write CPU profiles of the contributions and statement cells here and summarise where the time goes")
		if err := f.parse(args[1:]); err != nil {
			return err
		}
		for _, s := range sizes {
			n, err := strconv.Atoi(strings.ReplaceAll(s, "_", ""))
			if err != nil {
				return fmt.Errorf("--sizes: %q is not a whole number", s)
			}
			cfg.Sizes = append(cfg.Sizes, n)
		}
		cfg.Logger = log
		return bench.RunHistory(ctx, cfg, stdout)
	}
	return fmt.Errorf("unknown workload %q: journal, pots, cycle, overload or history", args[0])
}
