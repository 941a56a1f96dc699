package repotest

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"os/exec"
	"slices"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// The layers of the code (docs/architecture.md, "Shape"), as a table: for
// each package of the module, the module's packages it may import, and
// what else it must not import or link. TestLayers checks the code against
// it with `go list`, after Pebble's internal/lint; only non-test code is
// checked (a package's tests may reach further, as they assemble what they
// test). A new package needs a row, with its reason.
//
// The module's packages are named relative to the module
// ("persistence/pebble"). A prefix in thirdParty, forbidden or notLinked
// covers the path and everything under it ("log" covers log/slog,
// "github.com/cockroachdb/pebble" covers pebble/v2/vfs); one ending in "/"
// covers everything it starts ("github.com/nats-io/").
var layers = map[string]layer{
	"domain": {
		why:        "the pure core: business rules only; no I/O, actors, storage, messaging, logging or randomness (docs/architecture.md, Conventions 1), so it can be tested and reasoned about alone; TestDomainReadsNoClock checks the clock",
		thirdParty: []string{"github.com/shopspring/decimal"},
		forbidden:  []string{"net", "os", "syscall", "log", "math/rand"},
		notLinked:  []string{"github.com/asynkron/protoactor-go", "github.com/cockroachdb/pebble", "github.com/nats-io/"},
	},
	"proto/pb": {
		why:        "generated code only (proto/gen.sh): wire formats and grain clients, depending on nothing of ours",
		thirdParty: []string{"google.golang.org/protobuf", "github.com/asynkron/protoactor-go/cluster"},
	},
	"codec": {
		why:        "the journal's form of domain events and snapshots: domain to proto/pb and back, no I/O",
		imports:    []string{"domain", "proto/pb"},
		thirdParty: []string{"github.com/shopspring/decimal", "google.golang.org/protobuf"},
	},
	"persistence": {
		why:        "the journal contract (interface, errors): knows no backend and no payload format",
		thirdParty: []string{},
	},
	"persistence/pebble": {
		why:     "a journal backend: the contract and Pebble (tuned as the history is), nothing of the business",
		imports: []string{"internal/pebbleopts", "persistence"},
	},
	"persistence/jetstream": {
		why:     "a journal backend: the contract and NATS, nothing of the business",
		imports: []string{"internal/natsstream", "internal/pause", "persistence"},
	},
	"persistence/persistencetest": {
		why:     "the backends' acceptance suite: the contract only",
		imports: []string{"persistence"},
	},
	"cluster": {
		why:     "protoactor behind a small API: knows nothing of the business, the journal or NATS",
		imports: []string{"cluster/internal/statspb", "internal/pause", "internal/pki", "internal/recovered"},
	},
	"cluster/natskv": {
		why:     "the kv membership provider's store: a NATS JetStream KV bucket behind cluster.MemberStore, so that cluster itself links no NATS",
		imports: []string{"cluster"},
	},
	"cluster/internal/statspb": {why: "generated code only"},
	"cluster/internal/testgrain": {
		why: "the cluster tests' grain, generated and hand-written: protoactor only",
	},
	"custodian": {
		why:       "the custodian protocol and ACME's client, linked by every node: no simulator, so no journal and no Pebble",
		imports:   []string{"custodian/internal/consume", "domain", "internal/natsmsg", "internal/natsstream", "internal/recovered", "proto/pb"},
		notLinked: []string{"github.com/cockroachdb/pebble", "github.com/acme/mastertrust/persistence"},
	},
	"custodian/internal/consume": {
		why: "the JetStream consumer loop both sides of the custodian protocol share: NATS only",
	},
	"custodian/simulator": {
		why: "the outside world's custodian: talks to ACME only over NATS, so none of ACME's grains, cluster or HTTP; its own books are a Pebble journal",
		imports: []string{"custodian", "custodian/internal/consume", "domain", "internal/natsmsg", "internal/recovered",
			"persistence", "persistence/pebble", "proto/pb"},
	},
	"actors": {
		why:       "the grains: decide with domain, append to the journal contract, reply; the backends and NATS are wired in by platform",
		imports:   []string{"cluster", "codec", "domain", "internal/problem", "internal/recovered", "persistence", "proto/pb"},
		notLinked: []string{"github.com/cockroachdb/pebble", "github.com/nats-io/"},
	},
	"gateway": {
		why:       "stateless HTTP: reaches state only through the grains (actors' clients, cluster), never the journal",
		imports:   []string{"actors", "cluster", "domain", "internal/pause", "internal/problem", "internal/recovered", "proto/pb"},
		notLinked: []string{"github.com/cockroachdb/pebble", "github.com/nats-io/"},
	},
	"history": {
		why: "the pots' history read model: the journal's feed (the contract, not a backend) projected with the domain's Apply and codec's forms into a Pebble database of its own; no grains, no NATS" +
			" (protoactor is linked, not used: codec imports proto/pb, whose generated grain clients import it)",
		imports:    []string{"codec", "domain", "internal/pebbleopts", "persistence"},
		thirdParty: []string{"github.com/cockroachdb/pebble"},
		notLinked:  []string{"github.com/nats-io/"},
	},
	"platform": {
		why: "assembles processes from the parts: the one place that knows them all",
		imports: []string{"actors", "cluster", "cluster/natskv", "custodian", "custodian/simulator", "domain", "gateway", "history",
			"internal/natsauth", "internal/natsembed", "internal/natsmsg", "internal/natsstream", "internal/pki", "internal/problem",
			"internal/procmem", "persistence", "persistence/jetstream", "persistence/pebble", "proto/pb"},
	},
	"bench": {
		why: "workloads against the parts and the assembled platform, with their raw baselines",
		imports: []string{"actors", "cluster", "codec", "custodian", "custodian/simulator", "domain", "gateway", "history",
			"internal/natsauth", "internal/natsembed", "internal/pause", "internal/pki", "internal/procmem", "persistence",
			"persistence/jetstream", "persistence/pebble", "platform", "proto/pb"},
	},
	"load": {
		why:        "drives a running platform as its users do, through the HTTP API only: the domain's calendar and catalogue, no grains, journal or NATS",
		imports:    []string{"domain", "internal/procmem"},
		thirdParty: []string{"github.com/shopspring/decimal", "github.com/schollz/progressbar", "gonum.org/v1/plot"},
		notLinked:  []string{"github.com/asynkron/protoactor-go", "github.com/cockroachdb/pebble", "github.com/nats-io/"},
	},
	"cmd/mastertrust": {
		why:     "binds flags to platform, bench and load (docs/architecture.md, Conventions 11)",
		imports: []string{"bench", "custodian/simulator", "gateway", "internal/natsauth", "load", "platform"},
	},
	"internal/apispec": {why: "the tests' check of HTTP exchanges against docs/openapi.yaml: standalone"},
	"internal/natsauth": {
		why:       "who may do what on NATS: the role table (it names the custodian protocol's subjects and streams), credentials, TLS files; no journal",
		imports:   []string{"custodian", "internal/pki"},
		notLinked: []string{"github.com/cockroachdb/pebble"},
	},
	"internal/natsembed": {why: "an embedded NATS server: standalone"},
	"internal/natsmsg":   {why: "NATS message headers naming a protobuf payload: standalone"},
	"internal/natsstream": {
		why:     "creating JetStream streams that concurrent starts also create: NATS only",
		imports: []string{"internal/pause"},
	},
	"internal/pause":      {why: "the wait between a retry loop's attempts: standalone"},
	"internal/pebbleopts": {why: "the Pebble options the journal and the history share: standalone"},
	"internal/pki":        {why: "certificates and TLS configurations for the platform's connections: standalone"},
	"internal/procmem":    {why: "this process's resident and peak memory from the kernel: standalone"},
	"internal/problem": {
		why:        "the one table of problem codes, statuses, titles and the domain's sentinels: data, no I/O",
		imports:    []string{"domain"},
		thirdParty: []string{},
	},
	"internal/recovered": {why: "panics turned into errors and counted: standalone"},
	"internal/repotest":  {why: "tests of the repository as a whole: no code"},
	"internal/testkit":   {why: "test logs and polling: standalone"},
}

