package client

import (
	"bytes"
	"encoding/json"
	"fmt"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"
)

var clickFields = []string{"user", "email", "country", "amount", "page", "ts"}

// jsonKeys returns the top-level keys of the JSON object b in the order they appear.
func jsonKeys(t *testing.T, b []byte) []string {
	t.Helper()
	d := json.NewDecoder(bytes.NewReader(b))
	if tok, err := d.Token(); err != nil || tok != json.Delim('{') {
		t.Fatalf("%s: not a JSON object: %v %v", b, tok, err)
	}
	var keys []string
	for d.More() {
		tok, err := d.Token()
		if err != nil {
			t.Fatalf("%s: %v", b, err)
		}
		keys = append(keys, tok.(string))
		var v json.RawMessage
		if err := d.Decode(&v); err != nil {
			t.Fatalf("%s: %v", b, err)
		}
	}
	return keys
}

func TestSamplesNames(t *testing.T) {
	if got := Samples(); !slices.Equal(got, []string{"clicks"}) {
		t.Fatalf("Samples() = %v", got)
	}
	_, err := SampleGenerator("nope", 1)
	if err == nil || !strings.Contains(err.Error(), `unknown sample "nope"`) || !strings.Contains(err.Error(), "clicks") {
		t.Fatalf("unknown generator: %v", err)
	}
}

func TestClicksSample(t *testing.T) {
	const n = 10000
	gen, err := SampleGenerator("clicks", 1)
	if err != nil {
		t.Fatal(err)
	}
	userRE := regexp.MustCompile(`^u0[0-4]\d\d$`)
	emailRE := regexp.MustCompile(`^[a-z][a-z._]*[a-z]\d*@[a-z]+\.(com|org|net|example)$`)
	countries := map[string]int{}
	users := map[string]bool{}
	emailOf := map[string]string{}
	pages := map[string]bool{}
	minAmount, maxAmount := 2001, 0
	amountSum := 0
	before := time.Now().UnixMilli()
	var records [][2][]byte
	for i := range n {
		key, value := gen(i)
		records = append(records, [2][]byte{key, value})
		if got := jsonKeys(t, value); !slices.Equal(got, clickFields) {
			t.Fatalf("record %d: keys %v, want %v: %s", i, got, clickFields, value)
		}
		if bytes.ContainsRune(value, '\n') {
			t.Fatalf("record %d: value is not one line: %q", i, value)
		}
		var c click
		if err := json.Unmarshal(value, &c); err != nil {
			t.Fatalf("record %d: %v: %s", i, err, value)
		}
		if string(key) != c.User || !userRE.MatchString(c.User) {
			t.Fatalf("record %d: key %q, user %q", i, key, c.User)
		}
		if !emailRE.MatchString(c.Email) {
			t.Fatalf("record %d: email %q", i, c.Email)
		}
		if e, ok := emailOf[c.User]; ok && e != c.Email {
			t.Fatalf("record %d: user %s has emails %q and %q", i, c.User, e, c.Email)
		}
		emailOf[c.User] = c.Email
		switch c.Country {
		case "NZ", "AU", "US", "DE", "GB", "JP":
		default:
			t.Fatalf("record %d: country %q", i, c.Country)
		}
		if c.Amount < 1 || c.Amount > 2000 {
			t.Fatalf("record %d: amount %d", i, c.Amount)
		}
		if !strings.HasPrefix(c.Page, "/") {
			t.Fatalf("record %d: page %q", i, c.Page)
		}
		if c.TS < before || c.TS > time.Now().UnixMilli() {
			t.Fatalf("record %d: ts %d is not the time of generation", i, c.TS)
		}
		countries[c.Country]++
		users[c.User] = true
		pages[c.Page] = true
		minAmount, maxAmount = min(minAmount, c.Amount), max(maxAmount, c.Amount)
		amountSum += c.Amount
	}
	t.Logf("record 0: %s %s; countries %v", records[0][0], records[0][1], countries)
	if share := float64(countries["NZ"]+countries["AU"]) / n; share < 0.30 || share > 0.50 {
		t.Errorf("NZ+AU share %.3f, want 0.30..0.50 (%v)", share, countries)
	}
	if len(countries) != 6 {
		t.Errorf("countries %v, want all six", countries)
	}
	if len(users) < 490 { // 10000 draws from 500 users miss one with probability ~500*e^-20
		t.Errorf("%d distinct users, want about 500", len(users))
	}
	if len(pages) < 3 {
		t.Errorf("pages %v, want a few", pages)
	}
	if minAmount > 10 || maxAmount < 1990 {
		t.Errorf("amounts %d..%d, want about 1..2000", minAmount, maxAmount)
	}
	if mean := float64(amountSum) / n; mean < 950 || mean > 1050 {
		t.Errorf("mean amount %.1f, want about 1000", mean)
	}

	// Determinism: the same seed gives the same records (all but ts), also out of order and from a new
	// generator; another seed gives others.
	stripTS := func(v []byte) string {
		s := string(v)
		return s[:strings.LastIndex(s, `,"ts":`)]
	}
	again, _ := SampleGenerator("clicks", 1)
	other, _ := SampleGenerator("clicks", 2)
	differ := 0
	for _, i := range []int{9999, 0, 5000, 1, 42, 1234} {
		k, v := again(i)
		if string(k) != string(records[i][0]) || stripTS(v) != stripTS(records[i][1]) {
			t.Errorf("seed 1 record %d: %s %s, then %s %s", i, records[i][0], records[i][1], k, v)
		}
		if _, v2 := other(i); stripTS(v2) != stripTS(v) {
			differ++
		}
	}
	if differ < 5 {
		t.Errorf("seed 2 gives the records of seed 1: %d of 6 differ", differ)
	}
}

func TestProduceSample(t *testing.T) {
	o := startBroker(t)
	ctx := testCtx(t)
	mustCreate(t, ctx, o, "clicks", 3)
	po := ProduceOptions{Topic: "clicks", Partition: -1}

	if _, err := ProduceSample(ctx, o, po, SampleOptions{Name: "views", Count: 1}); err == nil || !strings.Contains(err.Error(), `unknown sample "views"`) {
		t.Fatalf("unknown sample: %v", err)
	}
	if _, err := ProduceSample(ctx, o, po, SampleOptions{Name: "clicks", Count: 0}); err == nil {
		t.Fatal("count 0: no error")
	}

	// 300 records at 250/s take about 1.2s and print a progress line.
	var progress bytes.Buffer
	start := time.Now()
	n, err := ProduceSample(ctx, o, po, SampleOptions{Name: "clicks", Seed: 7, Count: 300, Rate: 250, Progress: &progress})
	took := time.Since(start)
	if err != nil || n != 300 {
		t.Fatalf("produce sample: %d, %v", n, err)
	}
	if took < time.Second {
		t.Errorf("300 records at 250/s took %v", took)
	}
	if !regexp.MustCompile(`(?m)^produced \d+/300 records to clicks \(\d+ records/s\)$`).MatchString(progress.String()) {
		t.Errorf("progress: %q", progress.String())
	}

	gen, _ := SampleGenerator("clicks", 7)
	var want []string
	for i := range 300 {
		k, _ := gen(i)
		want = append(want, string(k))
	}
	got := lines(consumeString(t, ctx, o, ConsumeOptions{Topic: "clicks", Partition: -1}, `%k\n`))
	slices.Sort(want)
	slices.Sort(got)
	if !slices.Equal(got, want) {
		t.Fatalf("consumed keys differ from generated ones:\n%s", fmt.Sprint(got[:min(10, len(got))]))
	}
}
