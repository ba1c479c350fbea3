// Command sentry primes and verifies download mirrors and keeps a bouncer
// redirector's database true. See README.md.
package main

import (
	"os"

	"github.com/mirrorsentry/sentry/sentry/cli"
)

func main() { os.Exit(cli.Run(os.Args[1:])) }
