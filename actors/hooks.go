package actors

import (
	"context"
	"errors"
	"fmt"

	protocluster "github.com/asynkron/protoactor-go/cluster"
	"google.golang.org/protobuf/proto"

	"github.com/acme/mastertrust/cluster"
	"github.com/acme/mastertrust/domain"
	"github.com/acme/mastertrust/proto/pb"
)

// MarketMember is a member's MarketService: it closes the days before a
// cut-off's open day on the member's market, waiting for the pot decisions
// made while they were open, and sets prices published.
func MarketMember(market *MarketState) cluster.MemberService {
	return func(ctx context.Context, req proto.Message) (proto.Message, error) {
		switch m := req.(type) {
		case *pb.DayCutOff:
			openFrom, err := domain.ParseDate(m.OpenFrom)
			if err != nil {
				return nil, fmt.Errorf("cut-off: %w", err)
			}
			if err := market.CutOff(ctx, openFrom); err != nil {
				return nil, err
			}
		case *pb.PricesPublished:
			date, prices, err := decodePrices(m.Date, m.Prices)
			if err != nil {
				return nil, fmt.Errorf("prices: %w", err)
			}
			market.SetPrices(date, prices)
		default:
			return nil, fmt.Errorf("market service: unexpected %T", req)
		}
		return req, nil
	}
}

// ExecutionRecorder routes the custodian's execution reports to their asset
// books. A report is acknowledged to NATS only once its book has recorded
// (or refused) it, so none is lost in a crash; a repeat changes nothing. A
// report that names no book (no dealing date, an asset outside the
// catalogue) is refused here, kept in the alarms stream.
func (d *DealingDeps) ExecutionRecorder() func(ctx context.Context, r *pb.ExecutionReport) error {
	return func(ctx context.Context, r *pb.ExecutionReport) error {
		_, dateErr := domain.ParseDate(r.DealingDate)
		if _, known := d.Catalogue.Asset(domain.ISIN(r.Asset)); dateErr != nil || !known {
			reason := fmt.Sprintf("no order of ACME's is for dealing date %s and asset %s", clip(r.DealingDate), clip(r.Asset))
			added, err := raiseAlarm(ctx, d.Journal, &pb.ExecutionRefused{Report: r, Reason: reason, AtUnixNano: nanosNow(d.Now)})
			if err != nil {
				return fmt.Errorf("refuse execution %s: %w", r.ExecutionId, err)
			}
			if added {
				d.executionRefused(r, reason)
			}
			return nil
		}
		node := d.clusterNode()
		if node == nil {
			return errNoNode
		}
		identity := r.DealingDate + "/" + r.Asset
		resp, err := cluster.CallWithin(ctx, node, d.Config.StepTimeout, func(opts ...protocluster.GrainCallOption) (*pb.AssetBookResponse, error) {
			return pb.GetAssetBookGrainClient(node.Cluster(), identity).Handle(
				&pb.AssetBookRequest{Command: &pb.AssetBookRequest_RecordExecution{RecordExecution: r}}, opts...)
		})
		if err == nil && resp.Error != "" {
			err = errors.New(resp.Error)
		}
		if err != nil {
			return fmt.Errorf("record execution %s in %s: %w", r.ExecutionId, identity, err)
		}
		return nil
	}
}
