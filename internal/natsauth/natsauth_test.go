package natsauth_test

import (
	"bufio"
	"context"
	"crypto/tls"
	"fmt"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/acme/mastertrust/cluster/natskv"
	"github.com/acme/mastertrust/custodian"
	"github.com/acme/mastertrust/domain"
	"github.com/acme/mastertrust/internal/natsauth"
	"github.com/acme/mastertrust/internal/natsembed"
	"github.com/acme/mastertrust/internal/pki"
	"github.com/acme/mastertrust/platform"
)

// startServer makes a secrets directory and starts a server with its users
// and TLS.
func startServer(t *testing.T) (*natsembed.Server, string) {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "secrets")
	_, err := natsauth.Ensure(dir, nil)
	require.NoError(t, err)
	auth, err := natsauth.LoadServer(dir)
	require.NoError(t, err)
	srv, err := natsembed.Start(natsembed.Options{Dir: t.TempDir(), Users: auth.Users, TLS: auth.TLS})
	require.NoError(t, err)
	t.Cleanup(srv.Shutdown)
	return srv, dir
}

func connect(t *testing.T, srv *natsembed.Server, dir string, role natsauth.Role) *nats.Conn {
	t.Helper()
	opts, err := natsauth.ClientFromDir(dir, role).Options()
	require.NoError(t, err)
	nc, err := nats.Connect(srv.ClientURL(), append(opts, nats.ErrorHandler(func(*nats.Conn, *nats.Subscription, error) {}))...)
	require.NoError(t, err, role)
	t.Cleanup(nc.Close)
	return nc
}

// refused reports whether the server refused what do did on nc: a
// permissions violation naming subject, seen once a flush has made the
// round trip (the server answers a refused publish or subscription with
// -ERR before the flush's PONG).
func refused(t *testing.T, nc *nats.Conn, subject string, do func() error) bool {
	t.Helper()
	require.NoError(t, do())
	require.NoError(t, nc.FlushTimeout(5*time.Second))
	err := nc.LastError()
	if err == nil {
		return false
	}
	msg := strings.ToLower(err.Error())
	require.Contains(t, msg, "permissions violation", "an error other than a refusal")
	return strings.Contains(msg, strings.ToLower(`"`+subject+`"`))
}

