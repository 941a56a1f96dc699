//go:build membership_etcd

package platform

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"time"

	protocluster "github.com/asynkron/protoactor-go/cluster"
	"github.com/asynkron/protoactor-go/cluster/clusterproviders/etcd"
	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"

	"github.com/acme/mastertrust/internal/pki"
)

// The etcd membership: protoactor's etcd provider. Each member puts its
// record under etcdBaseKey with a lease it keeps alive, and every process
// watches the prefix. This file, and so the etcd client, is in the binary
// only when it is built with -tags membership_etcd.

func init() { RegisterMembership(MembershipEtcd, newEtcdMembership) }

const (
	// etcdBaseKey prefixes the members' keys: <base>/<cluster name>/…. A
	// process's etcd user needs read and write on it.
	etcdBaseKey = "/mastertrust"
	// etcdDialTimeout bounds the connection to etcd, and the probe that a
	// start makes through it.
	etcdDialTimeout = 5 * time.Second
)

// etcdMembership is protoactor's provider with the client this package
// made for it: protoactor's Shutdown leaves its client open, so the
// wrapper closes it after.
type etcdMembership struct {
	*etcd.Provider
	client *clientv3.Client
}

func (m etcdMembership) Shutdown(graceful bool) error {
	return errors.Join(m.Provider.Shutdown(graceful), m.client.Close())
}

func newEtcdMembership(cfg Config) (protocluster.ClusterProvider, error) {
	tlsConfig, err := etcdTLS(cfg)
	if err != nil {
		return nil, err
	}
	// The client's own log (zap, to stderr) is silenced: it warns of every
	// retried call, hundreds when a process stops, and what matters reaches
	// the process's log anyway, through protoactor's provider (on the
	// cluster's logger) or as an error from here.
	client, err := clientv3.New(clientv3.Config{Endpoints: cfg.EtcdEndpoints, DialTimeout: etcdDialTimeout, TLS: tlsConfig,
		Logger: zap.NewNop()})
	if err != nil {
		return nil, fmt.Errorf("etcd client for %v: %w", cfg.EtcdEndpoints, err)
	}
	// protoactor's provider puts and reads without a deadline: an etcd that
	// cannot be reached would hang the start. One bounded read first makes
	// it a failed start that says why.
	ctx, cancel := context.WithTimeout(context.Background(), etcdDialTimeout)
	_, err = client.Get(ctx, etcdBaseKey+"/", clientv3.WithPrefix(), clientv3.WithCountOnly())
	cancel()
	if err != nil {
		client.Close()
		return nil, fmt.Errorf("reach etcd at %v: %w", cfg.EtcdEndpoints, err)
	}
	heartbeat, ttl := cfg.membershipTimes()
	p, err := etcd.NewWithConfig(etcdBaseKey, clientv3.Config{}, etcd.WithEtcdClient(client),
		etcd.WithKeepAliveTTL(ttl), etcd.WithRetryInterval(heartbeat))
	if err != nil {
		client.Close()
		return nil, fmt.Errorf("etcd provider: %w", err)
	}
	return etcdMembership{Provider: p, client: client}, nil
}

// etcdTLS is the TLS configuration of the etcd client: nil (plaintext)
// without EtcdCA or EtcdCert; with EtcdCA, etcd's CA and, if given, this
// process's certificate (pki.ClientConfig); with EtcdCert alone, that
// certificate, and etcd's verified against the system's roots.
func etcdTLS(cfg Config) (*tls.Config, error) {
	switch {
	case cfg.EtcdCA != "":
		c, err := pki.ClientConfig(cfg.EtcdCA, cfg.EtcdCert, cfg.EtcdKey)
		if err != nil {
			return nil, fmt.Errorf("etcd TLS: %w", err)
		}
		return c, nil
	case cfg.EtcdCert != "":
		cert, err := tls.LoadX509KeyPair(cfg.EtcdCert, cfg.EtcdKey)
		if err != nil {
			return nil, fmt.Errorf("etcd TLS: client certificate: %w", err)
		}
		return &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}, nil
	}
	return nil, nil
}
