package actors

import (
	"errors"
	"fmt"

	"github.com/acme/mastertrust/codec"
	"github.com/acme/mastertrust/domain"
	"github.com/acme/mastertrust/proto/pb"
)

// errBadRequest marks a request the pot cannot even read as a command (a
// malformed amount, an unknown order type): the gateway validates first, so
// this is the domain's second line of defence.
var errBadRequest = errors.New("actors: bad request")

// command converts a wire request into a domain command. The bool reports
// whether the request is a command: a query returns (nil, false, nil).
func command(req *pb.PotRequest) (domain.Command, bool, error) {
	key := domain.Key(req.IdempotencyKey)
	switch c := req.Command.(type) {
	case *pb.PotRequest_OpenPot:
		return domain.OpenPot{Key: key, Profile: c.OpenPot.Profile}, true, nil
	case *pb.PotRequest_Contribute:
		amount, err := domain.ParseAmount(c.Contribute.Amount)
		return domain.Contribute{Key: key, Amount: amount}, true, err
	case *pb.PotRequest_Withdraw:
		amount, err := domain.ParseAmount(c.Withdraw.Amount)
		return domain.Withdraw{Key: key, Amount: amount}, true, err
	case *pb.PotRequest_PlaceOrder:
		o, err := orderRequest(c.PlaceOrder)
		return domain.PlaceOrder{Key: key, Order: o}, true, err
	case *pb.PotRequest_CancelOrder:
		return domain.CancelOrder{Key: key, OrderID: c.CancelOrder.OrderId}, true, nil
	case *pb.PotRequest_SetRiskProfile:
		return domain.SetRiskProfile{Key: key, Profile: c.SetRiskProfile.Profile}, true, nil
	case *pb.PotRequest_Rebalance:
		return rebalance(c.Rebalance)
	case *pb.PotRequest_AllocateTrades:
		date, err := domain.ParseDate(c.AllocateTrades.DealingDate)
		if err != nil {
			return nil, true, err
		}
		cmd := domain.AllocateTrades{DealingDate: date}
		for _, m := range c.AllocateTrades.Executions {
			e, err := codec.DecodeTradeExecuted(m)
			if err != nil {
				return nil, true, err
			}
			cmd.Executions = append(cmd.Executions, e)
		}
		return cmd, true, nil
	case *pb.PotRequest_SettleTrades:
		return domain.SettleTrades{TradeIDs: c.SettleTrades.TradeIds}, true, nil
	case *pb.PotRequest_RollOrder:
		from, err1 := domain.ParseDate(c.RollOrder.FromDate)
		to, err2 := domain.ParseDate(c.RollOrder.ToDate)
		return domain.RollOrder{OrderID: c.RollOrder.OrderId, From: from, To: to}, true, errors.Join(err1, err2)
	case *pb.PotRequest_GetPot, *pb.PotRequest_ListOrders, *pb.PotRequest_GetOrder, *pb.PotRequest_GetStatement:
		return nil, false, nil
	}
	return nil, false, fmt.Errorf("%w: no command", errBadRequest)
}

// orderRequest reads an order's terms. Amounts and percentages are parsed
// strictly; units are parsed to the widest precision here and to the
// asset's own by Decide, which knows the asset.
func orderRequest(m *pb.PlaceOrder) (domain.OrderRequest, error) {
	o := domain.OrderRequest{Asset: domain.ISIN(m.Asset), From: domain.ISIN(m.From), To: domain.ISIN(m.To)}
	switch m.Type {
	case pb.OrderType_ORDER_TYPE_BUY:
		o.Type = domain.OrderBuy
	case pb.OrderType_ORDER_TYPE_SELL:
		o.Type = domain.OrderSell
	case pb.OrderType_ORDER_TYPE_SWITCH:
		o.Type = domain.OrderSwitch
	default:
		return o, fmt.Errorf("%w: order type %v", errBadRequest, m.Type)
	}
	var errs []error
	if m.Amount != "" {
		a, err := domain.ParseAmount(m.Amount)
		o.Amount, errs = a, append(errs, err)
	}
	if m.Units != "" {
		u, err := domain.ParseUnits(m.Units, domain.UnitDecimalsMax)
		o.Units, errs = u, append(errs, err)
	}
	if m.Percent != "" {
		p, err := domain.ParsePercent(m.Percent)
		o.Percent, errs = p, append(errs, err)
	}
	return o, errors.Join(errs...)
}

func rebalance(m *pb.Rebalance) (domain.Command, bool, error) {
	date, prices, err := decodePrices(m.Date, m.Prices)
	if err != nil {
		return nil, true, err
	}
	return domain.Rebalance{Date: date, Prices: prices}, true, nil
}
