package actors

import (
	"context"
	"errors"
	"fmt"
	"slices"

	"google.golang.org/protobuf/proto"

	"github.com/acme/mastertrust/domain"
	"github.com/acme/mastertrust/proto/pb"
)

// Error codes of the prices and cycle grains (the gateway maps them).
const (
	CodePricesInvalid  = "invalid-prices"  // 400
	CodePricesConflict = "prices-conflict" // 409: other prices for the date exist
	CodeNoPrices       = "no-prices"       // 409 for a cycle, 404 for a read
	CodeNotFound       = "not-found"       // 404
	CodeCycleFailed    = "cycle-failed"    // 503: a step failed; run again
	CodeRunning        = "running"         // 409: still under way; ask again
)

// The prices grain: one per date. It records the date's closing prices once
// (stream "prices/<date>"), where every node's market follower finds them,
// and puts them on the NATS price feed the custodian executes at. A second
// publication of the same prices changes nothing; of different ones is
// refused: trades may already have been valued with the first.
type prices struct {
	deps      *DealingDeps
	date      domain.Date
	stream    systemStream
	published *pb.PricesPublished
}

func (p *prices) failure(err error) proto.Message { return &pb.PricesResponse{Error: err.Error()} }

func (p *prices) activate(identity string) error {
	d, err := domain.ParseDate(identity)
	if err != nil {
		return err
	}
	p.date = d
	p.stream = systemStream{j: p.deps.Journal, name: pricesStream(d)}
	ctx, cancel := context.WithTimeout(context.Background(), p.deps.Config.StepTimeout)
	defer cancel()
	return p.stream.load(ctx, func(m proto.Message) error {
		e, ok := m.(*pb.PricesPublished)
		if !ok {
			return fmt.Errorf("unexpected %T in a prices stream", m)
		}
		p.published = e
		return nil
	})
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
		if p.published == nil {
			return &pb.PricesResponse{Error: "no prices for " + p.date.String(), ErrorCode: CodeNoPrices}
		}
		return &pb.PricesResponse{Prices: p.published}
	case *pb.PricesRequest_Publish:
		return p.publish(ctx, c.Publish)
	}
	return p.failure(errors.New("unknown prices command"))
}

func (p *prices) publish(ctx context.Context, in *pb.PricesPublished) *pb.PricesResponse {
	parsed, err := p.validate(in)
	if err != nil {
		return &pb.PricesResponse{Error: err.Error(), ErrorCode: CodePricesInvalid}
	}
	if p.published != nil {
		_, old, err := decodePrices(p.published.Date, p.published.Prices)
		if err != nil {
			return &pb.PricesResponse{Error: err.Error()}
		}
		for a, price := range parsed {
			if !old[a].Equal(price) {
				return &pb.PricesResponse{Error: fmt.Sprintf("prices of %s are already published, with %s at %s, not %s",
					p.date, a, old[a], price), ErrorCode: CodePricesConflict}
			}
		}
	} else {
		e := &pb.PricesPublished{Date: p.date.String(), Prices: encodePrices(parsed, p.deps.Catalogue), AtUnixNano: nanosNow(p.deps.Now)}
		if err := p.stream.append(ctx, e); err != nil {
			return &pb.PricesResponse{Error: err.Error()}
		}
		p.published = e
		// This node values pots at them at once; the others when their
		// follower reads the journal, or when a cycle tells every member.
		p.deps.Market.SetPrices(p.date, parsed)
	}
	// The feed is told after the journal: a crash in between leaves the
	// custodian without prices, and the cycle publishes them again (the
	// feed keeps one message per date, so a repeat is harmless).
	if p.deps.Custodian != nil {
		if err := p.deps.Custodian.PublishPrices(ctx, p.date, parsed); err != nil {
			p.deps.Logger.Warn("prices not yet on the feed; the cycle will publish them", "date", p.date, "err", err)
		}
	}
	return &pb.PricesResponse{Prices: p.published}
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
