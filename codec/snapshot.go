package codec

import (
	"errors"
	"fmt"

	"github.com/acme/mastertrust/domain"
)

// Pot snapshots: the pot in the binary form (binary.go) after one byte that
// names the format, so that a snapshot of another format is recognised and
// ignored (the pot replays its events instead, and its next snapshot is
// this format) rather than misread. Format 1 was JSON (its first byte '{'),
// 3.6 times the bytes of the events it stood for; format 2 protobuf, 1.3
// times, but with decimals and dates as text it cost a pot activating from
// it ~2.6 times this form's decode (BenchmarkPotSnapshot,
// docs/performance.md), and a node of a million pots activates them all on
// each dealing day. Format 4 added the versions that recorded the pot's
// idempotency keys (domain.RequestRecord.Version, Pot.ForgottenThrough).
const snapshotFormat byte = 4

// ErrSnapshotFormat: the snapshot was written in another format.
var ErrSnapshotFormat = errors.New("codec: pot snapshot of another format")

// EncodePotSnapshot encodes a pot's state.
func EncodePotSnapshot(p *domain.Pot) ([]byte, error) {
	w := potWriter{b: make([]byte, 0, 512)}
	w.b = append(w.b, snapshotFormat)
	if err := w.pot(p); err != nil {
		return nil, err
	}
	return w.b, nil
}

// DecodePotSnapshot decodes a snapshot made by EncodePotSnapshot: a pot
// whose invariants hold (domain.Pot.Restore), or an error (ErrSnapshotFormat
// for another format).
func DecodePotSnapshot(data []byte) (*domain.Pot, error) {
	if len(data) == 0 || data[0] != snapshotFormat {
		return nil, ErrSnapshotFormat
	}
	r := potReader{s: string(data[1:])}
	p := r.pot()
	if r.end() != nil {
		return nil, fmt.Errorf("codec: decode pot snapshot: %w", r.err)
	}
	if err := p.Restore(); err != nil {
		return nil, fmt.Errorf("codec: decode pot snapshot: %w", err)
	}
	return p, nil
}
