package natsauth

import (
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nkeys"

	"github.com/acme/mastertrust/internal/pki"
)

// A secrets directory (Ensure makes one; `mastertrust secrets init` and dev
// call it) holds:
//
//	ca.crt, ca.key                 the certificate authority (ca.key only where certificates are issued)
//	nats-server.crt, .key          the NATS server's TLS certificate, issued by the CA
//	nats-users.json                the server's users: each role's public nkey (no secret in it)
//	<role>.nk                      each role's nkey seed: the role's credential (the nats CLI's --nkey)
//	<role>.crt, <role>.key         each role's TLS client certificate (the nats CLI's --tlscert, --tlskey)
//
// Clients connect over mutual TLS (each verifies the other's certificate
// against ca.crt) and authenticate with an nkey (the server sends a nonce,
// the client signs it with its seed; the server holds public keys only, so
// its users file gives nothing away): a client needs both its certificate
// and its seed. A deployment copies to each machine only what it needs:
// the NATS server nats-users.json, ca.crt and its certificate and key; a
// node ca.crt, node.nk, node.crt and node.key; the custodian its own.
const (
	CAFile         = "ca.crt"
	CAKeyFile      = "ca.key"
	ServerCertFile = "nats-server.crt"
	ServerKeyFile  = "nats-server.key"
	UsersFile      = "nats-users.json"
	seedSuffix     = ".nk"
	certSuffix     = ".crt"
	keySuffix      = ".key"

	// caValidity and serverCertValidity: a CA for ten years, the server's
	// certificate for two, renewed by Ensure once it has less than
	// renewBefore left.
	caValidity         = 10 * 365 * 24 * time.Hour
	serverCertValidity = 2 * 365 * 24 * time.Hour
	renewBefore        = 30 * 24 * time.Hour
)

// SeedFile is role's nkey seed file in dir.
func SeedFile(dir string, role Role) string { return filepath.Join(dir, string(role)+seedSuffix) }

// CertFile and KeyFile are role's TLS client certificate and key in dir.
func CertFile(dir string, role Role) string { return filepath.Join(dir, string(role)+certSuffix) }
func KeyFile(dir string, role Role) string  { return filepath.Join(dir, string(role)+keySuffix) }

// defaultHosts are always in the server's certificate: a server on the same
// machine.
var defaultHosts = []string{"127.0.0.1", "localhost", "::1"}

// usersDoc is nats-users.json.
type usersDoc struct {
	Users []UserEntry `json:"users"`
}

// UserEntry is one user of nats-users.json: a role and its public nkey.
type UserEntry struct {
	Role Role   `json:"role"`
	Nkey string `json:"nkey"`
}

