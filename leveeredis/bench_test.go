package leveeredis

import (
	"context"
	"errors"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/levee-go/levee/breaker"
	"github.com/levee-go/levee/leveeredis/internal/redistest"
	"github.com/levee-go/levee/resilience"
)

// benchClient is a client of the Redis at $LEVEE_REDIS_ADDR, or of a
// redis-server started for b (valgrind cannot follow the benchmark
// starting one: start it first and set LEVEE_REDIS_ADDR under
// bench/callgrind.sh).
func benchClient(b *testing.B) *redis.Client {
	if addr := os.Getenv("LEVEE_REDIS_ADDR"); addr != "" {
		c := redis.NewClient(&redis.Options{Addr: addr, ContextTimeoutEnabled: true})
		b.Cleanup(func() { _ = c.Close() })
		return c
	}
	return newClient(b, redistest.Start(b))
}

// The call path: a call through a fleet breaker is a call through its local
// breaker (Policy returns the local breaker's policy), so the two should
// cost the same, closed or open. The fleet's background loop syncs once an
// hour here, so that it adds nothing to the count (bench/callgrind.sh
// counts the whole program):
//
//	LEVEE_REDIS_ADDR=127.0.0.1:6379 PKG=leveeredis bench/callgrind.sh '^BenchmarkBreakerCall$/^closed/local$' '^BenchmarkBreakerCall$/^closed/fleet$' ...
//	cd leveeredis && go test -run '^$' -bench BenchmarkBreakerCall -count 10 | benchstat -
func BenchmarkBreakerCall(b *testing.B) {
	ctx := context.Background()
	work := func(context.Context) (int, error) { return 1, nil }
	errFail := errors.New("fail")
	fail := func(context.Context) (int, error) { return 0, errFail }
	for _, state := range []string{"closed", "open"} {
		b.Run(state+"/local", func(b *testing.B) {
			br := breaker.New("payments", breaker.WithOpenTimeout(time.Hour))
			benchCall(b, ctx, state, resilience.Wrap(work, breaker.Policy[int](br)), resilience.Wrap(fail, breaker.Policy[int](br)))
		})
		b.Run(state+"/fleet", func(b *testing.B) {
			f := NewFleet(benchClient(b), WithSyncInterval(time.Hour))
			defer f.Close()
			br := NewBreaker(f, "payments", WithOpenTimeout(time.Hour))
			benchCall(b, ctx, state, resilience.Wrap(work, Policy[int](br)), resilience.Wrap(fail, Policy[int](br)))
		})
	}
}

func benchCall(b *testing.B, ctx context.Context, state string, get, fail resilience.Func[int]) {
	if state == "open" {
		for range breaker.DefaultFailureThreshold {
			_, _ = fail(ctx)
		}
		if _, err := get(ctx); !errors.Is(err, breaker.ErrOpen) {
			b.Fatalf("got %v, want a rejection", err)
		}
	}
	b.ReportAllocs()
	b.ResetTimer()
	for range b.N {
		_, _ = get(ctx)
	}
}

// BenchmarkBreakerSync is the background cost of one fleet breaker on one
// instance: one sync (one EVALSHA: heartbeat, report, quorum, lease, the
// fleet's state) per op, back to back, on loopback. Each instance runs one
// per breaker per sync interval (4/s at the default 250ms), plus one per
// change announced on pub/sub. It reports the server's own time per sync
// (Redis's INFO commandstats), the figure that bounds a Redis's capacity.
func BenchmarkBreakerSync(b *testing.B) {
	for _, live := range []int{1, 1000} {
		b.Run("live="+strconv.Itoa(live), func(b *testing.B) {
			s := redistest.Start(b)
			c := newClient(b, s)
			f := NewFleet(c, WithInstanceID("bench"), WithSyncInterval(time.Hour), WithOpTimeout(time.Second))
			defer f.Close()
			br := NewBreaker(f, "payments", WithMemberTTL(2*time.Hour))
			ctx := context.Background()
			for i := range live { // this instance (loading the script), and the rest of the fleet
				id := "bench"
				if i > 0 {
					id = "i" + strconv.Itoa(i)
				}
				if err := syncScript.Run(ctx, c, br.keys.all, br.syncArgs(id, 0, 0, "")...).Err(); err != nil {
					b.Fatal(err)
				}
			}
			if err := c.ConfigResetStat(ctx).Err(); err != nil {
				b.Fatal(err)
			}
			b.ResetTimer()
			for range b.N {
				if err := syncScript.Run(ctx, c, br.keys.all, br.syncArgs("bench", 0, 0, "")...).Err(); err != nil {
					b.Fatal(err)
				}
			}
			b.StopTimer()
			if us := evalshaMicros(b, c); us > 0 {
				b.ReportMetric(us, "server-µs/sync")
			}
		})
	}
}

// evalshaMicros reads the server's mean time per EVALSHA from INFO
// commandstats.
func evalshaMicros(b *testing.B, c Client) float64 {
	info, err := c.Info(context.Background(), "commandstats").Result()
	if err != nil {
		b.Fatal(err)
	}
	for _, line := range strings.Split(info, "\n") {
		if !strings.HasPrefix(line, "cmdstat_evalsha:") {
			continue
		}
		for _, field := range strings.Split(strings.TrimSpace(strings.TrimPrefix(line, "cmdstat_evalsha:")), ",") {
			if v, ok := strings.CutPrefix(field, "usec_per_call="); ok {
				us, _ := strconv.ParseFloat(v, 64)
				return us
			}
		}
	}
	return 0
}
