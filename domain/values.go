package domain

import (
	"errors"
	"fmt"
	"strconv"

	"github.com/shopspring/decimal"
)

// Precisions and bounds of the numbers that cross the platform's edge.
const (
	// CashDecimals: cash is held in pence.
	CashDecimals int32 = 2
	// WeightDecimals: target weights are fractions with 4 places (0.0001 = 1 basis point).
	WeightDecimals int32 = 4
	// PercentDecimals: "sell 12.5% of my holding".
	PercentDecimals int32 = 2
	// UnitDecimalsDefault and PriceDecimalsDefault apply when the catalogue
	// does not say otherwise (docs/domain.md).
	UnitDecimalsDefault  int32 = 4
	PriceDecimalsDefault int32 = 6
	// UnitDecimalsMax and PriceDecimalsMax bound what the catalogue may ask
	// for; past 8 places the numbers only carry noise.
	UnitDecimalsMax  int32 = 8
	PriceDecimalsMax int32 = 8
	// numberTextBytesMax bounds the text of one number: 13 integer digits, a
	// point and 8 decimals fit in 22; anything longer is refused before it is
	// parsed, so a hostile input cannot make the parser work hard.
	numberTextBytesMax = 32
)

// Sane upper bounds (docs/domain.md, "Numbers and rounding").
var (
	// CashMax bounds any one amount of cash: £1 trillion.
	CashMax = decimal.New(1, 12)
	// UnitsMax bounds any one quantity of units.
	UnitsMax = decimal.New(1, 12)
	// PriceMax bounds a unit price: £1 million a unit.
	PriceMax = decimal.New(1, 6)
	// TotalMax bounds a quantity the system computes rather than takes
	// from outside: a pot's balances, a day's net order, a custodian's
	// holding. Those are sums of many bounded inputs and may pass CashMax
	// and UnitsMax (a million pots at £1 million each is 1e12; their units
	// at a price of a penny 1e14), so they are bounded a million times
	// higher (its text, with 8 decimals, still fits numberTextBytesMax):
	// an input limit must never make a dealing day's sums unreadable.
	TotalMax = decimal.New(1, 18)
	// PotValueMax bounds what one pot may hold (its cash and its units at
	// the latest prices): a contribution past it is refused.
	PotValueMax = CashMax
)

// Errors of value parsing and construction, each wrapped in a *ValueError.
var (
	ErrMalformedNumber = errors.New("domain: malformed number")
	ErrTooManyDecimals = errors.New("domain: too many decimal places")
	ErrNotPositive     = errors.New("domain: not positive")
	ErrOutOfRange      = errors.New("domain: out of range")
)

// ValueError says which quantity was refused, for what input and why.
type ValueError struct {
	Quantity string // "cash", "units", "price", "weight", "percent"
	Input    string // the text given (or the decimal's string form)
	Err      error  // one of the Err… sentinels above
	Detail   string // e.g. "at most 2 decimal places"
}

func (e *ValueError) Error() string {
	if e.Detail == "" {
		return fmt.Sprintf("%s %q: %v", e.Quantity, e.Input, e.Err)
	}
	return fmt.Sprintf("%s %q: %v (%s)", e.Quantity, e.Input, e.Err, e.Detail)
}

func (e *ValueError) Unwrap() error { return e.Err }

// parseDecimalText parses the strict JSON string form of a quantity: digits,
// optionally a point and at most places more digits. No sign, exponent,
// spaces, leading zeros (other than "0.x"), NaN or infinities: a pension
// platform has no use for them and each is a way to smuggle in a value nobody
// meant. Places are counted as written: "1.000" is three places of cash,
// refused, because a client that sends it has a bug worth hearing about.
func parseDecimalText(quantity, s string, places int32) (decimal.Decimal, error) {
	bad := func(detail string) (decimal.Decimal, error) {
		return decimal.Decimal{}, &ValueError{Quantity: quantity, Input: truncateForError(s), Err: ErrMalformedNumber, Detail: detail}
	}
	if s == "" {
		return bad("empty")
	}
	if len(s) > numberTextBytesMax {
		return bad(fmt.Sprintf("longer than %d characters", numberTextBytesMax))
	}
	if s[0] == '-' {
		return decimal.Decimal{}, &ValueError{Quantity: quantity, Input: s, Err: ErrNotPositive, Detail: "negative"}
	}
	intDigits, point, fracDigits := 0, false, 0
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c >= '0' && c <= '9':
			if point {
				fracDigits++
			} else {
				intDigits++
			}
		case c == '.' && !point:
			point = true
		default:
			return bad("only digits and one decimal point are allowed")
		}
	}
	switch {
	case intDigits == 0:
		return bad("no digits before the decimal point")
	case point && fracDigits == 0:
		return bad("no digits after the decimal point")
	case intDigits > 1 && s[0] == '0':
		return bad("leading zero")
	case fracDigits > int(places):
		return decimal.Decimal{}, &ValueError{Quantity: quantity, Input: s, Err: ErrTooManyDecimals,
			Detail: fmt.Sprintf("at most %d decimal places", places)}
	}
	d, err := decimal.NewFromString(s)
	if err != nil {
		// Unreachable for the grammar checked above; kept so that a change in
		// the library cannot turn into a panic.
		return bad(err.Error())
	}
	return d, nil
}

