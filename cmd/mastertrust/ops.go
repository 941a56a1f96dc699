package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"slices"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/schollz/progressbar/v3"

	"github.com/acme/mastertrust/custodian/simulator"
	"github.com/acme/mastertrust/gateway"
	"github.com/acme/mastertrust/internal/natsauth"
	"github.com/acme/mastertrust/platform"
)

// The operators' commands call the gateway's operator endpoints with an
// operator token they sign from the shared secret, so they work the same
// against dev and a cluster.

// operatorClient calls a gateway's API as an operator.
type operatorClient struct {
	url   string
	token string
	http  *http.Client
}

func operatorFlags(f *flags, cfg *platform.Config, url *string) {
	f.stringVar(&cfg.DataDir, "data-dir", platform.DefaultDataDir, "directory holding the token secret dev created")
	f.stringVar(url, "url", "http://"+platform.DefaultHTTPAddr, "the gateway's base URL")
	cfg.TokenSecret = os.Getenv("MASTERTRUST_TOKEN_SECRET")
}

func newOperatorClient(cfg platform.Config, url string) (*operatorClient, error) {
	secret, err := cfg.LoadTokenSecret(false)
	if err != nil {
		return nil, err
	}
	now := time.Now()
	token, err := gateway.SignToken(secret, gateway.Claims{Role: gateway.RoleOperator, Subject: "cli",
		IssuedAt: now.Unix(), ExpiresAt: now.Add(time.Hour).Unix()})
	if err != nil {
		return nil, err
	}
	return &operatorClient{url: strings.TrimRight(url, "/"), token: token, http: &http.Client{}}, nil
}

// do sends a request and decodes a 2xx answer into out; any other answer
// is an error carrying the problem's title and detail. It returns the
// status and the response's Location.
func (c *operatorClient) do(ctx context.Context, method, path string, body, out any) (int, string, error) {
	return c.doWithKey(ctx, method, path, "", body, out)
}

// doWithKey is do with an Idempotency-Key.
func (c *operatorClient) doWithKey(ctx context.Context, method, path, key string, body, out any) (int, string, error) {
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return 0, "", err
		}
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, c.url+path, rd)
	if err != nil {
		return 0, "", err
	}
	req.Header.Set("Authorization", "Bearer "+c.token)
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if key != "" {
		req.Header.Set("Idempotency-Key", key)
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return 0, "", err
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(resp.Body)
	if err != nil {
		return 0, "", err
	}
	if resp.StatusCode/100 != 2 {
		var p gateway.Problem
		if json.Unmarshal(data, &p) == nil && p.Title != "" {
			return resp.StatusCode, "", fmt.Errorf("%s %s: %d %s: %s", method, path, resp.StatusCode, p.Title, p.Detail)
		}
		return resp.StatusCode, "", fmt.Errorf("%s %s: %s", method, path, resp.Status)
	}
	if out != nil {
		if err := json.Unmarshal(data, out); err != nil {
			return resp.StatusCode, "", fmt.Errorf("%s %s: %w", method, path, err)
		}
	}
	return resp.StatusCode, resp.Header.Get("Location"), nil
}

func runPrices(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	f := newFlags("prices", stderr)
	var cfg platform.Config
	var url, date, file, reason string
	var asJSON bool
	operatorFlags(f, &cfg, &url)
	f.StringVar(&date, "date", "", "the dealing day the prices close (YYYY-MM-DD)")
	f.StringVar(&file, "file", "", `a JSON file of the prices: {"<ISIN>": "1.234567", …}, every catalogue asset`)
	f.StringVar(&reason, "reason", "", "why these prices replace the ones recorded for the date (a correction, until a cycle used them)")
	f.BoolVar(&asJSON, "json", false, "print the date's prices and their history as JSON")
	var given []string
	f.Func("price", "one price, ISIN=price (repeat for each asset)", func(s string) error {
		given = append(given, s)
		return nil
	})
	if err := f.parse(args); err != nil {
		return err
	}
	prices := map[string]string{}
	if file != "" {
		b, err := os.ReadFile(file)
		if err != nil {
			return err
		}
		if err := json.Unmarshal(b, &prices); err != nil {
			return fmt.Errorf("%s: %w", file, err)
		}
	}
	for _, p := range given {
		isin, price, ok := strings.Cut(p, "=")
		if !ok {
			return fmt.Errorf("--price %q: want ISIN=price", p)
		}
		prices[isin] = price
	}
	if date == "" || len(prices) == 0 {
		f.Usage()
		return errors.New("give --date and the prices (--file or --price)")
	}
	c, err := newOperatorClient(cfg, url)
	if err != nil {
		return err
	}
	body := map[string]any{"date": date, "prices": prices}
	if reason != "" {
		body["reason"] = reason
	}
	var out struct {
		History []json.RawMessage `json:"history"`
		Used    bool              `json:"used"`
	}
	var raw json.RawMessage
	if _, _, err := c.do(ctx, http.MethodPost, "/v1/prices", body, &raw); err != nil {
		return err
	}
	if asJSON {
		return printJSON(stdout, raw)
	}
	if err := json.Unmarshal(raw, &out); err != nil {
		return err
	}
	fmt.Fprintf(stdout, "prices of %s recorded for %d assets (%d versions", date, len(prices), len(out.History))
	if out.Used {
		fmt.Fprint(stdout, "; used by its cycle")
	}
	fmt.Fprintln(stdout, ")")
	return nil
}

