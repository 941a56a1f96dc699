package load

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"runtime/pprof"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/acme/mastertrust/domain"
)

// Config says where and how a workload runs.
type Config struct {
	// URLs are the gateways' base URLs, called in turn.
	URLs []string
	// Token signs a member's token, or the operator's for member "".
	Token func(member string) (string, error)
	// Calendar finds the next dealing day when a day's requests name none.
	Calendar *domain.Calendar
	// Clients is how many members' requests are in flight at once
	// (default 64).
	Clients int
	// Retry is how long one request is sent again while the platform
	// cannot take it (default 2 minutes).
	Retry time.Duration
	// SettleDays are the dealing days run after the workload's last, with
	// its prices and no requests, so that every trade settles and every
	// withdrawal is paid before the checks (default 5).
	SettleDays int
	// Log receives a line per day and per problem (default: discarded).
	Log *slog.Logger
	// Progress, if set, shows a progress bar of each phase (the pots'
	// opening, each day's requests and cycles, the checks) with its ETA.
	Progress io.Writer
	// Chaos, if set, runs beside each of the workload's days' requests
	// (day from 1), and the day's cycle waits for it to return: it may
	// kill and restart the platform's processes. Its error ends the run.
	Chaos func(ctx context.Context, day int) error
	// Processes, if set, names the platform's processes and their pids,
	// whose resident memory is sampled with the run's own.
	Processes func() map[string]int
	// ProfileDir, if set, receives a CPU profile of this process for each
	// day (day-N.cpu.pprof; warm-up days day-wN, settling days day-sN) and its heap at
	// the day's end (day-N.heap.pprof): with --start dev, the platform's
	// and the run's together.
	ProfileDir string
	// Clock, if set, is the clock of the platform the run drives, which
	// the run turns to each dealing day's morning before its requests
	// (DayClock): set it for a platform the run starts itself.
	Clock *DayClock
	// Racing is the fraction of each day's members (the last in the
	// workload's order) whose requests race the cut-off: they are sent
	// while the day's cycle runs rather than before it, so that each is
	// dealt that day or the next, whichever side of the cut-off it lands.
	Racing float64
}

func (c *Config) defaults() {
	if c.Clients <= 0 {
		c.Clients = 64
	}
	if c.Retry <= 0 {
		c.Retry = 2 * time.Minute
	}
	if c.SettleDays <= 0 {
		c.SettleDays = 5
	}
	if c.Log == nil {
		c.Log = slog.New(slog.DiscardHandler)
	}
}

// ack is an acknowledged request, as the platform answered it.
type ack struct {
	kind   Kind
	key    string
	amount string // a contribution's, a withdrawal's or a buy's
	// orderID is the order placed, or cancelled; movementID the
	// contribution or withdrawal made.
	orderID, movementID string
	// asset, for a buy by amount.
	asset string
}

// memberLog is what one member was told. Each member's requests of a day
// are sent by one worker, so its log needs no lock.
type memberLog struct {
	acks []ack
	// orderOfKey is the order each acknowledged order request placed, for
	// the cancellations that name it.
	orderOfKey map[string]string
}

// run is one run's state.
type run struct {
	cfg Config
	id  string // names the run's reconciliations
	// operatorToken is for the sampler's calls, which are not retried.
	operatorToken string
	c             *client
	metrics       *recorder
	members       map[string]*memberLog
	res           *Result

	mu    sync.Mutex
	dates map[string]bool // dealing dates the answers named, after the last cycle's
	// racing is the cut-off requests race now (date "": none), and where
	// they landed: dealt that day or the next.
	racing struct {
		date             string
		sameDay, nextDay int
	}
}

