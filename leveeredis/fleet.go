package leveeredis

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/redis/go-redis/v9"
	"go.opentelemetry.io/otel/metric"
	"go.opentelemetry.io/otel/trace"

	"github.com/levee-go/levee/internal/emit"
	"github.com/levee-go/levee/telemetry"
)

// Defaults of a Fleet.
const (
	// DefaultOpTimeout bounds every Redis operation a fleet policy sends.
	DefaultOpTimeout = 250 * time.Millisecond
	// DefaultSyncInterval is how often each fleet policy exchanges its
	// state with Redis when nothing else wakes it.
	DefaultSyncInterval = 250 * time.Millisecond
)

// Fleet is one instance's seat in a fleet: the Redis client, this instance's
// id, the key prefix every policy shares, the bound on Redis operations, and
// the telemetry providers. Fleet policies (NewBreaker, NewLimiter,
// NewBudget) are made from a Fleet; each runs one background goroutine that
// talks to Redis, never the caller's goroutine.
//
// Create one Fleet per process and Redis deployment with NewFleet; Close it
// on shutdown to stop every policy's background goroutine (the policies
// then go on as local policies). A Fleet is safe for concurrent use.
type Fleet struct {
	client    Client
	id        string
	prefix    string
	opTimeout time.Duration
	interval  time.Duration
	tp        trace.TracerProvider
	mp        metric.MeterProvider

	inst fleetInstruments

	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup
	runMu  sync.Mutex // orders run's wg.Add before Close's wg.Wait
	closed bool       // under runMu: Close has begun

	// redisUp is whether the last Redis operation of any policy of this
	// Fleet succeeded (true until one fails).
	redisUp atomic.Bool

	// breakers is the pub/sub subscription the Fleet's breakers share
	// (breaker_bus.go), started with the first of them.
	breakersOnce sync.Once
	breakers     *breakerBus
}

// FleetOption configures a Fleet.
type FleetOption func(*fleetConfig)

type fleetConfig struct {
	id        string
	prefix    string
	opTimeout time.Duration
	interval  time.Duration
	tp        trace.TracerProvider
	mp        metric.MeterProvider
}

// WithInstanceID names this instance in the fleet. Default: the host name,
// the process id and a random suffix, so that a restarted process is a new
// member. Ids must be unique across the fleet; an empty id panics.
func WithInstanceID(id string) FleetOption {
	if id == "" {
		panic("leveeredis: WithInstanceID: the instance id must not be empty")
	}
	return func(c *fleetConfig) { c.id = id }
}

// WithKeyPrefix sets the prefix of every Redis key the fleet's policies use
// (default DefaultKeyPrefix, "levee"). Fleets that share a Redis but must
// not share state use different prefixes. An empty prefix, or one holding
// '{' or '}', panics.
func WithKeyPrefix(prefix string) FleetOption {
	newKeyspace(prefix, "check", "check") // validates, naming the option
	return func(c *fleetConfig) { c.prefix = prefix }
}

// WithOpTimeout bounds every Redis operation (default DefaultOpTimeout,
// 250ms): an operation that takes longer counts as Redis failing, and the
// policy goes on with its local state. d must be positive.
func WithOpTimeout(d time.Duration) FleetOption {
	if d <= 0 {
		panic(fmt.Sprintf("leveeredis: WithOpTimeout: the timeout must be positive, got %v", d))
	}
	return func(c *fleetConfig) { c.opTimeout = d }
}

// WithSyncInterval sets how often each fleet policy exchanges state with
// Redis when nothing else wakes it (default DefaultSyncInterval, 250ms). It
// bounds how late an instance learns of a change made elsewhere when
// pub/sub is not delivering, and sets the background cost per policy. d
// must be positive.
func WithSyncInterval(d time.Duration) FleetOption {
	if d <= 0 {
		panic(fmt.Sprintf("leveeredis: WithSyncInterval: the interval must be positive, got %v", d))
	}
	return func(c *fleetConfig) { c.interval = d }
}

// WithTracerProvider sets the TracerProvider of the fleet's own spans and
// events. Default: the global TracerProvider.
func WithTracerProvider(tp trace.TracerProvider) FleetOption {
	emit.CheckProvider("leveeredis: WithTracerProvider", tp)
	return func(c *fleetConfig) { c.tp = tp }
}

// WithMeterProvider sets the MeterProvider of the levee.fleet.* metrics.
// Default: the global MeterProvider.
func WithMeterProvider(mp metric.MeterProvider) FleetOption {
	emit.CheckProvider("leveeredis: WithMeterProvider", mp)
	return func(c *fleetConfig) { c.mp = mp }
}

