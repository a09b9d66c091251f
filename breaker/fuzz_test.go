package breaker_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"testing/synctest"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/levee-go/levee/breaker"
)

// fuzzOpenTimeouts are the open timeouts a program's second byte chooses
// from: from the smallest valid one to the default and beyond (the last one
// is past modelHorizon: it never ends within a program).
var fuzzOpenTimeouts = [...]time.Duration{
	1, time.Microsecond, time.Millisecond, 250 * time.Millisecond,
	time.Second, breaker.DefaultOpenTimeout, time.Hour, 1<<62 - 1,
}

// fuzzMaxOps bounds the operations run from one input, so a long input costs
// no more than a long rapid program.
const fuzzMaxOps = 256

// Operations of a fuzz program: each is two bytes, an opcode and an
// argument.
const (
	fzCall      = iota // arg: outcome ((arg&0x7f)%numModelOutcomes), via Policy (arg&0x80)
	fzStart            // arg: via Policy (arg&1)
	fzFinish           // arg: which call in flight (arg>>3), outcome ((arg&7)%numModelOutcomes)
	fzBurst            // arg: size 2 + arg%7, via Policy mask (arg)
	fzAdvance          // arg: kind (arg%5), fraction (arg)
	fzState            // State()
	fzForceOpen        // ForceOpen
	fzReset            // Reset
	fzCallDone         // arg: via Policy (arg&1); the call's context is done before it starts
	fzCallNil          // Call(ctx, nil)
	fzNumOps
)

// Flags of a program's third byte.
const (
	fzFlagIsFailure = 1 << iota // WithIsFailure: errModelNotFound is a success
	fzFlagIsIgnored             // WithIsIgnored: errModelIgnored is neither
)

// runFuzzProgram runs program against the breaker and the reference model of
// model_test.go, in a synctest bubble of its own. Byte 0 chooses the
// threshold (1 + b%5), byte 1 the open timeout, byte 2 the predicates
// (fzFlagIsFailure, fzFlagIsIgnored); the rest is pairs of opcode and
// argument.
func runFuzzProgram(t *testing.T, program []byte) {
	boundedSyncTest(t, bubbleBound, func(t *testing.T) {
		header := [3]byte{2, 4, fzFlagIsFailure}
		copy(header[:], program)
		h := newModelHarness(t, modelConfig{
			threshold:     1 + int(header[0]%5),
			openTimeout:   fuzzOpenTimeouts[int(header[1])%len(fuzzOpenTimeouts)],
			withIsFailure: header[2]&fzFlagIsFailure != 0,
			withIsIgnored: header[2]&fzFlagIsIgnored != 0,
		})
		defer h.releaseAll()
		var ops []byte
		if len(program) > len(header) {
			ops = program[len(header):]
		}
		ops = ops[:min(len(ops), 2*fuzzMaxOps)]
		h.check()
		for i := 0; i+1 < len(ops); i += 2 {
			op, arg := ops[i]%fzNumOps, ops[i+1]
			switch op {
			case fzCall:
				h.call(modelOutcome((arg&0x7f)%uint8(numModelOutcomes)), arg&0x80 != 0)
			case fzStart:
				if len(h.inflight) < modelMaxInFlight {
					h.start(arg&1 == 1)
				}
			case fzFinish:
				if len(h.inflight) > 0 {
					h.finish(int(arg>>3)%len(h.inflight), modelOutcome((arg&7)%uint8(numModelOutcomes)))
				}
			case fzBurst:
				if n := min(2+int(arg%7), modelMaxInFlight-len(h.inflight)); n >= 2 {
					h.burst(n, uint64(arg))
				}
			case fzAdvance:
				h.advanceKind(int(arg%5), arg)
			case fzState:
				h.readState()
			case fzForceOpen:
				h.forceOpen()
			case fzReset:
				h.reset()
			case fzCallDone:
				h.callDone(arg&1 == 1)
			case fzCallNil:
				h.callNil()
			}
			h.check()
		}
	})
}

// fuzzProgram builds a program from a header and operations, for seeds.
func fuzzProgram(threshold, timeoutIndex, flags byte, ops ...byte) []byte {
	return append([]byte{threshold - 1, timeoutIndex, flags}, ops...)
}

