package jetstream

import (
	"encoding/binary"
	"errors"
	"fmt"
	"strconv"

	"github.com/nats-io/nats.go"

	"github.com/acme/mastertrust/persistence"
)

// One append is one NATS message on the stream's subject, so that it is
// atomic without JetStream's batch protocol and costs one fsync. Headers
// carry what a reader needs without decoding the payload:
//
//	Mt-Version: the stream's version after the append (its last event's)
//	Mt-Count:   the number of events
//
// The payload is, per event: uvarint len(type) | type | uvarint len(data) | data.
const (
	hdrVersion = "Mt-Version"
	hdrCount   = "Mt-Count"
	// hdrGroup is a directory entry's group.
	hdrGroup = "Mt-Group"
	// hdrExpectedLastSubjSeq is JetStream's per-subject compare-and-set.
	hdrExpectedLastSubjSeq = "Nats-Expected-Last-Subject-Sequence"
)

// appendMessageBytesMax is the largest message an append makes: the
// contract's bytes, two varints per event, and headers.
const appendMessageBytesMax = persistence.AppendDataBytesMax + persistence.AppendEventsMax*2*binary.MaxVarintLen64 + 1024

var errCorrupt = errors.New("jetstream journal: corrupt message")

func encodeEvents(evs []persistence.NewEvent) []byte {
	n := 0
	for _, e := range evs {
		n += 2*binary.MaxVarintLen64 + len(e.Type) + len(e.Data)
	}
	b := make([]byte, 0, n)
	for _, e := range evs {
		b = binary.AppendUvarint(b, uint64(len(e.Type)))
		b = append(b, e.Type...)
		b = binary.AppendUvarint(b, uint64(len(e.Data)))
		b = append(b, e.Data...)
	}
	return b
}

type decodedEvent struct {
	typ  string
	data []byte
}

func decodeEvents(b []byte, count int) ([]decodedEvent, error) {
	out := make([]decodedEvent, 0, count)
	for len(b) > 0 {
		n, k := binary.Uvarint(b)
		if k <= 0 || uint64(len(b)-k) < n {
			return nil, errCorrupt
		}
		typ := string(b[k : k+int(n)])
		b = b[k+int(n):]
		n, k = binary.Uvarint(b)
		if k <= 0 || uint64(len(b)-k) < n {
			return nil, errCorrupt
		}
		var data []byte
		if n > 0 {
			data = append([]byte(nil), b[k:k+int(n)]...)
		}
		b = b[k+int(n):]
		out = append(out, decodedEvent{typ: typ, data: data})
	}
	if len(out) != count {
		return nil, fmt.Errorf("%w: %d events, header says %d", errCorrupt, len(out), count)
	}
	return out, nil
}

// versionHeaders reads Mt-Version and Mt-Count.
func versionHeaders(h nats.Header) (last uint64, count int, err error) {
	last, err = strconv.ParseUint(h.Get(hdrVersion), 10, 64)
	if err != nil {
		return 0, 0, fmt.Errorf("%w: %s header: %v", errCorrupt, hdrVersion, err)
	}
	c, err := strconv.Atoi(h.Get(hdrCount))
	if err != nil || c < 1 || c > persistence.AppendEventsMax || uint64(c) > last {
		return 0, 0, fmt.Errorf("%w: %s header %q", errCorrupt, hdrCount, h.Get(hdrCount))
	}
	return last, c, nil
}
