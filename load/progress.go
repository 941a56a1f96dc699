package load

import (
	"context"
	"encoding/json"
	"time"

	"github.com/schollz/progressbar/v3"
)

// bar is a phase's progress bar on Config.Progress; without one, every
// method does nothing.
type bar struct{ b *progressbar.ProgressBar }

// bar starts a progress bar of total steps (-1: unknown, a spinner).
func (ru *run) bar(phase string, total int64) bar {
	if ru.cfg.Progress == nil {
		return bar{}
	}
	opts := []progressbar.Option{
		progressbar.OptionSetWriter(ru.cfg.Progress),
		progressbar.OptionSetDescription(phase),
		progressbar.OptionThrottle(200 * time.Millisecond),
		progressbar.OptionOnCompletion(func() { ru.cfg.Progress.Write([]byte("\n")) }),
		progressbar.OptionSetWidth(30),
	}
	if total >= 0 {
		opts = append(opts, progressbar.OptionShowCount(), progressbar.OptionShowIts(), progressbar.OptionSetPredictTime(true))
	} else {
		opts = append(opts, progressbar.OptionSetElapsedTime(false))
	}
	return bar{progressbar.NewOptions64(total, opts...)}
}

func (b bar) add(n int) {
	if b.b != nil {
		b.b.Add(n)
	}
}

func (b bar) describe(s string) {
	if b.b != nil {
		b.b.Describe(s)
	}
}

func (b bar) finish() {
	if b.b != nil {
		b.b.Finish()
	}
}

// windowWidth is the width of the report's time windows.
const windowWidth = 5 * time.Second

// sampleInterval is how often the run samples memory and active pots.
const sampleInterval = time.Second

// sample records the process's memory and the cluster's active pots every
// sampleInterval until ctx ends.
func (ru *run) sample(ctx context.Context) {
	t := time.NewTicker(sampleInterval)
	defer t.Stop()
	for {
		var processes map[string]int
		if ru.cfg.Processes != nil {
			processes = ru.cfg.Processes()
		}
		ru.metrics.sample(ru.readCluster(ctx), processes)
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// clusterReading is what GET /v1/cluster said of the members.
type clusterReading struct {
	activePots      int64             // on every member; -1: no answer
	memberHeapBytes map[string]uint64 // by member id
}

// readCluster reads the pots active on every member and each member's heap
// from GET /v1/cluster.
func (ru *run) readCluster(ctx context.Context) clusterReading {
	ctx, cancel := context.WithTimeout(ctx, sampleInterval)
	defer cancel()
	none := clusterReading{activePots: -1}
	a, err := ru.c.once(ctx, "cluster", "GET", "/v1/cluster", "", ru.operatorToken, nil)
	if err != nil || a.status != 200 {
		return none
	}
	var c struct {
		Members []struct {
			ID         string  `json:"id"`
			ActivePots *int64  `json:"activePots"`
			HeapBytes  *uint64 `json:"heapBytes"`
		} `json:"members"`
	}
	if json.Unmarshal(a.body, &c) != nil {
		return none
	}
	out := clusterReading{memberHeapBytes: map[string]uint64{}}
	for _, m := range c.Members {
		if m.ActivePots != nil {
			out.activePots += *m.ActivePots
		}
		if m.HeapBytes != nil {
			out.memberHeapBytes[m.ID] = *m.HeapBytes
		}
	}
	return out
}
