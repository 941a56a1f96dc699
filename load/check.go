package load

import (
	"context"
	"fmt"
	"maps"
	"net/url"
	"slices"
	"strings"
	"sync"

	"github.com/shopspring/decimal"
)

// The checks, per member, once every day has run and settled:
//
//   - lost: an acknowledged order that is not among the member's orders, or
//     an acknowledged contribution or withdrawal that is not on the
//     statement;
//   - doubled: a member's order or movement on the statement that no
//     acknowledged request made (the platform's own orders, a
//     contribution's buys, a withdrawal's sells and rebalances aside), or
//     one on it twice;
//   - mismatched: an acknowledged request whose record says otherwise than
//     it asked (a contribution's amount, a withdrawal's amount, or what
//     its sells raised if less, a buy's asset or amount, a cancelled order
//     not cancelled), or a pot whose cash or units differ
//     from the model: the acknowledged contributions, less the withdrawals
//     paid, less the executed buys' considerations plus the sells', and the
//     executed units bought less those sold, asset by asset.

// potJSON is the part of the pot's view the checks read.
type potJSON struct {
	Cash struct {
		Available string `json:"available"`
		Reserved  string `json:"reserved"`
		Pending   string `json:"pending"`
	} `json:"cash"`
	Holdings []struct {
		Asset        string `json:"asset"`
		SettledUnits string `json:"settledUnits"`
		PendingUnits string `json:"pendingUnits"`
	} `json:"holdings"`
}

type statementEntryJSON struct {
	Kind        string `json:"kind"`
	Description string `json:"description"`
	Cash        string `json:"cash"`
}

// Finding is one check that failed, for the report.
type Finding struct {
	Member string `json:"member"`
	Check  string `json:"check"` // lost, doubled or mismatched
	Detail string `json:"detail"`
}

// findingsMax bounds the findings the result lists (every one is counted).
const findingsMax = 100

// check reads every member's orders, statement and pot and counts what
// disagrees with what the member was told.
func (ru *run) check(ctx context.Context) error {
	bar := ru.bar("checking every pot", int64(len(ru.members)))
	defer bar.finish()
	work := make(chan string)
	errs := make(chan error, ru.cfg.Clients)
	var wg sync.WaitGroup
	for range ru.cfg.Clients {
		wg.Go(func() {
			for m := range work {
				if err := ru.checkMember(ctx, m); err != nil {
					errs <- err
					return
				}
				bar.add(1)
			}
		})
	}
	var err error
feed:
	for _, m := range slices.Sorted(maps.Keys(ru.members)) {
		select {
		case work <- m:
		case err = <-errs:
			break feed
		}
	}
	close(work)
	wg.Wait()
	close(errs)
	if err == nil {
		err = <-errs
	}
	return err
}

func (ru *run) finding(member, check, format string, args ...any) {
	ru.mu.Lock()
	defer ru.mu.Unlock()
	s := &ru.res.Summary
	switch check {
	case "lost":
		s.Lost++
	case "doubled":
		s.Doubled++
	default:
		s.Mismatched++
	}
	if len(ru.res.Findings) < findingsMax {
		ru.res.Findings = append(ru.res.Findings, Finding{Member: member, Check: check, Detail: fmt.Sprintf(format, args...)})
	}
}

// checkMember checks one member.
func (ru *run) checkMember(ctx context.Context, member string) error {
	orders, statement, pot, err := ru.read(ctx, member)
	if err != nil {
		return err
	}
	return ru.compare(member, ru.members[member].acks, orders, statement, pot)
}

// read is the member's every order, statement entry and pot.
func (ru *run) read(ctx context.Context, member string) ([]orderJSON, []statementEntryJSON, potJSON, error) {
	base := "/v1/pots/" + member
	orders, err := readAll[orderJSON](ctx, ru.c, member, base+"/orders?limit=200")
	if err != nil {
		return nil, nil, potJSON{}, err
	}
	statement, err := readAll[statementEntryJSON](ctx, ru.c, member, base+"/statement?limit=1000")
	if err != nil {
		return nil, nil, potJSON{}, err
	}
	var pot potJSON
	err = ru.c.get(ctx, "check", member, base, &pot)
	return orders, statement, pot, err
}