// Run replays the workload r against the platform of cfg, checks what it
// was told, and returns the result; an error is a run that could not go
// on (a cycle that failed, a request that never got an answer), not a
// check that failed, which the result counts.
func Run(ctx context.Context, cfg Config, r *Reader) (_ *Result, err error) {
	cfg.defaults()
	if len(cfg.URLs) == 0 || cfg.Token == nil || cfg.Calendar == nil {
		return nil, errors.New("load: run needs gateway URLs, a token signer and a calendar")
	}
	if cfg.ProfileDir != "" {
		// Made now, not found missing after the pots have been opened.
		if err := os.MkdirAll(cfg.ProfileDir, 0o755); err != nil {
			return nil, fmt.Errorf("load: profile: %w", err)
		}
	}
	m := newRecorder()
	transport := http.DefaultTransport.(*http.Transport).Clone()
	transport.MaxIdleConnsPerHost = cfg.Clients * 2
	ru := &run{cfg: cfg, id: strconv.FormatInt(time.Now().UnixNano(), 36), metrics: m, members: map[string]*memberLog{}, dates: map[string]bool{},
		c:   &client{urls: trimmed(cfg.URLs), http: &http.Client{Transport: transport, Timeout: 30 * time.Second}, token: cfg.Token, retry: cfg.Retry, metrics: m},
		res: &Result{Summary: Summary{Members: r.Header.Members, Seed: r.Header.Seed}, RefusedByCode: map[string]int64{}}}
	if ru.operatorToken, err = cfg.Token(""); err != nil {
		return nil, err
	}
	start := time.Now()
	sampling, stopSampling := context.WithCancel(ctx)
	sampled := make(chan struct{})
	go func() {
		defer close(sampled)
		ru.sample(sampling)
	}()
	defer func() {
		stopSampling()
		<-sampled
		ru.res.Summary.DurationSeconds = time.Since(start).Seconds()
		ru.res.Windows = m.windows(windowWidth)
		ru.res.Samples = m.takeSamples()
		ru.res.ByStatus, ru.res.Summary.Errors5xx = m.byStatus()
	}()

	opens, err := r.Opens()
	if err != nil {
		return nil, err
	}
	for _, o := range opens {
		ru.members[o.Member] = &memberLog{orderOfKey: map[string]string{}}
	}
	t := time.Now()
	if err := ru.send(ctx, "opening pots", opens); err != nil {
		return ru.res, err
	}
	cfg.Log.Info("load: pots opened", "pots", len(opens), "took", time.Since(t).Round(time.Millisecond))
	ru.res.OpeningLatencies = m.phaseLatencies()

	var last domain.Date // the last dealing day a cycle ran for
	var prices map[string]string
	for {
		day, err := r.NextDay()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return ru.res, err
		}
		prices = day.Prices
		if last, err = ru.day(ctx, day, last); err != nil {
			return ru.res, err
		}
	}
	for i := range cfg.SettleDays {
		if last, err = ru.day(ctx, Day{Number: -(i + 1), Prices: prices, settling: true}, last); err != nil {
			return ru.res, err
		}
	}
	deep, err := ru.reconcile(ctx, true, "load-"+ru.id+"-deep")
	if err != nil {
		return ru.res, err
	}
	ru.res.Summary.Breaks += deep
	ru.res.DeepBreaks = deep
	m.newPhase()
	if err := ru.check(ctx); err != nil {
		return ru.res, err
	}
	ru.res.Summary.Checked = true
	ru.res.CheckingLatencies = m.phaseLatencies()
	return ru.res, nil
}

func trimmed(urls []string) []string {
	out := make([]string, len(urls))
	for i, u := range urls {
		out[i] = strings.TrimRight(u, "/")
	}
	return out
}

