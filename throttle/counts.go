package throttle

// Counts are the calls a throttle has seen since it was created, by
// outcome: the values levee.throttle.calls reports.
type Counts struct {
	// Success: calls the dependency accepted.
	Success int64
	// Failure: calls that ran and failed (WithIsFailure decides).
	Failure int64
	// Rejected: calls refused locally with ErrThrottled.
	Rejected int64
	// Ignored: calls whose caller's context ended, on arrival or while
	// they ran: they say nothing about the dependency.
	Ignored int64
}

// Counts returns the calls the throttle has seen since it was created, by
// outcome. The counts are read one after another, not as one snapshot.
// Safe for concurrent use.
func (t *Throttle) Counts() Counts {
	c := t.callCounts()
	return Counts{Success: c.success, Failure: c.failure, Rejected: c.rejected, Ignored: c.ignored}
}