// page is a page of one of the API's listings: its items are under the
// listing's name (orders, or a statement's entries; the other stays
// empty), and nextAfter is the cursor of the next page ("": none).
type page[T any] struct {
	Orders    []T    `json:"orders"`
	Entries   []T    `json:"entries"`
	NextAfter string `json:"nextAfter"`
}

// readAll reads every page of the listing at path (a query with its
// limit), following nextAfter.
func readAll[T any](ctx context.Context, c *client, member, path string) ([]T, error) {
	var all []T
	for after := ""; ; {
		p := path
		if after != "" {
			p += "&after=" + url.QueryEscape(after)
		}
		var pg page[T]
		if err := c.get(ctx, "check", member, p, &pg); err != nil {
			return nil, err
		}
		all = append(append(all, pg.Orders...), pg.Entries...)
		if after = pg.NextAfter; after == "" {
			return all, nil
		}
	}
}

// compare counts where the member's records disagree with its acks.
func (ru *run) compare(member string, acks []ack, orders []orderJSON, statement []statementEntryJSON, pot potJSON) error {
	byID := map[string]*orderJSON{}
	for i := range orders {
		o := &orders[i]
		if byID[o.ID] != nil {
			ru.finding(member, "doubled", "order %s listed twice", o.ID)
		}
		byID[o.ID] = o
	}
	byMovement := map[string][]orderJSON{} // the orders each movement placed
	for _, o := range orders {
		if o.MovementID != "" {
			byMovement[o.MovementID] = append(byMovement[o.MovementID], o)
		}
	}
	// movements[kind][id] is each movement's entries' cash.
	movements := map[string]map[string][]decimal.Decimal{"contribution": {}, "withdrawal": {}}
	for _, e := range statement {
		var id string
		switch e.Kind {
		case "contribution":
			id = strings.TrimPrefix(e.Description, "Contribution ")
		case "withdrawal":
			id = strings.TrimSuffix(strings.TrimPrefix(e.Description, "Withdrawal "), " paid")
		default:
			continue
		}
		cash, err := decimal.NewFromString(e.Cash)
		if err != nil {
			return fmt.Errorf("load: %s's statement: cash %q: %w", member, e.Cash, err)
		}
		movements[e.Kind][id] = append(movements[e.Kind][id], cash)
	}

	cash := decimal.Zero
	told := map[string]bool{} // the orders and movements the member was told of
	for _, a := range acks {
		switch a.kind {
		case KindContribute, KindWithdraw:
			kind := map[Kind]string{KindContribute: "contribution", KindWithdraw: "withdrawal"}[a.kind]
			told[a.movementID] = true
			entries := movements[kind][a.movementID]
			want := decimal.RequireFromString(a.amount)
			if a.kind == KindWithdraw {
				// What the member is owed: the amount, or what its sells
				// raised if less (docs/domain.md, "Sell by cash").
				owed, err := withdrawalOwed(want, byMovement[a.movementID])
				if err != nil {
					return fmt.Errorf("load: %s's withdrawal %s: %w", member, a.movementID, err)
				}
				want = owed.Neg()
			}
			switch {
			case len(entries) == 0:
				ru.finding(member, "lost", "%s %s (key %s) is not on the statement", kind, a.movementID, a.key)
			case len(entries) > 1:
				ru.finding(member, "doubled", "%s %s (key %s) is on the statement %d times", kind, a.movementID, a.key, len(entries))
			case !entries[0].Equal(want):
				ru.finding(member, "mismatched", "%s %s (key %s) of %s is on the statement as %s", kind, a.movementID, a.key, want, entries[0])
			}
			if len(entries) > 0 {
				cash = cash.Add(want)
			}
		case KindBuy, KindSell, KindSwitch:
			told[a.orderID] = true
			o := byID[a.orderID]
			if o == nil {
				ru.finding(member, "lost", "%s order %s (key %s) is not among the orders", a.kind, a.orderID, a.key)
				continue
			}
			if a.kind == KindBuy && (len(o.Trades) != 1 || o.Trades[0].Asset != a.asset || o.Trades[0].Amount != a.amount) {
				ru.finding(member, "mismatched", "buy %s (key %s) of %s of %s is %+v", a.orderID, a.key, a.amount, a.asset, o.Trades)
			}
		case KindCancel:
			if o := byID[a.orderID]; o == nil || o.Status != "cancelled" {
				ru.finding(member, "mismatched", "order %s, cancelled (key %s), is not cancelled", a.orderID, a.key)
			}
		}
	}
	for kind, ids := range movements {
		for id := range ids {
			if !told[id] {
				ru.finding(member, "doubled", "%s %s on the statement, of no acknowledged request", kind, id)
			}
		}
	}
	units := map[string]decimal.Decimal{}
	for _, o := range orders {
		if o.MovementID == "" && o.Type != "rebalance" && !told[o.ID] {
			ru.finding(member, "doubled", "%s order %s, of no acknowledged request", o.Type, o.ID)
		}
		for _, n := range o.ContractNotes {
			u, err := decimal.NewFromString(n.Units)
			if err != nil {
				return fmt.Errorf("load: %s's order %s: units %q: %w", member, o.ID, n.Units, err)
			}
			c, err := decimal.NewFromString(n.Consideration)
			if err != nil {
				return fmt.Errorf("load: %s's order %s: consideration %q: %w", member, o.ID, n.Consideration, err)
			}
			if n.Side == "sell" {
				u, c = u.Neg(), c.Neg()
			}
			units[n.Asset] = units[n.Asset].Add(u)
			cash = cash.Sub(c)
		}
	}
	have, err := sumOf(pot.Cash.Available, pot.Cash.Reserved, pot.Cash.Pending)
	if err != nil {
		return fmt.Errorf("load: %s's cash: %w", member, err)
	}
	if !have.Equal(cash) {
		ru.finding(member, "mismatched", "cash %s (available %s, reserved %s, pending %s), the model says %s",
			have, pot.Cash.Available, pot.Cash.Reserved, pot.Cash.Pending, cash)
	}
	held := map[string]decimal.Decimal{}
	for _, h := range pot.Holdings {
		if held[h.Asset], err = sumOf(h.SettledUnits, h.PendingUnits); err != nil {
			return fmt.Errorf("load: %s's units of %s: %w", member, h.Asset, err)
		}
	}
	for _, asset := range slices.Sorted(maps.Keys(mergeKeys(units, held))) {
		if !held[asset].Equal(units[asset]) {
			ru.finding(member, "mismatched", "%s units of %s, the model says %s", held[asset], asset, units[asset])
		}
	}
	return nil
}