// truncateForError keeps error messages bounded when the input is hostile.
func truncateForError(s string) string {
	const max = 40
	if len(s) <= max {
		return s
	}
	return s[:max] + "…"
}

// checkDecimal checks that d has at most places decimals, is positive when
// asked, and is at most max in magnitude.
func checkDecimal(quantity string, d decimal.Decimal, places int32, positive bool, max decimal.Decimal) error {
	// Decoding stored state checks every number: without math/big where
	// the value and the bound fit an int64 at places.
	scaled, exact := scaledInt64(d, places)
	if !exact && !fitsPlaces(d, places) {
		return &ValueError{Quantity: quantity, Input: d.String(), Err: ErrTooManyDecimals,
			Detail: fmt.Sprintf("at most %d decimal places", places)}
	}
	if positive && d.Sign() <= 0 {
		return &ValueError{Quantity: quantity, Input: d.String(), Err: ErrNotPositive, Detail: "must be greater than zero"}
	}
	if !withinMax(d, scaled, exact, places, max) {
		return &ValueError{Quantity: quantity, Input: d.String(), Err: ErrOutOfRange,
			Detail: fmt.Sprintf("at most %s", max.String())}
	}
	return nil
}

// withinMax reports whether |d| ≤ max, given d × 10^places as scaled when
// exact (see scaledInt64).
func withinMax(d decimal.Decimal, scaled int64, exact bool, places int32, max decimal.Decimal) bool {
	if exact {
		if bound, ok := scaledInt64(max, places); ok {
			return scaled <= bound && -scaled <= bound
		}
		// max × 10^places has more than 18 integer digits: at least 10^18,
		// above any exact scaled value.
		if max.Sign() > 0 && max.Exponent() >= 0 && int64(max.NumDigits())+int64(max.Exponent())+int64(places) > 18 {
			return true
		}
	}
	return d.Abs().Cmp(max) <= 0
}

// fitsPlaces reports whether d has no more than places significant decimal
// places ("1.2300" fits 2).
func fitsPlaces(d decimal.Decimal, places int32) bool {
	return d.Equal(d.Truncate(places))
}

// ---------------------------------------------------------------------------
// Money

// Money is an amount of cash in the platform's currency (GBP), exact to the
// penny. It may be negative inside the ledger (a residual, a debit); amounts
// that come from outside are parsed with ParseAmount, which refuses
// anything but a positive amount.
//
// The zero value is £0.00.
type Money struct{ d decimal.Decimal }

// ParseAmount parses a member's or operator's amount: "1250.00". It must be
// positive, have at most 2 decimal places and be at most CashMax.
func ParseAmount(s string) (Money, error) {
	d, err := parseDecimalText("cash", s, CashDecimals)
	if err != nil {
		return Money{}, err
	}
	if err := checkDecimal("cash", d, CashDecimals, true, CashMax); err != nil {
		return Money{}, err
	}
	return Money{d}, nil
}

// MoneyFromDecimal is Money the system computed (a balance, a sum) from a
// decimal that must already be exact to the penny and within ±TotalMax.
func MoneyFromDecimal(d decimal.Decimal) (Money, error) {
	if err := checkDecimal("cash", d, CashDecimals, false, TotalMax); err != nil {
		return Money{}, err
	}
	return Money{d}, nil
}

// MustMoney is Money from a literal; it panics on a bad literal. For tests
// and constants only.
func MustMoney(s string) Money {
	d, err := decimal.NewFromString(s)
	if err != nil {
		panic(err)
	}
	m, err := MoneyFromDecimal(d)
	if err != nil {
		panic(err)
	}
	return m
}

// moneyRounded is Money from an arithmetic result that the caller has
// rounded to pennies. It panics if it was not: that is a programmer error in
// a rounding rule.
func moneyRounded(d decimal.Decimal) Money {
	if !fitsPlaces(d, CashDecimals) {
		panic(fmt.Sprintf("domain: money %s not rounded to pennies", d))
	}
	return Money{d}
}

