//go:build race

package cluster

import (
	"bufio"
	"crypto/tls"
	"fmt"
	"io"
	"net"
	"os"
	"time"
)

// raceProbeTimeout bounds the probe's dial and read; a loopback gRPC server
// answers in microseconds.
const raceProbeTimeout = 5 * time.Second

// http2ClientPreface is what an HTTP/2 client sends first: the connection
// preface and an empty SETTINGS frame (RFC 9113 §3.4). Sending it keeps the
// server from logging (and so reading gRPC's logger) about a bad preface.
var http2ClientPreface = []byte("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n\x00\x00\x00\x04\x00\x00\x00\x00\x00")

// raceSyncIO makes whatever any goroutine did before its last write(2) (to
// any file or socket) happen before the caller's next step, as far as the
// race detector can tell.
//
// How: in race-enabled builds package syscall treats write(2) as a release
// and read(2) as an acquire of one process-wide sync object (syscall's
// ioSync), modelling that data written to any file may be read from another.
// One read(2) here acquires everything released so far. It relies on that
// detail of the race runtime (Go 1.26) and is compiled only into race
// builds; it is best effort: if the pipe fails, the worst outcome is a race
// report.
//
// The pipe write is also a release: what the caller did before this call
// happens before any later read(2) in any goroutine.
//
// Why: protoactor and gRPC read shared variables without synchronization in
// goroutines we do not control: gRPC's logger (written by every remote
// start) and protoactor's block list (written when a member leaves, read
// without its lock when connections are made). Those goroutines write to
// and read from sockets around those reads, so calling this before a write
// orders earlier reads before it (start, the in-process provider's topology
// update), and calling it after a write orders later reads after it (the
// ClusterTopology event, published right after the block list changed).
func raceSyncIO() {
	r, w, err := os.Pipe()
	if err != nil {
		return
	}
	defer r.Close()
	defer w.Close()
	if _, err := w.Write([]byte{0}); err != nil {
		return
	}
	// The read is the point; if it fails the acquire may not have
	// happened, which only risks a report.
	if _, err := r.Read(make([]byte, 1)); err != nil {
		return
	}
}

// raceProbe connects to the node's own gRPC server at address and waits for
// the server's first bytes, and returns the open connection, to be closed
// after the node's remote has stopped.
//
// Why: grpc.Server.Serve reads the logger ("ListenSocket created") in its
// own goroutine and then blocks in Accept without writing anything, so
// raceSyncIO alone cannot order that read before the next node's
// start. Accepting our connection starts the goroutine that writes the
// server's SETTINGS frame; reading it orders Serve's read before us.
//
// The connection stays open because closing it makes the server log again
// in a goroutine that writes nothing after; at the node's stop, the server's
// Stop waits for that goroutine, which orders it.
//
// With TLS (clientTLS, the node's own client configuration) the probe
// completes a handshake first: the server's goroutine reads the logger
// before it, and a plaintext preface would only be logged as a failed
// handshake.
func raceProbe(address string, clientTLS *tls.Config) (io.Closer, error) {
	var conn net.Conn
	var err error
	if clientTLS != nil {
		// gRPC refuses a TLS client that does not negotiate HTTP/2.
		cfg := clientTLS.Clone()
		cfg.NextProtos = []string{"h2"}
		conn, err = tls.DialWithDialer(&net.Dialer{Timeout: raceProbeTimeout}, "tcp", address, cfg)
	} else {
		conn, err = net.DialTimeout("tcp", address, raceProbeTimeout)
	}
	if err != nil {
		return nil, fmt.Errorf("cluster: race workaround: dial own server %s: %w", address, err)
	}
	if err := conn.SetDeadline(time.Now().Add(raceProbeTimeout)); err != nil {
		conn.Close()
		return nil, fmt.Errorf("cluster: race workaround: deadline: %w", err)
	}
	if _, err := conn.Write(http2ClientPreface); err != nil {
		conn.Close()
		return nil, fmt.Errorf("cluster: race workaround: write preface to %s: %w", address, err)
	}
	if _, err := bufio.NewReader(conn).Peek(1); err != nil {
		conn.Close()
		return nil, fmt.Errorf("cluster: race workaround: read from own server %s: %w", address, err)
	}
	if err := conn.SetDeadline(time.Time{}); err != nil {
		conn.Close()
		return nil, fmt.Errorf("cluster: race workaround: clear deadline: %w", err)
	}
	return conn, nil
}
