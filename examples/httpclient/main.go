// Command httpclient shows levee guarding an HTTP dependency, end to end: a
// real server on loopback that goes down and comes back on a schedule, and a
// client whose http.Client sends every request through a fallback, a circuit
// breaker and a timeout (leveehttp.Transport). Spans go to stdout through the
// OpenTelemetry stdout exporter, one JSON object a line; state changes and
// each call's outcome are logged to stderr; metrics are served on /metrics by
// the OpenTelemetry Prometheus exporter. Beside it, a quote pipeline
// (quotes.go) sends a call a tick through a retry, a hedge, a bulkhead, a
// windowed breaker, a throttle and a rate limit, so that every policy's
// metrics have series for the Grafana dashboard (docs/grafana/levee.json).
//
//	go run ./examples/httpclient                     # about 5 s, then exits
//	go run ./examples/httpclient -serve-for 5m       # then keeps /metrics up
//	go run ./examples/httpclient -metrics-addr 127.0.0.1:9464 -outage 20s -serve-for 1m
//
// scrape_check.sh, beside this file, has a real Prometheus scrape it.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/codes"
	otelprom "go.opentelemetry.io/otel/exporters/prometheus"
	"go.opentelemetry.io/otel/exporters/stdout/stdouttrace"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	semconv "go.opentelemetry.io/otel/semconv/v1.40.0"
	"go.opentelemetry.io/otel/trace"

	"github.com/levee-go/levee/breaker"
	"github.com/levee-go/levee/fallback"
	"github.com/levee-go/levee/leveehttp"
	"github.com/levee-go/levee/resilience"
)

// config is the demo's schedule and addresses, from the flags.
type config struct {
	metricsAddr string        // where /metrics is served
	up          time.Duration // the server answers before its outage
	outage      time.Duration // the server fails
	recovery    time.Duration // the server answers again, traffic goes on
	serveFor    time.Duration // /metrics stays up after the traffic
	waitScrape  time.Duration // wait up to this long for Prometheus's first scrape before starting
	interval    time.Duration // between two requests
	openTimeout time.Duration // the breaker's open timeout
	timeout     time.Duration // each request's timeout, inside the breaker

	onMetrics func(url string) // for tests: told where /metrics is served
}

func parseFlags(args []string, stderr io.Writer) (config, error) {
	var cfg config
	fs := flag.NewFlagSet("httpclient", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.StringVar(&cfg.metricsAddr, "metrics-addr", "127.0.0.1:0", "address to serve /metrics on (port 0: any free port)")
	fs.DurationVar(&cfg.up, "up", time.Second, "how long the server answers before its outage")
	fs.DurationVar(&cfg.outage, "outage", 2*time.Second, "how long the server fails")
	fs.DurationVar(&cfg.recovery, "recovery", 1500*time.Millisecond, "how long the traffic goes on after the server is back")
	fs.DurationVar(&cfg.serveFor, "serve-for", 0, "keep serving /metrics this long after the traffic ends (until interrupted)")
	fs.DurationVar(&cfg.waitScrape, "wait-scrape", 0, "before starting the schedule, wait up to this long for a first scrape of /metrics by Prometheus (0: do not wait)")
	fs.DurationVar(&cfg.interval, "interval", 100*time.Millisecond, "time between two requests")
	fs.DurationVar(&cfg.openTimeout, "open-timeout", 500*time.Millisecond, "the breaker's open timeout")
	fs.DurationVar(&cfg.timeout, "timeout", 200*time.Millisecond, "each request's timeout")
	if err := fs.Parse(args); err != nil {
		return cfg, err
	}
	if fs.NArg() > 0 {
		return cfg, fmt.Errorf("unexpected arguments: %q", fs.Args())
	}
	for name, d := range map[string]time.Duration{"interval": cfg.interval, "open-timeout": cfg.openTimeout, "timeout": cfg.timeout} {
		if d <= 0 {
			return cfg, fmt.Errorf("-%s must be positive, got %v", name, d)
		}
	}
	return cfg, nil
}

func main() {
	cfg, err := parseFlags(os.Args[1:], os.Stderr)
	if errors.Is(err, flag.ErrHelp) {
		return
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "httpclient:", err)
		os.Exit(2)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, cfg, os.Stdout, os.Stderr); err != nil {
		fmt.Fprintln(os.Stderr, "httpclient:", err)
		os.Exit(1)
	}
}

