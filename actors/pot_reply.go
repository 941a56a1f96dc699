package actors

import (
	"fmt"

	"github.com/asynkron/protoactor-go/actor"

	"github.com/acme/mastertrust/domain"
	"github.com/acme/mastertrust/internal/problem"
	"github.com/acme/mastertrust/proto/pb"
)

// A pot's replies: what each request is answered with (views of the pot
// as it will stand once everything before the reply is durable), and how a
// reply reaches its caller.

// reply is a request's answer, sent once every event it reflects is
// durable (see potAppender).
type reply struct {
	to      *actor.PID
	call    uint64 // the PotCall's, copied into resp
	resp    *pb.PotResponse
	command string // for metrics
	outcome string
	// release ends the command's hold on the market (see Market.Hold) once
	// the reply goes: its events are durable, or they never will be.
	release func()
	// later, if set, computes resp when the reply is due (everything before
	// it durable), off the pot's mailbox: a read of the history read model,
	// which waits for the history to catch up (History.WaitVersion).
	later func() *pb.PotResponse
}

// with is r answering resp, counted in metrics as outcome.
func (r reply) with(resp *pb.PotResponse, outcome string) reply {
	r.resp, r.outcome = resp, outcome
	return r
}

// heldReply is a reply of a stopping activation, sent once it stopped.
type heldReply struct {
	to   *actor.PID
	resp *pb.PotResponse
}

func (a *potActor) send(ctx actor.Context, r reply) {
	if r.release != nil {
		r.release()
	}
	if r.later != nil && r.to != nil && !a.poisoned {
		to, call, command, metrics, root := r.to, r.call, r.command, a.deps.Metrics, ctx.ActorSystem().Root
		a.deps.workers.Go(func() {
			resp := r.later()
			if metrics != nil {
				metrics.Requests.WithLabelValues(command, outcomeOf(resp)).Inc()
			}
			resp.CallId = call
			root.Send(to, resp)
		})
		return
	}
	if r.later != nil {
		r.resp = unavailable() // stopping: the retry reaches a fresh activation
	}
	if r.resp.Version == 0 && a.pot != nil {
		r.resp.Version = a.appender.durable
	}
	if m := a.deps.Metrics; m != nil {
		m.Requests.WithLabelValues(r.command, r.outcome).Inc()
	}
	if r.to == nil {
		return // nobody is waiting (a fire-and-forget message)
	}
	r.resp.CallId = r.call
	if a.poisoned {
		a.held = append(a.held, heldReply{to: r.to, resp: r.resp})
		return
	}
	ctx.Send(r.to, r.resp)
}

// respond answers the message being handled: at once, or once the
// activation has stopped if it is stopping (see stop).
func (a *potActor) respond(ctx actor.Context, resp *pb.PotResponse, call uint64) {
	resp.CallId = call
	if a.poisoned {
		if to := ctx.Sender(); to != nil {
			a.held = append(a.held, heldReply{to: to, resp: resp})
		}
		return
	}
	ctx.Respond(resp)
}

func (a *potActor) viewer(dctx *domain.Context) viewer {
	return viewer{cat: a.deps.Catalogue, isCutOff: dctx.IsCutOff}
}

// commandReply is the reply to a decided command: the resource it made or
// touched, as the pot stands after it (for a repeat, the same resource as
// the first time, as it stands now).
func (a *potActor) commandReply(req *pb.PotRequest, dec domain.Decision, dctx *domain.Context, r reply) reply {
	v := a.viewer(dctx)
	resp := &pb.PotResponse{Replayed: dec.Reply.Replayed, Version: a.pot.Version}
	switch req.Command.(type) {
	case *pb.PotRequest_OpenPot, *pb.PotRequest_SetRiskProfile:
		resp.Result = &pb.PotResponse_Pot{Pot: v.pot(a.pot, dctx.Prices)}
	case *pb.PotRequest_Contribute, *pb.PotRequest_Withdraw:
		resp.Result = &pb.PotResponse_Movement{Movement: v.movement(a.pot, a.pot.Movements[dec.Reply.RefID])}
	case *pb.PotRequest_PlaceOrder, *pb.PotRequest_CancelOrder:
		o := a.pot.Orders[dec.Reply.RefID]
		if o == nil {
			// The command touched a retired order (a cancellation of a
			// cancelled one): read once its events are durable.
			r.outcome, r.later = "ok", a.retiredOrderReply(dec.Reply.RefID, dec.Reply.Replayed)
			return r
		}
		resp.Result = &pb.PotResponse_Order{Order: v.order(o)}
	default:
		resp.Result = &pb.PotResponse_Ack{Ack: &pb.Ack{}}
	}
	if dec.Reply.Replayed {
		return r.with(resp, "replayed")
	}
	return r.with(resp, "ok")
}

