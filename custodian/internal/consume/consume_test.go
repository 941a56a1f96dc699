package consume

import (
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
)

// RetryDelay starts at base, doubles per delivery and stops at max, also
// for delivery counts whose doubling would overflow.
func TestRetryDelay(t *testing.T) {
	base, most := time.Second, 30*time.Second
	for _, c := range []struct {
		n    uint64
		want time.Duration
	}{
		{0, time.Second}, {1, time.Second}, {2, 2 * time.Second}, {3, 4 * time.Second},
		{5, 16 * time.Second}, {6, 30 * time.Second}, {64, 30 * time.Second}, {1 << 63, 30 * time.Second},
	} {
		assert.Equal(t, c.want, RetryDelay(c.n, base, most), "delivery %d", c.n)
	}
}

// ValidConsumerName refuses what JetStream refuses in a durable name.
func TestValidConsumerName(t *testing.T) {
	assert.True(t, ValidConsumerName("custodian-simulator"))
	for _, name := range []string{"", "a.b", "a*", "a>", "a b", "a\tb", "a\nb"} {
		assert.False(t, ValidConsumerName(name), "%q", name)
	}
}
