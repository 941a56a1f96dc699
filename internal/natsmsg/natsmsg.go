// Package natsmsg is how mastertrust puts its protobuf messages on NATS and
// reads them back: every message carries headers naming its type and its
// encoding, so that a person (nats stream view, nats sub) or a consumer in
// another language can tell what the bytes are, and a reader refuses a
// message of another type instead of misparsing it (protobuf decodes
// almost any bytes into almost any message).
//
//	Mastertrust-Type: mastertrust.v1.CustodianOrder   the protobuf full name
//	Content-Type: application/protobuf                the encoding
//
// Messages written before the headers existed (in a data dir or a stream
// that outlived an upgrade) have neither; they are read as before.
// docs/decisions.md has the why.
package natsmsg

import (
	"errors"
	"fmt"
	"mime"
	"strings"

	"github.com/nats-io/nats.go"
	"google.golang.org/protobuf/proto"
)

const (
	// TypeHeader names the message's type: the protobuf full name of the
	// payload (package and message, e.g. mastertrust.v1.ExecutionReport).
	TypeHeader = "Mastertrust-Type"
	// ContentTypeHeader names the payload's encoding, as in HTTP.
	ContentTypeHeader = "Content-Type"
	// ContentTypeProtobuf is the binary protobuf encoding (RFC 9996; its
	// deprecated aliases application/x-protobuf and
	// application/x-protobuffer are read as the same). The media type has
	// no parameter for the message's type, hence TypeHeader.
	ContentTypeProtobuf = "application/protobuf"
)

// ErrWrongType: a message's headers say it is of another type (or in
// another encoding) than the reader expects.
var ErrWrongType = errors.New("natsmsg: message of another type")

// TypeName is the value of TypeHeader for m.
func TypeName(m proto.Message) string { return string(proto.MessageName(m)) }

// Encode is m's payload (deterministic protobuf: the same message always
// gives the same bytes) and the headers naming its type and encoding.
func Encode(m proto.Message) ([]byte, nats.Header, error) {
	data, err := proto.MarshalOptions{Deterministic: true}.Marshal(m)
	if err != nil {
		return nil, nil, fmt.Errorf("natsmsg: encode %s: %w", TypeName(m), err)
	}
	return data, Header(m), nil
}

// Header is a new header naming m's type and encoding.
func Header(m proto.Message) nats.Header {
	return nats.Header{TypeHeader: {TypeName(m)}, ContentTypeHeader: {ContentTypeProtobuf}}
}

// New is a message on subject carrying m, with its headers.
func New(subject string, m proto.Message) (*nats.Msg, error) {
	data, h, err := Encode(m)
	if err != nil {
		return nil, err
	}
	return &nats.Msg{Subject: subject, Data: data, Header: h}, nil
}

// Check reports whether a message with header h may be read as m: its type
// header, if any, must be m's full name, and its content type, if any,
// protobuf. A message without the headers (written before they existed) is
// accepted. A refusal wraps ErrWrongType and says what the message is.
func Check(h nats.Header, m proto.Message) error {
	want := TypeName(m)
	if got, ok := lookup(h, TypeHeader); ok && got != want {
		return fmt.Errorf("%w: %s is %q, want %q", ErrWrongType, TypeHeader, got, want)
	}
	if got, ok := lookup(h, ContentTypeHeader); ok && !isProtobuf(got) {
		return fmt.Errorf("%w: %s is %q, want %q (%s)", ErrWrongType, ContentTypeHeader, got, ContentTypeProtobuf, want)
	}
	return nil
}

// Decode checks h (Check) and decodes data into m.
func Decode(h nats.Header, data []byte, m proto.Message) error {
	if err := Check(h, m); err != nil {
		return err
	}
	if err := proto.Unmarshal(data, m); err != nil {
		return fmt.Errorf("natsmsg: decode %s: %w", TypeName(m), err)
	}
	return nil
}

// lookup is the first value of header key, matched exactly or, failing
// that, ignoring case (nats.Header is case-sensitive; a foreign publisher
// may write "content-type").
func lookup(h nats.Header, key string) (string, bool) {
	if v, ok := h[key]; ok && len(v) > 0 {
		return v[0], true
	}
	for k, v := range h {
		if strings.EqualFold(k, key) && len(v) > 0 {
			return v[0], true
		}
	}
	return "", false
}

func isProtobuf(contentType string) bool {
	mt, _, err := mime.ParseMediaType(contentType)
	return err == nil && (mt == ContentTypeProtobuf || mt == "application/x-protobuf" || mt == "application/x-protobuffer")
}
