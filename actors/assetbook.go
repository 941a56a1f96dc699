package actors

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/shopspring/decimal"
	"google.golang.org/protobuf/proto"

	"github.com/acme/mastertrust/domain"
	"github.com/acme/mastertrust/proto/pb"
)

// The asset book: one grain per dealing day and asset. It sums the pot
// groups' parts into the one net order for the custodian, records the
// batch (manifest hash, net order, house residual) before the order goes
// out, resends the order until the custodian reports, and checks the report
// against the batch. Stream "book/<date>/<ISIN>".
type assetBook struct {
	deps   *DealingDeps
	date   domain.Date
	asset  domain.ISIN
	stream systemStream

	batch     *pb.BatchRecorded
	attempts  uint32
	lastSent  time.Time
	execution *pb.ExecutionRecorded
	// refused are the reports refused for this book (ExecutionRefused).
	refused []*pb.ExecutionRefused
}

func (b *assetBook) failure(err error) proto.Message {
	return &pb.AssetBookResponse{Problem: failureProblem(err)}
}

func (b *assetBook) activate(identity string, f *fence) error {
	date, asset, ok := strings.Cut(identity, "/")
	if !ok {
		return fmt.Errorf("asset book identity %q is not <date>/<ISIN>", identity)
	}
	d, err := domain.ParseDate(date)
	if err != nil {
		return err
	}
	if _, ok := b.deps.Catalogue.Asset(domain.ISIN(asset)); !ok {
		return fmt.Errorf("asset book of unknown asset %q", asset)
	}
	b.date, b.asset = d, domain.ISIN(asset)
	b.stream = systemStream{j: b.deps.Journal, name: assetBookStream(d, b.asset), fence: f}
	ctx, cancel := context.WithTimeout(context.Background(), b.deps.Config.StepTimeout)
	defer cancel()
	return b.stream.load(ctx, func(m proto.Message) error {
		switch m := m.(type) {
		case *pb.BatchRecorded:
			b.batch = m
		case *pb.OrderSent:
			b.attempts = m.Attempt
		case *pb.ExecutionRecorded:
			b.execution = m
		case *pb.ExecutionRefused:
			b.refused = append(b.refused, m)
		default:
			return fmt.Errorf("unexpected %T in an asset book", m)
		}
		return nil
	})
}

func (b *assetBook) handle(data []byte) proto.Message {
	req := &pb.AssetBookRequest{}
	if err := proto.Unmarshal(data, req); err != nil {
		return b.failure(fmt.Errorf("unreadable request: %w", err))
	}
	ctx, cancel := context.WithTimeout(context.Background(), b.deps.Config.StepTimeout)
	defer cancel()
	var err error
	switch c := req.Command.(type) {
	case *pb.AssetBookRequest_Send:
		err = b.send(ctx, c.Send.Parts)
	case *pb.AssetBookRequest_RecordExecution:
		err = b.record(ctx, c.RecordExecution)
	case *pb.AssetBookRequest_Status:
	default:
		err = errors.New("unknown asset book command")
	}
	if err != nil {
		return b.failure(err)
	}
	return &pb.AssetBookResponse{Batch: b.batch, Execution: b.execution, Attempts: b.attempts, Refused: b.refused}
}

// send records the batch from the parts (once) and sends or resends the
// custodian order.
func (b *assetBook) send(ctx context.Context, parts []*pb.AssetDayPart) error {
	if b.batch == nil {
		batch, err := b.makeBatch(parts)
		if err != nil {
			return err
		}
		if err := b.stream.append(ctx, batch); err != nil {
			return err
		}
		b.batch = batch
	} else if err := sameParts(b.batch.Parts, parts); err != nil {
		return fmt.Errorf("batch %s was recorded from other parts: %w", b.batchID(), err)
	}
	if b.execution != nil {
		return nil
	}
	if b.batch.Side == pb.Side_SIDE_UNSPECIFIED {
		// Buys and sells cancel out: nothing to send; the day is done.
		e := &pb.ExecutionRecorded{Report: &pb.ExecutionReport{ClOrdId: b.batchID(), Asset: string(b.asset),
			Units: "0", Price: b.batch.Price, Cash: "0.00", DealingDate: b.date.String()}, AtUnixNano: nanosNow(b.deps.Now)}
		if err := b.stream.append(ctx, e); err != nil {
			return err
		}
		b.execution = e
		return nil
	}
	if b.attempts > 0 && time.Since(b.lastSent) < b.deps.Config.ResendInterval {
		return nil
	}
	if b.deps.Custodian == nil {
		return errors.New("this node has no custodian connection")
	}
	order := &pb.CustodianOrder{ClOrdId: b.batchID(), DealingDate: b.date.String(), Asset: string(b.asset),
		Side: b.batch.Side, Units: b.batch.Units}
	// Record the attempt first: a crash after the send then counts it, and a
	// resend is harmless (the custodian answers a repeat with the same report).
	attempt := b.attempts + 1
	if err := b.stream.append(ctx, &pb.OrderSent{ClOrdId: order.ClOrdId, Attempt: attempt, AtUnixNano: nanosNow(b.deps.Now)}); err != nil {
		return err
	}
	b.attempts, b.lastSent = attempt, time.Now()
	if err := b.deps.Custodian.SendOrder(ctx, order, int(attempt)); err != nil {
		// Not fatal: the next send resends.
		b.deps.Logger.Warn("custodian order not sent", "order", order.ClOrdId, "attempt", attempt, "err", err)
	}
	return nil
}

