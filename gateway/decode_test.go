package gateway

import (
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
)

// TestDecodeJSON: strict decoding accepts exactly one flat JSON object of
// the endpoint's fields, and names what is wrong otherwise.
func TestDecodeJSON(t *testing.T) {
	type body struct {
		Amount string `json:"amount"`
		Asset  string `json:"asset"`
		Flag   bool   `json:"flag"`
	}
	cases := []struct {
		in    string
		field string // "" when the body is fine
	}{
		{`{"amount":"1.00"}`, ""},
		{` {"amount":"1.00","asset":"X"} ` + "\n", ""},
		{`{}`, ""},
		{`{"amount":"1.00","flag":true}`, ""},
		{`{"amount":"\u00e9"}`, ""},
		{``, "body"},
		{`   `, "body"},
		{`null`, "body"},
		{`[]`, "body"},
		{`"x"`, "body"},
		{`1`, "body"},
		{`{"amount":"1.00"`, "body"},
		{`{"amount":"1.00",}`, "body"},
		{`{"amount":"1.00"}{"amount":"1.00"}`, "body"},
		{`{"amount":"1.00"}]`, "body"},
		{`{"amount":"1.00"} 1`, "body"},
		{`{"amount":"1","amount":"1"}`, "body"},
		{`{"asset":{"a":1,"a":2}}`, "body"},
		{`{"asset":[{"a":1,"a":2}]}`, "body"},
		{`{"a":` + strings.Repeat(`[`, 10) + strings.Repeat(`]`, 10) + `}`, "body"},
		{"{\"amount\":\"\xff\"}", "body"},
		{`{"Amount":"1.00"}`, "Amount"},
		{`{"amounts":"1.00"}`, "amounts"},
		{`{"amount":1.00}`, "amount"},
		{`{"amount":100}`, "amount"},
		{`{"amount":["1.00"]}`, "amount"},
		{`{"amount":{"v":"1.00"}}`, "amount"},
		{`{"flag":"true"}`, "flag"},
		{`{"asset":{}}`, "asset"},
	}
	for _, c := range cases {
		var fe fieldErrors
		var b body
		ok := decodeJSON([]byte(c.in), &b, &fe)
		if c.field == "" {
			assert.True(t, ok, "decode %q: accepted", c.in)
			assert.Empty(t, fe, "decode %q: errors", c.in)
		} else {
			assert.False(t, ok, "decode %q: accepted", c.in)
			if assert.NotEmpty(t, fe, "decode %q: errors", c.in) {
				assert.Equal(t, c.field, fe[0].Field, "decode %q: first error's field", c.in)
			}
		}
		for _, e := range fe {
			// A Go error must not leak into the message.
			assert.NotContains(t, e.Message, "json:", "decode %q: error message", c.in)
			assert.NotContains(t, e.Message, "Go struct", "decode %q: error message", c.in)
		}
	}
}

// FuzzDecodeJSON: no input panics, and whatever is accepted is an object
// whose keys are all known.
func FuzzDecodeJSON(f *testing.F) {
	for _, s := range []string{`{"amount":"1.00"}`, `{"a":[1,{"b":2}]}`, `[`, `{"amount":"1","amount":"2"}`} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		var fe fieldErrors
		var b amountBody
		if decodeJSON(data, &b, &fe) != (len(fe) == 0) {
			t.Fatalf("decode %q: result and errors %+v disagree", data, fe)
		}
	})
}
