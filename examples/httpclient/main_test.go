package main

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// syncBuffer is a bytes.Buffer safe for the concurrent writes of loggers
// and exporters.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// scraper bounds each scrape: a /metrics that hangs fails the test.
var scraper = &http.Client{Timeout: 5 * time.Second}

func scrape(t *testing.T, url string) string {
	resp, err := scraper.Get(url)
	if err != nil {
		return ""
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	return string(body)
}

// The demo's whole story, fast: /metrics shows the breaker open during the
// outage and closed after it, and the spans and logs tell the same.
func TestRun_MetricsShowTheBreakerOpenDuringTheOutageAndClosedAfter(t *testing.T) {
	const (
		open   = `levee_circuit_breaker_state{levee_circuit_breaker_state="open",levee_policy_name="price-api",`
		closed = `levee_circuit_breaker_state{levee_circuit_breaker_state="closed",levee_policy_name="price-api",`
	)
	metricsURL := make(chan string, 1)
	cfg := config{
		metricsAddr: "127.0.0.1:0",
		up:          100 * time.Millisecond,
		outage:      800 * time.Millisecond,
		recovery:    500 * time.Millisecond,
		serveFor:    time.Minute, // the test ends it
		interval:    10 * time.Millisecond,
		openTimeout: 100 * time.Millisecond,
		timeout:     30 * time.Millisecond,
		onMetrics:   func(url string) { metricsURL <- url },
	}
	var stdout, stderr syncBuffer
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- run(ctx, cfg, &stdout, &stderr) }()
	var url string
	select {
	case url = <-metricsURL:
	case err := <-done:
		require.FailNow(t, "the demo ended before serving /metrics", "error: %v\nstderr:\n%s", err, stderr.String())
	case <-time.After(10 * time.Second):
		require.FailNow(t, "the demo did not serve /metrics within 10 s", "stderr:\n%s", stderr.String())
	}

	seen := func(series string) func() bool {
		return func() bool {
			for line := range strings.SplitSeq(scrape(t, url), "\n") {
				if strings.HasPrefix(line, series) && strings.HasSuffix(line, "} 1") {
					return true
				}
			}
			return false
		}
	}
	require.Eventually(t, seen(open), 5*time.Second, 5*time.Millisecond, "the breaker never showed open")
	require.Eventually(t, func() bool { return strings.Contains(stderr.String(), "traffic done") }, 10*time.Second, 10*time.Millisecond,
		"the traffic did not end within 10 s")
	assert.True(t, seen(closed)(), "the breaker is not closed after the outage")
	metrics := scrape(t, url)
	for _, name := range []string{
		"levee_circuit_breaker_calls_total{",
		"levee_circuit_breaker_transitions_total{",
		`levee_timeout_exceeded_total{levee_policy_name="price-api",`,
		`levee_fallback_executions_total{error_type="circuit_open",levee_policy_name="price-api",`,
	} {
		assert.Contains(t, metrics, name, "the timeout and the fallback report under the breaker's name")
	}
	// The quote pipeline ran, and its policies report under one name, the
	// first among them that has one (its bulkhead's).
	for _, name := range []string{
		`levee_bulkhead_calls_total{levee_outcome="admitted",levee_policy_name="quote-api",`,
		`levee_circuit_breaker_failure_rate_ratio{levee_policy_name="quote-api",`,
		`levee_throttle_calls_total{levee_outcome="success",levee_policy_name="quote-api",`,
		`levee_rate_limit_calls_total{levee_outcome="admitted",levee_policy_name="quote-api",`,
	} {
		assert.Contains(t, metrics, name, "the quote pipeline's series")
	}

	cancel()
	select {
	case err := <-done:
		require.NoError(t, err)
	case <-time.After(10 * time.Second):
		require.FailNow(t, "the demo did not return within 10 s of its context ending")
	}
	logs := stderr.String()
	assert.Contains(t, logs, `level=ERROR msg="levee: circuit breaker opened"`)
	assert.Contains(t, logs, `level=INFO msg="levee: circuit breaker closed"`)
	assert.Contains(t, logs, "source=stale")
	spans := stdout.String()
	assert.Contains(t, spans, `"Name":"levee.circuit_breaker.transition"`)
	assert.Contains(t, spans, `"Name":"levee.circuit_breaker.rejected"`)
}

func TestParseFlags_RefusesNonPositiveDurations(t *testing.T) {
	_, err := parseFlags([]string{"-interval", "0s"}, io.Discard)
	require.ErrorContains(t, err, "-interval must be positive")
	cfg, err := parseFlags(nil, io.Discard)
	require.NoError(t, err)
	assert.Less(t, cfg.up+cfg.outage+cfg.recovery+cfg.serveFor, 15*time.Second, "the default demo must end by itself well within 15 s")
}
