package actors

import (
	"context"
	"fmt"
	"log/slog"
	"strings"
	"time"

	"github.com/acme/mastertrust/codec"
	"github.com/acme/mastertrust/domain"
	"github.com/acme/mastertrust/persistence"
	"github.com/acme/mastertrust/proto/pb"
)

// History is the members' history read model (package history): every
// order a pot ever placed, its statement and every idempotency key it ever
// recorded, projected from the journal's feed. A pot keeps only its open
// work (domain, retire.go); what it has retired is read here.
type History interface {
	// WaitVersion returns once member's stream is projected to version.
	WaitVersion(ctx context.Context, j persistence.Journal, group uint32, member string, version uint64) error
	Order(member, orderID string) (*domain.Order, bool, error)
	// Orders lists orders newest first with an id number below beforeSeq
	// (0: all), those keep accepts, at most limit; more says whether
	// others may follow. A closed order may come as its view, rendered
	// when it closed (RenderClosedOrder).
	Orders(member string, beforeSeq uint64, limit int, keep func(codec.ListedOrder) bool) (orders []codec.ListedOrder, more bool, err error)
	// Statement lists entries with At in [from, to) (zero: open), oldest
	// first, after cursor, at most limit, and the next cursor ("": none).
	Statement(member string, from, to time.Time, cursor string, limit int) ([]domain.StatementEntry, string, error)
	Request(member, key string) (domain.RequestRecord, bool, error)
	// Projected is the member's projected version and the commit time of
	// its last projected event.
	Projected(member string) (version uint64, at time.Time, err error)
}

// statementPageMax bounds one page of GET /statement.
const statementPageMax = 1000

// pastRequest looks up a member command's key that the pot does not
// remember in the history, so that Decide refuses it as too old rather
// than apply it twice. Only a pot that has forgotten keys needs to ask, and
// the history answers for them once it has projected the pot to the
// version that recorded the last of them (domain.Pot.ForgottenThrough): a
// week old, so normally long since; if the history is behind (being
// rebuilt), the command waits for it, up to the append timeout.
func (a *potActor) pastRequest(cmd domain.Command) (*domain.RequestRecord, error) {
	mc, ok := cmd.(domain.MemberCommand)
	if !ok || a.pot.ForgottenThrough == 0 {
		return nil, nil
	}
	if _, remembered := a.pot.Request(mc.IdempotencyKey()); remembered {
		return nil, nil
	}
	version, _, err := a.deps.History.Projected(a.member)
	if err != nil {
		return nil, fmt.Errorf("history of %s: %w", a.member, err)
	}
	// At most the durable version: a key recorded in this mailbox run and
	// pushed out in it (past requestsMax) is not appended until the run
	// ends, and waiting for it here would wait for this very wait to end.
	if want := min(a.pot.ForgottenThrough, a.appender.durable); version < want {
		ctx, cancel := context.WithTimeout(context.Background(), a.deps.Config.AppendTimeout)
		defer cancel()
		if err := a.deps.History.WaitVersion(ctx, a.deps.Journal, a.appender.group, a.member, want); err != nil {
			return nil, fmt.Errorf("history of %s at version %d, want %d: %w", a.member, version, want, err)
		}
	}
	rec, found, err := a.deps.History.Request(a.member, mc.IdempotencyKey())
	if err != nil {
		return nil, fmt.Errorf("history of %s: %w", a.member, err)
	}
	if !found {
		return nil, nil
	}
	return &rec, nil
}

// retiredOrder is the order a CancelOrder names when the pot has retired
// it, from the history (nil if the command is not such a cancellation).
func (a *potActor) retiredOrder(cmd domain.Command) (*domain.Order, error) {
	c, ok := cmd.(domain.CancelOrder)
	if !ok || a.pot.Orders[c.OrderID] != nil || !a.pot.Issued(c.OrderID) {
		return nil, nil
	}
	ctx, cancel := context.WithTimeout(context.Background(), a.deps.Config.AppendTimeout)
	defer cancel()
	if err := a.deps.History.WaitVersion(ctx, a.deps.Journal, a.appender.group, a.member, a.appender.durable); err != nil {
		return nil, fmt.Errorf("history of %s: %w", a.member, err)
	}
	o, found, err := a.deps.History.Order(a.member, c.OrderID)
	if err != nil || !found {
		return nil, fmt.Errorf("history of %s: order %s (found %t): %w", a.member, c.OrderID, found, err)
	}
	return o, nil
}

// historyQuery is a read the history answers: it is computed once every
// event the pot has applied so far is durable and projected, off the pot's
// mailbox (see reply.later).
func (a *potActor) historyQuery(req *pb.PotRequest) (func() *pb.PotResponse, bool) {
	switch q := req.Command.(type) {
	case *pb.PotRequest_GetOrder:
		if o := a.pot.Orders[q.GetOrder.OrderId]; o != nil || !a.pot.Issued(q.GetOrder.OrderId) {
			return nil, false // open, or never placed: the pot answers
		}
	case *pb.PotRequest_ListOrders, *pb.PotRequest_GetStatement:
	default:
		return nil, false
	}
	if !a.pot.Opened {
		return nil, false
	}
	r, loc := a.historyRead(), a.deps.Calendar.Location()
	h, member, version := r.h, r.member, r.version
	v := a.viewer(a.context(a.deps.Market.OpenFrom()))
	return func() *pb.PotResponse {
		if !r.projected() {
			return unavailable()
		}
		resp := &pb.PotResponse{Version: version}
		var err error
		switch q := req.Command.(type) {
		case *pb.PotRequest_GetOrder:
			var o *domain.Order
			var found bool
			if o, found, err = h.Order(member, q.GetOrder.OrderId); err == nil && found {
				resp.Result = &pb.PotResponse_Order{Order: v.order(o)}
			} else if err == nil {
				err = &domain.RefusalError{Err: domain.ErrOrderNotFound, Detail: "no order " + q.GetOrder.OrderId}
			}
		case *pb.PotRequest_ListOrders:
			var list *pb.OrderList
			if list, err = v.historyOrders(h, member, q.ListOrders); err == nil {
				resp.Result = &pb.PotResponse_Orders{Orders: list}
			}
		case *pb.PotRequest_GetStatement:
			var st *pb.Statement
			if st, err = v.historyStatement(h, member, q.GetStatement, loc); err == nil {
				resp.Result = &pb.PotResponse_Statement{Statement: st}
			}
		}
		if err != nil {
			return a.problemResponse(err)
		}
		return resp
	}, true
}

