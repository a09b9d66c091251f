package leveehttp

import (
	"net/http"
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
