package platform_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/stretchr/testify/require"

	"github.com/acme/mastertrust/cluster"
	"github.com/acme/mastertrust/domain"
	"github.com/acme/mastertrust/gateway"
	"github.com/acme/mastertrust/internal/recovered"
	"github.com/acme/mastertrust/internal/testkit"
	"github.com/acme/mastertrust/persistence"
	"github.com/acme/mastertrust/platform"
	"github.com/acme/mastertrust/proto/pb"
)

// FuzzRouter drives the whole HTTP API of a real dev platform (Pebble,
// embedded NATS, protoactor, the simulated custodian: nothing mocked) with
// one request per input, built from the route table with fuzzed path
// segments (or an arbitrary path), a fuzzed method, Authorization,
// Content-Type and Idempotency-Key, and a fuzzed body. Whatever the input:
//
//   - the answer is never a 5xx other than 503, and nothing panics, not
//     even where the panic is recovered (mastertrust_panics_total must not
//     move): a recovered panic is still a bug;
//   - the process lives (a panic that escapes ends the fuzzing worker, and
//     the fuzzer reports the input) and still answers GET /healthz;
//   - a request answered 4xx appended nothing to the journal.
//
// It asserts nothing about which 2xx or 4xx a request gets: the operator
// endpoints' semantics are changing, and the invariants above hold for any.
//
// One platform serves every input of a fuzz process (started on first use,
// stopped by TestMain), so an input runs against the state the inputs
// before it left: a failure lists the inputs that came just before, and
// the platform's recent log lines. A fuzzing worker's output goes nowhere;
// with MASTERTRUST_FUZZ_TRACE=<file> every input and its answer are
// appended to the file, to see what a run spends its time on.
//
// Attributing appends to a request. Member commands append before they
// answer (a pot replies once its events are durable), but operator
// requests start work that appends in the background (a cycle's steps, a
// reconciliation's record, the asset books' execution reports), and a pot
// call that timed out (503) may still land its append afterwards. So the
// target serialises the inputs and settles the platform after any request
// that can leave work behind (an operator token on anything but GET/HEAD,
// a 503, a failed exchange): it polls the cycle or reconciliation the
// request named until it no longer runs, then waits until the journal has
// no append in flight and none for fuzzQuietWindow (counted from the answer
// when the request went to an operator route, answered 503 or failed, from
// the last append otherwise: a member route leaves nothing behind). Every
// input therefore starts on a quiet platform, and every append from the
// moment it is sent until its answer (or, when it is settled, until the
// platform is quiet again) is its own. Counting only some streams (say pot
// streams for member routes) would be weaker: a 4xx operator request that
// appended to a system stream, or started a run that does, would go
// unseen. Avoiding operator tokens on writes would leave the operator
// endpoints' handlers unfuzzed past the token check.
func FuzzRouter(f *testing.F) {
	routes := fuzzRoutes(f)
	index := map[string]uint8{}
	for i, r := range routes {
		index[r] = uint8(i)
	}
	add := func(method, route, seg1, seg2, rest string, auth uint8, authText, contentType, key string, flags uint8, body string) {
		f.Helper()
		i, ok := index[route]
		if !ok && route != "" {
			f.Fatalf("seed names route %q, not in the route table", route)
		}
		if route == "" {
			i = uint8(len(routes)) // rest is the whole path
		}
		f.Add(method, i, seg1, seg2, rest, auth, authText, contentType, key, flags, []byte(body))
	}
	for _, s := range fuzzSeeds() {
		add(s.method, s.route, s.seg1, s.seg2, s.rest, s.auth, s.authText, s.contentType, s.key, s.flags, s.body)
	}
	// A body just over the 64 KiB bound, on a member route and on prices.
	big := `{"amount":"` + strings.Repeat("1", 64<<10) + `"}`
	add("", "POST /v1/pots/{memberId}/contributions", fuzzMember, "", "", authMember, "", "application/json", "big-1", 0, big)
	add("", "POST /v1/prices", "", "", "", authOperator, "", "application/json", "", 0, big)

	f.Fuzz(func(t *testing.T, method string, route uint8, seg1, seg2, rest string, auth uint8, authText, contentType, key string,
		flags uint8, body []byte) {
		rig := fuzzRigFor(t)
		rig.mu.Lock()
		defer rig.mu.Unlock()
		req := rig.build(routes, method, route, seg1, seg2, rest, auth, authText, contentType, key, flags, body)
		rig.check(t, req)
	})
}

// Authorization choices of an input (auth % authChoices).
const (
	authNone       = iota // no Authorization header
	authMember            // a token of fuzzMember
	authOperator          // an operator token
	authGarbage           // "Bearer " + the input's authText
	authPathMember        // a token of the path's member (seg1), when it is a valid member id
	authRaw               // Authorization: the input's authText, as it is
	authExpired           // an operator token that expired an hour ago
	authTwice             // the operator token, and authText in a second header
	authChoices
)

// Flags of an input.
const (
	flagKeyTwice  = 1 << iota // Idempotency-Key twice
	flagRequestID             // X-Request-Id: the input's key
	flagChunked               // the body chunked rather than with a Content-Length
)