// The permissions matrix: every role against every family of subjects,
// allowed or refused as an expected matrix written here, independently of
// the role table, says.
func TestPermissionsMatrix(t *testing.T) {
	t.Parallel()
	srv, dir := startServer(t)
	const (
		node      = natsauth.RoleNode
		gateway   = natsauth.RoleGateway
		cust      = natsauth.RoleCustodian
		prices    = natsauth.RolePrices
		notifier  = natsauth.RoleNotifications
		operator  = natsauth.RoleOperator
		audit     = natsauth.RoleAudit
		journalEv = "mt_ev_0"
	)
	none := []natsauth.Role{}
	type check struct {
		name    string
		sub     bool // subscribe (else publish)
		subject string
		allowed []natsauth.Role
	}
	checks := []check{
		{"publish prices", false, "prices.2030-01-02", []natsauth.Role{node, prices}},
		{"publish an execution report", false, "custodian.reports.GB00B3X7QG63", []natsauth.Role{cust}},
		{"publish a custodian order", false, "custodian.orders.GB00B3X7QG63", []natsauth.Role{node}},
		{"publish a contract note", false, "notifications.contract-notes.3", []natsauth.Role{node}},
		{"append to the journal", false, "mt.ev.0.1.M000001", []natsauth.Role{node}},
		{"ask for holdings", false, "custodian.holdings", []natsauth.Role{node}},
		{"answer holdings", true, "custodian.holdings", []natsauth.Role{cust}},
		{"read orders in flight", true, "custodian.orders.>", none},
		{"read reports in flight", true, "custodian.reports.>", none},
		{"read prices in flight", true, "prices.>", none},
		{"read notes in flight", true, "notifications.>", none},
		{"read the journal in flight", true, "mt.>", none},
		{"read every inbox", true, "_INBOX.>", none},
		{"read the node's inbox", true, "_INBOX.node.x", []natsauth.Role{node}},
		{"read the gateway's inbox", true, "_INBOX.gateway.x", []natsauth.Role{gateway}},
		{"put or delete a member record", false, "$KV.mastertrust_members.x", []natsauth.Role{node}},
		{"read member records in flight", true, "$KV.mastertrust_members.>", none},
		{"create the members' bucket", false, "$JS.API.STREAM.CREATE.KV_mastertrust_members", []natsauth.Role{node, gateway}},
		{"update the members' bucket", false, "$JS.API.STREAM.UPDATE.KV_mastertrust_members", []natsauth.Role{node}},
		{"delete the members' bucket", false, "$JS.API.STREAM.DELETE.KV_mastertrust_members", none},
		{"purge the members' bucket", false, "$JS.API.STREAM.PURGE.KV_mastertrust_members", none},
		{"watch the members' bucket", false, "$JS.API.CONSUMER.CREATE.KV_mastertrust_members.c.x", []natsauth.Role{node, gateway, operator}},
		{"answer the watch's flow control", false, "$JS.FC.KV_mastertrust_members.x", []natsauth.Role{node, gateway}},
		{"pull from a consumer of the members' bucket", false, "$JS.API.CONSUMER.MSG.NEXT.KV_mastertrust_members.c", []natsauth.Role{operator}},
		{"direct get of a member record", false, "$JS.API.DIRECT.GET.KV_mastertrust_members.x", []natsauth.Role{node, operator}},
		{"define another stream as a gateway", false, "$JS.API.STREAM.CREATE.mt_ev_0", []natsauth.Role{node}},
		{"publish anything else", false, "anything.else", none},
		{"list streams", false, "$JS.API.STREAM.NAMES", []natsauth.Role{operator, audit}},
	}
	// Per stream: who may consume it, read its messages, define it.
	streams := []struct {
		name                 string
		consume, get, define []natsauth.Role
	}{
		{custodian.OrdersStream, []natsauth.Role{cust, operator}, []natsauth.Role{node, operator, audit}, []natsauth.Role{node, cust}},
		{custodian.ReportsStream, []natsauth.Role{node, operator}, []natsauth.Role{node, operator, audit}, []natsauth.Role{node, cust}},
		{custodian.PricesStream, []natsauth.Role{node, operator}, []natsauth.Role{node, cust, prices, operator, audit}, []natsauth.Role{node, cust}},
		{platform.NotificationsStream, []natsauth.Role{notifier, operator}, []natsauth.Role{node, notifier, operator, audit}, []natsauth.Role{node}},
		{journalEv, []natsauth.Role{operator}, []natsauth.Role{node, operator}, []natsauth.Role{node}},
	}
	for _, s := range streams {
		checks = append(checks,
			check{"create a consumer of " + s.name, false, "$JS.API.CONSUMER.CREATE." + s.name + ".c.x", s.consume},
			check{"pull from a consumer of " + s.name, false, "$JS.API.CONSUMER.MSG.NEXT." + s.name + ".c", s.consume},
			check{"acknowledge " + s.name, false, "$JS.ACK." + s.name + ".c.1.2.3.4.5", s.consume},
			check{"get a message of " + s.name, false, "$JS.API.STREAM.MSG.GET." + s.name, s.get},
			check{"direct get of " + s.name, false, "$JS.API.DIRECT.GET." + s.name + ".x.y", s.get},
			check{"update " + s.name, false, "$JS.API.STREAM.UPDATE." + s.name, s.define},
			check{"delete " + s.name, false, "$JS.API.STREAM.DELETE." + s.name, none},
			check{"purge " + s.name, false, "$JS.API.STREAM.PURGE." + s.name, none},
			check{"delete a message of " + s.name, false, "$JS.API.STREAM.MSG.DELETE." + s.name, none},
		)
	}
	for _, role := range natsauth.Roles() {
		for _, c := range checks {
			nc := connect(t, srv, dir, role)
			got := refused(t, nc, c.subject, func() error {
				if c.sub {
					_, err := nc.SubscribeSync(c.subject)
					return err
				}
				return nc.Publish(c.subject, []byte("{}"))
			})
			want := !slices.Contains(c.allowed, role)
			assert.Equal(t, want, got, "%s: %s (%s): refused", role, c.name, c.subject)
			nc.Close()
		}
	}
	assert.ElementsMatch(t, []natsauth.Role{node, gateway, cust, prices, notifier, operator, audit}, natsauth.Roles())
}

