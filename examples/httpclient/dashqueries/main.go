// Command dashqueries reads a Grafana dashboard (docs/grafana/levee.json),
// checks its structure, and prints every PromQL query it runs, written as
// Prometheus itself can run them: one line a query,
//
//	<panel id> TAB <refId> TAB <panel title> TAB <query>
//
// the queries of the panels' targets first, then those of the template
// variables (as panel 0). scrape_check.sh, beside its parent directory, runs
// each against a real Prometheus and requires data, so the dashboard and the
// check read the same file and cannot drift.
//
// Grafana fills in variables before it sends a query; Prometheus knows none,
// so each is replaced here, explicitly:
//   - $__rate_interval, $__interval and $__range by the -rate-interval,
//     -interval and -range flags (Grafana derives them from the scrape
//     interval and the time range: the check's Prometheus scrapes every
//     second, and its whole run fits in the defaults);
//   - a template variable ($policy, ${policy}, ${policy:regex}, [[policy]])
//     by its allValue, the value of its "All" option, which must be set: it
//     is what a dashboard just imported shows;
//   - $datasource may appear only in datasource fields, never in a query.
//
// Any other variable is an error, as is a variable's query other than
// label_values(selector, label), run as count by (label) (selector), or
// query_result(query). The structure checked: unique panel ids, a gridPos
// inside the 24-column grid for every panel, no two panels overlapping, and
// for every panel but rows a Prometheus datasource given by $datasource and
// at least one target, each with a refId of its own and a query.
//
// Usage, from the examples module:
//
//	go run ./httpclient/dashqueries [-rate-interval 1m] ../docs/grafana/levee.json
package main

import (
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"regexp"
	"strings"
)

func main() {
	if err := run(os.Args[1:], os.Stdout, os.Stderr); err != nil {
		if !errors.Is(err, flag.ErrHelp) {
			fmt.Fprintln(os.Stderr, "dashqueries:", err)
		}
		os.Exit(2)
	}
}

