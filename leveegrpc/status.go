package leveegrpc

import (
	"strconv"
	"strings"
	"time"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
)

// DefaultIsFailure is the default failure predicate, on the client and the
// server alike: UNAVAILABLE, DEADLINE_EXCEEDED, RESOURCE_EXHAUSTED,
// INTERNAL and UNKNOWN count as failures (the server is down, slow,
// overloaded or broken); every other code, NOT_FOUND or INVALID_ARGUMENT
// say, proves the server is up and answering.
func DefaultIsFailure(s *status.Status) bool {
	switch s.Code() {
	case codes.Unavailable, codes.DeadlineExceeded, codes.ResourceExhausted, codes.Internal, codes.Unknown:
		return true
	}
	return false
}

// PushbackKey is the metadata key with which a server asks a client to wait
// before it tries again: its value is a whole number of milliseconds (gRPC's
// retry design, A6). A client interceptor reads it from the trailers (or the
// headers) of a failed call; a server interceptor sends it with each call it
// rejects.
const PushbackKey = "grpc-retry-pushback-ms"

// StatusError is how the policies see a call that ended with a status that
// counts as a failure (see WithIsFailure): the status, and the delay the
// server asked for, carried as an error so that a breaker counts it, a
// retry waits as asked and a fallback can replace it. The caller of the
// interceptor never gets a StatusError: it gets the error gRPC returned,
// unchanged.
//
// status.FromError, status.Code and errors.As see through a StatusError to
// its status, as they do for any gRPC error; errors.Unwrap returns the
// error gRPC returned.
type StatusError struct {
	err        error
	status     *status.Status
	method     string
	retryAfter time.Duration
}

// newStatusError makes the StatusError of a failed call of method; md is
// the call's metadata (trailers, then headers) where the server may have
// put its pushback.
func newStatusError(err error, s *status.Status, method string, md ...metadata.MD) *StatusError {
	return &StatusError{err: err, status: s, method: method, retryAfter: retryAfter(s, md...)}
}

// Error names the method and the status: "leveegrpc: /shop.Payments/Charge:
// UNAVAILABLE: connection refused".
func (e *StatusError) Error() string {
	var b strings.Builder
	b.WriteString("leveegrpc: ")
	if e.method != "" {
		b.WriteString(e.method)
		b.WriteString(": ")
	}
	b.WriteString(codeName(e.status.Code()))
	if msg := e.status.Message(); msg != "" {
		b.WriteString(": ")
		b.WriteString(msg)
	}
	return b.String()
}

// Unwrap returns the error gRPC returned for the call.
func (e *StatusError) Unwrap() error { return e.err }

// GRPCStatus returns the call's status, for status.FromError and
// status.Code.
func (e *StatusError) GRPCStatus() *status.Status { return e.status }

// Code returns the status code of the call.
func (e *StatusError) Code() codes.Code { return e.status.Code() }

// Method returns the full name of the method called:
// "/shop.Payments/Charge".
func (e *StatusError) Method() string { return e.method }

// RetryAfter returns the delay the server asked for: the value of its
// grpc-retry-pushback-ms trailer (or header), or else the retry delay of a
// google.rpc.RetryInfo in the status's details. It returns 0 when the server
// asked for nothing, or sent a value that is negative or not a whole number
// of milliseconds (gRPC's design reads those as "do not retry"; levee reads
// them as no hint). breaker.WithRetryAfter lets this delay lengthen a
// breaker's open period.
func (e *StatusError) RetryAfter() time.Duration { return e.retryAfter }

// ErrorType names the error for telemetry (error.type) by its status code,
// "UNAVAILABLE" say, as the OpenTelemetry RPC semantic conventions do; a
// code outside the 17 that gRPC defines is "_OTHER".
func (e *StatusError) ErrorType() string { return codeName(e.status.Code()) }

// codeNames are the canonical names of gRPC's status codes, as the gRPC
// specification and the OpenTelemetry conventions spell them.
var codeNames = [...]string{
	codes.OK:                 "OK",
	codes.Canceled:           "CANCELLED",
	codes.Unknown:            "UNKNOWN",
	codes.InvalidArgument:    "INVALID_ARGUMENT",
	codes.DeadlineExceeded:   "DEADLINE_EXCEEDED",
	codes.NotFound:           "NOT_FOUND",
	codes.AlreadyExists:      "ALREADY_EXISTS",
	codes.PermissionDenied:   "PERMISSION_DENIED",
	codes.ResourceExhausted:  "RESOURCE_EXHAUSTED",
	codes.FailedPrecondition: "FAILED_PRECONDITION",
	codes.Aborted:            "ABORTED",
	codes.OutOfRange:         "OUT_OF_RANGE",
	codes.Unimplemented:      "UNIMPLEMENTED",
	codes.Internal:           "INTERNAL",
	codes.Unavailable:        "UNAVAILABLE",
	codes.DataLoss:           "DATA_LOSS",
	codes.Unauthenticated:    "UNAUTHENTICATED",
}

// codeName is c's canonical name, or "_OTHER" for a code gRPC does not
// define: a server may send any number, and the name becomes a metric
// attribute, whose values must stay few.
func codeName(c codes.Code) string {
	if int(c) < len(codeNames) {
		return codeNames[c]
	}
	return "_OTHER"
}

// retryAfter is the delay a failed call's server asked for: its pushback in
// the first of md that has one, or else the RetryInfo in the status.
func retryAfter(s *status.Status, md ...metadata.MD) time.Duration {
	for _, m := range md {
		if values := m.Get(PushbackKey); len(values) > 0 {
			return parsePushback(values[0])
		}
	}
	for _, detail := range s.Details() {
		if info, ok := detail.(*errdetails.RetryInfo); ok && info.GetRetryDelay() != nil {
			if err := info.GetRetryDelay().CheckValid(); err != nil {
				return 0
			}
			return max(info.GetRetryDelay().AsDuration(), 0)
		}
	}
	return 0
}

// parsePushback parses a grpc-retry-pushback-ms value: a run of ASCII
// digits, the milliseconds to wait. A value too large for a Duration is the
// longest delay a Duration holds; anything else (empty, signed, spaced,
// fractional) is no hint, 0. The value comes from the network: it must
// never panic, whatever it is.
func parsePushback(value string) time.Duration {
	if value == "" {
		return 0
	}
	for i := 0; i < len(value); i++ {
		if value[i] < '0' || value[i] > '9' {
			return 0
		}
	}
	const maxMillis = int64(1<<63-1) / int64(time.Millisecond)
	millis, err := strconv.ParseInt(value, 10, 64)
	if err != nil || millis > maxMillis {
		millis = maxMillis // only digits, so only too large can fail
	}
	return time.Duration(millis) * time.Millisecond
}

// formatPushback is the grpc-retry-pushback-ms value for a delay of whole
// milliseconds.
func formatPushback(d time.Duration) string {
	return strconv.FormatInt(int64(d/time.Millisecond), 10)
}
