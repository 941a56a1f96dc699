package domain

import (
	"encoding/json"
	"fmt"
)

// Snapshots of a pot's state. A snapshot is a cache (the journal is the
// truth), so its format may change: a snapshot of another format version is
// ignored and the pot replays its events instead.
//
// The format is JSON of the state: readable when debugging, and kept next
// to the types it encodes, so a field added to Pot is in snapshots without a
// second schema to update (the replay property test proves the round trip).

// snapshotFormat is the version of the snapshot encoding; bump it when a
// change to Pot would make an old snapshot decode wrongly.
const snapshotFormat = 1

type snapshotEnvelope struct {
	Format int  `json:"format"`
	Pot    *Pot `json:"pot"`
}

// MarshalSnapshot encodes the pot's state.
func (p *Pot) MarshalSnapshot() ([]byte, error) {
	b, err := json.Marshal(snapshotEnvelope{Format: snapshotFormat, Pot: p})
	if err != nil {
		return nil, fmt.Errorf("domain: encode snapshot of pot %s: %w", p.MemberID, err)
	}
	return b, nil
}

// ErrSnapshotFormat: the snapshot was written in another format version.
var ErrSnapshotFormat = fmt.Errorf("domain: snapshot of another format")

// UnmarshalPotSnapshot decodes a snapshot made by MarshalSnapshot.
func UnmarshalPotSnapshot(data []byte) (*Pot, error) {
	var env snapshotEnvelope
	if err := json.Unmarshal(data, &env); err != nil {
		return nil, fmt.Errorf("domain: decode pot snapshot: %w", err)
	}
	if env.Format != snapshotFormat || env.Pot == nil {
		return nil, fmt.Errorf("%w: %d, want %d", ErrSnapshotFormat, env.Format, snapshotFormat)
	}
	p := env.Pot
	// Maps that JSON leaves nil when empty, and the trade index, which is
	// derived from the orders (encoding it would store every trade twice).
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
	if err := p.CheckInvariants(); err != nil {
		return nil, fmt.Errorf("domain: pot snapshot breaks invariants: %w", err)
	}
	return p, nil
}
