package leveegrpc_test

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	"github.com/levee-go/levee/breaker"
	"github.com/levee-go/levee/fallback"
	"github.com/levee-go/levee/leveegrpc"
	"github.com/levee-go/levee/resilience"
)

// guardedConn is a client of srv whose unary calls go through policies,
// with spy counting the calls that got past them.
func guardedConn(t *testing.T, srv *testServer, policies []resilience.Policy[any], opts ...leveegrpc.Option) (*grpc.ClientConn, *invocations) {
	t.Helper()
	spy := &invocations{}
	conn := dial(t, srv.addr, grpc.WithChainUnaryInterceptor(
		leveegrpc.UnaryClientInterceptor(policies, opts...),
		spy.unaryInterceptor,
	))
	return conn, spy
}

func TestUnaryClient_BreakerOpensDuringAnOutageAndClosesOnceTheServerIsBack(t *testing.T) {
	srv := startServer(t)
	b := breaker.New("echo", breaker.WithFailureThreshold(3), breaker.WithOpenTimeout(20*time.Millisecond))
	conn, spy := guardedConn(t, srv, []resilience.Policy[any]{breaker.Policy[any](b)})

	out, err := say(boundedCtx(t), conn, "hello")
	require.NoError(t, err, "the server is up")
	require.Equal(t, "hello", out.Text)

	srv.stop()
	for i := 0; b.State() == breaker.Closed; i++ {
		require.Less(t, i, 3, "three failures must open the breaker")
		_, err := say(boundedCtx(t), conn, "anyone?")
		require.Error(t, err)
		assert.Equal(t, codes.Unavailable, status.Code(err), "during the outage gRPC answers UNAVAILABLE: %v", err)
		assert.NotErrorIs(t, err, breaker.ErrOpen, "a call that reached gRPC is not a rejection")
	}

	// While open, calls are rejected without reaching gRPC (the open
	// timeout is short: a call that finds the breaker half-open is its
	// probe, which fails and opens it again).
	rejected := 0
	for i := 0; rejected < 3; i++ {
		require.Less(t, i, 1000, "an open breaker must reject calls")
		before := spy.unary.Load()
		_, err := say(boundedCtx(t), conn, "anyone?")
		if !errors.Is(err, breaker.ErrOpen) {
			continue
		}
		rejected++
		assert.Equal(t, before, spy.unary.Load(), "a rejected call must not reach gRPC")
		assert.Equal(t, codes.Unavailable, status.Code(err))
		assert.Contains(t, status.Convert(err).Message(), `levee: circuit breaker "echo" is open`)
		var open *breaker.OpenError
		assert.ErrorAs(t, err, &open, "the rejection wraps the breaker's OpenError")
	}

	srv.restart()
	waitFor(t, func() bool {
		_, _ = say(boundedCtx(t), conn, "back?")
		return b.State() == breaker.Closed
	}, "once the server is back, a probe must close the breaker")
	hits := srv.says.Load()
	out, err = say(boundedCtx(t), conn, "welcome back")
	require.NoError(t, err)
	assert.Equal(t, "welcome back", out.Text)
	assert.Equal(t, hits+1, srv.says.Load(), "a closed breaker lets calls reach the server")
}

func TestUnaryClient_CountsTheFailureCodesAsFailuresAndTheRestAsSuccesses(t *testing.T) {
	srv := startServer(t)
	b := breaker.New("echo", breaker.WithFailureThreshold(1000))
	conn, _ := guardedConn(t, srv, []resilience.Policy[any]{breaker.Policy[any](b)})
	for code := codes.OK; code <= codes.Unauthenticated; code++ {
		t.Run(code.String(), func(t *testing.T) {
			srv.setSay(func(context.Context, *wire) (*wire, error) {
				if code == codes.OK {
					return &wire{Text: "ok"}, nil
				}
				return nil, status.Error(code, "as the test asked")
			})
			before := b.Counts()

			_, err := say(boundedCtx(t), conn, "x")

			assert.Equal(t, code, status.Code(err))
			after := b.Counts()
			switch code {
			case codes.Unavailable, codes.DeadlineExceeded, codes.ResourceExhausted, codes.Internal, codes.Unknown:
				assert.Equal(t, before.Failure+1, after.Failure, "%v is a failure", code)
			case codes.Canceled:
				assert.Equal(t, before.Ignored+1, after.Ignored, "CANCELLED is neither success nor failure")
			default:
				assert.Equal(t, before.Success+1, after.Success, "%v proves the server is up", code)
			}
		})
	}
}

