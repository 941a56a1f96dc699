package gateway

import (
	"bytes"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"
)

// Bearer tokens: "v1.<payload>.<signature>", where payload is the
// base64url (no padding) of the JSON claims and signature the base64url of
// HMAC-SHA256(secret, "v1." + payload). They are checked with the shared
// secret alone, so every gateway can check every token and nothing is
// stored. A token cannot be revoked before it expires: keep lifetimes short,
// or change the secret (which revokes every token).

// Role is what a token may reach.
type Role string

const (
	// RoleMember reaches its own pot (the subject is the member id) and the
	// catalogue.
	RoleMember Role = "member"
	// RoleOperator reaches everything.
	RoleOperator Role = "operator"
)

// Claims are a token's contents.
type Claims struct {
	// Subject is the member id for RoleMember (required, a valid member
	// id), and names the operator for RoleOperator (optional, for logs).
	Subject string `json:"sub"`
	// Role is RoleMember or RoleOperator.
	Role Role `json:"role"`
	// IssuedAt and ExpiresAt are Unix seconds. ExpiresAt is required and
	// must be after IssuedAt: no token lasts forever.
	IssuedAt  int64 `json:"iat"`
	ExpiresAt int64 `json:"exp"`
}

// Limits of tokens.
const (
	// TokenSecretBytesMin is the shortest secret accepted: 32 bytes, the
	// output size of SHA-256, below which an HMAC key is weaker than the
	// hash (RFC 2104 §3; RFC 7518 §3.2 requires it for HS256).
	TokenSecretBytesMin = 32
	// tokenBytesMax bounds a token's text, checked before anything is
	// decoded: real claims take ~150 bytes, and a hostile header should not
	// make the gateway decode or hash much.
	tokenBytesMax = 1024
	// tokenSubjectBytesMax bounds an operator's subject (a member's is
	// bounded by memberIDBytesMax).
	tokenSubjectBytesMax = 64
	// tokenClockSkew is how far in the future a token's iat may be: the
	// clocks of the machine that signed it and of the gateway may differ by
	// a little.
	tokenClockSkew = time.Minute
	// tokenVersion prefixes every token, so that a later format can be told
	// apart and refused or accepted explicitly.
	tokenVersion = "v1"
)

// Token errors. VerifyToken and SignToken return a *TokenError wrapping one
// of them; test with errors.Is.
var (
	// ErrTokenSecret: the secret is shorter than TokenSecretBytesMin.
	ErrTokenSecret = errors.New("gateway: token secret too short")
	// ErrTokenMalformed: not a v1 token (wrong shape, bad base64, bad JSON,
	// too long).
	ErrTokenMalformed = errors.New("gateway: malformed token")
	// ErrTokenSignature: well formed, but not signed with this secret.
	ErrTokenSignature = errors.New("gateway: bad token signature")
	// ErrTokenExpired: signed, but past its exp.
	ErrTokenExpired = errors.New("gateway: token expired")
	// ErrTokenNotYetValid: signed, but issued later than now (beyond a
	// minute of clock skew): a clock is wrong, or the token was made for
	// later.
	ErrTokenNotYetValid = errors.New("gateway: token not yet valid")
	// ErrTokenClaims: signed, but the claims are not valid (unknown role,
	// bad subject, no expiry).
	ErrTokenClaims = errors.New("gateway: invalid token claims")
)

// TokenError is a refused token or a token that cannot be signed: the
// reason (one of the ErrToken… sentinels) and what exactly is wrong. The
// detail never contains the token or the secret.
type TokenError struct {
	Err    error
	Detail string
}

// Error says why the token was refused.
func (e *TokenError) Error() string {
	if e.Detail == "" {
		return e.Err.Error()
	}
	return e.Err.Error() + ": " + e.Detail
}

// Unwrap returns the sentinel.
func (e *TokenError) Unwrap() error { return e.Err }

func tokenError(err error, format string, args ...any) error {
	return &TokenError{Err: err, Detail: fmt.Sprintf(format, args...)}
}

// tokenEncoding is base64url without padding, refusing non-canonical
// encodings (stray bits in the last character), so that one token has one
// spelling.
var tokenEncoding = base64.RawURLEncoding.Strict()

