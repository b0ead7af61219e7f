package main

import (
	"bytes"
	"encoding/json"
	"regexp"
	"slices"
	"strings"
	"testing"
)

func TestCLIProduceSample(t *testing.T) {
	bin := buildWeir(t)
	srv := startServe(t, bin, t.TempDir())
	addr := srv.kafka
	weir := func(args ...string) cliResult {
		t.Helper()
		r := runWeir(t, bin, nil, "", append(args, "-b", addr)...)
		if r.code != 0 {
			t.Fatalf("weir %s: exit %d\nstderr: %s", strings.Join(args, " "), r.code, r.stderr)
		}
		return r
	}

	weir("topic", "create", "clicks", "-p", "3")
	// stdin is not read with --sample: its lines must not become records.
	r := runWeir(t, bin, nil, "not a click\n", "produce", "clicks", "--sample", "clicks", "-n", "2000", "-z", "zstd", "-v", "-b", addr)
	if r.code != 0 || r.stdout != "" || r.stderr != "produced 2000 records to clicks\n" {
		t.Fatalf("produce --sample: exit %d, stdout %q, stderr %q", r.code, r.stdout, r.stderr)
	}

	r = weir("consume", "clicks", "-o", "beginning", "-f", `%k %v\n`)
	lines := strings.Split(strings.TrimSuffix(r.stdout, "\n"), "\n")
	if len(lines) != 2000 {
		t.Fatalf("consumed %d records, want 2000", len(lines))
	}
	fields := []string{"user", "email", "country", "amount", "page", "ts"}
	userRE := regexp.MustCompile(`^u0[0-4]\d\d$`)
	users := map[string]bool{}
	for _, line := range lines {
		key, value, ok := strings.Cut(line, " ")
		if !ok {
			t.Fatalf("line %q: no key", line)
		}
		if got := jsonObjectKeys(t, value); !slices.Equal(got, fields) {
			t.Fatalf("value %s: fields %v, want %v", value, got, fields)
		}
		var c struct {
			User, Email, Country, Page string
			Amount                     int
			TS                         int64
		}
		if err := json.Unmarshal([]byte(value), &c); err != nil {
			t.Fatalf("value %s: %v", value, err)
		}
		if c.User != key || !userRE.MatchString(key) {
			t.Fatalf("key %q, user %q", key, c.User)
		}
		if !strings.Contains(c.Email, "@") || c.Country == "" || c.Page == "" || c.Amount < 1 || c.Amount > 2000 || c.TS <= 0 {
			t.Fatalf("implausible record %s", value)
		}
		users[key] = true
	}
	if len(users) < 400 {
		t.Errorf("%d distinct users in 2000 records, want most of 500", len(users))
	}

	// The same seed gives the same records, apart from ts.
	weir("topic", "create", "again", "-p", "1")
	weir("produce", "again", "--sample", "clicks", "-n", "5")
	weir("produce", "again", "--sample", "clicks", "-n", "5", "--seed", "1")
	r = weir("consume", "again", "-f", `%v\n`)
	noTS := regexp.MustCompile(`,"ts":\d+}`)
	got := strings.Split(noTS.ReplaceAllString(strings.TrimSuffix(r.stdout, "\n"), "}"), "\n")
	if len(got) != 10 || !slices.Equal(got[:5], got[5:]) {
		t.Fatalf("two runs with seed 1 differ:\n%s", r.stdout)
	}

	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"--sample", "views"}, `--sample: unknown sample "views": want one of clicks`},
		{[]string{"--sample", "clicks", "-n", "0"}, "-n: want a count >= 1, got 0"},
		{[]string{"--sample", "clicks", "--rate", "-1"}, "--rate: want records per second >= 0"},
		{[]string{"--sample", "clicks", "-k", ":"}, "-k: not with --sample"},
		{[]string{"-n", "5"}, "-n: only with --sample"},
	} {
		args := append([]string{"produce", "clicks"}, c.args...)
		r := runWeir(t, bin, nil, "", append(args, "-b", addr)...)
		if r.code == 0 || !strings.Contains(r.stderr, c.want) {
			t.Errorf("weir %s: exit %d, stderr %q, want %q", strings.Join(args, " "), r.code, r.stderr, c.want)
		}
	}
	// None of them produced anything.
	if r := weir("consume", "clicks", "-f", `%o\n`); strings.Count(r.stdout, "\n") != 2000 {
		t.Errorf("clicks has %d records after the failed runs, want 2000", strings.Count(r.stdout, "\n"))
	}
}

// jsonObjectKeys returns the top-level keys of the JSON object s in their order.
func jsonObjectKeys(t *testing.T, s string) []string {
	t.Helper()
	d := json.NewDecoder(bytes.NewReader([]byte(s)))
	if tok, err := d.Token(); err != nil || tok != json.Delim('{') {
		t.Fatalf("%s: not a JSON object", s)
	}
	var keys []string
	for d.More() {
		tok, err := d.Token()
		if err != nil {
			t.Fatalf("%s: %v", s, err)
		}
		keys = append(keys, tok.(string))
		var v json.RawMessage
		if err := d.Decode(&v); err != nil {
			t.Fatalf("%s: %v", s, err)
		}
	}
	return keys
}