// cycleView is what the cycle command shows of a summary.
type cycleView struct {
	Date     string `json:"date"`
	Status   string `json:"status"`
	Step     string `json:"step"`
	Progress *struct {
		Done  int64  `json:"done"`
		Total int64  `json:"total"`
		Unit  string `json:"unit"`
	} `json:"progress"`
	Steps []struct {
		Name string  `json:"name"`
		Ms   float64 `json:"ms"`
	} `json:"steps"`
	Problem *struct {
		Code      string `json:"code"`
		Detail    string `json:"detail"`
		Resumable bool   `json:"resumable"`
	} `json:"problem"`
	Trades        int64 `json:"trades"`
	PotsAllocated int64 `json:"potsAllocated"`
	TradesSettled int64 `json:"tradesSettled"`
	OrdersRolled  int64 `json:"ordersRolled"`
	Rebalance     struct {
		PotsChecked int64 `json:"potsChecked"`
		PotsTraded  int64 `json:"potsTraded"`
	} `json:"rebalance"`
	Orders []struct {
		ClOrdID, Side, Units, Price, Cash, Status string
	} `json:"orders"`
}

// progressInterval: how often the cycle and reconcile commands ask how a run
// goes.
const progressInterval = 250 * time.Millisecond

func runCycleCommand(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	f := newFlags("cycle", stderr)
	var cfg platform.Config
	var url, date, reason string
	rebalance := true
	var force, asJSON bool
	operatorFlags(f, &cfg, &url)
	f.StringVar(&date, "date", "", "the dealing day to run (YYYY-MM-DD)")
	f.BoolVar(&rebalance, "rebalance", true, "after allocating, check every pot with a profile against the day's prices")
	f.BoolVar(&force, "force", false, "run it although earlier dealing days have open trades (they roll to the next open day); needs --reason")
	f.StringVar(&reason, "reason", "", "why the run is forced (recorded with it)")
	f.BoolVar(&asJSON, "json", false, "print the final summary as JSON, and no progress")
	if err := f.parse(args); err != nil {
		return err
	}
	if date == "" {
		f.Usage()
		return errors.New("give --date")
	}
	c, err := newOperatorClient(cfg, url)
	if err != nil {
		return err
	}
	body := map[string]any{"rebalance": rebalance}
	if force {
		body["force"], body["reason"] = true, reason
	}
	var raw json.RawMessage
	code, location, err := c.do(ctx, http.MethodPost, "/v1/cycles/"+date+"/run", body, &raw)
	if err != nil {
		return err
	}
	var bars *stepBars
	if !asJSON {
		bars = newStepBars(stderr, "cycle "+date)
	}
	for code == http.StatusAccepted {
		var s cycleView
		if err := json.Unmarshal(raw, &s); err != nil {
			return err
		}
		if s.Status != "running" {
			break
		}
		if s.Progress != nil {
			bars.show(s.Step, s.Progress.Done, s.Progress.Total, s.Progress.Unit)
		} else {
			bars.show(s.Step, 0, -1, "")
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("cycle %s still running at the %s step (it goes on: GET %s): %w", date, s.Step, location, ctx.Err())
		case <-time.After(progressInterval):
		}
		if _, _, err := c.do(ctx, http.MethodGet, location, nil, &raw); err != nil {
			return err
		}
	}
	bars.done()
	if asJSON {
		return printJSON(stdout, raw)
	}
	var s cycleView
	if err := json.Unmarshal(raw, &s); err != nil {
		return err
	}
	if s.Status == "failed" {
		return fmt.Errorf("cycle %s failed at the %s step (%s): %s", date, s.Step, s.Problem.Code, s.Problem.Detail)
	}
	fmt.Fprintf(stdout, "cycle %s %s: %d trades, %d pots allocated, %d trades settled, %d orders rolled; rebalance checked %d pots, traded %d\n",
		s.Date, s.Status, s.Trades, s.PotsAllocated, s.TradesSettled, s.OrdersRolled, s.Rebalance.PotsChecked, s.Rebalance.PotsTraded)
	for _, st := range s.Steps {
		fmt.Fprintf(stdout, "  %-10s %8.0f ms\n", st.Name, st.Ms)
	}
	for _, o := range s.Orders {
		fmt.Fprintf(stdout, "  %s %s %s units at %s = %s (%s)\n", o.ClOrdID, o.Side, o.Units, o.Price, o.Cash, o.Status)
	}
	return nil
}

