package main

import (
	"bytes"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestQuickstart plays the demo and checks the story it tells: the breaker
// goes closed -> open -> half-open -> closed, its timer (no call) making it
// half-open once the open timeout has passed; the fallback answers while
// the service fails and while the breaker is open; and the telemetry
// printed, all of it under the breaker's name, matches what happened. The
// demo runs on real time: the test bounds it, and checks its times as
// bounds, not values.
func TestQuickstart(t *testing.T) {
	t.Parallel()
	var out bytes.Buffer
	start := time.Now()
	done := make(chan error, 1)
	go func() { done <- run(&out) }()
	select {
	case err := <-done:
		require.NoError(t, err)
	case <-time.After(20 * time.Second):
		require.FailNow(t, "the demo did not end within 20 s")
	}
	assert.Less(t, time.Since(start), 5*time.Second, "the README promises a demo under 5 s")
	text := out.String()
	lines := strings.Split(text, "\n")

	// The call table: call, time, what the service did, answer, breaker.
	type row struct{ service, answer, breaker string }
	rows := map[string]row{}
	at := map[string]time.Duration{}
	columns := regexp.MustCompile(`\s{2,}`)
	for _, line := range lines {
		f := columns.Split(line, -1)
		if len(f) != 5 || !regexp.MustCompile(`^\d+$`).MatchString(f[0]) {
			continue
		}
		rows[f[0]] = row{f[2], f[3], f[4]}
		ms, err := strconv.Atoi(strings.TrimSuffix(strings.TrimPrefix(f[1], "+"), "ms"))
		require.NoError(t, err, "call %s's time %q", f[0], f[1])
		at[f[0]] = time.Duration(ms) * time.Millisecond
	}
	require.Len(t, rows, 9, "nine calls in the table:\n%s", text)
	want := map[string]row{
		"1": {"answers 42.00", "42.00", "closed"},
		"2": {"answers 42.10", "42.10", "closed"},
		"3": {"fails (503)", "41.99 (last known)", "closed"},
		"4": {"too slow", "41.99 (last known)", "closed"},
		"5": {"fails (503)", "41.99 (last known)", "open"},
		"6": {"not called", "41.99 (last known)", "open"},
		"7": {"not called", "41.99 (last known)", "open"},
		"8": {"answers 42.30", "42.30", "closed"},
		"9": {"answers 42.35", "42.35", "closed"},
	}
	for call, w := range want {
		assert.Equal(t, w, rows[call], "call %s", call)
	}
	assert.GreaterOrEqual(t, at["5"]-at["4"], callTimeout-time.Millisecond, "the slow call took its timeout")
	assert.GreaterOrEqual(t, at["8"]-at["5"], openTimeout-time.Millisecond, "the probe went through once the open timeout had passed")

	// The transitions, in order, each once; the half-open one announced
	// before the probe.
	var transitions []string
	for _, line := range lines {
		if l := strings.TrimSpace(line); strings.Contains(l, " -> ") && !strings.Contains(l, "fallback") {
			transitions = append(transitions, l)
		}
	}
	assert.Equal(t, []string{
		"closed -> open (3 consecutive failures)",
		"open -> half-open",
		"half-open -> closed",
	}, transitions)
	assert.Regexp(t, `(?m)^\s+\.\.\. \+\d+ms: the breaker is half-open$`, text)

	// The spans: two transitions caused by calls are children of them;
	// the one the timer caused is a root span, linked to the call that
	// opened the breaker.
	assert.Equal(t, 2, strings.Count(text, "levee.circuit_breaker.transition (internal, child)"))
	assert.Equal(t, 1, strings.Count(text, "levee.circuit_breaker.transition (internal, root: no call caused it)"))
	assert.Regexp(t, `(?m)root: no call caused it\)\n(\s+levee\..*\n)+\s+link to GET /price  call=5$`, text)
	assert.Equal(t, 2, strings.Count(text, "event levee.circuit_breaker.rejected"))
	assert.Equal(t, 1, strings.Count(text, "event levee.timeout.exceeded"))
	assert.Equal(t, 5, strings.Count(text, "event levee.fallback.executed"))
	assert.Equal(t, 5, strings.Count(text, "event levee.fallback.executed  levee.policy.name=pricing"),
		"the fallback reports under the breaker's name")

	// The metric values, the fallback's and the timeout's under the
	// breaker's name too.
	for _, series := range []string{
		`{levee.circuit_breaker.state=closed levee.policy.name=pricing}  1`,
		`{levee.circuit_breaker.state=open levee.policy.name=pricing}  0`,
		`{levee.outcome=success levee.policy.name=pricing}  4`,
		`{levee.outcome=failure levee.policy.name=pricing}  3`,
		`{levee.outcome=rejected levee.policy.name=pricing}  2`,
		`{levee.circuit_breaker.from=closed levee.circuit_breaker.to=open levee.circuit_breaker.trip_rule=consecutive_failures levee.policy.name=pricing}  1`,
		`{levee.circuit_breaker.from=open levee.circuit_breaker.to=half_open levee.policy.name=pricing}  1`,
		`{levee.circuit_breaker.from=half_open levee.circuit_breaker.to=closed levee.policy.name=pricing}  1`,
		`{error.type=circuit_open levee.policy.name=pricing}  2`,
		`{error.type=timeout levee.policy.name=pricing}  1`,
		`{error.type=*main.unavailableError levee.policy.name=pricing}  2`,
		`{levee.policy.name=pricing}  1`,
	} {
		key, value, _ := strings.Cut(series, "  ")
		re := regexp.MustCompile(`(?m)^\s+` + regexp.QuoteMeta(key) + `\s+` + value + `$`)
		assert.Regexp(t, re, text, "series %s", key)
	}
	assert.NotContains(t, text, "levee.policy.name=timeout", "no policy reports under a default name")
	assert.NotContains(t, text, "levee.policy.name=fallback")
}