// Every row of the table says why, and every role has a row.
func TestEveryGrantHasAReason(t *testing.T) {
	t.Parallel()
	for _, g := range natsauth.Grants() {
		assert.NotEmpty(t, g.Reason, g.Role)
		_, err := natsauth.Permissions(g.Role)
		assert.NoError(t, err)
	}
	_, err := natsauth.Permissions("intruder")
	assert.Error(t, err, "an unknown role")
}

// The table's copies of other packages' names match them.
func TestTableNamesMatchThePlatform(t *testing.T) {
	t.Parallel()
	p, err := natsauth.Permissions(natsauth.RoleNode)
	require.NoError(t, err)
	assert.Contains(t, p.Publish.Allow, platform.NotificationsSubjects)
	assert.Contains(t, p.Publish.Allow, "$KV."+natskv.DefaultBucket+".>", "the members' bucket")
	g, err := natsauth.Permissions(natsauth.RoleGateway)
	require.NoError(t, err)
	assert.Contains(t, g.Publish.Allow, "$JS.API.STREAM.INFO.KV_"+natskv.DefaultBucket, "the members' bucket")
}

// A client without TLS, without the CA, without a client certificate or
// without its seed is refused.
func TestUnauthenticatedAndPlaintextClientsAreRefused(t *testing.T) {
	t.Parallel()
	srv, dir := startServer(t)
	full := natsauth.ClientFromDir(dir, natsauth.RoleNode)
	refusedWith := func(c natsauth.Client, want string) {
		t.Helper()
		opts, err := c.Options()
		require.NoError(t, err)
		_, err = nats.Connect(srv.ClientURL(), opts...)
		require.Error(t, err)
		assert.Contains(t, strings.ToLower(err.Error()), want)
	}
	// With TLS 1.3 the server checks a client certificate after the
	// handshake: the client hears of the refusal either from the server's
	// alert ("bad certificate", "certificate required") or, when it wrote
	// first, as the connection closed after the handshake. Either is the
	// TLS layer refusing it, before any user is considered.
	refusedAtTLS := func(c natsauth.Client, alert string) {
		t.Helper()
		opts, err := c.Options()
		require.NoError(t, err)
		_, err = nats.Connect(srv.ClientURL(), opts...)
		require.Error(t, err)
		msg := strings.ToLower(err.Error())
		assert.True(t, strings.Contains(msg, alert) || strings.Contains(msg, "connection closed by remote after tls handshake"),
			"refused at TLS with %q: %v", alert, err)
	}
	// A certificate over TLS, but no seed: not a user.
	noSeed := full
	noSeed.SeedFile = ""
	refusedWith(noSeed, "authorization violation")
	// A seed, but no client certificate: the TLS handshake fails.
	noCert := full
	noCert.CertFile, noCert.KeyFile = "", ""
	refusedAtTLS(noCert, "certificate required")
	// A seed and a certificate, but not the CA: the server is not trusted.
	noCA := full
	noCA.CAFile = ""
	refusedWith(noCA, "certificate")
	// A certificate from another CA is refused too.
	other := filepath.Join(t.TempDir(), "other")
	_, err := natsauth.Ensure(other, nil)
	require.NoError(t, err)
	foreign := full
	foreign.CertFile, foreign.KeyFile = natsauth.CertFile(other, natsauth.RoleNode), natsauth.KeyFile(other, natsauth.RoleNode)
	refusedAtTLS(foreign, "certificate")
	// Plaintext on the wire: the server says TLS is required and hangs up.
	u, err := url.Parse(srv.ClientURL())
	require.NoError(t, err)
	conn, err := net.DialTimeout("tcp", u.Host, 5*time.Second)
	require.NoError(t, err)
	defer conn.Close()
	require.NoError(t, conn.SetDeadline(time.Now().Add(10*time.Second)))
	r := bufio.NewReader(conn)
	info, err := r.ReadString('\n')
	require.NoError(t, err)
	assert.Contains(t, info, `"tls_required":true`)
	_, err = conn.Write([]byte("CONNECT {\"verbose\":false}\r\nPING\r\n"))
	require.NoError(t, err)
	var rest strings.Builder
	for {
		line, err := r.ReadString('\n')
		rest.WriteString(line)
		if err != nil {
			break
		}
	}
	assert.NotContains(t, rest.String(), "PONG", "a plaintext client got an answer")
	// The right credential over TLS connects.
	connect(t, srv, dir, natsauth.RoleAudit)
}

