package main

import (
	"flag"
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"
	"strings"
)

type plotResult struct {
	Load  string   `json:"load"`
	Files []string `json:"files"`
}

// runPlot draws the sweeps of the comparisons found in the bench directory
// as SVG: the tracker's relayed offers/s and offer→answer p99 against
// offered announces/s, and TURN's server CPU per relayed packet and p99
// latency against offered packets/s, for both servers of each.
func runPlot(args []string) (*plotResult, error) {
	fs := flag.NewFlagSet("plot", flag.ContinueOnError)
	dir := fs.String("dir", "docs/bench", "directory of the JSON results; the SVGs go there too")
	if err := fs.Parse(args); err != nil {
		return nil, err
	}
	r, err := loadResults(*dir)
	if err != nil {
		return nil, err
	}
	res := &plotResult{Load: "plot"}
	draw := func(name string, fn func(io.Writer)) error {
		path := filepath.Join(*dir, name)
		f, err := os.Create(path)
		if err != nil {
			return err
		}
		fn(f)
		res.Files = append(res.Files, path)
		return f.Close()
	}
	if r.tracker != nil && len(r.tracker.Sweep) > 0 {
		if err := draw("tracker-sweep.svg", func(w io.Writer) { drawSweep(w, r.tracker) }); err != nil {
			return nil, err
		}
	}
	if r.turn != nil && len(r.turn.Sweep) > 0 {
		if err := draw("turn-sweep.svg", func(w io.Writer) { drawTURNSweep(w, r.turn) }); err != nil {
			return nil, err
		}
	}
	if len(res.Files) == 0 {
		return nil, fmt.Errorf("%s has no comparison with a sweep", *dir)
	}
	return res, nil
}

type series struct {
	name, color string
	x, y        []float64
}

func drawSweep(w io.Writer, r *compareResult) {
	var offers, p99 []series
	for _, who := range []struct{ name, color string }{{"bittorrent-tracker 9.19", "#d9534f"}, {"signald", "#337ab7"}} {
		o, p := series{name: who.name, color: who.color}, series{name: who.name, color: who.color}
		for _, s := range r.Sweep {
			t := s.Signald
			if who.name != "signald" {
				t = s.Reference
			}
			o.x, o.y = append(o.x, s.Rate), append(o.y, t.OffersPerS)
			p.x, p.y = append(p.x, s.Rate), append(p.y, rttOf(t, "p99"))
		}
		offers, p99 = append(offers, o), append(p99, p)
	}
	const W, H = 960, 400
	svgStart(w, W, H)
	chart(w, 0, "offers relayed/s", offers, false)
	chart(w, W/2, "offer→answer p99 (ms, log scale)", p99, true)
	fmt.Fprintf(w, `<text x="%d" y="%d" text-anchor="middle">offered announces/s (5 offers each), %d peers in %d swarms, %d CPUs shared with the load generator</text>`+"\n",
		W/2, H-8, r.Sweep[0].Signald.Peers, r.Sweep[0].Signald.Swarms, r.Machine.CPUs)
	fmt.Fprintln(w, "</svg>")
}

var serverColors = map[string]string{"signald": "#337ab7", "coturn": "#d9534f"}

// drawTURNSweep draws the TURN sweep of a turncompare run.
func drawTURNSweep(w io.Writer, r *turnCompareResult) {
	var cpu, p99 []series
	for _, server := range serversOf(r) {
		c, p := series{name: server, color: serverColors[server]}, series{name: server, color: serverColors[server]}
		for _, run := range r.Sweep {
			if run.Server != server {
				continue
			}
			c.x, c.y = append(c.x, run.TURN.OfferedPerS), append(c.y, run.TURN.TargetCPUPerPkt)
			p.x, p.y = append(p.x, run.TURN.OfferedPerS), append(p.y, ms(run.TURN.LatencyMs, "p99"))
		}
		cpu, p99 = append(cpu, c), append(p99, p)
	}
	const W, H = 960, 400
	svgStart(w, W, H)
	chart(w, 0, "server CPU µs per relayed packet", cpu, false)
	chart(w, W/2, "relay latency p99 (ms, log scale)", p99, true)
	t := r.Sweep[0].TURN
	fmt.Fprintf(w, `<text x="%d" y="%d" text-anchor="middle">offered packets/s (%d allocations, %d-byte packets), %d CPUs shared with the load generator</text>`+"\n",
		W/2, H-8, t.Allocations, t.PacketBytes, r.Machine.CPUs)
	fmt.Fprintln(w, "</svg>")
}

