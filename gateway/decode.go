package gateway

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"reflect"
	"strings"
	"unicode/utf8"

	"github.com/acme/mastertrust/internal/problem"
)

// Strict decoding of request bodies. A body must be sent as
// application/json (else 415), and be one JSON object, UTF-8,
// at most bodyBytesMax bytes, with no key twice in any object, no key the
// endpoint does not define (names match exactly: encoding/json alone would
// take "AMOUNT" for "amount"), nothing after it, and values of the right
// JSON type: amounts, units and percentages are JSON strings, and a JSON
// number there is refused rather than converted (a float would have lost
// the exact decimal already).

// Limits of request bodies.
const (
	// bodyBytesMax is docs/api.md's bound on a request body: 64 KiB. The largest
	// body an endpoint defines (a price file in POST /v1/prices, ~30 bytes
	// an asset) fits hundreds of assets; member bodies take ~100 bytes.
	bodyBytesMax = 64 << 10
	// jsonDepthMax bounds nesting: every body defined is flat or one level
	// deep, and a deep body only costs work to refuse.
	jsonDepthMax = 8
)

// decodeBody reads r's body and decodes it strictly into v, a pointer to a
// struct with json tags. It reports what is wrong in fe and returns false
// if anything is: a body that is not declared application/json is
// refused whatever it holds (415); an empty body needs no Content-Type
// (and is a 400 where a body is required).
func decodeBody(w http.ResponseWriter, r *http.Request, v any, fe *fieldErrors) bool {
	data, err := io.ReadAll(http.MaxBytesReader(w, r.Body, bodyBytesMax))
	if len(data) > 0 || err != nil {
		if msg := jsonMediaType(r.Header); msg != "" {
			fe.addProblem(problem.UnsupportedMediaType, "Content-Type", "%s", msg)
			return false
		}
	}
	if err != nil {
		var tooBig *http.MaxBytesError
		if errors.As(err, &tooBig) {
			fe.add("body", "larger than %d bytes", bodyBytesMax)
		} else {
			fe.add("body", "could not be read")
		}
		return false
	}
	return decodeJSON(data, v, fe)
}

// jsonMediaType checks the media type a request declares for its body: it
// must be application/json, with any parameters but a charset other than
// UTF-8. It returns what is wrong, for the client, or "". A body sent
// without Content-Type, or with curl -d's default form type, is refused
// too (docs/decisions.md): the message says how to send JSON.
func jsonMediaType(h http.Header) string {
	const want = "send the body as JSON with Content-Type: application/json (with curl: -H 'Content-Type: application/json')"
	values := h.Values("Content-Type")
	switch len(values) {
	case 0:
		return "the body has no Content-Type: " + want
	case 1:
	default:
		return "Content-Type is given more than once: " + want
	}
	mediaType, params, err := mime.ParseMediaType(values[0])
	switch {
	case err != nil:
		return "Content-Type is malformed: " + want
	case mediaType != "application/json":
		return fmt.Sprintf("the body is declared %s: %s", truncate(mediaType, 64), want)
	case params["charset"] != "" && !strings.EqualFold(params["charset"], "utf-8"):
		return fmt.Sprintf("the body is declared charset=%s: send application/json in UTF-8 (charset=utf-8, or no charset)",
			truncate(params["charset"], 32))
	}
	return ""
}

// decodeJSON is decodeBody's work on the body's bytes.
func decodeJSON(data []byte, v any, fe *fieldErrors) bool {
	if len(bytes.TrimSpace(data)) == 0 {
		fe.add("body", "is required: a JSON object")
		return false
	}
	if !utf8.Valid(data) {
		fe.add("body", "is not valid UTF-8")
		return false
	}
	keys, msg := scanJSON(data)
	if msg != "" {
		fe.add("body", "%s", msg)
		return false
	}
	allowed := jsonFields(v)
	before := len(*fe)
	for _, k := range keys {
		if !allowed[k] {
			fe.add(k, "unknown field")
		}
	}
	if len(*fe) > before {
		return false
	}
	if err := json.Unmarshal(data, v); err != nil {
		var typeErr *json.UnmarshalTypeError
		if errors.As(err, &typeErr) && typeErr.Field != "" {
			fe.add(typeErr.Field, "%s", typeMessage(typeErr))
		} else {
			fe.add("body", "is not a valid request")
		}
		return false
	}
	return true
}

