package leveegrpc

import (
	"context"
	"errors"
	"fmt"
	"math"
	"strconv"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/wrapperspb"

	"github.com/levee-go/levee/breaker"
	"github.com/levee-go/levee/bulkhead"
	"github.com/levee-go/levee/ratelimit"
	"github.com/levee-go/levee/resilience"
	"github.com/levee-go/levee/throttle"
)

func TestDefaultIsFailure_CountsTheFiveCodesOfAnUnhealthyServerAndNoOther(t *testing.T) {
	failures := map[codes.Code]bool{
		codes.Unavailable: true, codes.DeadlineExceeded: true, codes.ResourceExhausted: true,
		codes.Internal: true, codes.Unknown: true,
	}
	for code := codes.OK; code <= codes.Unauthenticated+3; code++ {
		assert.Equal(t, failures[code], DefaultIsFailure(status.New(code, "")), "%v", code)
	}
}

func TestCodeName_IsCanonicalAndBounded(t *testing.T) {
	assert.Equal(t, "OK", codeName(codes.OK))
	assert.Equal(t, "CANCELLED", codeName(codes.Canceled))
	assert.Equal(t, "DEADLINE_EXCEEDED", codeName(codes.DeadlineExceeded))
	assert.Equal(t, "UNAUTHENTICATED", codeName(codes.Unauthenticated))
	for code := codes.OK; code <= codes.Unauthenticated; code++ {
		assert.NotEmpty(t, codeName(code), "%v has a name", code)
	}
	assert.Equal(t, "_OTHER", codeName(codes.Unauthenticated+1), "a code gRPC does not define must not become an attribute value")
	assert.Equal(t, "_OTHER", codeName(math.MaxUint32))
}

func TestParsePushback_ReadsWholeMillisecondsAndNothingElse(t *testing.T) {
	cases := []struct {
		value string
		want  time.Duration
	}{
		{"0", 0},
		{"1", time.Millisecond},
		{"250", 250 * time.Millisecond},
		{"0060000", time.Minute},
		{"9223372036854", 9223372036854 * time.Millisecond}, // the largest that fits
		{"9223372036855", time.Duration(9223372036854) * time.Millisecond},
		{"99999999999999999999999999", time.Duration(9223372036854) * time.Millisecond}, // "very long", not malformed
		{"", 0},
		{"-1", 0}, // gRPC reads a negative pushback as "do not retry": no hint for levee
		{"+5", 0},
		{" 5", 0},
		{"5 ", 0},
		{"1.5", 0},
		{"5ms", 0},
		{"0x10", 0},
		{"٣", 0}, // a digit, but not an ASCII one
	}
	for _, tc := range cases {
		assert.Equal(t, tc.want, parsePushback(tc.value), "%q", tc.value)
	}
}

// FuzzParsePushback: the header's value comes from the network. Whatever it
// is, parsing never panics and never returns a negative delay; a run of
// digits that fits is read exactly; and what a server interceptor writes
// reads back as the same delay.
func FuzzParsePushback(f *testing.F) {
	for _, seed := range []string{"0", "1", "250", "-1", "", "1.5", "99999999999999999999", " 7", "\x00", "٣"} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, value string) {
		d := parsePushback(value)
		if d < 0 {
			t.Fatalf("parsePushback(%q) = %v, negative", value, d)
		}
		if n, err := strconv.ParseInt(value, 10, 64); err == nil && n >= 0 && value[0] != '+' && n <= math.MaxInt64/int64(time.Millisecond) {
			if want := time.Duration(n) * time.Millisecond; d != want {
				t.Fatalf("parsePushback(%q) = %v, want %v", value, d, want)
			}
		}
		if d > 0 {
			if again := parsePushback(formatPushback(d)); again != d {
				t.Fatalf("formatPushback(%v) = %q reads back as %v", d, formatPushback(d), again)
			}
		}
	})
}

func TestWholeMillis_RoundsUpToAtLeastOneMillisecond(t *testing.T) {
	assert.Equal(t, time.Millisecond, wholeMillis(0))
	assert.Equal(t, time.Millisecond, wholeMillis(-time.Second))
	assert.Equal(t, time.Millisecond, wholeMillis(time.Nanosecond))
	assert.Equal(t, 2*time.Millisecond, wholeMillis(time.Millisecond+time.Nanosecond))
	assert.Equal(t, 30*time.Second, wholeMillis(30*time.Second))
	assert.Equal(t, time.Duration(math.MaxInt64).Truncate(time.Millisecond), wholeMillis(math.MaxInt64), "no overflow")
	assert.Equal(t, "1500", formatPushback(wholeMillis(1499*time.Millisecond+1)))
}

