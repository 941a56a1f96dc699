package domain

import (
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"

	"github.com/shopspring/decimal"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestDefaultCatalogue proves the embedded catalogue loads and has what
// docs/domain.md asks for: at least five assets with valid ISINs and the
// cautious, balanced and adventurous profiles with 5/25 bands.
func TestDefaultCatalogue(t *testing.T) {
	c, err := LoadCatalogue(DefaultCatalogueJSON())
	require.NoError(t, err, "LoadCatalogue(embedded catalogue.json)")
	checkCatalogueInvariants(t, c)
	assert.Same(t, DefaultCatalogue(), DefaultCatalogue(), "DefaultCatalogue() loads the file on every call; want one shared catalogue")
	assert.Equal(t, GBP, c.Currency(), "Currency()")

	assets := c.Assets()
	assert.GreaterOrEqual(t, len(assets), 5, "assets")
	var t3, t4, oddUnits, price4 bool
	for _, a := range assets {
		t3 = t3 || a.SettlementDays == 3
		t4 = t4 || a.SettlementDays == 4
		oddUnits = oddUnits || a.UnitDecimals != UnitDecimalsDefault
		price4 = price4 || a.PriceDecimals == 4
	}
	assert.True(t, t3, "an asset settling T+3")
	assert.True(t, t4, "an asset settling T+4")
	assert.True(t, oddUnits, "an asset with unitDecimals other than 4")
	assert.True(t, price4, "an asset with priceDecimals 4")

	var names []string
	for _, p := range c.Profiles() {
		names = append(names, p.Name)
		if !p.Band.Equal(DefaultBand()) {
			t.Errorf("profile %s: band %v/%v; want 0.0500/0.2500", p.Name, p.Band.Absolute, p.Band.Relative)
		}
	}
	assert.Equal(t, []string{"adventurous", "balanced", "cautious"}, names, "profiles")

	// balanced is docs/domain.md's example: 55% global equity, 35% bonds, 8%
	// property, 2% cash.
	b, ok := c.Profile("balanced")
	require.True(t, ok, `Profile("balanced") found`)
	want := map[string]string{
		"ACME Global Equity Index Fund":            "0.5500",
		"ACME Global Bond Index Fund (GBP Hedged)": "0.3500",
		"ACME UK Property Fund":                    "0.0800",
	}
	for _, isin := range b.Assets() {
		a, _ := c.Asset(isin)
		assert.Equal(t, want[a.Name], b.Target(isin).String(), "balanced: %s (%s) target", isin, a.Name)
		delete(want, a.Name)
	}
	assert.Empty(t, want, "balanced: assets missing")
	assert.Equal(t, "0.0200", b.Cash.String(), "balanced: cash")
}

// TestCatalogueIsImmutable proves a caller cannot change the catalogue
// through what its methods return.
func TestCatalogueIsImmutable(t *testing.T) {
	c, err := LoadCatalogue(DefaultCatalogueJSON())
	require.NoError(t, err)
	p, _ := c.Profile("balanced")
	for isin := range p.Weights {
		p.Weights[isin] = WeightOne
	}
	p.Weights["GB0002634946"] = WeightOne
	ps := c.Profiles()
	ps[0].Weights["GB0002634946"] = WeightOne
	as := c.Assets()
	as[0].Name = "changed"

	checkCatalogueInvariants(t, c)
	if a := c.Assets()[0]; a.Name == "changed" {
		t.Errorf("changing the slice from Assets() changed the catalogue")
	}
	if p2, _ := c.Profile("balanced"); !p2.Target("GB0002634946").IsZero() {
		t.Errorf("changing the map from Profile() changed the catalogue")
	}
}

// TestCatalogueLookups checks Asset, Profile, Target and the orderings.
func TestCatalogueLookups(t *testing.T) {
	c := DefaultCatalogue()
	// The global bond fund.
	a, ok := c.Asset("IE00BF4W7M71")
	if assert.True(t, ok, `Asset("IE00BF4W7M71") found`) {
		assert.Equal(t, int32(3), a.UnitDecimals, `Asset("IE00BF4W7M71"): unit decimals`)
		assert.Equal(t, 4, a.SettlementDays, `Asset("IE00BF4W7M71"): settlement days`)
		assert.Equal(t, GBP, a.Currency, `Asset("IE00BF4W7M71"): currency`)
	}
	_, ok = c.Asset("US0378331005")
	assert.False(t, ok, `Asset("US0378331005") found`)
	_, ok = c.Profile("reckless")
	assert.False(t, ok, `Profile("reckless") found`)
	p, _ := c.Profile("balanced")
	if w := p.Target("GB00BD8R3K42"); !w.IsZero() {
		t.Errorf("balanced target of the UK equity fund = %s; want 0 (not in the profile)", w)
	}
	got := p.Assets()
	assert.Len(t, got, 3, "balanced Assets()")
	assert.True(t, slices.IsSorted(got), "balanced Assets() %v in order", got)
}

// TestLoadCatalogueDefaults proves left-out fields take their documented
// defaults and an explicit zero stays zero.
func TestLoadCatalogueDefaults(t *testing.T) {
	c, err := LoadCatalogue([]byte(`{"baseCurrency":"GBP",
		"assets":[{"isin":"GB00B3X7QG63","name":"UK","currency":"GBP"},
		          {"isin":"IE00B4L5Y983","name":"World","currency":"GBP","unitDecimals":0,"priceDecimals":0,"settlementDays":0}],
		"riskProfiles":[{"name":"all-uk","weights":{"GB00B3X7QG63":"1"}},
		                {"name":"half","weights":{"IE00B4L5Y983":"0.5","cash":"0.5"},"band":{"relative":"0.1"}}]}`))
	require.NoError(t, err)
	uk, _ := c.Asset("GB00B3X7QG63")
	assert.Equal(t, int32(4), uk.UnitDecimals, "default unitDecimals")
	assert.Equal(t, int32(6), uk.PriceDecimals, "default priceDecimals")
	assert.Equal(t, 3, uk.SettlementDays, "default settlementDays")
	world, _ := c.Asset("IE00B4L5Y983")
	assert.Zero(t, world.UnitDecimals, "explicit zero unitDecimals")
	assert.Zero(t, world.PriceDecimals, "explicit zero priceDecimals")
	assert.Zero(t, world.SettlementDays, "explicit zero settlementDays")
	all, _ := c.Profile("all-uk")
	assert.True(t, all.Band.Equal(DefaultBand()), "all-uk: band %s/%s, want the default", all.Band.Absolute, all.Band.Relative)
	assert.True(t, all.Cash.IsZero(), "all-uk: cash %s, want none", all.Cash)
	half, _ := c.Profile("half")
	assert.Equal(t, "0.0500", half.Band.Absolute.String(), "half: absolute band")
	assert.Equal(t, "0.1000", half.Band.Relative.String(), "half: relative band")
}

// A small valid catalogue the invalid cases below are variations of.
const (
	okAssets = `[{"isin":"GB00B3X7QG63","name":"UK Equity","currency":"GBP"},
	             {"isin":"IE00B4L5Y983","name":"World Equity","currency":"GBP"}]`
	okWeights  = `{"GB00B3X7QG63":"0.5","IE00B4L5Y983":"0.4","cash":"0.1"}`
	okProfiles = `[{"name":"p","weights":` + okWeights + `}]`
)

func catalogueText(assets, profiles string) string {
	return `{"baseCurrency":"GBP","assets":` + assets + `,"riskProfiles":` + profiles + `}`
}

// TestLoadCatalogueInvalid gives one broken file per rule and checks the
// problem lines, and that every refusal is a *CatalogueError wrapping
// ErrInvalidCatalogue.
func TestLoadCatalogueInvalid(t *testing.T) {
	_, err := LoadCatalogue([]byte(catalogueText(okAssets, okProfiles)))
	require.NoError(t, err, "the base of the cases loads")
	asset := func(fields string) string {
		return `[{"isin":"GB00B3X7QG63","name":"UK Equity","currency":"GBP"` + fields + `}]`
	}
	profile := func(fields string) string {
		return `[{"name":"p","weights":{"GB00B3X7QG63":"0.9","cash":"0.1"}` + fields + `}]`
	}
	weights := func(w string) string { return `[{"name":"p","weights":` + w + `}]` }
	cases := []struct {
		name string
		in   string
		want []string
	}{
		// Not a catalogue at all.
		{"empty", ``, []string{"empty file: want a JSON object"}},
		{"truncated", `{"baseCurrency":"GBP","assets":[`, []string{"not valid JSON: the file ends in the middle of a value"}},
		{"syntax", `{"baseCurrency":"GBP",}`, []string{`not valid JSON at byte 23: invalid character '}' looking for beginning of object key string`}},
		{"array", `[]`, []string{"want a JSON object, got a JSON array"}},
		{"unknown field", `{"baseCurrency":"GBP","assets":[],"fees":"0.01"}`, []string{`unknown field "fees"`}},
		{"unknown asset field", catalogueText(asset(`,"sedol":"B3X7QG6"`), `[]`), []string{`unknown field "sedol"`}},
		{"trailing data", catalogueText(okAssets, okProfiles) + `{}`, []string{"data after the catalogue object"}},
		{"decimals as a string", catalogueText(asset(`,"unitDecimals":"4"`), `[]`),
			[]string{"assets.unitDecimals: want a JSON value for Go type int32, got a JSON string"}},
		{"too large", catalogueText(okAssets, okProfiles) + strings.Repeat(" ", CatalogueBytesMax),
			[]string{fmt.Sprintf("file is %d bytes, more than the limit of 1048576", len(catalogueText(okAssets, okProfiles))+CatalogueBytesMax)}},

		// Keys encoding/json would let through.
		{"duplicate key", catalogueText(okAssets, weights(`{"GB00B3X7QG63":"0.5","IE00B4L5Y983":"0.4","cash":"0.1","cash":"0.1"}`)),
			[]string{`riskProfiles[0].weights: key "cash" appears more than once`}},
		{"duplicate field", `{"baseCurrency":"GBP","baseCurrency":"GBP","assets":` + okAssets + `,"riskProfiles":[]}`,
			[]string{`top level: key "baseCurrency" appears more than once`}},
		{"field name case", catalogueText(`[{"ISIN":"GB00B3X7QG63","name":"UK Equity","currency":"GBP"}]`, `[]`),
			[]string{`assets[0]: key "ISIN" is not a field name (field names are case-sensitive)`}},

		// Base currency.
		{"base currency USD", `{"baseCurrency":"USD","assets":` + okAssets + `}`,
			[]string{`baseCurrency "USD": the platform is single-currency for now: only GBP is supported`}},
		{"base currency missing", `{"assets":` + okAssets + `}`, []string{`baseCurrency: missing; want "GBP"`}},
		{"base currency unknown", `{"baseCurrency":"GBX","assets":` + okAssets + `}`,
			[]string{`baseCurrency "GBX": not an active ISO 4217 code`}},

		// Assets.
		{"no assets", catalogueText(`[]`, `[]`), []string{"assets: none; a catalogue needs at least one asset"}},
		{"isin check digit", catalogueText(`[{"isin":"GB00B3X7QG64","name":"UK Equity","currency":"GBP"}]`, `[]`),
			[]string{`assets[0] "GB00B3X7QG64": isin: check digit is 4, want 3`}},
		{"isin lower case", catalogueText(`[{"isin":"gb00b3x7qg63","name":"UK Equity","currency":"GBP"}]`, `[]`),
			[]string{`assets[0] "gb00b3x7qg63": isin: character 1 is "g": the country prefix must be two upper-case letters A–Z`}},
		{"isin missing", catalogueText(`[{"name":"UK Equity","currency":"GBP"}]`, `[]`), []string{`assets[0]: isin: missing`}},
		{"duplicate asset", catalogueText(`[{"isin":"GB00B3X7QG63","name":"A","currency":"GBP"},{"isin":"GB00B3X7QG63","name":"B","currency":"GBP"}]`, `[]`),
			[]string{`assets[1] "GB00B3X7QG63": duplicate isin, first at assets[0]`}},
		{"name missing", catalogueText(`[{"isin":"GB00B3X7QG63","name":" ","currency":"GBP"}]`, `[]`),
			[]string{`assets[0] "GB00B3X7QG63": name: missing`}},
		{"name spaces", catalogueText(`[{"isin":"GB00B3X7QG63","name":"UK ","currency":"GBP"}]`, `[]`),
			[]string{`assets[0] "GB00B3X7QG63": name "UK ": leading or trailing space`}},
		{"name control", catalogueText(`[{"isin":"GB00B3X7QG63","name":"UK\nEquity","currency":"GBP"}]`, `[]`),
			[]string{`assets[0] "GB00B3X7QG63": name "UK\nEquity": control characters are not allowed`}},
		{"name too long", catalogueText(`[{"isin":"GB00B3X7QG63","name":"`+strings.Repeat("x", 101)+`","currency":"GBP"}]`, `[]`),
			[]string{`assets[0] "GB00B3X7QG63": name: 101 bytes, more than the limit of 100`}},
		{"duplicate asset field", catalogueText(asset(`,"currency":"EUR"`), `[]`),
			[]string{
				`assets[0]: key "currency" appears more than once`,
				`assets[0] "GB00B3X7QG63": currency "EUR": the platform is single-currency for now: every asset must be in GBP`,
			}},
		{"asset currency EUR", catalogueText(`[{"isin":"GB00B3X7QG63","name":"UK Equity","currency":"EUR"}]`, `[]`),
			[]string{`assets[0] "GB00B3X7QG63": currency "EUR": the platform is single-currency for now: every asset must be in GBP`}},
		{"asset currency lower case", catalogueText(`[{"isin":"GB00B3X7QG63","name":"UK Equity","currency":"gbp"}]`, `[]`),
			[]string{`assets[0] "GB00B3X7QG63": currency "gbp": want three upper-case letters A–Z`}},
		{"asset currency missing", catalogueText(`[{"isin":"GB00B3X7QG63","name":"UK Equity"}]`, `[]`),
			[]string{`assets[0] "GB00B3X7QG63": currency: missing; want "GBP"`}},
		{"decimals out of range", catalogueText(asset(`,"unitDecimals":9,"priceDecimals":-1,"settlementDays":11`), `[]`),
			[]string{
				`assets[0] "GB00B3X7QG63": unitDecimals 9: must be between 0 and 8`,
				`assets[0] "GB00B3X7QG63": priceDecimals -1: must be between 0 and 8`,
				`assets[0] "GB00B3X7QG63": settlementDays 11: must be between 0 and 10 dealing days`,
			}},
		{"negative settlement", catalogueText(asset(`,"settlementDays":-1`), `[]`),
			[]string{`assets[0] "GB00B3X7QG63": settlementDays -1: must be between 0 and 10 dealing days`}},

		// Risk profiles.
		{"profile name case", catalogueText(asset(""), `[{"name":"Balanced","weights":{"GB00B3X7QG63":"1"}}]`),
			[]string{`riskProfiles[0] "Balanced": name: want 1 to 32 characters a-z, 0-9 or '-'`}},
		{"profile name long", catalogueText(asset(""), `[{"name":"`+strings.Repeat("a", 33)+`","weights":{"GB00B3X7QG63":"1"}}]`),
			[]string{`riskProfiles[0] "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa": name: want 1 to 32 characters a-z, 0-9 or '-'`}},
		{"profile name missing", catalogueText(asset(""), `[{"weights":{"GB00B3X7QG63":"1"}}]`),
			[]string{`riskProfiles[0]: name: missing`}},
		{"duplicate profile", catalogueText(asset(""), `[{"name":"p","weights":{"GB00B3X7QG63":"1"}},{"name":"p","weights":{"cash":"1"}}]`),
			[]string{`riskProfiles[1] "p": duplicate name, first at riskProfiles[0]`}},
		{"no weights", catalogueText(asset(""), `[{"name":"p"}]`),
			[]string{`riskProfiles[0] "p": weights: none; want a weight per asset and "cash", summing to 1`}},
		{"sum below 1", catalogueText(okAssets, weights(`{"GB00B3X7QG63":"0.5","IE00B4L5Y983":"0.4","cash":"0.0999"}`)),
			[]string{`riskProfiles[0] "p": weights sum to 0.9999 (assets 0.9000 + cash 0.0999), want exactly 1`}},
		{"sum above 1", catalogueText(okAssets, weights(`{"GB00B3X7QG63":"0.6","IE00B4L5Y983":"0.4","cash":"0.0001"}`)),
			[]string{`riskProfiles[0] "p": weights sum to 1.0001 (assets 1.0000 + cash 0.0001), want exactly 1`}},
		{"weight of an unknown asset", catalogueText(asset(""), weights(`{"GB00B3X7QG63":"0.5","US0378331005":"0.5"}`)),
			[]string{`riskProfiles[0] "p": weights["US0378331005"]: not an asset of the catalogue`}},
		{"weight key not an ISIN", catalogueText(asset(""), weights(`{"GB00B3X7QG63":"0.5","Cash":"0.5"}`)),
			[]string{`riskProfiles[0] "p": weights["Cash"]: want an ISIN or "cash": want 12 characters, got 4`}},
		{"weight key bad check digit", catalogueText(asset(""), weights(`{"GB00B3X7QG63":"0.5","GB00B3X7QG64":"0.5"}`)),
			[]string{`riskProfiles[0] "p": weights["GB00B3X7QG64"]: want an ISIN or "cash": check digit is 4, want 3`}},
		{"weight as a number", catalogueText(asset(""), weights(`{"GB00B3X7QG63":0.9,"cash":"0.1"}`)),
			[]string{`riskProfiles[0] "p": weights["GB00B3X7QG63"]: want a JSON string such as "0.5500", got 0.9`}},
		{"weight null", catalogueText(asset(""), weights(`{"GB00B3X7QG63":null,"cash":"1"}`)),
			[]string{`riskProfiles[0] "p": weights["GB00B3X7QG63"]: want a JSON string such as "0.5500", got null`}},
		{"weight too precise", catalogueText(asset(""), weights(`{"GB00B3X7QG63":"0.99995","cash":"0.00005"}`)),
			[]string{
				`riskProfiles[0] "p": weights["GB00B3X7QG63"]: "0.99995": too many decimal places (at most 4 decimal places)`,
				`riskProfiles[0] "p": weights["cash"]: "0.00005": too many decimal places (at most 4 decimal places)`,
			}},
		{"weight above 1", catalogueText(asset(""), weights(`{"GB00B3X7QG63":"1.5","cash":"-0.5"}`)),
			[]string{
				`riskProfiles[0] "p": weights["GB00B3X7QG63"]: "1.5": out of range (at most 1)`,
				`riskProfiles[0] "p": weights["cash"]: "-0.5": not positive (negative)`,
			}},
		{"weight exponent", catalogueText(asset(""), weights(`{"GB00B3X7QG63":"1e0"}`)),
			[]string{`riskProfiles[0] "p": weights["GB00B3X7QG63"]: "1e0": malformed number (only digits and one decimal point are allowed)`}},
		{"band zero", catalogueText(asset(""), profile(`,"band":{"absolute":"0","relative":"0.0000"}`)),
			[]string{
				`riskProfiles[0] "p": band.absolute "0.0000": must be greater than 0 (a zero band would trade every pot every day)`,
				`riskProfiles[0] "p": band.relative "0.0000": must be greater than 0 (a zero band would trade every pot every day)`,
			}},
		{"band as numbers", catalogueText(asset(""), profile(`,"band":{"absolute":0.05,"relative":"1.25"}`)),
			[]string{
				`riskProfiles[0] "p": band.absolute: want a JSON string such as "0.5500", got 0.05`,
				`riskProfiles[0] "p": band.relative: "1.25": out of range (at most 1)`,
			}},
		{"unknown band field", catalogueText(asset(""), profile(`,"band":{"lower":"0.05"}`)), []string{`unknown field "lower"`}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c, err := LoadCatalogue([]byte(tc.in))
			require.Error(t, err, "LoadCatalogue")
			require.Nil(t, c, "LoadCatalogue's catalogue")
			var ce *CatalogueError
			require.ErrorAs(t, err, &ce, "LoadCatalogue")
			require.ErrorIs(t, err, ErrInvalidCatalogue, "LoadCatalogue")
			assert.Equal(t, tc.want, ce.Problems, "problems")
		})
	}
}