func runReconcile(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	f := newFlags("reconcile", stderr)
	var cfg platform.Config
	var url, asOf string
	var deep, asJSON bool
	operatorFlags(f, &cfg, &url)
	f.BoolVar(&deep, "deep", false, "also recover every pot from its snapshot and journal and compare it with its replay")
	f.StringVar(&asOf, "as-of", "", "the date to reconcile as of (default, and the only one the pots' state is as of: the latest dealing day a cycle ran for)")
	f.BoolVar(&asJSON, "json", false, "print the whole report as JSON, and no progress")
	if err := f.parse(args); err != nil {
		return err
	}
	c, err := newOperatorClient(cfg, url)
	if err != nil {
		return err
	}
	body := map[string]any{"deep": deep}
	if asOf != "" {
		body["asOf"] = asOf
	}
	// The run's id is chosen here and sent as its Idempotency-Key, so that a
	// retry is the same run.
	id := fmt.Sprintf("R%s-%04x", time.Now().UTC().Format("20060102T150405"), time.Now().UnixNano()&0xffff)
	var raw json.RawMessage
	code, location, err := c.doWithKey(ctx, http.MethodPost, "/v1/reconciliations", id, body, &raw)
	if err != nil {
		return err
	}
	var bars *stepBars
	if !asJSON {
		bars = newStepBars(stderr, "reconciliation "+id)
	}
	type view struct {
		Status   string `json:"status"`
		Summary  string `json:"summary"`
		Progress *struct {
			Done  int64  `json:"done"`
			Total int64  `json:"total"`
			Unit  string `json:"unit"`
		} `json:"progress"`
	}
	for code == http.StatusAccepted {
		var v view
		if err := json.Unmarshal(raw, &v); err != nil {
			return err
		}
		if v.Status != "running" {
			break
		}
		if v.Progress != nil {
			bars.show("groups", v.Progress.Done, v.Progress.Total, v.Progress.Unit)
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("reconciliation %s still running (it goes on: GET %s): %w", id, location, ctx.Err())
		case <-time.After(progressInterval):
		}
		if _, _, err := c.do(ctx, http.MethodGet, location, nil, &raw); err != nil {
			return err
		}
	}
	bars.done()
	if asJSON {
		return printJSON(stdout, raw)
	}
	var v view
	if err := json.Unmarshal(raw, &v); err != nil {
		return err
	}
	if v.Status == "failed" {
		return errors.New(v.Summary)
	}
	fmt.Fprintln(stdout, v.Summary)
	return nil
}

// printJSON prints a JSON document indented.
func printJSON(w io.Writer, raw json.RawMessage) error {
	var buf bytes.Buffer
	if err := json.Indent(&buf, raw, "", "  "); err != nil {
		return err
	}
	buf.WriteByte('\n')
	_, err := w.Write(buf.Bytes())
	return err
}

// stepBars shows a run's progress on w: one bar per step, finished when the
// next step begins. A nil *stepBars shows nothing.
type stepBars struct {
	w     io.Writer
	run   string
	step  string
	total int64
	bar   *progressbar.ProgressBar
}

func newStepBars(w io.Writer, run string) *stepBars { return &stepBars{w: w, run: run} }

// stepLabel is a bar's description: "cycle 2026-11-23: executions (orders)".
func stepLabel(run, step, unit string) string {
	if unit == "" {
		return run + ": " + step
	}
	return run + ": " + step + " (" + unit + ")"
}