func (b *assetBook) batchID() string { return domain.BatchID(b.date, b.asset) }

// makeBatch sums the parts into the batch and its net order.
func (b *assetBook) makeBatch(parts []*pb.AssetDayPart) (*pb.BatchRecorded, error) {
	if len(parts) == 0 {
		return nil, errors.New("a batch needs at least one part")
	}
	// Parts in group order: the manifest hash is over the groups' hashes in
	// that order (numerically: group 2 before group 10).
	sorted := slices.Clone(parts)
	slices.SortFunc(sorted, func(x, y *pb.AssetDayPart) int { return cmp.Compare(x.Group, y.Group) })
	days := make([]domain.AssetDay, 0, len(parts))
	hashes := make([]string, 0, len(parts))
	groups := map[uint32]bool{}
	for _, p := range sorted {
		if p.Asset != string(b.asset) || p.DealingDate != b.date.String() {
			return nil, fmt.Errorf("part of %s %s in the book of %s %s", p.DealingDate, p.Asset, b.date, b.asset)
		}
		if groups[p.Group] {
			return nil, fmt.Errorf("two parts of group %d", p.Group)
		}
		groups[p.Group] = true
		d, err := decodeAssetDay(p)
		if err != nil {
			return nil, err
		}
		days = append(days, d)
		hashes = append(hashes, fmt.Sprintf("group %d %s", p.Group, p.ManifestSha256))
	}
	sum, err := domain.SumAssetDays(days)
	if err != nil {
		return nil, err
	}
	return &pb.BatchRecorded{Date: b.date.String(), Asset: string(b.asset), Parts: sorted,
		ManifestSha256: domain.ManifestHash(hashes), Side: pb.Side(sum.NetSide()), Units: sum.NetUnits().Abs().String(),
		Price: sum.Price.String(), Cash: sum.NetCash().String(), HouseResidual: sum.HouseResidual().String(),
		Trades: int64(sum.Trades), AtUnixNano: nanosNow(b.deps.Now)}, nil
}

func sameParts(recorded, given []*pb.AssetDayPart) error {
	if len(recorded) != len(given) {
		return fmt.Errorf("%d parts, recorded %d", len(given), len(recorded))
	}
	byGroup := map[uint32]*pb.AssetDayPart{}
	for _, p := range recorded {
		byGroup[p.Group] = p
	}
	for _, p := range given {
		if r := byGroup[p.Group]; r == nil || r.ManifestSha256 != p.ManifestSha256 {
			return fmt.Errorf("group %d's part differs", p.Group)
		}
	}
	return nil
}

// decodeAssetDay reads a part's sums.
func decodeAssetDay(p *pb.AssetDayPart) (domain.AssetDay, error) {
	price, err := domain.ParsePrice(p.Price, domain.PriceDecimalsMax)
	if err != nil {
		return domain.AssetDay{}, err
	}
	units := func(s string) (domain.Units, error) {
		d, err := decimal.NewFromString(s)
		if err != nil {
			return domain.Units{}, err
		}
		return domain.UnitsFromDecimal(d, domain.UnitDecimalsMax)
	}
	money := func(s string) (domain.Money, error) {
		d, err := decimal.NewFromString(s)
		if err != nil {
			return domain.Money{}, err
		}
		return domain.MoneyFromDecimal(d)
	}
	buy, err1 := units(p.BuyUnits)
	sell, err2 := units(p.SellUnits)
	cost, err3 := money(p.PotBuyCost)
	cash, err4 := money(p.PotSellCash)
	if err := errors.Join(err1, err2, err3, err4); err != nil {
		return domain.AssetDay{}, fmt.Errorf("part of group %d: %w", p.Group, err)
	}
	return domain.AssetDay{Asset: domain.ISIN(p.Asset), Price: price, Trades: int(p.Trades), BuyUnits: buy, SellUnits: sell,
		PotBuyCost: cost, PotSellCash: cash}, nil
}

