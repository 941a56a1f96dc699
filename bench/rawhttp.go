package bench

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"strconv"
	"sync/atomic"
	"time"
)

// rawClient is a minimal HTTP/1.1 client for the open-loop load: requests
// written as prepared bytes on keep-alive connections to one server, one
// request at a time on each, the answer's status, a few headers and the
// body read back. net/http's client costs about as much CPU per request
// as the gateway's server (a goroutine pair per connection, header maps,
// context plumbing): with the load generator in the measured process on a
// 2-core machine, it took half of the CPU at 3× the sustainable rate, so
// that the overload measured the generator starving the server. This one
// costs a fraction of it; it understands only what the gateway sends
// (Content-Length bodies, no chunking, no redirects).
type rawClient struct {
	addr    string
	timeout time.Duration
	// idle holds the connections no request is using (capacity maxConns).
	idle     chan *rawConn
	open     atomic.Int64 // connections open
	maxConns int64
	dials    atomic.Int64 // connections dialled, ever
	closed   atomic.Bool
}

type rawConn struct {
	c  net.Conn
	br *bufio.Reader
}

// rawResponse is what rawClient reads of an answer.
type rawResponse struct {
	status     int
	retryAfter bool // a Retry-After header was present
	body       []byte
}

func newRawClient(addr string, maxConns int, timeout time.Duration) *rawClient {
	return &rawClient{addr: addr, timeout: timeout, idle: make(chan *rawConn, maxConns), maxConns: int64(maxConns)}
}

// close closes the idle connections; the busy ones close when their
// requests end.
func (c *rawClient) close() {
	c.closed.Store(true)
	c.closeIdle()
}

// closeIdle closes the connections no request is using.
func (c *rawClient) closeIdle() {
	for {
		select {
		case rc := <-c.idle:
			rc.c.Close()
			c.open.Add(-1)
		default:
			return
		}
	}
}

// do sends req (a whole HTTP/1.1 request) and reads its answer, within
// the client's timeout and ctx: on an idle connection, or a new one if
// none is idle and fewer than maxConns are open, else on the first that
// comes back.
func (c *rawClient) do(ctx context.Context, req []byte) (rawResponse, error) {
	deadline := time.Now().Add(c.timeout)
	rc, err := c.conn(ctx, deadline)
	if err != nil {
		return rawResponse{}, err
	}
	resp, keep, err := rc.roundTrip(req, deadline)
	if err != nil || !keep || c.closed.Load() {
		rc.c.Close()
		c.open.Add(-1)
		return resp, err
	}
	c.idle <- rc // never blocks: at most maxConns exist
	return resp, nil
}

func (c *rawClient) conn(ctx context.Context, deadline time.Time) (*rawConn, error) {
	select {
	case rc := <-c.idle:
		return rc, nil
	default:
	}
	if c.open.Add(1) <= c.maxConns {
		c.dials.Add(1)
		d := net.Dialer{Deadline: deadline}
		nc, err := d.DialContext(ctx, "tcp", c.addr)
		if err != nil {
			c.open.Add(-1)
			return nil, err
		}
		return &rawConn{c: nc, br: bufio.NewReaderSize(nc, 4096)}, nil
	}
	c.open.Add(-1)
	t := time.NewTimer(time.Until(deadline))
	defer t.Stop()
	select {
	case rc := <-c.idle:
		return rc, nil
	case <-t.C:
		return nil, errors.New("rawhttp: no connection free before the timeout")
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

// roundTrip writes req and reads the answer; keep is false if the
// connection cannot carry another request.
func (rc *rawConn) roundTrip(req []byte, deadline time.Time) (resp rawResponse, keep bool, err error) {
	if err := rc.c.SetDeadline(deadline); err != nil {
		return resp, false, err
	}
	if _, err := rc.c.Write(req); err != nil {
		return resp, false, err
	}
	line, err := rc.br.ReadSlice('\n')
	if err != nil {
		return resp, false, err
	}
	// "HTTP/1.1 503 Service Unavailable\r\n"
	if len(line) < 12 || !bytes.HasPrefix(line, []byte("HTTP/1.1 ")) {
		return resp, false, fmt.Errorf("rawhttp: bad status line %q", line)
	}
	if resp.status, err = strconv.Atoi(string(line[9:12])); err != nil {
		return resp, false, fmt.Errorf("rawhttp: bad status line %q", line)
	}
	length, keep := -1, true
	for {
		line, err := rc.br.ReadSlice('\n')
		if err != nil {
			return resp, false, err
		}
		line = bytes.TrimRight(line, "\r\n")
		if len(line) == 0 {
			break
		}
		name, value, ok := bytes.Cut(line, []byte(":"))
		if !ok {
			return resp, false, fmt.Errorf("rawhttp: bad header %q", line)
		}
		value = bytes.TrimSpace(value)
		switch {
		case bytes.EqualFold(name, []byte("Content-Length")):
			if length, err = strconv.Atoi(string(value)); err != nil {
				return resp, false, fmt.Errorf("rawhttp: bad Content-Length %q", value)
			}
		case bytes.EqualFold(name, []byte("Retry-After")):
			resp.retryAfter = true
		case bytes.EqualFold(name, []byte("Connection")) && bytes.EqualFold(value, []byte("close")):
			keep = false
		case bytes.EqualFold(name, []byte("Transfer-Encoding")):
			return resp, false, fmt.Errorf("rawhttp: Transfer-Encoding %q not supported", value)
		}
	}
	if length < 0 {
		return resp, false, errors.New("rawhttp: an answer without Content-Length")
	}
	resp.body = make([]byte, length)
	if _, err := io.ReadFull(rc.br, resp.body); err != nil {
		return resp, false, err
	}
	return resp, keep, nil
}
