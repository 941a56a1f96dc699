package domain

import (
	"errors"
	"math/rand/v2"
	"strings"
	"testing"
	"time"

	"github.com/shopspring/decimal"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// Inputs that every parser refuses as malformed, whatever the quantity:
// docs/domain.md's "exponent", "NaN" and every other way to write a number that is
// not plain digits with at most one point.
var malformedInputs = []string{
	"", "1e3", "1E3", "1e-2", "NaN", "nan", "Inf", "+Inf", "Infinity", "+1", " 1", "1 ", " ", "\t1",
	".5", "5.", ".", "00.1", "01", "007", "1,000.00", "1_000", "0x10", "1.2.3", "1..2", "١",
	"1.0\n", "½", "1x", "x1",
	"1234567890123456789012345678901234567890", // 40 digits: longer than any number we accept
}

// valueCase is one input and what parsing it gives: the canonical text of
// the value, or the sentinel of the refusal.
type valueCase struct {
	in   string
	want string // String() of the value, when err is nil
	err  error
}

func malformedCases() []valueCase {
	out := make([]valueCase, len(malformedInputs))
	for i, s := range malformedInputs {
		out[i] = valueCase{in: s, err: ErrMalformedNumber}
	}
	return out
}

// checkValueCases runs parse over the cases: every refusal must be a
// *ValueError of quantity wrapping the expected sentinel.
func checkValueCases[T interface{ String() string }](t *testing.T, name, quantity string, parse func(string) (T, error), cases []valueCase) {
	t.Helper()
	for _, tc := range cases {
		v, err := parse(tc.in)
		if tc.err == nil {
			assert.NoError(t, err, "%s(%q)", name, tc.in)
			assert.Equal(t, tc.want, v.String(), "%s(%q)", name, tc.in)
			continue
		}
		var ve *ValueError
		assert.ErrorIs(t, err, tc.err, "%s(%q)", name, tc.in)
		if assert.ErrorAs(t, err, &ve, "%s(%q)", name, tc.in) {
			assert.Equal(t, quantity, ve.Quantity, "%s(%q): the error's quantity", name, tc.in)
		}
	}
}

// TestParseAmount: cash is positive, at most 2 places, at most £1 trillion.
func TestParseAmount(t *testing.T) {
	cases := append(malformedCases(),
		valueCase{"1250.00", "1250.00", nil},
		valueCase{"0.01", "0.01", nil},
		valueCase{"1", "1.00", nil},
		valueCase{"1.5", "1.50", nil},
		valueCase{"0.10", "0.10", nil},
		// Places are counted as written: trailing zeros past the second
		// place are still too many (docs/api.md: too many decimal places is a 400).
		valueCase{"1.000", "", ErrTooManyDecimals},
		valueCase{"1000000000000", "1000000000000.00", nil}, // exactly the bound
		valueCase{"1000000000000.00", "1000000000000.00", nil},
		valueCase{"1000000000000.01", "", ErrOutOfRange},
		valueCase{"9999999999999", "", ErrOutOfRange},
		valueCase{"1.001", "", ErrTooManyDecimals},
		valueCase{"0.005", "", ErrTooManyDecimals},
		valueCase{"0", "", ErrNotPositive},
		valueCase{"0.00", "", ErrNotPositive},
		valueCase{"-1", "", ErrNotPositive},
		valueCase{"-0.01", "", ErrNotPositive},
	)
	checkValueCases(t, "ParseAmount", "cash", ParseAmount, cases)
}

// TestParseUnits: units are positive, with at most the asset's places, at
// most 1e12.
func TestParseUnits(t *testing.T) {
	units := func(places int32) func(string) (Units, error) {
		return func(s string) (Units, error) { return ParseUnits(s, places) }
	}
	checkValueCases(t, "ParseUnits(·, 4)", "units", units(4), append(malformedCases(),
		valueCase{"12.3456", "12.3456", nil},
		valueCase{"12.3400", "12.34", nil},
		valueCase{"1", "1", nil},
		valueCase{"0.0001", "0.0001", nil},
		valueCase{"1000000000000", "1000000000000", nil},
		valueCase{"1000000000000.0001", "", ErrOutOfRange},
		valueCase{"1.23456", "", ErrTooManyDecimals},
		valueCase{"0.00001", "", ErrTooManyDecimals},
		valueCase{"0", "", ErrNotPositive},
		valueCase{"0.0000", "", ErrNotPositive},
		valueCase{"-12.3456", "", ErrNotPositive},
	))
	checkValueCases(t, "ParseUnits(·, 3)", "units", units(3), []valueCase{
		{"12.345", "12.345", nil},
		{"12.3456", "", ErrTooManyDecimals},
	})
	checkValueCases(t, "ParseUnits(·, 0)", "units", units(0), []valueCase{
		{"12", "12", nil},
		{"12.0", "", ErrTooManyDecimals}, // places are counted as written
		{"12.5", "", ErrTooManyDecimals},
	})
	checkValueCases(t, "ParseUnits(·, 8)", "units", units(8), []valueCase{
		{"0.00000001", "0.00000001", nil},
		{"0.000000001", "", ErrTooManyDecimals},
	})
}

// TestParsePrice: prices are positive, with at most the asset's places, at
// most £1 million a unit.
func TestParsePrice(t *testing.T) {
	price := func(places int32) func(string) (Price, error) {
		return func(s string) (Price, error) { return ParsePrice(s, places) }
	}
	checkValueCases(t, "ParsePrice(·, 6)", "price", price(6), append(malformedCases(),
		valueCase{"1.234567", "1.234567", nil},
		valueCase{"0.000001", "0.000001", nil},
		valueCase{"250", "250", nil},
		valueCase{"1000000", "1000000", nil},
		valueCase{"1000000.000001", "", ErrOutOfRange},
		valueCase{"1000000000000", "", ErrOutOfRange},
		valueCase{"1.2345678", "", ErrTooManyDecimals},
		valueCase{"0", "", ErrNotPositive},
		valueCase{"0.000000", "", ErrNotPositive},
		valueCase{"-1.5", "", ErrNotPositive},
	))
	checkValueCases(t, "ParsePrice(·, 4)", "price", price(4), []valueCase{
		{"1.2345", "1.2345", nil},
		{"1.23456", "", ErrTooManyDecimals},
	})
}

// TestParseWeight: weights are in [0, 1] with at most 4 places; zero is a
// weight (an asset a profile holds none of).
func TestParseWeight(t *testing.T) {
	checkValueCases(t, "ParseWeight", "weight", ParseWeight, append(malformedCases(),
		valueCase{"0.5500", "0.5500", nil},
		valueCase{"0.55", "0.5500", nil},
		valueCase{"0.0001", "0.0001", nil},
		valueCase{"0", "0.0000", nil},
		valueCase{"0.0000", "0.0000", nil},
		valueCase{"1", "1.0000", nil},
		valueCase{"1.0000", "1.0000", nil},
		valueCase{"1.0001", "", ErrOutOfRange},
		valueCase{"2", "", ErrOutOfRange},
		valueCase{"0.12345", "", ErrTooManyDecimals},
		valueCase{"-0.1", "", ErrNotPositive},
	))
}

// TestParsePercent: percentages are in (0, 100] with at most 2 places.
func TestParsePercent(t *testing.T) {
	checkValueCases(t, "ParsePercent", "percent", ParsePercent, append(malformedCases(),
		valueCase{"25", "25", nil},
		valueCase{"12.5", "12.5", nil},
		valueCase{"0.01", "0.01", nil},
		valueCase{"100", "100", nil},
		valueCase{"100.00", "100", nil},
		valueCase{"100.01", "", ErrOutOfRange},
		valueCase{"101", "", ErrOutOfRange},
		valueCase{"12.345", "", ErrTooManyDecimals},
		valueCase{"0", "", ErrNotPositive},
		valueCase{"-5", "", ErrNotPositive},
	))
}

// TestMoneyFromDecimal: inside the ledger money may be zero or negative, but
// still exact to the penny and within ±TotalMax (1e18: sums of many pots
// pass any one input's bound).
func TestMoneyFromDecimal(t *testing.T) {
	from := func(s string) (Money, error) { return MoneyFromDecimal(decimal.RequireFromString(s)) }
	checkValueCases(t, "MoneyFromDecimal", "cash", from, []valueCase{
		{"12.34", "12.34", nil},
		{"0", "0.00", nil},
		{"-5", "-5.00", nil},
		{"-0.01", "-0.01", nil},
		{"1.010", "1.01", nil},
		{"1000000000000.01", "1000000000000.01", nil},
		{"1000000000000000000", "1000000000000000000.00", nil},
		{"-1000000000000000000", "-1000000000000000000.00", nil},
		{"1000000000000000000.01", "", ErrOutOfRange},
		{"-1000000000000000000.01", "", ErrOutOfRange},
		{"1.001", "", ErrTooManyDecimals},
		{"-0.005", "", ErrTooManyDecimals},
		{"1e-3", "", ErrTooManyDecimals},
		{"1e19", "", ErrOutOfRange},
	})
}

// TestUnitsFromDecimal: units inside the ledger may be zero or negative (a
// net order), with at most the given places, within ±TotalMax.
func TestUnitsFromDecimal(t *testing.T) {
	from := func(s string) (Units, error) { return UnitsFromDecimal(decimal.RequireFromString(s), 4) }
	checkValueCases(t, "UnitsFromDecimal(·, 4)", "units", from, []valueCase{
		{"12.3456", "12.3456", nil},
		{"0", "0", nil},
		{"-1.5", "-1.5", nil},
		{"1000000000000.0001", "1000000000000.0001", nil},
		{"1000000000000000000", "1000000000000000000", nil},
		{"-1000000000000000000", "-1000000000000000000", nil},
		{"1000000000000000000.0001", "", ErrOutOfRange},
		{"-1000000000000000000.0001", "", ErrOutOfRange},
		{"1.00001", "", ErrTooManyDecimals},
		{"-0.00001", "", ErrTooManyDecimals},
	})
}

// TestParseTotalUnits: a quantity the system computed (a net order) is
// positive and within TotalMax, past any one input's bound.
func TestParseTotalUnits(t *testing.T) {
	checkValueCases(t, "ParseTotalUnits(·, 4)", "units", func(s string) (Units, error) { return ParseTotalUnits(s, 4) }, append(malformedCases(),
		valueCase{"12.3456", "12.3456", nil},
		valueCase{"1000000000000.0001", "1000000000000.0001", nil},
		valueCase{"1000000000000000000", "1000000000000000000", nil},
		valueCase{"1000000000000000000.0001", "", ErrOutOfRange},
		valueCase{"1.00001", "", ErrTooManyDecimals},
		valueCase{"0", "", ErrNotPositive},
		valueCase{"-1", "", ErrNotPositive},
	))
}

// TestValueErrorMessage shows what a member sees, and that hostile input is
// cut short in the message.
func TestValueErrorMessage(t *testing.T) {
	_, err := ParseAmount("1.001")
	assert.EqualError(t, err, `cash "1.001": domain: too many decimal places (at most 2 decimal places)`, `ParseAmount("1.001")`)
	_, err = ParseAmount(strings.Repeat("9", 1000))
	if len(err.Error()) > 150 {
		t.Errorf("error for a 1000-character input is %d bytes long: %q", len(err.Error()), err)
	}
}

// checkFuzzedValue is what every fuzz target asserts: a refusal is a
// *ValueError of quantity wrapping one of the four sentinels; a value fits
// its places and bounds, and its String() parses back to an equal value.
func checkFuzzedValue(t *testing.T, quantity, in string, d decimal.Decimal, s string, err error,
	places int32, min, max decimal.Decimal, minInclusive bool, reparse func(string) (decimal.Decimal, error)) {
	t.Helper()
	if err != nil {
		var ve *ValueError
		if !errors.As(err, &ve) || ve.Quantity != quantity {
			t.Fatalf("parse %s %q: error %v (%T); want a *ValueError of %s", quantity, in, err, err, quantity)
		}
		if !errors.Is(err, ErrMalformedNumber) && !errors.Is(err, ErrTooManyDecimals) &&
			!errors.Is(err, ErrNotPositive) && !errors.Is(err, ErrOutOfRange) {
			t.Fatalf("parse %s %q: error %v wraps no known sentinel", quantity, in, err)
		}
		_ = err.Error()
		return
	}
	if !d.Equal(decimal.RequireFromString(in)) {
		t.Fatalf("parse %s %q = %s; want the value of the text", quantity, in, d)
	}
	if !fitsPlaces(d, places) {
		t.Fatalf("parse %s %q = %s: more than %d places", quantity, in, d, places)
	}
	if d.GreaterThan(max) || d.LessThan(min) || (!minInclusive && d.Equal(min)) {
		t.Fatalf("parse %s %q = %s: outside its bounds", quantity, in, d)
	}
	back, err := reparse(s)
	if err != nil || !back.Equal(d) {
		t.Fatalf("parse %s %q = %s; its String() %q parses to %s, %v", quantity, in, d, s, back, err)
	}
}

func seedValues(f *testing.F, extra ...string) {
	for _, s := range malformedInputs {
		f.Add(s)
	}
	for _, s := range append(extra, "1", "0", "0.01", "1.5", "-1", "1.001", "1000000000000", "1000000000000.01", "100", "0.5500", "12.3456") {
		f.Add(s)
	}
}

func FuzzParseAmount(f *testing.F) {
	seedValues(f, "1250.00", "0.10", "1.000")
	f.Fuzz(func(t *testing.T, s string) {
		m, err := ParseAmount(s)
		checkFuzzedValue(t, "cash", s, m.Decimal(), m.String(), err, CashDecimals, decimal.Zero, CashMax, false,
			func(s string) (decimal.Decimal, error) { v, err := ParseAmount(s); return v.Decimal(), err })
	})
}

func FuzzParseUnits(f *testing.F) {
	for _, s := range append(malformedInputs, "12.3456", "1.23456", "1", "0", "0.0001", "1000000000000", "1000000000000.0001", "-1") {
		for _, p := range []uint8{0, 3, 4, 8} {
			f.Add(s, p)
		}
	}
	f.Fuzz(func(t *testing.T, s string, p uint8) {
		places := int32(p) % (UnitDecimalsMax + 1)
		u, err := ParseUnits(s, places)
		checkFuzzedValue(t, "units", s, u.Decimal(), u.String(), err, places, decimal.Zero, UnitsMax, false,
			func(s string) (decimal.Decimal, error) { v, err := ParseUnits(s, places); return v.Decimal(), err })
		if err == nil && u.StringFixed(places) != u.Decimal().StringFixed(places) {
			t.Fatalf("StringFixed(%d) of %s", places, u)
		}
	})
}

func FuzzParsePrice(f *testing.F) {
	for _, s := range append(malformedInputs, "1.234567", "1.2345678", "0.000001", "1000000", "1000000.000001", "0", "-1") {
		for _, p := range []uint8{0, 4, 6, 8} {
			f.Add(s, p)
		}
	}
	f.Fuzz(func(t *testing.T, s string, p uint8) {
		places := int32(p) % (PriceDecimalsMax + 1)
		v, err := ParsePrice(s, places)
		checkFuzzedValue(t, "price", s, v.Decimal(), v.String(), err, places, decimal.Zero, PriceMax, false,
			func(s string) (decimal.Decimal, error) { v, err := ParsePrice(s, places); return v.Decimal(), err })
	})
}

func FuzzParseWeight(f *testing.F) {
	seedValues(f, "0.0001", "1.0000", "1.0001", "0.12345")
	f.Fuzz(func(t *testing.T, s string) {
		w, err := ParseWeight(s)
		checkFuzzedValue(t, "weight", s, w.Decimal(), w.String(), err, WeightDecimals, decimal.Zero, decimal.NewFromInt(1), true,
			func(s string) (decimal.Decimal, error) { v, err := ParseWeight(s); return v.Decimal(), err })
	})
}

func FuzzParsePercent(f *testing.F) {
	seedValues(f, "12.5", "100.00", "100.01", "12.345")
	f.Fuzz(func(t *testing.T, s string) {
		p, err := ParsePercent(s)
		checkFuzzedValue(t, "percent", s, p.Decimal(), p.String(), err, PercentDecimals, decimal.Zero, decimal.NewFromInt(100), false,
			func(s string) (decimal.Decimal, error) { v, err := ParsePercent(s); return v.Decimal(), err })
	})
}

func TestFormatFixed(t *testing.T) {
	cases := []struct {
		in     string
		places int32
		want   string
	}{
		{"0", 2, "0.00"},
		{"1250", 2, "1250.00"},
		{"1250.5", 2, "1250.50"},
		{"0.05", 2, "0.05"},
		{"-0.05", 2, "-0.05"},
		{"-1250.75", 2, "-1250.75"},
		{"12.3", 4, "12.3000"},
		{"7", 0, "7"},
		{"-7", 0, "-7"},
		{"999999999999999999", 0, "999999999999999999"}, // 18 digits: the fast path's edge
		{"9999999999999999.99", 2, "9999999999999999.99"},
		{"99999999999999999.99", 2, "99999999999999999.99"}, // 19 digits: math/big
		{"1.005", 2, "1.01"},                                // more places than asked: StringFixed rounds
		{"1e3", 2, "1000.00"},                               // positive exponent: scaled up
		{"1.2000", 2, "1.20"},                               // trailing zeros: scaled down
		{"1e16", 2, "10000000000000000.00"},                 // 19 digits once scaled: math/big
	}
	for _, c := range cases {
		assert.Equal(t, c.want, formatFixed(decimal.RequireFromString(c.in), c.places), "formatFixed(%s, %d)", c.in, c.places)
	}
}

// TestFormatFixedMatchesStringFixed compares formatFixed with the
// decimal library's StringFixed over random values (seeded).
func TestFormatFixedMatchesStringFixed(t *testing.T) {
	rng := rand.New(rand.NewPCG(7, 11))
	for i := 0; i < 100_000; i++ {
		coef := rng.Int64N(1 << uint(rng.IntN(62)+1)) // up to 19 digits
		if rng.IntN(2) == 0 {
			coef = -coef
		}
		d := decimal.New(coef, int32(rng.IntN(16))-12)
		places := int32(rng.IntN(12))
		require.Equal(t, d.StringFixed(places), formatFixed(d, places), "formatFixed(%s, %d), against StringFixed", d, places)
		// appendFixed, which views use, appends the same after what is there.
		require.Equal(t, "x,"+d.StringFixed(places), string(appendFixed([]byte("x,"), d, places)), "appendFixed(%s, %d)", d, places)
	}
}

// TestAppendMatchesString: the Append forms of the values' text write what
// their String forms return.
func TestAppendMatchesString(t *testing.T) {
	for _, s := range []string{"0", "0.01", "-12.50", "1e3", "999999999999.99"} {
		m := Money{decimal.RequireFromString(s)}
		assert.Equal(t, "a"+m.String(), string(m.Append([]byte("a"))), "money %s", s)
	}
	for _, s := range []string{"0", "3.6227", "1e2", "0.000001", "123456789.123456"} {
		u, p := Units{decimal.RequireFromString(s)}, Price{decimal.RequireFromString(s)}
		for _, places := range []int32{0, 4, 6} {
			assert.Equal(t, "a"+u.StringFixed(places), string(u.AppendFixed([]byte("a"), places)), "units %s, %d places", s, places)
			assert.Equal(t, "a"+p.StringFixed(places), string(p.AppendFixed([]byte("a"), places)), "price %s, %d places", s, places)
		}
	}
	for _, d := range []Date{{}, MustDate("2026-11-23"), MustDate("1900-01-01"), MustDate("2999-12-31"),
		NewDate(999, time.December, 31), NewDate(10000, time.January, 1)} {
		assert.Equal(t, "a"+d.String(), string(d.Append([]byte("a"))), "date %s", d)
	}
	for day := MustDate("1999-12-25"); day.Before(MustDate("2031-01-10")); day = day.AddDays(1) {
		require.Equal(t, day.String(), string(day.Append(nil)))
	}
}

// TestCheckDecimalMatchesMathBig compares checkDecimal's int64 path with
// the decimal library's arithmetic over random values (seeded), at bounds
// that fit an int64 once scaled and bounds that do not.
func TestCheckDecimalMatchesMathBig(t *testing.T) {
	rng := rand.New(rand.NewPCG(13, 17))
	bounds := []decimal.Decimal{TotalMax, decimal.New(1, 6), decimal.RequireFromString("123.45"), decimal.New(1, 0), decimal.New(5, 20)}
	for i := 0; i < 100_000; i++ {
		coef := rng.Int64N(1 << uint(rng.IntN(62)+1))
		if rng.IntN(2) == 0 {
			coef = -coef
		}
		d := decimal.New(coef, int32(rng.IntN(20))-12)
		places := int32(rng.IntN(10))
		bound := bounds[rng.IntN(len(bounds))]
		want := d.Equal(d.Truncate(places)) && d.Abs().Cmp(bound) <= 0
		err := checkDecimal("x", d, places, false, bound)
		require.Equal(t, want, err == nil, "checkDecimal(%s, %d places, max %s): %v", d, places, bound, err)
	}
}
