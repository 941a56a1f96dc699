package actors

import (
	"context"
	"errors"
	"fmt"
	"slices"

	"google.golang.org/protobuf/proto"

	"github.com/acme/mastertrust/domain"
	"github.com/acme/mastertrust/internal/problem"
	"github.com/acme/mastertrust/proto/pb"
)

// The prices grain: one per date. It records the date's closing prices
// (stream "prices/<date>"), where every node's market follower finds them.
// The same prices again change nothing. Other prices replace them, with a
// reason, until a cycle has cut the date off and taken them to deal at
// (PricesUsed); from then on they never change. The first publication must
// be for a dealing day inside the operators' window.
type prices struct {
	deps   *DealingDeps
	date   domain.Date
	stream systemStream
	// history is the first publication and every correction; the last is
	// in force.
	history []*pb.PricesPublished
	used    bool
}

func (p *prices) failure(err error) proto.Message { return p.failed(err) }

func (p *prices) failed(err error) *pb.PricesResponse {
	return &pb.PricesResponse{Problem: failureProblem(err)}
}

func (p *prices) activate(identity string, f *fence) error {
	d, err := domain.ParseDate(identity)
	if err != nil {
		return err
	}
	p.date = d
	p.stream = systemStream{j: p.deps.Journal, name: pricesStream(d), fence: f}
	ctx, cancel := context.WithTimeout(context.Background(), p.deps.Config.StepTimeout)
	defer cancel()
	return p.stream.load(ctx, func(m proto.Message) error {
		switch e := m.(type) {
		case *pb.PricesPublished:
			p.history = append(p.history, e)
		case *pb.PricesCorrected:
			p.history = append(p.history, correctionView(e))
		case *pb.PricesUsed:
			p.used = true
		default:
			return fmt.Errorf("unexpected %T in a prices stream", m)
		}
		return nil
	})
}

// correctionView is a correction as a version of the date's prices.
func correctionView(e *pb.PricesCorrected) *pb.PricesPublished {
	return &pb.PricesPublished{Date: e.Date, Prices: e.Prices, AtUnixNano: e.AtUnixNano, By: e.By, Reason: e.Reason}
}

// current is the prices in force, nil when none were published.
func (p *prices) current() *pb.PricesPublished {
	if len(p.history) == 0 {
		return nil
	}
	return p.history[len(p.history)-1]
}

func (p *prices) view() *pb.PricesResponse {
	return &pb.PricesResponse{Prices: p.current(), History: p.history, Used: p.used}
}

func (p *prices) handle(data []byte) proto.Message {
	req := &pb.PricesRequest{}
	if err := proto.Unmarshal(data, req); err != nil {
		return p.failure(fmt.Errorf("unreadable request: %w", err))
	}
	ctx, cancel := context.WithTimeout(context.Background(), p.deps.Config.StepTimeout)
	defer cancel()
	switch c := req.Command.(type) {
	case *pb.PricesRequest_Get:
		if p.current() == nil {
			return &pb.PricesResponse{Problem: &pb.Problem{Code: problem.NotFound, Detail: "no prices are recorded for " + p.date.String()}}
		}
		return p.view()
	case *pb.PricesRequest_Publish:
		return p.publish(ctx, c.Publish)
	case *pb.PricesRequest_Use:
		return p.use(ctx)
	}
	return p.failure(errors.New("unknown prices command"))
}

