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
	// PollInterval is how often RunCycle and Reconcile ask how a run is
	// getting on. Default 200 ms.
	PollInterval time.Duration
}

// OperatorError is a refusal or a failure from a system grain: its code
// (a code of internal/problem's table) for the API to map, and a sentence
// for operators.
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

// operatorError is a system grain's problem as an error (nil for none).
func operatorError(p *pb.Problem) error {
	if p == nil {
		return nil
	}
	return &OperatorError{Code: p.Code, Message: p.Detail}
}

// errNoDate: a caller passed the zero date; the grain identities are dates.
var errNoDate = errors.New("actors: an operator call needs a date")

// PricesPublication is an operator's publication of a date's prices.
type PricesPublication struct {
	Date   domain.Date
	Prices map[domain.ISIN]domain.Price
	// Reason, with prices other than those recorded, makes a correction.
	Reason string
	// By is who publishes them (a token's subject, or "feed").
	By string
}

// PublishPrices records a date's closing prices (every catalogue asset), or
// corrects them (with a reason, until a cycle used them). It answers the
// date's prices and their history.
func (o Operator) PublishPrices(ctx context.Context, p PricesPublication) (*pb.PricesResponse, error) {
	if p.Date.IsZero() {
		return nil, errNoDate
	}
	req := &pb.PricesRequest{Command: &pb.PricesRequest_Publish{Publish: &pb.PricesPublished{
		Date: p.Date.String(), Prices: encodePrices(p.Prices, nil), Reason: p.Reason, By: p.By}}}
	return o.pricesCall(ctx, p.Date, req)
}

// Prices reads a date's closing prices and their history.
func (o Operator) Prices(ctx context.Context, date domain.Date) (*pb.PricesResponse, error) {
	if date.IsZero() {
		return nil, errNoDate
	}
	return o.pricesCall(ctx, date, &pb.PricesRequest{Command: &pb.PricesRequest_Get{Get: &pb.PricesGet{}}})
}

func (o Operator) pricesCall(ctx context.Context, date domain.Date, req *pb.PricesRequest) (*pb.PricesResponse, error) {
	r, err := cluster.CallWithin(ctx, o.Node, o.timeout(), func(opts ...protocluster.GrainCallOption) (*pb.PricesResponse, error) {
		return pb.GetPricesGrainClient(o.Node.Cluster(), date.String()).Handle(req, opts...)
	})
	if err != nil {
		return nil, err
	}
	return r, operatorError(r.Problem)
}

func (o Operator) cycle(ctx context.Context, date domain.Date, req *pb.CycleRequest) (*pb.CycleSummary, error) {
	if date.IsZero() {
		return nil, errNoDate
	}
	r, err := cluster.CallWithin(ctx, o.Node, o.timeout(), func(opts ...protocluster.GrainCallOption) (*pb.CycleResponse, error) {
		return pb.GetCycleGrainClient(o.Node.Cluster(), date.String()).Handle(req, opts...)
	})
	if err != nil {
		return nil, err
	}
	return r.Summary, operatorError(r.Problem)
}

// Cycle reads a date's cycle summary.
func (o Operator) Cycle(ctx context.Context, date domain.Date) (*pb.CycleSummary, error) {
	return o.cycle(ctx, date, &pb.CycleRequest{Command: &pb.CycleRequest_Get{Get: &pb.CycleGet{}}})
}

// StartCycle starts (or resumes) a date's cycle and returns at once with
// its summary: running, or complete (a completed cycle trades nothing
// again), or a refusal.
func (o Operator) StartCycle(ctx context.Context, date domain.Date, opt CycleRunOptions) (*pb.CycleSummary, error) {
	return o.cycle(ctx, date, &pb.CycleRequest{Command: &pb.CycleRequest_Run{Run: &pb.CycleRun{
		Rebalance: opt.Rebalance, Force: opt.Force, Reason: opt.Reason, By: opt.By}}})
}

// RunCycle starts (or resumes) a date's cycle and waits until it completes
// or fails, or ctx ends; progress, if not nil, sees the summary as it goes.
// A failed run is an OperatorError with the run's problem code.
func (o Operator) RunCycle(ctx context.Context, date domain.Date, opt CycleRunOptions, progress func(*pb.CycleSummary)) (*pb.CycleSummary, error) {
	s, err := o.StartCycle(ctx, date, opt)
	for {
		if err != nil {
			return s, err
		}
		if progress != nil {
			progress(s)
		}
		switch s.Status {
		case CycleComplete:
			return s, nil
		case CycleFailed:
			p := s.GetProblem()
			return s, &OperatorError{Code: p.GetCode(), Message: fmt.Sprintf("cycle %s failed at the %s step: %s", date, s.Step, p.GetDetail())}
		}
		select {
		case <-ctx.Done():
			return s, fmt.Errorf("cycle %s still %s at the %s step: %w", date, s.Status, s.Step, ctx.Err())
		case <-time.After(o.pollInterval()):
		}
		s, err = o.Cycle(ctx, date)
	}
}

// StartReconciliation starts reconciliation id (a repeat of an id answers
// how it stands: running, or its recorded report) and returns at once.
func (o Operator) StartReconciliation(ctx context.Context, id string, deep bool, asOf domain.Date) (*pb.ReconciliationResponse, error) {
	run := &pb.ReconRun{Deep: deep}
	if !asOf.IsZero() {
		run.AsOf = asOf.String()
	}
	return o.reconciliationCall(ctx, id, &pb.ReconciliationRequest{Command: &pb.ReconciliationRequest_Run{Run: run}})
}

// Reconcile runs reconciliation id and waits for its report until ctx ends;
// then the run goes on, and Reconciliation(id) reads it once done.
func (o Operator) Reconcile(ctx context.Context, id string, deep bool, asOf domain.Date) (*pb.ReconciliationReport, error) {
	r, err := o.StartReconciliation(ctx, id, deep, asOf)
	for {
		if err != nil {
			return nil, err
		}
		if !r.Running {
			return r.Report, nil
		}
		select {
		case <-ctx.Done():
			return nil, fmt.Errorf("reconciliation %s still running: %w", id, ctx.Err())
		case <-time.After(o.pollInterval()):
		}
		r, err = o.Reconciliation(ctx, id)
	}
}

// Reconciliation reads how a reconciliation stands: running (with its
// progress), or its report.
func (o Operator) Reconciliation(ctx context.Context, id string) (*pb.ReconciliationResponse, error) {
	return o.reconciliationCall(ctx, id, &pb.ReconciliationRequest{Command: &pb.ReconciliationRequest_Get{Get: &pb.ReconGet{}}})
}

func (o Operator) pollInterval() time.Duration {
	if o.PollInterval == 0 {
		return 200 * time.Millisecond
	}
	return o.PollInterval
}

func (o Operator) reconciliationCall(ctx context.Context, id string, req *pb.ReconciliationRequest) (*pb.ReconciliationResponse, error) {
	if id == "" {
		return nil, errors.New("actors: a reconciliation needs an id")
	}
	r, err := cluster.CallWithin(ctx, o.Node, o.timeout(), func(opts ...protocluster.GrainCallOption) (*pb.ReconciliationResponse, error) {
		return pb.GetReconciliationGrainClient(o.Node.Cluster(), id).Handle(req, opts...)
	})
	if err != nil {
		return nil, err
	}
	return r, operatorError(r.Problem)
}
