package platform

import (
	"testing"

	protocluster "github.com/asynkron/protoactor-go/cluster"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// A binary built without an external membership's tag refuses it at
// start, node and gateway alike, with the tag to build with: an error, not
// a panic, and before anything is started.
func TestExternalMembershipNotBuiltIn(t *testing.T) {
	for _, name := range []string{MembershipEtcd, MembershipConsul, MembershipK8s} {
		t.Run(name, func(t *testing.T) {
			if MembershipBuilt(name) {
				t.Skipf("built with -tags %s", MembershipBuildTag(name))
			}
			want := "membership " + name + " is not built into this binary: build with -tags membership_" + name
			cfg := Config{Membership: name, DataDir: t.TempDir(), ClusterPlaintext: true}
			cfg.EnsureDefaults()
			err := cfg.Validate()
			require.Error(t, err)
			assert.ErrorContains(t, err, want)
			assert.NotContains(t, Memberships(), name)

			_, err = StartMember(cfg)
			assert.ErrorContains(t, err, want, "StartMember")
			_, err = StartGateway(cfg)
			assert.ErrorContains(t, err, want, "StartGateway")
		})
	}
}

// RegisterMembership takes only the external memberships' names, once
// each: anything else is a mistake in the build.
func TestRegisterMembershipRefusesOtherNames(t *testing.T) {
	build := func(Config) (protocluster.ClusterProvider, error) { return nil, nil }
	assert.Panics(t, func() { RegisterMembership("zookeeper", build) })
	assert.Panics(t, func() { RegisterMembership(MembershipKV, build) })
	assert.Panics(t, func() { RegisterMembership(MembershipEtcd, nil) })
}
