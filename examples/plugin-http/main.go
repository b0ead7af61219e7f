// Command plugin-http is a weir plugin (a processor run as a process of
// its own, see plugins/plugin) that calls an HTTP service: it POSTs each
// record's JSON value to the service's URL and passes on the JSON the
// service answers as the record's new value (its key, headers and
// timestamp are kept). It is the kind of stage a WASM module cannot be:
// WASM modules get no network.
//
// Config (the stage's config: plugin: {path: http, config: {...}}):
//
//	url        the service's URL (required; http or https)
//	mode       "record" (default): one request per record, its value the
//	           body; "batch": one request per batch of up to max_batch
//	           records, a JSON array of their values, answered by an
//	           array of as many new values
//	timeout    bounds each request, a Go duration (default "5s")
//	max_batch  values per request in batch mode (default 100)
//	headers    request headers to add, {name: value} (an API key, say)
//
// Answers: a 2xx answer's body, which must be JSON, is the new value;
// 204 No Content (in batch mode, a null in the array) drops the record.
// A record fails, to the pipeline's error policy, with a message naming
// the URL and the cause, when its value is not JSON (it is not sent), the
// service answers another status (the message quotes the start of the
// body), the body is not JSON or over 4 MiB, or no answer comes: the
// connection is refused or the timeout passes. After a request that got
// no answer, the rest of the batch fails at once, unsent, rather than
// waiting out a timeout per record. In batch mode a request's error fails
// all its records.
//
// Requests go one after another, so the stage's own timeout (plugin:
// {timeout: ...}, default 10s, after which weir restarts the plugin)
// must cover a batch's requests: keep the request timeout well under it,
// or use batch mode.
//
// The demo service in scoring/ (run by scoring-service/) is what
// pipeline.yaml calls; main_test.go runs it in the test.
//
//	weir plugin build examples/plugin-http -o examples/plugin-http/http
//	go run ./examples/plugin-http/scoring-service &
//	weir pipeline test examples/plugin-http/pipeline.yaml
package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/weirstream/weir/plugins/plugin"
	"github.com/weirstream/weir/sdk"
)

// maxBody bounds an answer's body.
const maxBody = 4 << 20

// caller is the processor; configure sets it up.
type caller struct {
	url      string
	batch    bool
	timeout  time.Duration
	maxBatch int
	headers  map[string]string
	client   *http.Client
}

func main() {
	plugin.Serve(&caller{})
}

// Configure implements plugin.Configurer.
func (c *caller) Configure(raw []byte) error {
	var cfg struct {
		URL      string            `json:"url"`
		Mode     string            `json:"mode"`
		Timeout  string            `json:"timeout"`
		MaxBatch int               `json:"max_batch"`
		Headers  map[string]string `json:"headers"`
	}
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&cfg); err != nil {
		return fmt.Errorf("config: %w", err)
	}
	if cfg.URL == "" {
		return errors.New(`config: "url" (the service's URL) is required`)
	}
	u, err := url.Parse(cfg.URL)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return fmt.Errorf("config: url %q: want an http:// or https:// URL", cfg.URL)
	}
	switch cfg.Mode {
	case "", "record":
		c.batch = false
	case "batch":
		c.batch = true
	default:
		return fmt.Errorf(`config: mode %q: want "record" or "batch"`, cfg.Mode)
	}
	c.timeout = 5 * time.Second
	if cfg.Timeout != "" {
		if c.timeout, err = time.ParseDuration(cfg.Timeout); err != nil || c.timeout <= 0 {
			return fmt.Errorf("config: timeout %q: want a positive duration such as 2s", cfg.Timeout)
		}
	}
	switch {
	case cfg.MaxBatch < 0:
		return fmt.Errorf("config: max_batch %d: want at least 1", cfg.MaxBatch)
	case cfg.MaxBatch == 0:
		cfg.MaxBatch = 100
	}
	c.url, c.maxBatch, c.headers = cfg.URL, cfg.MaxBatch, cfg.Headers
	// No proxy from the environment: weir passes the plugin none anyway.
	c.client = &http.Client{Transport: &http.Transport{
		MaxIdleConnsPerHost: 4,
		IdleConnTimeout:     90 * time.Second,
		ForceAttemptHTTP2:   true,
	}}
	return nil
}

// Process implements sdk.Processor.
func (c *caller) Process(ctx context.Context, in []sdk.Record, res *sdk.Results) error {
	var down error // set once a request got no answer: the rest is not sent
	if c.batch {
		for start := 0; start < len(in); start += c.maxBatch {
			down = c.callBatch(ctx, in, start, min(start+c.maxBatch, len(in)), res, down)
		}
		return nil
	}
	for i, r := range in {
		if !json.Valid(r.Value) {
			res.Fail(i, errNotJSON)
			continue
		}
		if down != nil {
			res.Fail(i, down)
			continue
		}
		body, status, err := c.post(ctx, r.Value)
		var na *noAnswer
		switch {
		case errors.As(err, &na):
			res.Fail(i, err)
			down = fmt.Errorf("http: not sent: POST %s got no answer for an earlier record of this batch (%s)", c.url, na.cause)
		case err != nil:
			res.Fail(i, err)
		case status == http.StatusNoContent:
			// dropped
		default:
			r.Value = body
			res.Emit(i, r)
		}
	}
	return nil
}

