package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/acme/mastertrust/gateway"
)

// localCluster is a cluster of this binary's processes on loopback, under
// one directory: NATS with JetStream, the simulated custodian, nodes and a
// gateway, as README's cluster section starts them by hand. load run
// --start cluster drives it and, with --chaos, kills and restarts its
// nodes. Each process's output is in DIR/<name>.log.
type localCluster struct {
	dir     string
	env     []string
	secret  []byte
	natsURL string
	gateway string // the gateway's base URL
	log     *slog.Logger

	mu          sync.Mutex
	nodes       []*process // by number, from 1
	gatewayProc *process
	other       []*process // NATS, the custodian, in the order they started
}

// process is one child process and its output.
type process struct {
	name string
	cmd  *exec.Cmd
	out  *outputLog
	done chan struct{} // closed once it has exited
}

// startProcess starts cmd, its output (stdout and stderr) kept in memory
// and, if logPath is not "", appended to that file.
func startProcess(name string, cmd *exec.Cmd, logPath string) (*process, error) {
	out := &outputLog{}
	if logPath != "" {
		file, err := os.OpenFile(logPath, os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o644)
		if err != nil {
			return nil, err
		}
		out.file = file
	}
	p := &process{name: name, cmd: cmd, out: out, done: make(chan struct{})}
	cmd.Stdout, cmd.Stderr = out, out
	if err := cmd.Start(); err != nil {
		out.close()
		return nil, fmt.Errorf("start %s: %w", name, err)
	}
	go func() {
		cmd.Wait()
		out.close()
		close(p.done)
	}()
	return p, nil
}

func (p *process) exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// output is what the process has printed (its first outputKeptMax bytes
// if it has a log file).
func (p *process) output() string { return p.out.String() }

