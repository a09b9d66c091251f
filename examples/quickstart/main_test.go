package main

import (
	"bytes"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestQuickstart plays the demo and checks the story it tells: the breaker
// goes closed -> open -> half-open -> closed, the fallback answers while the
// service fails and while the breaker is open, and the telemetry printed
// matches what happened.
func TestQuickstart(t *testing.T) {
	t.Parallel()
	var out bytes.Buffer
	start := time.Now()
	require.NoError(t, run(&out))
	assert.Less(t, time.Since(start), 5*time.Second, "the README promises a demo under 5 s")
	text := out.String()
	lines := strings.Split(text, "\n")

	// The call table: call, clock, what the service did, answer, breaker.
	type row struct{ clock, service, answer, breaker string }
	rows := map[string]row{}
	columns := regexp.MustCompile(`\s{2,}`)
	for _, line := range lines {
		if f := columns.Split(line, -1); len(f) == 5 && regexp.MustCompile(`^\d+$`).MatchString(f[0]) {
			rows[f[0]] = row{f[1], f[2], f[3], f[4]}
		}
	}
	require.Len(t, rows, 9, "nine calls in the table:\n%s", text)
	want := map[string]row{
		"1": {"+0s", "answers 42.00", "42.00", "closed"},
		"3": {"+2s", "fails (503)", "41.99 (last known)", "closed"},
		"4": {"+3s", "too slow", "41.99 (last known)", "closed"},
		"5": {"+4s", "fails (503)", "41.99 (last known)", "open"},
		"6": {"+5s", "not called", "41.99 (last known)", "open"},
		"7": {"+6s", "not called", "41.99 (last known)", "open"},
		"8": {"+37s", "answers 42.30", "42.30", "closed"},
		"9": {"+38s", "answers 42.35", "42.35", "closed"},
	}
	for call, w := range want {
		assert.Equal(t, w, rows[call], "call %s", call)
	}

	// The transitions, in order, each once.
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

	// The spans: two transitions caused by calls are children of them;
	// the one the clock caused is a root span.
	assert.Equal(t, 2, strings.Count(text, "levee.circuit_breaker.transition (internal, child)"))
	assert.Equal(t, 1, strings.Count(text, "levee.circuit_breaker.transition (internal, root: no call caused it)"))
	assert.Equal(t, 2, strings.Count(text, "event levee.circuit_breaker.rejected"))
	assert.Equal(t, 1, strings.Count(text, "event levee.timeout.exceeded"))
	assert.Equal(t, 5, strings.Count(text, "event levee.fallback.executed"))

	// The metric values.
	for _, series := range []string{
		`{levee.circuit_breaker.state=closed levee.policy.name=pricing}  1`,
		`{levee.circuit_breaker.state=open levee.policy.name=pricing}  0`,
		`{levee.outcome=success levee.policy.name=pricing}  4`,
		`{levee.outcome=failure levee.policy.name=pricing}  3`,
		`{levee.outcome=rejected levee.policy.name=pricing}  2`,
		`{levee.circuit_breaker.from=closed levee.circuit_breaker.to=open levee.policy.name=pricing}  1`,
		`{levee.circuit_breaker.from=open levee.circuit_breaker.to=half_open levee.policy.name=pricing}  1`,
		`{levee.circuit_breaker.from=half_open levee.circuit_breaker.to=closed levee.policy.name=pricing}  1`,
		`{error.type=circuit_open levee.policy.name=pricing}  2`,
		`{error.type=timeout levee.policy.name=pricing}  1`,
		`{error.type=*main.unavailableError levee.policy.name=pricing}  2`,
	} {
		key, value, _ := strings.Cut(series, "  ")
		re := regexp.MustCompile(`(?m)^\s+` + regexp.QuoteMeta(key) + `\s+` + value + `$`)
		assert.Regexp(t, re, text, "series %s", key)
	}
}
