package leveeredis

import (
	"context"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/otel/attribute"
	"go.uber.org/goleak"

	"github.com/levee-go/levee/leveeredis/internal/redistest"
	"github.com/levee-go/levee/telemetry/telemetrytest"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// newClient is a go-redis client for s that gives up fast: the tests kill
// servers, and a client retrying for seconds would only slow them.
func newClient(t testing.TB, s *redistest.Server) *redis.Client {
	t.Helper()
	c := redis.NewClient(&redis.Options{
		Addr: s.Addr(), MaxRetries: -1, ContextTimeoutEnabled: true,
		DialTimeout: 200 * time.Millisecond, ReadTimeout: 200 * time.Millisecond, WriteTimeout: 200 * time.Millisecond,
	})
	t.Cleanup(func() { _ = c.Close() })
	return c
}

// An operation against a Redis that is gone fails within the fleet's
// timeout, is counted by operation and error type, and marks Redis down;
// the first success after the restart marks it up again.
func TestFleetOpReportsRedisFailureAndRecovery(t *testing.T) {
	s := redistest.Start(t)
	h := telemetrytest.New(t)
	f := NewFleet(newClient(t, s), WithInstanceID("a"), WithOpTimeout(100*time.Millisecond), WithMeterProvider(h.MeterProvider))
	defer f.Close()
	ping := func(ctx context.Context) error { return f.client.Ping(ctx).Err() }

	require.NoError(t, f.op(context.Background(), "payments", "heartbeat", ping))
	assert.True(t, f.RedisUp())

	s.Kill()
	start := time.Now()
	require.Error(t, f.op(context.Background(), "payments", "heartbeat", ping))
	assert.Less(t, time.Since(start), 2*time.Second, "a failing operation must end within its bound")
	assert.False(t, f.RedisUp(), "a failed operation marks Redis down")
	h.AssertInt64(MetricSyncErrors, 1,
		attribute.String("levee.policy.name", "payments"),
		attribute.String("levee.fleet.operation", "heartbeat"))

	s.Restart()
	require.NoError(t, f.op(context.Background(), "payments", "heartbeat", ping))
	assert.True(t, f.RedisUp(), "the first success after an outage marks Redis up")
}

// A key that does not exist is an answer, not a Redis failure.
func TestFleetOpMissingKeyIsNotAFailure(t *testing.T) {
	s := redistest.Start(t)
	f := NewFleet(newClient(t, s), WithInstanceID("a"))
	defer f.Close()
	err := f.op(context.Background(), "payments", "read", func(ctx context.Context) error {
		return f.client.Get(ctx, "no-such-key").Err()
	})
	assert.ErrorIs(t, err, redis.Nil)
	assert.True(t, f.RedisUp())
}

// Close stops every background loop and waits for it.
func TestFleetCloseStopsLoops(t *testing.T) {
	s := redistest.Start(t)
	f := NewFleet(newClient(t, s))
	stopped := make(chan struct{})
	f.run(func(ctx context.Context) { <-ctx.Done(); close(stopped) })
	f.Close()
	select {
	case <-stopped:
	default:
		t.Fatal("Close returned before the loop stopped")
	}
	f.Close() // idempotent
}

// Loops started while Close runs, and after it, never race its Wait: run
// starts nothing once Close has begun, and every loop it did start has
// returned when Close does.
func TestFleetRunRacingCloseStartsNothingAfterIt(t *testing.T) {
	s := redistest.Start(t)
	for range 50 {
		f := NewFleet(newClient(t, s))
		var started, stopped atomic.Int64
		var wg sync.WaitGroup
		for range 8 {
			wg.Go(func() {
				f.run(func(ctx context.Context) { started.Add(1); <-ctx.Done(); stopped.Add(1) })
			})
		}
		f.Close()
		assert.Equal(t, started.Load(), stopped.Load(), "Close returned while a loop it started was running")
		wg.Wait()
		ran := make(chan struct{})
		f.run(func(context.Context) { close(ran) })
		f.Close() // idempotent; waits for any loop run did start
		select {
		case <-ran:
			t.Fatal("a loop started after Close")
		default:
		}
	}
}

func TestFleetDefaultsAndBadSettings(t *testing.T) {
	s := redistest.Start(t)
	f := NewFleet(newClient(t, s))
	defer f.Close()
	assert.NotEmpty(t, f.InstanceID())
	g := NewFleet(newClient(t, s))
	defer g.Close()
	assert.NotEqual(t, f.InstanceID(), g.InstanceID(), "two seats' default ids must differ (a random suffix)")

	assert.PanicsWithValue(t, "leveeredis: NewFleet: the Redis client must not be nil", func() { NewFleet(nil) })
	assert.PanicsWithValue(t, "leveeredis: WithInstanceID: the instance id must not be empty", func() { WithInstanceID("") })
	assert.PanicsWithValue(t, "leveeredis: WithKeyPrefix: the key prefix must not be empty", func() { WithKeyPrefix("") })
	assert.PanicsWithValue(t, "leveeredis: WithOpTimeout: the timeout must be positive, got 0s", func() { WithOpTimeout(0) })
	assert.PanicsWithValue(t, "leveeredis: WithSyncInterval: the interval must be positive, got -1s", func() { WithSyncInterval(-time.Second) })
}
