// Package natsembed starts a nats-server with JetStream inside the process:
// for dev mode, for tests, and for the simulated custodian. It sets what
// every one of them needs and is easy to forget: JetStream on a given
// directory, an fsync before every acknowledgement (SyncAlways), loopback by
// default, a free port on request, and a wait until clients can connect.
package natsembed

import (
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats-server/v2/server"
)

const (
	// maxPayloadBytesDefault is the largest message the server accepts. A
	// journal append is one message of at most persistence.AppendDataBytesMax
	// (4 MiB) plus framing; 8 MiB is the largest nats-server recommends.
	maxPayloadBytesDefault = 8 << 20
	// readyTimeoutDefault bounds the wait for the server to accept clients;
	// JetStream recovers its streams first, which takes a while for a large
	// store on a busy machine.
	readyTimeoutDefault = 30 * time.Second
)

// Options configures Start. Zero values take the defaults documented on
// each field.
type Options struct {
	// Dir holds JetStream's files. Required: a server without a directory
	// would keep JetStream in a temporary one and lose it.
	Dir string
	// Host to listen on. Default 127.0.0.1.
	Host string
	// Port to listen on. -1 or 0: a free port (the server's ClientURL tells
	// which). nats-server itself reads 0 as 4222; here 0 is "any" because a
	// test that forgets to set a port must not collide with a real server.
	Port int
	// MonitorPort is the port of the server's HTTP monitoring endpoints
	// (/varz, /jsz, /connz…), on Host. 0: none; -1: a free one
	// (MonitorURL tells which).
	MonitorPort int
	// Name of the server. Default "mastertrust".
	Name string
	// MaxPayloadBytes is the largest message accepted. Default 8 MiB.
	MaxPayloadBytes int32
	// ReadyTimeout bounds the wait for the server to accept clients.
	// Default 30s.
	ReadyTimeout time.Duration
	// Logger receives the server's log lines (Notice as Info, Debug when
	// Debug is set; Trace never). Default nil: the server logs nothing.
	Logger *slog.Logger
	// Debug turns on the server's debug lines (only with a Logger).
	Debug bool
	// Cluster joins the server to a cluster of servers (replicated
	// JetStream streams, several embedded nodes). Nil: a single server.
	Cluster *ClusterOptions
	// Users are the clients that may connect, each with its permissions
	// (internal/natsauth makes them). Nil: anyone may connect and do
	// anything (tests' private servers only; the platform's servers always
	// have users).
	Users []*server.NkeyUser
	// TLS, if set, is the client listener's TLS configuration: clients
	// must connect with TLS (a plaintext client is refused), and with a
	// certificate its ClientCAs verify when its ClientAuth requires one.
	TLS *tls.Config
}

// ClusterOptions configures the server's cluster listener and routes.
type ClusterOptions struct {
	// Name of the cluster; every member uses the same. Required.
	Name string
	// Port for routes from other members; -1 or 0: a free port
	// (Server.ClusterURL tells which). The host is Options.Host.
	Port int
	// Routes are other members' ClusterURLs. A new member needs one that
	// is up; the cluster tells it the rest.
	Routes []string
	// TLS, if set, secures routes with mutual TLS: the listener refuses a
	// plaintext route, and each side verifies the other's certificate, so
	// it must present Certificates, require and verify the peer's
	// (ClientAuth tls.RequireAndVerifyClientCert, ClientCAs) and verify
	// the member it dials (RootCAs; the route URL's host must be in that
	// member's certificate). Start refuses a TLS configuration that leaves
	// a side unverified. Nil: plaintext routes (tests' private clusters
	// only).
	TLS *tls.Config
	// PeerSubject, with TLS, is the subject a member's certificate must
	// have, e.g. "CN=nats,O=mastertrust" (the certificate's subject in
	// RFC 2253 order), checked both on the server that dials
	// (nats-server's TLS map of routes) and on the server dialed (the
	// handshake's). Required when the CA that verifies members also
	// issues certificates to clients: a client's certificate would
	// otherwise open a route, and a route is not bound by any user's
	// permissions. Empty: any certificate from the CA is a member.
	PeerSubject string
}

