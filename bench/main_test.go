package bench

import (
	"context"
	"fmt"
	"os"
	"testing"
)

// TestMain makes the test binary the overload workload's load generator
// when RunOverload starts it as one (GeneratorEnv).
func TestMain(m *testing.M) {
	if IsGenerator() {
		if err := RunGenerator(context.Background(), os.Stdin, os.Stdout); err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(2)
		}
		os.Exit(0)
	}
	os.Exit(m.Run())
}
