package gateway

import (
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"

	"github.com/acme/mastertrust/domain"
	"github.com/acme/mastertrust/internal/problem"
	"github.com/acme/mastertrust/proto/pb"
)

// The member endpoints (docs/api.md). Each handler validates everything it can
// without the pot, answers 400 listing every bad field if anything is
// wrong, and otherwise makes exactly one call to the member's pot.

// Request bodies. Every value is a JSON string; decodeBody refuses other
// keys and other JSON types.
type (
	openPotBody struct {
		MemberID    string `json:"memberId"`
		RiskProfile string `json:"riskProfile"`
	}
	amountBody struct {
		Amount string `json:"amount"`
	}
	orderBody struct {
		Type    string `json:"type"`
		Asset   string `json:"asset"`
		From    string `json:"from"`
		To      string `json:"to"`
		Amount  string `json:"amount"`
		Units   string `json:"units"`
		Percent string `json:"percent"`
	}
	riskProfileBody struct {
		// RiskProfile is a pointer to tell a missing field (400) from ""
		// (self-directed).
		RiskProfile *string `json:"riskProfile"`
	}
)

// pathMember returns the path's {memberId}, reporting a malformed one.
func pathMember(r *http.Request, fe *fieldErrors) string {
	m := r.PathValue("memberId")
	if !validMemberID(m) {
		fe.add("memberId", "must be %s", memberIDRule)
	}
	return m
}

// pathOrder returns the path's {orderId}, reporting a malformed one.
func pathOrder(r *http.Request, fe *fieldErrors) string {
	o := r.PathValue("orderId")
	if !validOrderID(o) {
		fe.add("orderId", "must be an order id such as M000123-17")
	}
	return o
}

// openPot: POST /v1/pots → 201 pot view. A member token may open only its
// own pot.
func (s *Server) openPot(w http.ResponseWriter, r *http.Request, claims Claims) {
	var fe fieldErrors
	key := idempotencyKey(r, &fe)
	queryParams(r, &fe)
	var body openPotBody
	if decodeBody(w, r, &body, &fe) {
		if claims.Role == RoleMember && body.MemberID != "" && body.MemberID != claims.Subject {
			s.writeProblem(w, r, newProblem(problem.Forbidden, "a member token opens only its own pot"))
			return
		}
		switch {
		case body.MemberID == "":
			fe.add("memberId", "is required")
		case !validMemberID(body.MemberID):
			fe.add("memberId", "must be %s", memberIDRule)
		}
		if body.RiskProfile != "" {
			checkRiskProfile(&fe, "riskProfile", body.RiskProfile)
		}
	}
	if len(fe) > 0 {
		s.writeProblem(w, r, invalid(fe))
		return
	}
	req := &pb.PotRequest{IdempotencyKey: key, Command: &pb.PotRequest_OpenPot{OpenPot: &pb.OpenPot{Profile: body.RiskProfile}}}
	pot, ok := potResult(s, w, r, "open_pot", body.MemberID, req, (*pb.PotResponse).GetPot)
	if !ok {
		return
	}
	w.Header().Set("Location", "/v1/pots/"+url.PathEscape(body.MemberID))
	s.writeJSON(w, r, http.StatusCreated, potView(pot))
}

// getPot: GET /v1/pots/{memberId} → 200 pot view.
func (s *Server) getPot(w http.ResponseWriter, r *http.Request, _ Claims) {
	var fe fieldErrors
	member := pathMember(r, &fe)
	queryParams(r, &fe)
	if len(fe) > 0 {
		s.writeProblem(w, r, invalid(fe))
		return
	}
	req := &pb.PotRequest{Command: &pb.PotRequest_GetPot{GetPot: &pb.GetPot{}}}
	if pot, ok := potResult(s, w, r, "get_pot", member, req, (*pb.PotResponse).GetPot); ok {
		s.writeJSON(w, r, http.StatusOK, potView(pot))
	}
}

