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

	"github.com/stretchr/testify/require"

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
	code := call(t, "POST", d.url+"/v1/pots", token, "open", `{"memberId":"OPS001","riskProfile":"balanced"}`, nil)
	require.Equal(t, http.StatusCreated, code, "open: status")
	var mv struct {
		DealingDate string `json:"dealingDate"`
	}
	code = call(t, "POST", d.url+"/v1/pots/OPS001/contributions", token, "pay", `{"amount":"250.00"}`, &mv)
	require.Equal(t, http.StatusAccepted, code, "contribute: status")
	date := mv.DealingDate
	prices := filepath.Join(t.TempDir(), "prices.json")
	require.NoError(t, os.WriteFile(prices, []byte(`{"GB00BN7Q2L69":"2.000000","GB00BD8R3K42":"1.500000","IE00BF4W7M71":"1.250000",`+
		`"GB00BH2T9J51":"1.100000","GB00BK5V8P82":"1.2345","IE00BL3X6N73":"0.987654","GB00BP9C4D20":"1.000000"}`), 0o600))
	common := []string{"--data-dir", dataDir, "--url", d.url}
	command := func(args ...string) (string, string, error) {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
		defer cancel()
		var stdout, stderr strings.Builder
		err := run(ctx, append(args, common...), &stdout, &stderr)
		return stdout.String(), stderr.String(), err
	}
	out, _, err := command("prices", "--date", date, "--file", prices)
	require.NoError(t, err, "prices")
	require.Contains(t, out, "prices of "+date+" recorded for 7 assets", "prices: stdout")

	out, progress, err := command("cycle", "--date", date)
	require.NoError(t, err, "cycle: stdout %q, stderr %q", out, progress)
	require.Contains(t, out, "cycle "+date+" complete: ", "cycle: stdout")
	require.Contains(t, out, "executions", "cycle: stdout")
	// The run waited for the custodian: its bar counted orders.
	require.Contains(t, progress, "cycle "+date+": executions", "cycle progress on stderr")
	require.Contains(t, progress, "orders", "cycle progress on stderr")
	require.Contains(t, progress, "100%", "cycle progress on stderr")

	out, progress, err = command("cycle", "--date", date, "--json")
	var summary struct{ Date, Status string }
	require.NoError(t, err, "cycle --json: stdout %q, stderr %q", out, progress)
	require.NoError(t, json.Unmarshal([]byte(out), &summary), "cycle --json: stdout %q", out)
	require.Equal(t, "complete", summary.Status, "cycle --json: status")
	require.Equal(t, date, summary.Date, "cycle --json: date")
	require.Empty(t, progress, "cycle --json: stderr")

	out, _, err = command("reconcile", "--deep")
	require.NoError(t, err, "reconcile")
	require.Contains(t, out, "reconciled exactly; no breaks", "reconcile: stdout")
	out, _, err = command("reconcile", "--json")
	var report struct {
		Status   string
		Internal struct{ Breaks []any }
		External struct{ Breaks []any }
	}
	require.NoError(t, err, "reconcile --json: stdout %q", out)
	require.NoError(t, json.Unmarshal([]byte(out), &report), "reconcile --json: stdout %q", out)
	require.Equal(t, "complete", report.Status, "reconcile --json: status")
	require.Empty(t, report.Internal.Breaks, "reconcile --json: internal breaks")
	require.Empty(t, report.External.Breaks, "reconcile --json: external breaks")

	out, _, err = command("cluster", "status")
	require.NoError(t, err, "cluster status: stdout %q", out)
	require.Contains(t, out, "RECOVERING", "cluster status: the table's header")
	require.Regexp(t, `HEAP +RSS`, out, "cluster status: the table's header")
	require.Regexp(t, `[1-9][0-9]* MiB +[1-9][0-9]* MiB`, out, "cluster status: the member's heap and RSS")
	require.Contains(t, out, "1 member; every member sees the same cluster", "cluster status: stdout")
	out, _, err = command("cluster", "status", "--json")
	var cl struct {
		ViewsAgree bool
		Members    []struct{ ActivePots *int64 }
	}
	require.NoError(t, err, "cluster status --json")
	require.NoError(t, json.Unmarshal([]byte(out), &cl), "cluster status --json: stdout %q", out)
	require.True(t, cl.ViewsAgree, "cluster status --json: viewsAgree")
	require.Len(t, cl.Members, 1, "cluster status --json: members")
	require.NotNil(t, cl.Members[0].ActivePots, "cluster status --json: activePots")

	saturday := domain.MustDate(date)
	for saturday.Weekday() != time.Saturday {
		saturday = saturday.AddDays(1)
	}
	_, _, err = command("cycle", "--date", saturday.String())
	require.ErrorContains(t, err, "422 Not a dealing day", "cycle on a Saturday")
}
