package domain

import (
	"bytes"
	_ "embed" // the default catalogue ships inside the binary
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"slices"
	"strings"
	"sync"
	"unicode"

	"github.com/shopspring/decimal"
)

// Limits and defaults of the catalogue (docs/domain.md, "Risk profiles"
// and "Dealing days and the cycle").
const (
	// CatalogueBytesMax bounds a catalogue file. The default one is about
	// 3 KB; even 500 assets (about 170 bytes each) and 100 profiles of 20
	// weights (about 800 bytes each) come to about 165 KB, so 1 MiB refuses
	// only what is not a catalogue, and decodes in milliseconds.
	CatalogueBytesMax = 1 << 20
	// catalogueAssetsMax and catalogueProfilesMax bound what the platform
	// must hold in memory and price every day; past them a file is a mistake.
	catalogueAssetsMax   = 500
	catalogueProfilesMax = 100
	// assetNameBytesMax keeps names short enough for a contract note line.
	assetNameBytesMax = 100
	// profileNameLenMax: profile names appear in URLs and commands.
	profileNameLenMax = 32
	// catalogueErrorProblemsShown bounds CatalogueError.Error(); the
	// Problems field keeps them all.
	catalogueErrorProblemsShown = 20

	// SettlementDaysDefault is an asset's settlement period when the
	// catalogue does not give one: T+3, the usual for UK funds.
	SettlementDaysDefault = 3
	// SettlementDaysMax bounds an asset's settlement period: UK funds settle
	// T+3 or T+4; ten dealing days is two weeks, beyond any real fund.
	SettlementDaysMax = 10

	// cashWeightKey is the key of the cash weight in a profile's weights,
	// next to the ISINs (docs/api.md: GET /v1/risk-profiles).
	cashWeightKey = "cash"
)

// ErrInvalidCatalogue refuses a catalogue file. It is wrapped in a
// *CatalogueError listing every problem found.
var ErrInvalidCatalogue = errors.New("domain: invalid catalogue")

// CatalogueError is a refused catalogue: every problem found, one sentence
// each, naming where it is (e.g. `assets[2] "GB00B3X7QG64": isin: check digit
// is 4, want 3`). It is the only error LoadCatalogue returns, for a file that
// is not JSON as much as for one that breaks a rule.
type CatalogueError struct {
	Problems []string
	// Err is the decoding error when the file could not be decoded at all
	// (a *json.SyntaxError, for instance), so that errors.As can reach it;
	// nil when the file decoded and broke rules.
	Err error
}

// Error lists the problems, the first catalogueErrorProblemsShown of them
// when there are more.
func (e *CatalogueError) Error() string {
	if len(e.Problems) == 1 {
		return fmt.Sprintf("%v: %s", ErrInvalidCatalogue, e.Problems[0])
	}
	shown := e.Problems
	more := ""
	if len(shown) > catalogueErrorProblemsShown {
		shown = shown[:catalogueErrorProblemsShown]
		more = fmt.Sprintf("; and %d more", len(e.Problems)-len(shown))
	}
	return fmt.Sprintf("%v: %d problems: %s%s", ErrInvalidCatalogue, len(e.Problems), strings.Join(shown, "; "), more)
}

// Unwrap makes errors.Is(err, ErrInvalidCatalogue) true, and errors.As reach
// the decoding error if there is one.
func (e *CatalogueError) Unwrap() []error {
	if e.Err != nil {
		return []error{ErrInvalidCatalogue, e.Err}
	}
	return []error{ErrInvalidCatalogue}
}

// Asset is a fund the platform deals in, and the precisions its numbers
// carry.
type Asset struct {
	ISIN     ISIN
	Name     string
	Currency Currency // the base currency: the platform is single-currency
	// UnitDecimals is the precision of the asset's units (default
	// UnitDecimalsDefault, at most UnitDecimalsMax).
	UnitDecimals int32
	// PriceDecimals is the precision of the asset's prices (default
	// PriceDecimalsDefault, at most PriceDecimalsMax).
	PriceDecimals int32
	// SettlementDays is N in T+N: dealing days from dealing to settlement
	// (default SettlementDaysDefault, at most SettlementDaysMax).
	SettlementDays int
}

// Band is a risk profile's tolerance band: a weight is out of band when it
// is further from its target than min(Absolute, Relative × target). The
// relative part makes small weights trigger too: with the default 5/25 band,
// a 2% target may drift by 0.5 percentage points, not 5.
type Band struct {
	Absolute Weight // in fractions of the pot: 0.05 is 5 percentage points
	Relative Weight // as a share of the target: 0.25 is 25% of it
}

