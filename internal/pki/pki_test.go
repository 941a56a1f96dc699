package pki_test

import (
	"crypto/tls"
	"io"
	"net"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/acme/mastertrust/internal/pki"
)

// issue makes a CA in dir/name and a leaf it signs for 127.0.0.1.
func issue(t *testing.T, dir, name string) (caFile, certFile, keyFile string) {
	t.Helper()
	ca, err := pki.NewAuthority(name+" CA", time.Hour)
	require.NoError(t, err)
	caFile, caKey := filepath.Join(dir, name, "ca.pem"), filepath.Join(dir, name, "ca-key.pem")
	require.NoError(t, ca.Write(caFile, caKey))
	loaded, err := pki.LoadAuthority(caFile, caKey)
	require.NoError(t, err)
	leaf, err := loaded.Issue(name+" node", []string{"127.0.0.1", "localhost"}, time.Hour)
	require.NoError(t, err)
	certFile, keyFile = filepath.Join(dir, name, "node.pem"), filepath.Join(dir, name, "node-key.pem")
	require.NoError(t, leaf.Write(certFile, keyFile))
	return caFile, certFile, keyFile
}

// A server requiring client certificates from its CA accepts a client with
// one and refuses a client whose certificate another CA signed.
func TestMutualTLS(t *testing.T) {
	dir := t.TempDir()
	caFile, certFile, keyFile := issue(t, dir, "cluster")
	otherCA, otherCert, otherKey := issue(t, dir, "intruder")

	serverCfg, err := pki.ServerConfig(certFile, keyFile, caFile)
	require.NoError(t, err)
	ln, err := tls.Listen("tcp", "127.0.0.1:0", serverCfg)
	require.NoError(t, err)
	defer ln.Close()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				_, _ = c.Write([]byte("ok"))
			}()
		}
	}()
	dial := func(cfg *tls.Config) error {
		c, err := tls.DialWithDialer(&net.Dialer{Timeout: 5 * time.Second}, "tcp", ln.Addr().String(), cfg)
		if err != nil {
			return err
		}
		defer c.Close()
		_, err = io.ReadAll(c)
		return err
	}

	member, err := pki.ClientConfig(caFile, certFile, keyFile)
	require.NoError(t, err)
	assert.NoError(t, dial(member), "a client with the cluster CA's certificate")

	noCert, err := pki.ClientConfig(caFile, "", "")
	require.NoError(t, err)
	assert.Error(t, dial(noCert), "a client without a certificate")

	intruder, err := pki.ClientConfig(caFile, otherCert, otherKey)
	require.NoError(t, err)
	assert.Error(t, dial(intruder), "a client whose certificate another CA signed")

	trustsOther, err := pki.ClientConfig(otherCA, otherCert, otherKey)
	require.NoError(t, err)
	assert.Error(t, dial(trustsOther), "a client that does not trust the server's CA")
}

func TestLoadAuthorityRefusesALeaf(t *testing.T) {
	_, certFile, keyFile := issue(t, t.TempDir(), "cluster")
	_, err := pki.LoadAuthority(certFile, keyFile)
	assert.ErrorContains(t, err, "not a CA certificate")
}