// peerSubjectCheck is a TLS VerifyConnection that runs next (if any) and
// then refuses a peer whose certificate's subject is not subject.
func peerSubjectCheck(next func(tls.ConnectionState) error, subject string) func(tls.ConnectionState) error {
	return func(cs tls.ConnectionState) error {
		if next != nil {
			if err := next(cs); err != nil {
				return err
			}
		}
		if len(cs.PeerCertificates) == 0 {
			return errors.New("natsembed: route peer presented no certificate")
		}
		if got := cs.PeerCertificates[0].Subject.ToRDNSequence().String(); got != subject {
			return fmt.Errorf("natsembed: route peer's certificate is %q, not a member's (%q)", got, subject)
		}
		return nil
	}
}

// checkRouteTLS refuses a route TLS configuration that would leave one
// side unverified: the listener must require and verify the dialer's
// certificate, and the dialer must verify the listener's against given
// roots.
func checkRouteTLS(c *tls.Config) error {
	switch {
	case len(c.Certificates) == 0 && c.GetCertificate == nil:
		return errors.New("natsembed: route TLS has no certificate")
	case c.ClientAuth != tls.RequireAndVerifyClientCert || c.ClientCAs == nil:
		return errors.New("natsembed: route TLS must require and verify the peer's certificate (ClientAuth RequireAndVerifyClientCert, ClientCAs)")
	case c.RootCAs == nil:
		return errors.New("natsembed: route TLS must verify the member it dials (RootCAs)")
	case c.InsecureSkipVerify:
		return errors.New("natsembed: route TLS must not skip verification")
	}
	return nil
}

// Server is a running embedded server.
type Server struct {
	srv *server.Server
}

// Start starts a server and waits until it accepts clients.
func Start(o Options) (*Server, error) {
	if o.Dir == "" {
		return nil, errors.New("natsembed: Options.Dir is required")
	}
	if o.Host == "" {
		o.Host = "127.0.0.1"
	}
	if o.Port == 0 {
		o.Port = server.RANDOM_PORT
	}
	if o.Name == "" {
		o.Name = "mastertrust"
	}
	if o.MaxPayloadBytes == 0 {
		o.MaxPayloadBytes = maxPayloadBytesDefault
	}
	if o.ReadyTimeout == 0 {
		o.ReadyTimeout = readyTimeoutDefault
	}
	opts := &server.Options{
		ServerName: o.Name,
		Host:       o.Host,
		Port:       o.Port,
		MaxPayload: o.MaxPayloadBytes,
		// Clients buffer at most this much for one connection before the
		// server calls them slow; it must hold at least one message.
		MaxPending: 4 * int64(o.MaxPayloadBytes),
		JetStream:  true,
		StoreDir:   o.Dir,
		// JetStream's default fsyncs every 2 minutes and acknowledges
		// before: a power loss then loses acknowledged writes (Jepsen,
		// NATS 2.12.1). Sync before every acknowledgement.
		SyncAlways: true,
		NoSigs:     true,
		Debug:      o.Debug && o.Logger != nil,
	}
	if len(o.Users) > 0 {
		opts.Nkeys = o.Users
	}
	if o.TLS != nil {
		opts.TLSConfig, opts.TLS = o.TLS, true
		opts.TLSVerify = o.TLS.ClientAuth == tls.RequireAndVerifyClientCert
		// The client must finish its handshake within this many seconds.
		opts.TLSTimeout = 5
	}
	if o.MonitorPort != 0 {
		opts.HTTPHost, opts.HTTPPort = o.Host, o.MonitorPort
	}
	if c := o.Cluster; c != nil {
		if c.Name == "" {
			return nil, errors.New("natsembed: ClusterOptions.Name is required")
		}
		opts.Cluster = server.ClusterOpts{Name: c.Name, Host: o.Host, Port: c.Port}
		if c.Port == 0 {
			opts.Cluster.Port = server.RANDOM_PORT
		}
		if len(c.Routes) > 0 {
			opts.Routes = server.RoutesFromStr(strings.Join(c.Routes, ","))
		}
		if c.PeerSubject != "" && c.TLS == nil {
			return nil, errors.New("natsembed: ClusterOptions.PeerSubject needs ClusterOptions.TLS")
		}
		if c.TLS != nil {
			if err := checkRouteTLS(c.TLS); err != nil {
				return nil, err
			}
			// A peer must finish its handshake within this many seconds.
			opts.Cluster.TLSConfig, opts.Cluster.TLSTimeout = c.TLS.Clone(), 5
			// No route user and password: with mutual TLS a member proves
			// itself with its certificate, which a password shared by every
			// member (and written in each one's configuration) would only
			// repeat. Where the CA also issues clients' certificates, the
			// TLS map narrows members to those whose certificate has
			// PeerSubject: nats-server then compares the subject with the
			// route "user", and no password is sent or checked. The map
			// checks the server that dials; the handshake's check below
			// also checks, from the dialing side, the server dialed.
			if c.PeerSubject != "" {
				opts.Cluster.TLSMap, opts.Cluster.Username = true, c.PeerSubject
				opts.Cluster.TLSConfig.VerifyConnection = peerSubjectCheck(c.TLS.VerifyConnection, c.PeerSubject)
			}
		}
	}
	srv, err := server.NewServer(opts)
	if err != nil {
		return nil, fmt.Errorf("natsembed: new server: %w", err)
	}
	// The server reports what stops it from starting (a clustered
	// JetStream without routes, a store it cannot open) with Fatalf and
	// then just never becomes ready; the adapter keeps the message so that
	// Start fails at once and says why.
	logger := o.Logger
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	adapter := &slogAdapter{l: logger}
	srv.SetLoggerV2(adapter, opts.Debug, false, false)
	srv.Start()
	deadline := time.Now().Add(o.ReadyTimeout)
	for !srv.ReadyForConnections(readyPoll) {
		if msg := adapter.fatal.Load(); msg != nil || time.Now().After(deadline) {
			srv.Shutdown()
			srv.WaitForShutdown()
			if msg != nil {
				return nil, fmt.Errorf("natsembed: server on %s:%d did not start: %s", o.Host, o.Port, *msg)
			}
			return nil, fmt.Errorf("natsembed: server on %s:%d not ready after %s", o.Host, o.Port, o.ReadyTimeout)
		}
	}
	if msg := adapter.fatal.Load(); msg != nil {
		srv.Shutdown()
		srv.WaitForShutdown()
		return nil, fmt.Errorf("natsembed: server on %s:%d did not start: %s", o.Host, o.Port, *msg)
	}
	if !srv.JetStreamEnabled() {
		srv.Shutdown()
		srv.WaitForShutdown()
		return nil, errors.New("natsembed: JetStream did not start (see the server's log)")
	}
	return &Server{srv: srv}, nil
}

