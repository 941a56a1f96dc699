package natsmsg

import (
	"errors"
	"testing"

	"github.com/nats-io/nats.go"
	"google.golang.org/protobuf/proto"

	"github.com/acme/mastertrust/proto/pb"
)

func TestNewNamesTypeAndEncoding(t *testing.T) {
	o := &pb.CustodianOrder{ClOrdId: "2026-11-23-GB00BN7Q2L69", Units: "1.0000"}
	msg, err := New("custodian.orders.GB00BN7Q2L69", o)
	if err != nil {
		t.Fatal(err)
	}
	if got := msg.Header.Get("Mastertrust-Type"); got != "mastertrust.v1.CustodianOrder" {
		t.Errorf("type header %q", got)
	}
	if got := msg.Header.Get("Content-Type"); got != "application/protobuf" {
		t.Errorf("content type header %q", got)
	}
	want, _ := proto.MarshalOptions{Deterministic: true}.Marshal(o)
	if string(msg.Data) != string(want) {
		t.Errorf("payload %x, want %x", msg.Data, want)
	}
	var back pb.CustodianOrder
	if err := Decode(msg.Header, msg.Data, &back); err != nil || !proto.Equal(&back, o) {
		t.Fatalf("decode: %v %v", err, &back)
	}
}

func TestCheck(t *testing.T) {
	order := &pb.CustodianOrder{}
	for _, c := range []struct {
		name   string
		header nats.Header
		ok     bool
	}{
		{"no headers: written before they existed", nil, true},
		{"the type", Header(order), true},
		{"another type", nats.Header{TypeHeader: {"mastertrust.v1.ExecutionReport"}}, false},
		{"another version", nats.Header{TypeHeader: {"mastertrust.v2.CustodianOrder"}}, false},
		{"lower-case header names", nats.Header{"mastertrust-type": {"mastertrust.v1.PriceFeed"}}, false},
		{"content type only", nats.Header{ContentTypeHeader: {"application/protobuf"}}, true},
		{"deprecated alias", nats.Header{ContentTypeHeader: {"application/x-protobuf"}}, true},
		{"with a parameter", nats.Header{ContentTypeHeader: {"application/protobuf; encoding=binary"}}, true},
		{"JSON", nats.Header{TypeHeader: {"mastertrust.v1.CustodianOrder"}, ContentTypeHeader: {"application/json"}}, false},
		{"garbage content type", nats.Header{ContentTypeHeader: {";;"}}, false},
	} {
		err := Check(c.header, order)
		if c.ok != (err == nil) || (err != nil && !errors.Is(err, ErrWrongType)) {
			t.Errorf("%s: %v", c.name, err)
		}
	}
}

// A mislabelled message is refused though its bytes decode as the type
// asked for: protobuf reads an ExecutionReport's bytes as a PriceFeed.
func TestDecodeRefusesMislabelled(t *testing.T) {
	data, _, err := Encode(&pb.ExecutionReport{ClOrdId: "x", Units: "1"})
	if err != nil {
		t.Fatal(err)
	}
	var f pb.PriceFeed
	if err := proto.Unmarshal(data, &f); err != nil {
		t.Fatalf("the premise: protobuf decodes another message's bytes: %v", err)
	}
	err = Decode(nats.Header{TypeHeader: {"mastertrust.v1.ExecutionReport"}}, data, &f)
	if !errors.Is(err, ErrWrongType) {
		t.Fatalf("decode: %v", err)
	}
}
