package bench

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/acme/mastertrust/internal/pause"
)

// The overload workload's load generator can run in a process of its own
// (OverloadConfig.Generator): RunOverload starts its own executable with
// GeneratorEnv set, which then runs RunGenerator on its standard input and
// output instead of what it would run. Apart, the generator's goroutines
// do not wait in the platform's run queue, its lag is not the platform's
// scheduler's, and the heap measured is the platform's alone; the two
// still share the machine's CPUs.

// GeneratorEnv, set to "1" in a process's environment, makes the process
// the overload workload's load generator: cmd/mastertrust and this
// package's tests check it first (IsGenerator) and run RunGenerator.
const GeneratorEnv = "MASTERTRUST_BENCH_GENERATOR"

// IsGenerator reports whether this process was started as a load
// generator.
func IsGenerator() bool { return os.Getenv(GeneratorEnv) == "1" }

// genSetup is the generator's first message: where the orders go.
type genSetup struct {
	Host        string
	Connections int
	Timeout     time.Duration
	Members     []string
	Tokens      []string // Authorization headers, one per member
	OrderBody   string
	// KeyPrefix starts every Idempotency-Key, so that two senders never
	// send one pot the same key.
	KeyPrefix string
}

// genJob is one open-loop run.
type genJob struct {
	Rate             float64
	Warmup, Duration time.Duration
}

// genResult is one run's openResult on the wire.
type genResult struct {
	Started, Accepted, Shed, Failed int64
	FirstFailure                    string
	Accepted0, Shed0                latencyCounts // from when due
	AcceptedSent, ShedSent, Lag     latencyCounts
	OutstandingMax                  int64
	Elapsed                         time.Duration
	Cores                           float64
	Dials                           int64
	Kinds                           map[string]int64
	Err                             string
}

type latencyCounts struct {
	Counts []int64
	Max    int64
}

func (h *latencies) export() latencyCounts {
	out := latencyCounts{Counts: make([]int64, latencyBuckets), Max: h.max.Load()}
	for i := range h.counts {
		out.Counts[i] = h.counts[i].Load()
	}
	return out
}

func (c latencyCounts) histogram() *latencies {
	h := newLatencies()
	var n int64
	for i, v := range c.Counts {
		if i < latencyBuckets {
			h.counts[i].Store(v)
			n += v
		}
	}
	h.n.Store(n)
	h.max.Store(c.Max)
	return h
}

// RunGenerator is the load generator's process: it reads a genSetup, then
// runs each genJob it reads and writes a genResult, until its input ends.
func RunGenerator(ctx context.Context, in io.Reader, out io.Writer) error {
	dec, enc := json.NewDecoder(in), json.NewEncoder(out)
	var setup genSetup
	if err := dec.Decode(&setup); err != nil {
		return fmt.Errorf("bench generator: setup: %w", err)
	}
	s := newOrderSender(setup)
	defer s.client.close()
	for {
		var job genJob
		if err := dec.Decode(&job); errors.Is(err, io.EOF) {
			return nil
		} else if err != nil {
			return fmt.Errorf("bench generator: job: %w", err)
		}
		s.reset()
		cpu0 := processCPU()
		dials := s.client.dials.Load()
		res, err := driveOpen(ctx, openLoad{rate: job.Rate, warmup: job.Warmup, duration: job.Duration}, s.openOrder, func() func() {
			cpu0 = processCPU()
			return nil
		})
		r := genResult{Started: res.started, Accepted: res.accepted, Shed: res.shed, Failed: res.failed,
			FirstFailure: res.firstFailure, Accepted0: res.acceptedLat.export(), Shed0: res.shedLat.export(),
			AcceptedSent: res.acceptedSent.export(), ShedSent: res.shedSent.export(), Lag: res.lag.export(),
			OutstandingMax: res.outstandingMax, Elapsed: res.elapsed, Dials: s.client.dials.Load() - dials, Kinds: s.takeKinds()}
		if res.elapsed > 0 {
			// From the measured part's start to the last answer: close
			// enough for a share of the machine.
			r.Cores = (processCPU() - cpu0).Seconds() / res.elapsed.Seconds()
		}
		if err != nil {
			r.Err = err.Error()
		}
		if err := enc.Encode(r); err != nil {
			return err
		}
	}
}

// orderSender sends buys to the overload workload's pots over a rawClient.
type orderSender struct {
	setup  genSetup
	client *rawClient
	next   atomic.Int64
	mu     sync.Mutex
	kinds  map[string]int64 // the 503s since the last reset, by detail
}

func newOrderSender(setup genSetup) *orderSender {
	return &orderSender{setup: setup, client: newRawClient(setup.Host, setup.Connections, setup.Timeout), kinds: map[string]int64{}}
}

// reset closes the connections the last run left (each holds buffers at
// both ends: an overload's thousands would count in the next run's heap)
// and forgets the 503s counted.
func (s *orderSender) reset() {
	s.client.closeIdle()
	s.takeKinds()
}

func (s *orderSender) takeKinds() map[string]int64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	k := s.kinds
	s.kinds = map[string]int64{}
	return k
}