// queryReply answers a request that is not a command: from the history
// (computed when the reply is due, see reply.later) or from the pot.
func (a *potActor) queryReply(req *pb.PotRequest, r reply) reply {
	if later, ok := a.historyQuery(req); ok {
		r.outcome, r.later = "ok", later
		return r
	}
	resp := a.query(req, a.context(a.deps.Market.OpenFrom()))
	return r.with(resp, outcomeOf(resp))
}

// query answers a read from the pot as it will stand once everything
// before it is durable (the reply waits for that).
func (a *potActor) query(req *pb.PotRequest, dctx *domain.Context) *pb.PotResponse {
	if !a.pot.Opened {
		return a.problemResponse(&domain.RefusalError{Err: domain.ErrPotNotFound, Detail: "member " + a.member + " has no pot"})
	}
	v := a.viewer(dctx)
	resp := &pb.PotResponse{Version: a.pot.Version}
	switch q := req.Command.(type) {
	case *pb.PotRequest_GetPot:
		resp.Result = &pb.PotResponse_Pot{Pot: v.pot(a.pot, dctx.Prices)}
	case *pb.PotRequest_GetOrder:
		o, ok := a.pot.Orders[q.GetOrder.OrderId]
		if !ok {
			return a.problemResponse(&domain.RefusalError{Err: domain.ErrOrderNotFound, Detail: "no order " + q.GetOrder.OrderId})
		}
		resp.Result = &pb.PotResponse_Order{Order: v.order(o)}
	default: // the history's (historyQuery)
		panic(fmt.Sprintf("actors: pot query %T", q))
	}
	return resp
}

func (a *potActor) problemResponse(err error) *pb.PotResponse {
	return &pb.PotResponse{Result: &pb.PotResponse_Problem{Problem: potProblem(err, a.deps.Logger, "member", a.member)}}
}

// outcomeOf is the metrics outcome of a reply that is not a replay: failed
// if the pot could not answer it (unavailable), refused for any other
// problem, else ok.
func outcomeOf(resp *pb.PotResponse) string {
	switch p := resp.GetProblem(); {
	case p == nil && resp.Replayed:
		return "replayed"
	case p == nil:
		return "ok"
	case p.Code == problem.Unavailable:
		return "failed"
	}
	return "refused"
}

func unavailable() *pb.PotResponse {
	return &pb.PotResponse{Result: &pb.PotResponse_Problem{Problem: &pb.Problem{Code: problem.Unavailable,
		Detail: "the pot could not make the request durable; retry with the same idempotency key"}}}
}

// commandName names a request for metrics and logs.
func commandName(req *pb.PotRequest) string {
	switch req.Command.(type) {
	case *pb.PotRequest_OpenPot:
		return "open_pot"
	case *pb.PotRequest_Contribute:
		return "contribute"
	case *pb.PotRequest_Withdraw:
		return "withdraw"
	case *pb.PotRequest_PlaceOrder:
		return "place_order"
	case *pb.PotRequest_CancelOrder:
		return "cancel_order"
	case *pb.PotRequest_SetRiskProfile:
		return "set_risk_profile"
	case *pb.PotRequest_Rebalance:
		return "rebalance"
	case *pb.PotRequest_AllocateTrades:
		return "allocate_trades"
	case *pb.PotRequest_SettleTrades:
		return "settle_trades"
	case *pb.PotRequest_RollOrder:
		return "roll_order"
	case *pb.PotRequest_GetPot:
		return "get_pot"
	case *pb.PotRequest_ListOrders:
		return "list_orders"
	case *pb.PotRequest_GetOrder:
		return "get_order"
	case *pb.PotRequest_GetStatement:
		return "get_statement"
	}
	return "unknown"
}
