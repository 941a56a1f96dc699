package bench

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	"github.com/shopspring/decimal"

	"github.com/acme/mastertrust/domain"
	"github.com/acme/mastertrust/proto/pb"
)

// Many dealing days with new activity every day (CycleConfig.DailyActivity):
// before each day's cycle a different subset of the pots makes new requests,
// and from day 3 on the prices walk; each day's cycle time, CPU time and heap
// afterwards are compared with day 3's.

// Targets of a run of many days (docs/performance.md, "Thirty dealing
// days"): the last day against day 3, the first day that deals rebalances
// and every kind of trade.
const (
	daysCycleRatioMax = 1.2 // the cycle's wall time
	daysCPURatioMax   = 1.2 // the process's CPU time over the cycle
	daysHeapRatioMax  = 1.2 // the live heap after the day
	// daysBaseDay is the day the ratios are against.
	daysBaseDay = 3
)

// cycleDaysMax bounds CycleConfig.Days: about a year of dealing days.
const cycleDaysMax = 260

// The daily activity's shape.
const (
	// activitySeed and priceWalkSeed seed each day's draw of requests and
	// of price moves (with the day's number), so that two runs of the same
	// size make the same requests at the same prices.
	activitySeed  = 0x6d617374 // "mast"
	priceWalkSeed = 0x70726963 // "pric"
	// activityOrderShare of the pots drawn also place an order.
	activityOrderShare = 0.25
	// activitySellPercent of a holding's available units is what a sell
	// asks for.
	activitySellPercent = "10"
	// activityHour is when the day's requests are made: after the day's
	// prices (9:00), before the cut-off (11:00), so that they deal that day.
	activityHour = 10
	// priceWalkSigma is the standard deviation of each asset's daily price
	// move from day 3 on: with it and the members' sells, some pots leave
	// their band now and then.
	priceWalkSigma = 0.01
)

// activityPlan is one pot's requests on one day, drawn before any is made.
type activityPlan struct {
	pot int
	// pence is the contribution: £25.00 to £1,000.99.
	pence int64
	// order: the pot places an order too: a self-directed pot a buy with
	// half its contribution, or, if sell, a sell; a profiled pot a sell.
	order, sell bool
	// pick chooses the asset bought, or the holding sold.
	pick uint64
}

// dayActivity is what one day's new requests did.
type dayActivity struct {
	pots int // pots that made requests (each a contribution)
	// pence contributed in all.
	pence int64
	// buys and sells are the orders placed; noUnits the pots drawn to sell
	// that had no units available to sell (nothing settled yet) and placed
	// none.
	buys, sells, noUnits int
	// potsTrading are the pots whose requests placed trades for the day:
	// every profiled pot that contributed (its contribution is invested) and
	// every pot that placed an order.
	potsTrading int
	wall, cpu   time.Duration
}

// dayRand is day n's source of randomness for seed, the same in every run.
func dayRand(seed uint64, n int) *rand.Rand {
	return rand.New(rand.NewPCG(seed, uint64(n)))
}

// planActivity draws day n's requests: DailyActivity of the pots, a
// different subset each day.
func (r *cycleRun) planActivity(n int) []activityPlan {
	count := int(math.Round(r.cfg.DailyActivity * float64(r.cfg.Pots)))
	if count == 0 {
		return nil
	}
	rng := dayRand(activitySeed, n)
	plans := make([]activityPlan, count)
	for i, pot := range rng.Perm(r.cfg.Pots)[:count] {
		plans[i] = activityPlan{
			pot:   pot,
			pence: 2_500 + rng.Int64N(97_600),
			order: rng.Float64() < activityOrderShare,
			sell:  rng.IntN(2) == 0,
			pick:  rng.Uint64(),
		}
	}
	return plans
}

// runActivity makes day n's requests through the pots' own path (the one
// the setup uses), Callers at a time, at activityHour of day.
func (r *cycleRun) runActivity(ctx context.Context, n int, day domain.Date) (*dayActivity, error) {
	plans := r.planActivity(n)
	if len(plans) == 0 {
		return nil, nil
	}
	r.setTime(day, activityHour, 0)
	var (
		mu  sync.Mutex
		act = &dayActivity{pots: len(plans)}
	)
	start, cpu0 := time.Now(), processCPU()
	err := r.callEach(ctx, len(plans), fmt.Sprintf("day %d's requests", n), func(ctx context.Context, i int) error {
		p := plans[i]
		res, err := r.potActivity(ctx, n, p)
		if err != nil {
			return err
		}
		mu.Lock()
		defer mu.Unlock()
		act.pence += p.pence
		switch res {
		case placedBuy:
			act.buys++
		case placedSell:
			act.sells++
		case noUnitsToSell:
			act.noUnits++
		}
		if res == placedBuy || res == placedSell || cycleProfile(p.pot) != "" {
			act.potsTrading++
		}
		return nil
	})
	act.wall, act.cpu = time.Since(start), processCPU()-cpu0
	if err != nil {
		return nil, fmt.Errorf("day %d's requests: %w", n, err)
	}
	return act, nil
}