// run plays the demo: it returns when the schedule and -serve-for are over,
// or when ctx ends.
func run(ctx context.Context, cfg config, stdout, stderr io.Writer) (err error) {
	logger := slog.New(slog.NewTextHandler(stderr, nil))

	// Telemetry: an application installs the OpenTelemetry SDK; levee's
	// policies use the global providers unless given others.
	res := resource.NewSchemaless(semconv.ServiceName("levee-httpclient-example"))
	spans, err := stdouttrace.New(stdouttrace.WithWriter(stdout))
	if err != nil {
		return err
	}
	tp := sdktrace.NewTracerProvider(sdktrace.WithSyncer(spans), sdktrace.WithResource(res))
	registry := prometheus.NewRegistry()
	metrics, err := otelprom.New(otelprom.WithRegisterer(registry))
	if err != nil {
		return err
	}
	mp := sdkmetric.NewMeterProvider(sdkmetric.WithReader(metrics), sdkmetric.WithResource(res))
	otel.SetTracerProvider(tp)
	otel.SetMeterProvider(mp)
	defer func() {
		shutdownCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 2*time.Second)
		defer cancel()
		err = errors.Join(err, tp.Shutdown(shutdownCtx), mp.Shutdown(shutdownCtx))
	}()

	// /metrics, for Prometheus. A scrape by Prometheus itself (it sends
	// its scrape timeout in a header; a curl does not) may start the
	// schedule, so that a fresh Prometheus sees the whole outage.
	scraped := make(chan struct{})
	var scrapes atomic.Int64
	promHandler := promhttp.HandlerFor(registry, promhttp.HandlerOpts{})
	metricsMux := http.NewServeMux()
	metricsMux.Handle("/metrics", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("X-Prometheus-Scrape-Timeout-Seconds") != "" && scrapes.Add(1) == 1 {
			close(scraped)
		}
		promHandler.ServeHTTP(w, r)
	}))
	metricsURL, stopMetrics, err := serve(cfg.metricsAddr, metricsMux)
	if err != nil {
		return fmt.Errorf("serving metrics: %w", err)
	}
	defer stopMetrics()
	logger.Info("serving metrics", "url", metricsURL+"/metrics")
	if cfg.onMetrics != nil {
		cfg.onMetrics(metricsURL + "/metrics")
	}

	// The dependency: a price service that fails on a schedule. While
	// down it answers 503, and every other request hangs past the
	// client's timeout.
	var down atomic.Bool
	var hits, quoteHits atomic.Int64
	delays := quoteDelaysFor(cfg.timeout)
	apiURL, stopAPI, err := serve("127.0.0.1:0", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		n := hits.Add(1)
		if r.URL.Path == "/quote" && !down.Load() {
			if quoteHits.Add(1)%quoteSlowEvery == 0 { // slow, but in time
				select {
				case <-r.Context().Done():
				case <-time.After(delays.slow):
				}
			}
			fmt.Fprintln(w, "42.05")
			return
		}
		if down.Load() {
			if n%2 == 0 {
				select {
				case <-r.Context().Done():
				case <-time.After(2 * cfg.timeout):
				}
			}
			http.Error(w, "price service unavailable", http.StatusServiceUnavailable)
			return
		}
		fmt.Fprintln(w, "42.00")
	}))
	if err != nil {
		return fmt.Errorf("serving the price service: %w", err)
	}
	defer stopAPI()

	// The client: a stale price when all else fails, a breaker that stops
	// calling a failing service, a timeout that makes slow answers
	// failures. The pipeline reports under the breaker's name ("price-api")
	// and providers (here the globals): the fallback and the timeout need
	// no name of their own.
	prices := breaker.New("price-api",
		breaker.WithOpenTimeout(cfg.openTimeout),
		breaker.WithStateChangeListener(breaker.LogStateChanges(logger)))
	base := http.DefaultTransport.(*http.Transport).Clone()
	client := &http.Client{Transport: leveehttp.NewTransport(base,
		fallback.Func(stalePrice),
		breaker.Policy[*http.Response](prices),
		resilience.Timeout[*http.Response](cfg.timeout),
	)}
	defer client.CloseIdleConnections()
	// The quote pipeline: the other policies' signals (quotes.go).
	quoteClient := &http.Client{Transport: base}
	getQuote, quotes := newQuotePipeline(quoteClient, apiURL, delays)
	// A policy nobody references is garbage, and its series end with it:
	// keep the quote pipeline's until /metrics stops.
	defer runtime.KeepAlive(getQuote)
	var quoting sync.WaitGroup
	defer quoting.Wait() // before the service and the client go

	if cfg.waitScrape > 0 {
		logger.Info("waiting for a first scrape of /metrics by Prometheus", "max", cfg.waitScrape)
		select {
		case <-scraped:
		case <-time.After(cfg.waitScrape):
			return fmt.Errorf("no scrape of %s/metrics within %v", metricsURL, cfg.waitScrape)
		case <-ctx.Done():
			return nil
		}
	}

	tracer := tp.Tracer("github.com/levee-go/levee/examples/httpclient")
	ticker := time.NewTicker(cfg.interval)
	defer ticker.Stop()
	start := time.Now()
	phase := "up"
	logger.Info("price service up", "phase", phase, "for", cfg.up)
	for {
		elapsed := time.Since(start)
		if elapsed >= cfg.up+cfg.outage+cfg.recovery {
			break
		}
		if phase == "up" && elapsed >= cfg.up {
			phase = "down"
			down.Store(true)
			logger.Info("price service down", "phase", phase, "for", cfg.outage)
		}
		if phase == "down" && elapsed >= cfg.up+cfg.outage {
			phase = "recovered"
			down.Store(false)
			logger.Info("price service back up", "phase", phase, "for", cfg.recovery)
		}
		quoting.Go(func() { // in the background: its retries must not slow the prices
			quoteCtx, cancel := context.WithTimeout(ctx, 10*cfg.timeout)
			defer cancel()
			_, _ = getQuote(quoteCtx)
		})
		fetchPrice(ctx, tracer, client, apiURL, logger)
		select {
		case <-ctx.Done():
			return nil
		case <-ticker.C:
		}
	}

	quoting.Wait()
	c, q := prices.Counts(), quotes.Counts()
	logger.Info("traffic done", "breaker", prices.State().String(), "server_hits", hits.Load(),
		"success", c.Success, "failure", c.Failure, "rejected", c.Rejected, "ignored", c.Ignored,
		"quote_breaker", quotes.State().String(), "quote_success", q.Success, "quote_failure", q.Failure, "quote_rejected", q.Rejected)
	if cfg.serveFor > 0 {
		logger.Info("serving metrics until interrupted", "url", metricsURL+"/metrics", "for", cfg.serveFor)
		select {
		case <-ctx.Done():
		case <-time.After(cfg.serveFor):
		}
	}
	return nil
}

