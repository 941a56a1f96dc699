package cluster

import (
	"fmt"
	"net"
	"net/http"
	"strconv"

	protocluster "github.com/asynkron/protoactor-go/cluster"
	"github.com/asynkron/protoactor-go/cluster/clusterproviders/automanaged"
	"github.com/labstack/echo/v4"
)

// newAutomanagedProvider builds protoactor's automanaged provider serving
// its health endpoint on cfg.Host (or the given listener).
//
// protoactor's own constructor listens on 0.0.0.0 whatever the host, and
// only on a fixed port. Its testing constructor takes a ready echo server
// instead; echo serves on a listener set beforehand, so we bind where we
// want (loopback in tests, port 0 allowed) and serve the same JSON
// (automanaged.NodeModel) as protoactor's handler.
//
// It returns the provider, the health endpoint's address and its listener
// (to close if the start fails before the provider serves it). A client
// only polls its peers; it serves no endpoint.
func newAutomanagedProvider(cfg *Config, node *Node, client bool) (protocluster.ClusterProvider, string, net.Listener, error) {
	a := cfg.Automanaged
	if client {
		// Shutdown closes the echo server, so the provider needs one.
		e := echo.New()
		e.HideBanner = true
		return automanaged.NewWithTesting(a.RefreshInterval, 0, e, a.Peers...), "", nil, nil
	}
	lis := a.Listener
	if lis == nil {
		var err error
		lis, err = net.Listen("tcp", net.JoinHostPort(cfg.Host, strconv.Itoa(a.Port)))
		if err != nil {
			return nil, "", nil, fmt.Errorf("cluster: automanaged: listen: %w", err)
		}
	}
	_, portText, err := net.SplitHostPort(lis.Addr().String())
	if err != nil {
		return nil, "", nil, fmt.Errorf("cluster: automanaged: listener address %q: %w", lis.Addr(), err)
	}
	port, err := strconv.Atoi(portText)
	if err != nil {
		return nil, "", nil, fmt.Errorf("cluster: automanaged: listener port %q: %w", portText, err)
	}

	e := echo.New()
	e.HideBanner = true
	e.HidePort = true
	e.Listener = lis
	e.GET("/_health", func(ec echo.Context) error {
		// Served only after the provider started, i.e. after the remote
		// started and the address is known.
		c := node.cluster
		host, memberPort, err := c.ActorSystem.GetHostPort()
		if err != nil {
			return ec.NoContent(http.StatusServiceUnavailable)
		}
		return ec.JSON(http.StatusOK, automanaged.NewNode(cfg.ClusterName, c.ActorSystem.ID, host, memberPort, port, c.GetClusterKinds()))
	})
	p := automanaged.NewWithTesting(a.RefreshInterval, port, e, a.Peers...)
	return p, lis.Addr().String(), lis, nil
}
