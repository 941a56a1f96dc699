package bench

import (
	"context"
	"crypto/rand"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"path/filepath"
	"runtime"
	"slices"
	"sync/atomic"
	"time"

	"github.com/acme/mastertrust/actors"
	"github.com/acme/mastertrust/cluster"
	"github.com/acme/mastertrust/domain"
	"github.com/acme/mastertrust/gateway"
	"github.com/acme/mastertrust/internal/pki"
	"github.com/acme/mastertrust/internal/procmem"
	"github.com/acme/mastertrust/persistence/pebble"
	"github.com/acme/mastertrust/platform"
)

// The TLS comparison (bench pots -tls): the same workloads with TLS on and
// off, in the same run, cells interleaved within each repeat. Each side is
// a member hosting the pots (its own Pebble journal) and a client node in
// this process, the client calling the member over the gRPC remote on
// loopback as a gateway does, and a gateway on the client node behind a
// loopback listener.
const (
	// TLSClusterPlain and TLSClusterMTLS: durable Contribute calls from
	// the client node to the member over the remote, plaintext and mutual
	// TLS.
	TLSClusterPlain = "cluster-plain"
	TLSClusterMTLS  = "cluster-mtls"
	// TLSHTTP, TLSHTTPS: HTTP POST orders through the gateway, over HTTP
	// and over HTTPS, the remote plaintext (HTTPS's own cost).
	TLSHTTP  = "http"
	TLSHTTPS = "https"
	// TLSHTTPSMTLS: HTTPS orders through the gateway of the mTLS side:
	// everything encrypted, as a deployment would run.
	TLSHTTPSMTLS = "https-mtls"
)

// tlsCellResult is a cell's rates and the memory it peaked at.
type tlsCellResult struct {
	rate
	// peakRSS is the process's peak resident set size during the cell (0:
	// unknown); peakHeap the peak of the heap's object bytes (live and not
	// yet swept), sampled every tlsHeapSample.
	peakRSS, peakHeap uint64
}

// tlsHeapSample is how often the heap is sampled during a cell.
const tlsHeapSample = 10 * time.Millisecond

