package domain

import (
	"testing"

	"github.com/stretchr/testify/assert"
)

// TestParseISIN checks the ISO 6166 format and check digit on real ISINs and
// on each way one can be wrong.
func TestParseISIN(t *testing.T) {
	valid := []struct{ isin, issuer string }{
		{"US0378331005", "Apple"},
		{"US5949181045", "Microsoft"},
		{"US38259P5089", "Google (letters in the national number)"},
		{"US88160R1014", "Tesla"},
		{"GB0002634946", "BAE Systems"},
		{"GB00BH4HKS39", "Vodafone"},
		{"GB00B3X7QG63", "Vanguard FTSE UK All Share Index Unit Trust"},
		{"GB00BD3RZ582", "Vanguard FTSE Global All Cap Index Fund"},
		{"IE00B4L5Y983", "iShares Core MSCI World UCITS ETF"},
		{"IE00BK5BQT80", "Vanguard FTSE All-World UCITS ETF"},
		{"AU0000XVGZA3", "Treasury Corporation of Victoria"},
		{"DE000BAY0017", "Bayer"},
		{"CH0012032048", "Roche"},
		{"FR0000120271", "TotalEnergies"},
		{"NL0000235190", "Airbus"},
		{"JP3435000009", "Sony"},
	}
	for _, tc := range valid {
		got, err := ParseISIN(tc.isin)
		assert.NoError(t, err, "ParseISIN(%q) (%s)", tc.isin, tc.issuer)
		assert.Equal(t, ISIN(tc.isin), got, "ParseISIN(%q) (%s)", tc.isin, tc.issuer)
		assert.Equal(t, tc.isin, got.String(), "ParseISIN(%q) (%s).String()", tc.isin, tc.issuer)
	}

	invalid := []struct {
		in     string
		reason ISINReason
		detail string
	}{
		{"US0378331006", ISINBadCheckDigit, "check digit is 6, want 5"},
		{"GB0002634947", ISINBadCheckDigit, "check digit is 7, want 6"},
		{"IE00B4L5Y984", ISINBadCheckDigit, "check digit is 4, want 3"},
		// Two adjacent characters swapped: the Luhn check catches it.
		{"US0373831005", ISINBadCheckDigit, "check digit is 5, want 9"},
		{"us0378331005", ISINBadFormat, `character 1 is "u": the country prefix must be two upper-case letters A–Z`},
		{"GB00b3x7qg63", ISINBadFormat, `character 5 is "b": the national number must be upper-case letters A–Z or digits`},
		{"US037833100", ISINBadFormat, "want 12 characters, got 11"},
		{"US03783310055", ISINBadFormat, "want 12 characters, got 13"},
		{"", ISINBadFormat, "want 12 characters, got 0"},
		{"120378331005", ISINBadFormat, `character 1 is "1": the country prefix must be two upper-case letters A–Z`},
		{"U10378331005", ISINBadFormat, `character 2 is "1": the country prefix must be two upper-case letters A–Z`},
		{"US037833100X", ISINBadFormat, `character 12 is "X": the check digit must be a digit`},
		{"US-378331005", ISINBadFormat, `character 3 is "-": the national number must be upper-case letters A–Z or digits`},
		{" US037833100", ISINBadFormat, `character 1 is " ": the country prefix must be two upper-case letters A–Z`},
		{"US03783310é", ISINBadFormat, `character 11 is "\xc3": the national number must be upper-case letters A–Z or digits`},
	}
	for _, tc := range invalid {
		got, err := ParseISIN(tc.in)
		var ie *ISINError
		ok := assert.ErrorIs(t, err, ErrInvalidISIN, "ParseISIN(%q)", tc.in)
		if !assert.ErrorAs(t, err, &ie, "ParseISIN(%q)", tc.in) || !ok {
			continue
		}
		assert.Empty(t, got, "ParseISIN(%q)'s ISIN", tc.in)
		assert.Equal(t, tc.reason, ie.Reason, "ParseISIN(%q)'s error reason", tc.in)
		assert.Equal(t, tc.detail, ie.Detail, "ParseISIN(%q)'s error detail", tc.in)
		assert.Equal(t, tc.in, ie.Input, "ParseISIN(%q)'s error input", tc.in)
	}
}

// TestISINErrorMessage shows the message a member or operator sees.
func TestISINErrorMessage(t *testing.T) {
	_, err := ParseISIN("US0378331006")
	assert.EqualError(t, err, `domain: invalid ISIN "US0378331006": check digit is 6, want 5`, `ParseISIN("US0378331006")`)
	assert.Equal(t, "check digit", ISINBadCheckDigit.String(), "ISINBadCheckDigit.String()")
}

// TestISINCheckDigitEveryPosition proves that changing any one character of a
// valid ISIN to another allowed character is caught.
func TestISINCheckDigitEveryPosition(t *testing.T) {
	const base = "GB00B3X7QG63"
	const alnum = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ"
	for i := 2; i < ISINLen-1; i++ {
		for j := 0; j < len(alnum); j++ {
			if alnum[j] == base[i] {
				continue
			}
			s := base[:i] + string(alnum[j]) + base[i+1:]
			if _, err := ParseISIN(s); err == nil {
				// A letter and a digit pair can collide (e.g. "1" vs "A"
				// expanding to "10"); only single digits must always differ.
				if isDigit(alnum[j]) && isDigit(base[i]) {
					t.Errorf("ParseISIN(%q) accepted a one-digit change of %s", s, base)
				}
			}
		}
	}
}

func BenchmarkParseISIN(b *testing.B) {
	for b.Loop() {
		if _, err := ParseISIN("GB00B3X7QG63"); err != nil {
			b.Fatal(err)
		}
	}
}
