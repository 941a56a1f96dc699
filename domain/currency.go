package domain

import (
	"errors"
	"fmt"
	"sort"
)

// Currency is an ISO 4217 alphabetic currency code, e.g. "GBP". Values that
// come from outside go through ParseCurrency.
type Currency string

// GBP is pound sterling, the platform's base currency: every amount of cash
// in the ledger is in GBP (docs/domain.md).
const GBP Currency = "GBP"

// ErrUnknownCurrency refuses text that is not an active ISO 4217 code; it is
// wrapped in a *CurrencyError saying which text and why.
var ErrUnknownCurrency = errors.New("domain: unknown currency")

// CurrencyError is a refused currency code: the text given and why.
type CurrencyError struct {
	Input  string // the text given, truncated if long
	Detail string // e.g. "not an active ISO 4217 code"
}

// Error says which text was refused and why.
func (e *CurrencyError) Error() string {
	return fmt.Sprintf("%v %q: %s", ErrUnknownCurrency, e.Input, e.Detail)
}

// Unwrap makes errors.Is(err, ErrUnknownCurrency) true.
func (e *CurrencyError) Unwrap() error { return ErrUnknownCurrency }

// ParseCurrency checks s as an active ISO 4217 alphabetic code: three
// upper-case letters that appear in List One (current currencies, funds
// codes and precious metals). Lower case is refused rather than folded, as
// for ISINs: a code that reaches the ledger is spelled one way only.
func ParseCurrency(s string) (Currency, error) {
	if len(s) != 3 || !isUpperLetter(s[0]) || !isUpperLetter(s[1]) || !isUpperLetter(s[2]) {
		return "", &CurrencyError{Input: truncateForError(s), Detail: "want three upper-case letters A–Z"}
	}
	if !isActiveCurrencyCode(s) {
		return "", &CurrencyError{Input: s, Detail: "not an active ISO 4217 code"}
	}
	return Currency(s), nil
}

// String is the code.
func (c Currency) String() string { return string(c) }

// iso4217Active lists the active alphabetic codes of ISO 4217 List One, as
// published by the maintenance agency (SIX) in 2026: sorted, each code
// followed by one space, so that code i is iso4217Active[4i : 4i+3] and a
// lookup is a binary search over a constant with no table built at start-up.
// Retired codes are absent: ANG (replaced by XCG in 2025), BGN (Bulgaria
// joined the euro in 2026), CUC, HRK, SLL, ZWL and older ones. When the
// agency amends the list, edit it here; TestCurrencyTable checks its shape.
const iso4217Active = "" +
	"AED AFN ALL AMD AOA ARS AUD AWG AZN BAM BBD BDT BHD BIF BMD BND " +
	"BOB BOV BRL BSD BTN BWP BYN BZD CAD CDF CHE CHF CHW CLF CLP CNY " +
	"COP COU CRC CUP CVE CZK DJF DKK DOP DZD EGP ERN ETB EUR FJD FKP " +
	"GBP GEL GHS GIP GMD GNF GTQ GYD HKD HNL HTG HUF IDR ILS INR IQD " +
	"IRR ISK JMD JOD JPY KES KGS KHR KMF KPW KRW KWD KYD KZT LAK LBP " +
	"LKR LRD LSL LYD MAD MDL MGA MKD MMK MNT MOP MRU MUR MVR MWK MXN " +
	"MXV MYR MZN NAD NGN NIO NOK NPR NZD OMR PAB PEN PGK PHP PKR PLN " +
	"PYG QAR RON RSD RUB RWF SAR SBD SCR SDG SEK SGD SHP SLE SOS SRD " +
	"SSP STN SVC SYP SZL THB TJS TMT TND TOP TRY TTD TWD TZS UAH UGX " +
	"USD USN UYI UYU UYW UZS VED VES VND VUV WST XAD XAF XAG XAU XBA " +
	"XBB XBC XBD XCD XCG XDR XOF XPD XPF XPT XSU XTS XUA XXX YER ZAR " +
	"ZMW ZWG "

// currencyCodeStride is the width of one entry of iso4217Active.
const currencyCodeStride = 4

func currencyCodeAt(i int) string {
	return iso4217Active[i*currencyCodeStride : i*currencyCodeStride+3]
}

func currencyCodeCount() int { return len(iso4217Active) / currencyCodeStride }

func isActiveCurrencyCode(code string) bool {
	n := currencyCodeCount()
	i := sort.Search(n, func(i int) bool { return currencyCodeAt(i) >= code })
	return i < n && currencyCodeAt(i) == code
}
