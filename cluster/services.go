package cluster

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/asynkron/protoactor-go/actor"
	"google.golang.org/protobuf/proto"

	"github.com/acme/mastertrust/cluster/internal/statspb"
	"github.com/acme/mastertrust/internal/recovered"
)

// Member services: a request that every member must answer, such as the
// dealing cycle's cut-off fence. Each member runs an actor per service
// (named servicePrefix + name) and CallMembers asks all of them.

// MemberService answers a request on one member. It may take a while (it
// runs in its own goroutine); ctx ends with the caller's deadline.
type MemberService func(ctx context.Context, req proto.Message) (proto.Message, error)

const servicePrefix = "mastertrust-svc-"

// serviceRequest carries a request into a service actor with the PID to
// answer and the deadline.
func (n *Node) spawnServices() error {
	for name, svc := range n.cfg.Services {
		props := actor.PropsFromFunc(func(ctx actor.Context) {
			req, ok := ctx.Message().(proto.Message)
			if !ok || ctx.Sender() == nil {
				return
			}
			sender := ctx.Sender()
			root := n.system.Root
			// Answer from a goroutine: a long request (a fence waiting for
			// decisions in flight) must not stop the actor answering
			// others, and the caller's timeout bounds the wait anyway.
			go func() {
				c, cancel := context.WithTimeout(context.Background(), serviceTimeoutMax)
				defer cancel()
				var resp proto.Message
				var err error
				// A panic in the service is the caller's failure to hear
				// of, not the end of the member.
				if perr := recovered.Run(n.logger, "member-service", func() { resp, err = svc(c, req) }, "service", name); perr != nil {
					err = perr
				}
				if err != nil {
					root.Send(sender, &statspb.ServiceError{Message: err.Error()})
					return
				}
				root.Send(sender, resp)
			}()
		})
		if _, err := n.system.Root.SpawnNamed(props, servicePrefix+name); err != nil {
			return fmt.Errorf("spawn member service %s: %w", name, err)
		}
	}
	return nil
}

// serviceTimeoutMax bounds a service call on the member's side.
const serviceTimeoutMax = 5 * time.Minute

func (n *Node) stopServices() {
	for name := range n.cfg.Services {
		n.system.Root.Stop(actor.NewPID(n.address, servicePrefix+name))
	}
}

// CallMembers sends req to service name on every member of the topology
// and returns their answers by member address; it fails if any member does
// not answer within ctx or answers with an error. Every member must run the
// service (Config.Services).
func (n *Node) CallMembers(ctx context.Context, name string, req proto.Message) (map[string]proto.Message, error) {
	if !n.enter() {
		return nil, ErrStopped
	}
	defer n.calls.Done()
	members := n.cluster.MemberList.Members().Members()
	timeout := time.Until(deadline(ctx, n.cfg.RequestTimeout))
	out := make(map[string]proto.Message, len(members))
	var mu sync.Mutex
	var errs []error
	var wg sync.WaitGroup
	for _, m := range members {
		address := m.Address()
		wg.Go(func() {
			reply, err := n.system.Root.RequestFuture(actor.NewPID(address, servicePrefix+name), req, timeout).Result()
			if se, ok := reply.(*statspb.ServiceError); ok && err == nil {
				err = errors.New(se.Message)
			}
			mu.Lock()
			defer mu.Unlock()
			if err != nil {
				errs = append(errs, fmt.Errorf("member %s: %w", address, err))
				return
			}
			msg, ok := reply.(proto.Message)
			if !ok {
				errs = append(errs, fmt.Errorf("member %s: unexpected reply %T", address, reply))
				return
			}
			out[address] = msg
		})
	}
	wg.Wait()
	if len(members) == 0 {
		return nil, fmt.Errorf("cluster: service %s: %w", name, ErrUnavailable)
	}
	if len(errs) > 0 {
		return nil, fmt.Errorf("cluster: service %s: %w", name, errors.Join(errs...))
	}
	return out, nil
}
