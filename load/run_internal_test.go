package load

import (
	"testing"

	"github.com/stretchr/testify/assert"
)

// The racing requests are those of the last fraction of the day's members,
// each member's kept together and in order.
func TestSplitRacing(t *testing.T) {
	reqs := []Request{{Member: "a", Key: "1"}, {Member: "b", Key: "2"}, {Member: "a", Key: "3"}, {Member: "c", Key: "4"},
		{Member: "b", Key: "5"}, {Member: "d", Key: "6"}}
	keys := func(rs []Request) (out []string) {
		for _, r := range rs {
			out = append(out, r.Key)
		}
		return out
	}
	for _, tc := range []struct {
		fraction              float64
		wantEarly, wantRacing []string
	}{
		{0, []string{"1", "2", "3", "4", "5", "6"}, nil},
		{0.2, []string{"1", "2", "3", "4", "5", "6"}, nil}, // under one member
		{0.25, []string{"1", "2", "3", "4", "5"}, []string{"6"}},
		{0.5, []string{"1", "2", "3", "5"}, []string{"4", "6"}},
		{1, nil, []string{"1", "2", "3", "4", "5", "6"}},
	} {
		early, racing := splitRacing(reqs, tc.fraction)
		assert.Equal(t, tc.wantEarly, keys(early), "fraction %g", tc.fraction)
		assert.Equal(t, tc.wantRacing, keys(racing), "fraction %g", tc.fraction)
	}
}