// RunPotsTLS runs the TLS comparison and prints a table and the ratios
// TLS ÷ plaintext to out. It uses cfg's Dir, Callers, HTTPClients, Pots,
// Duration, Repeats, Groups, JournalMinSyncInterval, PhaseTimeout and
// Logger; the pots are opened and funded on both sides beforehand, with no
// history.
func RunPotsTLS(ctx context.Context, cfg PotsConfig, out io.Writer) error {
	cfg.EnsureDefaults()
	if err := cfg.Validate(); err != nil {
		return fmt.Errorf("bench: pots config: %w", err)
	}
	root, removeRoot, err := workDirs(cfg.Dir, "mastertrust-bench-tls-*")
	if err != nil {
		return err
	}
	defer removeRoot()

	// One CA for the bench: the cluster's certificates and the gateway's.
	ca, err := pki.NewAuthority("mastertrust bench CA", time.Hour)
	if err != nil {
		return err
	}
	leaf, err := ca.Issue("bench", []string{"127.0.0.1"}, time.Hour)
	if err != nil {
		return err
	}
	secrets := filepath.Join(root, "secrets")
	caFile, certFile, keyFile := filepath.Join(secrets, "ca.crt"), filepath.Join(secrets, "bench.crt"), filepath.Join(secrets, "bench.key")
	if err := ca.Write(caFile, filepath.Join(secrets, "ca.key")); err != nil {
		return err
	}
	if err := leaf.Write(certFile, keyFile); err != nil {
		return err
	}
	clusterTLS := cluster.TLSConfig{CAFile: caFile, CertFile: certFile, KeyFile: keyFile}
	https := httpsFiles{ca: caFile, cert: certFile, key: keyFile}

	plain, err := startPotsRemote(ctx, cfg, filepath.Join(root, "plain"), cluster.TLSConfig{}, https)
	if err != nil {
		return fmt.Errorf("bench: start the plaintext side: %w", err)
	}
	defer plain.close()
	mtls, err := startPotsRemote(ctx, cfg, filepath.Join(root, "mtls"), clusterTLS, https)
	if err != nil {
		return fmt.Errorf("bench: start the mTLS side: %w", err)
	}
	defer mtls.close()
	for _, side := range []*potsRun{plain, mtls} {
		if err := side.openBenchPots(ctx, 0); err != nil {
			return err
		}
	}

	fmt.Fprintf(out, "TLS on and off: each side a member (Pebble journal on disk) and a client node calling it over the gRPC remote on loopback, with the gateway on the client node (in-flight limit: the clients); %d callers, %d HTTP/1.1 keep-alive clients; %d pots per side, taken in turn; each cell %s after a %s warm-up; %d repeat(s), the cells interleaved, every other repeat in reverse (medians; a ratio is the median of the same-repeat ratios).\n\n",
		cfg.Callers, cfg.HTTPClients, cfg.Pots, cfg.Duration, cfg.Duration/5, cfg.Repeats)

	cells := []struct {
		name, label string
		workers     int
		op          func(ctx context.Context, w int) (int, error)
	}{
		{TLSClusterPlain, "pot Contribute over the remote, plaintext", cfg.Callers, plain.contribute},
		{TLSClusterMTLS, "pot Contribute over the remote, mTLS", cfg.Callers, mtls.contribute},
		{TLSHTTP, "HTTP orders, plaintext remote", cfg.HTTPClients,
			func(ctx context.Context, _ int) (int, error) { return plain.httpOrderAt(ctx, plain.url, plain.http) }},
		{TLSHTTPS, "HTTPS orders, plaintext remote", cfg.HTTPClients,
			func(ctx context.Context, _ int) (int, error) {
				return plain.httpOrderAt(ctx, plain.urlTLS, plain.httpTLS)
			}},
		{TLSHTTPSMTLS, "HTTPS orders, mTLS remote", cfg.HTTPClients,
			func(ctx context.Context, _ int) (int, error) { return mtls.httpOrderAt(ctx, mtls.urlTLS, mtls.httpTLS) }},
	}
	results := map[string][]tlsCellResult{}
	for rep := range cfg.Repeats {
		// The heap and RSS grow over a run (the pots' orders, the calls'
		// futures until their timers fire): every other repeat runs the
		// cells in reverse, so that neither side always comes later.
		order := slices.Clone(cells)
		if rep%2 == 1 {
			slices.Reverse(order)
		}
		for _, c := range order {
			// Both sides' garbage from the previous cell is not this one's.
			runtime.GC()
			res, err := measureTLSCell(ctx, loadShape{workers: c.workers, warmup: cfg.Duration / 5, duration: cfg.Duration}, c.op)
			if err != nil {
				return fmt.Errorf("bench: tls %s, repeat %d: %w", c.name, rep+1, err)
			}
			results[c.name] = append(results[c.name], res)
			cfg.Logger.Info("tls bench cell", "measurement", c.name, "repeat", rep+1, "ops_s", int(res.appends),
				"p50", res.p50, "p99", res.p99, "cores", fmt.Sprintf("%.2f", res.cores),
				"peak_rss_mib", res.peakRSS>>20, "peak_heap_mib", res.peakHeap>>20)
		}
	}

	mib := func(b float64) string {
		if b == 0 {
			return "?"
		}
		return fmt.Sprintf("%.0f", b/(1<<20))
	}
	fmt.Fprintf(out, "%-42s %10s %9s %9s %6s %9s %9s %10s\n", "measurement", "ops/s", "p50", "p99", "cores", "CPU/op", "peak RSS", "peak heap")
	for _, c := range cells {
		rs := results[c.name]
		m := func(f func(tlsCellResult) float64) float64 { return median(rs, f) }
		fmt.Fprintf(out, "%-42s %10.0f %9s %9s %6.2f %9s %8sM %9sM\n", c.label,
			m(func(x tlsCellResult) float64 { return x.appends }),
			roundDuration(time.Duration(m(func(x tlsCellResult) float64 { return float64(x.p50) }))),
			roundDuration(time.Duration(m(func(x tlsCellResult) float64 { return float64(x.p99) }))),
			m(func(x tlsCellResult) float64 { return x.cores }),
			time.Duration(m(func(x tlsCellResult) float64 { return float64(x.cpuPerOp) })).Round(100*time.Nanosecond),
			mib(m(func(x tlsCellResult) float64 { return float64(x.peakRSS) })),
			mib(m(func(x tlsCellResult) float64 { return float64(x.peakHeap) })))
	}
	fmt.Fprintf(out, "(cores: this process's CPU time ÷ wall time, load generator included; peak RSS: the process's, both sides included, reset at each cell's start; peak heap: heap object bytes, sampled every %s.)\n\n", tlsHeapSample)

	fmt.Fprintf(out, "TLS ÷ plaintext (median of the same-repeat ratios):\n%-46s %7s %7s %7s %7s %9s %9s\n", "", "ops/s", "p50", "p99", "CPU/op", "peak RSS", "peak heap")
	for _, q := range []struct{ label, num, den string }{
		{"cluster: mTLS ÷ plaintext remote", TLSClusterMTLS, TLSClusterPlain},
		{"gateway: HTTPS ÷ HTTP (plaintext remote)", TLSHTTPS, TLSHTTP},
		{"all TLS: HTTPS + mTLS ÷ HTTP + plaintext", TLSHTTPSMTLS, TLSHTTP},
	} {
		nums, dens := results[q.num], results[q.den]
		ratio := func(f func(tlsCellResult) float64) string {
			vs := make([]float64, 0, len(nums))
			for i := range min(len(nums), len(dens)) {
				if d := f(dens[i]); d != 0 {
					vs = append(vs, f(nums[i])/d)
				}
			}
			if len(vs) == 0 {
				return "?"
			}
			return fmt.Sprintf("%.2f", median(vs, func(x float64) float64 { return x }))
		}
		fmt.Fprintf(out, "%-46s %7s %7s %7s %7s %9s %9s\n", q.label,
			ratio(func(x tlsCellResult) float64 { return x.appends }),
			ratio(func(x tlsCellResult) float64 { return float64(x.p50) }),
			ratio(func(x tlsCellResult) float64 { return float64(x.p99) }),
			ratio(func(x tlsCellResult) float64 { return float64(x.cpuPerOp) }),
			ratio(func(x tlsCellResult) float64 { return float64(x.peakRSS) }),
			ratio(func(x tlsCellResult) float64 { return float64(x.peakHeap) }))
	}
	if n := plain.retries503.Load() + mtls.retries503.Load(); n > 0 {
		fmt.Fprintf(out, "(%d HTTP requests were answered 503 and sent again with the same Idempotency-Key; an op counts once.)\n", n)
	}
	fmt.Fprintln(out)
	return nil
}

