package cli

import (
	"bufio"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
)

// docCommand is one `causeway ...` command line found in a fenced block of
// the README or docs/.
type docCommand struct {
	file string
	line int
	args []string
}

// TestDocsCommandsMatchTheCommandTree keeps the documentation honest: every
// causeway command line shown in a fenced block of README.md or docs/*.md
// must name a real subcommand, and every flag it gives must exist on that
// subcommand (its own flags or inherited ones), with a value where the flag
// takes one. A renamed or removed flag fails here, naming the file and line.
func TestDocsCommandsMatchTheCommandTree(t *testing.T) {
	files, err := filepath.Glob("../../docs/*.md")
	if err != nil {
		t.Fatal(err)
	}
	files = append(files, "../../README.md")
	var cmds []docCommand
	for _, f := range files {
		cmds = append(cmds, docCommands(t, f)...)
	}
	t.Logf("%d causeway command lines in the docs", len(cmds))
	if len(cmds) < 30 {
		t.Fatalf("found only %d causeway command lines in the docs: the scanner is broken", len(cmds))
	}
	for _, c := range cmds {
		if err := checkDocCommand(NewRootCommand(), c.args); err != "" {
			t.Errorf("%s:%d: causeway %s: %s", c.file, c.line, strings.Join(c.args, " "), err)
		}
	}
}

// TestCheckDocCommandCatchesDrift proves the checker can fail: the kinds of
// drift it exists for are each reported.
func TestCheckDocCommandCatchesDrift(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"serve", "--no-such-flag"}, "unknown flag --no-such-flag"},
		{[]string{"serve", "-Z"}, "unknown flag -Z"},
		{[]string{"no-such-command", "--x"}, "unknown command"},
		{[]string{"certs", "root", "--out"}, "needs a value"},
		{[]string{"certs", "root", "--out", "certs"}, ""},
		{[]string{"serve", "--cluster-id=c1", "--log-level", "debug"}, ""},
	} {
		if got := checkDocCommand(NewRootCommand(), tc.args); !strings.Contains(got, tc.want) || (tc.want == "" && got != "") {
			t.Errorf("checkDocCommand(%q) = %q, want %q", tc.args, got, tc.want)
		}
	}
}

// docCommands scans one Markdown file's fenced blocks for command lines that
// start with causeway, bin/causeway or $ causeway.
func docCommands(t *testing.T, path string) []docCommand {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var out []docCommand
	fenced := false
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 0, 64*1024), 1024*1024)
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		if strings.HasPrefix(line, "```") {
			fenced = !fenced
			continue
		}
		if !fenced {
			continue
		}
		line = strings.TrimPrefix(line, "$ ")
		for _, p := range []string{"bin/causeway ", "./causeway ", "causeway "} {
			if rest, ok := strings.CutPrefix(line, p); ok {
				out = append(out, docCommand{file: path, line: n, args: shellWords(rest)})
				break
			}
		}
	}
	if err := sc.Err(); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	return out
}

// shellWords splits a documented command line into words, honoring quotes,
// and stops at what ends the causeway command: a pipe, a redirection, a
// comment, a command separator or a line continuation.
func shellWords(s string) []string {
	var words []string
	var cur strings.Builder
	in := false
	var quote rune
	flush := func() {
		if in {
			words = append(words, cur.String())
			cur.Reset()
			in = false
		}
	}
	for _, r := range s {
		switch {
		case quote != 0:
			if r == quote {
				quote = 0
			} else {
				cur.WriteRune(r)
			}
		case r == '\'' || r == '"':
			quote, in = r, true
		case r == ' ' || r == '\t':
			flush()
		case !in && strings.ContainsRune("|>#;&\\", r):
			flush()
			return words
		default:
			cur.WriteRune(r)
			in = true
		}
	}
	flush()
	return words
}

// checkDocCommand returns what is wrong with one documented command line, or
// "" when it matches the command tree.
func checkDocCommand(root *cobra.Command, args []string) string {
	cmd, rest, err := root.Find(args)
	if err != nil {
		return err.Error()
	}
	if cmd == root && len(args) > 0 && !strings.HasPrefix(args[0], "-") {
		return "unknown command " + args[0]
	}
	flags := cmd.Flags()
	flags.AddFlagSet(cmd.InheritedFlags())
	for i := 0; i < len(rest); i++ {
		a := rest[i]
		if a == "--" {
			break
		}
		if !strings.HasPrefix(a, "-") || a == "-" {
			continue
		}
		var fl *pflag.Flag
		name, _, hasValue := strings.Cut(strings.TrimLeft(a, "-"), "=")
		if strings.HasPrefix(a, "--") {
			fl = flags.Lookup(name)
		} else {
			fl = flags.ShorthandLookup(name[:1])
			hasValue = hasValue || len(name) > 1
		}
		if fl == nil {
			return "unknown flag " + strings.SplitN(a, "=", 2)[0] + " for causeway " + cmd.CommandPath()[len(root.Name())+1:]
		}
		if fl.NoOptDefVal == "" && !hasValue {
			if i+1 >= len(rest) {
				return "flag " + a + " needs a value"
			}
			i++
		}
	}
	return ""
}