// contribute: POST /v1/pots/{memberId}/contributions → 202 movement.
func (s *Server) contribute(w http.ResponseWriter, r *http.Request, _ Claims) {
	s.movement(w, r, "contribute", func(key, amount string) *pb.PotRequest {
		return &pb.PotRequest{IdempotencyKey: key, Command: &pb.PotRequest_Contribute{Contribute: &pb.Contribute{Amount: amount}}}
	})
}

// withdraw: POST /v1/pots/{memberId}/withdrawals → 202 movement.
func (s *Server) withdraw(w http.ResponseWriter, r *http.Request, _ Claims) {
	s.movement(w, r, "withdraw", func(key, amount string) *pb.PotRequest {
		return &pb.PotRequest{IdempotencyKey: key, Command: &pb.PotRequest_Withdraw{Withdraw: &pb.Withdraw{Amount: amount}}}
	})
}

// movement serves contributions and withdrawals: a body {"amount"}, a
// movement in reply.
func (s *Server) movement(w http.ResponseWriter, r *http.Request, command string, build func(key, amount string) *pb.PotRequest) {
	var fe fieldErrors
	member := pathMember(r, &fe)
	key := requiredIdempotencyKey(r, &fe)
	queryParams(r, &fe)
	var body amountBody
	if decodeBody(w, r, &body, &fe) {
		checkAmount(&fe, "amount", body.Amount)
	}
	if len(fe) > 0 {
		s.writeProblem(w, r, invalid(fe))
		return
	}
	if mv, ok := potResult(s, w, r, command, member, build(key, body.Amount), (*pb.PotResponse).GetMovement); ok {
		s.writeJSON(w, r, http.StatusAccepted, movementView(mv))
	}
}

// placeOrder: POST /v1/pots/{memberId}/orders → 202 order.
func (s *Server) placeOrder(w http.ResponseWriter, r *http.Request, _ Claims) {
	var fe fieldErrors
	member := pathMember(r, &fe)
	key := requiredIdempotencyKey(r, &fe)
	queryParams(r, &fe)
	var body orderBody
	var order *pb.PlaceOrder
	if decodeBody(w, r, &body, &fe) {
		order = s.checkOrder(&fe, &body)
	}
	if len(fe) > 0 {
		s.writeProblem(w, r, invalid(fe))
		return
	}
	o, ok := potResult(s, w, r, "place_order", member, &pb.PotRequest{IdempotencyKey: key,
		Command: &pb.PotRequest_PlaceOrder{PlaceOrder: order}}, (*pb.PotResponse).GetOrder)
	if !ok {
		return
	}
	w.Header().Set("Location", "/v1/pots/"+url.PathEscape(member)+"/orders/"+url.PathEscape(o.GetId()))
	s.writeJSON(w, r, http.StatusAccepted, orderView(o))
}

