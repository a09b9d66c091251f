package leveegrpc

import (
	"context"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	"github.com/levee-go/levee/breaker"
)

// passed is the value the policies get for a call whose error is no
// failure (a NOT_FOUND, say): a success for them, it carries the error back
// to the caller, with the value the call returned alongside.
type passed struct {
	value any
	err   error
}

// callKey is the context key under which an interceptor passes its call to
// the attempt at the core of the pipeline.
type callKey struct{}

// verdict is how the policies see a call of method that returned err under
// ctx, the context the policies gave it; md is the call's metadata, where a
// server puts its pushback. It returns the error the policies get, or, when
// err is no failure, pass: the policies see a success and the caller gets
// err.
//
//   - A call whose context ended returns a *StatusError as it is: a breaker
//     ignores it when that context is its caller's, and a Timeout whose
//     deadline it was turns it into its own error.
//   - A status that isFailure counts returns a *StatusError.
//   - A CANCELLED status (the server, or a proxy, cancelled the call) returns
//     a *StatusError marked with breaker.Ignored: it says nothing about the
//     server's health.
//   - Anything else passes.
func verdict(ctx context.Context, isFailure func(*status.Status) bool, err error, method string, md ...metadata.MD) (failure error, pass bool) {
	s := status.Convert(err) // an error that is not a status is UNKNOWN, as gRPC sends it
	switch {
	case ctx.Err() != nil:
		return newStatusError(err, s, method, md...), false
	case isFailure(s):
		return newStatusError(err, s, method, md...), false
	case s.Code() == codes.Canceled:
		return breaker.Ignored(newStatusError(err, s, method, md...)), false
	}
	return nil, true
}