const (
	// fuzzMember is the member of the member token; the seeds open its pot.
	fuzzMember = "M000001"
	// fuzzQuietWindow: the journal is quiet once nothing was appended for
	// this long and no append is in flight. Runs that take longer (cycles,
	// reconciliations) are polled until they end; this covers the short
	// tails (a pot's append that outlived its 503).
	fuzzQuietWindow = 50 * time.Millisecond
	// fuzzSettleMax bounds a quiesce: a cycle waits for its execution
	// reports up to 2 minutes (DealingConfig.ExecutionWait).
	fuzzSettleMax = 3 * time.Minute
	// fuzzAnswerMax bounds one answer: the longest any endpoint may take
	// by design is a cycle run waiting for its reports. Past it the
	// process counts as wedged.
	fuzzAnswerMax = 3 * time.Minute
	// fuzzHistory is how many earlier inputs a failure lists.
	fuzzHistory = 12
)

// fuzzRoutes lists the gateway's routes ("METHOD /pattern"), from its own
// table.
func fuzzRoutes(tb testing.TB) []string {
	gw, err := gateway.New(gateway.Config{Pots: nopPots{}, Cluster: nopCluster{}, Ready: func(context.Context) error { return nil },
		Catalogue: domain.DefaultCatalogue(), TokenSecret: []byte(strings.Repeat("s", gateway.TokenSecretBytesMin)),
		Registry: prometheus.NewRegistry(), Logger: slog.New(slog.DiscardHandler)})
	require.NoError(tb, err)
	return gw.Routes()
}

type nopPots struct{}

func (nopPots) Handle(context.Context, string, *pb.PotRequest) (*pb.PotResponse, error) {
	return nil, cluster.ErrUnavailable
}

type nopCluster struct{}

func (nopCluster) Members(context.Context) ([]cluster.MemberInfo, error) { return nil, nil }

// fuzzRig is the platform of a fuzz process and what the target needs of
// it.
type fuzzRig struct {
	dev      *platform.Dev
	journal  *countingJournal
	logs     *logRing
	member   string // fuzzMember's token
	operator string
	expired  string

	mu      sync.Mutex // serialises the inputs
	client  *rawClient // mu guards the rest
	history []string
	// trace, if not nil, gets a line for every input: its time, its
	// answer. A fuzzing worker's output goes nowhere, so this is how to
	// see what a run spends its time on.
	trace io.Writer
}

// fuzzTraceEnv names a file that FuzzRouter appends a line to for every
// input (every worker process of a fuzzing run writes to it).
const fuzzTraceEnv = "MASTERTRUST_FUZZ_TRACE"

var fuzzShared struct {
	once sync.Once
	rig  *fuzzRig
	err  error
}

// fuzzRigFor returns the process's platform, starting it on first use.
func fuzzRigFor(t *testing.T) *fuzzRig {
	fuzzShared.once.Do(func() { fuzzShared.rig, fuzzShared.err = startFuzzRig() })
	require.NoError(t, fuzzShared.err, "start the platform")
	return fuzzShared.rig
}

// fuzzData is the data dir of the process's platform, once made.
var fuzzData struct {
	mu  sync.Mutex
	dir string
}

// removeFuzzData removes the data dir of the process's platform, if it
// made one (TestMain, and on an interrupt: a fuzzing worker is interrupted
// a second after it was told to stop, and killed a second later, too soon
// for a graceful stop, and each worker's data, which JetStream
// preallocates, would otherwise be left behind). The platform may still
// run: on Linux its open files live on until it stops, and its complaints
// about the others go to its log, which nobody reads any more.
func removeFuzzData() {
	fuzzData.mu.Lock()
	defer fuzzData.mu.Unlock()
	if fuzzData.dir != "" {
		os.RemoveAll(fuzzData.dir)
		fuzzData.dir = ""
	}
}

// stopFuzzRig removes the data of the process's platform and stops it, if
// one was started (TestMain).
func stopFuzzRig() {
	removeFuzzData()
	if r := fuzzShared.rig; r != nil {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		r.dev.Stop(ctx)
	}
}

