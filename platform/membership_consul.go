//go:build membership_consul

package platform

import (
	"fmt"

	protocluster "github.com/asynkron/protoactor-go/cluster"
	"github.com/asynkron/protoactor-go/cluster/clusterproviders/consul"
	"github.com/hashicorp/consul/api"
)

// The consul membership: protoactor's consul provider. Each member
// registers a service named after the cluster with a TTL check it passes
// every heartbeat, and every process watches the service's healthy
// instances. This file, and so the Consul client, is in the binary only
// when it is built with -tags membership_consul. Untested here at run time:
// no Consul agent runs in CI.

func init() { RegisterMembership(MembershipConsul, newConsulMembership) }

func newConsulMembership(cfg Config) (protocluster.ClusterProvider, error) {
	// api.DefaultConfig reads Consul's own environment (CONSUL_HTTP_ADDR,
	// CONSUL_HTTP_TOKEN, CONSUL_CACERT, …): the token and TLS stay off the
	// command line, and --consul-address only overrides the address.
	c := api.DefaultConfig()
	if cfg.ConsulAddress != "" {
		c.Address = cfg.ConsulAddress
	}
	heartbeat, ttl := cfg.membershipTimes()
	p, err := consul.NewWithConfig(c, consul.WithTTL(ttl), consul.WithRefreshTTL(heartbeat))
	if err != nil {
		return nil, fmt.Errorf("consul client for %s: %w", c.Address, err)
	}
	return p, nil
}