// Equal reports whether b and o are the same band. Compare bands with
// Equal, not ==, which compares the decimals' internals.
func (b Band) Equal(o Band) bool {
	return b.Absolute.Cmp(o.Absolute) == 0 && b.Relative.Cmp(o.Relative) == 0
}

// DefaultBand is the "5/25" band of docs/domain.md: 5 percentage points or 25% of
// the target, whichever is smaller.
func DefaultBand() Band {
	return Band{Absolute: MustWeight("0.05"), Relative: MustWeight("0.25")}
}

// Tolerance is how far a weight may be from target and still be in band:
// min(Absolute, Relative × target), exact.
func (b Band) Tolerance(target decimal.Decimal) decimal.Decimal {
	rel := b.Relative.d.Mul(target)
	if rel.LessThan(b.Absolute.d) {
		return rel
	}
	return b.Absolute.d
}

// OutOfBand reports whether actual is out of band around target:
// |actual − target| > min(Absolute, Relative × target). Exactly at the edge
// is in band. The arithmetic is exact, so no weight is ever judged by a
// rounding error.
func (b Band) OutOfBand(actual, target decimal.Decimal) bool {
	return actual.Sub(target).Abs().GreaterThan(b.Tolerance(target))
}

// RiskProfile is a named target mix: a weight per asset and a cash weight,
// together exactly 1, and the band within which a pot is left alone.
type RiskProfile struct {
	Name    string
	Weights map[ISIN]Weight // assets with a target; a zero weight means "hold none"
	Cash    Weight
	Band    Band
}

// Target is the profile's target weight of asset: zero if the profile does
// not hold it.
func (p RiskProfile) Target(asset ISIN) Weight { return p.Weights[asset] }

// Assets lists the assets the profile names, in ISIN order, so that anything
// computed over them (trades, events) comes out in the same order every time.
func (p RiskProfile) Assets() []ISIN { return slices.Sorted(maps.Keys(p.Weights)) }

// clone copies the profile so that a caller cannot change the catalogue's
// weights through the map.
func (p RiskProfile) clone() RiskProfile {
	p.Weights = maps.Clone(p.Weights)
	return p
}

// Catalogue is the platform's assets and risk profiles. It is immutable once
// loaded: every method returns copies, so one *Catalogue can be shared by
// every goroutine without locks.
type Catalogue struct {
	base         Currency
	assets       []Asset // sorted by ISIN
	assetIndex   map[ISIN]int
	profiles     []RiskProfile // sorted by name
	profileIndex map[string]int
}

// Currency is the platform's base currency (GBP): the currency of every
// asset and of all cash.
func (c *Catalogue) Currency() Currency { return c.base }

// Asset is the catalogue's asset with that ISIN.
func (c *Catalogue) Asset(isin ISIN) (Asset, bool) {
	i, ok := c.assetIndex[isin]
	if !ok {
		return Asset{}, false
	}
	return c.assets[i], true
}

// Assets lists every asset, in ISIN order.
func (c *Catalogue) Assets() []Asset { return slices.Clone(c.assets) }

// Profile is the risk profile with that name. Its Weights map is the
// caller's own copy.
func (c *Catalogue) Profile(name string) (RiskProfile, bool) {
	i, ok := c.profileIndex[name]
	if !ok {
		return RiskProfile{}, false
	}
	return c.profiles[i].clone(), true
}

// Profiles lists every risk profile, in name order; each Weights map is the
// caller's own copy.
func (c *Catalogue) Profiles() []RiskProfile {
	out := make([]RiskProfile, len(c.profiles))
	for i, p := range c.profiles {
		out[i] = p.clone()
	}
	return out
}

//go:embed catalogue.json
var defaultCatalogueJSON string // a string, not []byte: nobody can change it

// defaultCatalogue is loaded once: the Catalogue is immutable, so every
// caller can share it.
var defaultCatalogue = sync.OnceValue(func() *Catalogue {
	c, err := LoadCatalogue([]byte(defaultCatalogueJSON))
	if err != nil {
		// A broken embedded file is a build defect, not an operating error;
		// TestDefaultCatalogue keeps it from shipping.
		panic(fmt.Sprintf("domain: embedded catalogue.json: %v", err))
	}
	return c
})

