package gateway

import (
	"encoding/base64"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

var testSecret = []byte("0123456789abcdef0123456789abcdef")

// TestTokenRoundTrip: a signed token verifies to its claims until it
// expires.
func TestTokenRoundTrip(t *testing.T) {
	now := time.Unix(1_800_000_000, 0)
	for _, c := range []Claims{
		{Subject: "M000123", Role: RoleMember, IssuedAt: now.Unix(), ExpiresAt: now.Add(time.Hour).Unix()},
		{Subject: "ops-alice", Role: RoleOperator, IssuedAt: now.Unix(), ExpiresAt: now.Add(time.Minute).Unix()},
		{Role: RoleOperator, IssuedAt: now.Unix(), ExpiresAt: now.Add(time.Minute).Unix()},
	} {
		tok, err := SignToken(testSecret, c)
		require.NoError(t, err, "SignToken(%+v)", c)
		// v1.<base64url>.<base64url>
		require.True(t, strings.HasPrefix(tok, "v1."), "token %q: version prefix", tok)
		require.Equal(t, 2, strings.Count(tok, "."), "token %q: dots", tok)
		require.False(t, strings.ContainsAny(tok, "+/="), "token %q: characters outside unpadded base64url", tok)
		got, err := VerifyToken(testSecret, tok, now.Add(30*time.Second))
		require.NoError(t, err, "VerifyToken(SignToken(%+v))", c)
		require.Equal(t, c, got, "VerifyToken(SignToken(%+v))", c)
		_, err = VerifyToken(testSecret, tok, time.Unix(c.ExpiresAt, 0))
		require.ErrorIs(t, err, ErrTokenExpired, "VerifyToken at exp")
	}
}

// TestTokenRefused: every way a token can be wrong is refused with its
// own error.
func TestTokenRefused(t *testing.T) {
	now := time.Unix(1_800_000_000, 0)
	good := Claims{Subject: "M000123", Role: RoleMember, IssuedAt: now.Unix(), ExpiresAt: now.Add(time.Hour).Unix()}
	tok, err := SignToken(testSecret, good)
	require.NoError(t, err)
	parts := strings.Split(tok, ".")
	enc := base64.RawURLEncoding.EncodeToString
	// resign signs any payload with the test secret, as an insider could.
	resign := func(payload string) string {
		signed := "v1." + enc([]byte(payload))
		return signed + "." + enc(tokenMAC(testSecret, signed))
	}
	// resignRaw signs an already encoded payload, spelled as it is.
	resignRaw := func(encoded string) string {
		signed := "v1." + encoded
		return signed + "." + enc(tokenMAC(testSecret, signed))
	}
	future, _ := SignToken(testSecret, Claims{Subject: "M1", Role: RoleMember, IssuedAt: now.Add(time.Hour).Unix(), ExpiresAt: now.Add(2 * time.Hour).Unix()})
	cases := []struct {
		name, token string
		want        error
	}{
		{"empty", "", ErrTokenMalformed},
		{"one part", "v1", ErrTokenMalformed},
		{"two parts", "v1." + parts[1], ErrTokenMalformed},
		{"other version", "v2." + parts[1] + "." + parts[2], ErrTokenMalformed},
		{"padded signature", tok + "=", ErrTokenMalformed},
		{"signature not base64", parts[0] + "." + parts[1] + ".!!", ErrTokenMalformed},
		{"line break in signature", parts[0] + "." + parts[1] + "." + parts[2][:12] + "\r" + parts[2][12:], ErrTokenMalformed},
		{"line break in signed claims", resignRaw(parts[1][:8] + "\n" + parts[1][8:]), ErrTokenMalformed},
		{"too long", tok + strings.Repeat("A", tokenBytesMax), ErrTokenMalformed},
		{"other secret", mustSign(t, []byte(strings.Repeat("s", 32)), good), ErrTokenSignature},
		{"payload changed", parts[0] + "." + enc([]byte(`{"sub":"M000999","role":"member","iat":1800000000,"exp":1800003600}`)) + "." + parts[2], ErrTokenSignature},
		{"signature truncated", parts[0] + "." + parts[1] + "." + parts[2][:12], ErrTokenSignature},
		{"four parts", tok + ".x", ErrTokenMalformed},
		{"expired", mustSign(t, testSecret, Claims{Subject: "M1", Role: RoleMember, IssuedAt: now.Add(-2 * time.Hour).Unix(), ExpiresAt: now.Add(-time.Hour).Unix()}), ErrTokenExpired},
		{"issued in the future", future, ErrTokenNotYetValid},
		{"unknown claim", resign(`{"sub":"M1","role":"member","iat":1,"exp":1900000000,"admin":true}`), ErrTokenMalformed},
		{"claims not JSON", resign(`sub=M1`), ErrTokenMalformed},
		{"trailing claims", resign(`{"sub":"M1","role":"member","iat":1,"exp":1900000000}{}`), ErrTokenMalformed},
		{"unknown role", resign(`{"sub":"M1","role":"admin","iat":1,"exp":1900000000}`), ErrTokenClaims},
		{"member without subject", resign(`{"sub":"","role":"member","iat":1,"exp":1900000000}`), ErrTokenClaims},
		{"member with bad subject", resign(`{"sub":"M 1","role":"member","iat":1,"exp":1900000000}`), ErrTokenClaims},
		{"no expiry", resign(`{"sub":"M1","role":"member","iat":1}`), ErrTokenClaims},
	}
	for _, c := range cases {
		_, err := VerifyToken(testSecret, c.token, now)
		assert.ErrorIs(t, err, c.want, "%s: VerifyToken", c.name)
		var te *TokenError
		if err != nil {
			assert.ErrorAs(t, err, &te, "%s: VerifyToken", c.name)
		}
		if err != nil && strings.Contains(err.Error(), string(testSecret)) {
			t.Errorf("%s: the error shows the secret", c.name)
		}
	}
}

// TestTokenSignRefuses: SignToken refuses a short secret and claims that
// could never verify.
func TestTokenSignRefuses(t *testing.T) {
	ok := Claims{Subject: "M1", Role: RoleMember, IssuedAt: 1, ExpiresAt: 2}
	_, err := SignToken(testSecret[:31], ok)
	assert.ErrorIs(t, err, ErrTokenSecret, "sign with a 31-byte secret")
	_, err = VerifyToken(testSecret[:31], "v1.a.b", time.Now())
	assert.ErrorIs(t, err, ErrTokenSecret, "verify with a 31-byte secret")
	for _, c := range []Claims{
		{Subject: "M1", Role: "admin", IssuedAt: 1, ExpiresAt: 2},
		{Subject: "", Role: RoleMember, IssuedAt: 1, ExpiresAt: 2},
		{Subject: strings.Repeat("m", 65), Role: RoleMember, IssuedAt: 1, ExpiresAt: 2},
		{Subject: "M1", Role: RoleMember, IssuedAt: 2, ExpiresAt: 2},
		{Subject: "M1", Role: RoleMember},
		{Subject: "has space", Role: RoleOperator, IssuedAt: 1, ExpiresAt: 2},
	} {
		_, err := SignToken(testSecret, c)
		assert.ErrorIs(t, err, ErrTokenClaims, "SignToken(%+v)", c)
	}
}

func mustSign(t *testing.T, secret []byte, c Claims) string {
	t.Helper()
	tok, err := SignToken(secret, c)
	require.NoError(t, err)
	return tok
}

// FuzzVerifyToken: no input makes VerifyToken panic or accept a token the
// secret did not sign.
func FuzzVerifyToken(f *testing.F) {
	now := time.Unix(1_800_000_000, 0)
	tok, err := SignToken(testSecret, Claims{Subject: "M1", Role: RoleMember, IssuedAt: now.Unix(), ExpiresAt: now.Add(time.Hour).Unix()})
	require.NoError(f, err)
	f.Add(tok)
	f.Add("v1..")
	f.Add("v1.e30.")
	f.Fuzz(func(t *testing.T, s string) {
		c, err := VerifyToken(testSecret, s, now)
		if err == nil && s != tok {
			// Another spelling of the same signed token would mean the
			// encoding is not canonical.
			t.Fatalf("accepted %q (claims %+v), which was never signed", s, c)
		}
	})
}
