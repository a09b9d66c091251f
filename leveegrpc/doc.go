// Package leveegrpc puts levee's policies on gRPC: client interceptors that
// guard the calls a grpc.ClientConn makes, and server interceptors that
// shed a server's load. It is a module of its own, so that users of levee's
// core never download gRPC.
//
// On the client side, UnaryClientInterceptor and StreamClientInterceptor
// send each call (each stream's establishment) through a levee pipeline and
// count UNAVAILABLE, DEADLINE_EXCEEDED, RESOURCE_EXHAUSTED, INTERNAL and
// UNKNOWN as failures:
//
//	payments := breaker.New("payments", breaker.WithRetryAfter(time.Minute))
//	conn, err := grpc.NewClient(target,
//		grpc.WithUnaryInterceptor(leveegrpc.UnaryClientInterceptor([]resilience.Policy[any]{
//			breaker.Policy[any](payments),         // rejects at once while payments is down
//			resilience.Timeout[any](2*time.Second), // a slow answer counts as a failure
//		})),
//		grpc.WithStreamInterceptor(leveegrpc.StreamClientInterceptor([]resilience.Policy[grpc.ClientStream]{
//			breaker.Policy[grpc.ClientStream](payments),
//		})),
//	)
//
// A failing call still reaches the caller as the error gRPC returned,
// unchanged: only the policies see it as a failure, as a *StatusError,
// whose RetryAfter is the server's pushback (grpc-retry-pushback-ms). A
// rejected call returns a gRPC status error, UNAVAILABLE, that also matches
// the policy's error: status.Code(err) == codes.Unavailable and
// errors.Is(err, breaker.ErrOpen) both hold.
//
// On the server side, UnaryServerInterceptor and StreamServerInterceptor
// answer UNAVAILABLE (or RESOURCE_EXHAUSTED for a full bulkhead or a rate
// limit) with a grpc-retry-pushback-ms trailer while a policy refuses the
// call, without running the handler:
//
//	guards := []resilience.Policy[any]{breaker.Policy[any](breaker.New("search"))}
//	srv := grpc.NewServer(
//		grpc.ChainUnaryInterceptor(leveegrpc.UnaryServerInterceptor(guards)),
//		grpc.ChainStreamInterceptor(leveegrpc.StreamServerInterceptor(guards)),
//	)
//
// docs/grpc.md in the repository tells the whole story.
package leveegrpc