func (m Money) Add(o Money) Money            { return Money{m.d.Add(o.d)} }
func (m Money) Sub(o Money) Money            { return Money{m.d.Sub(o.d)} }
func (m Money) Neg() Money                   { return Money{m.d.Neg()} }
func (m Money) Cmp(o Money) int              { return m.d.Cmp(o.d) }
func (m Money) Sign() int                    { return m.d.Sign() }
func (m Money) IsZero() bool                 { return m.d.IsZero() }
func (m Money) Decimal() decimal.Decimal     { return m.d }
func (m Money) Equal(o Money) bool           { return m.d.Equal(o.d) }
func (m Money) LessThan(o Money) bool        { return m.d.LessThan(o.d) }
func (m Money) GreaterThan(o Money) bool     { return m.d.GreaterThan(o.d) }
func (m Money) Min(o Money) Money            { return minMoney(m, o) }
func (m Money) String() string               { return formatFixed(m.d, CashDecimals) }
func (m Money) MarshalText() ([]byte, error) { return []byte(m.String()), nil }

// Append appends m.String() to b.
func (m Money) Append(b []byte) []byte { return appendFixed(b, m.d, CashDecimals) }

// UnmarshalText reads the text form written by MarshalText (any sign, 2
// places): it is for stored state, not for input from outside.
func (m *Money) UnmarshalText(b []byte) error {
	d, err := decimal.NewFromString(string(b))
	if err != nil {
		return &ValueError{Quantity: "cash", Input: truncateForError(string(b)), Err: ErrMalformedNumber}
	}
	v, err := MoneyFromDecimal(d)
	*m = v
	return err
}

func minMoney(a, b Money) Money {
	if a.Cmp(b) <= 0 {
		return a
	}
	return b
}

func maxMoney(a, b Money) Money {
	if a.Cmp(b) >= 0 {
		return a
	}
	return b
}

// ---------------------------------------------------------------------------
// Units

// Units is a quantity of an asset's units. Its precision is the asset's
// unitDecimals, which the type does not carry: constructors take it, and
// arithmetic (add, subtract) cannot create more places than its operands.
type Units struct{ d decimal.Decimal }

// ParseUnits parses a positive quantity with at most unitDecimals places.
func ParseUnits(s string, unitDecimals int32) (Units, error) {
	d, err := parseDecimalText("units", s, unitDecimals)
	if err != nil {
		return Units{}, err
	}
	if err := checkDecimal("units", d, unitDecimals, true, UnitsMax); err != nil {
		return Units{}, err
	}
	return Units{d}, nil
}

// UnitsFromDecimal is Units the system computed (a balance, a sum) from a
// decimal with at most unitDecimals places and within ±TotalMax.
func UnitsFromDecimal(d decimal.Decimal, unitDecimals int32) (Units, error) {
	if err := checkDecimal("units", d, unitDecimals, false, TotalMax); err != nil {
		return Units{}, err
	}
	return Units{d}, nil
}

// ParseTotalUnits parses a positive quantity the system computed (a net
// order, an execution of one): at most unitDecimals places, within
// TotalMax.
func ParseTotalUnits(s string, unitDecimals int32) (Units, error) {
	d, err := parseDecimalText("units", s, unitDecimals)
	if err != nil {
		return Units{}, err
	}
	if err := checkDecimal("units", d, unitDecimals, true, TotalMax); err != nil {
		return Units{}, err
	}
	return Units{d}, nil
}

// MustUnits is Units from a literal; it panics on a bad literal. For tests.
func MustUnits(s string) Units { return Units{decimal.RequireFromString(s)} }

func (u Units) Add(o Units) Units        { return Units{u.d.Add(o.d)} }
func (u Units) Sub(o Units) Units        { return Units{u.d.Sub(o.d)} }
func (u Units) Neg() Units               { return Units{u.d.Neg()} }
func (u Units) Abs() Units               { return Units{u.d.Abs()} }
func (u Units) Cmp(o Units) int          { return u.d.Cmp(o.d) }
func (u Units) Sign() int                { return u.d.Sign() }
func (u Units) IsZero() bool             { return u.d.IsZero() }
func (u Units) Equal(o Units) bool       { return u.d.Equal(o.d) }
func (u Units) Decimal() decimal.Decimal { return u.d }
func (u Units) String() string           { return u.d.String() }

// StringFixed formats u with exactly places decimals ("12.3000").
func (u Units) StringFixed(places int32) string { return formatFixed(u.d, places) }

