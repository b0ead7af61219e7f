package client

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"slices"
	"strings"
	"time"
)

// SampleFunc returns the key and value of generated record i (i >= 0).
type SampleFunc func(i int) (key, value []byte)

// samples are the built-in sample-data generators by name. To add one, add an entry: a function that builds
// the generator for a seed.
var samples = map[string]func(seed uint64) SampleFunc{
	"clicks": clicksSample,
}

// Samples returns the names of the built-in sample-data generators, sorted.
func Samples() []string {
	names := make([]string, 0, len(samples))
	for name := range samples {
		names = append(names, name)
	}
	slices.Sort(names)
	return names
}

// SampleGenerator returns the built-in generator name seeded with seed. The generated records are a function
// of (seed, i) alone — the same seed gives the same records in any order of calls — except for fields that say
// otherwise (clicks' "ts" is the wall clock). The returned function may be called from one goroutine at a time.
//
// "clicks" generates web-shop click events: the key is the user id and the value one line of JSON with the
// fields, in this order,
//
//	{"user":"u0042","email":"alice.smith@example.com","country":"NZ","amount":512,"page":"/products/widgets","ts":1764300000123}
//
// user is one of 500 ids u0000..u0499 (uniform); email and country belong to the user (every user has a
// plausible address at a reserved example domain, and one country of NZ, AU, US, DE, GB, JP, with NZ and AU
// about 40% of users and so of records); amount is an integer 1..2000 (uniform); page one of a few paths; ts
// the wall-clock time in milliseconds since the epoch when the record was generated (not derived from the seed).
func SampleGenerator(name string, seed uint64) (SampleFunc, error) {
	mk, ok := samples[name]
	if !ok {
		return nil, fmt.Errorf("unknown sample %q: want one of %s", name, strings.Join(Samples(), ", "))
	}
	return mk(seed), nil
}

// sampleRand returns the random source for record i of a generator seeded with seed: PCG seeded with seed and
// a mix of i, so that record i does not depend on the records generated before it.
func sampleRand(seed uint64, i uint64) *rand.Rand {
	return rand.New(rand.NewPCG(seed, splitmix64(i)))
}

// splitmix64 is SplitMix64's output function: a bijection that spreads consecutive inputs over all bits.
func splitmix64(x uint64) uint64 {
	x += 0x9e3779b97f4a7c15
	x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9
	x = (x ^ (x >> 27)) * 0x94d049bb133111eb
	return x ^ (x >> 31)
}

const clicksUsers = 500

var (
	clickFirstNames = []string{"alice", "bob", "carol", "dave", "erin", "frank", "grace", "heidi", "ivan", "judy",
		"mallory", "niaj", "olivia", "peggy", "rupert", "sybil", "trent", "victor", "walter", "yuki"}
	clickLastNames = []string{"smith", "jones", "brown", "taylor", "wilson", "nguyen", "muller", "schmidt",
		"tanaka", "sato", "walker", "clark", "ngata", "parata", "kelly", "murphy"}
	clickDomains = []string{"example.com", "example.org", "example.net", "mail.example", "inbox.example"}
	// clickCountries with weights in percent: NZ and AU together 40.
	clickCountries = []struct {
		code   string
		weight int
	}{{"NZ", 20}, {"AU", 20}, {"US", 25}, {"DE", 12}, {"GB", 13}, {"JP", 10}}
	clickPages = []string{"/", "/search", "/products/widgets", "/products/gadgets", "/products/gizmos", "/cart", "/checkout"}
)

// click is one clicks record; the field order is the JSON order.
type click struct {
	User    string `json:"user"`
	Email   string `json:"email"`
	Country string `json:"country"`
	Amount  int    `json:"amount"`
	Page    string `json:"page"`
	TS      int64  `json:"ts"`
}

type clickUser struct{ id, email, country string }

