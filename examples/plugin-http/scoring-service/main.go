// Command scoring-service runs the demo service of the plugin-http
// example (package scoring) until it is interrupted, so that the test
// cases of examples/plugin-http/pipeline.yaml can run:
//
//	go run ./examples/plugin-http/scoring-service &
//	weir pipeline test examples/plugin-http/pipeline.yaml
//
// It listens on -addr (default 127.0.0.1:8089, the pipeline's URL) and
// prints "listening on http://ADDR" once it does (with -addr
// 127.0.0.1:0, ADDR is the port the system chose).
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log"
	"net"
	"net/http"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/weirstream/weir/examples/plugin-http/scoring"
)

func main() {
	addr := flag.String("addr", "127.0.0.1:8089", "address to listen on")
	flag.Parse()
	ln, err := net.Listen("tcp", *addr)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Printf("listening on http://%s\n", ln.Addr())
	srv := &http.Server{Handler: scoring.Handler(), ReadHeaderTimeout: 10 * time.Second}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	go func() {
		<-ctx.Done()
		sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		srv.Shutdown(sctx)
	}()
	if err := srv.Serve(ln); !errors.Is(err, http.ErrServerClosed) {
		log.Fatal(err)
	}
}
