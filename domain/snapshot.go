package domain

import "fmt"

// Snapshots of a pot's state. The journal is the truth and a snapshot a
// cache of it: package codec encodes one (EncodePotSnapshot) as it encodes the
// events, and a snapshot that cannot be read is ignored (the pot replays its
// events instead).

// Restore completes a pot decoded from a snapshot: the maps left empty, the
// trade index (derived from the orders, so not stored: storing it would
// store every trade twice), and a check of the pot's invariants, so that a
// damaged snapshot is refused rather than trusted.
func (p *Pot) Restore() error {
	if p.Holdings == nil {
		p.Holdings = map[ISIN]*Holding{}
	}
	if p.Orders == nil {
		p.Orders = map[string]*Order{}
	}
	if p.Movements == nil {
		p.Movements = map[string]*Movement{}
	}
	p.Trades = map[string]*Trade{}
	for _, o := range p.Orders {
		for _, t := range o.Trades {
			p.Trades[t.ID] = t
		}
	}
	p.requestIndex = nil
	if err := p.CheckInvariants(); err != nil {
		return fmt.Errorf("domain: restored pot %s breaks invariants: %w", p.MemberID, err)
	}
	return nil
}
