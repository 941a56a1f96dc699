package domain

import (
	"errors"
	"fmt"
)

// ISIN is an International Securities Identification Number (ISO 6166): a
// two-letter country prefix, a nine-character national number and a check
// digit, e.g. "GB00B3X7QG63". Every ISIN held by the platform went through
// ParseISIN, so a value of this type is well formed unless it was converted
// from an unchecked string.
type ISIN string

// ISINLen is the length of an ISIN in characters (bytes: it is ASCII).
const ISINLen = 12

// ErrInvalidISIN refuses text that is not an ISIN; it is wrapped in an
// *ISINError saying which text and why.
var ErrInvalidISIN = errors.New("domain: invalid ISIN")

// ISINReason says which rule an invalid ISIN broke.
type ISINReason int

const (
	// ISINBadFormat: wrong length, or a character not allowed where it is.
	ISINBadFormat ISINReason = iota + 1
	// ISINBadCheckDigit: well formed, but the check digit does not match the
	// other eleven characters (a typo, or most swaps of two neighbours).
	ISINBadCheckDigit
)

// String names the reason for error messages and logs.
func (r ISINReason) String() string {
	switch r {
	case ISINBadFormat:
		return "format"
	case ISINBadCheckDigit:
		return "check digit"
	default:
		return fmt.Sprintf("ISINReason(%d)", int(r))
	}
}

// ISINError is a refused ISIN: the text given, which rule it broke, and a
// sentence saying exactly what is wrong.
type ISINError struct {
	Input  string     // the text given, truncated if long
	Reason ISINReason // ISINBadFormat or ISINBadCheckDigit
	Detail string     // e.g. "check digit is 6, want 5"
}

// Error says which text was refused and why.
func (e *ISINError) Error() string {
	return fmt.Sprintf("%v %q: %s", ErrInvalidISIN, e.Input, e.Detail)
}

// Unwrap makes errors.Is(err, ErrInvalidISIN) true.
func (e *ISINError) Unwrap() error { return ErrInvalidISIN }

// ParseISIN checks s as an ISIN: exactly 12 characters, two upper-case
// letters A–Z (the country or issuing-body prefix; not checked against the
// ISO 3166 list, because prefixes such as XS and EU are not countries), nine
// upper-case letters or digits, and a check digit that matches (Luhn over the
// characters with letters expanded to numbers, A=10 … Z=35). Lower case is
// refused rather than folded: an identifier that reaches the ledger must be
// spelled one way only.
func ParseISIN(s string) (ISIN, error) {
	bad := func(reason ISINReason, format string, args ...any) (ISIN, error) {
		return "", &ISINError{Input: truncateForError(s), Reason: reason, Detail: fmt.Sprintf(format, args...)}
	}
	if len(s) != ISINLen {
		return bad(ISINBadFormat, "want %d characters, got %d", ISINLen, len(s))
	}
	for i := 0; i < ISINLen; i++ {
		c := s[i]
		switch {
		case i < 2:
			if !isUpperLetter(c) {
				return bad(ISINBadFormat, "character %d is %q: the country prefix must be two upper-case letters A–Z", i+1, s[i:i+1])
			}
		case i < ISINLen-1:
			if !isUpperLetter(c) && !isDigit(c) {
				return bad(ISINBadFormat, "character %d is %q: the national number must be upper-case letters A–Z or digits", i+1, s[i:i+1])
			}
		default:
			if !isDigit(c) {
				return bad(ISINBadFormat, "character %d is %q: the check digit must be a digit", i+1, s[i:i+1])
			}
		}
	}
	want := isinCheckDigit(s[:ISINLen-1])
	if got := s[ISINLen-1]; got != want {
		return bad(ISINBadCheckDigit, "check digit is %c, want %c", got, want)
	}
	return ISIN(s), nil
}

// String is the ISIN's text.
func (i ISIN) String() string { return string(i) }

// isinCheckDigit computes the ISO 6166 check digit of the first eleven
// characters of an ISIN, which must already be upper-case letters and digits.
// Each letter becomes two digits (A=10 … Z=35); then the Luhn algorithm: from
// the rightmost digit leftwards, every other digit, starting with the
// rightmost, is doubled (and its digits summed); the check digit brings the
// total to a multiple of 10.
func isinCheckDigit(body string) byte {
	if len(body) != ISINLen-1 {
		panic(fmt.Sprintf("domain: isinCheckDigit of %d characters", len(body)))
	}
	// 11 characters expand to at most 22 digits; a fixed array keeps this
	// free of allocation.
	var digits [2 * (ISINLen - 1)]byte
	n := 0
	for i := 0; i < len(body); i++ {
		c := body[i]
		if isDigit(c) {
			digits[n] = c - '0'
			n++
			continue
		}
		v := c - 'A' + 10
		digits[n], digits[n+1] = v/10, v%10
		n += 2
	}
	sum := 0
	double := true // the rightmost digit of the body is next to the check digit
	for i := n - 1; i >= 0; i-- {
		d := int(digits[i])
		if double {
			d *= 2
			if d > 9 {
				d -= 9
			}
		}
		sum += d
		double = !double
	}
	return byte('0' + (10-sum%10)%10)
}

func isUpperLetter(c byte) bool { return c >= 'A' && c <= 'Z' }
func isDigit(c byte) bool       { return c >= '0' && c <= '9' }