func run(args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("dashqueries", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var builtins intervals
	fs.StringVar(&builtins.rate, "rate-interval", "1m", "what $__rate_interval becomes")
	fs.StringVar(&builtins.step, "interval", "15s", "what $__interval becomes")
	fs.StringVar(&builtins.span, "range", "5m", "what $__range becomes")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() != 1 {
		return fmt.Errorf("want one argument, the dashboard's JSON file; got %q", fs.Args())
	}
	d, err := load(fs.Arg(0))
	if err != nil {
		return err
	}
	if problems := d.validate(); len(problems) > 0 {
		return fmt.Errorf("%s: %w", fs.Arg(0), errors.Join(problems...))
	}
	queries, err := d.queries(builtins)
	if err != nil {
		return fmt.Errorf("%s: %w", fs.Arg(0), err)
	}
	for _, q := range queries {
		fmt.Fprintf(stdout, "%d\t%s\t%s\t%s\n", q.panel, q.refID, q.title, q.expr)
	}
	return nil
}

// The parts of Grafana's dashboard model (schemaVersion 39) that are read.
type (
	dashboard struct {
		UID           string `json:"uid"`
		Title         string `json:"title"`
		SchemaVersion int    `json:"schemaVersion"`
		Templating    struct {
			List []variable `json:"list"`
		} `json:"templating"`
		Panels []panel `json:"panels"`
	}
	variable struct {
		Name       string          `json:"name"`
		Type       string          `json:"type"`
		Query      json.RawMessage `json:"query"` // a string, or {"query": "...", "refId": ...}
		IncludeAll bool            `json:"includeAll"`
		AllValue   string          `json:"allValue"`
		Datasource *datasource     `json:"datasource"`
	}
	panel struct {
		ID         int         `json:"id"`
		Type       string      `json:"type"`
		Title      string      `json:"title"`
		Datasource *datasource `json:"datasource"`
		GridPos    *gridPos    `json:"gridPos"`
		Targets    []target    `json:"targets"`
		Panels     []panel     `json:"panels"` // a collapsed row's
	}
	target struct {
		RefID      string      `json:"refId"`
		Expr       string      `json:"expr"`
		Datasource *datasource `json:"datasource"`
	}
	datasource struct {
		Type string `json:"type"`
		UID  string `json:"uid"`
	}
	gridPos struct {
		X, Y, W, H int
	}
)

// The datasource every panel and target must name: the dashboard's
// $datasource variable, so that an import asks for no datasource mapping.
var wantDatasource = datasource{Type: "prometheus", UID: "${datasource}"}

func load(path string) (*dashboard, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	return parse(data)
}

func parse(data []byte) (*dashboard, error) {
	var d dashboard
	if err := json.Unmarshal(data, &d); err != nil {
		return nil, fmt.Errorf("not a dashboard's JSON: %w", err)
	}
	return &d, nil
}

// all returns every panel, those of collapsed rows included.
func (d *dashboard) all() []panel {
	var out []panel
	for _, p := range d.Panels {
		out = append(out, p)
		out = append(out, p.Panels...)
	}
	return out
}

// validate returns every problem of d's structure, each naming its panel.
func (d *dashboard) validate() []error {
	var problems []error
	bad := func(format string, args ...any) { problems = append(problems, fmt.Errorf(format, args...)) }
	if d.UID == "" || d.Title == "" || d.SchemaVersion <= 0 {
		bad("the dashboard needs a uid, a title and a schemaVersion")
	}
	hasDatasourceVar := false
	for _, v := range d.Templating.List {
		if v.Name == "datasource" && v.Type == "datasource" && string(v.Query) == `"prometheus"` {
			hasDatasourceVar = true
		}
	}
	if !hasDatasourceVar {
		bad(`no template variable "datasource" of type datasource for prometheus`)
	}
	if len(d.Panels) == 0 {
		bad("no panels")
	}
	ids := map[int]string{}
	for _, p := range d.all() {
		name := fmt.Sprintf("panel %d (%q)", p.ID, p.Title)
		if p.ID <= 0 {
			bad("%s: the id must be positive", name)
		} else if other, dup := ids[p.ID]; dup {
			bad("%s: id already used by %q", name, other)
		}
		ids[p.ID] = p.Title
		if p.Title == "" || p.Type == "" {
			bad("%s: needs a title and a type", name)
		}
		if g := p.GridPos; g == nil {
			bad("%s: no gridPos", name)
		} else if g.W < 1 || g.H < 1 || g.X < 0 || g.Y < 0 || g.X+g.W > 24 {
			bad("%s: gridPos %+v is not inside the 24-column grid", name, *g)
		}
		if p.Type == "row" {
			if len(p.Targets) > 0 {
				bad("%s: a row runs no queries", name)
			}
			continue
		}
		if p.Datasource == nil || *p.Datasource != wantDatasource {
			bad("%s: datasource must be %+v", name, wantDatasource)
		}
		if len(p.Targets) == 0 {
			bad("%s: no targets", name)
		}
		refIDs := map[string]bool{}
		for _, t := range p.Targets {
			if t.RefID == "" || refIDs[t.RefID] {
				bad("%s: target refId %q is empty or used twice", name, t.RefID)
			}
			refIDs[t.RefID] = true
			if strings.TrimSpace(t.Expr) == "" {
				bad("%s: target %s has no query", name, t.RefID)
			}
			if t.Datasource == nil || *t.Datasource != wantDatasource {
				bad("%s: target %s: datasource must be %+v", name, t.RefID, wantDatasource)
			}
		}
	}
	for i, a := range d.Panels {
		for _, b := range d.Panels[i+1:] {
			if a.GridPos != nil && b.GridPos != nil && overlap(*a.GridPos, *b.GridPos) {
				bad("panels %d and %d overlap", a.ID, b.ID)
			}
		}
	}
	return problems
}

func overlap(a, b gridPos) bool {
	return a.X < b.X+b.W && b.X < a.X+a.W && a.Y < b.Y+b.H && b.Y < a.Y+a.H
}

// intervals are the values of Grafana's built-in interval variables.
type intervals struct{ rate, step, span string }

// query is one PromQL query the dashboard runs, as Prometheus can run it.
type query struct {
	panel        int
	refID, title string
	expr         string
}

// variableRef matches Grafana's three spellings of a variable: $name,
// ${name} or ${name:format}, and [[name]].
var variableRef = regexp.MustCompile(`\$\{(\w+)(?::\w+)?\}|\$(\w+)|\[\[(\w+)\]\]`)

// queries returns every query of the panels' targets, then of the template
// variables, with the variables replaced.
func (d *dashboard) queries(builtins intervals) ([]query, error) {
	values := map[string]string{"__rate_interval": builtins.rate, "__interval": builtins.step, "__range": builtins.span}
	for _, v := range d.Templating.List {
		if v.Type == "datasource" {
			continue // a query never names it: checked below, as unknown
		}
		if !v.IncludeAll || v.AllValue == "" {
			return nil, fmt.Errorf("template variable %q: give it an All option with an allValue, which the check then queries", v.Name)
		}
		values[v.Name] = v.AllValue
	}
	var out []query
	var problems []error
	substitute := func(where, expr string) string {
		expr = variableRef.ReplaceAllStringFunc(expr, func(ref string) string {
			m := variableRef.FindStringSubmatch(ref)
			name := m[1] + m[2] + m[3]
			v, ok := values[name]
			if !ok {
				problems = append(problems, fmt.Errorf("%s: variable %s has no value for Prometheus", where, ref))
				return ref
			}
			return v
		})
		return strings.Join(strings.Fields(expr), " ")
	}
	for _, p := range d.all() {
		for _, t := range p.Targets {
			where := fmt.Sprintf("panel %d (%q) target %s", p.ID, p.Title, t.RefID)
			out = append(out, query{panel: p.ID, refID: t.RefID, title: p.Title, expr: substitute(where, t.Expr)})
		}
	}
	for _, v := range d.Templating.List {
		if v.Type != "query" {
			continue
		}
		where := fmt.Sprintf("template variable %q", v.Name)
		expr, err := variableQuery(v)
		if err != nil {
			problems = append(problems, fmt.Errorf("%s: %w", where, err))
			continue
		}
		out = append(out, query{refID: "$" + v.Name, title: "variable " + v.Name, expr: substitute(where, expr)})
	}
	return out, errors.Join(problems...)
}

var (
	labelValuesOf = regexp.MustCompile(`^label_values\(\s*(.+?)\s*,\s*(\w+)\s*\)$`)
	labelValues   = regexp.MustCompile(`^label_values\(\s*(\w+)\s*\)$`)
	queryResult   = regexp.MustCompile(`^query_result\((.+)\)$`)
)

// variableQuery is the PromQL query that returns the series a query
// variable takes its values from.
func variableQuery(v variable) (string, error) {
	var q string
	if err := json.Unmarshal(v.Query, &q); err != nil {
		var obj struct {
			Query string `json:"query"`
		}
		if err := json.Unmarshal(v.Query, &obj); err != nil {
			return "", fmt.Errorf("its query is neither a string nor an object with a query: %s", v.Query)
		}
		q = obj.Query
	}
	q = strings.TrimSpace(q)
	switch {
	case labelValuesOf.MatchString(q):
		m := labelValuesOf.FindStringSubmatch(q)
		return "count by (" + m[2] + ") (" + m[1] + ")", nil
	case labelValues.MatchString(q):
		m := labelValues.FindStringSubmatch(q)
		return "count by (" + m[1] + ") ({" + m[1] + `!=""})`, nil
	case queryResult.MatchString(q):
		return queryResult.FindStringSubmatch(q)[1], nil
	}
	return "", fmt.Errorf("query %q is not label_values(selector, label), label_values(label) or query_result(query)", q)
}
