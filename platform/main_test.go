package platform_test

import (
	"os"
	"os/signal"
	"testing"
)

// TestMain stops the platform FuzzRouter started, once every test and
// fuzz input of the process has run, and removes its data if the process
// is interrupted first (as a fuzzing worker is when the run ends).
func TestMain(m *testing.M) {
	interrupted := make(chan os.Signal, 1)
	signal.Notify(interrupted, os.Interrupt)
	go func() {
		<-interrupted
		removeFuzzData()
		// Die of the interrupt, as without this handler: the fuzzing
		// coordinator tells that from a crash.
		signal.Reset(os.Interrupt)
		if p, err := os.FindProcess(os.Getpid()); err != nil || p.Signal(os.Interrupt) != nil {
			os.Exit(1)
		}
	}()
	code := m.Run()
	stopFuzzRig()
	os.Exit(code)
}
