//go:build race

package release

// raceFactor scales the memory bounds of the tests: the race detector
// keeps shadow memory of its own, about three times the heap (measured:
// 2.4 to 3.1 times the peak RSS without it).
const raceFactor = 4
