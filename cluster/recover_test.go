package cluster_test

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/wrapperspb"

	"github.com/acme/mastertrust/cluster"
	"github.com/acme/mastertrust/internal/recovered"
)

// TestCallRecoversAPanic: a grain call whose function panics (here the
// generated client refusing an empty identity, which once ended a whole
// process) returns the panic as its error, counted, whether or not the
// call runs on a goroutine of its own (a context that can end early), and
// the node goes on serving.
func TestCallRecoversAPanic(t *testing.T) {
	tc := startCluster(t, clusterOptions{members: 1, services: map[string]cluster.MemberService{
		"boom": func(context.Context, proto.Message) (proto.Message, error) { panic("test: the service panics") },
	}})
	node := tc.members[0]
	before := recovered.Count("cluster-call")
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	for name, ctx := range map[string]context.Context{"with a deadline": ctx, "without": context.Background()} {
		_, err := add(ctx, node, "", 1)
		var p *recovered.Panic
		if assert.ErrorAs(t, err, &p, "%s: a call that panics", name) {
			assert.Equal(t, "cluster-call", p.Where, "%s: a call that panics: where", name)
		}
	}
	assert.EqualValues(t, 2, recovered.Count("cluster-call")-before, "panics counted")
	_, err := add(ctx, node, "after", 1)
	require.NoError(t, err, "a call after the panics")

	// A member service that panics fails the call to it, and is counted.
	before = recovered.Count("member-service")
	_, err = node.CallMembers(ctx, "boom", wrapperspb.String("x"))
	require.ErrorContains(t, err, "the service panics", "CallMembers to a service that panics")
	assert.EqualValues(t, 1, recovered.Count("member-service")-before, "service panics counted")
}
