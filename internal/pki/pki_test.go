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

// Two peers with PeerConfig, one accepting and one dialing, each verify
// the other; a peer from another CA is refused by either side, and a
// peer's TLS without a CA is refused at once.
func TestPeerConfig(t *testing.T) {
	dir := t.TempDir()
	ca, cert, key := issue(t, dir, "a")
	otherCA, otherCert, otherKey := issue(t, dir, "b")
	_, err := pki.PeerConfig(cert, key, "")
	require.Error(t, err, "a peer without a CA")
	peer := func(cert, key, ca string) *tls.Config {
		cfg, err := pki.PeerConfig(cert, key, ca)
		require.NoError(t, err)
		return cfg
	}
	handshake := func(accept, dial *tls.Config) error {
		ln, err := tls.Listen("tcp", "127.0.0.1:0", accept)
		require.NoError(t, err)
		defer ln.Close()
		done := make(chan error, 1)
		go func() {
			c, err := ln.Accept()
			if err == nil {
				err = c.(*tls.Conn).Handshake()
				c.Close()
			}
			done <- err
		}()
		dial = dial.Clone()
		dial.ServerName = "127.0.0.1"
		c, err := tls.Dial("tcp", ln.Addr().String(), dial)
		if err == nil {
			_, err = c.Read(make([]byte, 1)) // the acceptor's verdict on our certificate
			if err == io.EOF {
				err = nil
			}
			c.Close()
		}
		if serr := <-done; serr != nil {
			return serr
		}
		return err
	}
	assert.NoError(t, handshake(peer(cert, key, ca), peer(cert, key, ca)), "two peers of one CA")
	assert.Error(t, handshake(peer(cert, key, ca), peer(otherCert, otherKey, otherCA)), "dialed by another CA's peer")
	assert.Error(t, handshake(peer(otherCert, otherKey, otherCA), peer(cert, key, ca)), "dialing another CA's peer")
}