// activityResult is what a pot's requests of the day placed besides the
// contribution.
type activityResult int

const (
	noOrder activityResult = iota
	placedBuy
	placedSell
	noUnitsToSell
)

// potActivity makes one pot's requests of day n: the contribution, then
// the order drawn, if any.
func (r *cycleRun) potActivity(ctx context.Context, n int, p activityPlan) (activityResult, error) {
	m := cycleMember(p.pot)
	if err := r.call(ctx, m, &pb.PotRequest{IdempotencyKey: fmt.Sprintf("pay-day%d", n),
		Command: &pb.PotRequest_Contribute{Contribute: &pb.Contribute{Amount: penceText(p.pence)}}}); err != nil {
		return 0, err
	}
	if !p.order {
		return noOrder, nil
	}
	orderKey := fmt.Sprintf("order-day%d", n)
	profiled := cycleProfile(p.pot) != ""
	if profiled || p.sell {
		asset, err := r.holdingToSell(ctx, m, p.pick)
		if err != nil {
			return 0, err
		}
		if asset != "" {
			return placedSell, r.call(ctx, m, &pb.PotRequest{IdempotencyKey: orderKey,
				Command: &pb.PotRequest_PlaceOrder{PlaceOrder: &pb.PlaceOrder{Type: pb.OrderType_ORDER_TYPE_SELL,
					Asset: asset, Percent: activitySellPercent}}})
		}
		if profiled {
			// A profiled pot's contribution is invested; it has no cash
			// to buy with.
			return noUnitsToSell, nil
		}
	}
	assets := r.cat.Assets()
	asset := assets[p.pick%uint64(len(assets))].ISIN
	return placedBuy, r.call(ctx, m, &pb.PotRequest{IdempotencyKey: orderKey,
		Command: &pb.PotRequest_PlaceOrder{PlaceOrder: &pb.PlaceOrder{Type: pb.OrderType_ORDER_TYPE_BUY,
			Asset: string(asset), Amount: penceText(p.pence / 2)}}})
}

// holdingToSell asks member's pot what it holds and picks one of the
// holdings of which activitySellPercent is at least one unit's smallest
// part, as a member looks at their pot before selling; "" if none.
func (r *cycleRun) holdingToSell(ctx context.Context, member string, pick uint64) (string, error) {
	resp, err := r.potCall(ctx, member, &pb.PotRequest{Command: &pb.PotRequest_GetPot{GetPot: &pb.GetPot{}}})
	if err != nil {
		return "", err
	}
	share, err := decimal.NewFromString(activitySellPercent)
	if err != nil {
		return "", err
	}
	share = share.Shift(-2)
	var sellable []string
	for _, h := range resp.GetPot().GetHoldings() {
		a, ok := r.cat.Asset(domain.ISIN(h.Asset))
		if !ok {
			return "", fmt.Errorf("pot %s holds %s, not in the catalogue", member, h.Asset)
		}
		settled, err := decimalOrZero(h.SettledUnits)
		if err != nil {
			return "", fmt.Errorf("pot %s's settled units of %s: %w", member, h.Asset, err)
		}
		reserved, err := decimalOrZero(h.ReservedUnits)
		if err != nil {
			return "", fmt.Errorf("pot %s's reserved units of %s: %w", member, h.Asset, err)
		}
		if settled.Sub(reserved).Mul(share).Truncate(a.UnitDecimals).Sign() > 0 {
			sellable = append(sellable, h.Asset)
		}
	}
	if len(sellable) == 0 {
		return "", nil
	}
	return sellable[pick%uint64(len(sellable))], nil
}

func decimalOrZero(s string) (decimal.Decimal, error) {
	if s == "" {
		return decimal.Zero, nil
	}
	return decimal.NewFromString(s)
}

// penceText is an amount in pence as the API writes it: "12.34".
func penceText(pence int64) string { return fmt.Sprintf("%d.%02d", pence/100, pence%100) }