func startFuzzRig() (*fuzzRig, error) {
	dir, err := os.MkdirTemp("", "mastertrust-fuzz-")
	if err != nil {
		return nil, err
	}
	fuzzData.mu.Lock()
	fuzzData.dir = dir
	fuzzData.mu.Unlock()
	cal, err := platform.NewCalendar()
	if err != nil {
		return nil, err
	}
	level := slog.LevelWarn
	if v := os.Getenv(testkit.LogEnv); v != "" {
		if err := level.UnmarshalText([]byte(v)); err != nil {
			return nil, fmt.Errorf("%s=%q: %w", testkit.LogEnv, v, err)
		}
	}
	r := &fuzzRig{journal: &countingJournal{}, logs: &logRing{max: 300}}
	// The pots' clock stands still before the cut-off of a dealing day, so
	// that the seeds' dates mean the same on every run (tokens use the
	// real clock).
	now := fuzzDay.At(9, 0, cal.Location())
	d, err := platform.StartDev(platform.Config{DataDir: dir, HTTPAddr: "127.0.0.1:0",
		Now:    func() time.Time { return now },
		Logger: slog.New(slog.NewTextHandler(r.logs, &slog.HandlerOptions{Level: level})),
		WrapJournal: func(j persistence.Journal) persistence.Journal {
			r.journal.Journal = j
			return r.journal
		}})
	if err != nil {
		removeFuzzData()
		return nil, err
	}
	r.dev = d
	r.client = &rawClient{addr: strings.TrimPrefix(d.URL, "http://")}
	if path := os.Getenv(fuzzTraceEnv); path != "" {
		f, err := os.OpenFile(path, os.O_APPEND|os.O_CREATE|os.O_WRONLY, 0o644)
		if err != nil {
			return nil, err
		}
		r.trace = f
	}
	if r.member, err = d.Token(fuzzMember, 24*time.Hour); err != nil {
		return nil, err
	}
	if r.operator, err = d.Token("", 24*time.Hour); err != nil {
		return nil, err
	}
	past := time.Now().Add(-2 * time.Hour)
	if r.expired, err = gateway.SignToken(d.Secret, gateway.Claims{Role: gateway.RoleOperator, IssuedAt: past.Unix(),
		ExpiresAt: past.Add(time.Hour).Unix()}); err != nil {
		return nil, err
	}
	return r, nil
}

// fuzzDay is the dealing day the pots' clock stands in (a Monday).
var fuzzDay = domain.MustDate("2026-11-23")

// fuzzRequest is one input as sent.
type fuzzRequest struct {
	method, target string
	header         [][2]string
	body           []byte
	chunked        bool
	// operator: the request carries a valid operator token.
	operator bool
}

func (q *fuzzRequest) String() string {
	var b strings.Builder
	fmt.Fprintf(&b, "%s %s", q.method, q.target)
	for _, h := range q.header {
		v := h[1]
		if h[0] == "Authorization" && len(v) > 40 {
			v = v[:40] + "…"
		}
		fmt.Fprintf(&b, " [%s: %q]", h[0], v)
	}
	if q.chunked {
		b.WriteString(" (chunked)")
	}
	body := q.body
	if len(body) > 300 {
		body = body[:300]
	}
	fmt.Fprintf(&b, " body(%d) %q", len(q.body), body)
	return b.String()
}

var tokenChars = regexp.MustCompile(`^[!#$%&'*+\-.^_|~0-9A-Za-z` + "`" + `]{1,20}$`)

// build makes the request of an input.
func (r *fuzzRig) build(routes []string, method string, route uint8, seg1, seg2, rest string, auth uint8, authText, contentType, key string,
	flags uint8, body []byte) *fuzzRequest {
	q := &fuzzRequest{body: body, chunked: flags&flagChunked != 0}
	var path string
	if i := int(route) % (len(routes) + 1); i < len(routes) {
		m, pattern, _ := strings.Cut(routes[i], " ")
		q.method = m
		path = strings.NewReplacer("{memberId}", seg1, "{date}", seg1, "{id}", seg1, "{orderId}", seg2).Replace(pattern) + rest
	} else {
		q.method, path = http.MethodGet, rest
	}
	if method != "" {
		q.method = method
		if !tokenChars.MatchString(method) {
			q.method = http.MethodPost // not a method HTTP can carry
		}
	}
	q.target = escapeTarget(path)
	switch auth % authChoices {
	case authMember:
		q.header = append(q.header, [2]string{"Authorization", "Bearer " + r.member})
	case authOperator:
		q.header = append(q.header, [2]string{"Authorization", "Bearer " + r.operator})
		q.operator = true
	case authGarbage:
		q.header = append(q.header, [2]string{"Authorization", "Bearer " + authText})
	case authPathMember:
		tok := r.member
		if t, err := r.dev.Token(seg1, time.Hour); err == nil {
			tok = t
		}
		q.header = append(q.header, [2]string{"Authorization", "Bearer " + tok})
	case authRaw:
		q.header = append(q.header, [2]string{"Authorization", authText})
	case authExpired:
		q.header = append(q.header, [2]string{"Authorization", "Bearer " + r.expired})
	case authTwice:
		q.header = append(q.header, [2]string{"Authorization", "Bearer " + r.operator}, [2]string{"Authorization", authText})
	}
	if contentType != "" {
		q.header = append(q.header, [2]string{"Content-Type", contentType})
	}
	if key != "" {
		q.header = append(q.header, [2]string{"Idempotency-Key", key})
		if flags&flagKeyTwice != 0 {
			q.header = append(q.header, [2]string{"Idempotency-Key", key + "-2"})
		}
		if flags&flagRequestID != 0 {
			q.header = append(q.header, [2]string{"X-Request-Id", key})
		}
	}
	for i := range q.header {
		q.header[i][1] = headerValue(q.header[i][1])
	}
	return q
}

// escapeTarget percent-encodes what cannot travel in a request line
// (spaces, control characters, bytes above ASCII), keeping the rest as the
// input wrote it: "..", "//", "%2F" and the like reach the server.
func escapeTarget(path string) string {
	var b strings.Builder
	for i := 0; i < len(path); i++ {
		if c := path[i]; c <= ' ' || c >= 0x7f {
			fmt.Fprintf(&b, "%%%02X", c)
		} else {
			b.WriteByte(c)
		}
	}
	if b.Len() == 0 {
		return "/"
	}
	return b.String()
}