// historyOrders lists a member's orders newest first, optionally of one
// status, after the order id after (exclusive), at most limit of them.
func (v viewer) historyOrders(h History, member string, q *pb.ListOrders) (*pb.OrderList, error) {
	limit := int(q.Limit)
	if limit <= 0 || limit > ordersPageMax {
		limit = ordersPageMax
	}
	var before uint64
	if q.After != "" {
		n, ok := domain.IDNumber(member, q.After)
		if !ok {
			return nil, fmt.Errorf("%w: after: %q is not an order id of %s", errBadRequest, q.After, member)
		}
		before = n
	}
	status := func(l codec.ListedOrder) domain.OrderStatus {
		if l.View != nil {
			return l.Status
		}
		return domain.OrderStatusAt(l.Order, v.isCutOff)
	}
	keep := func(l codec.ListedOrder) bool {
		return q.Status == "" || strings.EqualFold(string(status(l)), q.Status)
	}
	orders, more, err := h.Orders(member, before, limit, keep)
	if err != nil {
		return nil, fmt.Errorf("history of %s: %w", member, err)
	}
	list := &pb.OrderList{Orders: make([]*pb.OrderView, 0, len(orders))}
	for _, l := range orders {
		if l.View != nil {
			list.Orders = append(list.Orders, &pb.OrderView{Id: l.ID, Status: string(l.Status), Rendered: l.View})
		} else {
			list.Orders = append(list.Orders, v.order(l.Order))
		}
	}
	if more && len(orders) > 0 {
		list.NextAfter = orders[len(orders)-1].ID
	}
	return list, nil
}

// historyStatement is the statement between two dates (inclusive; zero:
// open), a page at a time.
func (v viewer) historyStatement(h History, member string, q *pb.GetStatement, loc *time.Location) (*pb.Statement, error) {
	var from, to time.Time
	if q.FromDate != "" {
		d, err := domain.ParseDate(q.FromDate)
		if err != nil {
			return nil, fmt.Errorf("%w: from: %v", errBadRequest, err)
		}
		from = d.At(0, 0, loc)
	}
	if q.ToDate != "" {
		d, err := domain.ParseDate(q.ToDate)
		if err != nil {
			return nil, fmt.Errorf("%w: to: %v", errBadRequest, err)
		}
		to = d.AddDays(1).At(0, 0, loc)
	}
	limit := int(q.Limit)
	if limit <= 0 || limit > statementPageMax {
		limit = statementPageMax
	}
	entries, next, err := h.Statement(member, from, to, q.After, limit)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", errBadRequest, err)
	}
	st := &pb.Statement{NextAfter: next}
	for _, e := range entries {
		entry := &pb.StatementEntry{At: timeString(e.At), Kind: e.Kind, Description: e.Description,
			Cash: e.Cash.String(), BalanceAfter: e.BalanceAfter.String()}
		if e.Asset != "" {
			entry.Asset, entry.Units = string(e.Asset), v.units(e.Asset, e.Units)
		}
		st.Entries = append(st.Entries, entry)
	}
	return st, nil
}

// retiredOrderReply answers a command about a retired order with the order
// as the history has it, once the command's events are projected; marked
// as a replay when the command was one.
func (a *potActor) retiredOrderReply(orderID string, replayed bool) func() *pb.PotResponse {
	r := a.historyRead()
	h, member, version := r.h, r.member, r.version
	v := a.viewer(a.context(a.deps.Market.OpenFrom()))
	return func() *pb.PotResponse {
		if !r.projected() {
			return unavailable()
		}
		o, found, err := h.Order(member, orderID)
		if err != nil || !found {
			a.deps.Logger.Error("retired order not in the history", "member", member, "order", orderID, "err", err)
			return unavailable()
		}
		return &pb.PotResponse{Version: version, Replayed: replayed, Result: &pb.PotResponse_Order{Order: v.order(o)}}
	}
}

// historyRead is a read of the history on behalf of a pot, off its mailbox:
// what it needs of the pot, taken when the read is queued.
type historyRead struct {
	h       History
	j       persistence.Journal
	group   uint32
	member  string
	version uint64 // the pot's version when the read was queued
	timeout time.Duration
	log     *slog.Logger
}

func (a *potActor) historyRead() historyRead {
	return historyRead{h: a.deps.History, j: a.deps.Journal, group: a.appender.group, member: a.member,
		version: a.pot.Version, timeout: a.deps.Config.AppendTimeout, log: a.deps.Logger}
}

// projected waits, up to the timeout, until the history has projected the
// pot to the version, and reports whether it has.
func (r historyRead) projected() bool {
	ctx, cancel := context.WithTimeout(context.Background(), r.timeout)
	defer cancel()
	if err := r.h.WaitVersion(ctx, r.j, r.group, r.member, r.version); err != nil {
		r.log.Warn("history not projected in time", "member", r.member, "version", r.version, "err", err)
		return false
	}
	return true
}
