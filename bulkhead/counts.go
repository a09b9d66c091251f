package bulkhead

// Counts are the calls a bulkhead has seen since it was created, by outcome:
// the values levee.bulkhead.calls reports. Admitted + Waited is every call
// that got a slot; Rejected + TimedOut + Canceled every call that did not.
type Counts struct {
	// Admitted: calls that got a slot at once.
	Admitted int64
	// Waited: calls that got a slot after queueing for it.
	Waited int64
	// Rejected: calls refused at once with ErrFull.
	Rejected int64
	// TimedOut: calls refused with ErrFull when their maximum wait ran out.
	TimedOut int64
	// Canceled: calls whose caller's context ended before they got a slot.
	Canceled int64
}

// Counts returns the calls the bulkhead has seen since it was created, by
// outcome. Each count only grows from one read to the next; the counts are
// read one after another, not as one snapshot. It takes the bulkhead's
// lock briefly (as a metrics collection does) and never slows a call that
// gets a slot at once. Safe for concurrent use.
func (b *Bulkhead) Counts() Counts {
	c := b.counts()
	return Counts{Admitted: c.admitted, Waited: c.waited, Rejected: c.rejected, TimedOut: c.timedOut, Canceled: c.canceled}
}