// layer is one row of layers: what a package may depend on, and why.
type layer struct {
	// why is the reason, printed with every violation.
	why string
	// imports are the module's packages it may import directly; nil: none.
	imports []string
	// thirdParty, if not nil, are the only import path prefixes outside
	// the standard library and the module it may import directly.
	thirdParty []string
	// forbidden are import path prefixes (standard library or third
	// party) it must not import directly.
	forbidden []string
	// notLinked are import path prefixes that must not be among its
	// dependencies at all, direct or not.
	notLinked []string
}

// goPackage is what `go list` says of one package of the module.
type goPackage struct {
	ImportPath string
	Imports    []string // direct imports of its non-test files
	Deps       []string // every package it links, direct or not
}

// TestLayers proves every package of the module depends only on what the
// layer table allows it.
func TestLayers(t *testing.T) {
	root := repoRoot(t)
	cmd := exec.Command("go", "list", "-json=ImportPath,Imports,Deps", "./...")
	cmd.Dir = root
	out, err := cmd.Output()
	var exit *exec.ExitError
	if errors.As(err, &exit) {
		t.Fatalf("go list: %v\n%s", err, exit.Stderr)
	}
	require.NoError(t, err, "go list")
	pkgs, err := decodeGoList(out)
	require.NoError(t, err)
	require.NotEmpty(t, pkgs, "go list found no packages")
	problems := checkLayers(modulePath, pkgs, layers)
	report(t, problems, "change the import, or the table in internal/repotest/layers_test.go, with its reason")
}