// callEach calls f for 0 … n-1, Callers at a time, until one fails (its
// error is returned), printing progress every 5 s as "what: done of n".
func (r *cycleRun) callEach(ctx context.Context, n int, what string, f func(ctx context.Context, i int) error) error {
	ctx, cancel := context.WithTimeout(ctx, r.cfg.PhaseTimeout)
	defer cancel()
	var done atomic.Int64
	start := time.Now()
	finished := make(chan struct{})
	progressDone := make(chan struct{})
	go func() {
		defer close(progressDone)
		tick := time.NewTicker(5 * time.Second)
		defer tick.Stop()
		for {
			select {
			case <-tick.C:
				d, el := done.Load(), time.Since(start)
				fmt.Fprintf(r.out, "  %s: %d of %d, %s, %.0f/s\n", what, d, n, el.Round(time.Second), float64(d)/el.Seconds())
			case <-finished:
				return
			}
		}
	}()
	err := callIndexes(ctx, r.cfg.Callers, n, &done, f)
	close(finished)
	<-progressDone
	if err != nil {
		return fmt.Errorf("%d of %d done: %w", done.Load(), n, err)
	}
	return nil
}

// walkPrices moves each asset's price level by day n's seeded step: a
// log-normal move of priceWalkSigma, its normal draw cut at ±3 so that one
// unlucky day does not move a price by more than 3σ.
func walkPrices(levels map[domain.ISIN]float64, assets []domain.Asset, n int) {
	rng := dayRand(priceWalkSeed, n)
	for _, a := range assets {
		step := math.Exp(max(-3, min(3, rng.NormFloat64())) * priceWalkSigma)
		levels[a.ISIN] *= step
	}
}

// checkActivityDealt fails if day d did not deal what its requests placed:
// each order is one trade, and each pot that placed trades is allocated.
func checkActivityDealt(d cycleDay) error {
	a, s := d.activity, d.summary
	if a == nil {
		return nil
	}
	if orders := int64(a.buys + a.sells); s.Trades < orders {
		return fmt.Errorf("%d trades dealt, fewer than the %d orders the day's requests placed", s.Trades, orders)
	}
	if s.PotsAllocated < int64(a.potsTrading) {
		return fmt.Errorf("%d pots allocated, fewer than the %d whose requests placed trades", s.PotsAllocated, a.potsTrading)
	}
	return nil
}

// printActivity prints what day n's requests were.
func (r *cycleRun) printActivity(n int, a *dayActivity) {
	calls := a.pots + a.buys + a.sells
	fmt.Fprintf(r.out, "Day %d's new requests (%.0f%% of the pots, a new draw each day): %d contributions (£%s in all), %d buys, %d sells, %d pots drawn to sell with nothing settled to sell; %d commands in %s (%.0f/s), %.2f cores.\n",
		n, 100*r.cfg.DailyActivity, a.pots, penceText(a.pence), a.buys, a.sells, a.noUnits, calls, secs(a.wall),
		float64(calls)/a.wall.Seconds(), a.cpu.Seconds()/a.wall.Seconds())
}

// printDaysRatios prints, after more than daysBaseDay days, a line per day
// (its new requests, what the cycle did, its time, CPU time and heap after
// it, each over day daysBaseDay's), then the last day's ratios against the
// targets.
func (r *cycleRun) printDaysRatios() {
	if len(r.results) <= daysBaseDay {
		return
	}
	base, last := r.results[daysBaseDay-1], r.results[len(r.results)-1]
	fmt.Fprintf(r.out, "Days: each day's cycle time, CPU time and live heap after the day, and each ÷ day %d's (%s):\n", daysBaseDay, base.date)
	fmt.Fprintf(r.out, "  %-14s %7s %7s %7s %7s %7s %7s %8s %8s %9s %7s %7s %7s\n", "day", "pays", "orders",
		"trades", "settled", "checked", "traded", "cycle s", "CPU s", "heap MiB", "cycle×", "CPU×", "heap×")
	for _, d := range r.results {
		var pays, orders int
		if a := d.activity; a != nil {
			pays, orders = a.pots, a.buys+a.sells
		}
		s := d.summary
		fmt.Fprintf(r.out, "  %-14s %7d %7d %7d %7d %7d %7d %8.2f %8.2f %9.1f %7.2f %7.2f %7.2f\n", fmt.Sprintf("%d %s", d.n, d.date),
			pays, orders, s.Trades, s.TradesSettled, s.PotsChecked, s.PotsTraded, d.wall.Seconds(), d.cpu.Seconds(), mib(d.heapAfter),
			ratio(d.wall.Seconds(), base.wall.Seconds()), ratio(d.cpu.Seconds(), base.cpu.Seconds()),
			ratio(float64(d.heapAfter), float64(base.heapAfter)))
	}
	fmt.Fprintf(r.out, "  (pays: the day's new contributions; orders: the members' buys and sells among them; trades: dealt; settled: trades settled; checked and traded: the rebalance sweep's pots)\n")
	for _, t := range []struct {
		what       string
		last, base float64
		max        float64
		unit       string
	}{
		{"cycle time", last.wall.Seconds(), base.wall.Seconds(), daysCycleRatioMax, "s"},
		{"CPU time", last.cpu.Seconds(), base.cpu.Seconds(), daysCPURatioMax, "s"},
		{"live heap after the day", mib(last.heapAfter), mib(base.heapAfter), daysHeapRatioMax, "MiB"},
	} {
		x := ratio(t.last, t.base)
		fmt.Fprintf(r.out, "  day %d ÷ day %d, %s: %.2f %s ÷ %.2f %s = %.2f (target ≤ %.1f: %s)\n", last.n, base.n, t.what,
			t.last, t.unit, t.base, t.unit, x, t.max, metOrMissed(x <= t.max))
	}
	fmt.Fprintln(r.out)
}