// measureTLSCell drives op and records the peak memory meanwhile.
func measureTLSCell(ctx context.Context, shape loadShape, op func(ctx context.Context, w int) (int, error)) (tlsCellResult, error) {
	rssKnown := procmem.ResetPeak()
	var peakHeap atomic.Uint64
	stop, done := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(done)
		t := time.NewTicker(tlsHeapSample)
		defer t.Stop()
		for {
			if h := procmem.HeapObjects(); h > peakHeap.Load() {
				peakHeap.Store(h)
			}
			select {
			case <-stop:
				return
			case <-t.C:
			}
		}
	}()
	res, err := drive(ctx, shape, op)
	close(stop)
	<-done
	out := tlsCellResult{rate: res, peakHeap: peakHeap.Load()}
	if rssKnown {
		out.peakRSS = procmem.Peak()
	}
	return out, err
}

// httpsFiles are the gateway's HTTPS certificate and the CA its clients
// trust.
type httpsFiles struct{ ca, cert, key string }

// startPotsRemote starts one side of the TLS comparison under root: a
// member hosting the pots on its own Pebble journal, a client node calling
// it over the remote (with clusterTLS, or plaintext for the zero value),
// and the gateway on the client node, served over HTTP (url) and HTTPS
// (urlTLS).
func startPotsRemote(ctx context.Context, cfg PotsConfig, root string, clusterTLS cluster.TLSConfig, https httpsFiles) (_ *potsRun, err error) {
	r := &potsRun{cfg: cfg, root: root, log: cfg.Logger}
	defer func() {
		if err != nil {
			r.close()
		}
	}()
	quiet := slog.New(minLevel{cfg.Logger.Handler(), slog.LevelWarn})
	cat := domain.DefaultCatalogue()
	cal, err := platform.NewCalendar()
	if err != nil {
		return nil, err
	}
	r.asset = string(cat.Assets()[0].ISIN)
	if r.contribution, r.orderEvents, err = potEvents(cat, cal, r.asset); err != nil {
		return nil, err
	}
	if r.journal, err = pebble.Open(filepath.Join(root, "journal"), pebble.Options{Groups: cfg.Groups,
		WALMinSyncInterval: cfg.JournalMinSyncInterval, Logger: quiet}); err != nil {
		return nil, err
	}
	cc := cluster.Config{ClusterName: "mastertrust-bench", Provider: cluster.ProviderInProcess,
		InProcess: cluster.NewInProcess(10 * time.Second), Logger: quiet, TLS: clusterTLS}
	if r.node, err = platform.StartNode(platform.NodeConfig{Cluster: cc, Journal: r.journal, HistoryDir: filepath.Join(root, "history"), Catalogue: cat, Calendar: cal, Logger: quiet}); err != nil {
		return nil, err
	}
	if r.client, err = cluster.StartClient(cc); err != nil {
		return nil, err
	}
	wctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	if err := r.client.WaitForMembers(wctx, 1); err != nil {
		return nil, err
	}
	r.pots = actors.PotClient{Node: r.client}
	r.secret = make([]byte, 32)
	rand.Read(r.secret)
	// As many requests in flight as there are clients: what is measured
	// is TLS's cost, not the gateway's shedding (bench overload).
	gw, err := gateway.New(gateway.Config{Pots: r.pots, Cluster: r.client, Catalogue: cat, TokenSecret: r.secret,
		InFlightMax: cfg.HTTPClients, Ready: func(context.Context) error { return nil }, Registry: r.node.Registry, Logger: quiet})
	if err != nil {
		return nil, err
	}
	transport := func() *http.Transport {
		return &http.Transport{MaxIdleConns: cfg.HTTPClients, MaxIdleConnsPerHost: cfg.HTTPClients, DisableCompression: true}
	}

	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	r.url = "http://" + ln.Addr().String()
	r.server = &http.Server{Handler: gw.Handler(), ReadHeaderTimeout: 10 * time.Second}
	go r.server.Serve(ln)
	r.http = &http.Client{Transport: transport()}

	serverTLS, err := pki.ServerConfig(https.cert, https.key, "")
	if err != nil {
		return nil, err
	}
	clientTLS, err := pki.ClientConfig(https.ca, "", "")
	if err != nil {
		return nil, err
	}
	tln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	r.urlTLS = "https://" + tln.Addr().String()
	r.tlsServer = &http.Server{Handler: gw.Handler(), ReadHeaderTimeout: 10 * time.Second, TLSConfig: serverTLS}
	go r.tlsServer.ServeTLS(tln, "", "")
	t := transport()
	t.TLSClientConfig = clientTLS // HTTP/1.1, as the plain client: no ForceAttemptHTTP2
	r.httpTLS = &http.Client{Transport: t}
	return r, nil
}
