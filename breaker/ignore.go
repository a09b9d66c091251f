package breaker

// Ignored marks err as telling nothing about the dependency: a breaker
// counts a call that returns it as neither success nor failure, as it does a
// call whose caller's context ended (in HalfOpen it frees the probe slot).
// It is for integrations that know better than the error's type, such as a
// server handler whose client went away. errors.Is and errors.As see
// through it to err; its message is err's. Ignored(nil) is nil.
func Ignored(err error) error {
	if err == nil {
		return nil
	}
	return &ignoredError{err: err}
}

type ignoredError struct{ err error }

func (e *ignoredError) Error() string { return e.err.Error() }
func (e *ignoredError) Unwrap() error { return e.err }
