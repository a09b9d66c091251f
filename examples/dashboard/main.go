// Command dashboard serves levee's live dashboard for a small service whose
// dependency goes down and comes back: watch its breakers trip and recover.
//
//	go run ./examples/dashboard            # prints the page's URL
//	go run ./examples/dashboard -cycle 0   # the dependency stays up
//
// The service guards a fake dependency with a breaker, a retry, a bulkhead,
// a rate limit, a throttle and a hedge, all registered with one
// dashboard.Dashboard mounted at /debug/levee/. One breaker is named
// <script>alert(1)</script>: the page shows it as text. Operator controls
// are on, authorized for HTTP basic auth as the user "operator" with the
// password printed at start; the page itself sends no credentials, so its
// buttons show the refusal (403) that an unauthorized operator gets.
package main

import (
	"context"
	crand "crypto/rand"
	"crypto/subtle"
	"encoding/hex"
	"errors"
	"flag"
	"fmt"
	"log"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"os/signal"
	"sync"
	"sync/atomic"
	"time"

	"github.com/levee-go/levee/breaker"
	"github.com/levee-go/levee/bulkhead"
	"github.com/levee-go/levee/dashboard"
	"github.com/levee-go/levee/hedge"
	"github.com/levee-go/levee/ratelimit"
	"github.com/levee-go/levee/resilience"
	"github.com/levee-go/levee/retry"
	"github.com/levee-go/levee/throttle"
)

// hostileName is a breaker name that would run a script if the page
// rendered names as HTML.
const hostileName = `<script>alert(1)</script>`

var errDown = errors.New("dependency down")

// demo is the service: a fake dependency, the policies guarding it, and
// the dashboard that shows them.
type demo struct {
	dash     *dashboard.Dashboard
	down     atomic.Bool
	payments *breaker.Breaker
	hostile  *breaker.Breaker
	pool     *bulkhead.Bulkhead
	partner  *ratelimit.Limiter
	backend  *throttle.Throttle

	charge func(context.Context) (string, error) // retry around the payments breaker
	search func(context.Context) (string, error) // a hedged call
	rng    *rand.Rand
	rngMu  sync.Mutex
}

// newDemo builds the service; authorize decides who may use the controls.
func newDemo(authorize func(*http.Request) bool) *demo {
	d := &demo{
		dash: dashboard.New(dashboard.WithControls(authorize), dashboard.WithTitle("checkout (levee demo)"),
			dashboard.WithTimeline(2*time.Minute)),
		rng: rand.New(rand.NewPCG(1, 2)),
	}
	mp := d.dash.MeterProvider(nil) // the global provider, and the dashboard's counts
	d.payments = d.dash.NewBreaker("payments",
		breaker.WithFailureThreshold(5), breaker.WithOpenTimeout(3*time.Second), breaker.WithMeterProvider(mp))
	d.hostile = d.dash.NewBreaker(hostileName,
		breaker.WithFailureThreshold(5), breaker.WithOpenTimeout(3*time.Second))
	d.pool = bulkhead.New("db-pool", 4)
	d.partner = ratelimit.New("partner-api", 20, time.Second)
	d.backend = throttle.New("search-backend", throttle.WithWindow(10*time.Second))
	d.dash.AddBulkhead(d.pool)
	d.dash.AddLimiter(d.partner)
	d.dash.AddThrottle(d.backend)

	// The retry takes the pipeline's telemetry from the breaker: name
	// "payments", and the dashboard's provider.
	d.charge = resilience.Wrap(d.dependency,
		retry.Policy[string](retry.WithMaxAttempts(2), retry.WithDelay(20*time.Millisecond),
			retry.If(func(err error) bool { return !errors.Is(err, breaker.ErrOpen) })),
		breaker.Policy[string](d.payments))
	d.search = resilience.WrapWith(resilience.Telemetry{Name: "search", MeterProvider: mp}, d.slowDependency,
		hedge.Policy[string](15*time.Millisecond))
	return d
}

// dependency is the fake remote service: a few milliseconds when up, an
// error at once when down.
func (d *demo) dependency(ctx context.Context) (string, error) {
	if d.down.Load() {
		return "", errDown
	}
	return "ok", sleep(ctx, time.Duration(2+d.intN(8))*time.Millisecond)
}

