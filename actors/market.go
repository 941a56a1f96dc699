package actors

import (
	"context"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/acme/mastertrust/codec"
	"github.com/acme/mastertrust/domain"
	"github.com/acme/mastertrust/internal/recovered"
	"github.com/acme/mastertrust/persistence"
	"github.com/acme/mastertrust/proto/pb"
)

// Market is what a pot needs to know of the world besides its own state:
// the latest closing prices and the first dealing day still open. The
// dealing cycle changes it; pots only read it.
type Market interface {
	Prices() map[domain.ISIN]domain.PricePoint
	OpenFrom() domain.Date
	// Hold enters a decision that may place or cancel trades: it returns the
	// first open dealing day to decide with, and release, to call once the
	// decision's events are durable (or failed). A cut-off waits for every
	// hold taken before it, so that no order or cancellation decided while
	// a day was open reaches the journal after the day's batch was closed.
	Hold() (openFrom domain.Date, release func())
}

// MarketState is a node's Market, safe for concurrent use.
type MarketState struct {
	mu       sync.RWMutex
	prices   map[domain.ISIN]domain.PricePoint // mu guards; replaced, never changed in place
	openFrom domain.Date                       // mu guards
	openKey  string                            // mu guards: openFrom's text, the key of holds
	// holds counts the holds not yet released by the open day they saw
	// (its text: Date holds a time.Time, not a safe map key). released is
	// closed (and replaced) on a release while a cut-off waits (waiters >
	// 0). mu guards all three.
	holds    map[string]int
	waiters  int
	released chan struct{}
}

// NewMarketState is a market with no prices and every day open.
func NewMarketState() *MarketState {
	return &MarketState{prices: map[domain.ISIN]domain.PricePoint{}, holds: map[string]int{}, released: make(chan struct{})}
}

// Prices returns the latest prices. The map must not be changed.
func (m *MarketState) Prices() map[domain.ISIN]domain.PricePoint {
	m.mu.RLock()
	defer m.mu.RUnlock()
	return m.prices
}

// OpenFrom returns the first dealing day still open.
func (m *MarketState) OpenFrom() domain.Date {
	m.mu.RLock()
	defer m.mu.RUnlock()
	return m.openFrom
}

// Hold: see Market.
func (m *MarketState) Hold() (domain.Date, func()) {
	m.mu.Lock()
	defer m.mu.Unlock()
	saw, key := m.openFrom, m.openKey
	m.holds[key]++
	var once sync.Once
	return saw, func() {
		once.Do(func() {
			m.mu.Lock()
			defer m.mu.Unlock()
			if m.holds[key]--; m.holds[key] == 0 {
				delete(m.holds, key)
			}
			if m.waiters > 0 {
				close(m.released)
				m.released = make(chan struct{})
			}
		})
	}
}

// HoldsOutstanding counts the holds not yet released: commands deciding
// or waiting to be durable, which a cut-off waits for (see CutOff). One
// that stays up while nothing runs is a wedge an operator must see.
func (m *MarketState) HoldsOutstanding() int64 {
	m.mu.RLock()
	defer m.mu.RUnlock()
	var n int64
	for _, c := range m.holds {
		n += int64(c)
	}
	return n
}

// SetPrices records the closing prices of a date; a price older than the
// one held is ignored.
func (m *MarketState) SetPrices(date domain.Date, prices map[domain.ISIN]domain.Price) {
	m.mu.Lock()
	defer m.mu.Unlock()
	next := make(map[domain.ISIN]domain.PricePoint, len(m.prices)+len(prices))
	for a, p := range m.prices {
		next[a] = p
	}
	for a, p := range prices {
		if old, ok := next[a]; !ok || !old.Date.After(date) {
			next[a] = domain.PricePoint{Price: p, Date: date}
		}
	}
	m.prices = next
}

// SetOpenFrom records that dealing days before d are cut off, without
// waiting for decisions in flight (a node learning it from the journal). It
// never moves back.
func (m *MarketState) SetOpenFrom(d domain.Date) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.setOpenFromLocked(d)
}

func (m *MarketState) setOpenFromLocked(d domain.Date) {
	if d.After(m.openFrom) {
		m.openFrom, m.openKey = d, d.String()
	}
}

// CutOff closes dealing days before openFrom and waits until every decision
// made while one of them was open is durable or failed (see Hold), or ctx
// ends.
func (m *MarketState) CutOff(ctx context.Context, openFrom domain.Date) error {
	m.mu.Lock()
	m.setOpenFromLocked(openFrom)
	m.waiters++
	defer func() {
		m.mu.Lock()
		m.waiters--
		m.mu.Unlock()
	}()
	target := openFrom.String()
	for {
		waiting := 0
		for key, n := range m.holds {
			// "" (no day cut off yet) sorts before every date, as it should.
			if key < target {
				waiting += n
			}
		}
		if waiting == 0 {
			m.mu.Unlock()
			return nil
		}
		released := m.released
		m.mu.Unlock()
		select {
		case <-released:
		case <-ctx.Done():
			return fmt.Errorf("cut-off to %s: %d decisions still in flight: %w", openFrom, waiting, ctx.Err())
		}
		m.mu.Lock()
	}
}

