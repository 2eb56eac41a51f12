package parity

import (
	"bufio"
	"bytes"
	"fmt"
	"strings"
)

// Row is one deliberate difference: which proxies, which facts, which
// side, and why.
type Row struct {
	// ID is stable: tests and reviews cite it.
	ID string
	// Nodes and Path are patterns in which * matches any run of
	// characters (slashes and pipes too), matched against the whole
	// node name and path.
	Nodes string
	Path  string
	// Side is SideIstiod, SideCauseway, SideValue, or "any".
	Side   string
	Reason string
}

// Table is the table of deliberate differences, and the table of known
// gaps: differences Causeway has not closed yet (not deliberate), which a
// test tolerates but reports, and whose rows must each still match
// something (a gap fixed is a row to delete).
type Table struct {
	Rows []Row
	Gaps []Row
}

// gapsHeading starts the heading (any level) under which the table of
// known gaps stands.
const gapsHeading = "known gaps"

// tableHeader is the header row of the table in docs/parity.md.
var tableHeader = []string{"ID", "Nodes", "Path", "Side", "Reason"}

// ParseTable reads the first Markdown table of doc whose header is
// | ID | Nodes | Path | Side | Reason | as the deliberate differences, and
// a later table of the same header under a heading that starts "Known
// gaps" as the known gaps. Cells may quote their text in backticks and
// escape a pipe as \|. IDs must be distinct (across both tables) and
// non-empty; Side must be one of istiod, causeway, value or any.
func ParseTable(doc []byte) (*Table, error) {
	p := &tableParser{t: &Table{}, ids: map[string]int{}}
	sc := bufio.NewScanner(bytes.NewReader(doc))
	sc.Buffer(make([]byte, 0, 64<<10), 1<<20)
	for sc.Scan() {
		p.line++
		if err := p.readLine(strings.TrimSpace(sc.Text())); err != nil {
			return nil, err
		}
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("read the table of deliberate differences: %w", err)
	}
	if !p.seenDeliberate {
		return nil, fmt.Errorf("no table whose header is | %s |", strings.Join(tableHeader, " | "))
	}
	if p.state == wantSeparator {
		return nil, fmt.Errorf("line %d: want the separator row under the header of the table of %ss", p.line, p.what())
	}
	return p.t, nil
}

// The states of a tableParser.
const (
	wantHeader = iota
	wantSeparator
	readingRows
)

// tableParser reads docs/parity.md line by line into t.
type tableParser struct {
	t     *Table
	state int
	line  int
	ids   map[string]int // each ID's line
	// inGaps: under the gaps heading; gaps: the table being read is the
	// gaps'.
	inGaps, gaps   bool
	seenDeliberate bool
}

// what the rows of the table being read are.
func (p *tableParser) what() string {
	if p.gaps {
		return "known gap"
	}
	return "deliberate difference"
}

// readLine reads one line, trimmed: a heading, a table's header or
// separator, or one of its rows.
func (p *tableParser) readLine(text string) error {
	if strings.HasPrefix(text, "#") && p.state != wantSeparator {
		p.inGaps = strings.HasPrefix(strings.ToLower(strings.TrimSpace(strings.TrimLeft(text, "#"))), gapsHeading)
		if p.state == readingRows {
			p.state = wantHeader
		}
		return nil
	}
	switch p.state {
	case wantHeader:
		p.readHeader(text)
	case wantSeparator:
		if !strings.HasPrefix(text, "|") || strings.Trim(text, "|-: ") != "" {
			return fmt.Errorf("line %d: want the separator row under the header of the table of %ss", p.line, p.what())
		}
		p.state = readingRows
	case readingRows:
		return p.readRow(text)
	}
	return nil
}

// readHeader starts the table of deliberate differences at the first
// header, and the known gaps' at the first header under their heading.
func (p *tableParser) readHeader(text string) {
	cells, ok := splitRow(text)
	if !ok || !equalFold(cells, tableHeader) {
		return
	}
	switch {
	case !p.seenDeliberate && !p.inGaps:
		p.seenDeliberate, p.gaps, p.state = true, false, wantSeparator
	case p.inGaps && p.t.Gaps == nil:
		p.gaps, p.state = true, wantSeparator
		p.t.Gaps = []Row{}
	}
}

// readRow adds a row to the table being read; a line that is not a row
// ends the table.
func (p *tableParser) readRow(text string) error {
	cells, ok := splitRow(text)
	if !ok {
		p.state = wantHeader
		return nil
	}
	r, err := parseRow(cells, p.line, p.ids, p.what())
	if err != nil {
		return err
	}
	if p.gaps {
		p.t.Gaps = append(p.t.Gaps, r)
	} else {
		p.t.Rows = append(p.t.Rows, r)
	}
	return nil
}