var errNotJSON = errors.New("http: the value is not JSON: not sent")

// callBatch sends the JSON values of in[start:end] as one array, and
// returns down, or the error that makes the service down.
func (c *caller) callBatch(ctx context.Context, in []sdk.Record, start, end int, res *sdk.Results, down error) error {
	var sent []int
	arr := []byte{'['}
	for i := start; i < end; i++ {
		if !json.Valid(in[i].Value) {
			continue
		}
		if len(sent) > 0 {
			arr = append(arr, ',')
		}
		arr = append(arr, in[i].Value...)
		sent = append(sent, i)
	}
	arr = append(arr, ']')
	failAll := func(err error) {
		for _, i := range sent {
			res.Fail(i, err)
		}
	}
	var values []json.RawMessage // the new values, when the call worked
	var na *noAnswer
	switch body, status, err := c.postIf(ctx, arr, len(sent) > 0 && down == nil); {
	case len(sent) == 0:
	case down != nil:
		failAll(down)
	case errors.As(err, &na):
		failAll(err)
		down = fmt.Errorf("http: not sent: POST %s got no answer for an earlier part of this batch (%s)", c.url, na.cause)
	case err != nil:
		failAll(err)
	case status == http.StatusNoContent:
		values = make([]json.RawMessage, len(sent)) // all dropped
	default:
		if json.Unmarshal(body, &values) != nil {
			values = nil
			failAll(fmt.Errorf("http: POST %s: %d %s, but the body is not a JSON array: %s", c.url, status, http.StatusText(status), quote(body)))
		} else if len(values) != len(sent) {
			failAll(fmt.Errorf("http: POST %s: %d values sent, %d answered", c.url, len(sent), len(values)))
			values = nil
		}
	}
	// Outputs and failures in input order (outputs must follow inputs).
	k := 0
	for i := start; i < end; i++ {
		if k == len(sent) || sent[k] != i {
			res.Fail(i, errNotJSON)
			continue
		}
		if values != nil {
			if v := bytes.TrimSpace(values[k]); len(v) > 0 && string(v) != "null" {
				r := in[i]
				r.Value = v
				res.Emit(i, r)
			}
		}
		k++
	}
	return down
}

func (c *caller) postIf(ctx context.Context, body []byte, send bool) ([]byte, int, error) {
	if !send {
		return nil, 0, nil
	}
	return c.post(ctx, body)
}

// noAnswer is the error of a request that got no answer: the connection
// was refused or lost, or the timeout passed.
type noAnswer struct{ url, cause string }

func (e *noAnswer) Error() string { return fmt.Sprintf("http: POST %s: %s", e.url, e.cause) }

// post sends body and returns the answer's body and status: an error with
// a status for an answer that is not a 2xx with JSON (or a 204), a
// *noAnswer when there is none.
func (c *caller) post(ctx context.Context, body []byte) ([]byte, int, error) {
	rctx, cancel := context.WithTimeout(ctx, c.timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(rctx, http.MethodPost, c.url, bytes.NewReader(body))
	if err != nil {
		return nil, 0, fmt.Errorf("http: POST %s: %w", c.url, err)
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Accept", "application/json")
	for k, v := range c.headers {
		req.Header.Set(k, v)
	}
	none := func(err error) ([]byte, int, error) {
		if rctx.Err() == context.DeadlineExceeded && ctx.Err() == nil {
			return nil, 0, &noAnswer{c.url, fmt.Sprintf("no answer within %v", c.timeout)}
		}
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err // without the method and URL again
		}
		return nil, 0, &noAnswer{c.url, err.Error()}
	}
	resp, err := c.client.Do(req)
	if err != nil {
		return none(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, maxBody+1))
	if err != nil {
		return none(err)
	}
	status := resp.StatusCode
	switch {
	case status < 200 || status > 299:
		return nil, status, fmt.Errorf("http: POST %s: %s: %s", c.url, resp.Status, quote(b))
	case status == http.StatusNoContent:
		return nil, status, nil
	case len(b) > maxBody:
		return nil, status, fmt.Errorf("http: POST %s: %s, but the body is over %d MiB", c.url, resp.Status, maxBody>>20)
	case !json.Valid(b):
		return nil, status, fmt.Errorf("http: POST %s: %s, but the body is not JSON: %s", c.url, resp.Status, quote(b))
	}
	return bytes.TrimSpace(b), status, nil
}

// quote returns the start of a body, on one line, for a message.
func quote(b []byte) string {
	b = bytes.TrimSpace(b)
	if len(b) == 0 {
		return "(no body)"
	}
	const n = 200
	cut := len(b) > n
	if cut {
		b = b[:n]
		for len(b) > 0 && !utf8.Valid(b) {
			b = b[:len(b)-1]
		}
	}
	s := strings.Join(strings.Fields(string(b)), " ")
	if cut {
		s += "..."
	}
	return fmt.Sprintf("%q", s)
}
