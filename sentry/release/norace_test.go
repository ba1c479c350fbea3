//go:build !race

package release

// raceFactor scales the memory bounds of the tests: 1 without the race
// detector (race_test.go).
const raceFactor = 1