// typeMessage says what JSON type a field wants.
func typeMessage(e *json.UnmarshalTypeError) string {
	switch e.Type.Kind() {
	case reflect.String:
		if e.Value == "number" {
			return `must be a JSON string, not a number: write decimals as "100.00"`
		}
		return "must be a JSON string, not " + article(e.Value)
	case reflect.Bool:
		return "must be true or false, not " + article(e.Value)
	case reflect.Map, reflect.Struct:
		return "must be a JSON object, not " + article(e.Value)
	}
	return "has the wrong JSON type: " + e.Value
}

func article(jsonType string) string {
	switch jsonType {
	case "array", "object":
		return "an " + jsonType
	case "number", "string":
		return "a " + jsonType
	}
	return jsonType // bool, null
}

// jsonFields returns the JSON names of the fields of the struct v points to.
func jsonFields(v any) map[string]bool {
	t := reflect.TypeOf(v).Elem()
	out := make(map[string]bool, t.NumField())
	for i := 0; i < t.NumField(); i++ {
		name, _, _ := strings.Cut(t.Field(i).Tag.Get("json"), ",")
		if name != "" && name != "-" {
			out[name] = true
		}
	}
	return out
}

// scanJSON checks data's shape: one JSON object, nothing after it, no key
// twice in any object, at most jsonDepthMax deep. It returns the object's
// keys in order, or a message saying what is wrong.
func scanJSON(data []byte) ([]string, string) {
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.UseNumber() // no float parsing: only the shape matters here
	type frame struct {
		object    bool
		keys      map[string]bool
		expectKey bool
	}
	var (
		stack []*frame
		top   []string
	)
	invalid := func() string {
		return fmt.Sprintf("is not valid JSON (at byte %d)", dec.InputOffset())
	}
	for {
		tok, err := dec.Token()
		if err != nil {
			if len(stack) == 0 && errors.Is(err, io.EOF) && top != nil {
				return top, ""
			}
			return nil, invalid()
		}
		if len(stack) == 0 && top != nil {
			return nil, "has data after the JSON object"
		}
		if n := len(stack); n > 0 && stack[n-1].object && stack[n-1].expectKey {
			f := stack[n-1]
			if d, ok := tok.(json.Delim); ok && d == '}' {
				stack = stack[:n-1]
				if len(stack) == 0 {
					top = nonNil(top)
				} else {
					stack[len(stack)-1].expectKey = true
				}
				continue
			}
			key, ok := tok.(string)
			if !ok {
				return nil, invalid()
			}
			if f.keys[key] {
				return nil, fmt.Sprintf("has the key %q twice", truncate(key, 40))
			}
			f.keys[key] = true
			f.expectKey = false
			if n == 1 {
				top = append(top, key)
			}
			continue
		}
		switch d, _ := tok.(json.Delim); d {
		case '{', '[':
			if len(stack) == 0 && d != '{' {
				return nil, "must be a JSON object"
			}
			if len(stack) == jsonDepthMax {
				return nil, fmt.Sprintf("is nested deeper than %d levels", jsonDepthMax)
			}
			stack = append(stack, &frame{object: d == '{', keys: map[string]bool{}, expectKey: d == '{'})
			continue
		case '}', ']':
			stack = stack[:len(stack)-1]
			if len(stack) == 0 {
				top = nonNil(top)
			}
		default:
			if len(stack) == 0 {
				return nil, "must be a JSON object"
			}
		}
		if n := len(stack); n > 0 && stack[n-1].object {
			stack[n-1].expectKey = true
		}
	}
}

func nonNil(s []string) []string {
	if s == nil {
		return []string{}
	}
	return s
}

// truncate bounds client text echoed in messages.
func truncate(s string, max int) string {
	if len(s) <= max {
		return s
	}
	for max > 0 && !utf8.RuneStart(s[max]) {
		max--
	}
	return s[:max] + "…"
}