func TestUnaryClient_CallerGetsTheErrorGRPCReturnedUnchanged(t *testing.T) {
	srv := startServer(t)
	srv.setSay(func(ctx context.Context, _ *wire) (*wire, error) {
		_ = grpc.SetTrailer(ctx, metadata.Pairs("x-served-by", "echo", leveegrpc.PushbackKey, "250"))
		s, err := status.New(codes.Unavailable, "draining").WithDetails(&errdetails.ErrorInfo{Reason: "DRAINING", Domain: "test"})
		require.NoError(t, err)
		return nil, s.Err()
	})
	var seen error
	spyPolicy := resilience.PolicyFunc[any](func(next resilience.Func[any]) resilience.Func[any] {
		return func(ctx context.Context) (any, error) {
			v, err := next(ctx)
			seen = err
			return v, err
		}
	})
	conn, _ := guardedConn(t, srv, []resilience.Policy[any]{spyPolicy})

	var trailer metadata.MD
	_, err := say(boundedCtx(t), conn, "x", grpc.Trailer(&trailer))

	require.Error(t, err)
	assert.Equal(t, "rpc error: code = Unavailable desc = draining", err.Error(), "the caller gets gRPC's own error")
	s := status.Convert(err)
	require.Len(t, s.Details(), 1, "the status keeps its details")
	assert.Equal(t, "DRAINING", s.Details()[0].(*errdetails.ErrorInfo).GetReason())
	assert.Equal(t, []string{"echo"}, trailer.Get("x-served-by"), "the caller's own call options still work")

	var failed *leveegrpc.StatusError
	require.ErrorAs(t, seen, &failed, "the policies see a *StatusError")
	assert.Equal(t, codes.Unavailable, failed.Code())
	assert.Equal(t, codes.Unavailable, status.Code(seen), "status.Code sees through a StatusError")
	assert.Equal(t, methodSay, failed.Method())
	assert.Equal(t, 250*time.Millisecond, failed.RetryAfter(), "the server's pushback is the error's RetryAfter")
	assert.Equal(t, "UNAVAILABLE", failed.ErrorType())
	assert.Equal(t, "leveegrpc: /levee.test.Echo/Say: UNAVAILABLE: draining", failed.Error())
	assert.Same(t, err, errors.Unwrap(failed), "it wraps the very error the caller gets")
}

func TestUnaryClient_ANonFailureErrorReachesTheCallerAndIsASuccessForThePolicies(t *testing.T) {
	srv := startServer(t)
	srv.setSay(func(context.Context, *wire) (*wire, error) {
		return nil, status.Error(codes.NotFound, "no such greeting")
	})
	var seen []error
	spyPolicy := resilience.PolicyFunc[any](func(next resilience.Func[any]) resilience.Func[any] {
		return func(ctx context.Context) (any, error) {
			v, err := next(ctx)
			seen = append(seen, err)
			return v, err
		}
	})
	b := breaker.New("echo", breaker.WithFailureThreshold(1))
	conn, _ := guardedConn(t, srv, []resilience.Policy[any]{breaker.Policy[any](b), spyPolicy})

	_, err := say(boundedCtx(t), conn, "x")

	assert.Equal(t, "rpc error: code = NotFound desc = no such greeting", err.Error())
	assert.Equal(t, []error{nil}, seen, "the policies see a success")
	assert.Equal(t, breaker.Counts{Success: 1}, b.Counts())
}

