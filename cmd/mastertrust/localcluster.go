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

	mu    sync.Mutex
	nodes []*process // by number, from 1
	other []*process // NATS, the custodian, the gateway
}

// process is one child process and its output.
type process struct {
	name string
	cmd  *exec.Cmd
	out  *outputLog
	done chan struct{} // closed once it has exited
}

func (p *process) exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// outputLog keeps a process's output in memory (to wait for its lines) and
// in its log file.
type outputLog struct {
	mu   sync.Mutex
	buf  bytes.Buffer
	file *os.File
}

func (o *outputLog) Write(p []byte) (int, error) {
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.buf.Len() < outputKeptMax {
		o.buf.Write(p) // only the start is waited on
	}
	return o.file.Write(p)
}

// outputKeptMax bounds the output kept in memory: the lines waited for
// come first.
const outputKeptMax = 1 << 20

// startWait is how long a process has to say it started.
const startWait = 2 * time.Minute

// startLocalCluster starts NATS, the custodian, nodes nodes and a gateway
// under dir, and waits until the gateway sees every node.
func startLocalCluster(ctx context.Context, dir string, nodes int, log *slog.Logger) (_ *localCluster, err error) {
	raw := make([]byte, 32)
	if _, err := rand.Read(raw); err != nil {
		return nil, err
	}
	c := &localCluster{dir: dir, secret: []byte(hex.EncodeToString(raw)), log: log}
	defer func() {
		if err != nil {
			c.stop()
		}
	}()
	clusterDir := filepath.Join(dir, "secrets", "cluster")
	c.env = []string{"MASTERTRUST_NATS_SECRETS=" + filepath.Join(dir, "secrets", "nats"), "MASTERTRUST_TOKEN_SECRET=" + string(c.secret),
		"MASTERTRUST_CLUSTER_CA=" + filepath.Join(clusterDir, "ca.crt"), "MASTERTRUST_CLUSTER_CERT=" + filepath.Join(clusterDir, "local.crt"),
		"MASTERTRUST_CLUSTER_KEY=" + filepath.Join(clusterDir, "local.key")}
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
	if _, err := c.start(ctx, "custodian", "simulated custodian running against ", "custodian", "--data-dir", filepath.Join(dir, "custodian"),
		"--nats-url", c.natsURL); err != nil {
		return nil, err
	}
	for n := 1; n <= nodes; n++ {
		if err := c.startNode(ctx, n); err != nil {
			return nil, err
		}
	}
	if c.gateway, err = c.start(ctx, "gateway", "gateway listening on ", "gateway", "--http", "127.0.0.1:0", "--nats-url", c.natsURL); err != nil {
		return nil, err
	}
	return c, c.awaitMembers(ctx, nodes)
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
	} else {
		c.other = append(c.other, p)
	}
	c.mu.Unlock()
	return p.waitLine(ctx, ready)
}

func (c *localCluster) spawn(name string, args ...string) (*process, error) {
	file, err := os.OpenFile(filepath.Join(c.dir, name+".log"), os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o644)
	if err != nil {
		return nil, err
	}
	p := &process{name: name, cmd: c.command(args...), out: &outputLog{file: file}, done: make(chan struct{})}
	p.cmd.Stdout, p.cmd.Stderr = p.out, p.out
	if err := p.cmd.Start(); err != nil {
		file.Close()
		return nil, fmt.Errorf("start %s: %w", name, err)
	}
	go func() {
		p.cmd.Wait()
		p.out.mu.Lock()
		file.Close()
		p.out.mu.Unlock()
		close(p.done)
	}()
	return p, nil
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

// waitLine waits for a line of the output starting with prefix and returns
// the rest of it; an error if the process exits first or does not say it
// in startWait.
func (p *process) waitLine(ctx context.Context, prefix string) (string, error) {
	deadline := time.Now().Add(startWait)
	for time.Now().Before(deadline) && ctx.Err() == nil {
		p.out.mu.Lock()
		text := p.out.buf.String()
		p.out.mu.Unlock()
		for line := range strings.Lines(text) {
			if rest, ok := strings.CutPrefix(strings.TrimRight(line, "\n"), prefix); ok {
				return rest, nil
			}
		}
		if p.exited() {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	return "", fmt.Errorf("%s did not say %q (its log: %s)", p.name, prefix, p.out.file.Name())
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
	if err := p.cmd.Process.Signal(syscall.SIGKILL); err != nil {
		return err
	}
	<-p.done
	if err := c.startNode(ctx, n); err != nil {
		return err
	}
	c.log.Info("chaos: restarted", "node", p.name)
	return c.awaitMembers(ctx, nodes)
}

// awaitMembers waits until the gateway's own view (GET /v1/cluster) has n
// members.
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
				Members []json.RawMessage `json:"members"`
			}
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK && json.Unmarshal(body, &view) == nil {
				if seen = len(view.Members); seen == n {
					return nil
				}
			}
		}
		time.Sleep(100 * time.Millisecond)
	}
	return errors.Join(ctx.Err(), fmt.Errorf("the gateway sees %d members, not %d", seen, n))
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
	c.mu.Lock()
	defer c.mu.Unlock()
	out := map[string]int{}
	for _, p := range append(append([]*process(nil), c.other...), c.nodes...) {
		if p != nil && !p.exited() {
			out[p.name] = p.cmd.Process.Pid
		}
	}
	return out
}

// stop stops every process: the gateway, the nodes, the custodian, NATS,
// each with SIGTERM (SIGKILL after 30 s).
func (c *localCluster) stop() {
	c.mu.Lock()
	var order []*process
	if len(c.other) == 3 {
		order = append(order, c.other[2]) // the gateway
	}
	order = append(order, c.nodes...)
	for i := min(len(c.other), 2) - 1; i >= 0; i-- {
		order = append(order, c.other[i]) // the custodian, NATS
	}
	c.mu.Unlock()
	for _, p := range order {
		if p == nil || p.exited() {
			continue
		}
		p.cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-p.done:
		case <-time.After(30 * time.Second):
			p.cmd.Process.Kill()
			<-p.done
		}
	}
}