// AppendFixed appends u.StringFixed(places) to b.
func (u Units) AppendFixed(b []byte, places int32) []byte { return appendFixed(b, u.d, places) }

func minUnits(a, b Units) Units {
	if a.Cmp(b) <= 0 {
		return a
	}
	return b
}

// ---------------------------------------------------------------------------
// Price

// Price is a positive unit price in the platform's currency, with at most
// the asset's priceDecimals places.
type Price struct{ d decimal.Decimal }

// ParsePrice parses a positive price with at most priceDecimals places.
func ParsePrice(s string, priceDecimals int32) (Price, error) {
	d, err := parseDecimalText("price", s, priceDecimals)
	if err != nil {
		return Price{}, err
	}
	return PriceFromDecimal(d, priceDecimals)
}

// PriceFromDecimal is Price from a positive decimal with at most
// priceDecimals places, at most PriceMax.
func PriceFromDecimal(d decimal.Decimal, priceDecimals int32) (Price, error) {
	if err := checkDecimal("price", d, priceDecimals, true, PriceMax); err != nil {
		return Price{}, err
	}
	return Price{d}, nil
}

// MustPrice is Price from a literal; it panics on a bad literal. For tests.
func MustPrice(s string) Price {
	p, err := PriceFromDecimal(decimal.RequireFromString(s), PriceDecimalsMax)
	if err != nil {
		panic(err)
	}
	return p
}

func (p Price) Decimal() decimal.Decimal { return p.d }
func (p Price) IsZero() bool             { return p.d.IsZero() }
func (p Price) Equal(o Price) bool       { return p.d.Equal(o.d) }
func (p Price) String() string           { return p.d.String() }

// StringFixed formats p with exactly places decimals.
func (p Price) StringFixed(places int32) string { return formatFixed(p.d, places) }

// AppendFixed appends p.StringFixed(places) to b.
func (p Price) AppendFixed(b []byte, places int32) []byte { return appendFixed(b, p.d, places) }

// ---------------------------------------------------------------------------
// Weight and percent

// Weight is a fraction in [0, 1] with at most 4 places: a target weight, a
// band, or the share of a sale's proceeds that funds a buy.
type Weight struct{ d decimal.Decimal }

// ParseWeight parses a weight "0.5500".
func ParseWeight(s string) (Weight, error) {
	d, err := parseDecimalText("weight", s, WeightDecimals)
	if err != nil {
		return Weight{}, err
	}
	return WeightFromDecimal(d)
}

// WeightFromDecimal is Weight from a decimal in [0, 1] with at most 4 places.
func WeightFromDecimal(d decimal.Decimal) (Weight, error) {
	if err := checkDecimal("weight", d, WeightDecimals, false, decimal.NewFromInt(1)); err != nil {
		return Weight{}, err
	}
	if d.Sign() < 0 {
		return Weight{}, &ValueError{Quantity: "weight", Input: d.String(), Err: ErrOutOfRange, Detail: "must be between 0 and 1"}
	}
	return Weight{d}, nil
}

// MustWeight is Weight from a literal; it panics on a bad literal.
func MustWeight(s string) Weight {
	w, err := WeightFromDecimal(decimal.RequireFromString(s))
	if err != nil {
		panic(err)
	}
	return w
}

// WeightOne is 100%.
var WeightOne = Weight{decimal.NewFromInt(1)}

func (w Weight) Decimal() decimal.Decimal { return w.d }
func (w Weight) IsZero() bool             { return w.d.IsZero() }
func (w Weight) Add(o Weight) Weight      { return Weight{w.d.Add(o.d)} }
func (w Weight) Cmp(o Weight) int         { return w.d.Cmp(o.d) }
func (w Weight) String() string           { return formatFixed(w.d, WeightDecimals) }

// Percent is a percentage in (0, 100] with at most 2 places, as in "sell 25%
// of my holding".
type Percent struct{ d decimal.Decimal }

// ParsePercent parses a percentage: greater than 0, at most 100.
func ParsePercent(s string) (Percent, error) {
	d, err := parseDecimalText("percent", s, PercentDecimals)
	if err != nil {
		return Percent{}, err
	}
	return PercentFromDecimal(d)
}

// PercentFromDecimal is Percent from a decimal in (0, 100].
func PercentFromDecimal(d decimal.Decimal) (Percent, error) {
	if err := checkDecimal("percent", d, PercentDecimals, true, decimal.NewFromInt(100)); err != nil {
		return Percent{}, err
	}
	return Percent{d}, nil
}

// MustPercent is Percent from a literal; it panics on a bad literal.
func MustPercent(s string) Percent {
	p, err := PercentFromDecimal(decimal.RequireFromString(s))
	if err != nil {
		panic(err)
	}
	return p
}

