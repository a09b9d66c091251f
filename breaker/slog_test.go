package breaker_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"strings"
	"testing"
	"testing/synctest"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/levee-go/levee/breaker"
	"github.com/levee-go/levee/telemetry"
)

// decodeLines parses one JSON object per line, as slog.JSONHandler writes.
func decodeLines(t *testing.T, buf *bytes.Buffer) []map[string]any {
	t.Helper()
	var records []map[string]any
	for line := range strings.SplitSeq(strings.TrimSpace(buf.String()), "\n") {
		if line == "" {
			continue
		}
		var rec map[string]any
		require.NoError(t, json.Unmarshal([]byte(line), &rec), "line %q", line)
		records = append(records, rec)
	}
	return records
}

func TestLogStateChanges_LogsEachTransitionAtItsLevelWithTelemetryAttributes(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var buf bytes.Buffer
		logger := slog.New(slog.NewJSONHandler(&buf, &slog.HandlerOptions{Level: slog.LevelDebug}))
		b := breaker.New("payments",
			breaker.WithFailureThreshold(2),
			breaker.WithOpenTimeout(time.Second),
			breaker.WithStateChangeListener(breaker.LogStateChanges(logger)))
		ctx := context.Background()
		boom := errors.New("boom")
		fail := func(context.Context) error { return boom }
		ok := func(context.Context) error { return nil }

		require.ErrorIs(t, b.Call(ctx, fail), boom)
		require.ErrorIs(t, b.Call(ctx, fail), boom) // closed -> open
		time.Sleep(time.Second)                     // open -> half-open, by the open timer
		synctest.Wait()
		require.Equal(t, breaker.HalfOpen, b.State())
		require.NoError(t, b.Call(ctx, ok)) // half-open -> closed
		b.ForceOpen(ctx)                    // closed -> open, forced
		synctest.Wait()                     // the listener runs on the breaker's delivery goroutine

		want := []map[string]any{
			{"level": "ERROR", "msg": "levee: circuit breaker opened", "from": "closed", "to": "open", "failures": 2.0, "forced": false, "rule": "consecutive_failures"},
			{"level": "WARN", "msg": "levee: circuit breaker half-open", "from": "open", "to": "half_open", "failures": 0.0, "forced": false},
			{"level": "INFO", "msg": "levee: circuit breaker closed", "from": "half_open", "to": "closed", "failures": 0.0, "forced": false},
			{"level": "ERROR", "msg": "levee: circuit breaker opened", "from": "closed", "to": "open", "failures": 0.0, "forced": true},
		}
		records := decodeLines(t, &buf)
		require.Len(t, records, len(want))
		for i, w := range want {
			rec := records[i]
			assert.Equal(t, w["level"], rec["level"], "record %d", i)
			assert.Equal(t, w["msg"], rec["msg"], "record %d", i)
			assert.Equal(t, "payments", rec[string(telemetry.KeyPolicyName)], "record %d", i)
			assert.Equal(t, w["from"], rec[string(telemetry.KeyBreakerFrom)], "record %d", i)
			assert.Equal(t, w["to"], rec[string(telemetry.KeyBreakerTo)], "record %d", i)
			assert.Equal(t, w["failures"], rec[string(telemetry.KeyBreakerConsecutiveFailures)], "record %d", i)
			assert.Equal(t, w["forced"], rec[string(telemetry.KeyBreakerForced)], "record %d", i)
			assert.Equal(t, w["rule"], rec[string(telemetry.KeyBreakerTripRule)], "record %d: only a trip names its rule", i)
		}
	})
}

func TestLogStateChanges_NilLoggerLogsToTheDefaultLoggerAtChangeTime(t *testing.T) {
	listener := breaker.LogStateChanges(nil) // built before the default is set
	var buf bytes.Buffer
	previous := slog.Default()
	slog.SetDefault(slog.New(slog.NewJSONHandler(&buf, nil)))
	t.Cleanup(func() { slog.SetDefault(previous) })

	listener(breaker.StateChange{Name: "search", From: breaker.Closed, To: breaker.Open, ConsecutiveFailures: 3})

	records := decodeLines(t, &buf)
	require.Len(t, records, 1)
	assert.Equal(t, "ERROR", records[0]["level"])
	assert.Equal(t, "search", records[0][string(telemetry.KeyPolicyName)])
	assert.Equal(t, 3.0, records[0][string(telemetry.KeyBreakerConsecutiveFailures)])
}

func TestLogStateChanges_RespectsTheHandlerLevel(t *testing.T) {
	var buf bytes.Buffer
	logger := slog.New(slog.NewJSONHandler(&buf, &slog.HandlerOptions{Level: slog.LevelWarn}))
	listener := breaker.LogStateChanges(logger)

	listener(breaker.StateChange{Name: "db", From: breaker.HalfOpen, To: breaker.Closed})
	listener(breaker.StateChange{Name: "db", From: breaker.Open, To: breaker.HalfOpen})

	records := decodeLines(t, &buf)
	require.Len(t, records, 1, "the info record for closing is below the handler's level")
	assert.Equal(t, "WARN", records[0]["level"])
	assert.Equal(t, "half_open", records[0][string(telemetry.KeyBreakerTo)])
}