// show moves the bar of step to done of total (total -1: a spinner).
func (b *stepBars) show(step string, done, total int64, unit string) {
	if b == nil || step == "" {
		return
	}
	if step != b.step || total != b.total {
		if b.bar != nil && step != b.step {
			b.finish()
		}
		if step != b.step || b.bar == nil {
			b.step, b.total = step, total
			b.bar = progressbar.NewOptions64(total,
				progressbar.OptionSetWriter(b.w),
				progressbar.OptionSetDescription(stepLabel(b.run, step, unit)),
				progressbar.OptionShowCount(),
				progressbar.OptionSetElapsedTime(true),
				progressbar.OptionSetPredictTime(total > 0),
				progressbar.OptionThrottle(100*time.Millisecond),
				progressbar.OptionSpinnerType(14),
				progressbar.OptionFullWidth(),
			)
		} else {
			b.bar.ChangeMax64(total)
			b.total = total
		}
	}
	if total > 0 {
		_ = b.bar.Set64(done) // a bar writing to a closed terminal is not worth failing the run
	} else {
		_ = b.bar.Add(1)
	}
}

func (b *stepBars) finish() {
	if b.total > 0 {
		_ = b.bar.Set64(b.total)
	}
	_ = b.bar.Finish()
	fmt.Fprintln(b.w)
}

// done finishes the last bar.
func (b *stepBars) done() {
	if b == nil || b.bar == nil {
		return
	}
	b.finish()
	b.bar = nil
}

// custodianFlags binds the simulated custodian's fault injection.
func custodianFlags(f *flags, faults *simulator.Faults) {
	var seed int
	f.intVar(&seed, "custodian-seed", 0, "seed of the simulated custodian's faults (0: from the clock, logged)")
	var drop, duplicate string
	f.stringVar(&drop, "custodian-drop", "0", "probability the simulated custodian drops an execution report (0…1)")
	f.stringVar(&duplicate, "custodian-duplicate", "0", "probability it sends a report twice (0…1)")
	f.durationVar(&faults.DelayMax, "custodian-delay-max", 0, "longest delay of a report (0: none)")
	f.intVar(&faults.ReorderWindow, "custodian-reorder-window", 0, "reports held and released in shuffled order, this many at a time (0: none)")
	f.durationVar(&faults.OutageDuration, "custodian-outage", 0, "the custodian takes no order for this long after starting")
	f.intVar(&faults.OutageOrders, "custodian-outage-orders", 0, "the custodian refuses the first this many order deliveries")
	f.afterParse = append(f.afterParse, func() error {
		faults.Seed = uint64(seed)
		var err1, err2 error
		faults.DropProbability, err1 = probability("custodian-drop", drop)
		faults.DuplicateProbability, err2 = probability("custodian-duplicate", duplicate)
		return errors.Join(err1, err2)
	})
}

// custodianFaultArgs are the flags custodianFlags reads back as faults:
// how load run passes its own to the custodian process it starts.
func custodianFaultArgs(faults simulator.Faults) []string {
	var args []string
	add := func(name string, value string, set bool) {
		if set {
			args = append(args, "--"+name, value)
		}
	}
	add("custodian-seed", strconv.FormatUint(faults.Seed, 10), faults.Seed != 0)
	add("custodian-drop", strconv.FormatFloat(faults.DropProbability, 'g', -1, 64), faults.DropProbability != 0)
	add("custodian-duplicate", strconv.FormatFloat(faults.DuplicateProbability, 'g', -1, 64), faults.DuplicateProbability != 0)
	add("custodian-delay-max", faults.DelayMax.String(), faults.DelayMax != 0)
	add("custodian-reorder-window", strconv.Itoa(faults.ReorderWindow), faults.ReorderWindow != 0)
	add("custodian-outage", faults.OutageDuration.String(), faults.OutageDuration != 0)
	add("custodian-outage-orders", strconv.Itoa(faults.OutageOrders), faults.OutageOrders != 0)
	return args
}

func probability(name, s string) (float64, error) {
	var p float64
	if _, err := fmt.Sscan(s, &p); err != nil || p < 0 || p > 1 {
		return 0, fmt.Errorf("--%s %q: want a probability between 0 and 1", name, s)
	}
	return p, nil
}

func runCustodian(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	f := newFlags("custodian", stderr)
	var cfg platform.Config
	common(f, &cfg)
	f.stringVar(&cfg.NATSURL, "nats-url", "nats://127.0.0.1:4222", "NATS server the custodian and ACME share")
	natsClientFlags(f, &cfg, natsauth.RoleCustodian)
	f.intVar(&cfg.Replicas, "replicas", 1, "replicas of the protocol's streams (ACME must use the same)")
	custodianFlags(f, &cfg.CustodianFaults)
	if err := f.parse(args); err != nil {
		return err
	}
	sim, stop, err := platform.StartCustodian(cfg)
	if err != nil {
		return err
	}
	defer stop()
	fmt.Fprintf(stdout, "simulated custodian running against %s (fault seed %d)\n", natsauth.Redact(cfg.NATSURL), sim.Seed())
	<-ctx.Done()
	return nil
}

