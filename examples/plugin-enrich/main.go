// Command plugin-enrich is a weir plugin (a processor run as a process of
// its own, see plugins/plugin) that joins records with a lookup table: it
// loads a CSV file when it starts, looks up each record's key, read from a
// field of the record's JSON value, and adds the matching row's other
// columns to the value. With the table countries.csv
//
//	country,region,currency
//	NZ,APAC,NZD
//
// and the config {table: countries.csv, key_field: country}, the value
// {"id": 7, "country": "NZ"} becomes
// {"id": 7, "country": "NZ", "region": "APAC", "currency": "NZD"}.
//
// Config (the stage's config: plugin: {path: enrich, config: {...}}):
//
//	table       the CSV file (required): a header row naming the columns,
//	            then one row per key; lines starting with # are comments.
//	            A relative path is relative to the directory of the plugin
//	            binary, which is built next to its pipeline file.
//	key_field   the top-level field of the value that holds the key
//	            (required): a string, or a number (looked up as written)
//	key_column  the table's column of keys (default: key_field)
//	into        a field to put the row's columns in, as an object; default
//	            none: they are added to the value itself, replacing fields
//	            of the same names
//	unknown     a record whose key is not in the table, or that has no key
//	            field: "pass" it on unchanged (default), "drop" it, or
//	            "fail" it (to the pipeline's error policy)
//
// A value that is not a JSON object fails. The value's own fields are
// copied as they are written, in their order; the row's columns come
// after them, as JSON strings. A table that cannot be read (a missing
// file, a row with the wrong number of fields, a key twice) refuses the
// config with the file and line, so the pipeline is not loaded.
//
//	weir plugin build examples/plugin-enrich -o examples/plugin-enrich/enrich
//	weir pipeline test examples/plugin-enrich/pipeline.yaml
package main

import (
	"bytes"
	"encoding/csv"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	"github.com/weirstream/weir/plugins/plugin"
	"github.com/weirstream/weir/sdk"
)

// config is the stage's config.
type config struct {
	Table     string `json:"table"`
	KeyField  string `json:"key_field"`
	KeyColumn string `json:"key_column"`
	Into      string `json:"into"`
	Unknown   string `json:"unknown"`
}

// enricher is the processor; configure sets all but base.
type enricher struct {
	base     string // the directory a relative table path is in
	table    string // the table's path, for messages
	keyField string
	into     string
	unknown  string
	// rows maps a key to the JSON its row adds to a value: `,"c1":"v1",...`
	// for a merge, `,"into":{"c1":"v1",...}` with into.
	rows map[string][]byte
	// replaced are the value's fields the row's replace (the columns, or
	// into), not copied from the value.
	replaced map[string]bool
}

func main() {
	e := &enricher{}
	if exe, err := os.Executable(); err == nil {
		e.base = filepath.Dir(exe)
	}
	plugin.Serve(&plugin.Func{Each: e.enrich, Config: e.configure})
}

// configure parses the config and loads the table.
func (e *enricher) configure(raw []byte) error {
	var c config
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&c); err != nil {
		return fmt.Errorf("config: %w", err)
	}
	switch {
	case c.Table == "":
		return errors.New(`config: "table" (a CSV file) is required`)
	case c.KeyField == "":
		return errors.New(`config: "key_field" (the value's field that holds the key) is required`)
	}
	switch c.Unknown {
	case "":
		c.Unknown = "pass"
	case "pass", "drop", "fail":
	default:
		return fmt.Errorf(`config: unknown: %q: want "pass", "drop" or "fail"`, c.Unknown)
	}
	if c.KeyColumn == "" {
		c.KeyColumn = c.KeyField
	}
	path := c.Table
	if !filepath.IsAbs(path) {
		path = filepath.Join(e.base, path)
	}
	f, err := os.Open(path)
	if err != nil {
		return fmt.Errorf("table: %w", err)
	}
	defer f.Close()
	rows, columns, err := loadTable(f, path, c.KeyColumn, c.Into)
	if err != nil {
		return err
	}
	e.table, e.keyField, e.into, e.unknown, e.rows = path, c.KeyField, c.Into, c.Unknown, rows
	e.replaced = map[string]bool{}
	if c.Into != "" {
		e.replaced[c.Into] = true
	} else {
		for _, col := range columns {
			e.replaced[col] = true
		}
	}
	if e.replaced[c.KeyField] {
		return fmt.Errorf("config: the table's column %q would replace the key field", c.KeyField)
	}
	return nil
}