func TestUnaryClient_WithIsFailureDecidesWhichStatusesFail(t *testing.T) {
	srv := startServer(t)
	b := breaker.New("echo", breaker.WithFailureThreshold(1000))
	conn, _ := guardedConn(t, srv, []resilience.Policy[any]{breaker.Policy[any](b)},
		leveegrpc.WithIsFailure(func(s *status.Status) bool { return s.Code() == codes.NotFound }))

	srv.setSay(func(context.Context, *wire) (*wire, error) { return nil, status.Error(codes.NotFound, "gone") })
	_, err := say(boundedCtx(t), conn, "x")
	assert.Equal(t, codes.NotFound, status.Code(err))
	assert.Equal(t, breaker.Counts{Failure: 1}, b.Counts(), "NOT_FOUND fails when the predicate says so")

	srv.setSay(func(context.Context, *wire) (*wire, error) { return nil, status.Error(codes.Unavailable, "down") })
	_, err = say(boundedCtx(t), conn, "x")
	assert.Equal(t, codes.Unavailable, status.Code(err))
	assert.Equal(t, breaker.Counts{Failure: 1, Success: 1}, b.Counts(), "UNAVAILABLE does not, then")
}

func TestUnaryClient_ACallWhoseCallerWentAwayIsNeitherSuccessNorFailure(t *testing.T) {
	srv := startServer(t)
	entered := make(chan struct{})
	srv.setSay(func(ctx context.Context, _ *wire) (*wire, error) {
		close(entered)
		<-ctx.Done()
		return nil, status.FromContextError(ctx.Err()).Err()
	})
	b := breaker.New("echo", breaker.WithFailureThreshold(1))
	conn, _ := guardedConn(t, srv, []resilience.Policy[any]{breaker.Policy[any](b)})

	ctx, cancel := context.WithCancel(boundedCtx(t))
	go func() {
		<-entered
		cancel()
	}()
	_, err := say(ctx, conn, "x")

	assert.Equal(t, codes.Canceled, status.Code(err))
	assert.Equal(t, breaker.Counts{Ignored: 1}, b.Counts())
	assert.Equal(t, breaker.Closed, b.State())
}

func TestUnaryClient_ATimeoutInsideTheBreakerCountsASlowCallAsAFailure(t *testing.T) {
	srv := startServer(t)
	srv.setSay(func(ctx context.Context, _ *wire) (*wire, error) {
		<-ctx.Done() // far slower than the timeout
		return nil, status.FromContextError(ctx.Err()).Err()
	})
	b := breaker.New("echo", breaker.WithFailureThreshold(1), breaker.WithOpenTimeout(time.Hour))
	conn, _ := guardedConn(t, srv, []resilience.Policy[any]{breaker.Policy[any](b), resilience.Timeout[any](20 * time.Millisecond)})

	_, err := say(boundedCtx(t), conn, "x")

	assert.Equal(t, codes.DeadlineExceeded, status.Code(err), "the caller gets gRPC's DEADLINE_EXCEEDED: %v", err)
	assert.Equal(t, breaker.Counts{Failure: 1}, b.Counts())
	assert.Equal(t, breaker.Open, b.State())
}

func TestUnaryClient_ARejectionIsAnUnavailableStatusThatMatchesTheLeveeError(t *testing.T) {
	srv := startServer(t)
	b := breaker.New("payments", breaker.WithOpenTimeout(time.Hour))
	b.ForceOpen(t.Context())
	conn, spy := guardedConn(t, srv, []resilience.Policy[any]{breaker.Policy[any](b)})

	_, err := say(boundedCtx(t), conn, "x")

	require.ErrorIs(t, err, breaker.ErrOpen)
	assert.Equal(t, `rpc error: code = Unavailable desc = levee: circuit breaker "payments" is forced open`, err.Error())
	s, ok := status.FromError(err)
	require.True(t, ok, "the rejection is a gRPC status error")
	assert.Equal(t, codes.Unavailable, s.Code())
	require.Len(t, s.Details(), 1, "the status tells how long to wait")
	info, ok := s.Details()[0].(*errdetails.RetryInfo)
	require.True(t, ok, "a google.rpc.RetryInfo")
	assert.Equal(t, time.Hour, info.GetRetryDelay().AsDuration(), "a forced-open breaker hints its open timeout")
	assert.Zero(t, spy.unary.Load())
	assert.Zero(t, srv.says.Load())
}