func TestRetryAfter_ThePushbackTrailerFirstThenTheHeaderThenRetryInfo(t *testing.T) {
	withInfo, err := status.New(codes.Unavailable, "busy").WithDetails(&errdetails.RetryInfo{RetryDelay: durationpb.New(3 * time.Second)})
	require.NoError(t, err)
	trailer := metadata.Pairs(PushbackKey, "100")
	header := metadata.Pairs(PushbackKey, "200")

	assert.Equal(t, 100*time.Millisecond, retryAfter(withInfo, trailer, header))
	assert.Equal(t, 200*time.Millisecond, retryAfter(withInfo, nil, header))
	assert.Equal(t, 3*time.Second, retryAfter(withInfo, nil, nil))
	assert.Zero(t, retryAfter(status.New(codes.Unavailable, "busy")))
	assert.Zero(t, retryAfter(withInfo, metadata.Pairs(PushbackKey, "-1")), "a malformed pushback is no hint, and hides the RetryInfo")

	negative, err := status.New(codes.Unavailable, "busy").WithDetails(&errdetails.RetryInfo{RetryDelay: durationpb.New(-time.Second)})
	require.NoError(t, err)
	assert.Zero(t, retryAfter(negative))
	invalid, err := status.New(codes.Unavailable, "busy").WithDetails(&errdetails.RetryInfo{RetryDelay: &durationpb.Duration{Seconds: 1, Nanos: -1}})
	require.NoError(t, err)
	assert.Zero(t, retryAfter(invalid))
	other, err := status.New(codes.Unavailable, "busy").WithDetails(&errdetails.ErrorInfo{Reason: "X"})
	require.NoError(t, err)
	assert.Zero(t, retryAfter(other))
}

func TestVerdict_ClassifiesAsThePoliciesMustSeeIt(t *testing.T) {
	live := context.Background()
	ended, cancel := context.WithCancel(context.Background())
	cancel()
	unavailable := status.Error(codes.Unavailable, "down")
	notFound := status.Error(codes.NotFound, "no")
	cancelled := status.Error(codes.Canceled, "cancelled upstream")

	failure, pass := verdict(live, DefaultIsFailure, unavailable, "/s/M")
	require.False(t, pass)
	se, ok := errors.AsType[*StatusError](failure)
	require.True(t, ok)
	assert.Same(t, unavailable, se.Unwrap())
	assert.False(t, isIgnored(failure), "a failure is not neutral")

	_, pass = verdict(live, DefaultIsFailure, notFound, "/s/M")
	assert.True(t, pass, "NOT_FOUND passes: the server answered")

	failure, pass = verdict(live, DefaultIsFailure, cancelled, "/s/M")
	require.False(t, pass)
	assert.True(t, isIgnored(failure), "CANCELLED is neutral for a breaker")

	failure, pass = verdict(ended, DefaultIsFailure, notFound, "/s/M")
	require.False(t, pass, "whatever the status, a call whose context ended is the context's business")
	assert.ErrorAs(t, failure, &se)

	failure, pass = verdict(live, DefaultIsFailure, errors.New("not a status"), "/s/M")
	require.False(t, pass, "an error that is not a status is UNKNOWN")
	require.ErrorAs(t, failure, &se)
	assert.Equal(t, codes.Unknown, se.Code())

	_, pass = verdict(live, func(*status.Status) bool { return false }, unavailable, "/s/M")
	assert.True(t, pass, "the predicate decides")
}

// isIgnored reports whether a breaker counts err as neither success nor
// failure.
func isIgnored(err error) bool {
	b := breaker.New("probe", breaker.WithFailureThreshold(1))
	_ = b.Call(context.Background(), func(context.Context) error { return err })
	return b.Counts().Ignored == 1
}

func TestStatusError_NamesMethodCodeAndMessage(t *testing.T) {
	grpcErr := status.Error(codes.Internal, "disk on fire")
	e := newStatusError(grpcErr, status.Convert(grpcErr), "/shop.Payments/Charge", metadata.Pairs(PushbackKey, "20"))
	assert.Equal(t, "leveegrpc: /shop.Payments/Charge: INTERNAL: disk on fire", e.Error())
	assert.Equal(t, "INTERNAL", e.ErrorType())
	assert.Equal(t, codes.Internal, e.Code())
	assert.Equal(t, codes.Internal, status.Code(e))
	assert.Equal(t, 20*time.Millisecond, e.RetryAfter())
	assert.Same(t, grpcErr, errors.Unwrap(e))

	bare := newStatusError(grpcErr, status.New(codes.Code(99), ""), "")
	assert.Equal(t, "leveegrpc: _OTHER", bare.Error())
	assert.Equal(t, "_OTHER", bare.ErrorType())
}

