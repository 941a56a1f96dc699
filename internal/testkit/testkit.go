// Package testkit holds what the tests of several packages share: logs that
// go to the test and stay quiet unless asked for, polling for a condition
// instead of sleeping, and ports for servers that must know theirs before
// they start. It is imported only by tests.
package testkit

import (
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net"
	"os"
	"strings"
	"sync"
	"testing"
	"time"
)

// LogEnv names the environment variable that turns test logs up:
// MASTERTRUST_LOG=debug|info|warn|error. Default warn.
const LogEnv = "MASTERTRUST_LOG"

// Logger returns a logger writing to t.Log at the level of LogEnv, and that
// level. Lines logged after the test ended (background goroutines outlive
// tests) are dropped, because t.Log would panic then.
func Logger(t testing.TB) (*slog.Logger, slog.Level) {
	level := slog.LevelWarn
	if v := os.Getenv(LogEnv); v != "" {
		if err := level.UnmarshalText([]byte(v)); err != nil {
			t.Fatalf("%s=%q: %v", LogEnv, v, err)
		}
	}
	w := &writer{t: t}
	// Registered first, so it runs after every other cleanup (servers stop
	// there and may still log).
	t.Cleanup(w.close)
	return slog.New(slog.NewTextHandler(w, &slog.HandlerOptions{Level: level})), level
}

type writer struct {
	t testing.TB
	// mu guards done and serializes writes with close.
	mu   sync.Mutex
	done bool
}

func (w *writer) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if !w.done {
		w.t.Log(strings.TrimRight(string(p), "\n"))
	}
	return len(p), nil
}

func (w *writer) close() {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.done = true
}

// CheckFor calls check every interval until it returns nil, and fails the
// test with check's last error if that has not happened within timeout.
func CheckFor(t testing.TB, timeout, interval time.Duration, check func() error) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		err := check()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("not true within %s: %v", timeout, err)
		}
		time.Sleep(interval)
	}
}

// FreePort returns a loopback port that was free a moment ago, for a server
// that must know its port before it starts (a NATS route, a restarted
// member). It is chosen below Linux's ephemeral range (32768–60999 by
// default): the kernel hands ports of that range to every outgoing
// connection and every listener on port 0, so a port picked there with
// ":0" and closed can be taken by another test's connection before its
// server binds it ("address already in use"). Below it, only another
// explicit choice can collide, one in twelve thousand.
func FreePort(t testing.TB) int {
	t.Helper()
	const low, high = 20000, 32768
	for range 100 {
		port := low + rand.IntN(high-low)
		ln, err := net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", port))
		if err != nil {
			continue
		}
		if err := ln.Close(); err != nil {
			t.Fatalf("close port %d: %v", port, err)
		}
		return port
	}
	t.Fatalf("no free port in [%d, %d) after 100 tries", low, high)
	return 0
}
