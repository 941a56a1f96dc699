package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"strings"
	"time"

	"github.com/acme/mastertrust/custodian"
	"github.com/acme/mastertrust/gateway"
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
// is an error carrying the problem's title and detail.
func (c *operatorClient) do(ctx context.Context, method, path string, body, out any) error {
	return c.doWithKey(ctx, method, path, "", body, out)
}

// doWithKey is do with an Idempotency-Key.
func (c *operatorClient) doWithKey(ctx context.Context, method, path, key string, body, out any) error {
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return err
		}
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, c.url+path, rd)
	if err != nil {
		return err
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
		return err
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(resp.Body)
	if err != nil {
		return err
	}
	if resp.StatusCode/100 != 2 {
		var p gateway.Problem
		if json.Unmarshal(data, &p) == nil && p.Title != "" {
			return fmt.Errorf("%s %s: %d %s: %s", method, path, resp.StatusCode, p.Title, p.Detail)
		}
		return fmt.Errorf("%s %s: %s", method, path, resp.Status)
	}
	if out != nil {
		return json.Unmarshal(data, out)
	}
	return nil
}

func runPrices(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	f := newFlags("prices", stderr)
	var cfg platform.Config
	var url, date, file string
	operatorFlags(f, &cfg, &url)
	f.StringVar(&date, "date", "", "the dealing day the prices close (YYYY-MM-DD)")
	f.StringVar(&file, "file", "", `a JSON file of the prices: {"<ISIN>": "1.234567", …}, every catalogue asset`)
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
	var out map[string]any
	if err := c.do(ctx, http.MethodPost, "/v1/prices", map[string]any{"date": date, "prices": prices}, &out); err != nil {
		return err
	}
	fmt.Fprintf(stdout, "prices of %s recorded for %d assets\n", date, len(prices))
	return nil
}

// cycleView is what the cycle command shows of a summary.
type cycleView struct {
	Date          string `json:"date"`
	Status        string `json:"status"`
	Step          string `json:"step"`
	Error         string `json:"error"`
	Trades        int64  `json:"trades"`
	PotsAllocated int64  `json:"potsAllocated"`
	TradesSettled int64  `json:"tradesSettled"`
	OrdersRolled  int64  `json:"ordersRolled"`
	Rebalance     struct {
		PotsChecked int64 `json:"potsChecked"`
		PotsTraded  int64 `json:"potsTraded"`
	} `json:"rebalance"`
	Orders []struct {
		ClOrdID, Side, Units, Price, Cash, Status string
	} `json:"orders"`
}

// cycleProgressInterval: how often the cycle command asks how the run goes.
const cycleProgressInterval = 500 * time.Millisecond

func runCycleCommand(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	f := newFlags("cycle", stderr)
	var cfg platform.Config
	var url, date string
	rebalance := true
	operatorFlags(f, &cfg, &url)
	f.StringVar(&date, "date", "", "the dealing day to run (YYYY-MM-DD)")
	f.BoolVar(&rebalance, "rebalance", true, "after allocating, check every pot with a profile against the day's prices")
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
	// The run blocks until the cycle completes; meanwhile show its steps.
	done := make(chan error, 1)
	var summary cycleView
	go func() {
		done <- c.do(ctx, http.MethodPost, "/v1/cycles/"+date+"/run", map[string]bool{"rebalance": rebalance}, &summary)
	}()
	tick := time.NewTicker(cycleProgressInterval)
	defer tick.Stop()
	lastStep := ""
	for {
		select {
		case err := <-done:
			if err != nil {
				return err
			}
			fmt.Fprintf(stdout, "cycle %s %s: %d trades, %d pots allocated, %d trades settled, %d orders rolled; rebalance checked %d pots, traded %d\n",
				summary.Date, summary.Status, summary.Trades, summary.PotsAllocated, summary.TradesSettled, summary.OrdersRolled,
				summary.Rebalance.PotsChecked, summary.Rebalance.PotsTraded)
			for _, o := range summary.Orders {
				fmt.Fprintf(stdout, "  %s %s %s units at %s = %s (%s)\n", o.ClOrdID, o.Side, o.Units, o.Price, o.Cash, o.Status)
			}
			return nil
		case <-tick.C:
			var now cycleView
			if err := c.do(ctx, http.MethodGet, "/v1/cycles/"+date, nil, &now); err == nil && now.Step != "" && now.Step != lastStep {
				fmt.Fprintf(stderr, "cycle %s: %s…\n", date, now.Step)
				lastStep = now.Step
			}
		}
	}
}

func runReconcile(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	f := newFlags("reconcile", stderr)
	var cfg platform.Config
	var url, asOf string
	var deep, asJSON bool
	operatorFlags(f, &cfg, &url)
	f.BoolVar(&deep, "deep", false, "also recover every pot from its snapshot and journal and compare it with its replay")
	f.StringVar(&asOf, "as-of", "", "the date to reconcile as of (default: the last dealing day cut off)")
	f.BoolVar(&asJSON, "json", false, "print the whole report as JSON")
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
	// run that outlasts the request can be fetched, and a retry is the same run.
	id := fmt.Sprintf("R%s-%04x", time.Now().UTC().Format("20060102T150405"), time.Now().UnixNano()&0xffff)
	fmt.Fprintf(stderr, "reconciliation %s…\n", id)
	var report map[string]any
	if err := c.doWithKey(ctx, http.MethodPost, "/v1/reconciliations", id, body, &report); err != nil {
		return fmt.Errorf("%w (its report, once done: GET /v1/reconciliations/%s)", err, id)
	}
	if asJSON {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		return enc.Encode(report)
	}
	fmt.Fprintln(stdout, report["summary"])
	return nil
}

// custodianFlags binds the simulated custodian's fault injection.
func custodianFlags(f *flags, faults *custodian.Faults) {
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
	fmt.Fprintf(stdout, "simulated custodian running against %s (fault seed %d)\n", cfg.NATSURL, sim.Seed())
	<-ctx.Done()
	return nil
}
