package actors

import (
	"context"
	"errors"
	"fmt"

	"google.golang.org/protobuf/proto"

	"github.com/acme/mastertrust/domain"
	"github.com/acme/mastertrust/persistence"
	"github.com/acme/mastertrust/proto/pb"
)

// The dealing stream is the register of the cycles (domain.DealingRegister):
// every cycle records there that it started (CycleStarted), that its day is
// cut off (DayCutOff) and that it completed (DayCompleted). Prices, cycles
// and reconciliations read it to apply the operators' safeguards: the
// dealing window, cycles in date order, the date the pots' state is as of.
// Every cycle appends to it, so an append that finds the stream moved reads
// it again and retries.

// dealingAppendAttemptsMax bounds the retries of an append to the dealing
// stream: each conflict means another cycle appended in between, and cycles
// are a handful a day.
const dealingAppendAttemptsMax = 6

// loadRegister reads the dealing stream into a register. A day cut off
// without its DayCompleted (written by the releases before DayCompleted
// existed, or a cycle that has not completed) is checked against its cycle's
// own stream.
func loadRegister(ctx context.Context, j persistence.Journal) (*domain.DealingRegister, systemStream, error) {
	r := &domain.DealingRegister{}
	s := systemStream{j: j, name: dealingStream}
	if err := s.load(ctx, func(m proto.Message) error { return applyRegister(r, m) }); err != nil {
		return nil, s, err
	}
	for _, d := range r.Incomplete() {
		done, err := cycleCompleted(ctx, j, d)
		if err != nil {
			return nil, s, err
		}
		if done {
			r.Completed(d)
		}
	}
	return r, s, nil
}

// applyRegister applies one event of the dealing stream.
func applyRegister(r *domain.DealingRegister, m proto.Message) error {
	var date string
	var record func(domain.Date)
	switch m := m.(type) {
	case *pb.DayCutOff:
		date, record = m.Date, r.CutOff
	case *pb.CycleStarted:
		date, record = m.Date, r.Started
	case *pb.DayCompleted:
		date, record = m.Date, r.Completed
	default:
		return fmt.Errorf("unexpected %T in the dealing stream", m)
	}
	d, err := domain.ParseDate(date)
	if err != nil {
		return fmt.Errorf("the dealing stream: %w", err)
	}
	record(d)
	return nil
}

// cycleCompleted reports whether date's cycle stream records its
// completion.
func cycleCompleted(ctx context.Context, j persistence.Journal, date domain.Date) (bool, error) {
	done := false
	s := systemStream{j: j, name: cycleStream(date)}
	err := s.load(ctx, func(m proto.Message) error {
		if _, ok := m.(*pb.CycleCompleted); ok {
			done = true
		}
		return nil
	})
	return done, err
}

// recordDealing appends e to the dealing stream unless recorded says the
// register has it already, reading the stream again after a conflict.
func recordDealing(ctx context.Context, j persistence.Journal, e proto.Message, recorded func(*domain.DealingRegister) bool) error {
	_, err := appendOnce(ctx, dealingAppendAttemptsMax, e, func(ctx context.Context) (systemStream, bool, error) {
		r, s, err := loadRegister(ctx, j)
		if err != nil {
			return s, false, err
		}
		return s, recorded(r), nil
	})
	return err
}

// appendOnce appends e to a stream that several grains append to, unless
// load (which reads the stream afresh) says it is there already. A version
// conflict means another grain appended in between: the stream is read
// again and the append retried, attemptsMax times at most. added says
// whether e was appended.
func appendOnce(ctx context.Context, attemptsMax int, e proto.Message,
	load func(ctx context.Context) (s systemStream, present bool, err error)) (added bool, err error) {
	for attempt := 1; ; attempt++ {
		s, present, err := load(ctx)
		if err != nil || present {
			return false, err
		}
		err = s.append(ctx, e)
		if err == nil {
			return true, nil
		}
		if !errors.Is(err, persistence.ErrVersionConflict) || attempt == attemptsMax {
			return false, err
		}
	}
}

// dealingToday is the date of the node's clock in the calendar's zone.
func (d *DealingDeps) dealingToday() domain.Date {
	return domain.DateOf(d.Now(), d.Calendar.Location())
}

// window is the operators' dealing window as the register stands.
func (d *DealingDeps) window(r *domain.DealingRegister) domain.DealingWindow {
	today := d.dealingToday()
	if latest := r.Latest(); d.Config.SimulatedCalendar && latest.After(today) {
		today = latest
	}
	return r.Window(d.Calendar, today, d.Config.WindowAheadDealingDays)
}
