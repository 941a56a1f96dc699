package history

import (
	"encoding/binary"
	"fmt"

	"github.com/acme/mastertrust/codec"
	"github.com/acme/mastertrust/domain"
)

// An order's value ("o" keys) is a tag byte and then:
//
//	orderDecoded   codec.EncodeOrder
//	orderRendered  uvarint n, status (n bytes), uvarint m, view (m bytes), codec.EncodeOrder
//
// A closed order (domain.Order.Closed: no later event changes it, and its
// status no longer depends on the day's cut-off) is stored rendered when
// the store has a renderer (Options.RenderClosedOrder): a page of old orders
// then copies each view as it is, rather than decoding the order's decimals
// and formatting them again at every read. The encoded order stays beside
// the view for the queries that need the order itself (Order).
const (
	orderDecoded  byte = 0
	orderRendered byte = 1
)

// ClosedOrderRenderer appends a closed order's view, as the store's readers
// serve it, to b.
type ClosedOrderRenderer func(b []byte, o *domain.Order) []byte

// neverCutOff is the cut-off of a closed order's status, which does not
// ask it.
func neverCutOff(domain.Date) bool { return false }

// encodeOrderValue is o's value: rendered if it is closed and render is
// set.
func encodeOrderValue(o *domain.Order, render ClosedOrderRenderer) []byte {
	encoded := codec.EncodeOrder(o)
	if render == nil || !o.Closed() {
		return append([]byte{orderDecoded}, encoded...)
	}
	status := domain.OrderStatusAt(o, neverCutOff)
	view := render(nil, o)
	v := make([]byte, 0, 1+2*binary.MaxVarintLen32+len(status)+len(view)+len(encoded))
	v = append(v, orderRendered)
	v = binary.AppendUvarint(v, uint64(len(status)))
	v = append(v, status...)
	v = binary.AppendUvarint(v, uint64(len(view)))
	v = append(v, view...)
	return append(v, encoded...)
}

// orderValue is an order's value split: the encoded order, and for a
// rendered one its status and view (aliasing the value).
type orderValue struct {
	rendered bool
	status   []byte
	view     []byte
	encoded  []byte
}

func splitOrderValue(v []byte) (orderValue, error) {
	if len(v) == 0 {
		return orderValue{}, fmt.Errorf("an order's value is empty")
	}
	switch v[0] {
	case orderDecoded:
		return orderValue{encoded: v[1:]}, nil
	case orderRendered:
		rest := v[1:]
		status, rest, err := lengthPrefixed(rest)
		if err != nil {
			return orderValue{}, fmt.Errorf("a rendered order's status: %w", err)
		}
		view, rest, err := lengthPrefixed(rest)
		if err != nil {
			return orderValue{}, fmt.Errorf("a rendered order's view: %w", err)
		}
		return orderValue{rendered: true, status: status, view: view, encoded: rest}, nil
	}
	return orderValue{}, fmt.Errorf("an order's value has tag %d", v[0])
}

// lengthPrefixed splits a uvarint-length-prefixed field off b.
func lengthPrefixed(b []byte) (field, rest []byte, err error) {
	n, size := binary.Uvarint(b)
	if size <= 0 || n > uint64(len(b)-size) {
		return nil, nil, fmt.Errorf("a length of %d bytes past the value's %d", n, len(b))
	}
	return b[size : size+int(n)], b[size+int(n):], nil
}
