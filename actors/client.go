package actors

import (
	"context"
	"fmt"
	"time"

	protocluster "github.com/asynkron/protoactor-go/cluster"

	"github.com/acme/mastertrust/cluster"
	"github.com/acme/mastertrust/proto/pb"
)

// PotClient calls pot grains from a node (a member, or a gateway's client
// node). Failures to reach a pot are cluster.ErrTimeout or
// cluster.ErrUnavailable (both: try again later); a pot's own refusal comes
// back as a Problem in the response.
type PotClient struct {
	Node *cluster.Node
}

// Handle sends req to member's pot and returns its response, through
// cluster.Request (the lean grain call): every member request and every
// system message to a pot goes through here. The pot reads req in place
// when it is local: req must not be modified once given to Handle.
func (c PotClient) Handle(ctx context.Context, memberID string, req *pb.PotRequest) (*pb.PotResponse, error) {
	reply, err := cluster.Request(ctx, c.Node, memberID, PotKind, func(callID uint64, deadline time.Time) any {
		return &pb.PotCall{CallId: callID, Request: req, DeadlineUnixNano: deadline.UnixNano()}
	})
	if err != nil {
		return nil, err
	}
	switch r := reply.(type) {
	case *pb.PotResponse:
		return r, nil
	case *protocluster.GrainErrorResponse:
		return nil, r
	}
	return nil, fmt.Errorf("pot %s answered a %T", memberID, reply)
}