// day sends a day's requests, then runs the cycle of each dealing date
// their answers named (or of the next dealing day, if none did) with the
// day's prices, and a fast reconciliation. A settling day sends nothing
// and runs the next dealing day.
func (ru *run) day(ctx context.Context, d Day, last domain.Date) (domain.Date, error) {
	ru.metrics.newPhase()
	dr := DayResult{Number: d.Number, WarmUp: d.WarmUp(), Requests: len(d.Requests)}
	stopProfile, err := ru.profileDay("day-" + dr.shortName())
	if err != nil {
		return last, err
	}
	defer stopProfile()
	t := time.Now()
	before := ru.res.Summary.Acknowledged
	label := dr.name()
	chaos := make(chan error, 1)
	if ru.cfg.Chaos != nil && dr.workload() {
		go func() { chaos <- ru.cfg.Chaos(ctx, d.Number) }()
	} else {
		chaos <- nil
	}
	if ru.cfg.Clock != nil {
		ru.cfg.Clock.turnTo(ru.nextDealingDay(last))
	}
	early, racing := splitRacing(d.Requests, ru.cfg.Racing)
	sendErr := ru.send(ctx, label+": requests", early)
	if err := errors.Join(sendErr, <-chaos); err != nil {
		return last, err
	}
	dr.RequestSeconds = time.Since(t).Seconds()

	dates, err := ru.datesAfter(last)
	if err != nil {
		return last, err
	}
	if len(dates) == 0 {
		dates = []domain.Date{ru.nextDealingDay(last)}
	}
	t = time.Now()
	dr.StepSeconds = map[string]float64{}
	for i, date := range dates {
		var cs cycleJSON
		var err error
		if i == 0 && len(racing) > 0 {
			cs, err = ru.cycleRaced(ctx, label, date, d.Prices, racing, &dr)
		} else {
			cs, err = ru.cycle(ctx, fmt.Sprintf("%s: cycle %s", label, date), date, d.Prices, nil)
		}
		if err != nil {
			return last, err
		}
		dr.Dates = append(dr.Dates, date.String())
		dr.Trades += cs.Trades
		dr.TradesSettled += cs.TradesSettled
		for _, st := range cs.Steps {
			dr.StepSeconds[st.Name] += st.Ms / 1000
		}
		last = date
	}
	dr.CycleSeconds = time.Since(t).Seconds()
	dr.Acknowledged = ru.res.Summary.Acknowledged - before
	t = time.Now()
	breaks, err := ru.reconcile(ctx, false, fmt.Sprintf("load-%s-day%d-%s", ru.id, d.Number, last))
	if err != nil {
		return last, err
	}
	dr.ReconcileSeconds, dr.Breaks = time.Since(t).Seconds(), breaks
	ru.res.Summary.Breaks += breaks
	dr.Latencies = ru.metrics.phaseLatencies()
	ru.res.Days = append(ru.res.Days, dr)
	if dr.workload() {
		ru.res.Summary.Days++
	} else if dr.WarmUp {
		ru.res.Summary.WarmUpDays++
	}
	ru.cfg.Log.Info("load: day", "day", label, "dates", dr.Dates, "requests", dr.Requests, "acknowledged", dr.Acknowledged,
		"requests_s", round2(dr.RequestSeconds), "trades", dr.Trades, "settled", dr.TradesSettled,
		"cycle_s", round2(dr.CycleSeconds), "breaks", breaks)
	return last, nil
}

// nextDealingDay is the dealing day after last, the last one a cycle ran
// for (zero: none yet, so the one the platform's clock is in).
func (ru *run) nextDealingDay(last domain.Date) domain.Date {
	if !last.IsZero() {
		return ru.cfg.Calendar.NextDealingDay(last)
	}
	now := time.Now()
	if ru.cfg.Clock != nil {
		now = ru.cfg.Clock.Now()
	}
	return ru.cfg.Calendar.DealingDayFor(now)
}

func round2(f float64) float64 { return float64(int64(f*100+0.5)) / 100 }