// stalePrice is the fallback: the last price known, marked stale.
func stalePrice(_ context.Context, err error) (*http.Response, error) {
	return &http.Response{
		StatusCode: http.StatusOK,
		Status:     "200 OK",
		Header:     http.Header{"X-Price-Source": {"stale"}},
		Body:       io.NopCloser(strings.NewReader("41.50\n")),
	}, nil
}

// fetchPrice makes one request in a span of its own, so that the breaker's
// and timeout's events have a span to go on, and logs what came back.
func fetchPrice(ctx context.Context, tracer trace.Tracer, client *http.Client, url string, logger *slog.Logger) {
	ctx, span := tracer.Start(ctx, "GET /price", trace.WithSpanKind(trace.SpanKindClient))
	defer span.End()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url+"/price", nil)
	if err != nil {
		logger.Error("building the request", "err", err)
		return
	}
	resp, err := client.Do(req)
	if err != nil {
		span.RecordError(err)
		span.SetStatus(codes.Error, "request failed")
		if ctx.Err() == nil {
			logger.Error("GET /price", "err", err)
		}
		return
	}
	defer resp.Body.Close()
	span.SetAttributes(semconv.HTTPResponseStatusCode(resp.StatusCode))
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		logger.Error("reading the price", "err", err)
		return
	}
	source := resp.Header.Get("X-Price-Source")
	if source == "" {
		source = "live"
	}
	logger.Info("GET /price", "status", resp.StatusCode, "price", strings.TrimSpace(string(body)), "source", source)
}

// serve serves h on addr until the returned stop is called, and returns the
// base URL it listens on.
func serve(addr string, h http.Handler) (url string, stop func(), err error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return "", nil, err
	}
	srv := &http.Server{Handler: h, ReadHeaderTimeout: 5 * time.Second}
	done := make(chan struct{})
	go func() {
		defer close(done)
		_ = srv.Serve(ln)
	}()
	stop = func() {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		if srv.Shutdown(ctx) != nil {
			_ = srv.Close()
		}
		<-done
	}
	return "http://" + ln.Addr().String(), stop, nil
}
