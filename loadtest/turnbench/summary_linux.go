package main

import (
	"fmt"
	"io"
	"slices"
	"strings"
	"text/tabwriter"
)

// Stat is the median and range of one metric over the rounds.
type Stat struct {
	Median, Min, Max float64
}

// Row is one metric for every server, with signald's median over coturn's.
type Row struct {
	Metric string
	Unit   string
	By     map[string]Stat
	Ratio  float64 `json:",omitempty"` // signald/coturn of the medians
}

type metric struct {
	name, unit string
	get        func(Run) float64
}

var metrics = []metric{
	{"relay: relayed packets/s", "pkt/s", func(r Run) float64 { return r.Relay.PacketsPerSec }},
	{"relay: loss", "%", func(r Run) float64 { return r.Relay.LossPct }},
	{"relay: average RTT", "ms", func(r Run) float64 { return r.Relay.RTTms }},
	{"relay: max RTT", "ms", func(r Run) float64 { return r.Relay.MaxRTTms }},
	{"relay: server CPU per packet", "µs", func(r Run) float64 { return r.Relay.ServerCPUus }},
	{"relay: server CPU", "cores", func(r Run) float64 { return r.Relay.ServerCores }},
	{"relay: uclient CPU", "cores", func(r Run) float64 { return r.Relay.GenCores }},
	{"STUN: Binding answers/s", "req/s", func(r Run) float64 { return r.STUN.PerSec }},
	{"STUN: timeouts", "%", func(r Run) float64 { return r.STUN.TimeoutPct }},
	{"STUN: mean RTT", "µs", func(r Run) float64 { return r.STUN.RTTus }},
	{"STUN: server CPU per Binding", "µs", func(r Run) float64 { return r.STUN.ServerCPUus }},
	{"STUN: server CPU", "cores", func(r Run) float64 { return r.STUN.ServerCores }},
	{"STUN: generator CPU", "cores", func(r Run) float64 { return r.STUN.GenCores }},
}

func stat(vs []float64) Stat {
	s := slices.Clone(vs)
	slices.Sort(s)
	n := len(s)
	med := s[n/2]
	if n%2 == 0 {
		med = (s[n/2-1] + s[n/2]) / 2
	}
	return Stat{Median: med, Min: s[0], Max: s[n-1]}
}

func summarize(runs []Run, specs []serverSpec) []Row {
	var rows []Row
	for _, m := range metrics {
		row := Row{Metric: m.name, Unit: m.unit, By: map[string]Stat{}}
		for _, sp := range specs {
			var vs []float64
			for _, r := range runs {
				if r.Server == sp.name {
					vs = append(vs, m.get(r))
				}
			}
			if len(vs) > 0 {
				row.By[sp.name] = stat(vs)
			}
		}
		s, ok1 := row.By["signald"]
		c, ok2 := row.By["coturn"]
		if ok1 && ok2 && c.Median != 0 {
			row.Ratio = s.Median / c.Median
		}
		rows = append(rows, row)
	}
	return rows
}

func printTable(w io.Writer, rep *Report, o options) {
	fmt.Fprintf(w, "\nturnbench: %d CPU(s) %s, kernel %s, %s; %d round(s), median [min-max]\n",
		rep.Machine.CPUs, rep.Machine.Model, rep.Machine.Kernel, rep.Machine.Go, o.rounds)
	fmt.Fprintf(w, "relay: turnutils_uclient -y -c -m %d -n %d -l %d -z %d (UDP, channels, client to client); STUN: %d sockets x 1 in flight, %v\n\n",
		o.relay.Clients, o.relay.Messages, o.relay.Size, o.relay.IntervalMS, o.stunConns, o.stunTime)
	var names []string
	for _, sp := range []string{"signald", "coturn"} {
		if _, ok := rep.Summary[0].By[sp]; ok {
			names = append(names, sp)
		}
	}
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	head := []string{"metric", "unit"}
	head = append(head, names...)
	if len(names) == 2 {
		head = append(head, "signald/coturn")
	}
	fmt.Fprintln(tw, strings.Join(head, "\t")+"\t")
	for _, r := range rep.Summary {
		cells := []string{r.Metric, r.Unit}
		for _, n := range names {
			s := r.By[n]
			cells = append(cells, fmt.Sprintf("%s [%s-%s]", num(s.Median), num(s.Min), num(s.Max)))
		}
		if len(names) == 2 {
			if r.Ratio != 0 {
				cells = append(cells, fmt.Sprintf("%.2f", r.Ratio))
			} else {
				cells = append(cells, "-")
			}
		}
		fmt.Fprintln(tw, strings.Join(cells, "\t")+"\t")
	}
	tw.Flush()
	fmt.Fprintln(w)
}

// num prints with about three significant digits.
func num(v float64) string {
	switch a := max(v, -v); {
	case a == 0:
		return "0"
	case a >= 1000:
		return fmt.Sprintf("%.0f", v)
	case a >= 100:
		return fmt.Sprintf("%.0f", v)
	case a >= 10:
		return fmt.Sprintf("%.1f", v)
	case a >= 1:
		return fmt.Sprintf("%.2f", v)
	default:
		return fmt.Sprintf("%.3f", v)
	}
}