func svgStart(w io.Writer, W, H int) {
	fmt.Fprintf(w, `<svg xmlns="http://www.w3.org/2000/svg" width="%d" height="%d" font-family="sans-serif" font-size="12">`+"\n", W, H)
	fmt.Fprintf(w, `<rect width="%d" height="%d" fill="white"/>`+"\n", W, H)
}

// chart draws one panel of width 480 at x0.
func chart(w io.Writer, x0 int, title string, ss []series, logY bool) {
	const pw, ph, left, top = 380, 280, 70, 40
	var xmax, ymax, ymin float64 = 0, 0, math.Inf(1)
	for _, s := range ss {
		for i := range s.x {
			xmax = math.Max(xmax, s.x[i])
			ymax = math.Max(ymax, s.y[i])
			if s.y[i] > 0 {
				ymin = math.Min(ymin, s.y[i])
			}
		}
	}
	if ymax == 0 {
		ymax = 1
	}
	ylo := 0.0
	if logY {
		ylo = math.Pow(10, math.Floor(math.Log10(math.Max(ymin, 1e-3))))
		ymax = math.Pow(10, math.Ceil(math.Log10(ymax)))
	}
	sx := func(x float64) float64 { return float64(x0+left) + x/xmax*pw }
	sy := func(y float64) float64 {
		if logY {
			y = math.Max(y, ylo)
			return top + ph - (math.Log10(y)-math.Log10(ylo))/(math.Log10(ymax)-math.Log10(ylo))*ph
		}
		return top + ph - y/ymax*ph
	}
	fmt.Fprintf(w, `<text x="%d" y="%d" font-weight="bold">%s</text>`+"\n", x0+left, top-15, title)
	fmt.Fprintf(w, `<rect x="%d" y="%d" width="%d" height="%d" fill="none" stroke="#999"/>`+"\n", x0+left, top, pw, ph)
	var yticks []float64
	if logY {
		for v := ylo; v <= ymax*1.0001; v *= 10 {
			yticks = append(yticks, v)
		}
	} else {
		for i := 0; i <= 4; i++ {
			yticks = append(yticks, ymax*float64(i)/4)
		}
	}
	for _, v := range yticks {
		y := sy(v)
		fmt.Fprintf(w, `<line x1="%d" y1="%.1f" x2="%d" y2="%.1f" stroke="#eee"/><text x="%d" y="%.1f" text-anchor="end">%s</text>`+"\n",
			x0+left, y, x0+left+pw, y, x0+left-5, y+4, short(v))
	}
	for i := 0; i <= 4; i++ {
		xv := xmax * float64(i) / 4
		fmt.Fprintf(w, `<text x="%.1f" y="%d" text-anchor="middle">%s</text>`+"\n", sx(xv), top+ph+15, short(xv))
	}
	for k, s := range ss {
		var pts []string
		for i := range s.x {
			pts = append(pts, fmt.Sprintf("%.1f,%.1f", sx(s.x[i]), sy(s.y[i])))
			fmt.Fprintf(w, `<circle cx="%.1f" cy="%.1f" r="3" fill="%s"/>`+"\n", sx(s.x[i]), sy(s.y[i]), s.color)
		}
		fmt.Fprintf(w, `<polyline points="%s" fill="none" stroke="%s" stroke-width="2"/>`+"\n", strings.Join(pts, " "), s.color)
		fmt.Fprintf(w, `<text x="%d" y="%d" fill="%s">%s</text>`+"\n", x0+left+10, top+18+16*k, s.color, s.name)
	}
}

func short(v float64) string {
	switch {
	case v >= 1000:
		return fmt.Sprintf("%.0fk", v/1000)
	case v >= 10:
		return fmt.Sprintf("%.0f", v)
	case v >= 1:
		return fmt.Sprintf("%.1f", v)
	}
	return fmt.Sprintf("%.2g", v)
}