// checkOrder validates an order body (docs/api.md's three shapes) and returns
// the pot's command:
//
//	buy:    asset, amount
//	sell:   asset, exactly one of units, amount, percent
//	switch: from, to, exactly one of units, percent (to = from is the
//	        pot's 422 same-asset)
func (s *Server) checkOrder(fe *fieldErrors, b *orderBody) *pb.PlaceOrder {
	o := &pb.PlaceOrder{Asset: b.Asset, From: b.From, To: b.To, Amount: b.Amount, Units: b.Units, Percent: b.Percent}
	forbid := func(field, value, why string) {
		if value != "" {
			fe.add(field, "not allowed: %s", why)
		}
	}
	// quantity checks that exactly one of the allowed quantities is given,
	// and checks it.
	quantity := func(asset string, allowed ...string) {
		given := map[string]string{"units": b.Units, "amount": b.Amount, "percent": b.Percent}
		n := 0
		for _, q := range allowed {
			if given[q] != "" {
				n++
			}
		}
		if n != 1 {
			fe.add("body", "exactly one of %s is required", joinOr(allowed))
		}
		if b.Units != "" {
			checkUnits(fe, s.cfg.Catalogue, "units", b.Units, domain.ISIN(asset))
		}
		if b.Amount != "" {
			checkAmount(fe, "amount", b.Amount)
		}
		if b.Percent != "" {
			checkPercent(fe, "percent", b.Percent)
		}
	}
	switch b.Type {
	case "buy":
		o.Type = pb.OrderType_ORDER_TYPE_BUY
		checkISIN(fe, "asset", b.Asset)
		checkAmount(fe, "amount", b.Amount)
		forbid("units", b.Units, "a buy is by amount")
		forbid("percent", b.Percent, "a buy is by amount")
		forbid("from", b.From, "only a switch has from and to")
		forbid("to", b.To, "only a switch has from and to")
	case "sell":
		o.Type = pb.OrderType_ORDER_TYPE_SELL
		checkISIN(fe, "asset", b.Asset)
		quantity(b.Asset, "units", "amount", "percent")
		forbid("from", b.From, "only a switch has from and to")
		forbid("to", b.To, "only a switch has from and to")
	case "switch":
		o.Type = pb.OrderType_ORDER_TYPE_SWITCH
		// A switch from an asset to itself is well formed: the pot
		// refuses it as a business rule (422 same-asset), as documented.
		checkISIN(fe, "from", b.From)
		checkISIN(fe, "to", b.To)
		forbid("asset", b.Asset, "a switch names from and to")
		forbid("amount", b.Amount, "a switch is by units or percent")
		if b.Amount == "" {
			quantity(b.From, "units", "percent")
		}
	case "":
		fe.add("type", "is required: buy, sell or switch")
	default:
		fe.add("type", "must be buy, sell or switch")
	}
	return o
}

// getOrder: GET /v1/pots/{memberId}/orders/{orderId} → 200 order.
func (s *Server) getOrder(w http.ResponseWriter, r *http.Request, _ Claims) {
	var fe fieldErrors
	member := pathMember(r, &fe)
	orderID := pathOrder(r, &fe)
	queryParams(r, &fe)
	if len(fe) > 0 {
		s.writeProblem(w, r, invalid(fe))
		return
	}
	req := &pb.PotRequest{Command: &pb.PotRequest_GetOrder{GetOrder: &pb.GetOrder{OrderId: orderID}}}
	if o, ok := potResult(s, w, r, "get_order", member, req, (*pb.PotResponse).GetOrder); ok {
		s.writeJSON(w, r, http.StatusOK, orderView(o))
	}
}

// cancelOrder: DELETE /v1/pots/{memberId}/orders/{orderId} → 200 order
// (cancelled), 422 once cut off. Cancelling a cancelled order is a 200.
func (s *Server) cancelOrder(w http.ResponseWriter, r *http.Request, _ Claims) {
	var fe fieldErrors
	member := pathMember(r, &fe)
	orderID := pathOrder(r, &fe)
	key := requiredIdempotencyKey(r, &fe)
	queryParams(r, &fe)
	if len(fe) > 0 {
		s.writeProblem(w, r, invalid(fe))
		return
	}
	req := &pb.PotRequest{IdempotencyKey: key, Command: &pb.PotRequest_CancelOrder{CancelOrder: &pb.CancelOrder{OrderId: orderID}}}
	if o, ok := potResult(s, w, r, "cancel_order", member, req, (*pb.PotResponse).GetOrder); ok {
		s.writeJSON(w, r, http.StatusOK, orderView(o))
	}
}