// FuzzBreakerStateMachine interprets its input as a program of calls, time
// passing, State reads and operator actions, and checks the breaker against
// the reference model after every step, each input in a synctest bubble.
// Its seeds in testdata/fuzz/FuzzBreakerStateMachine run with every go
// test.
func FuzzBreakerStateMachine(f *testing.F) {
	// Opens after three failures, rejects, recovers through a probe.
	f.Add(fuzzProgram(3, 4, fzFlagIsFailure,
		fzCall, byte(endFailure), fzCall, byte(endFailure), fzCall, byte(endFailure)|0x80,
		fzCall, byte(endSuccess), fzAdvance, 1, fzCall, byte(endSuccess), fzState, 0))
	// A probe in flight rejects a burst; its failure reopens for a fresh timeout.
	f.Add(fuzzProgram(1, 2, 0,
		fzCall, byte(endPanic), fzAdvance, 3, fzStart, 0, fzBurst, 6, fzFinish, byte(endFailure),
		fzAdvance, 2, fzState, 0, fzAdvance, 1, fzState, 0))
	// A canceled probe frees the slot for the next caller.
	f.Add(fuzzProgram(2, 0, fzFlagIsFailure,
		fzCall, byte(endFailure), fzCall, byte(endNotCounted), fzCall, byte(endFailure), fzCall, byte(endFailure),
		fzAdvance, 4, fzStart, 1, fzFinish, byte(endCanceled), fzStart, 0, fzFinish, byte(endSuccess)))
	// Operators: forced open ignores the timeout; Reset starts afresh from anywhere.
	f.Add(fuzzProgram(1, 5, 0,
		fzStart, 0, fzForceOpen, 0, fzAdvance, 4, fzCall, 0, fzFinish, byte(endFailure),
		fzReset, 0, fzReset, 0, fzForceOpen, 0, fzForceOpen, 0, fzReset, 0, fzCall, byte(endFailure)))
	// Calls done at entry and nil functions count as nothing but ignored,
	// in every state; ignored errors free the probe slot.
	f.Add(fuzzProgram(1, 4, fzFlagIsFailure|fzFlagIsIgnored,
		fzCallDone, 0, fzCallNil, 0, fzCall, byte(endIgnored), fzCall, byte(endFailure), fzCallDone, 1,
		fzAdvance, 1, fzCallDone, 0, fzStart, 0, fzFinish, byte(endIgnored), fzCall, byte(endNotCounted)))
	// A probe held past the open timeout gives way to the next call.
	f.Add(fuzzProgram(1, 1, 0,
		fzCall, byte(endFailure), fzAdvance, 1, fzStart, 0, fzAdvance, 2, fzStart, 1, fzAdvance, 1,
		fzStart, 1, fzFinish, byte(endFailure), fzFinish, byte(endSuccess)))
	f.Fuzz(runFuzzProgram)
}

// fuzzTimeHorizon is the longest open timeout FuzzBreakerConfig lets pass
// on the bubble's clock (see modelHorizon); a longer one is only checked to
// hold the breaker open that long.
const fuzzTimeHorizon = modelHorizon

// FuzzBreakerConfig feeds arbitrary settings to New: it either panics with a
// message naming every invalid setting, or returns a breaker that opens after
// exactly threshold consecutive failures and whose open timer makes it
// half-open after exactly the open timeout, in a synctest bubble.
func FuzzBreakerConfig(f *testing.F) {
	f.Add("dep", 3, int64(30*time.Second), uint16(3))
	f.Add("dep", 1, int64(1), uint16(0))
	f.Add("", 0, int64(0), uint16(1))
	f.Add("db", -7, int64(-1), uint16(9))
	f.Add("db", 9, int64(1<<63-1), uint16(20))
	f.Fuzz(func(t *testing.T, name string, threshold int, openTimeout int64, failures uint16) {
		boundedSyncTest(t, bubbleBound, func(t *testing.T) { fuzzConfig(t, name, threshold, time.Duration(openTimeout), failures) })
	})
}

