// Package cluster starts mastertrust's cluster nodes on protoactor-go's
// virtual actors (grains) and keeps that alpha library behind a small API.
//
// A node is a member, which hosts grain kinds (Start), or a client, which
// only calls grains (StartClient; gateways). Members find each other through
// a Provider: the in-process registry (tests, one-process dev mode),
// automanaged (processes on one machine), or consul/etcd/k8s supplied from
// outside so that this package does not import their clients. Grain
// identities are placed on members by rendezvous hashing (protoactor's
// disthash identity lookup, in a copy that fixes its cost per passivation;
// see placement.go).
//
// Grain clients are generated from proto services by proto/gen.sh; the kind
// name is the service name. A member is given kinds with their idle timeout,
// after which an activation passivates; New builds the protoactor kind, with
// the caller's own props (as actors does: proto/pb has the generated clients
// only) or a generated constructor (the test grain's NewCounterKind):
//
//	node, err := cluster.Start(cluster.Config{
//		Provider:  cluster.ProviderInProcess,
//		InProcess: registry,
//		Kinds: []cluster.Kind{{
//			Name: "Prices",
//			New: func(idleTimeout time.Duration) *protocluster.Kind {
//				return protocluster.NewKind("Prices", pricesProps(idleTimeout))
//			},
//		}},
//	})
//
// and any node calls them through the generated client, wrapped in Call for
// the node's timeout, retries and typed errors (ErrTimeout, ErrUnavailable):
//
//	resp, err := cluster.Call(ctx, node, func(opts ...protocluster.GrainCallOption) (*pb.PricesResponse, error) {
//		return pb.GetPricesGrainClient(node.Cluster(), date).Handle(req, opts...)
//	})
//
// Request is the same call without protoactor's cluster Request: the
// hot path of the pots (actors.PotClient), a fifth of a pot command's CPU
// cheaper; its grain copies a call id into each reply.
//
// Config.TLS puts every connection between the nodes (the gRPC remote and
// the automanaged membership endpoints) under mutual TLS with the cluster's
// CA: a process without a certificate from it can neither join nor call a
// grain. ProviderAutomanaged is this package's own provider (automanaged.go),
// protoactor's cannot poll over TLS.
//
// Stop leaves gracefully (SIGTERM); Kill simulates a crash for tests.
// Members lists the members with their active grains by kind.
//
// docs/protoactor.md lists the pitfalls of this protoactor build and how
// this package works around them.
package cluster
