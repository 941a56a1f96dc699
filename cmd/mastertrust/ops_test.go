package main

import (
	"context"
	"encoding/json"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/acme/mastertrust/domain"
)

// TestOperatorCommandsShowProgress: the prices, cycle and reconcile
// commands against a dev process whose custodian is out for a while: the
// cycle command follows the run (202, then its Location) with a progress
// bar per step on stderr and prints the summary at the end; --json prints
// the final document alone; a refused run is an error naming the rule.
func TestOperatorCommandsShowProgress(t *testing.T) {
	dataDir := t.TempDir()
	d := startDevArgs(t, dataDir, "OPS001", "--custodian-outage", "3s")
	token := devToken(t, d, "OPS001")
	if code := call(t, "POST", d.url+"/v1/pots", token, "open", `{"memberId":"OPS001","riskProfile":"balanced"}`, nil); code != http.StatusCreated {
		t.Fatalf("open: %d", code)
	}
	var mv struct {
		DealingDate string `json:"dealingDate"`
	}
	if code := call(t, "POST", d.url+"/v1/pots/OPS001/contributions", token, "pay", `{"amount":"250.00"}`, &mv); code != http.StatusAccepted {
		t.Fatalf("contribute: %d", code)
	}
	date := mv.DealingDate
	prices := filepath.Join(t.TempDir(), "prices.json")
	if err := os.WriteFile(prices, []byte(`{"GB00BN7Q2L69":"2.000000","GB00BD8R3K42":"1.500000","IE00BF4W7M71":"1.250000",`+
		`"GB00BH2T9J51":"1.100000","GB00BK5V8P82":"1.2345","IE00BL3X6N73":"0.987654","GB00BP9C4D20":"1.000000"}`), 0o600); err != nil {
		t.Fatal(err)
	}
	common := []string{"--data-dir", dataDir, "--url", d.url}
	command := func(args ...string) (string, string, error) {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
		defer cancel()
		var stdout, stderr strings.Builder
		err := run(ctx, append(args, common...), &stdout, &stderr)
		return stdout.String(), stderr.String(), err
	}
	if out, _, err := command("prices", "--date", date, "--file", prices); err != nil || !strings.Contains(out, "prices of "+date+" recorded for 7 assets") {
		t.Fatalf("prices: %v %q", err, out)
	}

	out, progress, err := command("cycle", "--date", date)
	if err != nil || !strings.Contains(out, "cycle "+date+" complete: ") || !strings.Contains(out, "executions") {
		t.Fatalf("cycle: %v\nstdout %q\nstderr %q", err, out, progress)
	}
	// The run waited for the custodian: its bar counted orders.
	if !strings.Contains(progress, "cycle "+date+": executions") || !strings.Contains(progress, "orders") || !strings.Contains(progress, "100%") {
		t.Fatalf("cycle progress on stderr: %q", progress)
	}

	out, progress, err = command("cycle", "--date", date, "--json")
	var summary struct{ Date, Status string }
	if err != nil || json.Unmarshal([]byte(out), &summary) != nil || summary.Status != "complete" || summary.Date != date || progress != "" {
		t.Fatalf("cycle --json: %v\nstdout %q\nstderr %q", err, out, progress)
	}

	out, _, err = command("reconcile", "--deep")
	if err != nil || !strings.Contains(out, "reconciled exactly; no breaks") {
		t.Fatalf("reconcile: %v %q", err, out)
	}
	out, _, err = command("reconcile", "--json")
	var report struct {
		Status   string
		Internal struct{ Breaks []any }
		External struct{ Breaks []any }
	}
	if err != nil || json.Unmarshal([]byte(out), &report) != nil || report.Status != "complete" ||
		len(report.Internal.Breaks)+len(report.External.Breaks) > 0 {
		t.Fatalf("reconcile --json: %v %q", err, out)
	}

	saturday := domain.MustDate(date)
	for saturday.Weekday() != time.Saturday {
		saturday = saturday.AddDays(1)
	}
	if _, _, err := command("cycle", "--date", saturday.String()); err == nil || !strings.Contains(err.Error(), "422 Not a dealing day") {
		t.Fatalf("cycle on a Saturday: %v", err)
	}
}
