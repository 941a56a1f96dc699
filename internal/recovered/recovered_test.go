package recovered_test

import (
	"bytes"
	"io"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

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
	require.ErrorAs(t, err, &p, "Run")
	require.Equal(t, "test-run", p.Where, "Run: the panic's where")
	require.Same(t, io.ErrUnexpectedEOF, p.Value, "Run: the panic's value")
	assert.ErrorIs(t, err, io.ErrUnexpectedEOF, "a panic with an error unwraps to it")
	assert.EqualValues(t, 1, recovered.Count("test-run")-before, "panics counted")
	assert.EqualValues(t, 1, recovered.Total()-total, "total panics counted")
	// One error line with where, the attrs and the stack of panicsWithCause.
	out := lines.String()
	assert.Equal(t, 1, strings.Count(out, "\n"), "lines logged: %q", out)
	assert.Equal(t, 1, strings.Count(out, "stack="), "stacks logged: %q", out)
	assert.Contains(t, out, "level=ERROR", "the log")
	assert.Contains(t, out, "panicsWithCause", "the log's stack")
	assert.Contains(t, out, "where=test-run", "the log")
	assert.Contains(t, out, "job=j1", "the log's attrs")

	assert.NoError(t, recovered.Run(log, "test-run", func() {}), "Run of a function that returns")
	assert.EqualValues(t, 1, recovered.Count("test-run")-before, "panics counted after a function that returns")
}

// TestGoTellsTheOwner: Go runs fn on its own goroutine, and a panic reaches
// onPanic there instead of ending the process.
func TestGoTellsTheOwner(t *testing.T) {
	log, _ := newLog()
	got := make(chan error, 1)
	recovered.Go(log, "test-go", func() { panic("boom") }, func(err error) { got <- err })
	select {
	case err := <-got:
		require.EqualError(t, err, "panic in test-go: boom", "onPanic's error")
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
		require.NoError(t, recovered.Register(reg))
	}
	recovered.Run(slog.New(slog.DiscardHandler), "test-register", func() { panic("x") })
	families, err := b.Gather()
	require.NoError(t, err)
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
