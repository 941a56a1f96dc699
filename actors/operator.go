package actors

import (
	"context"
	"errors"
	"fmt"
	"time"

	protocluster "github.com/asynkron/protoactor-go/cluster"

	"github.com/acme/mastertrust/cluster"
	"github.com/acme/mastertrust/domain"
	"github.com/acme/mastertrust/proto/pb"
)

// Operator makes the operators' calls (prices, cycles, reconciliations)
// from any node, a gateway's client node included: the gateway's operator
// endpoints and the mastertrust operator commands both use it.
type Operator struct {
	Node *cluster.Node
	// CallTimeout bounds one call to a system grain. Default 1 min.
	CallTimeout time.Duration
	// PollInterval is how often RunCycle asks how a cycle is getting on.
	// Default 200 ms.
	PollInterval time.Duration
}

// OperatorError is a refusal from a system grain, with its code (one of
// the Code… constants) for the API to map.
type OperatorError struct {
	Code    string
	Message string
}

func (e *OperatorError) Error() string { return e.Message }

func (o Operator) timeout() time.Duration {
	if o.CallTimeout == 0 {
		return time.Minute
	}
	return o.CallTimeout
}

func operatorError(code, msg string) error {
	if msg == "" {
		return nil
	}
	return &OperatorError{Code: code, Message: msg}
}

// PublishPrices records a date's closing prices (all catalogue assets).
func (o Operator) PublishPrices(ctx context.Context, date domain.Date, prices map[domain.ISIN]domain.Price) (*pb.PricesPublished, error) {
	r, err := cluster.CallWithin(ctx, o.Node, o.timeout(), func(opts ...protocluster.GrainCallOption) (*pb.PricesResponse, error) {
		return pb.GetPricesGrainClient(o.Node.Cluster(), date.String()).Handle(&pb.PricesRequest{Command: &pb.PricesRequest_Publish{
			Publish: &pb.PricesPublished{Date: date.String(), Prices: encodePrices(prices, nil)}}}, opts...)
	})
	if err != nil {
		return nil, err
	}
	return r.Prices, operatorError(r.ErrorCode, r.Error)
}

// Prices reads a date's closing prices.
func (o Operator) Prices(ctx context.Context, date domain.Date) (*pb.PricesPublished, error) {
	r, err := cluster.CallWithin(ctx, o.Node, o.timeout(), func(opts ...protocluster.GrainCallOption) (*pb.PricesResponse, error) {
		return pb.GetPricesGrainClient(o.Node.Cluster(), date.String()).Handle(&pb.PricesRequest{Command: &pb.PricesRequest_Get{Get: &pb.PricesGet{}}}, opts...)
	})
	if err != nil {
		return nil, err
	}
	return r.Prices, operatorError(r.ErrorCode, r.Error)
}

func (o Operator) cycle(ctx context.Context, date domain.Date, req *pb.CycleRequest) (*pb.CycleResponse, error) {
	return cluster.CallWithin(ctx, o.Node, o.timeout(), func(opts ...protocluster.GrainCallOption) (*pb.CycleResponse, error) {
		return pb.GetCycleGrainClient(o.Node.Cluster(), date.String()).Handle(req, opts...)
	})
}

// Cycle reads a date's cycle summary.
func (o Operator) Cycle(ctx context.Context, date domain.Date) (*pb.CycleSummary, error) {
	r, err := o.cycle(ctx, date, &pb.CycleRequest{Command: &pb.CycleRequest_Get{Get: &pb.CycleGet{}}})
	if err != nil {
		return nil, err
	}
	return r.Summary, operatorError(r.ErrorCode, r.Error)
}

// RunCycle runs (or resumes) a date's cycle and waits until it completes or
// fails, or ctx ends; progress, if not nil, sees the summary as it goes.
// Running a completed cycle returns its recorded summary and trades nothing.
func (o Operator) RunCycle(ctx context.Context, date domain.Date, rebalance bool, progress func(*pb.CycleSummary)) (*pb.CycleSummary, error) {
	r, err := o.cycle(ctx, date, &pb.CycleRequest{Command: &pb.CycleRequest_Run{Run: &pb.CycleRun{Rebalance: rebalance}}})
	if err != nil {
		return nil, err
	}
	poll := o.pollInterval()
	for {
		if err := operatorError(r.ErrorCode, r.Error); err != nil && r.Summary == nil {
			return nil, err
		}
		s := r.Summary
		if progress != nil {
			progress(s)
		}
		switch s.Status {
		case CycleCompleted:
			return s, nil
		case CycleFailed:
			code := r.ErrorCode
			if code == "" {
				code = CodeCycleFailed
			}
			return s, &OperatorError{Code: code, Message: fmt.Sprintf("cycle %s failed at %s: %s", date, s.Step, s.Error)}
		}
		select {
		case <-ctx.Done():
			return s, fmt.Errorf("cycle %s still %s at step %s: %w", date, s.Status, s.Step, ctx.Err())
		case <-time.After(poll):
		}
		if r, err = o.cycle(ctx, date, &pb.CycleRequest{Command: &pb.CycleRequest_Get{Get: &pb.CycleGet{}}}); err != nil {
			return nil, err
		}
	}
}

// Reconcile runs reconciliation id (a repeat of an id answers its recorded
// report) and waits for its report until ctx ends; then the run goes on,
// and Reconciliation(id) reads it once done.
func (o Operator) Reconcile(ctx context.Context, id string, deep bool, asOf domain.Date) (*pb.ReconciliationReport, error) {
	if id == "" {
		return nil, errors.New("a reconciliation needs an id")
	}
	run := &pb.ReconRun{Deep: deep}
	if !asOf.IsZero() {
		run.AsOf = asOf.String()
	}
	req := &pb.ReconciliationRequest{Command: &pb.ReconciliationRequest_Run{Run: run}}
	for {
		r, err := o.reconciliationCall(ctx, id, req)
		if err != nil {
			return nil, err
		}
		if !r.Running {
			return r.Report, operatorError(r.ErrorCode, r.Error)
		}
		select {
		case <-ctx.Done():
			return nil, fmt.Errorf("reconciliation %s still running: %w", id, ctx.Err())
		case <-time.After(o.pollInterval()):
		}
		req = &pb.ReconciliationRequest{Command: &pb.ReconciliationRequest_Get{Get: &pb.ReconGet{}}}
	}
}

// Reconciliation reads a reconciliation's report; a run still under way is
// an OperatorError with code CodeRunning.
func (o Operator) Reconciliation(ctx context.Context, id string) (*pb.ReconciliationReport, error) {
	r, err := o.reconciliationCall(ctx, id, &pb.ReconciliationRequest{Command: &pb.ReconciliationRequest_Get{Get: &pb.ReconGet{}}})
	if err != nil {
		return nil, err
	}
	if r.Running {
		return nil, &OperatorError{Code: CodeRunning, Message: "reconciliation " + id + " is still running; ask again"}
	}
	return r.Report, operatorError(r.ErrorCode, r.Error)
}

func (o Operator) pollInterval() time.Duration {
	if o.PollInterval == 0 {
		return 200 * time.Millisecond
	}
	return o.PollInterval
}

func (o Operator) reconciliationCall(ctx context.Context, id string, req *pb.ReconciliationRequest) (*pb.ReconciliationResponse, error) {
	return cluster.CallWithin(ctx, o.Node, o.timeout(), func(opts ...protocluster.GrainCallOption) (*pb.ReconciliationResponse, error) {
		return pb.GetReconciliationGrainClient(o.Node.Cluster(), id).Handle(req, opts...)
	})
}