// TestLoadCatalogueReportsEveryProblem proves one load reports the problems
// of every section together, in file order.
func TestLoadCatalogueReportsEveryProblem(t *testing.T) {
	in := `{"baseCurrency":"EUR",
	  "assets":[
	    {"isin":"GB00B3X7QG64","name":"UK Equity","currency":"GBP"},
	    {"isin":"IE00B4L5Y983","name":"","currency":"USD","unitDecimals":12},
	    {"isin":"IE00B4L5Y983","name":"Again","currency":"GBP"}],
	  "riskProfiles":[
	    {"name":"Balanced","weights":{"IE00B4L5Y983":"0.5","GB0002634946":"0.3","cash":"0.1"}},
	    {"name":"safe","weights":{"IE00B4L5Y983":"0.5","cash":"0.5"},"band":{"absolute":"0"}},
	    {"name":"safe","weights":{"cash":"1"}}]}`
	want := []string{
		`baseCurrency "EUR": the platform is single-currency for now: only GBP is supported`,
		`assets[0] "GB00B3X7QG64": isin: check digit is 4, want 3`,
		`assets[1] "IE00B4L5Y983": name: missing`,
		`assets[1] "IE00B4L5Y983": currency "USD": the platform is single-currency for now: every asset must be in GBP`,
		`assets[1] "IE00B4L5Y983": unitDecimals 12: must be between 0 and 8`,
		`assets[2] "IE00B4L5Y983": duplicate isin, first at assets[1]`,
		`riskProfiles[0] "Balanced": name: want 1 to 32 characters a-z, 0-9 or '-'`,
		`riskProfiles[0] "Balanced": weights["GB0002634946"]: not an asset of the catalogue`,
		`riskProfiles[0] "Balanced": weights sum to 0.9000 (assets 0.8000 + cash 0.1000), want exactly 1`,
		`riskProfiles[1] "safe": band.absolute "0.0000": must be greater than 0 (a zero band would trade every pot every day)`,
		`riskProfiles[2] "safe": duplicate name, first at riskProfiles[1]`,
	}
	_, err := LoadCatalogue([]byte(in))
	var ce *CatalogueError
	require.ErrorAs(t, err, &ce, "LoadCatalogue")
	assert.Equal(t, want, ce.Problems, "problems")
	if msg := err.Error(); !strings.HasPrefix(msg, "domain: invalid catalogue: 11 problems: baseCurrency") {
		t.Errorf("Error() = %q; want it to start with the count and the first problem", msg)
	}
}