// DefaultCatalogue is the catalogue that ships with the platform
// (catalogue.json, embedded). Operators can replace it with their own file,
// loaded with LoadCatalogue.
func DefaultCatalogue() *Catalogue { return defaultCatalogue() }

// DefaultCatalogueJSON is the text of the default catalogue, e.g. as a
// template for an operator's own file.
func DefaultCatalogueJSON() []byte { return []byte(defaultCatalogueJSON) }

// The file format. Weights and bands are JSON strings, like every number that
// crosses the platform's edge (docs/domain.md), and are kept raw here so that a
// number given as a JSON number is reported as a problem with the others
// instead of stopping the decoder. Optional numbers are pointers, so that an
// absent field takes its default and an explicit 0 stays 0.
type catalogueJSON struct {
	BaseCurrency string        `json:"baseCurrency"`
	Assets       []assetJSON   `json:"assets"`
	RiskProfiles []profileJSON `json:"riskProfiles"`
}

type assetJSON struct {
	ISIN           string `json:"isin"`
	Name           string `json:"name"`
	Currency       string `json:"currency"`
	UnitDecimals   *int32 `json:"unitDecimals"`
	PriceDecimals  *int32 `json:"priceDecimals"`
	SettlementDays *int   `json:"settlementDays"`
}

type profileJSON struct {
	Name    string                     `json:"name"`
	Weights map[string]json.RawMessage `json:"weights"`
	Band    *bandJSON                  `json:"band"`
}

type bandJSON struct {
	Absolute json.RawMessage `json:"absolute"`
	Relative json.RawMessage `json:"relative"`
}

// isCatalogueFieldName reports whether key is a key of the format, spelt
// exactly. encoding/json matches keys without regard to case;
// jsonKeyProblems refuses any other spelling.
func isCatalogueFieldName(key string) bool {
	switch key {
	case "baseCurrency", "assets", "riskProfiles",
		"isin", "name", "currency", "unitDecimals", "priceDecimals", "settlementDays",
		"weights", "band", "absolute", "relative":
		return true
	}
	return false
}

// LoadCatalogue decodes and validates a catalogue file:
//
//	{"baseCurrency": "GBP",
//	 "assets": [{"isin": "GB00BN7Q2L69", "name": "…", "currency": "GBP",
//	             "unitDecimals": 4, "priceDecimals": 6, "settlementDays": 3}],
//	 "riskProfiles": [{"name": "balanced",
//	                   "weights": {"GB00BN7Q2L69": "0.5500", …, "cash": "0.0200"},
//	                   "band": {"absolute": "0.05", "relative": "0.25"}}]}
//
// unitDecimals, priceDecimals, settlementDays and band (or either of its
// fields) may be left out for their defaults. Decoding is strict: no unknown
// or misspelt keys, no key twice, nothing after the object, at most
// CatalogueBytesMax bytes. Then every rule is checked and every problem
// reported in one *CatalogueError (errors.Is ErrInvalidCatalogue):
// valid ISINs and currencies, no duplicate assets or profiles, every asset in
// GBP (the platform is single-currency for now), decimals and settlement days
// in range, profile names of 1–32 characters a–z, 0–9 and '-', every
// weighted asset in the catalogue, and each profile's weights (assets and
// cash) summing to exactly 1.
func LoadCatalogue(data []byte) (*Catalogue, error) {
	if len(data) > CatalogueBytesMax {
		return nil, &CatalogueError{Problems: []string{
			fmt.Sprintf("file is %d bytes, more than the limit of %d", len(data), CatalogueBytesMax)}}
	}
	var doc catalogueJSON
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&doc); err != nil {
		return nil, &CatalogueError{Problems: []string{describeJSONError(err)}, Err: err}
	}
	if _, err := dec.Token(); err != io.EOF {
		return nil, &CatalogueError{Problems: []string{"data after the catalogue object"}}
	}
	problems := jsonKeyProblems(data)
	c, more := buildCatalogue(&doc)
	problems = append(problems, more...)
	if len(problems) > 0 {
		return nil, &CatalogueError{Problems: problems}
	}
	return c, nil
}

