package actors

import "testing"

func TestSnapshotDue(t *testing.T) {
	const every = 100
	cases := []struct {
		name    string
		version uint64
		p       snapshotProgress
		want    bool
	}{
		{"new pot, too few events", 99, snapshotProgress{eventBytes: 7_000}, false},
		{"new pot, enough events", 100, snapshotProgress{eventBytes: 7_000}, true},
		{"enough events, lighter than the last snapshot", 300, snapshotProgress{version: 200, bytes: 17_000, eventBytes: 16_999}, false},
		{"enough events, as heavy as the last snapshot", 300, snapshotProgress{version: 200, bytes: 17_000, eventBytes: 17_000}, true},
		{"heavy events, too few of them", 250, snapshotProgress{version: 200, bytes: 1_000, eventBytes: 90_000}, false},
		{"recovered from a snapshot, nothing since", 200, snapshotProgress{version: 200, bytes: 17_000}, false},
	}
	for _, c := range cases {
		if got := snapshotDue(c.version, c.p, every); got != c.want {
			t.Errorf("%s: snapshotDue(%d, %+v, %d) = %v, want %v", c.name, c.version, c.p, every, got, c.want)
		}
	}
}
