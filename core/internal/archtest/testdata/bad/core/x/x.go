package x

import (
	_ "github.com/nats-io/nats.go"
	_ "github.com/weirstream/weir/core/record"
	_ "github.com/weirstream/weir/runtime"
)
