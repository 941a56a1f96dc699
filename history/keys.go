package history

import (
	"encoding/base64"
	"encoding/binary"
	"fmt"
	"math"
	"time"
)

// The key layout. Every key starts with a byte naming its kind; a member's
// keys of one kind follow "<kind><member>\x00", so that each query is a range
// scan of one member's keys (member ids are stream name characters,
// persistence's [A-Za-z0-9/_:-], so no id holds the 0x00 terminator and no
// member's range holds another's). Numbers are big-endian, so that byte
// order is numeric order.
//
//	v                                          layout version (one byte)
//	c <group u32>                              checkpoint: the group's last applied feed position (u64)
//	m <member> 00                              the member's projected pot (codec.ProjectedPot)
//	o <member> 00 <order number u64>           an order as it is now, or ended (codec.EncodeOrder; closed and rendered: codec.EncodeRenderedOrder)
//	s <member> 00 <time u64> <version u64>     a statement entry (codec.EncodeStatementEntry)
//	r <member> 00 <idempotency key>            the latest record of an idempotency key (codec.EncodeRequestRecord)
//
// A statement entry's time is its event's commit time within the pot (the
// entry's At) as Unix nanoseconds with the sign bit flipped (so that
// byte order is time order), and its version the event's stream version:
// one event makes at most one entry, so (time, version) is unique and no
// index within the event is needed.
const (
	kindLayout     byte = 'v'
	kindCheckpoint byte = 'c'
	kindMember     byte = 'm'
	kindOrder      byte = 'o'
	kindStatement  byte = 's'
	kindRequest    byte = 'r'
)

// LayoutVersion is the layout above, with the rendering of closed orders'
// views (Options.RenderClosedOrder): a change to either makes a new
// version. A store of another layout is refused at Open: it is a cache of
// the journal, to be removed and rebuilt.
const LayoutVersion byte = 2

var keyLayout = []byte{kindLayout}

// memberPrefix is "<kind><member>\x00", the start of a member's keys of kind.
func memberPrefix(kind byte, member string) []byte {
	k := make([]byte, 0, 2+len(member)+16)
	k = append(k, kind)
	k = append(k, member...)
	return append(k, 0)
}

// prefixEnd is the first key after every key that starts with prefix (whose
// last byte is the 0x00 terminator or a kind byte, never 0xff).
func prefixEnd(prefix []byte) []byte {
	end := append([]byte(nil), prefix...)
	end[len(end)-1]++
	return end
}

func checkpointKey(group uint32) []byte {
	return binary.BigEndian.AppendUint32([]byte{kindCheckpoint}, group)
}

func memberKey(member string) []byte { return memberPrefix(kindMember, member) }

func orderKey(member string, seq uint64) []byte {
	return binary.BigEndian.AppendUint64(memberPrefix(kindOrder, member), seq)
}

func statementKey(member string, at time.Time, version uint64) []byte {
	return binary.BigEndian.AppendUint64(statementTimeKey(member, at), version)
}

// statementTimeKey is the first key of member's entries at or after at.
func statementTimeKey(member string, at time.Time) []byte {
	return binary.BigEndian.AppendUint64(memberPrefix(kindStatement, member), timeBits(at))
}

func requestKey(member, key string) []byte {
	return append(memberPrefix(kindRequest, member), key...)
}

// timeBits orders instants as bytes: Unix nanoseconds with the sign bit
// flipped. The zero time is 0 nanoseconds, as in codec (a statement entry's
// time is never zero); instants beyond int64 nanoseconds (before 1678,
// after 2262: a filter's open end) are clamped to its ends.
func timeBits(t time.Time) uint64 {
	var n int64
	switch {
	case t.IsZero():
	case t.Before(nanosMin):
		n = math.MinInt64
	case t.After(nanosMax):
		n = math.MaxInt64
	default:
		n = t.UnixNano()
	}
	return uint64(n) ^ 1<<63
}

var (
	nanosMin = time.Unix(0, math.MinInt64)
	nanosMax = time.Unix(0, math.MaxInt64)
)

// A statement cursor is the time and version of the last entry returned,
// base64url: opaque to callers, and checked when it comes back.
const cursorBytes = 16

func encodeCursor(key []byte) string {
	return base64.RawURLEncoding.EncodeToString(key[len(key)-cursorBytes:])
}

// decodeCursor is the key of the entry a cursor names.
func decodeCursor(member, cursor string) ([]byte, error) {
	b, err := base64.RawURLEncoding.DecodeString(cursor)
	if err != nil || len(b) != cursorBytes {
		return nil, fmt.Errorf("%w: statement cursor %q", ErrInvalid, cursor)
	}
	return append(memberPrefix(kindStatement, member), b...), nil
}