// waitLine waits up to wait for a line of the output starting with prefix
// and returns the rest of it; an error if the process exits first.
func (p *process) waitLine(ctx context.Context, prefix string, wait time.Duration) (string, error) {
	deadline := time.Now().Add(wait)
	for time.Now().Before(deadline) && ctx.Err() == nil {
		for line := range strings.Lines(p.output()) {
			if rest, ok := strings.CutPrefix(strings.TrimRight(line, "\n"), prefix); ok {
				return rest, nil
			}
		}
		if p.exited() {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	where := "its output:\n" + p.output()
	if p.out.file != nil {
		where = "its log: " + p.out.file.Name()
	}
	return "", fmt.Errorf("%s did not say %q (%s)", p.name, prefix, where)
}

// stop sends sig and waits for the process to exit; if it has not after
// grace, it kills it and reports that it did not stop.
func (p *process) stop(sig os.Signal, grace time.Duration) error {
	if p.exited() {
		return nil
	}
	_ = p.cmd.Process.Signal(sig)
	select {
	case <-p.done:
		return nil
	case <-time.After(grace):
		p.cmd.Process.Kill()
		<-p.done
		return fmt.Errorf("%s did not stop on %s in %s: killed", p.name, sig, grace)
	}
}

// outputLog keeps a process's output in memory (to wait for its lines) and
// in its log file, if it has one.
type outputLog struct {
	mu   sync.Mutex
	buf  bytes.Buffer
	file *os.File
}

func (o *outputLog) Write(p []byte) (int, error) {
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.file == nil {
		return o.buf.Write(p)
	}
	if o.buf.Len() < outputKeptMax {
		o.buf.Write(p) // only the start is waited on
	}
	return o.file.Write(p)
}

func (o *outputLog) String() string {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.buf.String()
}

func (o *outputLog) close() {
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.file != nil {
		o.file.Close()
	}
}

// outputKeptMax bounds the output kept in memory of a process with a log
// file: the lines waited for come first.
const outputKeptMax = 1 << 20

// startWait is how long a process has to say it started.
const startWait = 2 * time.Minute

// localClusterConfig says what startLocalCluster starts.
type localClusterConfig struct {
	Dir   string // every process's data and log, and the secrets
	Nodes int
	// Env is added to each process's environment (this process's).
	Env []string
	// CustodianArgs are added to the custodian's command line (its
	// faults).
	CustodianArgs []string
	Log           *slog.Logger
}

// startLocalCluster starts NATS, the custodian, the nodes and a gateway,
// and waits until the gateway sees every node.
func startLocalCluster(ctx context.Context, cfg localClusterConfig) (_ *localCluster, err error) {
	dir := cfg.Dir
	raw := make([]byte, 32)
	if _, err := rand.Read(raw); err != nil {
		return nil, err
	}
	c := &localCluster{dir: dir, secret: []byte(hex.EncodeToString(raw)), log: cfg.Log}
	defer func() {
		if err != nil {
			c.stop()
		}
	}()
	clusterDir := filepath.Join(dir, "secrets", "cluster")
	c.env = []string{"MASTERTRUST_NATS_SECRETS=" + filepath.Join(dir, "secrets", "nats"), "MASTERTRUST_TOKEN_SECRET=" + string(c.secret),
		"MASTERTRUST_CLUSTER_CA=" + filepath.Join(clusterDir, "ca.crt"), "MASTERTRUST_CLUSTER_CERT=" + filepath.Join(clusterDir, "local.crt"),
		"MASTERTRUST_CLUSTER_KEY=" + filepath.Join(clusterDir, "local.key")}
	c.env = append(c.env, cfg.Env...)
	for _, args := range [][]string{{"cert", "--dir", clusterDir, "--name", "local", "--hosts", "127.0.0.1"}, {"secrets", "init"}} {
		if out, err := c.command(args...).CombinedOutput(); err != nil {
			return nil, fmt.Errorf("mastertrust %s: %w: %s", args[0], err, out)
		}
	}
	nats, err := c.start(ctx, "nats", "nats listening on ", "nats", "--data-dir", filepath.Join(dir, "nats"), "--nats-port", "-1")
	if err != nil {
		return nil, err
	}
	c.natsURL, _, _ = strings.Cut(nats, " ")
	custodian := append([]string{"custodian", "--data-dir", filepath.Join(dir, "custodian"), "--nats-url", c.natsURL}, cfg.CustodianArgs...)
	if _, err := c.start(ctx, "custodian", "simulated custodian running against ", custodian...); err != nil {
		return nil, err
	}
	for n := 1; n <= cfg.Nodes; n++ {
		if err := c.startNode(ctx, n); err != nil {
			return nil, err
		}
	}
	if err := c.startGateway(ctx, "127.0.0.1:0"); err != nil {
		return nil, err
	}
	return c, c.awaitMembers(ctx, cfg.Nodes)
}

func (c *localCluster) command(args ...string) *exec.Cmd {
	self, err := os.Executable()
	if err != nil {
		self = os.Args[0]
	}
	cmd := exec.Command(self, args...)
	cmd.Env = append(os.Environ(), c.env...)
	return cmd
}

// start starts a process named name and waits for its line starting with
// ready, whose rest it returns.
func (c *localCluster) start(ctx context.Context, name, ready string, args ...string) (string, error) {
	p, err := c.spawn(name, args...)
	if err != nil {
		return "", err
	}
	c.mu.Lock()
	if n, ok := nodeNumber(name); ok {
		c.nodes[n-1] = p
	} else if name == "gateway" {
		c.gatewayProc = p
	} else {
		c.other = append(c.other, p)
	}
	c.mu.Unlock()
	return p.waitLine(ctx, ready, startWait)
}

func (c *localCluster) spawn(name string, args ...string) (*process, error) {
	return startProcess(name, c.command(args...), filepath.Join(c.dir, name+".log"))
}

// startGateway starts the gateway listening on addr and sets its base URL.
func (c *localCluster) startGateway(ctx context.Context, addr string) (err error) {
	c.gateway, err = c.start(ctx, "gateway", "gateway listening on ", "gateway", "--http", addr, "--nats-url", c.natsURL)
	return err
}

func nodeNumber(name string) (int, bool) {
	var n int
	_, err := fmt.Sscanf(name, "node%d", &n)
	return n, err == nil
}

// startNode starts node n (from 1) on its data dir. The nodes deal any day
// ahead of today: a load run's days follow each other faster than the
// calendar's.
func (c *localCluster) startNode(ctx context.Context, n int) error {
	name := fmt.Sprintf("node%d", n)
	c.mu.Lock()
	for len(c.nodes) < n {
		c.nodes = append(c.nodes, nil)
	}
	c.mu.Unlock()
	_, err := c.start(ctx, name, "node started", "node", "--data-dir", filepath.Join(c.dir, name), "--http", "127.0.0.1:0",
		"--nats-url", c.natsURL, "--dealing-window-ahead", "-1")
	return err
}

// killNode kills node n with SIGKILL, and starts it again on its data dir
// at once; it returns once the node has started and the gateway sees every
// node again.
func (c *localCluster) killNode(ctx context.Context, n int) error {
	c.mu.Lock()
	p := c.nodes[n-1]
	nodes := len(c.nodes)
	c.mu.Unlock()
	c.log.Info("chaos: kill -9", "node", p.name, "pid", p.cmd.Process.Pid)
	if err := c.stopNode(n, syscall.SIGKILL); err != nil {
		return err
	}
	if err := c.startNode(ctx, n); err != nil {
		return err
	}
	c.log.Info("chaos: restarted", "node", p.name)
	return c.awaitMembers(ctx, nodes)
}

// killGateway kills the gateway with SIGKILL and starts it again on the
// same address, which the run's client keeps calling; it returns once the
// gateway has started and sees every node again.
func (c *localCluster) killGateway(ctx context.Context) error {
	c.mu.Lock()
	p := c.gatewayProc
	nodes := len(c.nodes)
	c.mu.Unlock()
	c.log.Info("chaos: kill -9", "process", p.name, "pid", p.cmd.Process.Pid)
	if err := p.stop(syscall.SIGKILL, 30*time.Second); err != nil {
		return err
	}
	if err := c.startGateway(ctx, strings.TrimPrefix(c.gateway, "http://")); err != nil {
		return err
	}
	c.log.Info("chaos: restarted", "process", "gateway")
	return c.awaitMembers(ctx, nodes)
}

// stopNode sends node n sig (SIGTERM: a graceful leave; SIGKILL: a crash)
// and returns once it has exited; a node that has not after 30 s is killed.
func (c *localCluster) stopNode(n int, sig os.Signal) error {
	c.mu.Lock()
	p := c.nodes[n-1]
	c.mu.Unlock()
	return p.stop(sig, 30*time.Second)
}

// awaitMembers waits until the gateway's view (GET /v1/cluster) has n
// members and every member's own view agrees with it.
func (c *localCluster) awaitMembers(ctx context.Context, n int) error {
	token, err := c.token("")
	if err != nil {
		return err
	}
	deadline := time.Now().Add(startWait)
	seen := -1
	for time.Now().Before(deadline) && ctx.Err() == nil {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, c.gateway+"/v1/cluster", nil)
		if err != nil {
			return err
		}
		req.Header.Set("Authorization", "Bearer "+token)
		if resp, err := http.DefaultClient.Do(req); err == nil {
			var view struct {
				Members    []json.RawMessage `json:"members"`
				ViewsAgree bool              `json:"viewsAgree"`
			}
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK && json.Unmarshal(body, &view) == nil {
				if seen = len(view.Members); seen == n && view.ViewsAgree {
					return nil
				}
			}
		}
		time.Sleep(100 * time.Millisecond)
	}
	return errors.Join(ctx.Err(), fmt.Errorf("the gateway sees %d members, not %d, or the members' views disagree", seen, n))
}

// token signs a member's token, or the operator's for member "".
func (c *localCluster) token(member string) (string, error) {
	now := time.Now()
	claims := gateway.Claims{Role: gateway.RoleOperator, Subject: "load", IssuedAt: now.Unix(), ExpiresAt: now.Add(24 * time.Hour).Unix()}
	if member != "" {
		claims.Role, claims.Subject = gateway.RoleMember, member
	}
	return gateway.SignToken(c.secret, claims)
}

// pids names every running process and its pid.
func (c *localCluster) pids() map[string]int {
	out := map[string]int{}
	for _, p := range c.processes() {
		if !p.exited() {
			out[p.name] = p.cmd.Process.Pid
		}
	}
	return out
}

// processes are the cluster's processes started so far, in the order they
// stop: the gateway, the nodes, the custodian, NATS.
func (c *localCluster) processes() []*process {
	c.mu.Lock()
	defer c.mu.Unlock()
	all := append([]*process{c.gatewayProc}, c.nodes...)
	for _, p := range slices.Backward(c.other) {
		all = append(all, p)
	}
	return slices.DeleteFunc(all, func(p *process) bool { return p == nil })
}

// stop stops every process, in turn, each with SIGTERM (SIGKILL after 30 s).
func (c *localCluster) stop() {
	for _, p := range c.processes() {
		if err := p.stop(syscall.SIGTERM, 30*time.Second); err != nil {
			c.log.Warn("stop", "err", err)
		}
	}
}
