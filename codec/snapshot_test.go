package codec

import (
	"errors"
	"fmt"
	"slices"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/acme/mastertrust/domain"
)

// TestPotSnapshotRoundTrip proves a snapshot stands for the state it was
// taken from, at every point of a pot's life that produces every kind of
// event: decode(encode(pot)) is the same state, encodes to the same bytes,
// and the rest of the events applied to it give the pot's final state.
func TestPotSnapshotRoundTrip(t *testing.T) {
	events := potLife(t)
	final := domain.NewPot("M000042")
	for _, e := range events {
		final.Apply(e)
	}
	p := domain.NewPot("M000042")
	for k := 0; k <= len(events); k++ {
		if k > 0 {
			p.Apply(events[k-1])
		}
		data, err := EncodePotSnapshot(p)
		if err != nil {
			t.Fatalf("after %d events: encode: %v", k, err)
		}
		back, err := DecodePotSnapshot(data)
		if err != nil {
			t.Fatalf("after %d events: decode: %v", k, err)
		}
		if got, want := back.Canonical(), p.Canonical(); got != want {
			t.Fatalf("after %d events: decoded state differs:\n%s\nvs\n%s", k, got, want)
		}
		again, err := EncodePotSnapshot(back)
		if err != nil || string(again) != string(data) {
			t.Fatalf("after %d events: re-encoding differs (err %v)", k, err)
		}
		for _, e := range events[k:] {
			back.Apply(e)
		}
		if got, want := back.Canonical(), final.Canonical(); got != want {
			t.Fatalf("snapshot after %d events, then the rest: state differs:\n%s\nvs\n%s", k, got, want)
		}
	}
	if len(final.Holdings) == 0 || len(final.OrderIDs) == 0 || len(final.MovementIDs) == 0 || len(final.Requests) == 0 {
		t.Fatalf("the pot's life left no holdings, orders, movements or requests: the round trip is not proven for them")
	}
}

// TestPotSnapshotRefusesWhatItCannotRead proves a snapshot of another
// format, a damaged one, or one whose state breaks the pot's invariants is
// an error, never a pot.
func TestPotSnapshotRefusesWhatItCannotRead(t *testing.T) {
	p := domain.NewPot("M000042")
	for _, e := range potLife(t) {
		p.Apply(e)
	}
	good, err := EncodePotSnapshot(p)
	require.NoError(t, err)
	// A pot whose reserved cash no trade or withdrawal accounts for.
	bad := domain.NewPot("M000042")
	for _, e := range potLife(t) {
		bad.Apply(e)
	}
	bad.Cash.Reserved = bad.Cash.Reserved.Add(domain.MustMoney("999999.00"))
	breaksInvariants, err := EncodePotSnapshot(bad)
	require.NoError(t, err)
	cases := []struct {
		name string
		data []byte
		want error // nil: any error
	}{
		{"empty", nil, ErrSnapshotFormat},
		{"format 1 (JSON)", []byte(`{"format":1,"pot":{}}`), ErrSnapshotFormat},
		{"format 2 (protobuf)", append([]byte{2}, good[1:]...), ErrSnapshotFormat},
		{"a byte too many", append(slices.Clone(good), 0), nil},
		{"cash that breaks the invariants", breaksInvariants, nil},
	}
	for n := 1; n < len(good); n++ {
		cases = append(cases, struct {
			name string
			data []byte
			want error
		}{fmt.Sprintf("cut to %d bytes", n), good[:n], nil})
	}
	for _, c := range cases {
		got, err := DecodePotSnapshot(c.data)
		if err == nil {
			t.Errorf("%s: decoded a pot at version %d, want an error", c.name, got.Version)
			continue
		}
		if c.want != nil && !errors.Is(err, c.want) {
			t.Errorf("%s: error %v, want %v", c.name, err, c.want)
		}
	}
}
