package x

import _ "github.com/spf13/cobra"