// headerValue drops the control characters (but tabs) of a header value:
// CR and LF would end the line (a request smuggled into the next would
// desynchronise the exchange), and net/http refuses a request with any
// other before our code sees it (a 400, and a close that can reset the
// connection under the answer). Every other byte goes as the input wrote
// it.
func headerValue(v string) string {
	var b strings.Builder
	for i := 0; i < len(v); i++ {
		if c := v[i]; c >= ' ' && c != 0x7f || c == '\t' {
			b.WriteByte(c)
		}
	}
	return b.String()
}

var (
	cycleRunTarget = regexp.MustCompile(`^/v1/cycles/([^/?]*)/run(\?.*)?$`)
	reconTarget    = regexp.MustCompile(`^/v1/reconciliations/?(\?.*)?$`)
	operatorTarget = regexp.MustCompile(`^/+v1/+(prices|cycles|reconciliations)\b`)
)

// check sends one request and checks the invariants.
func (r *fuzzRig) check(t *testing.T, q *fuzzRequest) {
	fail := func(format string, args ...any) {
		t.Helper()
		var b strings.Builder
		fmt.Fprintf(&b, "%s\ninput: %s\n", fmt.Sprintf(format, args...), q)
		if len(r.history) > 0 {
			fmt.Fprintf(&b, "earlier inputs of this process, oldest first (the platform is shared):\n  %s\n", strings.Join(r.history, "\n  "))
		}
		fmt.Fprintf(&b, "recent log lines:\n%s", r.logs.String())
		t.Fatal(b.String())
	}
	defer func() {
		r.history = append(r.history, q.String())
		if len(r.history) > fuzzHistory {
			r.history = r.history[1:]
		}
	}()

	panicsBefore := recovered.Total()
	r.journal.reset()
	start := time.Now()
	resp, respBody, err := r.client.do(q, fuzzAnswerMax)
	defer func() {
		if r.trace != nil {
			status := "no answer"
			if resp != nil {
				status = resp.Status
			}
			fmt.Fprintf(r.trace, "%s %8s %s: %s\n", time.Now().Format("15:04:05.000"), time.Since(start).Round(time.Millisecond), status, q)
		}
	}()
	answered := time.Now()
	settle := err != nil || q.operator && q.method != http.MethodGet && q.method != http.MethodHead ||
		resp.StatusCode == http.StatusServiceUnavailable
	if settle {
		if serr := r.settle(q, resp, respBody, answered); serr != nil {
			fail("the platform did not settle after the request: %v", serr)
		}
	}
	appended := r.journal.appended()
	if err != nil {
		fail("no answer: %v (healthz: %v)", err, r.healthz())
	}
	status := resp.StatusCode
	answer := fmt.Sprintf("%d %s", status, truncateBytes(respBody, 600))
	if testing.Verbose() {
		t.Logf("%s\n→ %s", q, answer)
	}
	switch {
	case status >= 500 && status != http.StatusServiceUnavailable:
		fail("answered %s", answer)
	case status >= 400 && status < 500 && len(appended) > 0:
		fail("answered %s, yet appended to the journal: %s", answer, strings.Join(appended, ", "))
	}
	if n := recovered.Total(); n != panicsBefore {
		fail("answered %s, and %v panics were recovered while it was served", answer, n-panicsBefore)
	}
	select {
	case err := <-r.dev.Done():
		fail("answered %s, and the HTTP server stopped: %v", answer, err)
	default:
	}
	if err := r.healthz(); err != nil {
		fail("answered %s, then GET /healthz: %v", answer, err)
	}
}

// healthz asks GET /healthz.
func (r *fuzzRig) healthz() error {
	resp, body, err := r.client.do(&fuzzRequest{method: http.MethodGet, target: "/healthz"}, 10*time.Second)
	if err != nil {
		return err
	}
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("%d %s", resp.StatusCode, truncateBytes(body, 300))
	}
	return nil
}

