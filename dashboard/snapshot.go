package dashboard

import (
	"cmp"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"
)

// Snapshot is what the page shows at one moment: one page of the policies
// that match a query, and a summary of all of them. It is the JSON of the
// snapshot and event endpoints.
type Snapshot struct {
	// At is when the snapshot was taken.
	At time.Time `json:"at"`
	// TimelineSeconds is how far back the breakers' timelines reach.
	TimelineSeconds float64 `json:"timeline_seconds"`
	// Controls reports whether operator controls are on (WithControls).
	Controls bool `json:"controls"`
	// Summary counts every registered policy, matched or not.
	Summary Summary `json:"summary"`
	// Matched is how many policies match the query; Offset and Limit say
	// which of them Policies holds.
	Matched int `json:"matched"`
	Offset  int `json:"offset"`
	Limit   int `json:"limit"`
	// Policies is one page of the matching policies.
	Policies []Policy `json:"policies"`
}

// Summary counts the registered policies.
type Summary struct {
	// Total is every policy registered; Kinds counts them by kind.
	Total int            `json:"total"`
	Kinds map[string]int `json:"kinds"`
	// Open and HalfOpen count the breakers in those states; Attention
	// counts every policy at level warn or bad.
	Open      int `json:"open"`
	HalfOpen  int `json:"half_open"`
	Attention int `json:"attention"`
}

// Policy is one policy on the page.
type Policy struct {
	// Kind is breaker, bulkhead, rate_limit, throttle, retry or hedge.
	Kind string `json:"kind"`
	// Name is the policy's name (levee.policy.name), as given.
	Name string `json:"name"`
	// State is a breaker's state (closed, open, half-open); for other
	// kinds a condition worth seeing ("full", "throttling") or "".
	State string `json:"state"`
	// Level is ok, warn or bad: how much the policy needs an eye.
	Level string `json:"level"`
	// Counts are the calls by outcome since the policy was created; a
	// retry's and a hedge's since the dashboard began counting them.
	Counts []Count `json:"counts"`
	// Details are further values: calls in flight, a probability.
	Details []Detail `json:"details,omitempty"`
	// Transitions are a breaker's changes within the timeline, oldest
	// first.
	Transitions []Transition `json:"transitions,omitempty"`
	// Controllable is set for a breaker when controls are on.
	Controllable bool `json:"controllable,omitempty"`
}

// Count is the calls of one outcome and their recent rate.
type Count struct {
	// Outcome names the count: a levee.outcome value for the kinds that
	// have one (success, rejected, admitted, ...), or what a retry or a
	// hedge counts (retry_failure, exhausted, started, won_by_hedge, ...).
	Outcome string `json:"outcome"`
	// N is the count since the policy was created.
	N int64 `json:"n"`
	// PerSecond is the rate over about the last ten seconds; absent until
	// the dashboard has two readings a second apart.
	PerSecond *float64 `json:"per_second,omitempty"`
}

// query is what a request asks the snapshot for.
type query struct {
	text   string // a case-insensitive part of the name
	kind   kind
	anyKin bool
	state  string // "", "attention", or a state
	sort   string // "attention" (the default) or "name"
	offset int
	limit  int
}

