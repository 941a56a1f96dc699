package domain

import (
	"errors"
	"testing"
)

// TestParseCurrency accepts active ISO 4217 codes and refuses retired,
// unknown and badly written ones.
func TestParseCurrency(t *testing.T) {
	for _, code := range []string{"GBP", "EUR", "USD", "JPY", "CHF", "AED", "ZWG", "XCG", "XAU", "XXX", "CLF", "SLE", "VED"} {
		got, err := ParseCurrency(code)
		if err != nil || got != Currency(code) || got.String() != code {
			t.Errorf("ParseCurrency(%q) = %q, %v; want %q, nil", code, got, err, code)
		}
	}
	if c, err := ParseCurrency("GBP"); err != nil || c != GBP {
		t.Errorf("ParseCurrency(\"GBP\") = %q, %v; want GBP", c, err)
	}

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
		if !errors.Is(err, ErrUnknownCurrency) || !errors.As(err, &ce) {
			t.Errorf("ParseCurrency(%q) = %q, %v; want a *CurrencyError wrapping ErrUnknownCurrency", tc.in, got, err)
			continue
		}
		if got != "" || ce.Detail != tc.detail {
			t.Errorf("ParseCurrency(%q) = %q, %q; want \"\", %q", tc.in, got, ce.Detail, tc.detail)
		}
	}
	_, err := ParseCurrency("ZZZ")
	if want := `domain: unknown currency "ZZZ": not an active ISO 4217 code`; err.Error() != want {
		t.Errorf("error = %q; want %q", err, want)
	}
}

// TestCurrencyTable checks the shape the binary search relies on: fixed
// stride, upper-case codes, strictly ascending; and the size of List One.
func TestCurrencyTable(t *testing.T) {
	if len(iso4217Active)%currencyCodeStride != 0 {
		t.Fatalf("len(iso4217Active) = %d, not a multiple of %d", len(iso4217Active), currencyCodeStride)
	}
	n := currencyCodeCount()
	if n < 170 || n > 190 {
		t.Errorf("%d codes; List One has about 180", n)
	}
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
