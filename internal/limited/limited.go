// Package limited lets levee's own modules refuse a call with the rate
// limit's error, *ratelimit.LimitedError, whose fields only package
// ratelimit can set: leveeredis's fleet limiter refuses exactly as a local
// limiter does, so callers, retry's Retry-After handling and leveehttp treat
// both alike. Package ratelimit sets NewError when it is initialized; any
// package that imports ratelimit may call it.
package limited

import "time"

// NewError returns a *ratelimit.LimitedError of the limiter named name,
// whose RetryAfter is retryAfter. Set by package ratelimit's init.
var NewError func(name string, retryAfter time.Duration) error