// record records the custodian's report of the batch's order, once. A
// report that does not match the order sent (reportMismatch), or comes
// before any order was sent, is refused: never recorded as the execution,
// so never allocated; kept in the book and the alarms stream for
// investigation, logged and counted. The book goes on waiting for a
// matching report (the cycle resends the order; the custodian answers a
// repeat with its report).
func (b *assetBook) record(ctx context.Context, r *pb.ExecutionReport) error {
	if b.execution != nil && b.execution.Report.GetExecutionId() == r.ExecutionId {
		return nil // a repeated report changes nothing
	}
	reason := "no order was sent for this dealing day and asset"
	if b.batch != nil {
		reason = reportMismatch(b.batchID(), b.asset, b.batch, r)
	}
	if reason != "" {
		return b.refuse(ctx, r, reason)
	}
	if b.execution != nil {
		b.deps.Logger.Error("a second execution report for one order", "order", r.ClOrdId,
			"recorded", b.execution.Report.ExecutionId, "new", r.ExecutionId)
		return nil
	}
	e := &pb.ExecutionRecorded{Report: r, AtUnixNano: nanosNow(b.deps.Now)}
	if err := b.stream.append(ctx, e); err != nil {
		return err
	}
	b.execution = e
	return nil
}

// refuse keeps a report that does not match for investigation: the alarms
// stream first (so that a crash before the book's record leaves the alarm,
// and the redelivered report finds it there), then the book.
func (b *assetBook) refuse(ctx context.Context, r *pb.ExecutionReport, reason string) error {
	for _, x := range b.refused {
		if x.GetReport().GetExecutionId() == r.ExecutionId {
			return nil // refused already
		}
	}
	refused := &pb.ExecutionRefused{Report: r, Reason: reason, AtUnixNano: nanosNow(b.deps.Now)}
	if _, err := raiseAlarm(ctx, b.deps.Journal, refused); err != nil {
		return err
	}
	if err := b.stream.append(ctx, refused); err != nil {
		return err
	}
	b.refused = append(b.refused, refused)
	b.deps.executionRefused(r, reason)
	return nil
}

// reportMismatch says how a report differs from the order the batch sent
// ("" if it matches): its ClOrdID and asset, side, units, the day's price
// (the batch's, which every pot's trade was priced at) and the cash.
func reportMismatch(batchID string, asset domain.ISIN, batch *pb.BatchRecorded, r *pb.ExecutionReport) string {
	var diffs []string
	eq := func(what, want, got string) {
		wd, err1 := decimal.NewFromString(want)
		gd, err2 := decimal.NewFromString(got)
		if err1 != nil || err2 != nil || !wd.Equal(gd) {
			diffs = append(diffs, fmt.Sprintf("%s %s, order %s", what, clip(got), want))
		}
	}
	if r.ClOrdId != batchID || r.Asset != string(asset) {
		diffs = append(diffs, fmt.Sprintf("order %s of %s, sent %s of %s", clip(r.ClOrdId), clip(r.Asset), batchID, asset))
	}
	if r.DealingDate != batch.Date {
		diffs = append(diffs, fmt.Sprintf("dealing date %s, order %s", clip(r.DealingDate), batch.Date))
	}
	if r.Side != batch.Side {
		diffs = append(diffs, fmt.Sprintf("side %v, order %v", r.Side, batch.Side))
	}
	eq("units", batch.Units, r.Units)
	eq("price", batch.Price, r.Price)
	eq("cash", batch.Cash, r.Cash)
	return strings.Join(diffs, "; ")
}

// clipRunesMax bounds what a refusal quotes of a report's own text: the
// sender chose it, and it ends up in logs and reconciliation reports.
const clipRunesMax = 40

// clip quotes s, cut to clipRunesMax runes.
func clip(s string) string {
	if r := []rune(s); len(r) > clipRunesMax {
		s = string(r[:clipRunesMax]) + "…"
	}
	return strconv.Quote(s)
}