// TestCatalogueErrorUnwrap proves a syntax error stays reachable with
// errors.As, and that a long list is cut short in Error() but kept whole.
func TestCatalogueErrorUnwrap(t *testing.T) {
	_, err := LoadCatalogue([]byte(`{"baseCurrency":}`))
	var syntax *json.SyntaxError
	assert.ErrorIs(t, err, ErrInvalidCatalogue, "a syntax error")
	assert.ErrorAs(t, err, &syntax, "a syntax error")
	var b strings.Builder
	b.WriteString(`{"baseCurrency":"GBP","assets":[`)
	for i := range 30 {
		if i > 0 {
			b.WriteString(",")
		}
		b.WriteString(`{"isin":"XX","name":"n","currency":"GBP"}`)
	}
	b.WriteString(`]}`)
	_, err = LoadCatalogue([]byte(b.String()))
	var ce *CatalogueError
	require.ErrorAs(t, err, &ce, "30 bad assets")
	require.Len(t, ce.Problems, 30, "30 bad assets: problems")
	if !strings.HasSuffix(err.Error(), "; and 10 more") {
		t.Errorf("Error() = %q; want it cut after 20 problems", err)
	}
}

// TestBandOutOfBand checks the 5/25 rule, |actual − target| > min(absolute,
// relative × target), at its edges: exactly at the band is in band.
func TestBandOutOfBand(t *testing.T) {
	d := decimal.RequireFromString
	b := DefaultBand()
	cases := []struct {
		band           Band
		actual, target string
		tolerance      string
		out            bool
	}{
		{b, "0.55", "0.55", "0.05", false},
		{b, "0.60", "0.55", "0.05", false}, // exactly at the band
		{b, "0.6001", "0.55", "0.05", true},
		{b, "0.50", "0.55", "0.05", false},
		{b, "0.4999", "0.55", "0.05", true},
		// Small weights: the relative part decides. 25% of 2% is 0.5 points.
		{b, "0.025", "0.02", "0.005", false},
		{b, "0.0251", "0.02", "0.005", true},
		{b, "0.015", "0.02", "0.005", false},
		{b, "0.0149", "0.02", "0.005", true},
		{b, "0.025000000000000000001", "0.02", "0.005", true}, // exact: no rounding hides it
		{b, "0.024999999999999999999", "0.02", "0.005", false},
		{b, "0.08", "0.08", "0.02", false},
		{b, "0.1", "0.08", "0.02", false},
		{b, "0.10000001", "0.08", "0.02", true},
		// At 20% both parts are equal.
		{b, "0.25", "0.20", "0.05", false},
		{b, "0.2501", "0.20", "0.05", true},
		// A zero target: any holding is out of band.
		{b, "0", "0", "0", false},
		{b, "0.0001", "0", "0", true},
		// All cash.
		{b, "0.95", "1", "0.05", false},
		{b, "0.9499", "1", "0.05", true},
		// Another band: 3 points or 50%.
		{Band{MustWeight("0.03"), MustWeight("0.5")}, "0.06", "0.04", "0.02", false},
		{Band{MustWeight("0.03"), MustWeight("0.5")}, "0.0601", "0.04", "0.02", true},
		{Band{MustWeight("0.03"), MustWeight("0.5")}, "0.73", "0.70", "0.03", false},
		{Band{MustWeight("0.03"), MustWeight("0.5")}, "0.7301", "0.70", "0.03", true},
	}
	for _, tc := range cases {
		tol := tc.band.Tolerance(d(tc.target))
		out := tc.band.OutOfBand(d(tc.actual), d(tc.target))
		assert.True(t, tol.Equal(d(tc.tolerance)), "band %s/%s, target %s: tolerance %s, want %s",
			tc.band.Absolute, tc.band.Relative, tc.target, tol, tc.tolerance)
		assert.Equal(t, tc.out, out, "band %s/%s, target %s, actual %s: out of band", tc.band.Absolute, tc.band.Relative, tc.target, tc.actual)
	}
}