func clicksSample(seed uint64) SampleFunc {
	// The users are fixed for the seed: record i only picks one. Their sources use stream numbers above any
	// record index a run could reach.
	users := make([]clickUser, clicksUsers)
	for u := range users {
		r := sampleRand(seed, 1<<63|uint64(u))
		first := clickFirstNames[r.IntN(len(clickFirstNames))]
		last := clickLastNames[r.IntN(len(clickLastNames))]
		domain := clickDomains[r.IntN(len(clickDomains))]
		var local string
		switch r.IntN(4) {
		case 0:
			local = first + "." + last
		case 1:
			local = first[:1] + last
		case 2:
			local = first + "_" + last
		default:
			local = fmt.Sprintf("%s.%s%d", first, last, r.IntN(100))
		}
		w, country := r.IntN(100), ""
		for _, c := range clickCountries {
			if w < c.weight {
				country = c.code
				break
			}
			w -= c.weight
		}
		users[u] = clickUser{id: fmt.Sprintf("u%04d", u), email: local + "@" + domain, country: country}
	}
	return func(i int) (key, value []byte) {
		r := sampleRand(seed, uint64(i))
		u := users[r.IntN(len(users))]
		c := click{
			User:    u.id,
			Email:   u.email,
			Country: u.country,
			Amount:  1 + r.IntN(2000),
			Page:    clickPages[r.IntN(len(clickPages))],
			TS:      time.Now().UnixMilli(),
		}
		value, err := json.Marshal(c)
		if err != nil {
			panic(err) // cannot happen: strings and integers only
		}
		return []byte(u.id), value
	}
}

// SampleOptions say what ProduceSample generates.
type SampleOptions struct {
	// Name is the generator (see Samples) and Seed its seed.
	Name string
	Seed uint64
	// Count is how many records to produce (>= 1).
	Count int64
	// Rate paces the records at this many per second; 0 produces them as fast as the broker takes them.
	Rate float64
	// Progress, when not nil, receives a line every second: "produced N/COUNT records to TOPIC (R records/s)",
	// N being the records acknowledged so far.
	Progress io.Writer
}

// ProduceSample produces so.Count records from the sample generator so.Name to po.Topic (po.KeySeparator must be
// empty: the generator makes the keys). Like Produce it returns how many records the broker acknowledged, and
// if any record fails it stops generating, flushes the records already handed to the client, and says how many
// failed and why the first one (numbered from 0, as the generator's i) did.
func ProduceSample(ctx context.Context, o Options, po ProduceOptions, so SampleOptions) (int64, error) {
	gen, err := SampleGenerator(so.Name, so.Seed)
	if err != nil {
		return 0, err
	}
	if so.Count < 1 {
		return 0, fmt.Errorf("sample count must be >= 1, got %d", so.Count)
	}
	if so.Rate < 0 {
		return 0, fmt.Errorf("sample rate must be >= 0, got %g", so.Rate)
	}
	if po.KeySeparator != "" {
		return 0, errors.New("a key separator does not apply to sample records")
	}
	p, err := newProducer(ctx, o, po)
	if err != nil {
		return 0, err
	}
	defer p.cl.Close()

	start := time.Now()
	if so.Progress != nil {
		done := make(chan struct{})
		stopped := make(chan struct{})
		defer func() { close(done); <-stopped }()
		go func() {
			defer close(stopped)
			tick := time.NewTicker(time.Second)
			defer tick.Stop()
			for {
				select {
				case <-done:
					return
				case now := <-tick.C:
					n := p.ackedCount()
					fmt.Fprintf(so.Progress, "produced %d/%d records to %s (%.0f records/s)\n",
						n, so.Count, po.Topic, float64(n)/now.Sub(start).Seconds())
				}
			}
		}()
	}

	var pace *time.Timer
	for i := int64(0); i < so.Count && !p.failing() && ctx.Err() == nil; i++ {
		if so.Rate > 0 {
			if d := time.Until(start.Add(time.Duration(float64(i) / so.Rate * float64(time.Second)))); d > 0 {
				if pace == nil {
					pace = time.NewTimer(d)
				} else {
					pace.Reset(d)
				}
				select {
				case <-pace.C:
				case <-ctx.Done():
				}
				if ctx.Err() != nil {
					break
				}
			}
		}
		key, value := gen(int(i))
		p.send(ctx, i, key, value)
	}
	if pace != nil {
		pace.Stop()
	}
	return p.finish(ctx, "sample record")
}