// NewFleet returns this instance's seat in the fleet whose state lives in
// the Redis that client reaches. It sends nothing to Redis: the policies
// made from it do, in the background. client must not be nil, and a
// go-redis client must be made with ContextTimeoutEnabled: true (NewFleet
// panics otherwise): without it go-redis ignores context deadlines, and no
// fleet operation would be bounded by WithOpTimeout.
func NewFleet(client Client, opts ...FleetOption) *Fleet {
	if client == nil {
		panic("leveeredis: NewFleet: the Redis client must not be nil")
	}
	if !honoursDeadlines(client) {
		panic("leveeredis: NewFleet: the Redis client must set ContextTimeoutEnabled: true, else go-redis ignores context deadlines and WithOpTimeout bounds nothing")
	}
	c := fleetConfig{prefix: DefaultKeyPrefix, opTimeout: DefaultOpTimeout, interval: DefaultSyncInterval}
	for _, o := range opts {
		o(&c)
	}
	if c.id == "" {
		c.id = defaultInstanceID()
	}
	ctx, cancel := context.WithCancel(context.Background())
	f := &Fleet{
		client: client, id: c.id, prefix: c.prefix,
		opTimeout: c.opTimeout, interval: c.interval, tp: c.tp, mp: c.mp,
		ctx: ctx, cancel: cancel,
	}
	f.redisUp.Store(true)
	f.inst = newFleetInstruments(emit.Meter(c.mp))
	return f
}

// InstanceID is this instance's id in the fleet.
func (f *Fleet) InstanceID() string { return f.id }

// RedisUp reports whether the last Redis operation of this Fleet's policies
// succeeded. While it is false every fleet policy acts on its local state
// alone.
func (f *Fleet) RedisUp() bool { return f.redisUp.Load() }

// Close stops the background goroutine of every policy made from f and
// waits for them to return (each within the operation timeout). The
// policies keep working as local policies. Close is idempotent.
func (f *Fleet) Close() {
	f.runMu.Lock()
	f.closed = true // no loop starts from now on
	f.runMu.Unlock()
	f.cancel()
	f.wg.Wait()
}

// keyspace is the keyspace of the policy of that kind and name.
func (f *Fleet) keyspace(kind, name string) keyspace { return newKeyspace(f.prefix, kind, name) }

// run starts loop on a goroutine of its own, stopped by Close. loop must
// return when ctx is done. After Close it starts nothing: a policy made
// from a closed Fleet stays on its local state, and a policy made while
// Close runs never adds to the WaitGroup Close is waiting on.
func (f *Fleet) run(loop func(ctx context.Context)) {
	f.runMu.Lock()
	defer f.runMu.Unlock()
	if f.closed {
		return
	}
	f.wg.Add(1)
	go func() {
		defer f.wg.Done()
		loop(f.ctx)
	}()
}

// op runs one Redis operation of a policy under the fleet's timeout, and
// reports its failure: the levee.fleet.sync.errors counter, with the
// operation and the error's type, and the fleet's Redis health. It returns
// fn's error; the caller falls back to its local state on any error.
func (f *Fleet) op(ctx context.Context, policy, operation string, fn func(ctx context.Context) error) error {
	ctx, cancel := context.WithTimeout(ctx, f.opTimeout)
	defer cancel()
	err := fn(ctx)
	if err == nil || errors.Is(err, errNil) {
		f.redisUp.Store(true)
		return err
	}
	if f.ctx.Err() != nil {
		return err // closing: not Redis's fault
	}
	f.redisUp.Store(false)
	emit.Guard("leveeredis: sync error counter", func() {
		f.inst.syncErrors.Add(context.Background(), 1, metric.WithAttributes(
			telemetry.KeyPolicyName.String(policy),
			KeyOperation.String(operation),
			telemetry.KeyErrorType.String(telemetry.ErrorType(err)),
		))
	})
	return err
}

// honoursDeadlines reports whether client bounds its commands by their
// context's deadline. go-redis does only with ContextTimeoutEnabled; without
// it a command waits for the client's ReadTimeout (3s by default, for ever
// when -1) whatever WithOpTimeout says. A Client of another type is trusted.
func honoursDeadlines(client Client) bool {
	switch c := client.(type) {
	case *redis.Client:
		return c.Options().ContextTimeoutEnabled
	case *redis.ClusterClient:
		return c.Options().ContextTimeoutEnabled
	case *redis.Ring:
		return c.Options().ContextTimeoutEnabled
	}
	return true
}

// errNil is redis.Nil under a name of ours: a key that does not exist is an
// answer, not a failure.
var errNil = redisNil

func defaultInstanceID() string {
	host, err := os.Hostname()
	if err != nil || host == "" {
		host = "instance"
	}
	var b [4]byte
	_, _ = rand.Read(b[:])
	return fmt.Sprintf("%s-%d-%s", host, os.Getpid(), hex.EncodeToString(b[:]))
}
