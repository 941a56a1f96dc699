package load

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"sync/atomic"
	"time"
)

// client calls the gateways' API, round robin over their URLs, as a member
// or the operator, and sends a request again (with its idempotency key)
// while the answer says the platform could not take it now: a transport
// error, a timeout, 503 and 504, 502, and any other 5xx, which is also
// counted as an error of the platform.
type client struct {
	urls    []string
	next    atomic.Uint64
	http    *http.Client
	token   func(member string) (string, error)
	retry   time.Duration // how long to keep sending one request again
	metrics *recorder
}

// answer is a final answer: its status and body.
type answer struct {
	status int
	body   []byte
	// replayed: the gateway said Idempotent-Replayed.
	replayed bool
	// retryAfter is the answer's Retry-After (0: none).
	retryAfter time.Duration
}

// call sends a request until it gets a final answer (2xx or 4xx, or a 5xx
// after the retry time), and records each attempt under kind. member ""
// calls as the operator.
func (c *client) call(ctx context.Context, kind, member, method, path, key string, body any) (answer, error) {
	var data []byte
	if body != nil {
		var err error
		if data, err = json.Marshal(body); err != nil {
			return answer{}, err
		}
	}
	token, err := c.token(member)
	if err != nil {
		return answer{}, err
	}
	deadline := time.Now().Add(c.retry)
	pause := 50 * time.Millisecond
	for attempt := 1; ; attempt++ {
		a, err := c.once(ctx, kind, method, path, key, token, data)
		again := err != nil || a.status >= 500
		if !again {
			return a, nil
		}
		if ctx.Err() != nil || time.Now().After(deadline) {
			if err == nil {
				err = fmt.Errorf("%s %s: %d after %d attempts: %s", method, path, a.status, attempt, firstLine(a.body))
			}
			return a, fmt.Errorf("%s %s: no answer in %s (%d attempts): %w", method, path, c.retry, attempt, err)
		}
		// A client waits at least what the gateway asks (Retry-After,
		// which every 503 carries), and backs off from 50 ms to a second
		// while the platform gives no answer.
		wait := max(pause, min(a.retryAfter, retryAfterMax))
		select {
		case <-ctx.Done():
		case <-time.After(wait):
		}
		pause = min(2*pause, time.Second)
	}
}

func (c *client) once(ctx context.Context, kind, method, path, key, token string, data []byte) (answer, error) {
	url := c.urls[int(c.next.Add(1)%uint64(len(c.urls)))]
	var rd io.Reader
	if data != nil {
		rd = bytes.NewReader(data)
	}
	req, err := http.NewRequestWithContext(ctx, method, url+path, rd)
	if err != nil {
		return answer{}, err
	}
	req.Header.Set("Authorization", "Bearer "+token)
	if data != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if key != "" {
		req.Header.Set("Idempotency-Key", key)
	}
	start := time.Now()
	resp, err := c.http.Do(req)
	if err != nil {
		c.metrics.attempt(kind, 0, time.Since(start))
		return answer{}, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	c.metrics.attempt(kind, resp.StatusCode, time.Since(start))
	if err != nil {
		return answer{}, err
	}
	a := answer{status: resp.StatusCode, body: b, replayed: resp.Header.Get("Idempotent-Replayed") != ""}
	if secs, err := strconv.Atoi(resp.Header.Get("Retry-After")); err == nil && secs > 0 {
		a.retryAfter = time.Duration(secs) * time.Second
	}
	return a, nil
}

// retryAfterMax bounds the wait a Retry-After asks for.
const retryAfterMax = 10 * time.Second

// get calls GET path and decodes a 200 into out.
func (c *client) get(ctx context.Context, kind, member, path string, out any) error {
	a, err := c.call(ctx, kind, member, http.MethodGet, path, "", nil)
	if err != nil {
		return err
	}
	if a.status != http.StatusOK {
		return fmt.Errorf("GET %s: %d: %s", path, a.status, firstLine(a.body))
	}
	return json.Unmarshal(a.body, out)
}

// problemCode is the code of a problem answer ("" if it is none).
func problemCode(body []byte) string {
	var p struct {
		Code string `json:"code"`
	}
	if json.Unmarshal(body, &p) != nil {
		return ""
	}
	return p.Code
}

func firstLine(b []byte) string {
	s, _, _ := strings.Cut(string(b), "\n")
	if len(s) > 300 {
		s = s[:300] + "…"
	}
	return s
}
