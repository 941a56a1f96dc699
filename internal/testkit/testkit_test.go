package testkit_test

import (
	"fmt"
	"net"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/acme/mastertrust/internal/testkit"
)

// FreePort's ports are below Linux's ephemeral range, where no outgoing
// connection or listener on port 0 is given them, and a server can bind
// them.
func TestFreePortIsBelowTheEphemeralRange(t *testing.T) {
	for range 20 {
		port := testkit.FreePort(t)
		assert.Less(t, port, 32768)
		ln, err := net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", port))
		require.NoError(t, err)
		require.NoError(t, ln.Close())
	}
}
