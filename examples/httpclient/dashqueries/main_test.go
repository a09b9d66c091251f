package main

import (
	"bytes"
	"encoding/json"
	"io"
	"os"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// dashboardFile is the dashboard levee ships, from this package's directory.
const dashboardFile = "../../../docs/grafana/levee.json"

func TestDashboard_IsValid(t *testing.T) {
	d, err := load(dashboardFile)
	require.NoError(t, err)
	assert.Empty(t, d.validate())
	assert.Greater(t, len(d.all()), 10)
}

// What the dashboard must show, in Prometheus's names: every policy's
// signals (issue 14). scrape_check.sh adds the converse: every levee metric
// the example exports is on the dashboard.
func TestDashboard_QueriesEveryPolicysSignals(t *testing.T) {
	d, err := load(dashboardFile)
	require.NoError(t, err)
	queries, err := d.queries(intervals{rate: "1m", step: "15s", span: "5m"})
	require.NoError(t, err)
	var all strings.Builder
	for _, q := range queries {
		all.WriteString(q.expr + "\n")
	}
	for _, family := range []string{
		"levee_circuit_breaker_state", "levee_circuit_breaker_calls_total", "levee_circuit_breaker_transitions_total",
		"levee_circuit_breaker_failure_rate_ratio", "levee_circuit_breaker_slow_call_rate_ratio",
		"levee_circuit_breaker_call_duration_seconds_bucket",
		"levee_timeout_exceeded_total", "levee_fallback_executions_total",
		"levee_retry_attempts_total", "levee_retry_exhausted_total", "levee_retry_budget_exhausted_total",
		"levee_hedge_started_total", "levee_hedge_wins_total", "levee_hedge_budget_exhausted_total",
		"levee_bulkhead_calls_total", "levee_bulkhead_in_flight", "levee_bulkhead_queued",
		"levee_rate_limit_calls_total", "levee_rate_limit_queued",
		"levee_throttle_calls_total", "levee_throttle_probability_ratio",
	} {
		assert.Contains(t, all.String(), family+"{", "no panel queries %s", family)
	}
	titles := map[string]bool{}
	for _, p := range d.all() {
		titles[p.Title] = true
	}
	for _, title := range []string{"Breaker state", "Calls by outcome", "Rejection rate", "Transitions"} {
		assert.True(t, titles[title], "the dashboard has a panel %q", title)
	}
}

func TestRun_PrintsEveryQueryOnceWithItsVariablesReplaced(t *testing.T) {
	var stdout, stderr bytes.Buffer
	require.NoError(t, run([]string{"-rate-interval", "2m", dashboardFile}, &stdout, &stderr), stderr.String())
	d, err := load(dashboardFile)
	require.NoError(t, err)
	targets := 0
	for _, p := range d.all() {
		targets += len(p.Targets)
	}
	lines := strings.Split(strings.TrimSuffix(stdout.String(), "\n"), "\n")
	require.Len(t, lines, targets+1, "one line per target, and one for the $policy variable")
	for _, line := range lines {
		fields := strings.Split(line, "\t")
		require.Len(t, fields, 4, "panel, refId, title, query: %q", line)
		assert.NotContains(t, fields[3], "$", "a variable left in %q", line)
		assert.NotContains(t, fields[3], "\n")
	}
	assert.Contains(t, stdout.String(), `levee_policy_name=~".+"`, "$policy becomes its All value")
	assert.Contains(t, stdout.String(), `[2m]`, "$__rate_interval becomes the flag's value")
	assert.Contains(t, stdout.String(), "0\t$policy\tvariable policy\tcount by (levee_policy_name) ({__name__=~\"levee_.+\"})\n")
}

func TestRun_RefusesBadArguments(t *testing.T) {
	assert.ErrorContains(t, run(nil, io.Discard, io.Discard), "want one argument")
	assert.Error(t, run([]string{"no-such-file.json"}, io.Discard, io.Discard))
	bad := t.TempDir() + "/bad.json"
	require.NoError(t, os.WriteFile(bad, []byte(`{"uid": "x", "title": "x", "schemaVersion": 39, "panels": []}`), 0o600))
	assert.ErrorContains(t, run([]string{bad}, io.Discard, io.Discard), "no panels")
}

func TestQueries_ReplaceEachSpellingOfAVariable(t *testing.T) {
	d := mustParse(t, `{"templating": {"list": [
		{"name": "datasource", "type": "datasource", "query": "prometheus"},
		{"name": "policy", "type": "custom", "includeAll": true, "allValue": "a|b"}]},
	  "panels": [{"id": 1, "targets": [
		{"refId": "A", "expr": "rate(x{p=~\"$policy\"}[$__rate_interval])"},
		{"refId": "B", "expr": "sum(\n  y{p=~\"${policy}\", q=~\"${policy:regex}\", r=~\"[[policy]]\"}\n)[$__range:$__interval]"}]}]}`)
	queries, err := d.queries(intervals{rate: "1m", step: "15s", span: "5m"})
	require.NoError(t, err)
	require.Len(t, queries, 2)
	assert.Equal(t, `rate(x{p=~"a|b"}[1m])`, queries[0].expr)
	assert.Equal(t, `sum( y{p=~"a|b", q=~"a|b", r=~"a|b"} )[5m:15s]`, queries[1].expr)
}

func TestQueries_RefuseWhatPrometheusCannotRun(t *testing.T) {
	for name, tc := range map[string]struct{ json, want string }{
		"an unknown variable": {
			`{"panels": [{"id": 3, "title": "p", "targets": [{"refId": "A", "expr": "x{i=\"$instance\"}"}]}]}`,
			`panel 3 ("p") target A: variable $instance has no value`,
		},
		"the datasource in a query": {
			`{"templating": {"list": [{"name": "datasource", "type": "datasource", "query": "prometheus"}]},
			  "panels": [{"id": 1, "targets": [{"refId": "A", "expr": "x{ds=\"${datasource}\"}"}]}]}`,
			`variable ${datasource} has no value`,
		},
		"a variable without an All value": {
			`{"templating": {"list": [{"name": "policy", "type": "query", "query": "label_values(p)", "includeAll": true}]}}`,
			`template variable "policy": give it an All option with an allValue`,
		},
		"a variable query Prometheus has no equivalent for": {
			`{"templating": {"list": [{"name": "p", "type": "query", "query": "metrics(levee_.*)", "includeAll": true, "allValue": ".*"}]}}`,
			`is not label_values(selector, label)`,
		},
	} {
		t.Run(name, func(t *testing.T) {
			_, err := mustParse(t, tc.json).queries(intervals{rate: "1m"})
			assert.ErrorContains(t, err, tc.want)
		})
	}
}

func TestVariableQuery_RunsLabelValuesAsACount(t *testing.T) {
	for query, want := range map[string]string{
		`"label_values(levee_circuit_breaker_state, levee_policy_name)"`: `count by (levee_policy_name) (levee_circuit_breaker_state)`,
		`{"query": "label_values({__name__=~\"levee_.+\"}, instance)"}`:  `count by (instance) ({__name__=~"levee_.+"})`,
		`"label_values(job)"`: `count by (job) ({job!=""})`,
		`{"query": "query_result(topk(3, levee_bulkhead_in_flight))"}`: `topk(3, levee_bulkhead_in_flight)`,
	} {
		got, err := variableQuery(variable{Query: json.RawMessage(query)})
		require.NoError(t, err, query)
		assert.Equal(t, want, got, query)
	}
}

// Each structural rule, broken on a copy of the real dashboard, is reported.
func TestValidate_ReportsEachBrokenRule(t *testing.T) {
	for name, tc := range map[string]struct {
		breakIt func(d *dashboard)
		want    string
	}{
		"a duplicate id":         {func(d *dashboard) { d.Panels[2].ID = d.Panels[1].ID }, "id already used"},
		"a zero id":              {func(d *dashboard) { d.Panels[1].ID = 0 }, "the id must be positive"},
		"no gridPos":             {func(d *dashboard) { d.Panels[1].GridPos = nil }, "no gridPos"},
		"a gridPos off the grid": {func(d *dashboard) { d.Panels[1].GridPos.X = 20 }, "not inside the 24-column grid"},
		"overlapping panels":     {func(d *dashboard) { *d.Panels[3].GridPos = *d.Panels[2].GridPos }, "overlap"},
		"no datasource":          {func(d *dashboard) { d.Panels[1].Datasource = nil }, "datasource must be"},
		"a fixed datasource": {func(d *dashboard) {
			d.Panels[1].Datasource = &datasource{Type: "prometheus", UID: "P1809F7CD0C75ACF3"}
		}, "datasource must be"},
		"a target without datasource": {func(d *dashboard) { d.Panels[1].Targets[0].Datasource = nil }, "target A: datasource must be"},
		"no targets":                  {func(d *dashboard) { d.Panels[1].Targets = nil }, "no targets"},
		"an empty query":              {func(d *dashboard) { d.Panels[1].Targets[0].Expr = " " }, "has no query"},
		"a repeated refId": {func(d *dashboard) {
			d.Panels[1].Targets = append(d.Panels[1].Targets, d.Panels[1].Targets[0])
		}, "used twice"},
		"no datasource variable": {func(d *dashboard) { d.Templating.List = d.Templating.List[1:] }, `no template variable "datasource"`},
		"no uid":                 {func(d *dashboard) { d.UID = "" }, "needs a uid"},
	} {
		t.Run(name, func(t *testing.T) {
			d, err := load(dashboardFile)
			require.NoError(t, err)
			require.Empty(t, d.validate(), "the dashboard as shipped is valid")
			require.NotEqual(t, "row", d.Panels[1].Type, "panel 1 is a query panel")
			tc.breakIt(d)
			var all []string
			for _, p := range d.validate() {
				all = append(all, p.Error())
			}
			assert.Contains(t, strings.Join(all, "\n"), tc.want)
		})
	}
}

func mustParse(t *testing.T, s string) *dashboard {
	t.Helper()
	d, err := parse([]byte(s))
	require.NoError(t, err)
	return d
}
