//go:build membership_k8s

package platform

import (
	"fmt"

	protocluster "github.com/asynkron/protoactor-go/cluster"
	"github.com/asynkron/protoactor-go/cluster/clusterproviders/k8s"
)

// The k8s membership: protoactor's Kubernetes provider. Each member labels
// its own pod (cluster name, port, kinds) and every process watches the
// pods with the cluster's label in its namespace, reaching members at
// their pods' IPs. It runs only inside a pod: the in-cluster configuration,
// the pod's service account (which must get, patch, list and watch pods)
// and the pod's host name as its name. This file, and so the Kubernetes
// client, is in the binary only when it is built with -tags membership_k8s.
// Untested here at run time: no Kubernetes API runs in CI.

func init() { RegisterMembership(MembershipK8s, newK8sMembership) }

func newK8sMembership(Config) (protocluster.ClusterProvider, error) {
	p, err := k8s.New()
	if err != nil {
		return nil, fmt.Errorf("kubernetes in-cluster client (the k8s membership runs only in a pod): %w", err)
	}
	return p, nil
}