// openError returns a real rejection of an open breaker named name.
func openError(t *testing.T, name string, openTimeout time.Duration) error {
	t.Helper()
	b := breaker.New(name, breaker.WithOpenTimeout(openTimeout), breaker.WithFailureThreshold(1))
	_ = b.Call(context.Background(), func(context.Context) error { return errors.New("down") })
	err := b.Call(context.Background(), func(context.Context) error { return nil })
	require.ErrorIs(t, err, breaker.ErrOpen)
	return err
}

// limitedError returns a real rejection of a rate limit of one call an
// hour: its RetryAfter is about an hour.
func limitedError(t *testing.T) error {
	t.Helper()
	l := ratelimit.New("quota", 1, time.Hour)
	require.NoError(t, l.Call(context.Background(), func(context.Context) error { return nil }))
	err := l.Call(context.Background(), func(context.Context) error { return nil })
	require.ErrorIs(t, err, ratelimit.ErrLimited)
	return err
}

// fullError returns a real rejection of a full bulkhead: a call made while
// the bulkhead's one slot is held.
func fullError(t *testing.T) error {
	t.Helper()
	b := bulkhead.New("slots", 1)
	var inner error
	require.NoError(t, b.Call(context.Background(), func(ctx context.Context) error {
		inner = b.Call(ctx, func(context.Context) error { return nil })
		return nil
	}))
	require.ErrorIs(t, inner, bulkhead.ErrFull)
	return inner
}

// throttledError returns a real rejection of an adaptive throttle whose
// dependency refuses every call.
func throttledError(t *testing.T) error {
	t.Helper()
	th := throttle.New("db", throttle.WithSeed(1))
	for range 100 {
		err := th.Call(context.Background(), func(context.Context) error { return errors.New("overloaded") })
		if errors.Is(err, throttle.ErrThrottled) {
			return err
		}
	}
	require.FailNow(t, "the throttle refused none of 100 calls its dependency failed")
	return nil
}

// hint is an error that asks for a delay.
type hint struct{ retryAfter time.Duration }

func (h hint) Error() string             { return "levee: wait" }
func (h hint) RetryAfter() time.Duration { return h.retryAfter }

// impostor names itself with a limit's error.type but is no limit's
// rejection.
type impostor struct{ errorType string }

func (i impostor) Error() string     { return "not levee's: " + i.errorType }
func (i impostor) ErrorType() string { return i.errorType }

// renamed wraps a policy's error under an error.type of its own, as a
// user's policy around levee's may.
type renamed struct{ err error }

func (r renamed) Error() string     { return "quota: " + r.err.Error() }
func (r renamed) ErrorType() string { return "quota_exceeded" }
func (r renamed) Unwrap() error     { return r.err }

func TestClientError_ReturnsGRPCsErrorOrAStatusThatWrapsThePolicys(t *testing.T) {
	grpcErr := status.Error(codes.Unavailable, "down")
	failed := newStatusError(grpcErr, status.Convert(grpcErr), "/s/M")

	assert.Same(t, grpcErr, clientError(failed), "a failure returns gRPC's error")
	assert.Same(t, grpcErr, clientError(breaker.Ignored(failed)))
	wrapped := errors.Join(errors.New("levee: retry budget exhausted"), failed)
	assert.Same(t, grpcErr, clientError(wrapped), "even when a policy wrapped it")

	own := status.Error(codes.NotFound, "a fallback's own")
	assert.Same(t, own, clientError(own), "a status error of a policy's own is left as it is")

	open := openError(t, "payments", time.Hour)
	rejected := clientError(open)
	assert.ErrorIs(t, rejected, breaker.ErrOpen)
	assert.Equal(t, codes.Unavailable, status.Code(rejected))
	assert.Equal(t, `levee: circuit breaker "payments" is open`, status.Convert(rejected).Message())
	assert.Equal(t, `rpc error: code = Unavailable desc = levee: circuit breaker "payments" is open`, rejected.Error())
	assert.Equal(t, "circuit_open", rejected.(interface{ ErrorType() string }).ErrorType())
	details := status.Convert(rejected).Details()
	require.Len(t, details, 1)
	delay := details[0].(*errdetails.RetryInfo).GetRetryDelay().AsDuration()
	assert.InDelta(t, time.Hour, delay, float64(time.Minute), "the RetryInfo says how long the breaker stays open")

	for _, tc := range []struct {
		err  error
		code codes.Code
	}{
		{context.Canceled, codes.Canceled},
		{context.DeadlineExceeded, codes.DeadlineExceeded},
		{resilience.ErrTimeout, codes.DeadlineExceeded},
		{limitedError(t), codes.Unavailable},
		{fullError(t), codes.Unavailable},
		{throttledError(t), codes.Unavailable},
		{errors.New("a policy of the user's"), codes.Unavailable},
	} {
		got := clientError(tc.err)
		assert.Equal(t, tc.code, status.Code(got), "%v", tc.err)
		assert.ErrorIs(t, got, tc.err, "the status error wraps %v", tc.err)
	}
	assert.Empty(t, status.Convert(clientError(throttledError(t))).Details(), "no RetryInfo without a RetryAfter")
	limited := status.Convert(clientError(limitedError(t))).Details()
	require.Len(t, limited, 1, "a rate limit's rejection says when its next token comes")
	assert.InDelta(t, time.Hour, limited[0].(*errdetails.RetryInfo).GetRetryDelay().AsDuration(), float64(time.Minute))
}

