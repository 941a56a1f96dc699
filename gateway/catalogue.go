package gateway

import (
	"encoding/json"
	"fmt"
	"net/http"
	"slices"

	"github.com/acme/mastertrust/domain"
)

// The catalogue endpoints (any valid token). The catalogue is immutable, so
// both answers are encoded once, in New.

type assetsJSON struct {
	Assets []assetJSON `json:"assets"`
}

type assetJSON struct {
	ISIN           string `json:"isin"`
	Name           string `json:"name"`
	Currency       string `json:"currency"`
	UnitDecimals   int32  `json:"unitDecimals"`
	PriceDecimals  int32  `json:"priceDecimals"`
	SettlementDays int    `json:"settlementDays"`
}

type riskProfilesJSON struct {
	RiskProfiles []riskProfileJSON `json:"riskProfiles"`
}

type riskProfileJSON struct {
	Name string `json:"name"`
	// Weights are the target weights by ISIN, and the cash weight under
	// "cash" (no ISIN can be spelled so), as decimal strings summing to 1.
	Weights map[string]string `json:"weights"`
	Band    bandJSON          `json:"band"`
}

type bandJSON struct {
	Absolute string `json:"absolute"`
	Relative string `json:"relative"`
}

// cashWeightKey is the key of the cash weight among a profile's weights.
const cashWeightKey = "cash"

// catalogueResponses encodes GET /v1/assets and GET /v1/risk-profiles.
func catalogueResponses(cat *domain.Catalogue) (assets, profiles []byte, err error) {
	a := assetsJSON{Assets: []assetJSON{}}
	for _, x := range cat.Assets() {
		a.Assets = append(a.Assets, assetJSON{ISIN: string(x.ISIN), Name: x.Name, Currency: string(x.Currency),
			UnitDecimals: x.UnitDecimals, PriceDecimals: x.PriceDecimals, SettlementDays: x.SettlementDays})
	}
	p := riskProfilesJSON{RiskProfiles: []riskProfileJSON{}}
	for _, x := range cat.Profiles() {
		weights := make(map[string]string, len(x.Weights)+1)
		for isin, w := range x.Weights {
			weights[string(isin)] = w.String()
		}
		weights[cashWeightKey] = x.Cash.String()
		p.RiskProfiles = append(p.RiskProfiles, riskProfileJSON{Name: x.Name, Weights: weights,
			Band: bandJSON{Absolute: x.Band.Absolute.String(), Relative: x.Band.Relative.String()}})
	}
	if assets, err = json.Marshal(a); err != nil {
		return nil, nil, fmt.Errorf("gateway: encode assets: %w", err)
	}
	if profiles, err = json.Marshal(p); err != nil {
		return nil, nil, fmt.Errorf("gateway: encode risk profiles: %w", err)
	}
	// Shared by every request: full slices, so that nothing appends in
	// place.
	return slices.Clip(append(assets, '\n')), slices.Clip(append(profiles, '\n')), nil
}

// getAssets: GET /v1/assets.
func (s *Server) getAssets(w http.ResponseWriter, r *http.Request, _ Claims) {
	s.writeCatalogue(w, r, s.assets)
}

// getRiskProfiles: GET /v1/risk-profiles.
func (s *Server) getRiskProfiles(w http.ResponseWriter, r *http.Request, _ Claims) {
	s.writeCatalogue(w, r, s.riskProfiles)
}

func (s *Server) writeCatalogue(w http.ResponseWriter, r *http.Request, body []byte) {
	var fe fieldErrors
	queryParams(r, &fe)
	if len(fe) > 0 {
		s.writeProblem(w, r, invalid(fe))
		return
	}
	s.writeBody(w, http.StatusOK, "application/json", body)
}