// Ensure keeps what exists and makes what is missing: deleting a role's
// seed rotates that credential only.
func TestEnsureKeepsAndRotates(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	written, err := natsauth.Ensure(dir, []string{"nats.example"})
	require.NoError(t, err)
	assert.Len(t, written, 5+3*len(natsauth.Roles()))
	seed := func(r natsauth.Role) string {
		b, err := os.ReadFile(natsauth.SeedFile(dir, r))
		require.NoError(t, err)
		return string(b)
	}
	nodeSeed, auditSeed := seed(natsauth.RoleNode), seed(natsauth.RoleAudit)
	written, err = natsauth.Ensure(dir, []string{"nats.example"})
	require.NoError(t, err)
	assert.Empty(t, written)
	require.NoError(t, os.Remove(natsauth.SeedFile(dir, natsauth.RoleAudit)))
	written, err = natsauth.Ensure(dir, []string{"nats.example"})
	require.NoError(t, err)
	assert.ElementsMatch(t, []string{natsauth.SeedFile(dir, natsauth.RoleAudit), filepath.Join(dir, natsauth.UsersFile)}, written)
	assert.Equal(t, nodeSeed, seed(natsauth.RoleNode))
	assert.NotEqual(t, auditSeed, seed(natsauth.RoleAudit))
	// A new host reissues the server's certificate.
	written, err = natsauth.Ensure(dir, []string{"nats2.example"})
	require.NoError(t, err)
	assert.Contains(t, written, filepath.Join(dir, natsauth.ServerCertFile))
	for _, f := range []string{natsauth.CAKeyFile, natsauth.ServerKeyFile, natsauth.UsersFile, string(natsauth.RoleNode) + ".nk",
		string(natsauth.RoleNode) + ".key"} {
		st, err := os.Stat(filepath.Join(dir, f))
		require.NoError(t, err)
		assert.Equal(t, os.FileMode(0o600), st.Mode().Perm(), f)
	}
}

func TestRedact(t *testing.T) {
	t.Parallel()
	for in, want := range map[string]string{
		"nats://user:password@127.0.0.1:4222":                "nats://REDACTED@127.0.0.1:4222",
		"connect to nats://tok3n@h:1, tls://a:b@h2:2 failed": "connect to nats://REDACTED@h:1, tls://REDACTED@h2:2 failed",
		"nats://127.0.0.1:4222":                              "nats://127.0.0.1:4222",
		"nats://h:1,nats://u:p@h:2":                          "nats://h:1,nats://REDACTED@h:2",
		"no url here, just an email user@example.com":        "no url here, just an email user@example.com",
		"http://127.0.0.1:8080/v1/prices?x=a@b":              "http://127.0.0.1:8080/v1/prices?x=a@b",
	} {
		assert.Equal(t, want, natsauth.Redact(in), in)
	}
}

