package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"path/filepath"

	"github.com/acme/mastertrust/platform"
)

// clusterTLSFlags binds the cluster's mutual TLS: a node's and a gateway's
// certificate from the cluster's CA (docs/security.md, "The cluster").
func clusterTLSFlags(f *flags, cfg *platform.Config) {
	f.stringVar(&cfg.ClusterCA, "cluster-ca", "", "the cluster CA's certificate (PEM): peers must present a certificate it issued")
	f.stringVar(&cfg.ClusterCert, "cluster-cert", "", "this process's certificate from the cluster CA, naming --cluster-host (mastertrust cert issues one)")
	f.stringVar(&cfg.ClusterKey, "cluster-key", "", "the key of --cluster-cert")
	f.boolVar(&cfg.ClusterPlaintext, "cluster-plaintext", false, "run the cluster's connections without TLS: whatever reaches the ports can join and call any pot; only on a network nothing else reaches")
}

// gatewayTLSFlags binds the gateway's own HTTPS (docs/security.md, "The
// gateway's TLS").
func gatewayTLSFlags(f *flags, cfg *platform.Config) {
	f.stringVar(&cfg.TLSCert, "tls-cert", "", "serve the API over HTTPS with this certificate (PEM; with --tls-key); empty: HTTP")
	f.stringVar(&cfg.TLSKey, "tls-key", "", "the key of --tls-cert")
}

// runCert issues a certificate from the CA in --dir, making the CA first if
// the directory has none.
func runCert(_ context.Context, args []string, stdout, stderr io.Writer) error {
	f := newFlags("cert", stderr)
	dir := platform.ClusterSecretsDir(platform.DefaultDataDir)
	f.stringVar(&dir, "dir", dir, fmt.Sprintf("the CA's directory (ca.crt, ca.key; made on first use): the cluster's, or the gateway's HTTPS one (%s)",
		platform.GatewaySecretsDir(platform.DefaultDataDir)))
	var name string
	var hosts []string
	f.stringVar(&name, "name", "", "the certificate's name: its files are <dir>/<name>.crt and .key (required)")
	f.listVar(&hosts, "hosts", "127.0.0.1,localhost", "comma-separated DNS names and IP addresses the certificate is valid for: the host peers or clients reach the process at")
	if err := f.parse(args); err != nil {
		return err
	}
	if name == "" {
		return errors.New("--name is required")
	}
	files, err := platform.IssueCertificate(dir, name, hosts)
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "CA:          %s (key %s)\n", files.CA, filepath.Join(filepath.Dir(files.CA), "ca.key"))
	fmt.Fprintf(stdout, "certificate: %s\nkey:         %s\n", files.Cert, files.Key)
	fmt.Fprintf(stdout, "cluster: --cluster-ca %s --cluster-cert %s --cluster-key %s\n", files.CA, files.Cert, files.Key)
	fmt.Fprintf(stdout, "gateway HTTPS: --tls-cert %s --tls-key %s (clients trust %s)\n", files.Cert, files.Key, files.CA)
	return nil
}
