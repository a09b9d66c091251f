package leveegrpc_test

import (
	"context"
	"testing"
	"time"

	"google.golang.org/grpc"

	"github.com/levee-go/levee/breaker"
	"github.com/levee-go/levee/leveegrpc"
	"github.com/levee-go/levee/resilience"
)

// The benchmarks here measure what the interceptors add to a call, without
// the network: the invoker and the handler return at once.
//
//	cd leveegrpc && go test -run='^$' -bench=. -benchmem

func BenchmarkUnaryClient(b *testing.B) {
	invoke := func(context.Context, string, any, any, *grpc.ClientConn, ...grpc.CallOption) error { return nil }
	for _, bc := range []struct {
		name  string
		state func(*breaker.Breaker)
	}{
		{"closed", func(*breaker.Breaker) {}},
		{"open", func(br *breaker.Breaker) { br.ForceOpen(context.Background()) }},
	} {
		b.Run(bc.name, func(b *testing.B) {
			br := breaker.New("bench", breaker.WithOpenTimeout(time.Hour))
			bc.state(br)
			intercept := leveegrpc.UnaryClientInterceptor([]resilience.Policy[any]{breaker.Policy[any](br)})
			ctx, req, reply := context.Background(), &wire{Text: "q"}, new(wire)
			b.ReportAllocs()
			for b.Loop() {
				_ = intercept(ctx, methodSay, req, reply, nil, invoke)
			}
		})
	}
}

func BenchmarkUnaryServer(b *testing.B) {
	br := breaker.New("bench")
	intercept := leveegrpc.UnaryServerInterceptor([]resilience.Policy[any]{breaker.Policy[any](br)})
	info := &grpc.UnaryServerInfo{FullMethod: methodSay}
	resp := &wire{Text: "a"}
	handler := func(context.Context, any) (any, error) { return resp, nil }
	ctx, req := context.Background(), &wire{Text: "q"}
	b.ReportAllocs()
	for b.Loop() {
		_, _ = intercept(ctx, req, info, handler)
	}
}