// Every role can do its job with its permissions alone: the node creates
// the streams and publishes a contract note; the price feed publishes a
// date's prices with the custodian client's compare-and-set; the
// custodian publishes a report; the notifications deliverer consumes the
// note; the auditor reads the report by sequence; the operator lists the
// streams and reads the report through a consumer.
func TestEveryRoleCanDoItsJob(t *testing.T) {
	t.Parallel()
	srv, dir := startServer(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	js := func(role natsauth.Role) jetstream.JetStream {
		j, err := jetstream.New(connect(t, srv, dir, role))
		require.NoError(t, err)
		return j
	}

	// The cluster's membership: a gateway starting first creates the
	// members' bucket, a node registers, the gateway's watch sees it.
	members := func(role natsauth.Role) *natskv.Store {
		s, err := natskv.Open(ctx, connect(t, srv, dir, role), natskv.Options{TTL: time.Minute})
		require.NoError(t, err, role)
		return s
	}
	gatewayView := members(natsauth.RoleGateway)
	watchCtx, stopWatch := context.WithCancel(ctx)
	events, err := gatewayView.Watch(watchCtx)
	require.NoError(t, err)
	require.True(t, (<-events).Synced, "an empty bucket")
	nodeRecord := members(natsauth.RoleNode)
	require.NoError(t, nodeRecord.Put(ctx, "member-1", []byte("record")))
	assert.Equal(t, "record", string((<-events).Value))
	require.NoError(t, nodeRecord.Delete(ctx, "member-1"))
	assert.Nil(t, (<-events).Value, "deleted")
	nodeEvents, err := nodeRecord.Watch(watchCtx)
	require.NoError(t, err)
	require.Equal(t, "member-1", (<-nodeEvents).Key, "the node watches too")
	stopWatch()

	node := js(natsauth.RoleNode)
	require.NoError(t, custodian.EnsureStreams(ctx, node, 1))
	_, err = node.CreateOrUpdateStream(ctx, platform.NotificationsStreamConfig(1))
	require.NoError(t, err)
	_, err = node.Publish(ctx, platform.ContractNoteSubject(3), []byte("note"))
	require.NoError(t, err)

	feed, err := custodian.NewClient(connect(t, srv, dir, natsauth.RolePrices), custodian.ClientConfig{})
	require.NoError(t, err)
	prices := map[domain.ISIN]domain.Price{}
	for _, a := range domain.DefaultCatalogue().Assets() {
		p, err := domain.ParsePrice("1.25", 2)
		require.NoError(t, err)
		prices[a.ISIN] = p
	}
	require.NoError(t, feed.PublishPrices(ctx, domain.MustDate("2026-11-23"), prices))
	got, found, err := feed.Prices(ctx, domain.MustDate("2026-11-23"))
	require.NoError(t, err)
	assert.True(t, found)
	assert.Len(t, got, len(prices))

	cust := js(natsauth.RoleCustodian)
	require.NoError(t, custodian.EnsureStreams(ctx, cust, 1))
	_, err = cust.Publish(ctx, custodian.ReportSubject("GB00BN7Q2L69"), []byte("report"))
	require.NoError(t, err)

	deliverer := js(natsauth.RoleNotifications)
	cons, err := deliverer.CreateOrUpdateConsumer(ctx, platform.NotificationsStream,
		jetstream.ConsumerConfig{Durable: "email", AckPolicy: jetstream.AckExplicitPolicy})
	require.NoError(t, err)
	batch, err := cons.Fetch(1, jetstream.FetchMaxWait(5*time.Second))
	require.NoError(t, err)
	for m := range batch.Messages() {
		assert.Equal(t, "note", string(m.Data()))
		require.NoError(t, m.DoubleAck(ctx))
	}
	require.NoError(t, batch.Error())

	auditor := js(natsauth.RoleAudit)
	reports, err := auditor.Stream(ctx, custodian.ReportsStream)
	require.NoError(t, err)
	raw, err := reports.GetMsg(ctx, 1)
	require.NoError(t, err)
	assert.Equal(t, "report", string(raw.Data))

	operator := js(natsauth.RoleOperator)
	names := operator.StreamNames(ctx)
	var all []string
	for n := range names.Name() {
		all = append(all, n)
	}
	require.NoError(t, names.Err())
	assert.Contains(t, all, custodian.ReportsStream)
	oc, err := operator.OrderedConsumer(ctx, custodian.ReportsStream, jetstream.OrderedConsumerConfig{})
	require.NoError(t, err)
	m, err := oc.Next(jetstream.FetchMaxWait(5 * time.Second))
	require.NoError(t, err)
	assert.Equal(t, "report", string(m.Data()))
}

// TestRoutesFromSecrets proves that servers given one secrets directory
// route to each other over mutual TLS with the server's certificate, and
// that a server presenting a role's certificate (issued by the same CA)
// as its route certificate is not let in: a route is bound by no role's
// permissions.
func TestRoutesFromSecrets(t *testing.T) {
	t.Parallel()
	dir := filepath.Join(t.TempDir(), "secrets")
	_, err := natsauth.Ensure(dir, nil)
	require.NoError(t, err)
	auth, err := natsauth.LoadServer(dir)
	require.NoError(t, err)
	assert.Equal(t, "CN=nats,O=mastertrust", auth.RouteSubject, "the server certificate's subject")
	require.NotNil(t, auth.RouteTLS.RootCAs, "routes verify the server they dial")
	require.Equal(t, tls.RequireAndVerifyClientCert, auth.RouteTLS.ClientAuth, "routes verify the server that dials")

	var ports []int
	var routes []string
	for range 3 {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		require.NoError(t, err)
		ports = append(ports, l.Addr().(*net.TCPAddr).Port)
		routes = append(routes, fmt.Sprintf("nats-route://127.0.0.1:%d", l.Addr().(*net.TCPAddr).Port))
		l.Close()
	}
	start := func(name string, port int, routeTLS *tls.Config) *natsembed.Server {
		srv, err := natsembed.Start(natsembed.Options{Dir: t.TempDir(), Name: name, Users: auth.Users, TLS: auth.TLS,
			Cluster: &natsembed.ClusterOptions{Name: "secrets-test", Port: port, Routes: routes, TLS: routeTLS, PeerSubject: auth.RouteSubject}})
		require.NoError(t, err)
		t.Cleanup(srv.Shutdown)
		return srv
	}
	var servers []*natsembed.Server
	for i := range 3 {
		servers = append(servers, start(fmt.Sprintf("n%d", i), ports[i], auth.RouteTLS))
	}
	require.Eventually(t, func() bool {
		for _, s := range servers {
			if n := len(routePeers(t, s)); n != 2 {
				return false
			}
		}
		return true
	}, 30*time.Second, 20*time.Millisecond, "each server routes to the other two")

	nodeTLS, err := pki.PeerConfig(natsauth.CertFile(dir, natsauth.RoleNode), natsauth.KeyFile(dir, natsauth.RoleNode), filepath.Join(dir, natsauth.CAFile))
	require.NoError(t, err)
	intruder := start("intruder", -1, nodeTLS)
	time.Sleep(3 * time.Second) // the intruder redials every second
	assert.Empty(t, routePeers(t, intruder), "the intruder's routes")
	for i, s := range servers {
		assert.NotContains(t, routePeers(t, s), "intruder", "n%d's peers", i)
	}
}

// routePeers are the names of the servers s has a route with.
func routePeers(t *testing.T, s *natsembed.Server) []string {
	t.Helper()
	rz, err := s.NATS().Routez(&server.RoutezOptions{})
	require.NoError(t, err)
	var names []string
	for _, r := range rz.Routes {
		if !slices.Contains(names, r.RemoteName) {
			names = append(names, r.RemoteName)
		}
	}
	return names
}

// TestStockRouteConfig proves that docs/security.md's cluster block for a
// stock nats-server, read by nats-server with a secrets directory's files,
// routes with a member started from the directory, requires TLS with the
// peer verified, and refuses a route presenting a role's certificate.
func TestStockRouteConfig(t *testing.T) {
	t.Parallel()
	doc, err := os.ReadFile("../../docs/security.md")
	require.NoError(t, err)
	_, section, ok := strings.Cut(string(doc), "### Routes between NATS servers")
	require.True(t, ok, "docs/security.md's routes section")
	_, block, ok := strings.Cut(section, "```conf\n")
	require.True(t, ok, "the section's conf block")
	block, _, ok = strings.Cut(block, "```")
	require.True(t, ok, "the conf block's end")

	dir := filepath.Join(t.TempDir(), "secrets")
	_, err = natsauth.Ensure(dir, nil)
	require.NoError(t, err)
	conf := filepath.Join(t.TempDir(), "nats-server.conf")
	require.NoError(t, os.WriteFile(conf, []byte(strings.ReplaceAll(block, "/etc/nats/", dir+"/")), 0o600))
	opts, err := server.ProcessConfigFile(conf)
	require.NoError(t, err)
	require.NotNil(t, opts.Cluster.TLSConfig, "the block's route TLS")
	assert.Equal(t, tls.RequireAndVerifyClientCert, opts.Cluster.TLSConfig.ClientAuth, "routes verify the server that dials")
	assert.NotNil(t, opts.Cluster.TLSConfig.RootCAs, "routes verify the server they dial")
	auth, err := natsauth.LoadServer(dir)
	require.NoError(t, err)
	assert.Equal(t, auth.RouteSubject, opts.Cluster.Username, "the block's route user: the server certificate's subject")
	assert.True(t, opts.Cluster.TLSMap, "the block maps the certificate's subject")

	// The block's hosts are production's: here the stock server listens
	// on loopback and is dialed, not dialing.
	opts.Host, opts.Port = "127.0.0.1", -1
	opts.Cluster.Host, opts.Cluster.Port, opts.Routes = "127.0.0.1", -1, nil
	opts.NoSigs, opts.NoLog = true, true
	stock, err := server.NewServer(opts)
	require.NoError(t, err)
	stock.Start()
	t.Cleanup(func() { stock.Shutdown(); stock.WaitForShutdown() })
	require.True(t, stock.ReadyForConnections(10*time.Second), "the stock server starts")
	stockRoute := fmt.Sprintf("nats-route://%s", stock.ClusterAddr())

	start := func(name string, routeTLS *tls.Config) *natsembed.Server {
		srv, err := natsembed.Start(natsembed.Options{Dir: t.TempDir(), Name: name,
			Cluster: &natsembed.ClusterOptions{Name: opts.Cluster.Name, Port: -1, Routes: []string{stockRoute}, TLS: routeTLS, PeerSubject: auth.RouteSubject}})
		require.NoError(t, err)
		t.Cleanup(srv.Shutdown)
		return srv
	}
	member := start("member", auth.RouteTLS)
	require.Eventually(t, func() bool { return slices.Equal(routePeers(t, member), []string{stock.Name()}) }, 15*time.Second,
		20*time.Millisecond, "the member routes to the stock server")
	nodeTLS, err := pki.PeerConfig(natsauth.CertFile(dir, natsauth.RoleNode), natsauth.KeyFile(dir, natsauth.RoleNode), filepath.Join(dir, natsauth.CAFile))
	require.NoError(t, err)
	intruder := start("intruder", nodeTLS)
	time.Sleep(3 * time.Second) // the intruder redials every second
	assert.Empty(t, routePeers(t, intruder), "the intruder's routes")
	rz, err := stock.Routez(&server.RoutezOptions{})
	require.NoError(t, err)
	for _, r := range rz.Routes {
		assert.Equal(t, "member", r.RemoteName, "the stock server's peers")
	}
}
