package platform

import (
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"time"

	"github.com/acme/mastertrust/cluster"
	"github.com/acme/mastertrust/internal/pki"
)

// TLS of the cluster's connections and of the gateway's HTTP. The cluster's
// certificates live under DataDir/secrets/cluster (ClusterSecretsDir), the
// gateway's under DataDir/secrets/gateway, each directory with its own CA.

// Certificate lifetimes: a CA made by IssueCertificate, and the leaves it
// issues (dev reissues its own at every start).
const (
	CAValidity   = 10 * 365 * 24 * time.Hour
	LeafValidity = 365 * 24 * time.Hour
)

// ClusterSecretsDir and GatewaySecretsDir are where dev and the cert
// command keep the cluster's and the gateway's CA and certificates.
func ClusterSecretsDir(dataDir string) string { return filepath.Join(dataDir, "secrets", "cluster") }
func GatewaySecretsDir(dataDir string) string { return filepath.Join(dataDir, "secrets", "gateway") }

// CertFiles are the files of a certificate issued by IssueCertificate.
type CertFiles struct {
	CA, Cert, Key string
}

// IssueCertificate issues a certificate for name (a TLS server for hosts,
// and a client) from the CA in dir, making the CA there first if it has
// none, and writes it as dir/name.crt and dir/name.key (the keys readable
// by their owner only). An existing certificate of that name is replaced.
func IssueCertificate(dir, name string, hosts []string) (CertFiles, error) {
	f := CertFiles{CA: filepath.Join(dir, "ca.crt"), Cert: filepath.Join(dir, name+".crt"), Key: filepath.Join(dir, name+".key")}
	if name == "" || name == "ca" || filepath.Base(name) != name {
		return f, fmt.Errorf("platform: certificate name %q: want a plain file name other than ca", name)
	}
	caKey := filepath.Join(dir, "ca.key")
	ca, err := pki.LoadAuthority(f.CA, caKey)
	if errors.Is(err, os.ErrNotExist) {
		if ca, err = pki.NewAuthority("mastertrust "+filepath.Base(dir)+" CA", CAValidity); err == nil {
			err = ca.Write(f.CA, caKey)
		}
	}
	if err != nil {
		return f, fmt.Errorf("platform: CA in %s: %w", dir, err)
	}
	leaf, err := ca.Issue(name, hosts, LeafValidity)
	if err != nil {
		return f, fmt.Errorf("platform: issue %s: %w", name, err)
	}
	if err := leaf.Write(f.Cert, f.Key); err != nil {
		return f, fmt.Errorf("platform: write %s: %w", name, err)
	}
	return f, nil
}

// devClusterTLS is dev's cluster TLS: its node's gRPC remote listens on
// loopback, so dev gives it a throwaway CA of its own in the data dir
// (made on first start) and a certificate reissued at every start.
func devClusterTLS(cfg Config) (cluster.TLSConfig, error) {
	hosts := []string{"127.0.0.1", "localhost"}
	if cfg.ClusterHost != "127.0.0.1" && cfg.ClusterHost != "localhost" {
		hosts = append(hosts, cfg.ClusterHost)
	}
	f, err := IssueCertificate(ClusterSecretsDir(cfg.DataDir), "dev", hosts)
	if err != nil {
		return cluster.TLSConfig{}, err
	}
	return cluster.TLSConfig{CAFile: f.CA, CertFile: f.Cert, KeyFile: f.Key}, nil
}

// validateTLS checks that the TLS files come in their sets.
func (c *Config) validateTLS() []error {
	var errs []error
	set := 0
	for _, f := range []string{c.ClusterCA, c.ClusterCert, c.ClusterKey} {
		if f != "" {
			set++
		}
	}
	if set != 0 && set != 3 {
		errs = append(errs, errors.New("cluster TLS: the CA, certificate and key go together (--cluster-ca, --cluster-cert, --cluster-key)"))
	}
	if set != 0 && c.ClusterPlaintext {
		errs = append(errs, errors.New("cluster TLS: certificates given and plaintext asked for"))
	}
	if (c.TLSCert == "") != (c.TLSKey == "") {
		errs = append(errs, errors.New("gateway TLS: the certificate and key go together (--tls-cert, --tls-key)"))
	}
	return errs
}

// clusterTLS is a node's or gateway's cluster TLS: the configured files,
// or plaintext when asked for explicitly.
func (c *Config) clusterTLS() (cluster.TLSConfig, error) {
	if c.ClusterCA == "" && !c.ClusterPlaintext {
		return cluster.TLSConfig{}, errors.New("platform: the cluster needs TLS: give --cluster-ca, --cluster-cert and --cluster-key " +
			"(mastertrust cert issues them), or --cluster-plaintext on a network nothing else reaches")
	}
	return cluster.TLSConfig{CAFile: c.ClusterCA, CertFile: c.ClusterCert, KeyFile: c.ClusterKey}, nil
}

// listenHTTP listens on addr for h: HTTPS with certFile and keyFile when
// given, else HTTP. It returns the base URL and the server, and serve,
// which serves until the server stops.
func listenHTTP(addr string, h http.Handler, certFile, keyFile string) (url string, srv *http.Server, serve func() error, err error) {
	srv = newHTTPServer(h)
	scheme := "http"
	if certFile != "" {
		if srv.TLSConfig, err = pki.ServerConfig(certFile, keyFile, ""); err != nil {
			return "", nil, nil, fmt.Errorf("platform: gateway TLS: %w", err)
		}
		scheme = "https"
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return "", nil, nil, fmt.Errorf("platform: listen on %s: %w", addr, err)
	}
	serve = func() error { return srv.Serve(ln) }
	if srv.TLSConfig != nil {
		// ServeTLS with the certificate already in TLSConfig; it also
		// offers HTTP/2.
		serve = func() error { return srv.ServeTLS(ln, "", "") }
	}
	return scheme + "://" + ln.Addr().String(), srv, serve, nil
}
