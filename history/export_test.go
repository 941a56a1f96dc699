package history

import (
	"encoding/binary"
	"errors"

	"github.com/cockroachdb/pebble/v2"
)

// KV is one key and its value, for comparing two stores byte for byte.
type KV struct{ Key, Value string }

// Dump lists every key and value of the store in key order.
func (s *Store) Dump() ([]KV, error) {
	it, err := s.db.NewIter(nil)
	if err != nil {
		return nil, err
	}
	var out []KV
	for valid := it.First(); valid; valid = it.Next() {
		out = append(out, KV{string(it.Key()), string(it.Value())})
	}
	return out, errors.Join(it.Error(), it.Close())
}

// SetCheckpoint moves group's checkpoint (back), as if the store had
// crashed before later pages were written, without their state going.
func (s *Store) SetCheckpoint(group uint32, position uint64) error {
	return s.db.Set(checkpointKey(group), binary.BigEndian.AppendUint64(nil, position), pebble.NoSync)
}

// Checkpoint is group's stored checkpoint.
func (s *Store) Checkpoint(group uint32) (uint64, error) { return s.checkpoint(group) }