// Ensure makes what dir lacks of a secrets directory and keeps the rest:
// the CA, the server's certificate for hosts (and loopback), a seed per role,
// a TLS client certificate per role, and the users file listing every
// seed's public key. It returns the files it wrote. Rotating a credential is
// deleting its file and calling Ensure again (docs/security.md); a
// certificate is also reissued when it expires within 30 days, or was not
// issued by the CA, and the server's when it lacks one of hosts.
func Ensure(dir string, hosts []string) (written []string, err error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("natsauth: secrets dir: %w", err)
	}
	caCert, caKey := filepath.Join(dir, CAFile), filepath.Join(dir, CAKeyFile)
	var ca *pki.Authority
	newCA := false
	if exists(caCert) || exists(caKey) {
		if ca, err = pki.LoadAuthority(caCert, caKey); err != nil {
			return nil, fmt.Errorf("natsauth: %w", err)
		}
	} else {
		if ca, err = pki.NewAuthority("mastertrust NATS CA", caValidity); err != nil {
			return nil, fmt.Errorf("natsauth: %w", err)
		}
		if err := ca.Write(caCert, caKey); err != nil {
			return nil, fmt.Errorf("natsauth: %w", err)
		}
		written, newCA = append(written, caCert, caKey), true
	}
	hosts = append(slices.Clone(defaultHosts), hosts...)
	srvCert, srvKey := filepath.Join(dir, ServerCertFile), filepath.Join(dir, ServerKeyFile)
	if newCA || !certCovers(srvCert, ca, hosts) || !exists(srvKey) {
		leaf, err := ca.Issue("nats", hosts, serverCertValidity)
		if err != nil {
			return nil, fmt.Errorf("natsauth: %w", err)
		}
		if err := leaf.Write(srvCert, srvKey); err != nil {
			return nil, fmt.Errorf("natsauth: %w", err)
		}
		written = append(written, srvCert, srvKey)
	}
	var doc usersDoc
	for _, role := range Roles() {
		cert, key := CertFile(dir, role), KeyFile(dir, role)
		if newCA || !certCovers(cert, ca, nil) || !exists(key) {
			leaf, err := ca.Issue(string(role), nil, serverCertValidity)
			if err != nil {
				return nil, fmt.Errorf("natsauth: %w", err)
			}
			if err := leaf.Write(cert, key); err != nil {
				return nil, fmt.Errorf("natsauth: %w", err)
			}
			written = append(written, cert, key)
		}
		path := SeedFile(dir, role)
		kp, err := readSeed(path)
		if errors.Is(err, os.ErrNotExist) {
			if kp, err = nkeys.CreateUser(); err != nil {
				return nil, fmt.Errorf("natsauth: nkey of %s: %w", role, err)
			}
			seed, err := kp.Seed()
			if err != nil {
				return nil, fmt.Errorf("natsauth: nkey of %s: %w", role, err)
			}
			if err := os.WriteFile(path, append(seed, '\n'), 0o600); err != nil {
				return nil, fmt.Errorf("natsauth: %w", err)
			}
			written = append(written, path)
		} else if err != nil {
			return nil, err
		}
		pub, err := kp.PublicKey()
		if err != nil {
			return nil, fmt.Errorf("natsauth: nkey of %s: %w", role, err)
		}
		doc.Users = append(doc.Users, UserEntry{Role: role, Nkey: pub})
	}
	usersPath := filepath.Join(dir, UsersFile)
	b, err := json.MarshalIndent(doc, "", "  ")
	if err != nil {
		return nil, err
	}
	b = append(b, '\n')
	if have, err := os.ReadFile(usersPath); err != nil || string(have) != string(b) {
		if err := os.WriteFile(usersPath, b, 0o600); err != nil {
			return nil, fmt.Errorf("natsauth: %w", err)
		}
		written = append(written, usersPath)
	}
	return written, nil
}

func exists(path string) bool {
	_, err := os.Stat(path)
	return err == nil
}

// certCovers reports whether path holds a certificate ca issued for every
// one of hosts that is valid for more than renewBefore.
func certCovers(path string, ca *pki.Authority, hosts []string) bool {
	b, err := os.ReadFile(path)
	if err != nil {
		return false
	}
	blk, _ := pem.Decode(b)
	if blk == nil {
		return false
	}
	cert, err := x509.ParseCertificate(blk.Bytes)
	if err != nil || cert.CheckSignatureFrom(ca.Cert) != nil || time.Until(cert.NotAfter) < renewBefore {
		return false
	}
	for _, h := range hosts {
		if cert.VerifyHostname(h) != nil {
			return false
		}
	}
	return true
}

// readSeed reads an nkey seed file; the error never holds the seed.
func readSeed(path string) (nkeys.KeyPair, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	kp, err := nkeys.FromSeed([]byte(strings.TrimSpace(string(b))))
	if err != nil {
		return nil, fmt.Errorf("natsauth: %s holds no user nkey seed", path)
	}
	if pub, err := kp.PublicKey(); err != nil || !strings.HasPrefix(pub, "U") {
		return nil, fmt.Errorf("natsauth: %s holds no user nkey seed", path)
	}
	return kp, nil
}

// ServerAuth is what a NATS server needs from dir: its users (each role's
// public key with the role's permissions), its clients' TLS configuration,
// and its routes' (to the other servers of a cluster).
type ServerAuth struct {
	Users []*server.NkeyUser
	TLS   *tls.Config
	// RouteTLS is the routes' mutual TLS: the server's certificate,
	// presented when it accepts a route and when it dials one, and the
	// CA that verifies the other server's either way.
	RouteTLS *tls.Config
	// RouteSubject is the subject of the server's certificate, e.g.
	// "CN=nats,O=mastertrust" (RFC 2253 order): a route's certificate must
	// have it, as the CA also issues the roles' certificates and a role's
	// must not open a route (natsembed.ClusterOptions.PeerSubject).
	RouteSubject string
}