// listOrders: GET /v1/pots/{memberId}/orders?status=&after=&limit= → 200
// {"orders", "nextAfter"}, newest first.
func (s *Server) listOrders(w http.ResponseWriter, r *http.Request, _ Claims) {
	var fe fieldErrors
	member := pathMember(r, &fe)
	q := queryParams(r, &fe, "status", "after", "limit")
	list := &pb.ListOrders{Status: q["status"], After: q["after"]}
	if _, ok := q["status"]; ok && !slices.Contains(orderStatuses, list.Status) {
		fe.add("status", "must be one of %s", joinOr(orderStatuses))
	}
	if _, ok := q["after"]; ok && !validOrderID(list.After) {
		fe.add("after", "must be an order id such as M000123-17")
	}
	if v, ok := q["limit"]; ok {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > ordersLimitMax {
			fe.add("limit", "must be a whole number from 1 to %d", ordersLimitMax)
		}
		list.Limit = int32(n)
	}
	if len(fe) > 0 {
		s.writeProblem(w, r, invalid(fe))
		return
	}
	req := &pb.PotRequest{Command: &pb.PotRequest_ListOrders{ListOrders: list}}
	if l, ok := potResult(s, w, r, "list_orders", member, req, (*pb.PotResponse).GetOrders); ok {
		s.writeAppended(w, http.StatusOK, func(b []byte) []byte { return appendOrderListJSON(b, l) })
	}
}

// setRiskProfile: PUT /v1/pots/{memberId}/risk-profile → 200 pot view. ""
// makes the pot self-directed.
func (s *Server) setRiskProfile(w http.ResponseWriter, r *http.Request, _ Claims) {
	var fe fieldErrors
	member := pathMember(r, &fe)
	key := idempotencyKey(r, &fe)
	queryParams(r, &fe)
	var body riskProfileBody
	if decodeBody(w, r, &body, &fe) {
		if body.RiskProfile == nil {
			fe.add("riskProfile", `is required (a profile name, or "" for a self-directed pot)`)
		} else {
			checkRiskProfile(&fe, "riskProfile", *body.RiskProfile)
		}
	}
	if len(fe) > 0 {
		s.writeProblem(w, r, invalid(fe))
		return
	}
	req := &pb.PotRequest{IdempotencyKey: key,
		Command: &pb.PotRequest_SetRiskProfile{SetRiskProfile: &pb.SetRiskProfile{Profile: *body.RiskProfile}}}
	if pot, ok := potResult(s, w, r, "set_risk_profile", member, req, (*pb.PotResponse).GetPot); ok {
		s.writeJSON(w, r, http.StatusOK, potView(pot))
	}
}

// getStatement: GET /v1/pots/{memberId}/statement?from=&to=&after=&limit=
// → 200 {"entries","nextAfter"}; both dates optional and inclusive.
func (s *Server) getStatement(w http.ResponseWriter, r *http.Request, _ Claims) {
	var fe fieldErrors
	member := pathMember(r, &fe)
	q := queryParams(r, &fe, "from", "to", "after", "limit")
	from, okFrom := checkDate(&fe, "from", q["from"])
	to, okTo := checkDate(&fe, "to", q["to"])
	if okFrom && okTo && from.After(to) {
		fe.add("from", "must not be after to")
	}
	get := &pb.GetStatement{FromDate: q["from"], ToDate: q["to"], After: q["after"]}
	if _, ok := q["after"]; ok && !validCursor(get.After) {
		fe.add("after", "must be the nextAfter of the previous page")
	}
	if v, ok := q["limit"]; ok {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > statementLimitMax {
			fe.add("limit", "must be a whole number from 1 to %d", statementLimitMax)
		}
		get.Limit = int32(n)
	}
	if len(fe) > 0 {
		s.writeProblem(w, r, invalid(fe))
		return
	}
	req := &pb.PotRequest{Command: &pb.PotRequest_GetStatement{GetStatement: get}}
	if st, ok := potResult(s, w, r, "get_statement", member, req, (*pb.PotResponse).GetStatement); ok {
		s.writeJSON(w, r, http.StatusOK, statementView(st))
	}
}

// joinOr lists words for a message: "a, b or c".
func joinOr(words []string) string {
	if len(words) < 2 {
		return strings.Join(words, "")
	}
	return strings.Join(words[:len(words)-1], ", ") + " or " + words[len(words)-1]
}
