package domain

import (
	"testing"

	"github.com/stretchr/testify/assert"
)

// TestParseCurrency accepts active ISO 4217 codes and refuses retired,
// unknown and badly written ones.
func TestParseCurrency(t *testing.T) {
	for _, code := range []string{"GBP", "EUR", "USD", "JPY", "CHF", "AED", "ZWG", "XCG", "XAU", "XXX", "CLF", "SLE", "VED"} {
		got, err := ParseCurrency(code)
		assert.NoError(t, err, "ParseCurrency(%q)", code)
		assert.Equal(t, Currency(code), got, "ParseCurrency(%q)", code)
		assert.Equal(t, code, got.String(), "ParseCurrency(%q).String()", code)
	}
	c, err := ParseCurrency("GBP")
	assert.NoError(t, err, `ParseCurrency("GBP")`)
	assert.Equal(t, GBP, c, `ParseCurrency("GBP")`)

	for _, tc := range []struct{ in, detail string }{
		{"gbp", "want three upper-case letters A–Z"},
		{"Gbp", "want three upper-case letters A–Z"},
		{"GB", "want three upper-case letters A–Z"},
		{"GBPP", "want three upper-case letters A–Z"},
		{"", "want three upper-case letters A–Z"},
		{" GBP", "want three upper-case letters A–Z"},
		{"826", "want three upper-case letters A–Z"},
		{"G€", "want three upper-case letters A–Z"},
		{"ZZZ", "not an active ISO 4217 code"},
		{"AAA", "not an active ISO 4217 code"},
		{"ZZZ", "not an active ISO 4217 code"},
		{"ANG", "not an active ISO 4217 code"}, // replaced by XCG
		{"BGN", "not an active ISO 4217 code"}, // Bulgaria joined the euro
		{"HRK", "not an active ISO 4217 code"}, // Croatia joined the euro
		{"DEM", "not an active ISO 4217 code"},
		{"ZWL", "not an active ISO 4217 code"}, // replaced by ZWG
		{"SLL", "not an active ISO 4217 code"}, // replaced by SLE
	} {
		got, err := ParseCurrency(tc.in)
		var ce *CurrencyError
		ok := assert.ErrorIs(t, err, ErrUnknownCurrency, "ParseCurrency(%q)", tc.in)
		if !assert.ErrorAs(t, err, &ce, "ParseCurrency(%q)", tc.in) || !ok {
			continue
		}
		assert.Empty(t, got, "ParseCurrency(%q)'s currency", tc.in)
		assert.Equal(t, tc.detail, ce.Detail, "ParseCurrency(%q)'s error detail", tc.in)
	}
	_, err = ParseCurrency("ZZZ")
	assert.EqualError(t, err, `domain: unknown currency "ZZZ": not an active ISO 4217 code`, `ParseCurrency("ZZZ")`)
}

// TestCurrencyTable checks the shape the binary search relies on: fixed
// stride, upper-case codes, strictly ascending; and the size of List One.
func TestCurrencyTable(t *testing.T) {
	if len(iso4217Active)%currencyCodeStride != 0 {
		t.Fatalf("len(iso4217Active) = %d, not a multiple of %d", len(iso4217Active), currencyCodeStride)
	}
	n := currencyCodeCount()
	// List One has about 180.
	assert.GreaterOrEqual(t, n, 170, "codes")
	assert.LessOrEqual(t, n, 190, "codes")
	for i := 0; i < n; i++ {
		code := currencyCodeAt(i)
		if iso4217Active[i*currencyCodeStride+3] != ' ' {
			t.Errorf("entry %d (%q) is not followed by a space", i, code)
		}
		for j := 0; j < 3; j++ {
			if !isUpperLetter(code[j]) {
				t.Errorf("entry %d %q is not three upper-case letters", i, code)
			}
		}
		if i > 0 && currencyCodeAt(i-1) >= code {
			t.Errorf("entry %d %q does not sort after %q", i, code, currencyCodeAt(i-1))
		}
		if !isActiveCurrencyCode(code) {
			t.Errorf("isActiveCurrencyCode(%q) = false for a listed code", code)
		}
	}
}
