package gateway

import (
	"errors"
	"net/http"
	"strings"

	"github.com/acme/mastertrust/internal/problem"
)

// access is who may use a route.
type access int

const (
	// accessPublic: no token (health, readiness, metrics).
	accessPublic access = iota + 1
	// accessToken: any valid token (the catalogue; POST /v1/pots, whose
	// handler checks the body's member id against a member's token).
	accessToken
	// accessPot: an operator token, or the token of the member named by
	// the path's {memberId}.
	accessPot
	// accessOperator: an operator token.
	accessOperator
)

// authorize checks the request's bearer token against the route's access
// rule and returns its claims, or the problem to answer: 401 for a missing,
// malformed, forged or expired token, 403 for a valid token that may not
// use the route.
func (s *Server) authorize(r *http.Request, a access) (Claims, *Problem) {
	auth := r.Header.Values("Authorization")
	if len(auth) == 0 {
		return Claims{}, newProblem(problem.Unauthorized, "an Authorization: Bearer <token> header is required")
	}
	scheme, token, ok := strings.Cut(auth[0], " ")
	if len(auth) > 1 || !ok || !strings.EqualFold(scheme, "Bearer") {
		return Claims{}, newProblem(problem.Unauthorized, "the Authorization header must be Bearer <token>, once")
	}
	claims, err := VerifyToken(s.cfg.TokenSecret, strings.TrimSpace(token), s.cfg.Now())
	if err != nil {
		detail := "the token is not valid"
		switch {
		case errors.Is(err, ErrTokenExpired):
			detail = "the token has expired"
		case errors.Is(err, ErrTokenNotYetValid):
			detail = "the token is not valid yet (check the clocks)"
		}
		return Claims{}, newProblem(problem.Unauthorized, detail)
	}
	if claims.Role == RoleOperator {
		return claims, nil
	}
	switch a {
	case accessToken:
		return claims, nil
	case accessPot:
		if r.PathValue("memberId") == claims.Subject {
			return claims, nil
		}
		return claims, newProblem(problem.Forbidden, "a member token reaches only its own pot")
	default:
		return claims, newProblem(problem.Forbidden, "this endpoint needs an operator token")
	}
}