// settle waits until the work a request may have left behind is done: the
// cycle or reconciliation it names no longer runs, and the journal is
// quiet.
func (r *fuzzRig) settle(q *fuzzRequest, resp *http.Response, body []byte, answered time.Time) error {
	deadline := time.Now().Add(fuzzSettleMax)
	// poll asks target with the operator token until still says the run
	// goes on no more.
	poll := func(target string, still func(status int, body []byte) bool) error {
		for {
			resp, body, err := r.client.do(&fuzzRequest{method: http.MethodGet, target: target,
				header: [][2]string{{"Authorization", "Bearer " + r.operator}}}, fuzzAnswerMax)
			if err != nil {
				return fmt.Errorf("GET %s: %w", target, err)
			}
			if !still(resp.StatusCode, body) {
				return nil
			}
			if time.Now().After(deadline) {
				return fmt.Errorf("GET %s still answers %d %s after %s", target, resp.StatusCode, truncateBytes(body, 300), fuzzSettleMax)
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	if q.operator && resp != nil {
		if m := cycleRunTarget.FindStringSubmatch(q.target); m != nil {
			err := poll("/v1/cycles/"+m[1], func(_ int, body []byte) bool {
				return bytes.Contains(body, []byte(`"status":"running"`))
			})
			if err != nil {
				return err
			}
		}
		if reconTarget.MatchString(q.target) {
			if id := reconciliationID(resp, body); id != "" {
				err := poll("/v1/reconciliations/"+id, func(status int, _ []byte) bool {
					return status == http.StatusConflict || status == http.StatusAccepted
				})
				if err != nil {
					return err
				}
			}
		}
	}
	// A tail is possible after an operator route, a 503 or a failure:
	// the journal must then be quiet from the answer on.
	var quietFrom time.Time
	if resp == nil || resp.StatusCode == http.StatusServiceUnavailable || operatorTarget.MatchString(q.target) {
		quietFrom = answered
	}
	return r.journal.waitQuiet(fuzzQuietWindow, quietFrom, deadline)
}

// reconciliationID is the run an answer names: its Location, or the
// report's id.
func reconciliationID(resp *http.Response, body []byte) string {
	if loc, ok := strings.CutPrefix(resp.Header.Get("Location"), "/v1/reconciliations/"); ok && loc != "" {
		return loc
	}
	var v struct {
		ID string `json:"id"`
	}
	if json.Unmarshal(body, &v) == nil && v.ID != "" && !strings.ContainsAny(v.ID, "/?# ") {
		return v.ID
	}
	return ""
}

func truncateBytes(b []byte, n int) string {
	s := string(bytes.TrimSpace(b))
	if len(s) > n {
		return s[:n] + "…"
	}
	return s
}

// countingJournal is dev's journal, counting appends and the streams they
// went to, and when the last one ended.
type countingJournal struct {
	persistence.Journal

	mu       sync.Mutex
	appends  []string // mu guards: the stream of every append since reset, in order
	inFlight int      // mu guards
	lastEnd  time.Time
}

func (j *countingJournal) Append(ctx context.Context, req persistence.AppendRequest) (uint64, error) {
	j.mu.Lock()
	j.inFlight++
	j.appends = append(j.appends, fmt.Sprintf("%s (%d events)", req.Stream, len(req.Events)))
	j.mu.Unlock()
	defer func() {
		j.mu.Lock()
		j.inFlight--
		j.lastEnd = time.Now()
		j.mu.Unlock()
	}()
	return j.Journal.Append(ctx, req)
}

// reset forgets the appends so far; appended lists those since.
func (j *countingJournal) reset() {
	j.mu.Lock()
	defer j.mu.Unlock()
	j.appends = j.appends[:0]
}

func (j *countingJournal) appended() []string {
	j.mu.Lock()
	defer j.mu.Unlock()
	return append([]string(nil), j.appends...)
}

// waitQuiet waits until no append is in flight and none ended within
// window, counting from from at the earliest, or deadline.
func (j *countingJournal) waitQuiet(window time.Duration, from, deadline time.Time) error {
	for {
		j.mu.Lock()
		inFlight, quiet := j.inFlight, time.Since(j.lastEnd)
		j.mu.Unlock()
		quiet = min(quiet, time.Since(from))
		if inFlight == 0 && quiet >= window {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("the journal is still busy (%d appends in flight, last one %s ago)", inFlight, quiet)
		}
		time.Sleep(min(window-quiet, window/3) + time.Millisecond)
	}
}

// rawClient speaks HTTP/1.1 on one kept-alive connection, writing the
// request line and headers exactly as given (net/http's client would clean
// the path and refuse some headers).
type rawClient struct {
	addr string
	conn net.Conn
	br   *bufio.Reader
}

func (c *rawClient) close() {
	if c.conn != nil {
		c.conn.Close()
		c.conn, c.br = nil, nil
	}
}

// do sends q and reads the answer within timeout. A connection the server
// closed while it was idle is replaced once, when nothing of the answer
// came.
func (c *rawClient) do(q *fuzzRequest, timeout time.Duration) (*http.Response, []byte, error) {
	var buf bytes.Buffer
	fmt.Fprintf(&buf, "%s %s HTTP/1.1\r\nHost: fuzz\r\n", q.method, q.target)
	for _, h := range q.header {
		fmt.Fprintf(&buf, "%s: %s\r\n", h[0], h[1])
	}
	if q.chunked {
		buf.WriteString("Transfer-Encoding: chunked\r\n\r\n")
		if len(q.body) > 0 {
			fmt.Fprintf(&buf, "%x\r\n%s\r\n", len(q.body), q.body)
		}
		buf.WriteString("0\r\n\r\n")
	} else {
		if len(q.body) > 0 || q.method == http.MethodPost || q.method == http.MethodPut {
			fmt.Fprintf(&buf, "Content-Length: %d\r\n", len(q.body))
		}
		buf.WriteString("\r\n")
		buf.Write(q.body)
	}
	for attempt := 0; ; attempt++ {
		reused := c.conn != nil
		if c.conn == nil {
			conn, err := net.DialTimeout("tcp", c.addr, 10*time.Second)
			if err != nil {
				return nil, nil, err
			}
			c.conn, c.br = conn, bufio.NewReader(conn)
		}
		c.conn.SetDeadline(time.Now().Add(timeout))
		resp, body, err := c.exchange(buf.Bytes(), q.method)
		if err != nil {
			c.close()
			if reused && attempt == 0 && (err == io.EOF || err == io.ErrUnexpectedEOF || isReset(err)) {
				continue
			}
			return nil, nil, err
		}
		if resp.Close {
			c.close()
		}
		return resp, body, nil
	}
}

// exchange writes a request and reads its answer. The answer is read while
// the request is still being written: a server may answer before it has
// read the whole body (a body over the limit) and close, and then the
// answer must be read before the connection is reset under it. An answer
// whose body is cut short by the connection closing still counts: its
// status is what the target checks.
func (c *rawClient) exchange(data []byte, method string) (*http.Response, []byte, error) {
	written := make(chan error, 1)
	go func() {
		_, err := c.conn.Write(data)
		written <- err
	}()
	resp, err := http.ReadResponse(c.br, &http.Request{Method: method})
	if err != nil {
		if werr := <-written; werr != nil {
			return nil, nil, fmt.Errorf("write: %w; read: %w", werr, err)
		}
		return nil, nil, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	werr := <-written
	if err != nil || werr != nil {
		resp.Close = true // the connection is done
		if err != nil && !isReset(err) && err != io.ErrUnexpectedEOF {
			return nil, nil, fmt.Errorf("read the body of a %d: %w", resp.StatusCode, err)
		}
	}
	return resp, body, nil
}

func isReset(err error) bool {
	return err != nil && (strings.Contains(err.Error(), "connection reset") || strings.Contains(err.Error(), "broken pipe"))
}

// logRing keeps the platform's last log lines, for a failure to show.
type logRing struct {
	mu    sync.Mutex
	lines []string // mu guards
	max   int
}

func (l *logRing) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, line := range strings.Split(strings.TrimRight(string(p), "\n"), "\n") {
		l.lines = append(l.lines, line)
	}
	if len(l.lines) > l.max {
		l.lines = append(l.lines[:0:0], l.lines[len(l.lines)-l.max:]...)
	}
	return len(p), nil
}

func (l *logRing) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	if len(l.lines) == 0 {
		return "  (none)\n"
	}
	return "  " + strings.Join(l.lines, "\n  ") + "\n"
}

// fuzzSeed is one seed input.
type fuzzSeed struct {
	method      string // "" for the route's own
	route       string // "METHOD /pattern", or "" for rest as the whole path
	seg1, seg2  string
	rest        string
	auth        uint8
	authText    string
	contentType string
	key         string
	flags       uint8
	body        string
}

// fuzzSeeds are valid requests of every route (in an order that makes the
// later ones meaningful: the pot is opened before it is paid into, prices
// come before the cycle) and tricky ones.
func fuzzSeeds() []fuzzSeed {
	const js = "application/json"
	m, day := fuzzMember, fuzzDay.String()
	var prices []string
	for _, a := range domain.DefaultCatalogue().Assets() {
		prices = append(prices, fmt.Sprintf("%q:%q", a.ISIN, "1."+strings.Repeat("2", int(a.PriceDecimals))))
	}
	pricesOf := func(date string) string {
		return `{"date":"` + date + `","prices":{` + strings.Join(prices, ",") + `}}`
	}
	seeds := []fuzzSeed{
		// The member's week, valid.
		{route: "POST /v1/pots", auth: authMember, contentType: js, key: "open-1", body: `{"memberId":"` + m + `","riskProfile":"balanced"}`},
		{route: "POST /v1/pots", auth: authMember, contentType: js, key: "open-1", body: `{"memberId":"` + m + `","riskProfile":"balanced"}`},
		{route: "GET /v1/pots/{memberId}", seg1: m, auth: authMember},
		{route: "POST /v1/pots/{memberId}/contributions", seg1: m, auth: authMember, contentType: js, key: "pay-1", body: `{"amount":"500.00"}`},
		{route: "POST /v1/pots/{memberId}/withdrawals", seg1: m, auth: authMember, contentType: js, key: "wd-1", body: `{"amount":"1.00"}`},
		{route: "POST /v1/pots/{memberId}/orders", seg1: m, auth: authMember, contentType: js, key: "buy-1", body: `{"type":"buy","asset":"GB00BD8R3K42","amount":"5.00"}`},
		{route: "POST /v1/pots/{memberId}/orders", seg1: m, auth: authMember, contentType: js, key: "sell-1", body: `{"type":"sell","asset":"GB00BD8R3K42","units":"1.0000"}`},
		{route: "POST /v1/pots/{memberId}/orders", seg1: m, auth: authMember, contentType: js, key: "sell-2", body: `{"type":"sell","asset":"GB00BD8R3K42","percent":"50"}`},
		{route: "POST /v1/pots/{memberId}/orders", seg1: m, auth: authMember, contentType: js, key: "switch-1", body: `{"type":"switch","from":"GB00BD8R3K42","to":"GB00BP9C4D20","percent":"100"}`},
		{route: "GET /v1/pots/{memberId}/orders", seg1: m, auth: authMember, rest: "?status=accepted&limit=5"},
		{route: "GET /v1/pots/{memberId}/orders/{orderId}", seg1: m, seg2: m + "-1", auth: authMember},
		{route: "DELETE /v1/pots/{memberId}/orders/{orderId}", seg1: m, seg2: m + "-3", auth: authMember, key: "cancel-1"},
		{route: "PUT /v1/pots/{memberId}/risk-profile", seg1: m, auth: authMember, contentType: js, key: "risk-1", body: `{"riskProfile":"adventurous"}`},
		{route: "PUT /v1/pots/{memberId}/risk-profile", seg1: m, auth: authMember, contentType: js, key: "risk-2", body: `{"riskProfile":""}`},
		{route: "GET /v1/pots/{memberId}/statement", seg1: m, auth: authMember, rest: "?from=2026-01-01&to=2026-12-31"},
		{route: "GET /v1/assets", auth: authMember},
		{route: "GET /v1/risk-profiles", auth: authMember},
		// The operator's day, valid.
		{route: "GET /v1/cluster", auth: authOperator},
		{route: "POST /v1/prices", auth: authOperator, contentType: js, body: pricesOf(day)},
		{route: "GET /v1/prices/{date}", seg1: day, auth: authOperator},
		{route: "POST /v1/cycles/{date}/run", seg1: day, auth: authOperator, contentType: js, body: `{"rebalance":true}`},
		{route: "GET /v1/cycles/{date}", seg1: day, auth: authOperator},
		{route: "POST /v1/reconciliations", auth: authOperator, contentType: js, key: "recon-1", body: `{"deep":true}`},
		{route: "GET /v1/reconciliations/{id}", seg1: "recon-1", auth: authOperator},
		{route: "GET /healthz"},
		{route: "GET /readyz"},
		{route: "GET /metrics"},

		// Dates at and past the ends of the calendar.
		{route: "POST /v1/prices", auth: authOperator, contentType: js, body: pricesOf("0001-01-01")},
		{route: "POST /v1/prices", auth: authOperator, contentType: js, body: pricesOf("9999-12-31")},
		{route: "GET /v1/prices/{date}", seg1: "0001-01-01", auth: authOperator},
		{route: "GET /v1/prices/{date}", seg1: "9999-12-31", auth: authOperator},
		{route: "GET /v1/cycles/{date}", seg1: "0001-01-01", auth: authOperator},
		{route: "POST /v1/cycles/{date}/run", seg1: "0001-01-01", auth: authOperator},
		{route: "POST /v1/cycles/{date}/run", seg1: "9999-12-31", auth: authOperator, contentType: js, body: `{}`},
		{route: "POST /v1/cycles/{date}/run", seg1: "2026-02-30", auth: authOperator},
		{route: "GET /v1/cycles/{date}", seg1: "1899-12-31", auth: authOperator},
		{route: "POST /v1/reconciliations", auth: authOperator, contentType: js, key: "recon-2", body: `{"asOf":"0001-01-01"}`},
		{route: "POST /v1/reconciliations", auth: authOperator, contentType: js, body: `{"asOf":"9999-12-31","deep":false}`},
		{route: "GET /v1/pots/{memberId}/statement", seg1: m, auth: authMember, rest: "?from=0001-01-01&to=9999-12-31"},
		{route: "GET /v1/pots/{memberId}/statement", seg1: m, auth: authMember, rest: "?from=2026-12-31&to=2026-01-01"},
		// Paths: dot segments, doubled slashes, escapes, ids too long.
		{rest: "/v1/pots/../v1/assets", auth: authMember},
		{rest: "//v1/pots", method: "POST", auth: authMember, contentType: js, body: `{"memberId":"M000001"}`},
		{rest: "/v1/pots/" + m + "//orders", auth: authMember},
		{rest: "/v1/pots/" + m + "/../M000002", auth: authMember},
		{route: "GET /v1/pots/{memberId}", seg1: "%2e%2e", auth: authOperator},
		{route: "GET /v1/pots/{memberId}", seg1: "M%2F1", auth: authOperator},
		{route: "GET /v1/pots/{memberId}", seg1: strings.Repeat("M", 65), auth: authOperator},
		{route: "GET /v1/pots/{memberId}/orders/{orderId}", seg1: m, seg2: "..", auth: authMember},
		{route: "GET /v1/reconciliations/{id}", seg1: "..%2F..%2Fetc", auth: authOperator},
		{rest: "/v1/cycles//run", method: "POST", auth: authOperator},
		{rest: "*", method: "OPTIONS"},
		{rest: "http://fuzz/v1/assets", auth: authMember},
		{rest: "/v1/assets?%zz", auth: authMember},
		// Huge and odd numbers.
		{route: "POST /v1/pots/{memberId}/contributions", seg1: m, auth: authMember, contentType: js, key: "pay-max", body: `{"amount":"1000000000000.00"}`},
		{route: "POST /v1/pots/{memberId}/contributions", seg1: m, auth: authMember, contentType: js, key: "pay-huge", body: `{"amount":"99999999999999999999999999999.99"}`},
		{route: "POST /v1/pots/{memberId}/contributions", seg1: m, auth: authMember, contentType: js, key: "pay-num", body: `{"amount":1e400}`},
		{route: "POST /v1/pots/{memberId}/withdrawals", seg1: m, auth: authMember, contentType: js, key: "wd-huge", body: `{"amount":"9223372036854775807.99"}`},
		{route: "POST /v1/pots/{memberId}/orders", seg1: m, auth: authMember, contentType: js, key: "sell-tiny", body: `{"type":"sell","asset":"GB00BD8R3K42","units":"0.00000000000000000001"}`},
		{route: "POST /v1/pots/{memberId}/orders", seg1: m, auth: authMember, contentType: js, key: "sell-pct", body: `{"type":"sell","asset":"GB00BD8R3K42","percent":"100.0000000001"}`},
		{route: "GET /v1/pots/{memberId}/orders", seg1: m, auth: authMember, rest: "?limit=99999999999999999999&after=" + m + "-18446744073709551616"},
		{route: "POST /v1/prices", auth: authOperator, contentType: js, body: `{"date":"` + day + `","prices":{"GB00BN7Q2L69":"99999999999999999999.999999"}}`},
		// Wrong content types and bodies.
		{route: "POST /v1/pots/{memberId}/contributions", seg1: m, auth: authMember, contentType: "text/plain", key: "pay-text", body: `{"amount":"1.00"}`},
		{route: "POST /v1/pots/{memberId}/contributions", seg1: m, auth: authMember, contentType: "multipart/form-data; boundary=x", key: "pay-mp", body: "--x\r\n\r\namount=1\r\n--x--"},
		{route: "POST /v1/pots", auth: authMember, contentType: "application/xml", key: "open-xml", body: `<memberId>M000001</memberId>`},
		{route: "POST /v1/pots/{memberId}/orders", seg1: m, auth: authMember, contentType: js, key: "dup-keys", body: `{"type":"buy","type":"sell"}`},
		{route: "POST /v1/pots/{memberId}/orders", seg1: m, auth: authMember, contentType: js, key: "deep", body: strings.Repeat(`{"a":`, 20) + `1` + strings.Repeat(`}`, 20)},
		{route: "POST /v1/pots/{memberId}/contributions", seg1: m, auth: authMember, contentType: js, key: "utf8", body: "{\"amount\":\"\xff\"}"},
		{route: "POST /v1/pots/{memberId}/contributions", seg1: m, auth: authMember, contentType: js, key: "chunked", flags: flagChunked, body: `{"amount":"2.00"}`},
		{route: "POST /v1/cycles/{date}/run", seg1: day, auth: authOperator, contentType: js, body: `{"rebalance":"yes"}`},
		{route: "POST /v1/reconciliations", auth: authOperator, contentType: js, body: `[]`},
		// Headers: keys, tokens, methods.
		{route: "POST /v1/pots/{memberId}/contributions", seg1: m, auth: authMember, contentType: js, key: "pay-1", body: `{"amount":"7.00"}`},
		{route: "POST /v1/pots/{memberId}/contributions", seg1: m, auth: authMember, contentType: js, key: "twice", flags: flagKeyTwice | flagRequestID, body: `{"amount":"1.00"}`},
		{route: "POST /v1/pots/{memberId}/contributions", seg1: m, auth: authMember, contentType: js, key: strings.Repeat("k", 129), body: `{"amount":"1.00"}`},
		{route: "GET /v1/pots/{memberId}", seg1: "M000002", auth: authMember},
		{route: "GET /v1/pots/{memberId}", seg1: "M000002", auth: authPathMember},
		{route: "POST /v1/pots", seg1: "M000002", auth: authPathMember, contentType: js, key: "open-2", body: `{"memberId":"M000002","riskProfile":"cautious"}`},
		{route: "POST /v1/pots", auth: authMember, contentType: js, key: "open-3", body: `{"memberId":"M000003"}`},
		{route: "POST /v1/prices", auth: authOperator, contentType: js, body: pricesOf("2026-11-24")},
		{route: "POST /v1/cycles/{date}/run", seg1: "2026-11-24", auth: authOperator, contentType: js, body: `{"rebalance":false}`},
		{route: "POST /v1/prices", auth: authOperator, contentType: js, body: pricesOf("2026-11-22")},
		{route: "POST /v1/cycles/{date}/run", seg1: "2999-12-31", auth: authOperator},
		{route: "POST /v1/prices", auth: authMember, contentType: js, body: pricesOf(day)},
		{route: "POST /v1/cycles/{date}/run", seg1: day, auth: authExpired},
		{route: "GET /v1/cluster", auth: authGarbage, authText: "v1.e30.AAAA"},
		{route: "GET /v1/cluster", auth: authRaw, authText: "Basic b3A6b3A="},
		{route: "GET /v1/cluster", auth: authTwice, authText: "Bearer x"},
		{route: "GET /v1/assets", auth: authNone},
		{route: "GET /v1/pots/{memberId}", method: "PATCH", seg1: m, auth: authMember},
		{route: "GET /v1/pots/{memberId}", method: "HEAD", seg1: m, auth: authMember},
		{route: "POST /v1/pots", method: "GET /x", auth: authMember},
	}
	return seeds
}
