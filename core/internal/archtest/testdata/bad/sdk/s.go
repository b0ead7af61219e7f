package sdk

import (
	_ "fmt"
	_ "github.com/weirstream/weir/core/record"
)
