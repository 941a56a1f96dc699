package platform

import (
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/acme/mastertrust/internal/natsauth"
)

// NATS connection events, the values of the kind label of
// mastertrust_nats_connection_events_total.
const (
	natsEventDisconnected = "disconnected"
	natsEventReconnected  = "reconnected"
	natsEventClosed       = "closed"
)

// natsWatch logs a NATS connection's changes, one line each, and counts
// them by kind: against a NATS cluster a node moves between servers, and
// an operator should see when and to which without nats.go's own output.
type natsWatch struct {
	log    *slog.Logger
	events *prometheus.CounterVec // nil: not counted

	mu  sync.Mutex
	url string // the server last connected to, redacted
}

// newNATSWatch logs to log and, if reg is not nil, registers its counter
// there.
func newNATSWatch(log *slog.Logger, reg prometheus.Registerer) *natsWatch {
	w := &natsWatch{log: log}
	if reg != nil {
		w.events = prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "mastertrust_nats_connection_events_total",
			Help: "Changes of the process's NATS connection, by kind (disconnected, reconnected, closed).",
		}, []string{"kind"})
		// Every kind is exported from the start, at 0, so that a rate
		// over it needs no first event.
		for _, k := range []string{natsEventDisconnected, natsEventReconnected, natsEventClosed} {
			w.events.WithLabelValues(k)
		}
		reg.MustRegister(w.events)
	}
	return w
}

func (w *natsWatch) count(kind string) {
	if w.events != nil {
		w.events.WithLabelValues(kind).Inc()
	}
}

func (w *natsWatch) setURL(url string) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.url = url
}

func (w *natsWatch) lastURL() string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.url
}

// options are the handlers nats.go calls on a change. A connection being
// disconnected no longer names its server, hence lastURL.
func (w *natsWatch) options() []nats.Option {
	return []nats.Option{
		nats.DisconnectErrHandler(func(nc *nats.Conn, err error) {
			if nc.IsClosed() {
				return // Close also disconnects: ClosedHandler says it
			}
			w.count(natsEventDisconnected)
			w.log.Warn("nats disconnected; reconnecting", "url", w.lastURL(), "err", redactErr(err))
		}),
		nats.ReconnectHandler(func(nc *nats.Conn) {
			url := nc.ConnectedUrlRedacted()
			w.setURL(url)
			w.count(natsEventReconnected)
			w.log.Info("nats reconnected", "url", url)
		}),
		nats.ClosedHandler(func(nc *nats.Conn) {
			w.count(natsEventClosed)
			w.log.Info("nats connection closed", "url", w.lastURL(), "err", redactErr(nc.LastError()))
		}),
	}
}

// redactErr is err's text without credentials (nil: "").
func redactErr(err error) string {
	if err == nil {
		return ""
	}
	return natsauth.Redact(err.Error())
}

// connectNATS connects to url with cred and opts, logging and counting the
// connection's changes with watch (nil: neither). Its error names the URL
// without credentials (natsauth.Redact): errors end up in logs. url may
// list several servers of a cluster, comma-separated.
func connectNATS(url string, cred natsauth.Client, name string, watch *natsWatch, opts ...nats.Option) (*nats.Conn, error) {
	credOpts, err := cred.Options()
	if err != nil {
		return nil, fmt.Errorf("platform: NATS credential of %s: %w", cred.Role, err)
	}
	all := append([]nats.Option{nats.Name(name)}, credOpts...)
	if watch != nil {
		all = append(all, watch.options()...)
	}
	nc, err := nats.Connect(url, append(all, opts...)...)
	if err != nil {
		reason := natsauth.Redact(err.Error())
		if errors.Is(err, nats.ErrNoServers) {
			reason += unreachable(url)
		}
		return nil, fmt.Errorf("platform: connect to NATS at %s as %s: %s", natsauth.Redact(url), cred.Role, reason)
	}
	if watch != nil {
		watch.setURL(nc.ConnectedUrlRedacted())
		// The URL keeps the scheme it was given (nats://) when the server
		// requires TLS, so say what the connection is.
		_, tlsErr := nc.TLSConnectionState()
		watch.log.Info("nats connected", "url", nc.ConnectedUrlRedacted(), "server", nc.ConnectedServerName(), "tls", tlsErr == nil)
	}
	return nc, nil
}

// natsDialTimeout bounds unreachable's dial of one server.
const natsDialTimeout = 2 * time.Second

// unreachable says why the servers of urls (comma-separated) cannot be
// reached, e.g. " (127.0.0.1:4222: connection refused)": nats.go reports
// only that no server was available, and an operator needs to tell a
// wrong host or port from a server that is down or a firewall.
func unreachable(urls string) string {
	var why []string
	for _, u := range strings.Split(urls, ",") {
		u = strings.TrimSpace(u)
		if !strings.Contains(u, "://") {
			u = "nats://" + u
		}
		parsed, err := url.Parse(u)
		if err != nil || parsed.Host == "" {
			continue
		}
		host := parsed.Host
		if parsed.Port() == "" {
			host = net.JoinHostPort(parsed.Hostname(), "4222")
		}
		conn, err := net.DialTimeout("tcp", host, natsDialTimeout)
		if err != nil {
			var op *net.OpError
			if errors.As(err, &op) && op.Err != nil {
				err = op.Err
			}
			why = append(why, fmt.Sprintf("%s: %v", host, err))
			continue
		}
		conn.Close()
		why = append(why, host+": reachable over TCP (not a NATS server, or TLS refused)")
	}
	if len(why) == 0 {
		return ""
	}
	return " (" + strings.Join(why, "; ") + ")"
}
