package main

import (
	"bytes"
	"context"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestRun plays the demo and checks the story it tells: the retry waits the
// server's Retry-After, retries a timed-out attempt, hands over the last 503
// when its attempts run out, and stops at once on an open breaker. The demo
// runs on real time: the test bounds it, and checks no time but the wait
// for Retry-After.
func TestRun(t *testing.T) {
	var out bytes.Buffer
	start := time.Now()
	done := make(chan error, 1)
	go func() { done <- run(context.Background(), &out) }()
	select {
	case err := <-done:
		require.NoError(t, err, "output:\n%s", out.String())
	case <-time.After(20 * time.Second):
		require.FailNow(t, "the demo did not end within 20 s")
	}
	elapsed := time.Since(start)
	text := out.String()

	calls := strings.Split(text, "\ncall ")
	require.Len(t, calls, 5, "a header and four calls:\n%s", text)
	// What each call must show, in the order of the demo.
	expect := [][]string{
		{"attempt 1  +0.0s  503 Service Unavailable, Retry-After 1s", "attempt 2  +1.", "=> after 2 attempts: 200 OK: 42.00"},
		{"attempt 1  +0.", "timed out after 200ms", "attempt 2 ", "=> after 2 attempts: 200 OK: 42.10"},
		{"attempt 3 ", "=> after 3 attempts: 503 Service Unavailable, the retries ran out: Service Unavailable"},
		{"attempt 1  +0.0s  rejected: the breaker is open",
			`=> after 1 attempt: error: levee: retry "prices": stopped after 1 attempt: the error asks to wait longer than the maximum delay: levee: circuit breaker "prices" is open`},
	}
	for i, lines := range expect {
		for _, line := range lines {
			assert.Contains(t, calls[i+1], line, "call %d", i+1)
		}
	}
	assert.NotContains(t, calls[3], "attempt 4", "three attempts at most")
	assert.NotContains(t, calls[4], "attempt 2", "no retry after the breaker's rejection")
	assert.Contains(t, text, "the server got 7 requests; the breaker is open, it counted 2 successes, 5 failures, 1 rejected")
	assert.GreaterOrEqual(t, elapsed, time.Second, "the retry waited the server's Retry-After")
	assert.Less(t, elapsed, 5*time.Second, "the demo ends in about two seconds")
}
