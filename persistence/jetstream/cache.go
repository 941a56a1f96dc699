package jetstream

import "sync"

// head is what the store knows of a stream's last append: its group (which
// never changes), its version after the append and the append's JetStream
// sequence (which the next append names as the expected last sequence).
type head struct {
	group   uint32
	version uint64
	seq     uint64
}

// headCache maps stream names to heads, bounded by dropping an arbitrary
// entry when full (Go's map iteration order): pots that went quiet are the
// likely victims, and a miss costs one lookup.
type headCache struct {
	max int
	mu  sync.Mutex
	m   map[string]head // guarded by mu
}

func newHeadCache(max int) *headCache {
	return &headCache{max: max, m: make(map[string]head)}
}

func (c *headCache) get(stream string) (head, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	h, ok := c.m[stream]
	return h, ok
}

func (c *headCache) put(stream string, h head) {
	if c.max == 0 {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	c.putLocked(stream, h)
}

// putIfNewer stores h unless the cache already holds a later append.
func (c *headCache) putIfNewer(stream string, h head) {
	if c.max == 0 {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if old, ok := c.m[stream]; ok && old.seq >= h.seq {
		return
	}
	c.putLocked(stream, h)
}

func (c *headCache) putLocked(stream string, h head) {
	if _, ok := c.m[stream]; !ok && len(c.m) >= c.max {
		for k := range c.m {
			delete(c.m, k)
			break
		}
	}
	c.m[stream] = h
}

func (c *headCache) drop(stream string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	delete(c.m, stream)
}