// decodeTokenPart decodes one base64url part of a token, refusing every
// spelling but the canonical one: encoding/base64 skips \r and \n even in
// strict mode, so a signature with a line break inside would otherwise
// verify as another spelling of the same token.
func decodeTokenPart(s string) ([]byte, bool) {
	b, err := tokenEncoding.DecodeString(s)
	if err != nil || tokenEncoding.EncodedLen(len(b)) != len(s) {
		return nil, false
	}
	return b, true
}

// SignToken returns a token carrying c, signed with secret. It refuses
// claims that VerifyToken would refuse (other than by the clock).
func SignToken(secret []byte, c Claims) (string, error) {
	if len(secret) < TokenSecretBytesMin {
		return "", tokenError(ErrTokenSecret, "%d bytes, want at least %d", len(secret), TokenSecretBytesMin)
	}
	if err := c.validate(); err != nil {
		return "", err
	}
	data, err := json.Marshal(c)
	if err != nil {
		return "", fmt.Errorf("gateway: sign token: %w", err)
	}
	signed := tokenVersion + "." + tokenEncoding.EncodeToString(data)
	return signed + "." + tokenEncoding.EncodeToString(tokenMAC(secret, signed)), nil
}

// VerifyToken checks token's signature with secret (in constant time),
// then its claims and its lifetime at now, and returns the claims.
func VerifyToken(secret []byte, token string, now time.Time) (Claims, error) {
	if len(secret) < TokenSecretBytesMin {
		return Claims{}, tokenError(ErrTokenSecret, "%d bytes, want at least %d", len(secret), TokenSecretBytesMin)
	}
	if len(token) > tokenBytesMax {
		return Claims{}, tokenError(ErrTokenMalformed, "longer than %d bytes", tokenBytesMax)
	}
	version, rest, ok1 := strings.Cut(token, ".")
	payload, sig, ok2 := strings.Cut(rest, ".")
	if !ok1 || !ok2 || version != tokenVersion {
		return Claims{}, tokenError(ErrTokenMalformed, "want %s.<claims>.<signature>", tokenVersion)
	}
	gotMAC, ok := decodeTokenPart(sig)
	if !ok {
		return Claims{}, tokenError(ErrTokenMalformed, "signature is not base64url")
	}
	// The signature is checked before the payload is even decoded: nothing
	// an attacker wrote is parsed unless it was signed with the secret.
	if !hmac.Equal(gotMAC, tokenMAC(secret, token[:len(version)+1+len(payload)])) {
		return Claims{}, tokenError(ErrTokenSignature, "")
	}
	data, ok := decodeTokenPart(payload)
	if !ok {
		return Claims{}, tokenError(ErrTokenMalformed, "claims are not base64url")
	}
	var c Claims
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&c); err != nil || dec.More() {
		return Claims{}, tokenError(ErrTokenMalformed, "claims are not a JSON object of sub, role, iat and exp")
	}
	if err := c.validate(); err != nil {
		return Claims{}, err
	}
	switch unix := now.Unix(); {
	case unix >= c.ExpiresAt:
		return Claims{}, tokenError(ErrTokenExpired, "expired at %s", time.Unix(c.ExpiresAt, 0).UTC().Format(time.RFC3339))
	case c.IssuedAt > now.Add(tokenClockSkew).Unix():
		return Claims{}, tokenError(ErrTokenNotYetValid, "issued at %s", time.Unix(c.IssuedAt, 0).UTC().Format(time.RFC3339))
	}
	return c, nil
}

// validate checks the claims apart from the clock.
func (c Claims) validate() error {
	switch c.Role {
	case RoleMember:
		if !validMemberID(c.Subject) {
			return tokenError(ErrTokenClaims, "a member token's subject must be a member id (%s)", memberIDRule)
		}
	case RoleOperator:
		if len(c.Subject) > tokenSubjectBytesMax || !printableASCII(c.Subject) {
			return tokenError(ErrTokenClaims, "an operator's subject must be at most %d printable ASCII characters", tokenSubjectBytesMax)
		}
	default:
		return tokenError(ErrTokenClaims, "role must be %q or %q", RoleMember, RoleOperator)
	}
	if c.ExpiresAt <= 0 || c.ExpiresAt <= c.IssuedAt {
		return tokenError(ErrTokenClaims, "exp must be set and after iat")
	}
	return nil
}

func tokenMAC(secret []byte, signed string) []byte {
	m := hmac.New(sha256.New, secret)
	m.Write([]byte(signed))
	return m.Sum(nil)
}