// slowDependency answers in 5ms mostly and in 60ms one time in ten: hedges
// cut that tail.
func (d *demo) slowDependency(ctx context.Context) (string, error) {
	latency := 5 * time.Millisecond
	if d.intN(10) == 0 {
		latency = 60 * time.Millisecond
	}
	return "results", sleep(ctx, latency)
}

func (d *demo) intN(n int) int {
	d.rngMu.Lock()
	defer d.rngMu.Unlock()
	return d.rng.IntN(n)
}

func sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// load sends traffic through every policy until ctx ends, and returns once
// all of its goroutines have.
func (d *demo) load(ctx context.Context) {
	var wg sync.WaitGroup
	every := func(period time.Duration, f func()) {
		wg.Go(func() {
			tick := time.NewTicker(period)
			defer tick.Stop()
			for {
				select {
				case <-ctx.Done():
					return
				case <-tick.C:
					f()
				}
			}
		})
	}
	every(50*time.Millisecond, func() { _, _ = d.charge(ctx) })
	every(100*time.Millisecond, func() {
		_ = d.hostile.Call(ctx, func(ctx context.Context) error { _, err := d.dependency(ctx); return err })
	})
	every(40*time.Millisecond, func() { _ = d.partner.Call(ctx, func(context.Context) error { return nil }) })
	every(50*time.Millisecond, func() {
		_ = d.backend.Call(ctx, func(ctx context.Context) error { _, err := d.dependency(ctx); return err })
	})
	every(100*time.Millisecond, func() { _, _ = d.search(ctx) })
	query := func() {
		_ = d.pool.Call(ctx, func(ctx context.Context) error { return sleep(ctx, 30*time.Millisecond) })
	}
	for range 2 { // two steady workers on four slots
		every(40*time.Millisecond, query)
	}
	every(3*time.Second, func() { // and a burst of eight now and then: some are refused
		var burst sync.WaitGroup
		for range 8 {
			burst.Go(query)
		}
		burst.Wait()
	})
	wg.Wait()
}

// outages takes the dependency down for down, up for up, and again, until
// ctx ends.
func (d *demo) outages(ctx context.Context, up, down time.Duration) {
	for {
		if sleep(ctx, up) != nil {
			return
		}
		d.down.Store(true)
		log.Printf("dependency down for %s", down)
		if sleep(ctx, down) != nil {
			return
		}
		d.down.Store(false)
		log.Printf("dependency back up")
	}
}

// handler is the service's mux: the dashboard at /debug/levee/.
func (d *demo) handler() http.Handler {
	mux := http.NewServeMux()
	mux.Handle("/debug/levee/", d.dash)
	mux.Handle("/{$}", http.RedirectHandler("/debug/levee/", http.StatusFound))
	return mux
}

// basicAuth authorizes the user "operator" with password.
func basicAuth(password string) func(*http.Request) bool {
	return func(r *http.Request) bool {
		user, pass, ok := r.BasicAuth()
		return ok && user == "operator" && subtle.ConstantTimeCompare([]byte(pass), []byte(password)) == 1
	}
}

func main() {
	addr := flag.String("addr", "127.0.0.1:8080", "where to listen")
	cycle := flag.Duration("cycle", 15*time.Second, "how long the dependency stays up between outages (0: no outages)")
	outage := flag.Duration("outage", 10*time.Second, "how long each outage lasts")
	flag.Parse()

	var secret [8]byte
	_, _ = crand.Read(secret[:])
	password := hex.EncodeToString(secret[:])
	d := newDemo(basicAuth(password))

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	ln, err := net.Listen("tcp", *addr)
	if err != nil {
		log.Fatal(err)
	}
	srv := &http.Server{Handler: d.handler(), ReadHeaderTimeout: 5 * time.Second}
	srv.RegisterOnShutdown(d.dash.Close)
	fmt.Printf("levee dashboard: http://%s/debug/levee/\n", ln.Addr())
	fmt.Printf("controls: user operator, password %s (for example: curl -u operator:%s -H 'X-Levee-Csrf: <token from the page>' ...)\n", password, password)

	go d.load(ctx)
	if *cycle > 0 {
		go d.outages(ctx, *cycle, *outage)
	}
	go func() {
		<-ctx.Done()
		shutdown, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = srv.Shutdown(shutdown)
	}()
	if err := srv.Serve(ln); !errors.Is(err, http.ErrServerClosed) {
		log.Fatal(err)
	}
}