func TestUnaryClient_TheServersPushbackHoldsTheBreakerOpenLonger(t *testing.T) {
	srv := startServer(t)
	srv.setSay(func(ctx context.Context, _ *wire) (*wire, error) {
		_ = grpc.SetTrailer(ctx, metadata.Pairs(leveegrpc.PushbackKey, "60000"))
		return nil, status.Error(codes.Unavailable, "overloaded, come back in a minute")
	})
	b := breaker.New("echo", breaker.WithFailureThreshold(1), breaker.WithOpenTimeout(20*time.Millisecond),
		breaker.WithRetryAfter(time.Hour))
	conn, _ := guardedConn(t, srv, []resilience.Policy[any]{breaker.Policy[any](b)})

	_, err := say(boundedCtx(t), conn, "x")
	require.Equal(t, codes.Unavailable, status.Code(err))
	require.Equal(t, breaker.Open, b.State())

	_, err = say(boundedCtx(t), conn, "x")
	var open *breaker.OpenError
	require.ErrorAs(t, err, &open)
	assert.Greater(t, open.RetryAfter(), 59*time.Second, "the breaker stays open as long as the server asked, not 20ms")
}

func TestUnaryClient_TheServersPushbackReachesARetryAsAHint(t *testing.T) {
	srv := startServer(t)
	srv.setSay(func(ctx context.Context, _ *wire) (*wire, error) {
		_ = grpc.SetTrailer(ctx, metadata.Pairs(leveegrpc.PushbackKey, "1500"))
		return nil, status.Error(codes.ResourceExhausted, "quota")
	})
	var hint time.Duration
	retryLike := resilience.PolicyFunc[any](func(next resilience.Func[any]) resilience.Func[any] {
		return func(ctx context.Context) (any, error) {
			v, err := next(ctx)
			if h, ok := errors.AsType[interface {
				error
				RetryAfter() time.Duration
			}](err); ok {
				hint = h.RetryAfter()
			}
			return v, err
		}
	})
	conn, _ := guardedConn(t, srv, []resilience.Policy[any]{retryLike})

	_, err := say(boundedCtx(t), conn, "x")

	assert.Equal(t, codes.ResourceExhausted, status.Code(err))
	assert.Equal(t, 1500*time.Millisecond, hint)
}

func TestUnaryClient_AFallbackAnswersIntoTheCallersReply(t *testing.T) {
	srv := startServer(t)
	srv.setSay(func(context.Context, *wire) (*wire, error) { return nil, status.Error(codes.Internal, "boom") })
	b := breaker.New("echo", breaker.WithFailureThreshold(1), breaker.WithOpenTimeout(time.Hour))
	var causes []string
	fromCache := fallback.Func(func(_ context.Context, err error) (any, error) {
		if _, ok := errors.AsType[*leveegrpc.StatusError](err); ok {
			causes = append(causes, "failure")
		} else if errors.Is(err, breaker.ErrOpen) {
			causes = append(causes, "rejection")
		}
		return &wire{Text: "from cache"}, nil
	})
	conn, _ := guardedConn(t, srv, []resilience.Policy[any]{fromCache, breaker.Policy[any](b)})

	for range 2 {
		out, err := say(boundedCtx(t), conn, "x")
		require.NoError(t, err)
		assert.Equal(t, "from cache", out.Text)
	}
	assert.Equal(t, []string{"failure", "rejection"}, causes)
}

func TestUnaryClient_AttemptsInFlightTogetherDecodeIntoMessagesOfTheirOwn(t *testing.T) {
	srv := startServer(t)
	release := make(chan struct{})
	srv.setSay(func(ctx context.Context, in *wire) (*wire, error) {
		if in.Text == "slow" {
			select {
			case <-release:
			case <-ctx.Done():
			}
		}
		return &wire{Text: "answer to " + in.Text}, nil
	})
	// A hedge-like policy: a first attempt that is slow, a second that is
	// fast and wins; the first is let go only once the second has won, and
	// goes on after the policy has returned.
	var attempts atomic.Int64
	slowDone := make(chan struct{})
	hedgeLike := resilience.PolicyFunc[any](func(next resilience.Func[any]) resilience.Func[any] {
		return func(ctx context.Context) (any, error) {
			go func() {
				defer close(slowDone)
				_, _ = next(context.WithValue(ctx, textKey{}, "slow"))
			}()
			waitFor(t, func() bool { return attempts.Load() == 1 }, "the slow attempt must start")
			v, err := next(context.WithValue(ctx, textKey{}, "fast"))
			close(release)
			return v, err
		}
	})
	conn := dial(t, srv.addr, grpc.WithChainUnaryInterceptor(
		leveegrpc.UnaryClientInterceptor([]resilience.Policy[any]{hedgeLike}), textFromContext(&attempts)))

	out, err := say(boundedCtx(t), conn, "x")

	require.NoError(t, err)
	select {
	case <-slowDone:
	case <-time.After(5 * time.Second):
		t.Fatal("the slow attempt must end")
	}
	assert.Equal(t, "answer to fast", out.Text, "the winner's answer, and the slow attempt never wrote into the reply after it")
}