// cycleRaced runs date's cycle while the racing requests are sent: the
// first half of their members' as the cycle starts, the rest once the
// cycle has reached its cut-off, so that they land on either side of it.
func (ru *run) cycleRaced(ctx context.Context, label string, date domain.Date, prices map[string]string, racing []Request, dr *DayResult) (cycleJSON, error) {
	ru.mu.Lock()
	ru.racing.date = date.String()
	ru.mu.Unlock()
	var wg sync.WaitGroup
	var mu sync.Mutex
	var sendErr error
	sendRacing := func(reqs []Request) {
		wg.Go(func() {
			if err := ru.send(ctx, "", reqs); err != nil {
				mu.Lock()
				sendErr = errors.Join(sendErr, err)
				mu.Unlock()
			}
		})
	}
	first, rest := splitRacing(racing, 0.5)
	sendRacing(first)
	cs, err := ru.cycle(ctx, fmt.Sprintf("%s: cycle %s", label, date), date, prices, func() { sendRacing(rest) })
	wg.Wait()
	ru.mu.Lock()
	dr.Racing, dr.RacingSameDay, dr.RacingNextDay = len(racing), ru.racing.sameDay, ru.racing.nextDay
	ru.racing.date, ru.racing.sameDay, ru.racing.nextDay = "", 0, 0
	ru.mu.Unlock()
	return cs, errors.Join(err, sendErr)
}

// profileDay starts a day's CPU profile in Config.ProfileDir, if set, as
// <day>.cpu.pprof, and returns what stops it.
func (ru *run) profileDay(day string) (stop func(), err error) {
	if ru.cfg.ProfileDir == "" {
		return func() {}, nil
	}
	name := day + ".cpu.pprof"
	f, err := os.Create(filepath.Join(ru.cfg.ProfileDir, name))
	if err != nil {
		return nil, fmt.Errorf("load: profile: %w", err)
	}
	if err := pprof.StartCPUProfile(f); err != nil {
		f.Close()
		return nil, fmt.Errorf("load: profile: %w", err)
	}
	return func() {
		pprof.StopCPUProfile()
		f.Close()
		// The heap as of the day's last collection: what the days keep.
		if h, err := os.Create(filepath.Join(ru.cfg.ProfileDir, strings.Replace(name, ".cpu.", ".heap.", 1))); err == nil {
			pprof.Lookup("heap").WriteTo(h, 0)
			h.Close()
		}
	}, nil
}

// splitRacing splits a day's requests into those sent before its cycle and
// those of the last fraction of its members, sent while it runs; each
// member's requests stay together and in order.
func splitRacing(reqs []Request, fraction float64) (early, racing []Request) {
	var members []string
	seen := map[string]bool{}
	for _, r := range reqs {
		if !seen[r.Member] {
			seen[r.Member] = true
			members = append(members, r.Member)
		}
	}
	n := int(fraction * float64(len(members)))
	if n <= 0 {
		return reqs, nil
	}
	late := map[string]bool{}
	for _, m := range members[len(members)-n:] {
		late[m] = true
	}
	for _, r := range reqs {
		if late[r.Member] {
			racing = append(racing, r)
		} else {
			early = append(early, r)
		}
	}
	return early, racing
}

// datesAfter are the dealing dates the answers named after last, in
// order; they are forgotten once passed, so that a request answered during
// a cycle with the next dealing day is dealt the next day.
func (ru *run) datesAfter(last domain.Date) ([]domain.Date, error) {
	ru.mu.Lock()
	defer ru.mu.Unlock()
	var dates []domain.Date
	for s := range ru.dates {
		date, err := domain.ParseDate(s)
		if err != nil {
			return nil, fmt.Errorf("load: a dealing date %q: %w", s, err)
		}
		if last.IsZero() || date.After(last) {
			dates = append(dates, date)
		} else {
			delete(ru.dates, s)
		}
	}
	slices.SortFunc(dates, func(a, b domain.Date) int { return a.Compare(b) })
	return dates, nil
}

