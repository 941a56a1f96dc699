package actors

import (
	"context"

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

// Handle sends req to member's pot and returns its response.
func (c PotClient) Handle(ctx context.Context, memberID string, req *pb.PotRequest) (*pb.PotResponse, error) {
	return cluster.Call(ctx, c.Node, func(opts ...protocluster.GrainCallOption) (*pb.PotResponse, error) {
		return pb.GetPotGrainClient(c.Node.Cluster(), memberID).Handle(req, opts...)
	})
}
