package data

import "math/bits"

// Stream keys separate the random streams derived from one seed, so that the
// shuffling order and the augmentation of an example never share numbers.
const (
	streamShuffle uint64 = 0x53485546464c45 // "SHUFFLE"
	streamAugment uint64 = 0x4155474d454e54 // "AUGMENT"
)

// golden is 2^64 divided by the golden ratio, the SplitMix64 increment.
const golden = 0x9e3779b97f4a7c15

// mix64 is the SplitMix64 finaliser: a bijective avalanche of 64 bits.
func mix64(z uint64) uint64 {
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9
	z = (z ^ (z >> 27)) * 0x94d049bb133111eb
	return z ^ (z >> 31)
}

// RNG is a small deterministic pseudo-random generator (SplitMix64). Its
// output depends only on the seed and keys it was made from, never on the Go
// version or on which goroutine uses it, which is what makes batches and
// augmentations reproducible. The zero value is a valid generator. An RNG is
// not safe for concurrent use.
type RNG struct {
	state uint64
}

// NewRNG returns a generator whose stream is determined by seed and the keys,
// in order (for example an epoch and an example index). Different key lists
// give statistically independent streams.
func NewRNG(seed uint64, keys ...uint64) RNG {
	s := mix64(seed + golden)
	for _, k := range keys {
		s = mix64(s ^ mix64(k+golden))
	}
	return RNG{state: s}
}

// Uint64 returns 64 uniformly distributed random bits.
func (r *RNG) Uint64() uint64 {
	r.state += golden
	return mix64(r.state)
}

// Float64 returns a uniform number in [0, 1).
func (r *RNG) Float64() float64 {
	return float64(r.Uint64()>>11) * 0x1p-53
}

// Intn returns a uniform integer in [0, n); it returns 0 when n <= 1.
func (r *RNG) Intn(n int) int {
	if n <= 1 {
		return 0
	}
	// Lemire's multiply-and-shift with rejection: unbiased for every n.
	un := uint64(n)
	hi, lo := bits.Mul64(r.Uint64(), un)
	if lo < un {
		threshold := -un % un
		for lo < threshold {
			hi, lo = bits.Mul64(r.Uint64(), un)
		}
	}
	return int(hi)
}

// Bool returns true or false with equal probability.
func (r *RNG) Bool() bool {
	return r.Uint64()>>63 == 1
}

// Permutation fills perm with a uniformly random permutation of
// 0..len(perm)-1 (Fisher-Yates).
func (r *RNG) Permutation(perm []int32) {
	for i := range perm {
		perm[i] = int32(i)
	}
	for i := len(perm) - 1; i > 0; i-- {
		j := r.Intn(i + 1)
		perm[i], perm[j] = perm[j], perm[i]
	}
}
