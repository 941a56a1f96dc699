package cluster_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

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
		if !errors.As(err, &p) || p.Where != "cluster-call" {
			t.Errorf("%s: a call that panics returned %v, want a *recovered.Panic", name, err)
		}
	}
	if got := recovered.Count("cluster-call") - before; got != 2 {
		t.Errorf("counted %v panics, want 2", got)
	}
	if _, err := add(ctx, node, "after", 1); err != nil {
		t.Fatalf("a call after the panics: %v", err)
	}

	// A member service that panics fails the call to it, and is counted.
	before = recovered.Count("member-service")
	_, err := node.CallMembers(ctx, "boom", wrapperspb.String("x"))
	if err == nil || !strings.Contains(err.Error(), "the service panics") {
		t.Fatalf("CallMembers to a service that panics = %v", err)
	}
	if got := recovered.Count("member-service") - before; got != 1 {
		t.Errorf("counted %v service panics, want 1", got)
	}
}