func (p *prices) publish(ctx context.Context, in *pb.PricesPublished) *pb.PricesResponse {
	parsed, err := p.validate(in)
	if err != nil {
		return &pb.PricesResponse{Problem: &pb.Problem{Code: problem.InvalidPrices, Detail: err.Error()}}
	}
	var recorded map[domain.ISIN]domain.Price
	if cur := p.current(); cur != nil {
		if _, recorded, err = decodePrices(cur.Date, cur.Prices); err != nil {
			return p.failed(err)
		}
	}
	decision, err := domain.DecidePrices(recorded, parsed, p.used, in.Reason)
	if err == nil && decision == domain.PricesSame {
		return p.view()
	}
	register, _, rerr := loadRegister(ctx, p.deps.Journal)
	if rerr != nil {
		return p.failed(rerr)
	}
	if err == nil && decision == domain.PricesCorrect && register.IsCutOff(p.date) {
		// Cut off before PricesUsed was recorded (a cycle of an earlier
		// release): used all the same.
		decision, err = domain.DecidePrices(recorded, parsed, true, in.Reason)
	}
	if err == nil {
		err = domain.CheckOperatorDate(p.deps.Calendar, p.deps.window(register), "prices", p.date)
	}
	if r := refused(err); r != nil {
		return &pb.PricesResponse{Problem: r, Prices: p.current(), History: p.history, Used: p.used}
	}
	if err != nil {
		return p.failed(err)
	}
	encoded := encodePrices(parsed, p.deps.Catalogue)
	at := nanosNow(p.deps.Now)
	var e proto.Message
	version := &pb.PricesPublished{Date: p.date.String(), Prices: encoded, AtUnixNano: at, By: in.By, Reason: in.Reason}
	if decision == domain.PricesCorrect {
		c := &pb.PricesCorrected{Date: p.date.String(), Prices: encoded, Previous: p.current().Prices, Reason: in.Reason, By: in.By, AtUnixNano: at}
		e, version = c, correctionView(c)
	} else {
		e = version
	}
	if err := p.stream.append(ctx, e); err != nil {
		return p.failed(err)
	}
	p.history = append(p.history, version)
	// This node values pots at them at once; the others when their
	// follower reads the journal, or when a cycle tells every member. The
	// custodian's price feed gets them when a cycle uses them (use), so it
	// never sees prices that are corrected later.
	p.deps.Market.SetPrices(p.date, parsed)
	if decision == domain.PricesCorrect {
		p.deps.Logger.Warn("prices corrected", "date", p.date, "by", in.By, "reason", in.Reason)
	}
	return p.view()
}

// use records that a cycle took the prices to deal at: after its cut-off,
// so no decision of the day can see other prices.
func (p *prices) use(ctx context.Context) *pb.PricesResponse {
	if p.current() == nil {
		return &pb.PricesResponse{Problem: &pb.Problem{Code: problem.NoPrices, Detail: "no prices are recorded for " + p.date.String()}}
	}
	if !p.used {
		if err := p.stream.append(ctx, &pb.PricesUsed{Date: p.date.String(), AtUnixNano: nanosNow(p.deps.Now)}); err != nil {
			return p.failed(err)
		}
		p.used = true
	}
	return p.view()
}

// validate checks the prices: every catalogue asset has one, no other asset
// has one, each with at most its asset's price decimals.
func (p *prices) validate(in *pb.PricesPublished) (map[domain.ISIN]domain.Price, error) {
	if in.Date != p.date.String() {
		return nil, fmt.Errorf("prices for %s sent to %s", in.Date, p.date)
	}
	out := map[domain.ISIN]domain.Price{}
	var problems []error
	for _, a := range p.deps.Catalogue.Assets() {
		s, ok := in.Prices[string(a.ISIN)]
		if !ok {
			problems = append(problems, fmt.Errorf("%s: no price", a.ISIN))
			continue
		}
		price, err := domain.ParsePrice(s, a.PriceDecimals)
		if err != nil {
			problems = append(problems, fmt.Errorf("%s: %w", a.ISIN, err))
			continue
		}
		out[a.ISIN] = price
	}
	var unknown []string
	for isin := range in.Prices {
		if _, ok := p.deps.Catalogue.Asset(domain.ISIN(isin)); !ok {
			unknown = append(unknown, isin)
		}
	}
	slices.Sort(unknown)
	for _, isin := range unknown {
		problems = append(problems, fmt.Errorf("%s: not in the catalogue", isin))
	}
	return out, errors.Join(problems...)
}