func (p Percent) Decimal() decimal.Decimal { return p.d }
func (p Percent) String() string           { return p.d.String() }

// MarshalText writes the exact decimal; UnmarshalText reads it back. They
// are for stored state, not for input from outside.
func (u Units) MarshalText() ([]byte, error) { return []byte(u.d.String()), nil }

func (u *Units) UnmarshalText(b []byte) error {
	d, err := decimal.NewFromString(string(b))
	if err != nil {
		return &ValueError{Quantity: "units", Input: truncateForError(string(b)), Err: ErrMalformedNumber}
	}
	val, err := UnitsFromDecimal(d, UnitDecimalsMax)
	*u = val
	return err
}

// MarshalText writes the exact decimal; UnmarshalText reads it back. They
// are for stored state, not for input from outside.
func (p Price) MarshalText() ([]byte, error) { return []byte(p.d.String()), nil }

func (p *Price) UnmarshalText(b []byte) error {
	d, err := decimal.NewFromString(string(b))
	if err != nil {
		return &ValueError{Quantity: "price", Input: truncateForError(string(b)), Err: ErrMalformedNumber}
	}
	val, err := PriceFromDecimal(d, PriceDecimalsMax)
	*p = val
	return err
}

// MarshalText writes the exact decimal; UnmarshalText reads it back. They
// are for stored state, not for input from outside.
func (w Weight) MarshalText() ([]byte, error) { return []byte(w.d.String()), nil }

func (w *Weight) UnmarshalText(b []byte) error {
	d, err := decimal.NewFromString(string(b))
	if err != nil {
		return &ValueError{Quantity: "weight", Input: truncateForError(string(b)), Err: ErrMalformedNumber}
	}
	val, err := WeightFromDecimal(d)
	*w = val
	return err
}

// MarshalText writes the exact decimal; UnmarshalText reads it back. They
// are for stored state, not for input from outside.
func (p Percent) MarshalText() ([]byte, error) { return []byte(p.d.String()), nil }

func (p *Percent) UnmarshalText(b []byte) error {
	d, err := decimal.NewFromString(string(b))
	if err != nil {
		return &ValueError{Quantity: "percent", Input: truncateForError(string(b)), Err: ErrMalformedNumber}
	}
	val, err := PercentFromDecimal(d)
	*p = val
	return err
}

// formatFixed is d.StringFixed(places) without math/big for the values the
// domain holds: a coefficient of at most 18 digits once scaled to places,
// and no more than places decimals (nothing to round). Formatting money
// through math/big was 4% of a pot command's CPU, and 8% of a page of
// orders where whole pounds came with a positive exponent
// (docs/performance.md). Anything else takes StringFixed.
func formatFixed(d decimal.Decimal, places int32) string {
	var buf [24]byte
	return string(appendFixed(buf[:0], d, places))
}

// appendFixed appends formatFixed(d, places) to b: views that build many
// numbers into one buffer (a page of orders) then allocate once for them
// all rather than once a number.
func appendFixed(b []byte, d decimal.Decimal, places int32) []byte {
	c, ok := scaledInt64(d, places)
	if !ok {
		return append(b, d.StringFixed(places)...)
	}
	if c < 0 {
		b = append(b, '-')
		c = -c
	}
	b = strconv.AppendInt(b, c/pow10[places], 10)
	if places == 0 {
		return b
	}
	b = append(b, '.')
	frac := c % pow10[places]
	n := len(b)
	b = append(b, make([]byte, places)...)
	for i := len(b) - 1; i >= n; i-- {
		b[i] = byte('0' + frac%10)
		frac /= 10
	}
	return b
}

// scaledInt64 is d × 10^places as an int64 when that is exact and has at
// most 18 digits: the coefficient scaled up (a positive exponent, or fewer
// decimals than places) or down (trailing zeros only).
func scaledInt64(d decimal.Decimal, places int32) (int64, bool) {
	if places < 0 || places > 18 || d.NumDigits() > 18 {
		return 0, false
	}
	c, shift := d.CoefficientInt64(), int64(places)+int64(d.Exponent())
	switch {
	case shift >= 0:
		if int64(d.NumDigits())+shift > 18 {
			return 0, false
		}
		return c * pow10[shift], true
	case shift >= -18 && c%pow10[-shift] == 0:
		return c / pow10[-shift], true
	}
	return 0, false
}

// pow10[n] is 10ⁿ.
var pow10 = [19]int64{1, 10, 100, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9, 1e10, 1e11, 1e12, 1e13, 1e14, 1e15, 1e16, 1e17, 1e18}