// checkCatalogueInvariants asserts what every loaded catalogue guarantees.
func checkCatalogueInvariants(t *testing.T, c *Catalogue) {
	t.Helper()
	if c.Currency() != GBP {
		t.Errorf("Currency() = %q", c.Currency())
	}
	assets := c.Assets()
	if len(assets) == 0 {
		t.Errorf("no assets")
	}
	for i, a := range assets {
		if _, err := ParseISIN(string(a.ISIN)); err != nil {
			t.Errorf("asset %d: %v", i, err)
		}
		if i > 0 && assets[i-1].ISIN >= a.ISIN {
			t.Errorf("assets not in strict ISIN order at %d: %s, %s", i, assets[i-1].ISIN, a.ISIN)
		}
		if got, ok := c.Asset(a.ISIN); !ok || got != a {
			t.Errorf("Asset(%s) = %+v, %v; want %+v", a.ISIN, got, ok, a)
		}
		if a.Currency != GBP || a.Name == "" ||
			a.UnitDecimals < 0 || a.UnitDecimals > UnitDecimalsMax ||
			a.PriceDecimals < 0 || a.PriceDecimals > PriceDecimalsMax ||
			a.SettlementDays < 0 || a.SettlementDays > SettlementDaysMax {
			t.Errorf("asset %+v breaks a rule", a)
		}
	}
	profiles := c.Profiles()
	for i, p := range profiles {
		if !validProfileName(p.Name) {
			t.Errorf("profile name %q", p.Name)
		}
		if i > 0 && profiles[i-1].Name >= p.Name {
			t.Errorf("profiles not in strict name order at %d", i)
		}
		sum := p.Cash.Decimal()
		for _, isin := range p.Assets() {
			if _, ok := c.Asset(isin); !ok {
				t.Errorf("profile %s weights %s, not in the catalogue", p.Name, isin)
			}
			sum = sum.Add(p.Target(isin).Decimal())
		}
		if !sum.Equal(decimal.NewFromInt(1)) {
			t.Errorf("profile %s weights sum to %s", p.Name, sum)
		}
		if p.Band.Absolute.IsZero() || p.Band.Relative.IsZero() {
			t.Errorf("profile %s has a zero band", p.Name)
		}
		if q, ok := c.Profile(p.Name); !ok || q.Name != p.Name {
			t.Errorf("Profile(%q) not found", p.Name)
		}
	}
}