// openOrder sends one buy to the next pot and classifies the answer: 202
// accepted; 503 with Retry-After and the problem code unavailable shed;
// anything else failed.
func (s *orderSender) openOrder(ctx context.Context, _ int64) (openOutcome, string) {
	n, i := s.nextPot()
	return s.order(ctx, n, i)
}

// nextPot numbers a new order and picks its pot, the pots in turn.
func (s *orderSender) nextPot() (int64, int) {
	n := s.next.Add(1)
	return n, int(n % int64(len(s.setup.Members)))
}

// order sends buy n (its Idempotency-Key) to pot i and classifies the
// answer as openOrder does.
func (s *orderSender) order(ctx context.Context, n int64, i int) (openOutcome, string) {
	body := s.setup.OrderBody
	req := make([]byte, 0, 512)
	req = append(req, "POST /v1/pots/"...)
	req = append(req, s.setup.Members[i]...)
	req = append(req, "/orders HTTP/1.1\r\nHost: "...)
	req = append(req, s.setup.Host...)
	req = append(req, "\r\nAuthorization: "...)
	req = append(req, s.setup.Tokens[i]...)
	req = append(req, "\r\nIdempotency-Key: "...)
	req = append(req, s.setup.KeyPrefix...)
	req = strconv.AppendInt(req, n, 10)
	req = append(req, "\r\nContent-Type: application/json\r\nContent-Length: "...)
	req = strconv.AppendInt(req, int64(len(body)), 10)
	req = append(req, "\r\n\r\n"...)
	req = append(req, body...)
	resp, err := s.client.do(ctx, req)
	if err != nil {
		return openFailed, err.Error()
	}
	switch resp.status {
	case http.StatusAccepted:
		return openAccepted, ""
	case http.StatusServiceUnavailable:
		var p struct{ Code, Detail string }
		if err := json.Unmarshal(resp.body, &p); err != nil || p.Code != "unavailable" || !resp.retryAfter {
			return openFailed, fmt.Sprintf("503 without Retry-After or the unavailable problem: %s", resp.body)
		}
		s.mu.Lock()
		s.kinds[p.Detail]++
		s.mu.Unlock()
		return openShed, ""
	}
	return openFailed, fmt.Sprintf("%d %s", resp.status, bytes.TrimSpace(resp.body))
}

// generatorProc is a load generator process, as RunOverload sees it.
type generatorProc struct {
	cmd   *exec.Cmd
	stdin io.WriteCloser
	enc   *json.Encoder
	dec   *json.Decoder
}

// startGenerator starts this executable as a load generator and sends it
// setup; its standard error goes to stderr.
func startGenerator(setup genSetup, stderr io.Writer) (*generatorProc, error) {
	exe, err := os.Executable()
	if err != nil {
		return nil, fmt.Errorf("bench: the generator's executable: %w", err)
	}
	cmd := exec.Command(exe)
	cmd.Env = append(os.Environ(), GeneratorEnv+"=1")
	cmd.Stderr = stderr
	stdin, err := cmd.StdinPipe()
	if err != nil {
		return nil, err
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("bench: start the generator: %w", err)
	}
	g := &generatorProc{cmd: cmd, stdin: stdin, enc: json.NewEncoder(stdin), dec: json.NewDecoder(stdout)}
	if err := g.enc.Encode(setup); err != nil {
		g.close()
		return nil, fmt.Errorf("bench: set the generator up: %w", err)
	}
	return g, nil
}

// run has the generator drive job and returns what it measured; measure
// is called as the measured part begins (by this process's clock, which
// the generator's follows within a pipe's latency) and the function it
// returns as it ends.
func (g *generatorProc) run(ctx context.Context, job genJob, measure func() (end func())) (openResult, error) {
	if err := g.enc.Encode(job); err != nil {
		return openResult{}, fmt.Errorf("bench: send the generator a job: %w", err)
	}
	if err := pause.For(ctx, job.Warmup); err != nil {
		return openResult{}, err
	}
	end := measure()
	err := pause.For(ctx, job.Duration)
	end()
	if err != nil {
		return openResult{}, err
	}
	var r genResult
	if err := g.dec.Decode(&r); err != nil {
		return openResult{}, fmt.Errorf("bench: the generator's result: %w", err)
	}
	if r.Err != "" {
		return openResult{}, fmt.Errorf("bench: the generator: %s", r.Err)
	}
	return openResult{load: openLoad{rate: job.Rate, warmup: job.Warmup, duration: job.Duration},
		started: r.Started, accepted: r.Accepted, shed: r.Shed, failed: r.Failed, firstFailure: r.FirstFailure,
		acceptedLat: r.Accepted0.histogram(), shedLat: r.Shed0.histogram(), acceptedSent: r.AcceptedSent.histogram(),
		shedSent: r.ShedSent.histogram(), lag: r.Lag.histogram(), outstandingMax: r.OutstandingMax, elapsed: r.Elapsed,
		generatorCores: r.Cores, dials: r.Dials, kinds: r.Kinds}, nil
}

// close ends the generator (its input ends) and waits for it.
func (g *generatorProc) close() error {
	g.stdin.Close()
	return g.cmd.Wait()
}
