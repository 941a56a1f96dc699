package load

import (
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/acme/mastertrust/domain"
)

// The day clock is turned to a dealing day's morning, before its cut-off,
// runs on from there, and never goes back.
func TestDayClockFollowsTheDays(t *testing.T) {
	loc, err := time.LoadLocation(domain.DefaultLocationName)
	require.NoError(t, err)
	cal, err := domain.NewCalendar(domain.CalendarConfig{Location: loc})
	require.NoError(t, err)
	c := NewDayClock(cal)
	assert.WithinDuration(t, time.Now(), c.Now(), time.Minute, "real time until turned")

	day := cal.NextDealingDay(cal.DealingDayFor(time.Now().AddDate(0, 0, 30)))
	c.turnTo(day)
	first := c.Now()
	assert.Equal(t, day, cal.DealingDayFor(first), "requests now are dealt that day")
	assert.Equal(t, dayClockBeforeCutOff, cal.CutOff(day).Sub(first).Round(time.Minute))
	time.Sleep(10 * time.Millisecond)
	assert.True(t, c.Now().After(first), "it runs on")

	c.turnTo(cal.NextDealingDay(day))
	assert.Equal(t, cal.NextDealingDay(day), cal.DealingDayFor(c.Now()))
	before := c.Now()
	c.turnTo(day)
	assert.False(t, c.Now().Before(before), "never back to a day past")
}
