package cluster

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/asynkron/protoactor-go/actor"
	protocluster "github.com/asynkron/protoactor-go/cluster"
	"github.com/asynkron/protoactor-go/remote"

	"github.com/acme/mastertrust/internal/pause"
	"github.com/acme/mastertrust/internal/recovered"
)

// Errors of grain calls made through Call. Both mean "try again later"
// (HTTP 503); neither says whether the grain ran the request: a timed-out
// command may still have been applied, so commands must be idempotent.
var (
	// ErrTimeout: the call's deadline passed before a reply came.
	ErrTimeout = errors.New("cluster: grain call timed out")
	// ErrUnavailable: no member could take the call: none hosts the kind,
	// the owner is gone and the topology has not caught up, or every
	// attempt hit a dead activation.
	ErrUnavailable = errors.New("cluster: grain unavailable")
	// ErrStopped: the node was stopped.
	ErrStopped = errors.New("cluster: node stopped")
)

// CallOptions returns the protoactor grain call options for one call from
// this node: a timeout that is the earlier of ctx's deadline and the node's
// RequestTimeout, RequestRetryCount attempts, and a backoff between them
// that never sleeps past the deadline. For direct use of the generated
// clients; Call uses it.
func (n *Node) CallOptions(ctx context.Context) []protocluster.GrainCallOption {
	return n.callOptions(ctx, n.cfg.RequestTimeout)
}

func (n *Node) callOptions(ctx context.Context, timeout time.Duration) []protocluster.GrainCallOption {
	callDeadline := deadline(ctx, timeout)
	return []protocluster.GrainCallOption{
		protocluster.WithTimeout(time.Until(callDeadline)),
		protocluster.WithRetryCount(n.cfg.RequestRetryCount),
		// protoactor's default waits attempt² × 50 ns, i.e. not at all,
		// so during a failover every attempt fails before the topology
		// has changed.
		protocluster.WithRetryAction(func(attempt int) int {
			attempt++
			if wait := n.retryWait(attempt, callDeadline); wait > 0 {
				time.Sleep(wait)
			}
			return attempt
		}),
	}
}

// retryWait is how long a call waits after its attempt-th failed attempt
// (1-based): RequestRetryBackoff × attempt², never past callDeadline.
func (n *Node) retryWait(attempt int, callDeadline time.Time) time.Duration {
	return min(n.cfg.RequestRetryBackoff*time.Duration(attempt*attempt), time.Until(callDeadline))
}

// waitToRetry waits d between two attempts of a call, or returns ctx's error
// (classified) if ctx ends first.
func waitToRetry(ctx context.Context, d time.Duration) error {
	if err := pause.For(ctx, d); err != nil {
		return classifyContextError(err)
	}
	return nil
}

// Call makes one grain call from node n with n's timeout and retries (see
// CallOptions), returning when ctx ends at the latest, and maps failures to
// ErrTimeout, ErrUnavailable or ErrStopped (test with errors.Is; the
// original error is wrapped too). An error returned by the grain itself is
// returned as is: a *protocluster.GrainErrorResponse.
//
//	resp, err := cluster.Call(ctx, node, func(opts ...protocluster.GrainCallOption) (*pb.PricesResponse, error) {
//		return pb.GetPricesGrainClient(node.Cluster(), date).Handle(req, opts...)
//	})
//
// If ctx ends first, protoactor's call goes on in the background until its
// own timeout (the same deadline) or, when the owner is unreachable, up to
// 5 s per attempt: protoactor's activation lookup has a fixed 5 s timeout
// that does not see the call's.
func Call[T any](ctx context.Context, n *Node, call func(opts ...protocluster.GrainCallOption) (T, error)) (T, error) {
	return callWithin(ctx, n, n.cfg.RequestTimeout, call)
}

// CallWithin is Call with timeout in place of the node's RequestTimeout:
// for the system's long calls (a dealing cycle's step), not for members'
// requests.
func CallWithin[T any](ctx context.Context, n *Node, timeout time.Duration, call func(opts ...protocluster.GrainCallOption) (T, error)) (T, error) {
	return callWithin(ctx, n, timeout, call)
}

func callWithin[T any](ctx context.Context, n *Node, timeout time.Duration, call func(opts ...protocluster.GrainCallOption) (T, error)) (T, error) {
	var zero T
	if err := ctx.Err(); err != nil {
		return zero, classifyContextError(err)
	}
	if !n.enter() {
		return zero, ErrStopped
	}
	opts := n.callOptions(ctx, timeout)
	// A panic in call (a generated client refusing its arguments, say) is
	// recovered, logged and counted, and returned as the call's error (a
	// *recovered.Panic): on the goroutine below nothing else would stop it
	// ending the process, and the caller is the one to answer for it.
	safeCall := func() (v T, err error) {
		if perr := recovered.Run(n.logger, "cluster-call", func() { v, err = call(opts...) }); perr != nil {
			return zero, perr
		}
		return v, err
	}
	if ctx.Done() == nil {
		// Nothing can end ctx early, and protoactor enforces the timeout:
		// save the goroutine.
		defer n.calls.Done()
		v, err := safeCall()
		if err != nil {
			return zero, classifyCallError(err)
		}
		return v, nil
	}

	type result struct {
		value T
		err   error
	}
	done := make(chan result, 1) // buffered: the call may outlive us
	go func() {
		// Done when protoactor's call really ends, after Call may have
		// returned: Stop waits for it.
		defer n.calls.Done()
		v, err := safeCall()
		done <- result{v, err}
	}()
	select {
	case r := <-done:
		if r.err != nil {
			return zero, classifyCallError(r.err)
		}
		return r.value, nil
	case <-ctx.Done():
		return zero, classifyContextError(ctx.Err())
	}
}

func classifyContextError(err error) error {
	if errors.Is(err, context.DeadlineExceeded) {
		return fmt.Errorf("%w: %w", ErrTimeout, err)
	}
	return err // canceled: the caller's decision, not the cluster's state
}

// classifyCallError maps the errors of protoactor's cluster Request (as
// wrapped by the generated clients) to this package's.
func classifyCallError(err error) error {
	var grainErr *protocluster.GrainErrorResponse
	switch {
	case errors.As(err, &grainErr):
		return err
	case errors.Is(err, context.DeadlineExceeded),
		errors.Is(err, actor.ErrTimeout),
		errors.Is(err, remote.ErrTimeout):
		return fmt.Errorf("%w: %w", ErrTimeout, err)
	case errors.Is(err, actor.ErrDeadLetter),
		errors.Is(err, remote.ErrDeadLetter),
		errors.Is(err, remote.ErrUnAvailable),
		// protoactor returns this one unwrapped (fmt.Errorf with %v) when
		// every attempt found no PID or hit a dead one; the text is all
		// there is to go by in this build.
		strings.Contains(err.Error(), "have reached max retries"):
		return fmt.Errorf("%w: %w", ErrUnavailable, err)
	default:
		return err
	}
}
