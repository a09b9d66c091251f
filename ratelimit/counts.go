package ratelimit

// Counts are the calls a limiter has seen since it was created, by outcome:
// the values levee.rate_limit.calls reports.
type Counts struct {
	// Admitted: calls let through at once (for a keyed limiter, summed
	// over its keys and the overflow limit).
	Admitted int64
	// Waited: calls let through after waiting for their token.
	Waited int64
	// Rejected: calls refused with a *LimitedError.
	Rejected int64
	// Canceled: calls whose caller's context ended before their token.
	Canceled int64
}

// Counts returns the calls the limiter has seen since it was created, by
// outcome. The counts are read one after another, not as one snapshot; a
// keyed limiter sums its shards. Safe for concurrent use.
func (l *Limiter) Counts() Counts {
	c := l.counts()
	return Counts{Admitted: c.admitted, Waited: c.waited, Rejected: c.rejected, Canceled: c.canceled}
}

// Queued returns how many calls are waiting for their token now.
func (l *Limiter) Queued() int { return int(l.queued.Load()) }