// send sends requests, each member's in order, Clients members at once;
// phase names its progress bar ("": none, for requests sent beside a
// cycle, which has its own).
func (ru *run) send(ctx context.Context, phase string, reqs []Request) error {
	if len(reqs) == 0 {
		return nil
	}
	var bar bar
	if phase != "" {
		bar = ru.bar(phase, int64(len(reqs)))
		defer bar.finish()
	}
	var order []string
	byMember := map[string][]Request{}
	for _, r := range reqs {
		if _, ok := byMember[r.Member]; !ok {
			order = append(order, r.Member)
		}
		byMember[r.Member] = append(byMember[r.Member], r)
	}
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	work := make(chan string)
	var wg sync.WaitGroup
	for range min(ru.cfg.Clients, max(len(order), 1)) {
		wg.Go(func() {
			for m := range work {
				for _, r := range byMember[m] {
					if err := ru.request(ctx, r); err != nil {
						cancel(err)
						return
					}
					bar.add(1)
				}
			}
		})
	}
feed:
	for _, m := range order {
		select {
		case work <- m:
		case <-ctx.Done():
			break feed
		}
	}
	close(work)
	wg.Wait()
	return context.Cause(ctx)
}

// movementJSON and orderJSON are the parts of the API's answers the run
// reads.
type movementJSON struct {
	ID          string      `json:"id"`
	Status      string      `json:"status"`
	Amount      string      `json:"amount"`
	DealingDate string      `json:"dealingDate"`
	Orders      []orderJSON `json:"orders"`
}

type orderJSON struct {
	ID            string `json:"id"`
	Type          string `json:"type"`
	Status        string `json:"status"`
	DealingDate   string `json:"dealingDate"`
	MovementID    string `json:"movementId"`
	ContractNotes []struct {
		TradeID       string `json:"tradeId"`
		Asset         string `json:"asset"`
		Side          string `json:"side"`
		Units         string `json:"units"`
		Consideration string `json:"consideration"`
	} `json:"contractNotes"`
	Trades []struct {
		Asset  string `json:"asset"`
		Side   string `json:"side"`
		Amount string `json:"amount"`
	} `json:"trades"`
}