// describeJSONError turns a decoding error into a problem line that says
// where the file is wrong.
func describeJSONError(err error) string {
	var syntax *json.SyntaxError
	var typ *json.UnmarshalTypeError
	switch {
	case errors.Is(err, io.EOF):
		return "empty file: want a JSON object"
	case errors.Is(err, io.ErrUnexpectedEOF):
		return "not valid JSON: the file ends in the middle of a value"
	case errors.As(err, &syntax):
		return fmt.Sprintf("not valid JSON at byte %d: %s", syntax.Offset, strings.TrimPrefix(syntax.Error(), "json: "))
	case errors.As(err, &typ):
		if typ.Field == "" {
			return fmt.Sprintf("want a JSON object, got a JSON %s", typ.Value)
		}
		return fmt.Sprintf("%s: want a JSON value for Go type %s, got a JSON %s", typ.Field, typ.Type, typ.Value)
	default:
		return strings.TrimPrefix(err.Error(), "json: ")
	}
}

// jsonKeyProblems reports what encoding/json lets through silently in a
// document it has already decoded: a key given twice in one object (the
// decoder keeps the last, so a profile could carry a weight nobody sees) and
// a key that names a field only when case is ignored (the decoder folds
// case). It walks the tokens iteratively, so nesting depth costs no stack.
func jsonKeyProblems(data []byte) []string {
	type frame struct {
		path      string
		object    bool
		dataKeys  bool            // keys are data (weights), not field names
		seen      map[string]bool // keys met so far, for objects
		key       string          // the key whose value comes next
		expectKey bool
		index     int // the index of the next element, for arrays
	}
	var problems []string
	var stack []*frame
	valuePath := func(top *frame) string {
		switch {
		case top == nil:
			return ""
		case top.object && top.path == "":
			return top.key
		case top.object:
			return top.path + "." + top.key
		default:
			return fmt.Sprintf("%s[%d]", top.path, top.index)
		}
	}
	valueDone := func() {
		if len(stack) == 0 {
			return
		}
		top := stack[len(stack)-1]
		if top.object {
			top.expectKey = true
		} else {
			top.index++
		}
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	for {
		tok, err := dec.Token()
		if err != nil {
			// io.EOF at the end; anything else cannot happen, because the
			// document has decoded already.
			return problems
		}
		var top *frame
		if len(stack) > 0 {
			top = stack[len(stack)-1]
		}
		if top != nil && top.object && top.expectKey {
			if d, ok := tok.(json.Delim); ok && d == '}' {
				stack = stack[:len(stack)-1]
				valueDone()
				continue
			}
			key, _ := tok.(string)
			where := top.path
			if where == "" {
				where = "top level"
			}
			if top.seen[key] {
				problems = append(problems, fmt.Sprintf("%s: key %q appears more than once", where, truncateForError(key)))
			}
			top.seen[key] = true
			if !top.dataKeys && !isCatalogueFieldName(key) {
				problems = append(problems, fmt.Sprintf("%s: key %q is not a field name (field names are case-sensitive)", where, truncateForError(key)))
			}
			top.key, top.expectKey = key, false
			continue
		}
		if d, ok := tok.(json.Delim); ok {
			switch d {
			case '{', '[':
				stack = append(stack, &frame{
					path:      valuePath(top),
					object:    d == '{',
					dataKeys:  d == '{' && top != nil && top.object && top.key == "weights",
					seen:      map[string]bool{},
					expectKey: d == '{',
				})
				continue
			case ']':
				stack = stack[:len(stack)-1]
				valueDone()
				continue
			}
		}
		valueDone() // a string, number, boolean or null
	}
}

// buildCatalogue checks every rule on a decoded file and builds the
// catalogue; it returns every problem found, and a catalogue only if there
// were none.
func buildCatalogue(doc *catalogueJSON) (*Catalogue, []string) {
	var problems []string
	add := func(format string, args ...any) { problems = append(problems, fmt.Sprintf(format, args...)) }

	switch cur, err := ParseCurrency(doc.BaseCurrency); {
	case doc.BaseCurrency == "":
		add("baseCurrency: missing; want %q", GBP)
	case err != nil:
		add("baseCurrency %q: %s", truncateForError(doc.BaseCurrency), currencyProblem(err))
	case cur != GBP:
		add("baseCurrency %q: the platform is single-currency for now: only %s is supported", cur, GBP)
	}

	c := &Catalogue{base: GBP, assetIndex: map[ISIN]int{}, profileIndex: map[string]int{}}

	if len(doc.Assets) == 0 {
		add("assets: none; a catalogue needs at least one asset")
	}
	if len(doc.Assets) > catalogueAssetsMax {
		add("assets: %d, more than the limit of %d", len(doc.Assets), catalogueAssetsMax)
	}
	// known holds every well-formed ISIN listed, valid entry or not, so that
	// a profile naming an asset whose entry has another problem is not
	// reported twice.
	known := map[ISIN]int{}
	for i, a := range doc.Assets {
		where := fmt.Sprintf("assets[%d]", i)
		if a.ISIN != "" {
			where += fmt.Sprintf(" %q", truncateForError(a.ISIN))
		}
		asset, ok := checkAsset(where, a, add)
		if asset.ISIN != "" {
			if first, dup := known[asset.ISIN]; dup {
				add("%s: duplicate isin, first at assets[%d]", where, first)
				ok = false
			} else {
				known[asset.ISIN] = i
			}
		}
		if ok {
			c.assets = append(c.assets, asset)
		}
	}

	if len(doc.RiskProfiles) > catalogueProfilesMax {
		add("riskProfiles: %d, more than the limit of %d", len(doc.RiskProfiles), catalogueProfilesMax)
	}
	names := map[string]int{}
	for i, p := range doc.RiskProfiles {
		where := fmt.Sprintf("riskProfiles[%d]", i)
		if p.Name != "" {
			where += fmt.Sprintf(" %q", truncateForError(p.Name))
		}
		profile, ok := checkProfile(where, p, known, add)
		if p.Name != "" {
			if first, dup := names[p.Name]; dup {
				add("%s: duplicate name, first at riskProfiles[%d]", where, first)
				ok = false
			} else {
				names[p.Name] = i
			}
		}
		if ok {
			c.profiles = append(c.profiles, profile)
		}
	}

	if len(problems) > 0 {
		return nil, problems
	}
	slices.SortFunc(c.assets, func(a, b Asset) int { return strings.Compare(string(a.ISIN), string(b.ISIN)) })
	for i, a := range c.assets {
		c.assetIndex[a.ISIN] = i
	}
	slices.SortFunc(c.profiles, func(a, b RiskProfile) int { return strings.Compare(a.Name, b.Name) })
	for i, p := range c.profiles {
		c.profileIndex[p.Name] = i
	}
	return c, nil
}

// checkAsset checks one asset entry, reporting each problem through add. The
// returned asset carries its ISIN whenever that is well formed, even if
// another field is wrong; ok says whether the whole entry is valid.
func checkAsset(where string, a assetJSON, add func(string, ...any)) (asset Asset, ok bool) {
	n := 0 // problems found in this entry
	report := func(format string, args ...any) {
		n++
		add(where+": "+format, args...)
	}

	switch isin, err := ParseISIN(a.ISIN); {
	case a.ISIN == "":
		report("isin: missing")
	case err != nil:
		report("isin: %s", isinProblem(err))
	default:
		asset.ISIN = isin
	}

	name := a.Name
	switch {
	case strings.TrimSpace(name) == "":
		report("name: missing")
	case len(name) > assetNameBytesMax:
		report("name: %d bytes, more than the limit of %d", len(name), assetNameBytesMax)
	case name != strings.TrimSpace(name):
		report("name %q: leading or trailing space", name)
	case strings.ContainsFunc(name, unicode.IsControl):
		report("name %q: control characters are not allowed", name)
	default:
		asset.Name = name
	}

	switch cur, err := ParseCurrency(a.Currency); {
	case a.Currency == "":
		report("currency: missing; want %q", GBP)
	case err != nil:
		report("currency %q: %s", truncateForError(a.Currency), currencyProblem(err))
	case cur != GBP:
		report("currency %q: the platform is single-currency for now: every asset must be in %s", cur, GBP)
	default:
		asset.Currency = cur
	}

	asset.UnitDecimals = UnitDecimalsDefault
	if a.UnitDecimals != nil {
		asset.UnitDecimals = *a.UnitDecimals
		if asset.UnitDecimals < 0 || asset.UnitDecimals > UnitDecimalsMax {
			report("unitDecimals %d: must be between 0 and %d", asset.UnitDecimals, UnitDecimalsMax)
		}
	}
	asset.PriceDecimals = PriceDecimalsDefault
	if a.PriceDecimals != nil {
		asset.PriceDecimals = *a.PriceDecimals
		if asset.PriceDecimals < 0 || asset.PriceDecimals > PriceDecimalsMax {
			report("priceDecimals %d: must be between 0 and %d", asset.PriceDecimals, PriceDecimalsMax)
		}
	}
	asset.SettlementDays = SettlementDaysDefault
	if a.SettlementDays != nil {
		asset.SettlementDays = *a.SettlementDays
		if asset.SettlementDays < 0 || asset.SettlementDays > SettlementDaysMax {
			report("settlementDays %d: must be between 0 and %d dealing days", asset.SettlementDays, SettlementDaysMax)
		}
	}
	return asset, n == 0
}

// checkProfile checks one risk profile entry against the assets listed
// (known), reporting each problem through add.
func checkProfile(where string, p profileJSON, known map[ISIN]int, add func(string, ...any)) (profile RiskProfile, ok bool) {
	n := 0
	report := func(format string, args ...any) {
		n++
		add(where+": "+format, args...)
	}

	if p.Name == "" {
		report("name: missing")
	} else if !validProfileName(p.Name) {
		report("name: want 1 to %d characters a-z, 0-9 or '-'", profileNameLenMax)
	}
	profile.Name = p.Name

	if len(p.Weights) == 0 {
		report("weights: none; want a weight per asset and %q, summing to 1", cashWeightKey)
	}
	profile.Weights = make(map[ISIN]Weight, len(p.Weights))
	allParsed := true
	assetSum := decimal.Zero
	for _, key := range slices.Sorted(maps.Keys(p.Weights)) {
		field := fmt.Sprintf("weights[%q]", truncateForError(key))
		w, err := parseJSONWeight(p.Weights[key])
		if err != nil {
			report("%s: %s", field, err)
			allParsed = false
		}
		if key == cashWeightKey {
			profile.Cash = w
			continue
		}
		isin, ierr := ParseISIN(key)
		switch {
		case ierr != nil:
			report("%s: want an ISIN or %q: %s", field, cashWeightKey, isinProblem(ierr))
		case !mapHas(known, isin):
			report("%s: not an asset of the catalogue", field)
		default:
			profile.Weights[isin] = w
		}
		assetSum = assetSum.Add(w.d)
	}
	if allParsed && len(p.Weights) > 0 {
		sum := assetSum.Add(profile.Cash.d)
		if !sum.Equal(decimal.NewFromInt(1)) {
			report("weights sum to %s (assets %s + cash %s), want exactly 1",
				sum.StringFixed(WeightDecimals), assetSum.StringFixed(WeightDecimals), profile.Cash)
		}
	}

	profile.Band = DefaultBand()
	if p.Band != nil {
		for _, f := range []struct {
			name string
			raw  json.RawMessage
			dst  *Weight
		}{
			{"absolute", p.Band.Absolute, &profile.Band.Absolute},
			{"relative", p.Band.Relative, &profile.Band.Relative},
		} {
			if f.raw == nil {
				continue // absent: the default
			}
			w, err := parseJSONWeight(f.raw)
			switch {
			case err != nil:
				report("band.%s: %s", f.name, err)
			case w.IsZero():
				report("band.%s %q: must be greater than 0 (a zero band would trade every pot every day)", f.name, w)
			default:
				*f.dst = w
			}
		}
	}
	return profile, n == 0
}

// parseJSONWeight parses a weight given as a JSON string; the error is a
// sentence for a problem line.
func parseJSONWeight(raw json.RawMessage) (Weight, error) {
	var s string
	if len(raw) == 0 || raw[0] != '"' || json.Unmarshal(raw, &s) != nil {
		return Weight{}, fmt.Errorf("want a JSON string such as \"0.5500\", got %s", truncateForError(string(raw)))
	}
	w, err := ParseWeight(s)
	if err != nil {
		return Weight{}, errors.New(valueProblem(err))
	}
	return w, nil
}

// validProfileName: 1–32 characters a–z, 0–9 and '-'.
func validProfileName(s string) bool {
	if len(s) == 0 || len(s) > profileNameLenMax {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= 'a' && c <= 'z') && !isDigit(c) && c != '-' {
			return false
		}
	}
	return true
}

func mapHas[K comparable, V any](m map[K]V, k K) bool {
	_, ok := m[k]
	return ok
}

// isinProblem, currencyProblem and valueProblem shorten an error to what a
// problem line needs: the line already says which field and value.
func isinProblem(err error) string {
	var e *ISINError
	if errors.As(err, &e) {
		return e.Detail
	}
	return err.Error()
}

func currencyProblem(err error) string {
	var e *CurrencyError
	if errors.As(err, &e) {
		return e.Detail
	}
	return err.Error()
}

func valueProblem(err error) string {
	var e *ValueError
	if !errors.As(err, &e) {
		return err.Error()
	}
	s := fmt.Sprintf("%q: %s", e.Input, strings.TrimPrefix(e.Err.Error(), "domain: "))
	if e.Detail != "" {
		s += " (" + e.Detail + ")"
	}
	return s
}