// ClientURL is the URL clients connect to, e.g. nats://127.0.0.1:40123.
func (s *Server) ClientURL() string { return s.srv.ClientURL() }

// MonitorURL is the base URL of the server's monitoring endpoints, e.g.
// http://127.0.0.1:8222; empty without Options.MonitorPort.
func (s *Server) MonitorURL() string {
	addr := s.srv.MonitorAddr()
	if addr == nil {
		return ""
	}
	return "http://" + addr.String()
}

// ClusterURL is the URL other members route to, e.g.
// nats-route://127.0.0.1:40124; empty without Options.Cluster.
func (s *Server) ClusterURL() string {
	addr := s.srv.ClusterAddr()
	if addr == nil {
		return ""
	}
	return "nats-route://" + addr.String()
}

// NATS is the underlying server, for what this package does not wrap.
func (s *Server) NATS() *server.Server { return s.srv }

// Shutdown stops the server and waits until it has stopped and closed its
// files, so that another server can open the same directory.
func (s *Server) Shutdown() {
	s.srv.Shutdown()
	s.srv.WaitForShutdown()
}

// readyPoll is how often Start looks for a fatal error while it waits for
// the server to accept clients.
const readyPoll = 25 * time.Millisecond

// slogAdapter is the server's logger; fatal keeps the first Fatalf line.
type slogAdapter struct {
	l     *slog.Logger
	fatal atomic.Pointer[string]
}

func (a *slogAdapter) Noticef(format string, v ...any) {
	a.l.Info(fmt.Sprintf(format, v...), "component", "nats-server")
}

func (a *slogAdapter) Warnf(format string, v ...any) {
	a.l.Warn(fmt.Sprintf(format, v...), "component", "nats-server")
}

func (a *slogAdapter) Fatalf(format string, v ...any) {
	msg := fmt.Sprintf(format, v...)
	a.fatal.CompareAndSwap(nil, &msg)
	a.l.Error(msg, "component", "nats-server", "fatal", true)
}

func (a *slogAdapter) Errorf(format string, v ...any) {
	a.l.Error(fmt.Sprintf(format, v...), "component", "nats-server")
}

func (a *slogAdapter) Debugf(format string, v ...any) {
	a.l.Debug(fmt.Sprintf(format, v...), "component", "nats-server")
}

func (a *slogAdapter) Tracef(format string, v ...any) {
	a.l.Debug(fmt.Sprintf(format, v...), "component", "nats-server", "trace", true)
}