// decodeGoList reads the stream of JSON objects `go list -json` prints.
func decodeGoList(out []byte) ([]goPackage, error) {
	var pkgs []goPackage
	dec := json.NewDecoder(strings.NewReader(string(out)))
	for {
		var p goPackage
		if err := dec.Decode(&p); errors.Is(err, io.EOF) {
			return pkgs, nil
		} else if err != nil {
			return nil, fmt.Errorf("decode go list output: %w", err)
		}
		pkgs = append(pkgs, p)
	}
}

// checkLayers lists, one a line, every dependency of the module's packages
// that table does not allow, every package without a row, and every row
// naming a package that does not exist.
func checkLayers(module string, pkgs []goPackage, table map[string]layer) []string {
	var problems []string
	rel := func(path string) (string, bool) {
		if path == module {
			return ".", true
		}
		r, ok := strings.CutPrefix(path, module+"/")
		return r, ok
	}
	exists := map[string]bool{}
	for _, p := range pkgs {
		if name, ok := rel(p.ImportPath); ok {
			exists[name] = true
		}
	}
	for _, p := range pkgs {
		name, ok := rel(p.ImportPath)
		if !ok {
			continue
		}
		l, ok := table[name]
		if !ok {
			problems = append(problems, fmt.Sprintf("%s: no row in the layer table", name))
			continue
		}
		for _, imp := range p.Imports {
			if dep, ok := rel(imp); ok {
				if !slices.Contains(l.imports, dep) {
					problems = append(problems, fmt.Sprintf("%s imports %s, which the table does not allow (%s: %s)", name, dep, name, l.why))
				}
				continue
			}
			if l.thirdParty != nil && !standard(imp) && !slices.ContainsFunc(l.thirdParty, func(p string) bool { return under(imp, p) }) {
				problems = append(problems, fmt.Sprintf("%s imports %s, a third-party package the table does not allow (%s: %s)", name, imp, name, l.why))
			}
			if slices.ContainsFunc(l.forbidden, func(p string) bool { return under(imp, p) }) {
				problems = append(problems, fmt.Sprintf("%s imports %s, which the table forbids (%s: %s)", name, imp, name, l.why))
			}
		}
		for _, forbidden := range l.notLinked {
			for _, dep := range p.Deps {
				if under(dep, forbidden) {
					problems = append(problems, fmt.Sprintf("%s links %s, which the table forbids (%s: %s); `go list -deps ./%s` shows what it links", name, dep, name, l.why, name))
					break
				}
			}
		}
	}
	for _, name := range slices.Sorted(maps.Keys(table)) {
		if !exists[name] {
			problems = append(problems, fmt.Sprintf("%s: a row of the layer table, but no such package", name))
		}
		for _, dep := range table[name].imports {
			if !exists[dep] {
				problems = append(problems, fmt.Sprintf("%s: the table lets it import %s, but no such package", name, dep))
			}
		}
	}
	return problems
}