// loadTable reads a CSV table whose header names keyColumn; it returns,
// per key, the JSON its row adds to a value, and the other columns' names.
// Errors name the file and line.
func loadTable(r io.Reader, name, keyColumn, into string) (map[string][]byte, []string, error) {
	cr := csv.NewReader(r)
	cr.Comment = '#'
	cr.TrimLeadingSpace = true
	fail := func(line int, format string, args ...any) error {
		return fmt.Errorf("table %s line %d: %s", name, line, fmt.Sprintf(format, args...))
	}
	readErr := func(err error) error {
		var pe *csv.ParseError
		if errors.As(err, &pe) {
			return fail(pe.Line, "%v", pe.Err)
		}
		return fmt.Errorf("table %s: %w", name, err)
	}
	header, err := cr.Read()
	if err == io.EOF {
		return nil, nil, fmt.Errorf("table %s: empty, want a header row (e.g. %s,region,currency)", name, keyColumn)
	}
	if err != nil {
		return nil, nil, readErr(err)
	}
	headerLine, _ := cr.FieldPos(0)
	header[0] = strings.TrimPrefix(header[0], "\uFEFF") // a byte-order mark
	keyCol := -1
	seen := map[string]bool{}
	var columns []string
	for i, h := range header {
		switch {
		case h == "":
			return nil, nil, fail(headerLine, "column %d has no name", i+1)
		case seen[h]:
			return nil, nil, fail(headerLine, "column %q twice", h)
		case h == keyColumn:
			keyCol = i
		default:
			columns = append(columns, h)
		}
		seen[h] = true
	}
	if keyCol < 0 {
		return nil, nil, fail(headerLine, "no column %q for the keys (the columns are %s)", keyColumn, strings.Join(header, ", "))
	}
	if len(columns) == 0 {
		return nil, nil, fail(headerLine, "no column besides %q: nothing to add", keyColumn)
	}
	rows := map[string][]byte{}
	firstLine := map[string]int{}
	for {
		rec, err := cr.Read()
		if err == io.EOF {
			break
		}
		if err != nil {
			return nil, nil, readErr(err)
		}
		line, _ := cr.FieldPos(0)
		key := rec[keyCol]
		if key == "" {
			return nil, nil, fail(line, "empty key")
		}
		if first, dup := firstLine[key]; dup {
			return nil, nil, fail(line, "key %q again (first on line %d)", key, first)
		}
		firstLine[key] = line
		var b []byte
		if into != "" {
			b = append(b, ',')
			b = appendString(b, into)
			b = append(b, ":{"...)
		}
		n := 0
		for i, v := range rec {
			if i == keyCol {
				continue
			}
			if n > 0 || into == "" {
				b = append(b, ',')
			}
			n++
			b = appendString(b, header[i])
			b = append(b, ':')
			b = appendString(b, v)
		}
		if into != "" {
			b = append(b, '}')
		}
		rows[key] = b
	}
	return rows, columns, nil
}

func appendString(b []byte, s string) []byte {
	q, _ := json.Marshal(s) // a string always encodes
	return append(b, q...)
}

// member is one field of a JSON object, its value as written.
type member struct {
	name string
	raw  json.RawMessage
}

// members splits a JSON object into its fields, in order.
func members(v []byte) ([]member, error) {
	dec := json.NewDecoder(bytes.NewReader(v))
	if t, err := dec.Token(); err != nil || t != json.Delim('{') {
		return nil, errors.New("not a JSON object")
	}
	var ms []member
	for dec.More() {
		t, err := dec.Token()
		if err != nil {
			return nil, err
		}
		var m member
		m.name = t.(string) // a key of an object is a string
		if err := dec.Decode(&m.raw); err != nil {
			return nil, err
		}
		ms = append(ms, m)
	}
	if _, err := dec.Token(); err != nil { // the closing brace
		return nil, err
	}
	if _, err := dec.Token(); err != io.EOF {
		return nil, errors.New("data after the object")
	}
	return ms, nil
}

// enrich processes one record.
func (e *enricher) enrich(r sdk.Record) ([]sdk.Record, error) {
	ms, err := members(r.Value)
	if err != nil {
		return nil, fmt.Errorf("enrich: the value is not a JSON object: %v", err)
	}
	key, found := "", false
	for _, m := range ms { // the last one counts, as for a JSON decoder
		if m.name == e.keyField {
			key, found = keyOf(m.raw)
		}
	}
	add, known := e.rows[key]
	if !found || !known {
		switch e.unknown {
		case "drop":
			return nil, nil
		case "fail":
			if !found {
				return nil, fmt.Errorf("enrich: the value has no field %q with a string or number", e.keyField)
			}
			return nil, fmt.Errorf("enrich: %s %q is not in the table %s", e.keyField, key, filepath.Base(e.table))
		}
		return []sdk.Record{r}, nil
	}
	out := make([]byte, 0, len(r.Value)+len(add)+1)
	out = append(out, '{')
	first := true
	for _, m := range ms {
		if e.replaced[m.name] {
			continue
		}
		if !first {
			out = append(out, ',')
		}
		first = false
		out = appendString(out, m.name)
		out = append(out, ':')
		out = append(out, m.raw...)
	}
	if first {
		add = add[1:] // no field before: no comma
	}
	out = append(out, add...)
	r.Value = append(out, '}')
	return []sdk.Record{r}, nil
}

// keyOf returns the key a field's value holds: a string's text, or a
// number as written.
func keyOf(raw json.RawMessage) (string, bool) {
	switch {
	case len(raw) > 0 && raw[0] == '"':
		var s string
		if json.Unmarshal(raw, &s) != nil {
			return "", false
		}
		return s, true
	case len(raw) > 0 && (raw[0] == '-' || raw[0] >= '0' && raw[0] <= '9'):
		return string(raw), true
	}
	return "", false
}
