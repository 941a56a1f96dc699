// Package load drives the platform as its users do: members' requests
// through the HTTP gateways (tokens, idempotency keys, retries), over many
// dealing days with the operator's prices, cycles and reconciliations, and
// checks at the end that every acknowledged request is in its pot exactly
// once and that every pot's cash and units agree with what the requests
// and the executed prices say (docs/load.md).
//
// A run replays a workload: a text file that Generate writes from a seed
// and rates (`mastertrust load gen`), so that two runs (two versions, two
// deployments) do the same work.
package load

import (
	"bufio"
	"fmt"
	"io"
	"strconv"
	"strings"
)

// The workload format, one record a line, fields separated by one space:
//
//	mastertrust-load 1 members=<n> days=<n> seed=<n> [warmup=<n>]   the header, first
//	open <member> <profile|->                          a pot, before the first day ("-": self-directed)
//	day <n>                                            a dealing day's records follow (n ≤ 0: a warm-up day)
//	prices <ISIN>=<price> …                            the day's closing prices
//	contribute <member> <key> <amount>
//	withdraw <member> <key> <amount>
//	buy <member> <key> <ISIN> <amount>
//	sell <member> <key> <ISIN> units|amount|percent <value>
//	switch <member> <key> <from ISIN> <to ISIN> <percent>
//	profile <member> <key> <profile|->
//	cancel <member> <key> <the key of the member's order to cancel>
//
// A member's requests of a day are sent in the file's order, one at a
// time; different members' at once. Blank lines and lines starting with #
// are ignored.
const formatHeader = "mastertrust-load 1"

// Kind is a request's kind, the record's first word.
type Kind string

// The kinds of members' requests.
const (
	KindOpen       Kind = "open"
	KindContribute Kind = "contribute"
	KindWithdraw   Kind = "withdraw"
	KindBuy        Kind = "buy"
	KindSell       Kind = "sell"
	KindSwitch     Kind = "switch"
	KindProfile    Kind = "profile"
	KindCancel     Kind = "cancel"
)

// Request is one member's request.
type Request struct {
	Kind   Kind
	Member string
	// Key is the request's idempotency key ("" for open, whose key is
	// made from the member id).
	Key string
	// Args are the kind's further fields, as written.
	Args []string
}

// Day is one dealing day of a workload: its prices and its requests.
// Days numbered from 1 are the workload's; those numbered 0 and below,
// before them, warm it up (GenConfig.WarmUpDays).
type Day struct {
	Number   int
	Prices   map[string]string
	Requests []Request
	// settling marks the days a run adds after the workload's last.
	settling bool
}

// WarmUp reports whether d is a warm-up day, before the workload's days.
func (d Day) WarmUp() bool { return d.Number <= 0 && !d.settling }

// Header is a workload's first line.
type Header struct {
	Members, Days int
	Seed          int64
	// WarmUp is the number of warm-up days before day 1.
	WarmUp int
}

// Writer writes a workload.
type Writer struct {
	w   *bufio.Writer
	err error
}

// NewWriter writes h as the header and returns the writer of the rest.
func NewWriter(w io.Writer, h Header) *Writer {
	wr := &Writer{w: bufio.NewWriterSize(w, 1<<16)}
	header := fmt.Sprintf("%s members=%d days=%d seed=%d", formatHeader, h.Members, h.Days, h.Seed)
	if h.WarmUp > 0 {
		header += fmt.Sprintf(" warmup=%d", h.WarmUp)
	}
	wr.line(header)
	return wr
}

func (w *Writer) line(s string) {
	if w.err != nil {
		return
	}
	if _, err := w.w.WriteString(s); err != nil {
		w.err = err
		return
	}
	w.err = w.w.WriteByte('\n')
}

// Open writes a pot's opening.
func (w *Writer) Open(member, profile string) {
	if profile == "" {
		profile = "-"
	}
	w.line("open " + member + " " + profile)
}

// Day writes a day's start and its prices (written in the order of
// assets).
func (w *Writer) Day(n int, assets []string, prices map[string]string) {
	w.line("day " + strconv.Itoa(n))
	var b strings.Builder
	b.WriteString("prices")
	for _, a := range assets {
		b.WriteString(" " + a + "=" + prices[a])
	}
	w.line(b.String())
}

// Request writes a request.
func (w *Writer) Request(r Request) {
	w.line(strings.Join(append([]string{string(r.Kind), r.Member, r.Key}, r.Args...), " "))
}