// under reports whether path is prefix or below it; a prefix ending in "/"
// covers every path that starts with it.
func under(path, prefix string) bool {
	if strings.HasSuffix(prefix, "/") {
		return strings.HasPrefix(path, prefix)
	}
	return path == prefix || strings.HasPrefix(path, prefix+"/")
}

// standard reports whether path is a standard library package: its first
// element has no dot (the go command reserves those paths for it).
func standard(path string) bool {
	first, _, _ := strings.Cut(path, "/")
	return !strings.Contains(first, ".")
}

// TestCheckLayers proves the checker finds each kind of violation, with a
// message that names the package, what it depends on and the row's reason,
// and leaves alone what the table allows.
func TestCheckLayers(t *testing.T) {
	const m = "example.com/m"
	table := map[string]layer{
		"core": {
			why:        "pure",
			thirdParty: []string{"github.com/shopspring/decimal"},
			forbidden:  []string{"net", "github.com/nats-io/"},
			notLinked:  []string{"github.com/cockroachdb/pebble"},
		},
		"web":  {why: "no storage", imports: []string{"core"}},
		"gone": {why: "removed", imports: []string{"core", "typo"}},
	}
	pkgs := []goPackage{
		{ImportPath: m + "/core",
			Imports: []string{"fmt", "net/http", "netx", "github.com/shopspring/decimal", "github.com/shopspring/decimalx",
				"github.com/nats-io/nats.go", m + "/web"},
			Deps: []string{"fmt", "github.com/cockroachdb/pebble/v2", "github.com/cockroachdb/pebble/v2/vfs"}},
		{ImportPath: m + "/web", Imports: []string{"net/http", m + "/core", "github.com/cockroachdb/pebble/v2"},
			Deps: []string{"github.com/cockroachdb/pebble/v2"}},
		{ImportPath: m + "/new", Imports: []string{m + "/core"}},
		{ImportPath: "github.com/shopspring/decimal", Imports: []string{"os"}},
	}
	want := []string{
		"core imports net/http, which the table forbids (core: pure)",
		"core imports github.com/shopspring/decimalx, a third-party package the table does not allow (core: pure)",
		"core imports github.com/nats-io/nats.go, a third-party package the table does not allow (core: pure)",
		"core imports github.com/nats-io/nats.go, which the table forbids (core: pure)",
		"core imports web, which the table does not allow (core: pure)",
		"core links github.com/cockroachdb/pebble/v2, which the table forbids (core: pure); `go list -deps ./core` shows what it links",
		"new: no row in the layer table",
		"gone: a row of the layer table, but no such package",
		"gone: the table lets it import typo, but no such package",
	}
	assert.Equal(t, want, checkLayers(m, pkgs, table))

	// A table that allows what the packages do finds nothing.
	table = map[string]layer{"core": {why: "pure", imports: []string{"web"}}, "web": {why: "no storage", imports: []string{"core"}}}
	assert.Empty(t, checkLayers(m, pkgs[:2], table))
}

// TestUnder pins what a prefix of the table covers.
func TestUnder(t *testing.T) {
	for _, c := range []struct {
		path, prefix string
		want         bool
	}{
		{"log", "log", true},
		{"log/slog", "log", true},
		{"logic", "log", false},
		{"osx", "os", false},
		{"network", "net", false},
		{"math/rand/v2", "math/rand", true},
		{"github.com/cockroachdb/pebble/v2/vfs", "github.com/cockroachdb/pebble", true},
		{"github.com/nats-io/nats.go", "github.com/nats-io/", true},
		{"github.com/nats-io", "github.com/nats-io/", false},
	} {
		assert.Equal(t, c.want, under(c.path, c.prefix), "under(%q, %q)", c.path, c.prefix)
	}
	assert.True(t, standard("net/http"))
	assert.False(t, standard("github.com/shopspring/decimal"))
}