// withdrawalOwed is what a withdrawal of asked pays, given the orders it
// placed: asked, unless its sells by cash raised less than they were to
// (their units capped at what each reserved, the price having fallen), when
// it pays what it raised — the cash taken at once (asked less the sells'
// amounts) plus their considerations.
func withdrawalOwed(asked decimal.Decimal, orders []orderJSON) (decimal.Decimal, error) {
	raised := asked
	for _, o := range orders {
		for _, t := range o.Trades {
			if t.Side != "sell" || t.Amount == "" {
				continue
			}
			target, err := decimal.NewFromString(t.Amount)
			if err != nil {
				return decimal.Zero, fmt.Errorf("order %s: amount %q: %w", o.ID, t.Amount, err)
			}
			raised = raised.Sub(target)
		}
		for _, n := range o.ContractNotes {
			if n.Side != "sell" {
				continue
			}
			c, err := decimal.NewFromString(n.Consideration)
			if err != nil {
				return decimal.Zero, fmt.Errorf("order %s: consideration %q: %w", o.ID, n.Consideration, err)
			}
			raised = raised.Add(c)
		}
	}
	return decimal.Min(asked, raised), nil
}

// sumOf adds decimals as the API writes them.
func sumOf(values ...string) (decimal.Decimal, error) {
	sum := decimal.Zero
	for _, v := range values {
		d, err := decimal.NewFromString(v)
		if err != nil {
			return sum, fmt.Errorf("%q: %w", v, err)
		}
		sum = sum.Add(d)
	}
	return sum, nil
}

func mergeKeys(a, b map[string]decimal.Decimal) map[string]bool {
	out := map[string]bool{}
	for k := range a {
		out[k] = true
	}
	for k := range b {
		out[k] = true
	}
	return out
}
