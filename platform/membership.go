package platform

import (
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"

	protocluster "github.com/asynkron/protoactor-go/cluster"

	"github.com/acme/mastertrust/cluster"
)

// Membership providers (Config.Membership). kv and automanaged are always
// built in. etcd, consul and k8s are protoactor's providers: each is in a
// binary only when it is built with its tag (MembershipBuildTag), so that
// the default binary links none of their clients (docs/decisions.md, "One
// file and one build tag per external membership").
const (
	MembershipKV          = "kv"
	MembershipAutomanaged = "automanaged"
	MembershipEtcd        = "etcd"
	MembershipConsul      = "consul"
	MembershipK8s         = "k8s"
)

// MembershipBuilder builds protoactor's cluster provider for a process's
// config (already validated). It is called once per start of the
// process's cluster node.
type MembershipBuilder func(Config) (protocluster.ClusterProvider, error)

// externalMemberships are the names RegisterMembership accepts, with the
// build tag of the file that registers each and the cluster package's name
// for the provider.
var externalMemberships = map[string]struct {
	tag      string
	provider cluster.Provider
}{
	MembershipEtcd:   {"membership_etcd", cluster.ProviderEtcd},
	MembershipConsul: {"membership_consul", cluster.ProviderConsul},
	MembershipK8s:    {"membership_k8s", cluster.ProviderKubernetes},
}

// registered holds the builders of the external memberships built into
// this binary: the tagged files register theirs from init.
var registered struct {
	sync.Mutex
	builders map[string]MembershipBuilder
}

// RegisterMembership makes the external membership name (MembershipEtcd,
// MembershipConsul or MembershipK8s) available to Config.Membership. The
// file that builds a provider calls it from init, behind the provider's
// build tag. Another name, or a second registration of one, is a mistake
// in the build and panics.
func RegisterMembership(name string, build MembershipBuilder) {
	if _, ok := externalMemberships[name]; !ok || build == nil {
		panic(fmt.Sprintf("platform: RegisterMembership(%q): want a builder for one of %s", name, strings.Join(externalMembershipNames(), ", ")))
	}
	registered.Lock()
	defer registered.Unlock()
	if _, ok := registered.builders[name]; ok {
		panic(fmt.Sprintf("platform: RegisterMembership(%q): registered twice", name))
	}
	if registered.builders == nil {
		registered.builders = map[string]MembershipBuilder{}
	}
	registered.builders[name] = build
}

// MembershipBuilt reports whether this binary can run membership name:
// kv and automanaged always, an external one when its file was built in.
func MembershipBuilt(name string) bool {
	if name == MembershipKV || name == MembershipAutomanaged {
		return true
	}
	_, ok := membershipBuilder(name)
	return ok
}

// MembershipBuildTag is the build tag that builds the external membership
// name into a binary ("" for kv, automanaged and unknown names).
func MembershipBuildTag(name string) string {
	return externalMemberships[name].tag
}

// Memberships lists the memberships this binary can run: kv, automanaged,
// then the external ones built in, sorted.
func Memberships() []string {
	names := []string{MembershipKV, MembershipAutomanaged}
	for _, name := range externalMembershipNames() {
		if MembershipBuilt(name) {
			names = append(names, name)
		}
	}
	return names
}

func membershipBuilder(name string) (MembershipBuilder, bool) {
	registered.Lock()
	defer registered.Unlock()
	build, ok := registered.builders[name]
	return build, ok
}

func externalMembershipNames() []string {
	names := make([]string, 0, len(externalMemberships))
	for name := range externalMemberships {
		names = append(names, name)
	}
	slices.Sort(names)
	return names
}

// validateMembership checks Membership's name, and that this binary can
// run it: an external one without its build tag is refused at start with
// the tag to build with, rather than failing somewhere later.
func (c *Config) validateMembership() error {
	if c.Membership == MembershipKV || c.Membership == MembershipAutomanaged {
		return nil
	}
	ext, ok := externalMemberships[c.Membership]
	if !ok {
		names := append([]string{MembershipKV, MembershipAutomanaged}, externalMembershipNames()...)
		return fmt.Errorf("membership %q: want %s or %s", c.Membership, strings.Join(names[:len(names)-1], ", "), names[len(names)-1])
	}
	if !MembershipBuilt(c.Membership) {
		return fmt.Errorf("membership %s is not built into this binary: build with -tags %s", c.Membership, ext.tag)
	}
	if c.Membership == MembershipEtcd {
		if len(c.EtcdEndpoints) == 0 {
			return errors.New("membership etcd needs the etcd endpoints (--etcd-endpoints)")
		}
		if (c.EtcdCert == "") != (c.EtcdKey == "") {
			return errors.New("etcd TLS: the client certificate and key go together (--etcd-cert, --etcd-key)")
		}
	}
	return nil
}

// externalClusterConfig sets cc's provider to the registered builder of
// cfg.Membership, an external membership Validate accepted.
func externalClusterConfig(cc *cluster.Config, cfg Config) error {
	build, ok := membershipBuilder(cfg.Membership)
	if !ok {
		return fmt.Errorf("platform: membership %s is not built into this binary: build with -tags %s",
			cfg.Membership, MembershipBuildTag(cfg.Membership))
	}
	cc.Provider = externalMemberships[cfg.Membership].provider
	// The cluster package wraps a builder's error with the provider's
	// name ("cluster: start member: provider etcd: …").
	cc.NewExternalProvider = func() (protocluster.ClusterProvider, error) { return build(cfg) }
	return nil
}