// LoadServer reads the server's side of dir: nats-users.json, the server's
// certificate and key, and the CA its clients' certificates must come from.
func LoadServer(dir string) (ServerAuth, error) {
	b, err := os.ReadFile(filepath.Join(dir, UsersFile))
	if err != nil {
		return ServerAuth{}, fmt.Errorf("natsauth: users: %w", err)
	}
	var doc usersDoc
	if err := json.Unmarshal(b, &doc); err != nil {
		return ServerAuth{}, fmt.Errorf("natsauth: %s: %w", UsersFile, err)
	}
	users, err := Users(doc.Users)
	if err != nil {
		return ServerAuth{}, err
	}
	cfg, err := pki.ServerConfig(filepath.Join(dir, ServerCertFile), filepath.Join(dir, ServerKeyFile), filepath.Join(dir, CAFile))
	if err != nil {
		return ServerAuth{}, fmt.Errorf("natsauth: %w", err)
	}
	routeCfg, err := pki.PeerConfig(filepath.Join(dir, ServerCertFile), filepath.Join(dir, ServerKeyFile), filepath.Join(dir, CAFile))
	if err != nil {
		return ServerAuth{}, fmt.Errorf("natsauth: %w", err)
	}
	leaf, err := x509.ParseCertificate(routeCfg.Certificates[0].Certificate[0])
	if err != nil {
		return ServerAuth{}, fmt.Errorf("natsauth: %s: %w", ServerCertFile, err)
	}
	return ServerAuth{Users: users, TLS: cfg, RouteTLS: routeCfg, RouteSubject: leaf.Subject.ToRDNSequence().String()}, nil
}

// Users are the server's users for entries: each public key with its
// role's permissions.
func Users(entries []UserEntry) ([]*server.NkeyUser, error) {
	var users []*server.NkeyUser
	for _, e := range entries {
		perms, err := Permissions(e.Role)
		if err != nil {
			return nil, err
		}
		if !nkeys.IsValidPublicUserKey(e.Nkey) {
			return nil, fmt.Errorf("natsauth: role %s: %q is not a user's public nkey", e.Role, e.Nkey)
		}
		users = append(users, &server.NkeyUser{Nkey: e.Nkey, Permissions: perms})
	}
	if len(users) == 0 {
		return nil, errors.New("natsauth: no users")
	}
	return users, nil
}

// UserFor is the server user of a public key with role's permissions
// (tests, and servers that list their users elsewhere).
func UserFor(role Role, publicKey string) (*server.NkeyUser, error) {
	users, err := Users([]UserEntry{{Role: role, Nkey: publicKey}})
	if err != nil {
		return nil, err
	}
	return users[0], nil
}

// Client is a role's credential: its nkey seed file, its TLS client
// certificate and key, and the CA to verify the server with.
type Client struct {
	Role              Role
	SeedFile          string
	CertFile, KeyFile string
	CAFile            string
}

// ClientFromDir is role's credential in a secrets directory.
func ClientFromDir(dir string, role Role) Client {
	return Client{Role: role, SeedFile: SeedFile(dir, role), CertFile: CertFile(dir, role), KeyFile: KeyFile(dir, role),
		CAFile: filepath.Join(dir, CAFile)}
}

// Options are the connect options of the credential: the nkey (signing the
// server's nonce with the seed), TLS verified against the CA (when CAFile
// is set) presenting the client certificate (when CertFile is set), and
// the role's inbox prefix.
func (c Client) Options() ([]nats.Option, error) {
	var opts []nats.Option
	if c.SeedFile != "" {
		kp, err := readSeed(c.SeedFile)
		if err != nil {
			return nil, err
		}
		pub, err := kp.PublicKey()
		if err != nil {
			return nil, fmt.Errorf("natsauth: %w", err)
		}
		opts = append(opts, nats.Nkey(pub, kp.Sign))
	}
	if c.CAFile != "" {
		cfg, err := pki.ClientConfig(c.CAFile, c.CertFile, c.KeyFile)
		if err != nil {
			return nil, fmt.Errorf("natsauth: %w", err)
		}
		opts = append(opts, nats.Secure(cfg))
	}
	if c.Role != "" {
		opts = append(opts, nats.CustomInboxPrefix(InboxPrefix(c.Role)))
	}
	return opts, nil
}