// request sends one request until it has a final answer and records an
// acknowledged one.
func (ru *run) request(ctx context.Context, r Request) error {
	log := ru.members[r.Member]
	if log == nil {
		return fmt.Errorf("load: a request of %s, whose pot the workload does not open", r.Member)
	}
	pot := "/v1/pots/" + r.Member
	var method, path, key string
	var body any
	switch r.Kind {
	case KindOpen:
		method, path, key = http.MethodPost, "/v1/pots", "open-"+r.Member
		b := map[string]any{"memberId": r.Member}
		if r.Args[0] != "" {
			b["riskProfile"] = r.Args[0]
		}
		body = b
	case KindContribute:
		method, path, key, body = http.MethodPost, pot+"/contributions", r.Key, map[string]string{"amount": r.Args[0]}
	case KindWithdraw:
		method, path, key, body = http.MethodPost, pot+"/withdrawals", r.Key, map[string]string{"amount": r.Args[0]}
	case KindBuy:
		method, path, key, body = http.MethodPost, pot+"/orders", r.Key, map[string]string{"type": "buy", "asset": r.Args[0], "amount": r.Args[1]}
	case KindSell:
		method, path, key, body = http.MethodPost, pot+"/orders", r.Key, map[string]string{"type": "sell", "asset": r.Args[0], r.Args[1]: r.Args[2]}
	case KindSwitch:
		method, path, key, body = http.MethodPost, pot+"/orders", r.Key, map[string]string{"type": "switch", "from": r.Args[0], "to": r.Args[1], "percent": r.Args[2]}
	case KindProfile:
		profile := r.Args[0]
		if profile == "-" {
			profile = ""
		}
		method, path, key, body = http.MethodPut, pot+"/risk-profile", r.Key, map[string]string{"riskProfile": profile}
	case KindCancel:
		order, ok := log.orderOfKey[r.Args[0]]
		if !ok {
			ru.count(func(s *Summary) { s.Skipped++ })
			return nil // the order it names was refused
		}
		method, path, key = http.MethodDelete, pot+"/orders/"+order, r.Key
	default:
		return fmt.Errorf("load: request kind %q", r.Kind)
	}
	a, err := ru.c.call(ctx, string(r.Kind), r.Member, method, path, key, body)
	if err != nil {
		return fmt.Errorf("load: %s %s of %s: %w", r.Kind, key, r.Member, err)
	}
	if a.status/100 != 2 {
		code := problemCode(a.body)
		if a.status != http.StatusUnprocessableEntity && a.status != http.StatusConflict {
			// A workload's requests are well formed: any other refusal is
			// the platform's or the workload's mistake, and ends the run.
			return fmt.Errorf("load: %s %s of %s: %d %s", r.Kind, key, r.Member, a.status, firstLine(a.body))
		}
		ru.count(func(s *Summary) { s.Refused++ })
		ru.mu.Lock()
		ru.res.RefusedByCode[string(r.Kind)+" "+code]++
		ru.mu.Unlock()
		return nil
	}
	ac := ack{kind: r.Kind, key: key}
	var named []string // the dealing dates the answer named
	switch r.Kind {
	case KindContribute, KindWithdraw:
		var mv movementJSON
		if err := json.Unmarshal(a.body, &mv); err != nil {
			return fmt.Errorf("load: %s %s of %s: %w", r.Kind, key, r.Member, err)
		}
		ac.movementID, ac.amount = mv.ID, r.Args[0]
		for _, o := range mv.Orders {
			named = append(named, o.DealingDate)
		}
	case KindBuy, KindSell, KindSwitch, KindCancel:
		var o orderJSON
		if err := json.Unmarshal(a.body, &o); err != nil {
			return fmt.Errorf("load: %s %s of %s: %w", r.Kind, key, r.Member, err)
		}
		ac.orderID = o.ID
		if r.Kind == KindBuy {
			ac.asset, ac.amount = r.Args[0], r.Args[1]
		}
		if r.Kind != KindCancel {
			log.orderOfKey[r.Key] = o.ID
			named = append(named, o.DealingDate)
		}
	}
	log.acks = append(log.acks, ac)
	ru.count(func(s *Summary) { s.Acknowledged++ })
	ru.dealtOn(named)
	return nil
}

func (ru *run) count(f func(*Summary)) {
	ru.mu.Lock()
	defer ru.mu.Unlock()
	f(&ru.res.Summary)
}

// dealtOn notes the dealing dates an acknowledged request named, and,
// while requests race a cut-off, on which side of it the request landed.
func (ru *run) dealtOn(dates []string) {
	ru.mu.Lock()
	defer ru.mu.Unlock()
	named, later := false, false
	for _, d := range dates {
		if d != "" {
			ru.dates[d] = true
			named, later = true, later || d > ru.racing.date // ISO dates sort as text
		}
	}
	switch {
	case ru.racing.date == "" || !named:
	case later:
		ru.racing.nextDay++
	default:
		ru.racing.sameDay++
	}
}

// cycleJSON is the part of a cycle's summary the run reads.
type cycleJSON struct {
	Status  string `json:"status"`
	Step    string `json:"step"`
	Problem *struct {
		Code   string `json:"code"`
		Detail string `json:"detail"`
	} `json:"problem"`
	Trades        int64 `json:"trades"`
	TradesSettled int64 `json:"tradesSettled"`
	Steps         []struct {
		Name string  `json:"name"`
		Ms   float64 `json:"ms"`
	} `json:"steps"`
	Progress *struct {
		Done  int64 `json:"done"`
		Total int64 `json:"total"`
	} `json:"progress"`
}

// pollInterval is how often a running cycle or reconciliation is asked how
// it goes.
const pollInterval = 100 * time.Millisecond

