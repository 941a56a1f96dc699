package cluster

import (
	"crypto/tls"
	"fmt"

	"github.com/asynkron/protoactor-go/remote"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"

	"github.com/acme/mastertrust/internal/pki"
)

// TLSConfig is mutual TLS on every connection between the nodes of a
// cluster: protoactor's gRPC remote (members and clients alike: a member
// answers a client over a connection of its own to the client's remote)
// and the automanaged membership endpoints. Every node presents a
// certificate issued by the cluster's CA and accepts only peers that
// present one, so a process without such a certificate can neither join
// nor send a grain anything.
//
// A node's certificate must name the host the others reach it at (Config.Host
// or AdvertisedAddress's host, and the host of its automanaged endpoint in
// Peers): peers check it as a TLS client checks a server's name.
//
// Set the three files (PEM, as internal/pki writes them) or both
// *tls.Configs, not a mix. The zero value is plaintext: anything that
// reaches the node's ports can join and call any grain.
type TLSConfig struct {
	// CAFile is the cluster CA's certificate; CertFile and KeyFile this
	// node's certificate, issued by it, and its key.
	CAFile   string
	CertFile string
	KeyFile  string
	// Server and Client, instead of the files: the configuration this node
	// serves with (it must require and verify client certificates against
	// the cluster's CA) and dials with (it must trust the cluster's CA and
	// present a certificate). They are cloned, not modified.
	Server *tls.Config
	Client *tls.Config
}

// Enabled reports whether any field is set (Validate checks that all are).
func (t TLSConfig) Enabled() bool {
	return t.CAFile != "" || t.CertFile != "" || t.KeyFile != "" || t.Server != nil || t.Client != nil
}

// validate reports what makes t unusable: all or nothing.
func (t TLSConfig) validate() []error {
	if !t.Enabled() {
		return nil
	}
	var errs []error
	bad := func(format string, args ...any) {
		errs = append(errs, fmt.Errorf("cluster: config: TLS: "+format, args...))
	}
	files := t.CAFile != "" || t.CertFile != "" || t.KeyFile != ""
	configs := t.Server != nil || t.Client != nil
	switch {
	case files && configs:
		bad("set either CAFile, CertFile and KeyFile or Server and Client, not both")
	case files:
		if t.CAFile == "" || t.CertFile == "" || t.KeyFile == "" {
			bad("CAFile, CertFile and KeyFile go together: got CA %q, cert %q, key %q", t.CAFile, t.CertFile, t.KeyFile)
		}
	default:
		if t.Server == nil || t.Client == nil {
			bad("Server and Client go together")
			break
		}
		if t.Server.ClientAuth != tls.RequireAndVerifyClientCert || t.Server.ClientCAs == nil {
			bad("Server must require and verify client certificates (ClientAuth RequireAndVerifyClientCert, ClientCAs the cluster CA)")
		}
		if len(t.Server.Certificates) == 0 && t.Server.GetCertificate == nil && t.Server.GetConfigForClient == nil {
			bad("Server has no certificate")
		}
		if t.Client.RootCAs == nil {
			bad("Client must trust the cluster CA (RootCAs), not the system's")
		}
		if t.Client.InsecureSkipVerify {
			bad("Client must verify the peer (InsecureSkipVerify is set)")
		}
		if len(t.Client.Certificates) == 0 && t.Client.GetClientCertificate == nil {
			bad("Client has no certificate to present")
		}
	}
	return errs
}

// load returns the server and client configurations (nil, nil without
// TLS), read from the files or cloned from the given ones.
func (t TLSConfig) load() (server, client *tls.Config, err error) {
	switch {
	case !t.Enabled():
		return nil, nil, nil
	case t.Server != nil:
		return t.Server.Clone(), t.Client.Clone(), nil
	}
	server, err = pki.ServerConfig(t.CertFile, t.KeyFile, t.CAFile)
	if err != nil {
		return nil, nil, fmt.Errorf("cluster: TLS: %w", err)
	}
	client, err = pki.ClientConfig(t.CAFile, t.CertFile, t.KeyFile)
	if err != nil {
		return nil, nil, fmt.Errorf("cluster: TLS: %w", err)
	}
	return server, client, nil
}

// remoteTLSOptions are the remote's options for mutual TLS. protoactor's
// default DialOptions are one insecure.NewCredentials(); WithDialOptions
// replaces the whole list (remote/config-opts.go), so no plaintext option
// is left, and grpc.NewServer is given ServerOptions, empty by default.
func remoteTLSOptions(server, client *tls.Config) []remote.ConfigOption {
	return []remote.ConfigOption{
		remote.WithServerOptions(grpc.Creds(credentials.NewTLS(server))),
		remote.WithDialOptions(grpc.WithTransportCredentials(credentials.NewTLS(client))),
	}
}