func TestUnaryClient_AnAttemptAfterTheAnswerIsInTheReplyDecodesElsewhere(t *testing.T) {
	srv := startServer(t)
	var attempts atomic.Int64
	// Two attempts one after the other, both successful; the policy keeps
	// the first answer, as a hedge whose loser finished late would.
	keepFirst := resilience.PolicyFunc[any](func(next resilience.Func[any]) resilience.Func[any] {
		return func(ctx context.Context) (any, error) {
			v, err := next(context.WithValue(ctx, textKey{}, "first"))
			_, _ = next(context.WithValue(ctx, textKey{}, "second"))
			return v, err
		}
	})
	conn := dial(t, srv.addr, grpc.WithChainUnaryInterceptor(
		leveegrpc.UnaryClientInterceptor([]resilience.Policy[any]{keepFirst}), textFromContext(&attempts)))

	out, err := say(boundedCtx(t), conn, "x")

	require.NoError(t, err)
	assert.Equal(t, int64(2), attempts.Load())
	assert.Equal(t, "first", out.Text, "the second attempt must not overwrite the answer the policy kept")
}

// textFromContext is an interceptor, chained after levee's, that sends the
// text a test policy put in the attempt's context instead of the request's,
// counting the attempts.
func textFromContext(attempts *atomic.Int64) grpc.UnaryClientInterceptor {
	return func(ctx context.Context, method string, req, reply any, cc *grpc.ClientConn, invoker grpc.UnaryInvoker, opts ...grpc.CallOption) error {
		attempts.Add(1)
		return invoker(ctx, method, &wire{Text: ctx.Value(textKey{}).(string)}, reply, cc, opts...)
	}
}

type textKey struct{}

func TestUnaryClient_ARetryDecodesIntoTheSameReply(t *testing.T) {
	srv := startServer(t)
	var calls atomic.Int64
	srv.setSay(func(_ context.Context, in *wire) (*wire, error) {
		if calls.Add(1) == 1 {
			return nil, status.Error(codes.Unavailable, "not yet")
		}
		return &wire{Text: "at last"}, nil
	})
	var replies []any
	twice := resilience.PolicyFunc[any](func(next resilience.Func[any]) resilience.Func[any] {
		return func(ctx context.Context) (any, error) {
			v, err := next(ctx)
			if err == nil {
				return v, nil
			}
			v, err = next(ctx)
			replies = append(replies, v)
			return v, err
		}
	})
	conn, _ := guardedConn(t, srv, []resilience.Policy[any]{twice})

	out, err := say(boundedCtx(t), conn, "x")

	require.NoError(t, err)
	assert.Equal(t, "at last", out.Text)
	require.Len(t, replies, 1)
	_, isWire := replies[0].(*wire)
	assert.False(t, isWire, "a retry after the first attempt returned decodes into the caller's reply, not a fresh one")
}

func TestUnaryClient_CallsRunConcurrently(t *testing.T) {
	srv := startServer(t)
	b := breaker.New("echo")
	conn, _ := guardedConn(t, srv, []resilience.Policy[any]{breaker.Policy[any](b), resilience.Timeout[any](5 * time.Second)})
	var wg sync.WaitGroup
	for i := range 20 {
		wg.Go(func() {
			text := string(rune('a' + i))
			out, err := say(boundedCtx(t), conn, text)
			assert.NoError(t, err)
			assert.Equal(t, text, out.Text, "each call gets its own answer")
		})
	}
	wg.Wait()
	assert.Equal(t, breaker.Counts{Success: 20}, b.Counts())
}