// cycle posts date's prices and runs its cycle to the end. cutOff, if not
// nil, is called once the cycle is seen at its cut-off or a later step (or
// complete).
func (ru *run) cycle(ctx context.Context, phase string, date domain.Date, prices map[string]string, cutOff func()) (cycleJSON, error) {
	bar := ru.bar(phase, -1)
	defer bar.finish()
	a, err := ru.c.call(ctx, "prices", "", http.MethodPost, "/v1/prices", "", map[string]any{"date": date.String(), "prices": prices})
	if err != nil {
		return cycleJSON{}, err
	}
	if a.status != http.StatusOK && !(a.status == http.StatusUnprocessableEntity && problemCode(a.body) == "prices-used") {
		return cycleJSON{}, fmt.Errorf("load: prices of %s: %d %s", date, a.status, firstLine(a.body))
	}
	a, err = ru.c.call(ctx, "cycle", "", http.MethodPost, "/v1/cycles/"+date.String()+"/run", "", map[string]any{"rebalance": true})
	if err != nil {
		return cycleJSON{}, err
	}
	if a.status/100 != 2 {
		return cycleJSON{}, fmt.Errorf("load: cycle of %s: %d %s", date, a.status, firstLine(a.body))
	}
	var cs cycleJSON
	for {
		if err := json.Unmarshal(a.body, &cs); err != nil {
			return cs, fmt.Errorf("load: cycle of %s: %w", date, err)
		}
		if cutOff != nil && (cs.Status == "complete" || (cs.Step != "" && cs.Step != "settle")) {
			cutOff()
			cutOff = nil // once
		}
		switch cs.Status {
		case "complete":
			return cs, nil
		case "failed":
			return cs, fmt.Errorf("load: cycle of %s failed at %s: %+v", date, cs.Step, cs.Problem)
		}
		step := phase + ": " + cs.Step
		if cs.Progress != nil {
			step += fmt.Sprintf(" %d/%d", cs.Progress.Done, cs.Progress.Total)
		}
		bar.describe(step)
		select {
		case <-ctx.Done():
			return cs, ctx.Err()
		case <-time.After(pollInterval):
		}
		if a, err = ru.c.call(ctx, "cycle", "", http.MethodGet, "/v1/cycles/"+date.String(), "", nil); err != nil {
			return cs, err
		}
	}
}

// reconcile runs a reconciliation (deep or fast) to the end and returns its
// breaks, internal and external.
func (ru *run) reconcile(ctx context.Context, deep bool, key string) (int64, error) {
	a, err := ru.c.call(ctx, "reconcile", "", http.MethodPost, "/v1/reconciliations", key, map[string]any{"deep": deep})
	if err != nil {
		return 0, err
	}
	for {
		if a.status/100 != 2 {
			return 0, fmt.Errorf("load: reconciliation %s: %d %s", key, a.status, firstLine(a.body))
		}
		var rep struct {
			Status   string `json:"status"`
			Summary  string `json:"summary"`
			Internal struct {
				Breaks []json.RawMessage `json:"breaks"`
			} `json:"internal"`
			External struct {
				Breaks []json.RawMessage `json:"breaks"`
			} `json:"external"`
		}
		if err := json.Unmarshal(a.body, &rep); err != nil {
			return 0, fmt.Errorf("load: reconciliation %s: %w", key, err)
		}
		switch rep.Status {
		case "complete":
			breaks := int64(len(rep.Internal.Breaks) + len(rep.External.Breaks))
			if breaks > 0 {
				ru.cfg.Log.Error("load: reconciliation breaks", "id", key, "summary", rep.Summary)
				ru.res.BreakSummaries = append(ru.res.BreakSummaries, rep.Summary)
			}
			return breaks, nil
		case "failed":
			return 0, fmt.Errorf("load: reconciliation %s failed: %s", key, rep.Summary)
		}
		select {
		case <-ctx.Done():
			return 0, ctx.Err()
		case <-time.After(pollInterval):
		}
		if a, err = ru.c.call(ctx, "reconcile", "", http.MethodGet, "/v1/reconciliations/"+key, "", nil); err != nil {
			return 0, err
		}
	}
}