func TestServerError_SaysWhichKindOfPolicyRefusedAndNeverItsName(t *testing.T) {
	for _, tc := range []struct {
		err  error
		code codes.Code
		msg  string
	}{
		{openError(t, "internal-search-cluster-7", time.Hour), codes.Unavailable, "levee: rejected: circuit_open"},
		{throttledError(t), codes.Unavailable, "levee: rejected: throttled"},
		{limitedError(t), codes.ResourceExhausted, "levee: rejected: rate_limited"},
		{fullError(t), codes.ResourceExhausted, "levee: rejected: bulkhead_full"},
		// The kind is the sentinel's, whatever error.type a wrapper gives.
		{renamed{limitedError(t)}, codes.ResourceExhausted, "levee: rejected: quota_exceeded"},
		{fmt.Errorf("bulkhead says: %w", renamed{fullError(t)}), codes.ResourceExhausted, "levee: rejected: quota_exceeded"},
		{impostor{"rate_limited"}, codes.Unavailable, "levee: rejected: rate_limited"},
		{impostor{"bulkhead_full"}, codes.Unavailable, "levee: rejected: bulkhead_full"},
		{context.Canceled, codes.Canceled, "levee: rejected: canceled"},
		{resilience.ErrTimeout, codes.DeadlineExceeded, "levee: rejected: timeout"},
	} {
		got := serverError(tc.err)
		s := status.Convert(got)
		assert.Equal(t, tc.code, s.Code(), "%v", tc.err)
		assert.Equal(t, tc.msg, s.Message())
		assert.ErrorIs(t, got, tc.err)
	}
}

type panickyHint struct{}

func (panickyHint) Error() string             { return "levee: panicky" }
func (panickyHint) RetryAfter() time.Duration { panic("a user's RetryAfter") }

func TestRetryAfterOf_RoundsUpAndSurvivesARetryAfterThatPanics(t *testing.T) {
	d, ok := retryAfterOf(hint{retryAfter: 1499*time.Millisecond + 1})
	assert.True(t, ok)
	assert.Equal(t, 1500*time.Millisecond, d)
	d, ok = retryAfterOf(hint{})
	assert.True(t, ok, "a policy that says 0 (a probe in flight) still asks for a short back-off")
	assert.Equal(t, time.Millisecond, d)
	_, ok = retryAfterOf(throttledError(t))
	assert.False(t, ok)
	_, ok = retryAfterOf(panickyHint{})
	assert.False(t, ok, "a RetryAfter that panics is no hint")
}

func TestCopyReply_WritesAMessageOfTheReplysTypeAndRefusesOthers(t *testing.T) {
	reply := wrapperspb.String("old")
	require.NoError(t, copyReply(reply, wrapperspb.String("new")))
	assert.Equal(t, "new", reply.GetValue(), "a proto message is merged into the reset reply")
	assert.Equal(t, codes.Internal, status.Code(copyReply(reply, wrapperspb.Int64(1))), "another message type is refused")

	type plain struct{ Text string }
	p := &plain{Text: "old"}
	require.NoError(t, copyReply(p, &plain{Text: "new"}))
	assert.Equal(t, "new", p.Text)
	require.NoError(t, copyReply(p, plain{Text: "value"}))
	assert.Equal(t, "value", p.Text)
	assert.Equal(t, codes.Internal, status.Code(copyReply(p, (*plain)(nil))))
	assert.Equal(t, codes.Internal, status.Code(copyReply(p, "a string")))

	assert.IsType(t, &wrapperspb.StringValue{}, freshMessage(reply))
	assert.NotSame(t, reply, freshMessage(reply))
	assert.IsType(t, &plain{}, freshMessage(p))
	assert.Nil(t, freshMessage(plain{}))
}