// parseQuery reads the query parameters q, kind, state, sort, offset and
// limit; a problem is returned as the message of a 400.
func parseQuery(v url.Values) (query, string) {
	q := query{text: strings.ToLower(strings.TrimSpace(v.Get("q"))), anyKin: true, sort: "attention", limit: DefaultPageSize}
	if len(q.text) > 200 {
		return q, "q: at most 200 bytes"
	}
	if s := v.Get("kind"); s != "" {
		k, ok := parseKind(s)
		if !ok {
			return q, "kind: one of " + strings.Join(kindNames[:], ", ")
		}
		q.kind, q.anyKin = k, false
	}
	switch s := v.Get("state"); s {
	case "", "attention", "closed", "open", "half-open", "full", "throttling":
		q.state = s
	default:
		return q, "state: one of attention, closed, open, half-open, full, throttling"
	}
	switch s := v.Get("sort"); s {
	case "", "attention":
	case "name":
		q.sort = s
	default:
		return q, "sort: attention or name"
	}
	var err error
	if s := v.Get("offset"); s != "" {
		if q.offset, err = strconv.Atoi(s); err != nil || q.offset < 0 {
			return q, "offset: a number, at least 0"
		}
	}
	if s := v.Get("limit"); s != "" {
		if q.limit, err = strconv.Atoi(s); err != nil || q.limit < 1 || q.limit > MaxPageSize {
			return q, "limit: a number from 1 to " + strconv.Itoa(MaxPageSize)
		}
	}
	return q, ""
}

func (q *query) matches(e *entry, r reading) bool {
	if !q.anyKin && e.key.kind != q.kind {
		return false
	}
	if q.text != "" && !strings.Contains(strings.ToLower(e.key.name), q.text) {
		return false
	}
	switch q.state {
	case "":
		return true
	case "attention":
		return r.level != levelOK
	default:
		return r.state == q.state
	}
}

var levelRank = map[string]int{levelBad: 0, levelWarn: 1, levelOK: 2}

// snapshot reads every registered policy and returns the page q asks for.
// It is the only place the policies are read, and runs only when a client
// asks.
func (d *Dashboard) snapshot(q query) Snapshot {
	now := time.Now()
	d.mu.RLock()
	entries := make([]*entry, 0, len(d.entries))
	for _, e := range d.entries {
		entries = append(entries, e)
	}
	d.mu.RUnlock()

	type read struct {
		e *entry
		r reading
	}
	snap := Snapshot{
		At:              now,
		TimelineSeconds: d.timeline.Seconds(),
		Controls:        d.authorize != nil,
		Summary:         Summary{Kinds: make(map[string]int)},
		Offset:          q.offset,
		Limit:           q.limit,
		Policies:        []Policy{},
	}
	matched := make([]read, 0, len(entries))
	for _, e := range entries {
		r, ok := e.read()
		if !ok {
			continue
		}
		snap.Summary.Total++
		snap.Summary.Kinds[kindNames[e.key.kind]]++
		if e.key.kind == kindBreaker {
			switch r.state {
			case "open":
				snap.Summary.Open++
			case "half-open":
				snap.Summary.HalfOpen++
			}
		}
		if r.level != levelOK {
			snap.Summary.Attention++
		}
		if q.matches(e, r) {
			matched = append(matched, read{e, r})
		}
	}
	slices.SortFunc(matched, func(a, b read) int {
		if q.sort == "attention" {
			if c := cmp.Compare(levelRank[a.r.level], levelRank[b.r.level]); c != 0 {
				return c
			}
		}
		if c := cmp.Compare(a.e.key.kind, b.e.key.kind); c != 0 {
			return c
		}
		return strings.Compare(a.e.key.name, b.e.key.name)
	})
	snap.Matched = len(matched)
	since := now.Add(-d.timeline)
	for _, m := range matched[min(q.offset, len(matched)):min(q.offset+q.limit, len(matched))] {
		rates, ts := m.e.observe(now, m.r, since)
		p := Policy{
			Kind:         kindNames[m.e.key.kind],
			Name:         m.e.key.name,
			State:        m.r.state,
			Level:        m.r.level,
			Counts:       make([]Count, len(m.r.counts)),
			Details:      m.r.details,
			Transitions:  ts,
			Controllable: m.e.control != nil && d.authorize != nil,
		}
		for i, n := range m.r.counts {
			p.Counts[i] = Count{Outcome: outcomeNames[m.e.key.kind][i], N: n}
			if rates != nil {
				p.Counts[i].PerSecond = &rates[i]
			}
		}
		snap.Policies = append(snap.Policies, p)
	}
	return snap
}
