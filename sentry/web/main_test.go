package web_test

import (
	"testing"

	"github.com/mirrorsentry/sentry/internal/testkit/pgtest"
)

func TestMain(m *testing.M) { pgtest.Main(m) }
