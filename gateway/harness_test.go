package gateway_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"
	_ "time/tzdata"

	"github.com/cockroachdb/pebble/v2/vfs"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/acme/mastertrust/actors"
	"github.com/acme/mastertrust/cluster"
	"github.com/acme/mastertrust/domain"
	"github.com/acme/mastertrust/gateway"
	"github.com/acme/mastertrust/internal/apispec"
	"github.com/acme/mastertrust/internal/testkit"
	"github.com/acme/mastertrust/persistence"
	"github.com/acme/mastertrust/persistence/pebble"
	"github.com/acme/mastertrust/platform"
	"github.com/acme/mastertrust/proto/pb"
)

// env is a whole platform in this process, as `mastertrust dev` assembles
// it, with nothing mocked: a Pebble journal, a cluster member hosting pot
// grains (platform.StartNode), a client-only node for the gateway (as a
// separate gateway process would have), the gateway, and an HTTP server on
// a free port.
type env struct {
	journal  *gateJournal
	registry *cluster.InProcess
	node     *platform.Node
	client   *cluster.Node
	market   *actors.MarketState
	cal      *domain.Calendar
	cat      *domain.Catalogue
	gw       *gateway.Server
	srv      *httptest.Server
	http     *http.Client
	// spec is docs/openapi.yaml: every exchange of call is checked
	// against it.
	spec   *apispec.Spec
	secret []byte
	// operator is an operator token.
	operator string

	// mu guards notReady, what Ready answers.
	mu       sync.Mutex
	notReady error
}

type envOptions struct {
	// fs is the journal's file system and dir its directory. Default: in
	// memory.
	fs  vfs.FS
	dir string
	// requestTimeout is the gateway's grain call timeout. Default: 5 s.
	requestTimeout time.Duration
	// inFlightMax and slotWaitMax are the gateway's limits. Default: the
	// gateway's.
	inFlightMax int
	slotWaitMax time.Duration
	// viaMember makes the gateway call pots through the member node itself
	// (one process, as `mastertrust dev` runs) instead of a client node.
	viaMember bool
	// logger, when set, replaces the test logger (benchmarks: quiet).
	logger *slog.Logger
}

// potClock is the time the pots read: Monday 23 November 2026, 09:00 in
// London, before the 11:00 cut-off, so orders deal that day.
var potClock = func() time.Time {
	loc, err := time.LoadLocation("Europe/London")
	if err != nil {
		panic(err)
	}
	return time.Date(2026, 11, 23, 9, 0, 0, 0, loc)
}()

