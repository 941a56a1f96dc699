package pause_test

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/acme/mastertrust/internal/pause"
)

func TestFor(t *testing.T) {
	require.NoError(t, pause.For(context.Background(), time.Millisecond), "a pause that ends")

	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	require.ErrorIs(t, pause.For(ctx, time.Hour), context.Canceled, "a pause whose context has ended")

	ctx, cancel = context.WithTimeout(context.Background(), 10*time.Millisecond)
	defer cancel()
	require.ErrorIs(t, pause.For(ctx, time.Hour), context.DeadlineExceeded, "a pause cut short by its deadline")
}