// runClusterCommand: `mastertrust cluster status` prints GET /v1/cluster:
// every member's own report, and how members' views of the cluster
// disagree. It fails when they do, or when a member did not report, so
// that a script can wait for a cluster to settle.
func runClusterCommand(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	f := newFlags("cluster status", stderr)
	var cfg platform.Config
	var url string
	var asJSON bool
	operatorFlags(f, &cfg, &url)
	f.BoolVar(&asJSON, "json", false, "print the gateway's whole answer as JSON")
	if len(args) > 0 && isHelp(args[0]) {
		f.Usage()
		return flag.ErrHelp
	}
	if len(args) == 0 || args[0] != "status" {
		f.Usage()
		return errors.New("name what to do: status")
	}
	if err := f.parse(args[1:]); err != nil {
		return err
	}
	c, err := newOperatorClient(cfg, url)
	if err != nil {
		return err
	}
	var raw json.RawMessage
	if _, _, err := c.do(ctx, http.MethodGet, "/v1/cluster", nil, &raw); err != nil {
		return err
	}
	var v struct {
		Members []struct {
			ID                     string           `json:"id"`
			Address                string           `json:"address"`
			ActivePots             *int64           `json:"activePots"`
			ActiveGrains           map[string]int64 `json:"activeGrains"`
			Sees                   []string         `json:"sees"`
			RecoveriesInProgress   *int64           `json:"recoveriesInProgress"`
			CutOffHoldsOutstanding *int64           `json:"cutOffHoldsOutstanding"`
			HeapBytes              *int64           `json:"heapBytes"`
			ResidentBytes          *int64           `json:"residentBytes"`
			StatsError             string           `json:"statsError"`
		} `json:"members"`
		ViewsAgree    bool     `json:"viewsAgree"`
		Disagreements []string `json:"disagreements"`
	}
	if err := json.Unmarshal(raw, &v); err != nil {
		return fmt.Errorf("GET /v1/cluster: %w", err)
	}
	if asJSON {
		if err := printJSON(stdout, raw); err != nil {
			return err
		}
	} else {
		tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "MEMBER\tADDRESS\tPOTS\tACTIVE GRAINS BY KIND\tRECOVERING\tCUT-OFF HOLDS\tHEAP\tRSS\tSEES")
		for _, m := range v.Members {
			if m.StatsError != "" {
				fmt.Fprintf(tw, "%s\t%s\t-\t-\t-\t-\t-\t-\t%s\n", m.ID, m.Address, m.StatsError)
				continue
			}
			var grains []string
			for kind, n := range m.ActiveGrains {
				if n > 0 {
					grains = append(grains, fmt.Sprintf("%s %d", kind, n))
				}
			}
			slices.Sort(grains)
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", m.ID, m.Address, countText(m.ActivePots),
				strings.Join(grains, ", "), countText(m.RecoveriesInProgress), countText(m.CutOffHoldsOutstanding),
				mebibytesText(m.HeapBytes), mebibytesText(m.ResidentBytes), membersCount(len(m.Sees)))
		}
		if err := tw.Flush(); err != nil {
			return err
		}
	}
	var failed []string
	for _, m := range v.Members {
		if m.StatsError != "" {
			failed = append(failed, fmt.Sprintf("member %s (%s) did not report", m.ID, m.Address))
		}
	}
	failed = append(failed, v.Disagreements...)
	if len(failed) > 0 {
		return fmt.Errorf("the cluster's members do not agree: %s", strings.Join(failed, "; "))
	}
	if !asJSON {
		fmt.Fprintf(stdout, "%s; every member sees the same cluster\n", membersCount(len(v.Members)))
	}
	return nil
}

func membersCount(n int) string {
	if n == 1 {
		return "1 member"
	}
	return fmt.Sprintf("%d members", n)
}

// mebibytesText is a size in bytes for people, in MiB ("-" if unknown).
func mebibytesText(n *int64) string {
	if n == nil {
		return "-"
	}
	return fmt.Sprintf("%.0f MiB", float64(*n)/(1<<20))
}

func countText(n *int64) string {
	if n == nil {
		return "-"
	}
	return strconv.FormatInt(*n, 10)
}
