package natsmsg

import (
	"testing"

	"github.com/nats-io/nats.go"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"google.golang.org/protobuf/proto"

	"github.com/acme/mastertrust/proto/pb"
)

func TestNewNamesTypeAndEncoding(t *testing.T) {
	o := &pb.CustodianOrder{ClOrdId: "2026-11-23-GB00BN7Q2L69", Units: "1.0000"}
	msg, err := New("custodian.orders.GB00BN7Q2L69", o)
	require.NoError(t, err)
	assert.Equal(t, "mastertrust.v1.CustodianOrder", msg.Header.Get("Mastertrust-Type"), "type header")
	assert.Equal(t, "application/protobuf", msg.Header.Get("Content-Type"), "content type header")
	want, _ := proto.MarshalOptions{Deterministic: true}.Marshal(o)
	assert.Equal(t, want, msg.Data, "payload")
	var back pb.CustodianOrder
	require.NoError(t, Decode(msg.Header, msg.Data, &back), "decode")
	require.True(t, proto.Equal(&back, o), "decoded %v, want %v", &back, o)
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
		if c.ok {
			assert.NoError(t, err, c.name)
		} else {
			assert.ErrorIs(t, err, ErrWrongType, c.name)
		}
	}
}

// A mislabelled message is refused though its bytes decode as the type
// asked for: protobuf reads an ExecutionReport's bytes as a PriceFeed.
func TestDecodeRefusesMislabelled(t *testing.T) {
	data, _, err := Encode(&pb.ExecutionReport{ClOrdId: "x", Units: "1"})
	require.NoError(t, err)
	var f pb.PriceFeed
	require.NoError(t, proto.Unmarshal(data, &f), "the premise: protobuf decodes another message's bytes")
	err = Decode(nats.Header{TypeHeader: {"mastertrust.v1.ExecutionReport"}}, data, &f)
	require.ErrorIs(t, err, ErrWrongType, "decode")
}