// readProfile reads and decodes the profile at path; nil if it is empty
// (a profile that never started).
func readProfile(path string) (*profile, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	if len(data) == 0 {
		return nil, nil
	}
	p, err := parseProfile(data)
	if err != nil {
		return nil, fmt.Errorf("bench: profile %s: %w", path, err)
	}
	return p, nil
}

// printDaysProfiles prints, after more than daysBaseDay days, what grew from
// day daysBaseDay to the last: the cycle's CPU and the live heap after the
// day, by area and by the functions that grew most. It reads the profiles
// from their files.
func (r *cycleRun) printDaysProfiles() error {
	last := len(r.results)
	if last <= daysBaseDay {
		return nil
	}
	cpuUnit := func(v int64) string { return time.Duration(v).Round(time.Millisecond).String() }
	heapUnit := func(v int64) string { return fmt.Sprintf("%.1f MiB", float64(v)/(1<<20)) }
	for _, c := range []struct {
		what      string
		prefix    string // of the files' names
		valueName string
		areas     []area
		skip      func(string) bool
		unit      func(int64) string
	}{
		{"the cycle's CPU", "cpu-cycle", "cpu", cycleCPUAreas, nil, cpuUnit},
		{"the live heap after the day", "heap", "inuse_space", cycleHeapAreas, skipAllocator, heapUnit},
	} {
		baseFile, lastFile := fmt.Sprintf("%s-day%d.pprof", c.prefix, daysBaseDay), fmt.Sprintf("%s-day%d.pprof", c.prefix, last)
		var profiles [2]*profile
		for i, name := range []string{baseFile, lastFile} {
			p, err := readProfile(filepath.Join(r.cfg.ProfileDir, name))
			if err != nil && !errors.Is(err, fs.ErrNotExist) {
				return err
			}
			profiles[i] = p
		}
		base, lastP := profiles[0], profiles[1]
		if base == nil || lastP == nil {
			continue // not profiled (another CPU profile was running)
		}
		baseTotal, baseAreas, _, _, err := profileShares(base, nil, c.valueName, c.areas, c.skip)
		if err != nil {
			return err
		}
		lastTotal, lastAreas, _, grew, err := profileShares(lastP, base, c.valueName, c.areas, c.skip)
		if err != nil {
			return err
		}
		lastTotal += baseTotal // profileShares subtracted the base
		for i := range lastAreas {
			lastAreas[i].value += baseAreas[i].value
		}
		fmt.Fprintf(r.out, "What grew from day %d to day %d: %s (%s and %s in %s; sampled):\n", daysBaseDay, last, c.what, baseFile, lastFile, r.cfg.ProfileDir)
		fmt.Fprintf(r.out, "  %12s %12s %7s  %s\n", fmt.Sprintf("day %d", daysBaseDay), fmt.Sprintf("day %d", last), "×", "area (overlapping)")
		fmt.Fprintf(r.out, "  %12s %12s %7s  %s\n", c.unit(baseTotal), c.unit(lastTotal), ratioText(float64(lastTotal), float64(baseTotal)), "all")
		for i := range baseAreas {
			fmt.Fprintf(r.out, "  %12s %12s %7s  %s\n", c.unit(baseAreas[i].value), c.unit(lastAreas[i].value),
				ratioText(float64(lastAreas[i].value), float64(baseAreas[i].value)), baseAreas[i].name)
		}
		fmt.Fprintf(r.out, "  the functions that grew most (flat, day %d − day %d):\n", last, daysBaseDay)
		for _, s := range grew[:min(10, len(grew))] {
			if s.value <= 0 {
				break
			}
			fmt.Fprintf(r.out, "    %12s  %s\n", "+"+c.unit(s.value), s.name)
		}
		fmt.Fprintln(r.out)
	}
	return nil
}