// FuzzLoadCatalogue proves LoadCatalogue never panics, refuses only with a
// *CatalogueError wrapping ErrInvalidCatalogue, and that whatever it accepts
// keeps every rule.
func FuzzLoadCatalogue(f *testing.F) {
	f.Add(DefaultCatalogueJSON())
	f.Add([]byte(catalogueText(okAssets, okProfiles)))
	f.Add([]byte(catalogueText(okAssets, `[{"name":"p","weights":{"GB00B3X7QG63":"0.5","IE00B4L5Y983":"0.4","cash":"0.1","cash":"0.1"}}]`)))
	f.Add([]byte(catalogueText(`[{"isin":"GB00B3X7QG64","name":"x","currency":"EUR","unitDecimals":9}]`, `[{"name":"P","weights":{"x":1}}]`)))
	f.Add([]byte(catalogueText(okAssets, `[{"name":"p","weights":`+okWeights+`,"band":{"absolute":"0","relative":0.25}}]`)))
	f.Add([]byte(`{"baseCurrency":"GBP","assets":[{"ISIN":"GB00B3X7QG63"}],"riskProfiles":null}`))
	f.Add([]byte(`{"baseCurrency":"GBP",}`))
	f.Add([]byte(`[]`))
	f.Add([]byte(`{} {}`))
	f.Add([]byte(``))
	f.Fuzz(func(t *testing.T, data []byte) {
		c, err := LoadCatalogue(data)
		if err != nil {
			var ce *CatalogueError
			if c != nil || !errors.As(err, &ce) || !errors.Is(err, ErrInvalidCatalogue) || len(ce.Problems) == 0 {
				t.Fatalf("LoadCatalogue(%q) = %v, %v (%T); want nil and a *CatalogueError with problems", data, c, err, err)
			}
			_ = err.Error()
			return
		}
		checkCatalogueInvariants(t, c)
	})
}

func BenchmarkCatalogueProfile(b *testing.B) {
	c := DefaultCatalogue()
	for b.Loop() {
		if _, ok := c.Profile("balanced"); !ok {
			b.Fatal("no balanced profile")
		}
	}
}