// parseRow checks the cells of a table row on line and makes its Row: as
// many cells as the header, ID, Nodes and Path set, an ID not used before
// (ids: each ID's line, added to), a known side and a reason (of a what).
func parseRow(cells []string, line int, ids map[string]int, what string) (Row, error) {
	if len(cells) != len(tableHeader) {
		return Row{}, fmt.Errorf("line %d: %d cells, want %d (%s); escape a pipe inside a cell as \\|", line, len(cells), len(tableHeader), strings.Join(tableHeader, ", "))
	}
	r := Row{ID: cells[0], Nodes: cells[1], Path: cells[2], Side: cells[3], Reason: cells[4]}
	if r.ID == "" || r.Path == "" || r.Nodes == "" {
		return Row{}, fmt.Errorf("line %d: ID, Nodes and Path must not be empty", line)
	}
	if prev, dup := ids[r.ID]; dup {
		return Row{}, fmt.Errorf("line %d: ID %s is already used on line %d", line, r.ID, prev)
	}
	ids[r.ID] = line
	switch r.Side {
	case SideIstiod, SideCauseway, SideValue, "any":
	default:
		return Row{}, fmt.Errorf("line %d (%s): side %q, want istiod, causeway, value or any", line, r.ID, r.Side)
	}
	if r.Reason == "" {
		return Row{}, fmt.Errorf("line %d (%s): a %s needs its reason", line, r.ID, what)
	}
	return r, nil
}

// splitRow splits a Markdown table row into its trimmed cells, honoring \|
// and stripping one pair of backticks around a cell.
func splitRow(line string) ([]string, bool) {
	if !strings.HasPrefix(line, "|") || !strings.HasSuffix(line, "|") || len(line) < 2 {
		return nil, false
	}
	line = line[1 : len(line)-1]
	var cells []string
	var cur strings.Builder
	for i := 0; i < len(line); i++ {
		switch {
		case line[i] == '\\' && i+1 < len(line) && line[i+1] == '|':
			cur.WriteByte('|')
			i++
		case line[i] == '|':
			cells = append(cells, cleanCell(cur.String()))
			cur.Reset()
		default:
			cur.WriteByte(line[i])
		}
	}
	cells = append(cells, cleanCell(cur.String()))
	return cells, true
}

func cleanCell(s string) string {
	s = strings.TrimSpace(s)
	if len(s) >= 2 && s[0] == '`' && s[len(s)-1] == '`' {
		s = s[1 : len(s)-1]
	}
	return s
}

func equalFold(a, b []string) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if !strings.EqualFold(a[i], b[i]) {
			return false
		}
	}
	return true
}

// Match returns the first deliberate row that explains d.
func (t *Table) Match(d Difference) (Row, bool) {
	return matchRows(t.Rows, d)
}

// MatchGap returns the first known gap that matches d.
func (t *Table) MatchGap(d Difference) (Row, bool) {
	return matchRows(t.Gaps, d)
}

func matchRows(rows []Row, d Difference) (Row, bool) {
	for _, r := range rows {
		if r.Side != "any" && r.Side != d.Side() {
			continue
		}
		if Glob(r.Nodes, d.Node) && Glob(r.Path, d.Path) {
			return r, true
		}
	}
	return Row{}, false
}

// Explain splits diffs into those a deliberate row explains, those a known
// gap matches (a deliberate row first), both counted per row ID in used,
// and those neither does.
func (t *Table) Explain(diffs []Difference) (unexplained, gaps []Difference, used map[string]int) {
	used = map[string]int{}
	for _, d := range diffs {
		if r, ok := t.Match(d); ok {
			used[r.ID]++
			continue
		}
		if r, ok := t.MatchGap(d); ok {
			used[r.ID]++
			gaps = append(gaps, d)
			continue
		}
		unexplained = append(unexplained, d)
	}
	return unexplained, gaps, used
}

// StaleGaps are the IDs of the known gaps that match none of used: closed
// gaps, whose rows must go.
func (t *Table) StaleGaps(used map[string]int) []string {
	var out []string
	for _, r := range t.Gaps {
		if used[r.ID] == 0 {
			out = append(out, r.ID)
		}
	}
	return out
}

// Glob reports whether s matches pattern, in which * matches any run of
// characters (none included) and every other character itself.
func Glob(pattern, s string) bool {
	// Iterative wildcard matching with backtracking to the last star.
	p, i := 0, 0
	star, mark := -1, 0
	for i < len(s) {
		switch {
		case p < len(pattern) && pattern[p] == '*':
			star, mark = p, i
			p++
		case p < len(pattern) && pattern[p] == s[i]:
			p++
			i++
		case star >= 0:
			p = star + 1
			mark++
			i = mark
		default:
			return false
		}
	}
	for p < len(pattern) && pattern[p] == '*' {
		p++
	}
	return p == len(pattern)
}
