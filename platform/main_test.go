package platform_test

import (
	"os"
	"testing"
)

// TestMain stops the platform FuzzRouter started, once every test and
// fuzz input of the process has run.
func TestMain(m *testing.M) {
	code := m.Run()
	stopFuzzRig()
	os.Exit(code)
}