func fuzzConfig(t *testing.T, name string, threshold int, openTimeout time.Duration, failures uint16) {
	var want []string
	if name == "" {
		want = append(want, "name")
	}
	if threshold < 1 {
		want = append(want, "WithFailureThreshold")
	}
	if openTimeout <= 0 {
		want = append(want, "WithOpenTimeout")
	}
	var b *breaker.Breaker
	msg := fuzzPanicMessage(func() {
		b = breaker.New(name,
			breaker.WithFailureThreshold(threshold),
			breaker.WithOpenTimeout(openTimeout))
	})
	if len(want) > 0 {
		require.NotEmpty(t, msg, "New must refuse %v", want)
		for _, setting := range want {
			assert.Contains(t, msg, setting, "the panic must name %s", setting)
		}
		return
	}
	require.Empty(t, msg, "valid settings must not panic")
	require.Equal(t, name, b.Name())

	ctx := context.Background()
	boom := errors.New("boom")
	ran := 0
	for i := range int(failures) {
		err := b.Call(ctx, func(context.Context) error { ran++; return boom })
		if i < threshold {
			require.Same(t, boom, err, "failure %d of threshold %d runs the function", i+1, threshold)
		} else {
			require.ErrorIs(t, err, breaker.ErrOpen, "call %d after the breaker opened at %d", i+1, threshold)
		}
	}
	assert.Equal(t, min(int(failures), threshold), ran, "the function runs until the threshold is reached")
	if int(failures) < threshold {
		assert.Equal(t, breaker.Closed, b.State(), "%d failures below threshold %d", failures, threshold)
		return
	}
	require.Equal(t, breaker.Open, b.State(), "%d failures reach threshold %d", failures, threshold)
	var openErr *breaker.OpenError
	require.ErrorAs(t, b.Call(ctx, func(context.Context) error { return nil }), &openErr)
	assert.Equal(t, openTimeout, openErr.RetryAfter())
	if openTimeout > fuzzTimeHorizon {
		time.Sleep(fuzzTimeHorizon)
		synctest.Wait()
		assert.Equal(t, breaker.Open, b.State(), "%v into an open timeout of %v", fuzzTimeHorizon, openTimeout)
		return
	}
	time.Sleep(openTimeout - 1)
	synctest.Wait()
	assert.Equal(t, breaker.Open, b.State(), "one nanosecond before the open timeout")
	time.Sleep(1)
	synctest.Wait()
	assert.Equal(t, breaker.HalfOpen, b.State(), "at the open timeout, by the timer alone")
	require.NoError(t, b.Call(ctx, func(context.Context) error { return nil }))
	assert.Equal(t, breaker.Closed, b.State(), "after a successful probe")
}

// fuzzPanicMessage returns the message f panics with, or "" if it returns.
func fuzzPanicMessage(f func()) (msg string) {
	defer func() {
		if r := recover(); r != nil {
			msg = fmt.Sprint(r)
			if msg == "" {
				msg = "(empty panic)"
			}
		}
	}()
	f()
	return ""
}

// TestFuzzSeedsCoverEveryOperation guards the committed corpus against
// growing stale: together with the f.Add seeds, it must use every opcode.
func TestFuzzSeedsCoverEveryOperation(t *testing.T) {
	t.Parallel()
	entries, err := readFuzzCorpus("FuzzBreakerStateMachine")
	require.NoError(t, err)
	require.NotEmpty(t, entries, "testdata/fuzz/FuzzBreakerStateMachine holds the committed seeds")
	seen := make(map[byte]bool)
	for _, program := range entries {
		if len(program) <= 3 {
			continue
		}
		ops := program[3:]
		for i := 0; i+1 < len(ops); i += 2 {
			seen[ops[i]%fzNumOps] = true
		}
	}
	for op := range byte(fzNumOps) {
		assert.True(t, seen[op], "no committed seed uses opcode %d", op)
	}
	configs, err := readFuzzCorpus("FuzzBreakerConfig")
	require.NoError(t, err)
	assert.NotEmpty(t, configs, "testdata/fuzz/FuzzBreakerConfig holds the committed seeds")
}

// readFuzzCorpus returns the []byte value of each corpus file of target
// (or just notes the file, for targets of other shapes).
func readFuzzCorpus(target string) ([][]byte, error) {
	dir := "testdata/fuzz/" + target
	files, err := os.ReadDir(dir)
	if err != nil {
		return nil, err
	}
	var out [][]byte
	for _, file := range files {
		name := file.Name()
		data, err := os.ReadFile(filepath.Join(dir, name))
		if err != nil {
			return nil, err
		}
		lines := strings.Split(strings.TrimSpace(string(data)), "\n")
		if len(lines) < 2 || lines[0] != "go test fuzz v1" {
			return nil, fmt.Errorf("%s/%s: not a go test fuzz v1 file", dir, name)
		}
		v := lines[1]
		if !strings.HasPrefix(v, "[]byte(") {
			out = append(out, nil)
			continue
		}
		s, err := strconv.Unquote(strings.TrimSuffix(strings.TrimPrefix(v, "[]byte("), ")"))
		if err != nil {
			return nil, fmt.Errorf("%s/%s: %w", dir, name, err)
		}
		out = append(out, []byte(s))
	}
	return out, nil
}
