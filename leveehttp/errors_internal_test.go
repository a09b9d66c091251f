package leveehttp

import (
	"math"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
)

func TestRetryAfter_ParsesSecondsAndDatesOn429And503Only(t *testing.T) {
	now := time.Date(2026, time.March, 1, 10, 0, 0, 0, time.UTC)
	cases := []struct {
		name   string
		status int
		header http.Header
		want   time.Duration
	}{
		{"seconds", 503, http.Header{"Retry-After": {"120"}}, 2 * time.Minute},
		{"seconds with spaces", 429, http.Header{"Retry-After": {" 3 "}}, 3 * time.Second},
		{"zero", 503, http.Header{"Retry-After": {"0"}}, 0},
		{"negative", 503, http.Header{"Retry-After": {"-5"}}, 0},
		{"huge", 503, http.Header{"Retry-After": {"99999999999999999"}}, time.Duration(1<<63-1) / time.Second * time.Second},
		{"past int64: very long, not malformed", 503, http.Header{"Retry-After": {"99999999999999999999999999"}}, time.Duration(1<<63-1) / time.Second * time.Second},
		{"signed", 503, http.Header{"Retry-After": {"+5"}}, 0},
		{"missing", 503, http.Header{}, 0},
		{"garbage", 503, http.Header{"Retry-After": {"soon"}}, 0},
		{"date relative to now", 503, http.Header{"Retry-After": {now.Add(90 * time.Second).Format(http.TimeFormat)}}, 90 * time.Second},
		{"date relative to the Date header", 503, http.Header{
			"Retry-After": {now.Add(90 * time.Second).Format(http.TimeFormat)},
			"Date":        {now.Add(60 * time.Second).Format(http.TimeFormat)},
		}, 30 * time.Second},
		{"date in the past", 429, http.Header{"Retry-After": {now.Add(-time.Hour).Format(http.TimeFormat)}}, 0},
		{"not on a 500", 500, http.Header{"Retry-After": {"120"}}, 0},
		{"not on a 200", 200, http.Header{"Retry-After": {"120"}}, 0},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			resp := &http.Response{StatusCode: tc.status, Header: tc.header}
			assert.Equal(t, tc.want, newResponseError(resp, now).RetryAfter())
		})
	}
}

// FuzzRetryAfter feeds arbitrary statuses, Retry-After values and Date
// headers to the parser: it never panics, never returns a negative delay,
// returns 0 for statuses other than 429 and 503, and for a value that is a
// run of digits agrees with refRetryAfterSeconds. Its seeds, in f.Add and
// testdata/fuzz/FuzzRetryAfter, run with every go test.
func FuzzRetryAfter(f *testing.F) {
	now := time.Date(2026, time.March, 1, 10, 0, 0, 0, time.UTC)
	f.Add(503, "120", "")
	f.Add(429, " 3 ", "")
	f.Add(503, now.Add(90*time.Second).Format(http.TimeFormat), now.Add(60*time.Second).Format(http.TimeFormat))
	f.Add(503, "99999999999999999999999999", "")
	f.Add(500, "120", "")
	f.Fuzz(func(t *testing.T, status int, value, date string) {
		header := http.Header{"Retry-After": {value}}
		if date != "" {
			header.Set("Date", date)
		}
		got := retryAfter(&http.Response{StatusCode: status, Header: header}, now)

		assert.GreaterOrEqual(t, got, time.Duration(0), "never a negative delay")
		if status != http.StatusTooManyRequests && status != http.StatusServiceUnavailable {
			assert.Zero(t, got, "only a 429 or a 503 asks to wait")
			return
		}
		if digits := strings.TrimSpace(value); isASCIIDigits(digits) {
			assert.Equal(t, refRetryAfterSeconds(digits), got, "Retry-After: %q", value)
		}
	})
}

// isASCIIDigits reports whether s is a non-empty run of the digits 0-9.
func isASCIIDigits(s string) bool {
	if s == "" {
		return false
	}
	for _, c := range s {
		if c < '0' || c > '9' {
			return false
		}
	}
	return true
}

// refRetryAfterSeconds is the delay a delay-seconds value asks for, written
// plainly: the seconds, or the longest whole number of seconds a Duration
// holds when the value is larger than that.
func refRetryAfterSeconds(digits string) time.Duration {
	const maxSeconds = math.MaxInt64 / int64(time.Second)
	var n int64
	for _, c := range digits {
		n = n*10 + int64(c-'0')
		if n > maxSeconds {
			return time.Duration(maxSeconds) * time.Second
		}
	}
	return time.Duration(n) * time.Second
}
