package load

import (
	"sync"
	"time"

	"github.com/acme/mastertrust/domain"
)

// dayClockBeforeCutOff is how long before a dealing day's cut-off its
// requests begin on a DayClock: the morning, with hours to spare before a
// day's requests (minutes at a million members) could reach the cut-off.
const dayClockBeforeCutOff = 3 * time.Hour

// DayClock is the clock of a platform the run starts itself (`--start
// dev`). It follows the run's dealing days: the run turns it to each day's
// morning before the day's requests, and it goes on with real time from
// there. What the platform does by its clock then happens over the run's
// month as over a real one: an idempotency key passes its 7-day retention
// (domain.RequestRetention), and the closed orders it kept in its pot are
// retired. On the real clock a month's run lasts hours, and every pot
// carries every order of the month to its end (docs/performance.md).
//
// It never goes back: a day whose morning has passed leaves it as it is.
type DayClock struct {
	cal *domain.Calendar

	mu       sync.Mutex
	base     time.Time // what it read when last turned
	turnedAt time.Time // the real time it was turned
	last     time.Time // the latest it has read
}

// NewDayClock is a DayClock reading real time until it is first turned.
func NewDayClock(cal *domain.Calendar) *DayClock {
	now := time.Now()
	return &DayClock{cal: cal, base: now, turnedAt: now}
}

// Now is the time on the clock: what it was turned to, plus the real time
// since.
func (c *DayClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	t := c.base.Add(time.Since(c.turnedAt))
	if t.Before(c.last) {
		t = c.last
	}
	c.last = t
	return t
}

// turnTo moves the clock on to the morning of dealing day d, unless it is
// already past it.
func (c *DayClock) turnTo(d domain.Date) {
	morning := c.cal.CutOff(d).Add(-dayClockBeforeCutOff)
	now := c.Now()
	c.mu.Lock()
	defer c.mu.Unlock()
	if morning.After(now) {
		c.base, c.turnedAt = morning, time.Now()
	}
}
