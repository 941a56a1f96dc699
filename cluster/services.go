package cluster

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
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

// spawnServices spawns an actor per member service; each answers a request
// from a goroutine of its own, counted in n.serviceCalls.
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
			n.serviceCalls.Add(1)
			go func() {
				defer n.serviceCalls.Done()
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

// stopServices stops the service actors and waits for the requests they
// are answering, for as long as a caller waits at most (RequestTimeout):
// a leaving member answers what it was asked (a fence it is running) before
// it leaves the topology, since a caller takes a member that left for one
// that owes no answer (CallMembers).
func (n *Node) stopServices() {
	for name := range n.cfg.Services {
		if err := n.system.Root.StopFuture(actor.NewPID(n.address, servicePrefix+name)).Wait(); err != nil {
			n.logger.Warn("member service did not stop", slog.String("service", name), slog.Any("error", err))
		}
	}
	answered := make(chan struct{})
	go func() {
		n.serviceCalls.Wait()
		close(answered)
	}()
	select {
	case <-answered:
	case <-time.After(n.cfg.RequestTimeout):
		n.logger.Warn("leaving with member service requests unanswered", slog.Duration("waited", n.cfg.RequestTimeout))
	}
}

// CallMembers sends req to service name on every member of the topology
// and returns their answers by member address; it fails if any member does
// not answer within ctx or answers with an error. Every member must run the
// service (Config.Services).
//
// A member that meets a dead letter (its node is gone, or restarting) is
// asked again while it is still in the topology; one the topology drops
// meanwhile (a killed node whose membership expires) is no longer a member
// and owes no answer: it decides nothing more, and its grains come back
// elsewhere. So a call made just after a kill waits for the topology to
// catch up rather than failing on the dead node.
func (n *Node) CallMembers(ctx context.Context, name string, req proto.Message) (map[string]proto.Message, error) {
	if !n.enter() {
		return nil, ErrStopped
	}
	defer n.calls.Done()
	n.mu.Lock()
	addresses := slices.Clone(n.addresses)
	n.mu.Unlock()
	if len(addresses) == 0 {
		return nil, fmt.Errorf("cluster: service %s: %w", name, ErrUnavailable)
	}
	callDeadline := deadline(ctx, n.cfg.RequestTimeout)
	out := make(map[string]proto.Message, len(addresses))
	var mu sync.Mutex
	var errs []error
	var wg sync.WaitGroup
	for _, address := range addresses {
		wg.Go(func() {
			msg, err := n.callMember(ctx, callDeadline, address, name, req)
			mu.Lock()
			defer mu.Unlock()
			switch {
			case err != nil:
				errs = append(errs, fmt.Errorf("member %s: %w", address, err))
			case msg != nil:
				out[address] = msg
			}
		})
	}
	wg.Wait()
	if len(errs) > 0 {
		return nil, fmt.Errorf("cluster: service %s: %w", name, errors.Join(errs...))
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("cluster: service %s: every member left during the call: %w", name, ErrUnavailable)
	}
	return out, nil
}

// callMember asks one member's service and returns its answer, or nil and
// no error once the member has left the topology.
func (n *Node) callMember(ctx context.Context, callDeadline time.Time, address, name string, req proto.Message) (proto.Message, error) {
	pid := actor.NewPID(address, servicePrefix+name)
	for attempt := 1; ; attempt++ {
		watch, departed := n.watchMember(address)
		if departed {
			return nil, nil
		}
		timeout := time.Until(callDeadline)
		if timeout <= 0 {
			return nil, fmt.Errorf("%w: no time left for the call", ErrTimeout)
		}
		// A reply slot, as Request uses: it waits for the reply, the
		// member leaving and ctx together. One that ends without the reply
		// is discarded, so that a late reply finds no one.
		slot := n.slots.get(n.system)
		n.system.Root.RequestWithCustomSender(pid, req, slot.pid)
		reply, err := slot.wait(ctx, 0, timeout, watch)
		if err != nil {
			n.slots.discard(n.system, slot)
		} else {
			n.slots.put(n.system, slot)
		}
		if errors.Is(err, errMemberLeft) {
			// It answered what it was running before it left (see
			// stopServices), or it died; either way it decides nothing
			// more.
			return nil, nil
		}
		if err != nil {
			return nil, err
		}
		if _, dead := reply.(*actor.DeadLetterResponse); dead {
			wait := n.retryWait(attempt, callDeadline)
			if wait <= 0 {
				return nil, fmt.Errorf("%w: dead letter, and no time left to ask again", ErrUnavailable)
			}
			if err := waitToRetry(ctx, wait); err != nil {
				return nil, err
			}
			continue
		}
		if se, ok := reply.(*statspb.ServiceError); ok {
			return nil, errors.New(se.Message)
		}
		msg, ok := reply.(proto.Message)
		if !ok {
			return nil, fmt.Errorf("unexpected reply %T", reply)
		}
		return msg, nil
	}
}