func TestUnaryClient_AnAttemptThatStartsAfterItsCallReturnedSendsNothing(t *testing.T) {
	srv := startServer(t)
	returned := make(chan struct{})
	late := make(chan error, 1)
	errGaveUp := errors.New("the policy gave up at once")
	lateStarter := resilience.PolicyFunc[any](func(next resilience.Func[any]) resilience.Func[any] {
		return func(ctx context.Context) (any, error) {
			go func() {
				<-returned
				_, err := next(context.WithoutCancel(ctx))
				late <- err
			}()
			return nil, errGaveUp
		}
	})
	conn, spy := guardedConn(t, srv, []resilience.Policy[any]{lateStarter})

	_, err := say(boundedCtx(t), conn, "x")
	close(returned)

	assert.ErrorIs(t, err, errGaveUp)
	select {
	case err := <-late:
		assert.ErrorContains(t, err, "already returned")
	case <-time.After(5 * time.Second):
		t.Fatal("the late attempt must end")
	}
	assert.Zero(t, spy.unary.Load(), "a late attempt must not reach gRPC")
}

func TestUnaryClient_APolicyThatDropsTheCallsContextGetsAnError(t *testing.T) {
	srv := startServer(t)
	foreign := resilience.PolicyFunc[any](func(next resilience.Func[any]) resilience.Func[any] {
		return func(ctx context.Context) (any, error) { return next(context.Background()) }
	})
	conn, spy := guardedConn(t, srv, []resilience.Policy[any]{foreign})

	_, err := say(boundedCtx(t), conn, "x")

	assert.ErrorContains(t, err, "context not derived from the call's")
	assert.Equal(t, codes.Unavailable, status.Code(err))
	assert.Zero(t, spy.unary.Load())
}

func TestUnaryClientInterceptor_RefusesNilPoliciesAndOptions(t *testing.T) {
	assert.PanicsWithValue(t, "levee: resilience.WrapWith: policies[0] is nil", func() {
		leveegrpc.UnaryClientInterceptor([]resilience.Policy[any]{nil})
	})
	assert.PanicsWithValue(t, "levee: leveegrpc.UnaryClientInterceptor: an Option is nil", func() {
		leveegrpc.UnaryClientInterceptor(nil, nil)
	})
	assert.PanicsWithValue(t, "levee: leveegrpc.UnaryClientInterceptor: WithIsFailure: isFailure must not be nil", func() {
		leveegrpc.UnaryClientInterceptor(nil, leveegrpc.WithIsFailure(nil))
	})
}

func TestUnaryClient_AnAttemptThatFailsBeforeReachingTheServerHasNoPushbackOfAnEarlierOne(t *testing.T) {
	srv := startServer(t)
	srv.setSay(func(ctx context.Context, _ *wire) (*wire, error) {
		_ = grpc.SetTrailer(ctx, metadata.Pairs(leveegrpc.PushbackKey, "60000"))
		return nil, status.Error(codes.Unavailable, "come back in a minute")
	})
	var hints []time.Duration
	thenLocalFailure := resilience.PolicyFunc[any](func(next resilience.Func[any]) resilience.Func[any] {
		return func(ctx context.Context) (any, error) {
			_, first := next(ctx)
			_, second := next(context.WithValue(ctx, failLocally{}, true))
			for _, err := range []error{first, second} {
				failed, ok := errors.AsType[*leveegrpc.StatusError](err)
				require.True(t, ok, "%v", err)
				hints = append(hints, failed.RetryAfter())
			}
			return nil, second
		}
	})
	local := func(ctx context.Context, method string, req, reply any, cc *grpc.ClientConn, invoker grpc.UnaryInvoker, opts ...grpc.CallOption) error {
		if ctx.Value(failLocally{}) != nil {
			return status.Error(codes.Unavailable, "no connection") // before any stream: no header, no trailer
		}
		return invoker(ctx, method, req, reply, cc, opts...)
	}
	conn := dial(t, srv.addr, grpc.WithChainUnaryInterceptor(
		leveegrpc.UnaryClientInterceptor([]resilience.Policy[any]{thenLocalFailure}), local))

	_, err := say(boundedCtx(t), conn, "x")

	assert.Equal(t, codes.Unavailable, status.Code(err))
	assert.Equal(t, []time.Duration{time.Minute, 0}, hints)
}

type failLocally struct{}
