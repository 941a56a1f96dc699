package natsauth

import (
	"regexp"
)

// userinfo matches the user-information part of a URL in text:
// scheme://user:password@ or scheme://token@.
var userinfo = regexp.MustCompile(`([A-Za-z][A-Za-z0-9+.-]*://)([^/@\s]+)@`)

// Redact takes the credentials out of every URL in s (nats://user:secret@host
// becomes nats://REDACTED@host), for a URL about to be logged, printed or
// wrapped in an error. Text without URLs is returned as it is.
func Redact(s string) string {
	return userinfo.ReplaceAllString(s, "${1}REDACTED@")
}
