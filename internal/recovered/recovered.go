// Package recovered keeps a panic in mastertrust's own code from ending
// the process: Run calls a function and turns a panic in it into an error,
// after logging it once with its stack and counting it in
// mastertrust_panics_total{where}. Every goroutine we start that runs our
// code, and every callback of a library that would otherwise crash the
// process (a NATS message handler, a timer), goes through it; the places
// that must answer something of their own on a panic (the gateway's
// handlers, the grains) recover themselves and call Report.
//
// A recovered panic is still a bug: the metric is for an alert, and the
// owner of the work decides what the failure means (a request answers an
// error, a message is redelivered, a loop carries on after a pause).
package recovered

import (
	"errors"
	"fmt"
	"log/slog"
	"runtime/debug"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
)

// Panic is a recovered panic, as an error.
type Panic struct {
	// Where names the place that recovered it (the metric's label).
	Where string
	// Value is what was passed to panic.
	Value any
}

func (p *Panic) Error() string { return fmt.Sprintf("panic in %s: %v", p.Where, p.Value) }

// Unwrap returns the panic's value when it is an error (panic(err)).
func (p *Panic) Unwrap() error {
	err, _ := p.Value.(error)
	return err
}

// panics counts recovered panics by where. It is one counter for the
// process, not one per registry: the goroutines that recover (NATS
// callbacks, timers, workers) have no registry at hand, and a process has
// one of each anyway. Register puts it on a process's registry.
var panics = prometheus.NewCounterVec(prometheus.CounterOpts{
	Name: "mastertrust_panics_total",
	Help: "Panics recovered in mastertrust's own code (each one a bug), by where they were recovered.",
}, []string{"where"})

// Register registers the panic counter on reg. Registering it again on the
// same registry is a no-op (a dev process's gateway and node share one).
func Register(reg prometheus.Registerer) error {
	err := reg.Register(panics)
	var already prometheus.AlreadyRegisteredError
	if errors.As(err, &already) && already.ExistingCollector == panics {
		return nil
	}
	return err
}

// Count is how many panics this process has recovered at where (tests and
// the fuzz target read it).
func Count(where string) float64 {
	return value(panics.WithLabelValues(where))
}

// Total is how many panics this process has recovered anywhere.
func Total() float64 {
	ch := make(chan prometheus.Metric)
	go func() {
		panics.Collect(ch)
		close(ch)
	}()
	var n float64
	for m := range ch {
		n += value(m)
	}
	return n
}

func value(m prometheus.Metric) float64 {
	var out dto.Metric
	if err := m.Write(&out); err != nil || out.Counter == nil {
		return 0
	}
	return out.Counter.GetValue()
}

// Run calls fn. If fn panics, Run recovers, logs the panic once at error
// level with its stack and attrs, counts it under where, and returns it as
// a *Panic; otherwise it returns nil. A panic with http.ErrAbortHandler is
// recovered like any other: Run is not for HTTP handlers (the gateway
// recovers its own).
//
//	if err := recovered.Run(log, "market-follower", func() { f.catchUp(ctx) }); err != nil {
//		// fn panicked: tell its owner (answer an error, redeliver, retry later)
//	}
func Run(log *slog.Logger, where string, fn func(), attrs ...any) (err error) {
	defer func() {
		if v := recover(); v != nil {
			err = Report(log, where, v, attrs...)
		}
	}()
	fn()
	return nil
}

// Go runs fn on a new goroutine under Run. If fn panics, onPanic (when not
// nil) is called with the *Panic on that goroutine, after it was logged
// and counted: the owner's chance to record the failure or start again.
func Go(log *slog.Logger, where string, fn func(), onPanic func(error), attrs ...any) {
	go func() {
		if err := Run(log, where, fn, attrs...); err != nil && onPanic != nil {
			onPanic(err)
		}
	}()
}

// Report logs and counts a panic that the caller recovered itself (call it
// from the deferred function that called recover, so that the stack still
// shows where the panic happened) and returns it as a *Panic. For places
// that answer something of their own: an HTTP handler, a grain.
func Report(log *slog.Logger, where string, v any, attrs ...any) *Panic {
	panics.WithLabelValues(where).Inc()
	if log == nil {
		log = slog.Default()
	}
	log.Error("panic recovered", append([]any{"where", where, "panic", fmt.Sprint(v), "stack", string(debug.Stack())}, attrs...)...)
	return &Panic{Where: where, Value: v}
}
