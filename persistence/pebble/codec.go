package pebble

import (
	"encoding/binary"
	"errors"
	"time"
)

// An event value is
//
//	uvarint len(stream) | stream | uvarint version | uvarint len(type) | type |
//	8 bytes commit time (Unix ns, BE) | data
//
// The group and position are in the key. Stream and version are stored in
// the value so that a feed reader needs no second lookup, and so that Read can
// check that the index pointed at the right event.

var errCorrupt = errors.New("pebble journal: corrupt value")

func appendEventValue(dst []byte, stream string, version uint64, typ string, t time.Time, data []byte) []byte {
	dst = binary.AppendUvarint(dst, uint64(len(stream)))
	dst = append(dst, stream...)
	dst = binary.AppendUvarint(dst, version)
	dst = binary.AppendUvarint(dst, uint64(len(typ)))
	dst = append(dst, typ...)
	dst = binary.BigEndian.AppendUint64(dst, uint64(t.UnixNano()))
	return append(dst, data...)
}

// decodedEvent aliases v: copy before the iterator moves.
type decodedEvent struct {
	stream  []byte
	version uint64
	typ     []byte
	unixNs  int64
	data    []byte
}

func decodeEventValue(v []byte) (decodedEvent, error) {
	var e decodedEvent
	n, k := binary.Uvarint(v)
	if k <= 0 || uint64(len(v)-k) < n {
		return e, errCorrupt
	}
	v = v[k:]
	e.stream, v = v[:n], v[n:]
	e.version, k = binary.Uvarint(v)
	if k <= 0 {
		return e, errCorrupt
	}
	v = v[k:]
	n, k = binary.Uvarint(v)
	if k <= 0 || uint64(len(v)-k) < n {
		return e, errCorrupt
	}
	v = v[k:]
	e.typ, v = v[:n], v[n:]
	if len(v) < 8 {
		return e, errCorrupt
	}
	e.unixNs = int64(binary.BigEndian.Uint64(v))
	e.data = v[8:]
	return e, nil
}