// FollowMarket keeps market in step with the journal's system feed (prices
// published, days cut off) until ctx ends: it reads what is there before it
// returns the first time (so a node starts with the market as it is), then
// polls every interval in the background. It returns an error only if the
// first read fails.
//
// A panic while following (a bug, or an event nobody foresaw) is recovered,
// logged and counted, and the follower goes on at the next interval: an
// event takes its position before it is applied, so one that panics is
// passed over rather than stopping the follower for good.
func FollowMarket(ctx context.Context, j persistence.Journal, market *MarketState, interval time.Duration, log *slog.Logger) error {
	f := &marketFollower{j: j, group: SystemGroup(j), market: market, log: log}
	catchUp := func() error {
		var err error
		if perr := recovered.Run(log, "market-follower", func() { err = f.catchUp(ctx) }); perr != nil {
			return perr
		}
		return err
	}
	if err := catchUp(); err != nil {
		return fmt.Errorf("actors: follow market: %w", err)
	}
	go func() {
		t := time.NewTicker(interval)
		defer t.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-t.C:
				if err := catchUp(); err != nil && ctx.Err() == nil {
					log.Warn("following the market", "err", err)
				}
			}
		}
	}()
	return nil
}

type marketFollower struct {
	j        persistence.Journal
	group    uint32
	market   *MarketState
	log      *slog.Logger
	position uint64
}

// feedPage bounds one read of a feed.
const feedPage = 1000

func (f *marketFollower) catchUp(ctx context.Context) error {
	for {
		events, err := f.j.ReadFeed(ctx, f.group, f.position, feedPage)
		if err != nil {
			return err
		}
		for _, e := range events {
			f.position = e.Position
			f.apply(e)
		}
		if len(events) < feedPage {
			return nil
		}
	}
}

func (f *marketFollower) apply(e persistence.FeedEvent) {
	switch e.Type {
	case "sys.PricesPublished", "sys.PricesCorrected", "sys.DayCutOff":
	default:
		return
	}
	m, err := codec.DecodeSystemEvent(e.Type, e.Data)
	if err != nil {
		f.log.Error("unreadable market event", "stream", e.Stream, "version", e.Version, "err", err)
		return
	}
	switch m := m.(type) {
	case *pb.PricesPublished:
		date, prices, err := decodePrices(m.Date, m.Prices)
		if err != nil {
			f.log.Error("unreadable prices", "stream", e.Stream, "err", err)
			return
		}
		f.market.SetPrices(date, prices)
	case *pb.PricesCorrected:
		date, prices, err := decodePrices(m.Date, m.Prices)
		if err != nil {
			f.log.Error("unreadable prices", "stream", e.Stream, "err", err)
			return
		}
		f.market.SetPrices(date, prices)
	case *pb.DayCutOff:
		d, err := domain.ParseDate(m.OpenFrom)
		if err != nil {
			f.log.Error("unreadable cut-off", "stream", e.Stream, "err", err)
			return
		}
		f.market.SetOpenFrom(d)
	}
}

// decodePrices reads a date and its prices from their wire form.
func decodePrices(date string, prices map[string]string) (domain.Date, map[domain.ISIN]domain.Price, error) {
	d, err := domain.ParseDate(date)
	if err != nil {
		return domain.Date{}, nil, err
	}
	out := make(map[domain.ISIN]domain.Price, len(prices))
	for isin, s := range prices {
		p, err := domain.ParsePrice(s, domain.PriceDecimalsMax)
		if err != nil {
			return domain.Date{}, nil, fmt.Errorf("price of %s: %w", isin, err)
		}
		out[domain.ISIN(isin)] = p
	}
	return d, out, nil
}

// encodePrices is the wire form of prices: with a catalogue, each with its
// asset's price places ("2.000000", not "2", for people to read); without,
// as short as exact (for a grain that checks places as written).
func encodePrices(prices map[domain.ISIN]domain.Price, cat *domain.Catalogue) map[string]string {
	out := make(map[string]string, len(prices))
	for a, p := range prices {
		out[string(a)] = p.String()
		if cat == nil {
			continue
		}
		if asset, ok := cat.Asset(a); ok {
			out[string(a)] = p.StringFixed(asset.PriceDecimals)
		}
	}
	return out
}
