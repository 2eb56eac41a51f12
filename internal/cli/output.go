package cli

import (
	"encoding/json"
	"fmt"
	"io"

	"github.com/spf13/pflag"
	"sigs.k8s.io/yaml"
)

// The output formats of the commands people read (networks, view, status,
// check, proxy-config, certs inspect), as kubectl has them: a table for
// people by default, -o json or -o yaml for machines. YAML carries the same
// fields as JSON, converted from it.
const (
	outputTable = "table"
	outputJSON  = "json"
	outputYAML  = "yaml"
)

// outputFlag registers -o/--output with the table default on fs.
func outputFlag(fs *pflag.FlagSet, p *string) {
	fs.StringVarP(p, "output", "o", outputTable, "output format: table (for people), json or yaml (for machines; the same fields in both)")
}

// checkOutput refuses an output format other than table, json or yaml.
func checkOutput(o string) error {
	switch o {
	case outputTable, outputJSON, outputYAML:
		return nil
	}
	return fmt.Errorf("-o %q: want table, json or yaml", o)
}

// writeStructured writes v as JSON or YAML (format is json or yaml).
func writeStructured(w io.Writer, format string, v any) error {
	if format == outputJSON {
		return writeJSON(w, v)
	}
	js, err := json.Marshal(v)
	if err != nil {
		return fmt.Errorf("encoding the output: %w", err)
	}
	y, err := yaml.JSONToYAML(js)
	if err != nil {
		return fmt.Errorf("encoding the output as YAML: %w", err)
	}
	_, err = w.Write(y)
	return err
}
