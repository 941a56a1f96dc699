package load

import (
	"fmt"
	"io"
	"math"
	"math/rand/v2"

	"github.com/acme/mastertrust/domain"
)

// Rates are the chances, per member and dealing day, of each ad hoc
// request; the monthly payroll contribution comes on top.
type Rates struct {
	Contribution float64 // an ad hoc contribution, £10–£500
	Withdrawal   float64 // £10–£100
	Buy          float64 // £5–£50 of one asset
	Sell         float64 // one asset, by units, amount or percent
	Switch       float64 // a percent of one asset into another
	Profile      float64 // a new risk profile, or none
	// Cancel is the chance that a buy is cancelled the same day.
	Cancel float64
}

// DefaultRates: a member pays in monthly and acts a few times a year.
var DefaultRates = Rates{Contribution: 0.01, Withdrawal: 0.002, Buy: 0.01, Sell: 0.01, Switch: 0.003, Profile: 0.001, Cancel: 0.2}

// GenConfig says what Generate writes.
type GenConfig struct {
	Members, Days int
	Seed          int64
	Rates         Rates
	// Catalogue gives the assets, their price places and the profiles.
	// Default domain.DefaultCatalogue().
	Catalogue *domain.Catalogue
	// SelfDirected is the share of members without a profile (default
	// 0.1); the others take the catalogue's profiles in turn.
	SelfDirected float64
	// WarmUpDays are dealing days before day 1 (numbered 1-WarmUpDays to
	// 0), so that the workload's days meet a going scheme rather than one
	// opened that morning: on the first, every member also pays in the pot
	// it brings (£1,000–£30,000), and each has its ordinary requests and
	// payrolls. With at least five, day 1 finds every pot invested and its
	// opening trades settled (T+4 at most), and from day 1 each day settles
	// the trades of ordinary days before it, as day 30 does.
	WarmUpDays int
}

// openingKey is the idempotency key of a member's opening balance.
const openingKey = "opening"

// payDays is how many dealing days a month's payroll is spread over: each
// member pays on one of them, month after month.
const payDays = 21

// MemberID is the id of the workload's member n (from 1).
func MemberID(n int) string { return fmt.Sprintf("L%07d", n) }

// Generate writes the workload of cfg to w: every member's pot, then each
// day's prices (a seeded random walk of every asset, 1% a day with a shock
// of ±5% one day in fifty) and requests (each member's payroll on its pay
// day, and the rates' ad hoc requests). The same config writes the same
// bytes.
func Generate(w io.Writer, cfg GenConfig) error {
	if cfg.Members < 1 || cfg.Days < 1 {
		return fmt.Errorf("load: generate: members %d and days %d must be at least 1", cfg.Members, cfg.Days)
	}
	cat := cfg.Catalogue
	if cat == nil {
		cat = domain.DefaultCatalogue()
	}
	if cfg.SelfDirected == 0 {
		cfg.SelfDirected = 0.1
	}
	var profiles []string
	for _, p := range cat.Profiles() {
		profiles = append(profiles, p.Name)
	}
	var assets []string
	places := map[string]int32{}
	for _, a := range cat.Assets() {
		assets = append(assets, string(a.ISIN))
		places[string(a.ISIN)] = a.PriceDecimals
	}
	if cfg.WarmUpDays < 0 {
		return fmt.Errorf("load: generate: warm-up days %d must not be negative", cfg.WarmUpDays)
	}
	out := NewWriter(w, Header{Members: cfg.Members, Days: cfg.Days, Seed: cfg.Seed, WarmUp: cfg.WarmUpDays})
	rng := rand.New(rand.NewPCG(uint64(cfg.Seed), 0x6d61737465727472))
	pay := make([]int32, cfg.Members) // each member's payroll in pounds
	payDay := make([]uint8, cfg.Members)
	for i := range cfg.Members {
		profile := ""
		if rng.Float64() >= cfg.SelfDirected && len(profiles) > 0 {
			profile = profiles[i%len(profiles)]
		}
		out.Open(MemberID(i+1), profile)
		pay[i] = int32(50 + rng.IntN(951))
		payDay[i] = uint8(rng.IntN(payDays))
	}
	price := map[string]float64{}
	for _, a := range assets {
		price[a] = 1 + rng.Float64()
	}
	first := 1 - cfg.WarmUpDays
	// The opening balances have a generator of their own, so that a
	// workload without warm-up days is what it was before they existed.
	balances := rand.New(rand.NewPCG(uint64(cfg.Seed), 0x6f70656e696e67))
	for day := first; day <= cfg.Days; day++ {
		rng := rand.New(rand.NewPCG(uint64(cfg.Seed), uint64(int64(day))))
		if day > first {
			for _, a := range assets {
				step := rng.NormFloat64() * 0.01
				if rng.IntN(50) == 0 {
					step += 0.05 * float64(1-2*rng.IntN(2))
				}
				price[a] *= math.Exp(step)
			}
		}
		text := map[string]string{}
		for _, a := range assets {
			text[a] = fmt.Sprintf("%.*f", places[a], max(price[a], 0.01))
		}
		out.Day(day, assets, text)
		for i := range cfg.Members {
			m := MemberID(i + 1)
			n := 0
			key := func() string {
				n++
				return fmt.Sprintf("d%d-%d", day, n)
			}
			req := func(k Kind, args ...string) string {
				r := Request{Kind: k, Member: m, Key: key(), Args: args}
				out.Request(r)
				return r.Key
			}
			pick := func() string { return assets[rng.IntN(len(assets))] }
			if day == first && day < 1 {
				out.Request(Request{Kind: KindContribute, Member: m, Key: openingKey, Args: []string{pounds(balances, 1000, 30000)}})
			}
			if payDayOf(day) == int(payDay[i]) {
				req(KindContribute, fmt.Sprintf("%d.00", pay[i]))
			}
			r := cfg.Rates
			if rng.Float64() < r.Contribution {
				req(KindContribute, pounds(rng, 10, 500))
			}
			if rng.Float64() < r.Buy {
				buy := req(KindBuy, pick(), pounds(rng, 5, 50))
				if rng.Float64() < r.Cancel {
					req(KindCancel, buy)
				}
			}
			if rng.Float64() < r.Sell {
				switch rng.IntN(3) {
				case 0:
					req(KindSell, pick(), "units", "1")
				case 1:
					req(KindSell, pick(), "amount", pounds(rng, 5, 30))
				default:
					req(KindSell, pick(), "percent", []string{"10", "25", "50"}[rng.IntN(3)])
				}
			}
			if rng.Float64() < r.Switch {
				from, to := pick(), pick()
				if from != to {
					req(KindSwitch, from, to, []string{"25", "50", "100"}[rng.IntN(3)])
				}
			}
			if rng.Float64() < r.Withdrawal {
				req(KindWithdraw, pounds(rng, 10, 100))
			}
			if rng.Float64() < r.Profile && len(profiles) > 0 {
				p := "-"
				if k := rng.IntN(len(profiles) + 1); k < len(profiles) {
					p = profiles[k]
				}
				req(KindProfile, p)
			}
		}
	}
	return out.Close()
}

// payDayOf is which of the payroll's days day is (warm-up days too).
func payDayOf(day int) int { return ((day-1)%payDays + payDays) % payDays }

// pounds is a whole number of pounds and pence between lo and hi pounds.
func pounds(rng *rand.Rand, lo, hi int) string {
	p := lo*100 + rng.IntN((hi-lo)*100+1)
	return fmt.Sprintf("%d.%02d", p/100, p%100)
}
