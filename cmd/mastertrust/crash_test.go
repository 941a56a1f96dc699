package main

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"os"
	"os/exec"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/shopspring/decimal"

	"github.com/acme/mastertrust/internal/testkit"
)

// childEnv makes the test binary run mastertrust itself (TestMain), so that
// a test can start it as a child process and kill it.
const childEnv = "MASTERTRUST_TEST_RUN_MAIN"

func TestMain(m *testing.M) {
	if os.Getenv(childEnv) == "1" {
		ctx, stop := signalContext()
		defer stop()
		if err := run(ctx, os.Args[1:], os.Stdout, os.Stderr); err != nil {
			fmt.Fprintln(os.Stderr, "mastertrust:", err)
			os.Exit(2)
		}
		os.Exit(0)
	}
	os.Exit(m.Run())
}

// devProcess is a `mastertrust dev` child process.
type devProcess struct {
	cmd         *exec.Cmd
	url         string
	memberToken string
}

// startDev starts dev on dataDir and waits for its ready lines.
func startDev(t *testing.T, dataDir, member string) *devProcess {
	t.Helper()
	cmd := exec.Command(os.Args[0], "dev", "--data-dir", dataDir, "--http", "127.0.0.1:0", "--member", member,
		"--log-level", "warn")
	cmd.Env = append(os.Environ(), childEnv+"=1")
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = io.Discard
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	d := &devProcess{cmd: cmd}
	lines := bufio.NewScanner(stdout)
	ready := make(chan error, 1)
	go func() {
		for lines.Scan() {
			line := lines.Text()
			if url, ok := strings.CutPrefix(line, "gateway listening on "); ok {
				d.url = url
			}
			if _, token, ok := strings.Cut(line, "member token ("+member+"): "); ok {
				d.memberToken = token
				ready <- nil
				io.Copy(io.Discard, stdout)
				return
			}
		}
		ready <- fmt.Errorf("dev exited before it was ready: %v", lines.Err())
	}()
	select {
	case err := <-ready:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(60 * time.Second):
		t.Fatal("dev did not start within 60s")
	}
	return d
}

func (d *devProcess) post(path, key, body string) (int, error) {
	req, err := http.NewRequest(http.MethodPost, d.url+path, strings.NewReader(body))
	if err != nil {
		return 0, err
	}
	req.Header.Set("Authorization", "Bearer "+d.memberToken)
	req.Header.Set("Idempotency-Key", key)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	io.Copy(io.Discard, resp.Body)
	return resp.StatusCode, nil
}

// TestDevKilledKeepsEveryAcknowledgedWrite proves "durable before
// acknowledged" for the whole process: dev is killed with SIGKILL while
// contributions are in flight; after a restart on the same data every
// contribution that got a 202 is there (a retry with its key is a replay),
// and the pot holds exactly the money of those that are.
func TestDevKilledKeepsEveryAcknowledgedWrite(t *testing.T) {
	seed := uint64(time.Now().UnixNano())
	t.Logf("seed %d", seed)
	rng := rand.New(rand.NewPCG(seed, 1))
	dataDir := t.TempDir()
	const member = "M000777"
	d := startDev(t, dataDir, member)
	if code, err := d.post("/v1/pots", "open", `{"memberId":"`+member+`"}`); err != nil || code != http.StatusCreated {
		t.Fatalf("open: %d %v", code, err)
	}

	const writers = 8
	var mu sync.Mutex
	acked := map[string]bool{}
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	for w := range writers {
		wg.Go(func() {
			for i := 0; ctx.Err() == nil; i++ {
				key := fmt.Sprintf("w%d-%d", w, i)
				code, err := d.post("/v1/pots/"+member+"/contributions", key, `{"amount":"1.00"}`)
				if err == nil && code == http.StatusAccepted {
					mu.Lock()
					acked[key] = true
					mu.Unlock()
				}
			}
		})
	}
	// Kill at a random moment once some writes were acknowledged.
	testkit.CheckFor(t, 30*time.Second, 10*time.Millisecond, func() error {
		mu.Lock()
		defer mu.Unlock()
		if len(acked) < 50 {
			return fmt.Errorf("%d writes acknowledged", len(acked))
		}
		return nil
	})
	time.Sleep(time.Duration(rng.IntN(200)) * time.Millisecond)
	if err := d.cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	d.cmd.Wait()
	cancel()
	wg.Wait()
	t.Logf("%d contributions acknowledged before the kill", len(acked))

	d2 := startDev(t, dataDir, member)
	for key := range acked {
		req, _ := http.NewRequest(http.MethodPost, d2.url+"/v1/pots/"+member+"/contributions", strings.NewReader(`{"amount":"1.00"}`))
		req.Header.Set("Authorization", "Bearer "+d2.memberToken)
		req.Header.Set("Idempotency-Key", key)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusAccepted || resp.Header.Get("Idempotent-Replayed") != "true" {
			t.Fatalf("acknowledged contribution %s is lost: a retry answered %d, replayed=%q",
				key, resp.StatusCode, resp.Header.Get("Idempotent-Replayed"))
		}
	}
	// The pot holds at least the acknowledged money (writes in flight at
	// the kill may or may not have landed, unacknowledged), and only whole
	// pounds: no partial request.
	req, _ := http.NewRequest(http.MethodGet, d2.url+"/v1/pots/"+member, nil)
	req.Header.Set("Authorization", "Bearer "+d2.memberToken)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	var pot struct {
		Cash struct {
			Available string `json:"available"`
		} `json:"cash"`
	}
	err = json.NewDecoder(resp.Body).Decode(&pot)
	resp.Body.Close()
	if err != nil {
		t.Fatal(err)
	}
	available, err := decimal.NewFromString(pot.Cash.Available)
	if err != nil {
		t.Fatal(err)
	}
	if available.LessThan(decimal.NewFromInt(int64(len(acked)))) || !available.IsInteger() {
		t.Fatalf("after restart the pot has %s available, %d contributions of 1.00 were acknowledged", available, len(acked))
	}
}