func newEnv(t testing.TB, opt envOptions) *env {
	t.Helper()
	logger, level := testkit.Logger(t)
	if opt.logger != nil {
		logger = opt.logger
	}
	cal, err := domain.NewCalendar(domain.CalendarConfig{Location: potClock.Location()})
	require.NoError(t, err)
	e := &env{registry: cluster.NewInProcess(2 * time.Second), market: actors.NewMarketState(), cal: cal,
		cat: domain.DefaultCatalogue(), secret: []byte("test-secret-test-secret-test-secret!")}
	// Loaded before the platform starts, so that the work (once per test
	// binary) does not delay its first calls.
	e.spec, err = apispec.Load()
	require.NoError(t, err)
	if opt.fs == nil {
		opt.fs, opt.dir = vfs.NewMem(), "journal"
	}
	j, err := pebble.Open(opt.dir, pebble.Options{FS: opt.fs, Groups: 8})
	require.NoError(t, err)
	t.Cleanup(func() {
		assert.NoError(t, j.Close(), "close journal")
	})
	e.journal = &gateJournal{Journal: j, gates: map[string]chan struct{}{}}

	base := cluster.Config{ClusterName: "gateway-test", Provider: cluster.ProviderInProcess, InProcess: e.registry,
		RequestTimeout: 5 * time.Second, Logger: logger, LibraryLogLevel: level}
	if testkit.Race {
		// protoactor's gossip races with itself when several nodes share a
		// process (see cluster's tests); membership comes from the provider.
		base.GossipInterval = time.Hour
		base.HeartbeatExpiration = 2 * time.Hour
	}
	reg := prometheus.NewRegistry()
	// StartNode validates Pots before filling its defaults, so they are
	// filled here (reported; platform is not this package's to change).
	var pots actors.PotConfig
	pots.EnsureDefaults()
	e.node, err = platform.StartNode(platform.NodeConfig{Cluster: base, Journal: e.journal, HistoryDir: t.TempDir(), Catalogue: e.cat, Calendar: cal,
		Market: e.market, Now: func() time.Time { return potClock }, Pots: pots, Registry: reg, Logger: logger})
	require.NoError(t, err)
	t.Cleanup(e.node.Cluster.Kill)
	caller := e.node.Cluster
	if !opt.viaMember {
		e.client, err = cluster.StartClient(base)
		require.NoError(t, err)
		t.Cleanup(e.client.Kill)
		caller = e.client
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	require.NoError(t, caller.WaitForMembers(ctx, 1))

	// Registered after the nodes' Kill, so it runs before them: a stopping
	// pot must not wait on a blocked append.
	t.Cleanup(e.journal.releaseAll)

	e.gw, err = gateway.New(gateway.Config{
		Pots:           actors.PotClient{Node: caller},
		Cluster:        caller,
		Ready:          e.ready,
		Catalogue:      e.cat,
		TokenSecret:    e.secret,
		RequestTimeout: opt.requestTimeout,
		InFlightMax:    opt.inFlightMax,
		SlotWaitMax:    opt.slotWaitMax,
		Registry:       reg,
		Logger:         logger,
	})
	require.NoError(t, err)
	e.srv = httptest.NewServer(e.gw.Handler())
	t.Cleanup(e.srv.Close)
	e.http = e.srv.Client()
	e.operator = e.token(gateway.Claims{Subject: "ops", Role: gateway.RoleOperator})
	return e
}

// ready is the gateway's readiness check: the test's switch.
func (e *env) ready(context.Context) error {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.notReady
}

func (e *env) setReady(err error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.notReady = err
}

// tc is a test's (or subtest's) view of an env: its helpers fail t.
type tc struct {
	*env
	t testing.TB
	// unsaid, if set, says why the requests of call are refused although
	// docs/openapi.yaml accepts them (apispec.Unsaid).
	unsaid string
}

// unsaidBecause is c for requests the gateway refuses for a reason the
// document cannot state: why.
func (c tc) unsaidBecause(why string) tc {
	c.unsaid = why
	return c
}

// on returns the helpers of e for test t.
func (e *env) on(t testing.TB) tc { return tc{env: e, t: t} }

// token signs claims valid for an hour from now (unless they say).
func (e *env) token(c gateway.Claims) string {
	if c.IssuedAt == 0 {
		c.IssuedAt = time.Now().Unix()
	}
	if c.ExpiresAt == 0 {
		c.ExpiresAt = time.Now().Add(time.Hour).Unix()
	}
	tok, err := gateway.SignToken(e.secret, c)
	if err != nil {
		panic(err) // the test's claims are wrong
	}
	return tok
}

// memberToken is a member's token.
func (e *env) memberToken(member string) string {
	return e.token(gateway.Claims{Subject: member, Role: gateway.RoleMember})
}

// response is an HTTP answer, read whole.
type response struct {
	status int
	header http.Header
	body   []byte
}

// call makes an HTTP request: token "" sends no Authorization; body ""
// sends none; headers are name, value pairs, added to the request's. A
// body is sent as application/json unless headers name a Content-Type
// (an empty value: none at all). The exchange is checked against
// docs/openapi.yaml (apispec.Spec.Transport): a mismatch fails c.t.
func (c tc) call(method, path, token, body string, headers ...string) response {
	c.t.Helper()
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	ctx := context.Background()
	if c.unsaid != "" {
		ctx = apispec.Unsaid(ctx, c.unsaid)
	}
	req, err := http.NewRequestWithContext(ctx, method, c.srv.URL+path, rd)
	require.NoError(c.t, err)
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	for i := 0; i+1 < len(headers); i += 2 {
		if http.CanonicalHeaderKey(headers[i]) == "Content-Type" {
			req.Header.Del("Content-Type")
		}
	}
	for i := 0; i+1 < len(headers); i += 2 {
		if headers[i+1] != "" || http.CanonicalHeaderKey(headers[i]) != "Content-Type" {
			req.Header.Add(headers[i], headers[i+1])
		}
	}
	client := &http.Client{Transport: c.spec.Transport(c.http.Transport, c.t)}
	resp, err := client.Do(req)
	require.NoError(c.t, err, "%s %s", method, path)
	defer resp.Body.Close()
	data, err := io.ReadAll(resp.Body)
	require.NoError(c.t, err, "%s %s: read body", method, path)
	return response{status: resp.StatusCode, header: resp.Header, body: data}
}

// key is an Idempotency-Key header, for call and must.
func key(k string) []string { return []string{"Idempotency-Key", k} }

// must makes a request and fails the test unless it answers want; it
// decodes the body into out (if not nil).
func (c tc) must(want int, out any, method, path, token, body string, headers ...string) response {
	c.t.Helper()
	r := c.call(method, path, token, body, headers...)
	require.Equal(c.t, want, r.status, "%s %s %s: status; body %s", method, path, body, r.body)
	if out != nil {
		require.NoError(c.t, json.Unmarshal(r.body, out), "%s %s: decode %s", method, path, r.body)
	}
	return r
}

// problem decodes a problem answer and checks its form: the content type,
// the type URI made of the code, and the status repeated.
func (c tc) problem(r response) problemBody {
	c.t.Helper()
	require.Equal(c.t, "application/problem+json", r.header.Get("Content-Type"), "problem's Content-Type; body %s", r.body)
	var p problemBody
	require.NoError(c.t, json.Unmarshal(r.body, &p), "decode problem %s", r.body)
	require.Equal(c.t, r.status, p.Status, "problem's status; body %s", r.body)
	require.Equal(c.t, gateway.ProblemTypeBase+p.Code, p.Type, "problem's type; body %s", r.body)
	require.NotEmpty(c.t, p.Title, "problem's title; body %s", r.body)
	return p
}

type problemBody struct {
	Type, Title, Detail, Code, RequestID string
	Status                               int
	Errors                               []gateway.FieldError
}

// potVersion reads a pot's version from the journal: what is durable.
func (c tc) potVersion(member string) uint64 {
	c.t.Helper()
	events, err := c.journal.Read(context.Background(), actors.PotStream(member), 1, 0)
	require.NoError(c.t, err)
	return uint64(len(events))
}

// potCall sends a request straight to a pot (the system commands that the
// dealing cycle will send: executions, settlements).
func (c tc) potCall(member string, req *pb.PotRequest) *pb.PotResponse {
	c.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	resp, err := c.node.Pots.Handle(ctx, member, req)
	require.NoError(c.t, err, "pot %s %T", member, req.Command)
	if p := resp.GetProblem(); p != nil {
		c.t.Fatalf("pot %s %T: %s: %s", member, req.Command, p.Code, p.Detail)
	}
	return resp
}

// execute executes a buy trade of the dealing date at price and settles
// it, as the dealing cycle would, and returns the units it bought.
func (c tc) executeBuy(member string, order orderView, price string) string {
	c.t.Helper()
	tr := order.Trades[0]
	asset, _ := c.cat.Asset(domain.ISIN(tr.Asset))
	units, cost := domain.BuyByCash(domain.MustMoney(tr.Amount), domain.MustPrice(price), asset.UnitDecimals)
	dealing := domain.MustDate(order.DealingDate)
	c.potCall(member, &pb.PotRequest{Command: &pb.PotRequest_AllocateTrades{AllocateTrades: &pb.AllocateTrades{
		DealingDate: order.DealingDate,
		Executions: []*pb.TradeExecuted{{TradeId: tr.ID, DealingDate: order.DealingDate, Units: units.String(), Price: price,
			Cash: cost.String(), SettlementDate: c.cal.AddDealingDays(dealing, asset.SettlementDays).String(),
			BatchId: "batch-" + tr.ID, ExecutionId: "exec-" + tr.ID, AtUnixNano: potClock.UnixNano()}},
	}}})
	c.potCall(member, &pb.PotRequest{Command: &pb.PotRequest_SettleTrades{SettleTrades: &pb.SettleTrades{TradeIds: []string{tr.ID}}}})
	return units.String()
}

// gateJournal is the real journal with a gate per stream: a blocked
// stream's appends wait until it is released, as if the disk hung. It
// makes a pot (not the cluster) slow, for the gateway's timeouts.
type gateJournal struct {
	persistence.Journal
	mu    sync.Mutex
	gates map[string]chan struct{} // mu guards; closed when released
}

func (j *gateJournal) block(stream string) {
	j.mu.Lock()
	defer j.mu.Unlock()
	j.gates[stream] = make(chan struct{})
}

func (j *gateJournal) release(stream string) {
	j.mu.Lock()
	defer j.mu.Unlock()
	if g, ok := j.gates[stream]; ok {
		close(g)
		delete(j.gates, stream)
	}
}

func (j *gateJournal) releaseAll() {
	j.mu.Lock()
	defer j.mu.Unlock()
	for s, g := range j.gates {
		close(g)
		delete(j.gates, s)
	}
}

// Append waits at the stream's gate, then appends.
func (j *gateJournal) Append(ctx context.Context, req persistence.AppendRequest) (uint64, error) {
	j.mu.Lock()
	g := j.gates[req.Stream]
	j.mu.Unlock()
	if g != nil {
		select {
		case <-g:
		case <-ctx.Done():
			return 0, errors.Join(errors.New("gate closed"), ctx.Err())
		}
	}
	return j.Journal.Append(ctx, req)
}

// Views as a client decodes them.
type (
	potView struct {
		MemberID    string `json:"memberId"`
		RiskProfile string `json:"riskProfile"`
		Version     uint64 `json:"version"`
		Currency    string `json:"currency"`
		Cash        struct {
			Available, Reserved, Pending string
		} `json:"cash"`
		Holdings []struct {
			Asset, SettledUnits, PendingUnits, ReservedUnits, Price, PriceDate, Value string
		} `json:"holdings"`
		TotalValue string `json:"totalValue"`
	}
	orderView struct {
		ID, Type, Status, DealingDate, CreatedAt, MovementID string
		Trades                                               []struct {
			ID, Asset, Side, Amount, Units, Status, ExecutedUnits, Price, Cash, SettlementDate, BatchID string
		}
		ContractNotes []struct {
			TradeID, DealingDate, Asset, Side, Units, UnitPrice, Consideration, SettlementDate, BatchID string
		}
	}
	movementView struct {
		ID, Kind, Status, Amount, Paid, DealingDate string
		Orders                                      []orderView
	}
	orderList struct {
		Orders    []orderView
		NextAfter string
	}
)

// jsonBody encodes v for a request body.
func jsonBody(v any) string {
	var b bytes.Buffer
	if err := json.NewEncoder(&b).Encode(v); err != nil {
		panic(err)
	}
	return b.String()
}
