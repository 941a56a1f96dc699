package recovered_test

import (
	"bytes"
	"errors"
	"io"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/acme/mastertrust/internal/recovered"
)

// logBuffer is a logger whose lines the test reads.
type logBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *logBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *logBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

func newLog() (*slog.Logger, *logBuffer) {
	b := &logBuffer{}
	return slog.New(slog.NewTextHandler(b, nil)), b
}

func panicsWithCause() { panic(io.ErrUnexpectedEOF) }

// TestRunRecovers: a panic in fn becomes a *Panic error, logged once at
// error level with the stack of where it happened, and counted under where;
// a function that returns is not.
func TestRunRecovers(t *testing.T) {
	log, lines := newLog()
	before := recovered.Count("test-run")
	total := recovered.Total()
	err := recovered.Run(log, "test-run", panicsWithCause, "job", "j1")
	var p *recovered.Panic
	if !errors.As(err, &p) || p.Where != "test-run" || p.Value != io.ErrUnexpectedEOF {
		t.Fatalf("Run = %#v, want a *Panic of test-run with the value", err)
	}
	if !errors.Is(err, io.ErrUnexpectedEOF) {
		t.Errorf("a panic with an error does not unwrap to it: %v", err)
	}
	if got := recovered.Count("test-run") - before; got != 1 {
		t.Errorf("counted %v panics, want 1", got)
	}
	if got := recovered.Total() - total; got != 1 {
		t.Errorf("total moved by %v, want 1", got)
	}
	out := lines.String()
	if strings.Count(out, "\n") != 1 || strings.Count(out, "stack=") != 1 || !strings.Contains(out, "level=ERROR") ||
		!strings.Contains(out, "panicsWithCause") || !strings.Contains(out, "where=test-run") || !strings.Contains(out, "job=j1") {
		t.Errorf("logged %q, want one error line with where, the attrs and the stack of panicsWithCause", out)
	}

	if err := recovered.Run(log, "test-run", func() {}); err != nil {
		t.Errorf("Run of a function that returns = %v", err)
	}
	if got := recovered.Count("test-run") - before; got != 1 {
		t.Errorf("a function that returns was counted: %v", got)
	}
}

// TestGoTellsTheOwner: Go runs fn on its own goroutine, and a panic reaches
// onPanic there instead of ending the process.
func TestGoTellsTheOwner(t *testing.T) {
	log, _ := newLog()
	got := make(chan error, 1)
	recovered.Go(log, "test-go", func() { panic("boom") }, func(err error) { got <- err })
	select {
	case err := <-got:
		if err == nil || err.Error() != "panic in test-go: boom" {
			t.Fatalf("onPanic got %v", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("onPanic was not called")
	}
	done := make(chan struct{})
	recovered.Go(log, "test-go", func() { close(done) }, func(err error) { t.Errorf("onPanic(%v) without a panic", err) })
	<-done
}

// TestRegister: the counter registers on any number of registries, and
// again on the same one without error, and is gathered as
// mastertrust_panics_total.
func TestRegister(t *testing.T) {
	a, b := prometheus.NewRegistry(), prometheus.NewRegistry()
	for _, reg := range []*prometheus.Registry{a, a, b} {
		if err := recovered.Register(reg); err != nil {
			t.Fatal(err)
		}
	}
	recovered.Run(slog.New(slog.DiscardHandler), "test-register", func() { panic("x") })
	families, err := b.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range families {
		if f.GetName() != "mastertrust_panics_total" {
			continue
		}
		for _, m := range f.GetMetric() {
			for _, l := range m.GetLabel() {
				if l.GetName() == "where" && l.GetValue() == "test-register" && m.GetCounter().GetValue() >= 1 {
					return
				}
			}
		}
	}
	t.Fatalf("mastertrust_panics_total{where=test-register} not gathered: %v", families)
}
