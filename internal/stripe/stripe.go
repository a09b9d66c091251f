// Package stripe picks, for the calling goroutine, one of a few copies of a
// policy's counters, so that the cores calling one policy mostly write cache
// lines of their own. It is the breaker's stripe hint (breaker/counts.go),
// shared.
package stripe

import "unsafe"

// CacheLine is the size counters are padded to, so that counters written by
// one core do not slow the loads of another.
const CacheLine = 64

// Bits is log2 of Count.
const Bits = 3

// Count is how many copies a striped counter keeps. Two goroutines share a
// copy about one time in eight; eight copies of one padded line are 512
// bytes.
const Count = 1 << Bits

// Hint returns the stripe, in [0, Count), of the calling goroutine, from the
// address of its stack: goroutines running at once have different stacks,
// a goroutine keeps its stripe from call to call, and finding it costs a
// multiply. The address is only hashed, never used to reach memory (a stack
// that grows moves, and its goroutine moves to another stripe: still exact,
// as every stripe is summed). salt, the address of the striped counters,
// makes two goroutines that share a stripe on one policy unlikely to share
// one on the next.
func Hint(salt unsafe.Pointer) int {
	var marker byte
	// Stacks are at least 2 KiB apart: hash the bits above that
	// (Fibonacci hashing keeps the top bits).
	block := uint64(uintptr(unsafe.Pointer(&marker))) >> 11
	return int((block ^ uint64(uintptr(salt))>>6) * 0x9e3779b97f4a7c15 >> (64 - Bits))
}
