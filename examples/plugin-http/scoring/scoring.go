// Package scoring is the demo service of the plugin-http example: an HTTP
// service that scores orders for risk, which the plugin calls. Its API:
//
//	POST /score        an order, a JSON object with a number "amount":
//	                   200 and the order with "risk" added: "high" from
//	                   1000, "medium" from 100, else "low"
//	POST /score/batch  a JSON array of orders: 200 and the array of the
//	                   scored orders, in order
//
// An order with "test": true is not scored: 204 No Content, or null in a
// batch. An order with a negative amount is refused (422), one without a
// number amount or that is not a JSON object is a bad request (400); in
// a batch, one such order refuses the whole batch. Scored orders are
// JSON objects with their fields in sorted order, numbers as written.
package scoring

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
)

// Handler serves the API.
func Handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("POST /score", func(w http.ResponseWriter, r *http.Request) {
		body, err := io.ReadAll(io.LimitReader(r.Body, 1<<20))
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		scored, status, err := Score(body)
		reply(w, scored, status, err)
	})
	mux.HandleFunc("POST /score/batch", func(w http.ResponseWriter, r *http.Request) {
		var orders []json.RawMessage
		if err := json.NewDecoder(io.LimitReader(r.Body, 16<<20)).Decode(&orders); err != nil {
			http.Error(w, "want a JSON array of orders: "+err.Error(), http.StatusBadRequest)
			return
		}
		out := make([]json.RawMessage, len(orders))
		for i, o := range orders {
			scored, status, err := Score(o)
			switch {
			case err != nil:
				http.Error(w, fmt.Sprintf("order %d: %v", i+1, err), status)
				return
			case status == http.StatusNoContent:
				out[i] = json.RawMessage("null")
			default:
				out[i] = scored
			}
		}
		b, _ := json.Marshal(out) // RawMessages from Score: valid
		reply(w, b, http.StatusOK, nil)
	})
	return mux
}

func reply(w http.ResponseWriter, body []byte, status int, err error) {
	if err != nil {
		http.Error(w, err.Error(), status)
		return
	}
	if status == http.StatusNoContent {
		w.WriteHeader(status)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	w.Write(body)
}

// Score scores one order: the scored order and 200, no order and 204
// for a test order, or an error and its status.
func Score(order []byte) ([]byte, int, error) {
	var o map[string]any
	dec := json.NewDecoder(bytes.NewReader(order))
	dec.UseNumber()
	if err := dec.Decode(&o); err != nil || o == nil {
		return nil, http.StatusBadRequest, errors.New("an order is a JSON object")
	}
	if o["test"] == true {
		return nil, http.StatusNoContent, nil
	}
	n, ok := o["amount"].(json.Number)
	if !ok {
		return nil, http.StatusBadRequest, errors.New(`an order needs a number "amount"`)
	}
	amount, err := n.Float64()
	if err != nil {
		return nil, http.StatusBadRequest, fmt.Errorf("amount %s: %v", n, err)
	}
	switch {
	case amount < 0:
		return nil, http.StatusUnprocessableEntity, fmt.Errorf("amount %s is negative", n)
	case amount >= 1000:
		o["risk"] = "high"
	case amount >= 100:
		o["risk"] = "medium"
	default:
		o["risk"] = "low"
	}
	b, err := json.Marshal(o)
	if err != nil {
		return nil, http.StatusInternalServerError, err
	}
	return b, http.StatusOK, nil
}
