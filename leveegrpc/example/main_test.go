package main

import (
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// The demo's story, whatever the timing of the machine: the breaker opens
// during the outage and rejects calls without sending them, and a probe
// closes it once the server is back.
func TestRun_TheBreakerOpensDuringTheOutageAndClosesAfter(t *testing.T) {
	var out strings.Builder

	require.NoError(t, run(&out))

	text := out.String()
	up, down, back := strings.Index(text, "-- the server is up"), strings.Index(text, "-- the server goes down"), strings.Index(text, "-- the server is back")
	require.True(t, up >= 0 && up < down && down < back, "the three phases, in order:\n%s", text)
	assert.Contains(t, text[up:down], "call answered SERVING")
	assert.Contains(t, text[down:back], "call failed: Unavailable")
	assert.Contains(t, text[down:back], "breaker open")
	assert.Contains(t, text, "rejected: Unavailable, nothing sent")
	assert.Contains(t, text[back:], "answered SERVING") // by the probe, but for a timer that fires between State and the call
	lines := strings.Split(strings.TrimSpace(text), "\n")
	assert.Contains(t, lines[len(lines)-1], "call answered SERVING")
	assert.Contains(t, lines[len(lines)-1], "breaker closed")
}