// Close flushes what is buffered and reports the first error.
func (w *Writer) Close() error {
	if w.err != nil {
		return w.err
	}
	return w.w.Flush()
}

// Reader reads a workload: the header, the pots to open, then a day at a
// time, so that a workload of millions of requests is never in memory at
// once.
type Reader struct {
	s      *bufio.Scanner
	line   int
	Header Header
	next   string // a line read ahead ("day …"), or ""
}

// NewReader reads the header.
func NewReader(r io.Reader) (*Reader, error) {
	s := bufio.NewScanner(r)
	s.Buffer(make([]byte, 1<<16), 1<<20)
	rd := &Reader{s: s}
	line, ok := rd.read()
	if !ok {
		return nil, rd.errorf("no header (want %q)", formatHeader)
	}
	rest, ok := strings.CutPrefix(line, formatHeader+" ")
	if !ok {
		return nil, rd.errorf("header %q: want %q and members=, days=, seed=", line, formatHeader)
	}
	for _, f := range strings.Fields(rest) {
		name, value, _ := strings.Cut(f, "=")
		n, err := strconv.ParseInt(value, 10, 64)
		if err != nil {
			return nil, rd.errorf("header field %q: %v", f, err)
		}
		switch name {
		case "members":
			rd.Header.Members = int(n)
		case "days":
			rd.Header.Days = int(n)
		case "seed":
			rd.Header.Seed = n
		case "warmup":
			rd.Header.WarmUp = int(n)
		default:
			return nil, rd.errorf("header field %q unknown", f)
		}
	}
	return rd, s.Err()
}

// read is the next line that is not blank or a comment.
func (r *Reader) read() (string, bool) {
	if r.next != "" {
		l := r.next
		r.next = ""
		return l, true
	}
	for r.s.Scan() {
		r.line++
		l := strings.TrimSpace(r.s.Text())
		if l != "" && !strings.HasPrefix(l, "#") {
			return l, true
		}
	}
	return "", false
}

func (r *Reader) errorf(format string, args ...any) error {
	return fmt.Errorf("workload line %d: %s", r.line, fmt.Sprintf(format, args...))
}

// Opens reads the pots to open, which come before the first day.
func (r *Reader) Opens() ([]Request, error) {
	var opens []Request
	for {
		l, ok := r.read()
		if !ok {
			return opens, r.s.Err()
		}
		f := strings.Fields(l)
		if f[0] != string(KindOpen) {
			r.next = l
			return opens, nil
		}
		if len(f) != 3 {
			return nil, r.errorf("%q: want open <member> <profile|->", l)
		}
		profile := f[2]
		if profile == "-" {
			profile = ""
		}
		opens = append(opens, Request{Kind: KindOpen, Member: f[1], Args: []string{profile}})
	}
}

// argsOf is the number of fields after member and key each kind takes.
var argsOf = map[Kind]int{KindContribute: 1, KindWithdraw: 1, KindBuy: 2, KindSell: 3, KindSwitch: 3, KindProfile: 1, KindCancel: 1}

// NextDay reads the next day; io.EOF after the last.
func (r *Reader) NextDay() (Day, error) {
	l, ok := r.read()
	if !ok {
		if err := r.s.Err(); err != nil {
			return Day{}, err
		}
		return Day{}, io.EOF
	}
	f := strings.Fields(l)
	if len(f) != 2 || f[0] != "day" {
		return Day{}, r.errorf("%q: want day <n>", l)
	}
	n, err := strconv.Atoi(f[1])
	if err != nil {
		return Day{}, r.errorf("%q: %v", l, err)
	}
	d := Day{Number: n, Prices: map[string]string{}}
	for {
		l, ok := r.read()
		if !ok {
			return d, r.s.Err()
		}
		f := strings.Fields(l)
		switch Kind(f[0]) {
		case "day":
			r.next = l
			return d, nil
		case "prices":
			for _, p := range f[1:] {
				asset, price, ok := strings.Cut(p, "=")
				if !ok {
					return Day{}, r.errorf("price %q: want <ISIN>=<price>", p)
				}
				d.Prices[asset] = price
			}
		default:
			want, known := argsOf[Kind(f[0])]
			if !known {
				return Day{}, r.errorf("%q: unknown record %q", l, f[0])
			}
			if len(f) != 3+want {
				return Day{}, r.errorf("%q: %s takes member, key and %d more fields", l, f[0], want)
			}
			d.Requests = append(d.Requests, Request{Kind: Kind(f[0]), Member: f[1], Key: f[2], Args: f[3:]})
		}
	}
}
