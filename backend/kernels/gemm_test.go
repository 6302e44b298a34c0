package kernels

import (
	"fmt"
	"math"
	"math/rand/v2"
	"testing"
	"unsafe"
)

// forEachISA runs f once per micro-kernel family this CPU supports, with
// that family selected.
func forEachISA(t *testing.T, f func(t *testing.T)) {
	t.Helper()
	defer func() {
		if err := SetISA(""); err != nil {
			t.Fatal(err)
		}
	}()
	for _, name := range AvailableISAs() {
		if err := SetISA(name); err != nil {
			t.Fatal(err)
		}
		t.Run(name, f)
	}
}

func TestGemmMicroArgsLayout(t *testing.T) {
	var a gemmMicroArgs
	// The assembly kernels read these fields by offset.
	want := []struct {
		name string
		got  uintptr
		off  uintptr
	}{
		{"segs", unsafe.Offsetof(a.segs), 0},
		{"nseg", unsafe.Offsetof(a.nseg), 8},
		{"abase", unsafe.Offsetof(a.abase), 16},
		{"b", unsafe.Offsetof(a.b), 24},
		{"cbase", unsafe.Offsetof(a.cbase), 32},
		{"coffs", unsafe.Offsetof(a.coffs), 40},
		{"mr", unsafe.Offsetof(a.mr), 48},
		{"nr", unsafe.Offsetof(a.nr), 56},
		{"alpha32", unsafe.Offsetof(a.alpha32), 64},
		{"beta32", unsafe.Offsetof(a.beta32), 68},
		{"alpha64", unsafe.Offsetof(a.alpha64), 72},
		{"beta64", unsafe.Offsetof(a.beta64), 80},
		{"useBeta", unsafe.Offsetof(a.useBeta), 88},
		{"zoff", unsafe.Offsetof(a.zoff), 96},
		{"zeros", unsafe.Offsetof(a.zeros), 104},
	}
	for _, w := range want {
		if w.got != w.off {
			t.Errorf("gemmMicroArgs.%s at offset %d, the assembly expects %d", w.name, w.got, w.off)
		}
	}
}

func TestSetISA(t *testing.T) {
	isas := AvailableISAs()
	if isas[len(isas)-1] != ISAGo {
		t.Fatalf("AvailableISAs() = %v, want the portable %q last", isas, ISAGo)
	}
	if err := SetISA("no-such-isa"); err == nil {
		t.Fatal("SetISA(no-such-isa) succeeded")
	}
	if err := SetISA(ISAGo); err != nil {
		t.Fatal(err)
	}
	if got := CurrentISA(); got != ISAGo {
		t.Errorf("CurrentISA() = %q after SetISA(%q)", got, ISAGo)
	}
	if err := SetISA(""); err != nil {
		t.Fatal(err)
	}
	if got := CurrentISA(); got != isas[0] {
		t.Errorf("CurrentISA() = %q after SetISA(\"\"), want the best, %q", got, isas[0])
	}
}

func randSlice[T gemmFloat](r *rand.Rand, n int) []T {
	s := make([]T, n)
	for i := range s {
		s[i] = T(r.Float64()*2 - 1)
	}
	return s
}

// naiveGemm is the reference: a triple loop accumulating in float64. It also
// returns, per element of C, the bound sum |alpha*a*b| + |beta*c| that scales
// the allowed rounding error.
func naiveGemm[T gemmFloat](transA, transB bool, m, n, k int, alpha T, a []T, lda int, b []T, ldb int, beta T, c []T, ldc int) (want, scale []float64) {
	want = make([]float64, m*n)
	scale = make([]float64, m*n)
	for i := 0; i < m; i++ {
		for j := 0; j < n; j++ {
			var s, sa float64
			for p := 0; p < k; p++ {
				var av, bv float64
				if transA {
					av = float64(a[p*lda+i])
				} else {
					av = float64(a[i*lda+p])
				}
				if transB {
					bv = float64(b[j*ldb+p])
				} else {
					bv = float64(b[p*ldb+j])
				}
				s += av * bv
				sa += math.Abs(av * bv)
			}
			v := float64(alpha) * s
			sc := math.Abs(float64(alpha)) * sa
			if beta != 0 {
				v += float64(beta) * float64(c[i*ldc+j])
				sc += math.Abs(float64(beta) * float64(c[i*ldc+j]))
			}
			want[i*n+j] = v
			scale[i*n+j] = sc
		}
	}
	return want, scale
}

func epsOf[T gemmFloat]() float64 {
	var z T
	if unsafe.Sizeof(z) == 4 {
		return 0x1p-23
	}
	return 0x1p-52
}

type gemmCase struct {
	transA, transB bool
	m, n, k        int
	padA, padB     int // extra leading-dimension elements
	padC           int
	alpha, beta    float64
}

func (c gemmCase) String() string {
	return fmt.Sprintf("tA=%v,tB=%v,m=%d,n=%d,k=%d,pad=%d/%d/%d,alpha=%g,beta=%g",
		c.transA, c.transB, c.m, c.n, c.k, c.padA, c.padB, c.padC, c.alpha, c.beta)
}

// checkGemm runs one case through gemm and compares it with naiveGemm,
// also checking that C's padding is untouched.
func checkGemm[T gemmFloat](t *testing.T, r *rand.Rand, tc gemmCase) {
	t.Helper()
	ar, ac := tc.m, tc.k
	if tc.transA {
		ar, ac = tc.k, tc.m
	}
	br, bc := tc.k, tc.n
	if tc.transB {
		br, bc = tc.n, tc.k
	}
	lda, ldb, ldc := max(ac, 1)+tc.padA, max(bc, 1)+tc.padB, max(tc.n, 1)+tc.padC
	a := randSlice[T](r, ar*lda)
	b := randSlice[T](r, br*ldb)
	c := randSlice[T](r, tc.m*ldc)
	if tc.beta == 0 {
		// beta = 0 must ignore C, even NaN.
		for i := range c {
			c[i] = T(math.NaN())
		}
	}
	const sentinel = 12345
	for i := 0; i < tc.m; i++ {
		for j := tc.n; j < ldc; j++ {
			c[i*ldc+j] = sentinel
		}
	}
	want, scale := naiveGemm(tc.transA, tc.transB, tc.m, tc.n, tc.k, T(tc.alpha), a, lda, b, ldb, T(tc.beta), c, ldc)
	if err := gemm(tc.transA, tc.transB, tc.m, tc.n, tc.k, T(tc.alpha), a, lda, b, ldb, T(tc.beta), c, ldc); err != nil {
		t.Fatalf("%v: %v", tc, err)
	}
	tol := 4 * epsOf[T]() * float64(tc.k+4)
	bad := 0
	for i := 0; i < tc.m; i++ {
		for j := 0; j < ldc; j++ {
			got := float64(c[i*ldc+j])
			if j >= tc.n {
				if got != sentinel {
					t.Fatalf("%v: C[%d][%d] (padding) changed to %g", tc, i, j, got)
				}
				continue
			}
			w := want[i*tc.n+j]
			if d := math.Abs(got - w); !(d <= tol*scale[i*tc.n+j]+1e-300) {
				if bad < 5 {
					t.Errorf("%v: C[%d][%d] = %g, want %g (diff %g, bound %g)", tc, i, j, got, w, d, tol*scale[i*tc.n+j])
				}
				bad++
			}
		}
	}
	if bad > 0 {
		t.Fatalf("%v: %d wrong elements", tc, bad)
	}
}

func gemmCases(r *rand.Rand) []gemmCase {
	var cases []gemmCase
	sizes := []int{1, 2, 3, 4, 5, 7, 8, 12, 13, 16, 17, 24, 31, 32, 33, 47}
	ab := [][2]float64{{1, 0}, {1, 1}, {-0.5, 2}, {2, -1.5}, {0.75, 0}}
	for i := 0; i < 120; i++ {
		tc := gemmCase{
			transA: r.IntN(2) == 1, transB: r.IntN(2) == 1,
			m: sizes[r.IntN(len(sizes))], n: sizes[r.IntN(len(sizes))], k: sizes[r.IntN(len(sizes))],
		}
		if r.IntN(2) == 1 {
			tc.padA, tc.padB, tc.padC = r.IntN(5), r.IntN(5), r.IntN(5)
		}
		p := ab[r.IntN(len(ab))]
		tc.alpha, tc.beta = p[0], p[1]
		cases = append(cases, tc)
	}
	// Shapes that cross the cache blocks (MC, KC), exercise the parallel
	// splits (over m, over n, over k), power-of-two leading dimensions (A is
	// packed) and skinny convolution-like shapes.
	cases = append(cases,
		gemmCase{m: 500, n: 40, k: 300, alpha: 1, beta: 0},
		gemmCase{m: 500, n: 40, k: 1100, alpha: 1, beta: 0.5},
		gemmCase{m: 300, n: 300, k: 300, alpha: 1, beta: 1, padC: 3},
		gemmCase{transB: true, m: 200, n: 120, k: 1100, alpha: 2, beta: 0},
		gemmCase{transA: true, m: 130, n: 70, k: 1100, alpha: 1, beta: 0},
		gemmCase{m: 1000, n: 17, k: 70, alpha: 1, beta: 0.5, padA: 3},
		gemmCase{transA: true, m: 130, n: 70, k: 530, alpha: 1, beta: 1},
		gemmCase{transB: true, m: 37, n: 300, k: 100, alpha: -1, beta: 0, padB: 2},
		gemmCase{m: 3, n: 4100, k: 5, alpha: 1, beta: 0},
		gemmCase{m: 9, n: 2000, k: 40, alpha: 1, beta: 2},
		gemmCase{m: 20, n: 16, k: 5000, alpha: 0.5, beta: 1},
		gemmCase{transA: true, transB: true, m: 33, n: 9, k: 3000, alpha: 1, beta: 0},
		gemmCase{m: 64, n: 64, k: 64, alpha: 1, beta: 0, padA: 512 - 64},
		gemmCase{m: 400, n: 16, k: 37, alpha: 1, beta: 0},
		gemmCase{transA: true, m: 450, n: 13, k: 64, alpha: 1, beta: 1},
		gemmCase{m: 2, n: 3, k: 0, alpha: 1, beta: 0.5},
		gemmCase{m: 2, n: 3, k: 0, alpha: 1, beta: 0},
		gemmCase{m: 0, n: 3, k: 4, alpha: 1, beta: 0},
		gemmCase{m: 5, n: 6, k: 7, alpha: 0, beta: 3},
	)
	return cases
}

func TestGemm(t *testing.T) {
	forEachISA(t, func(t *testing.T) {
		r := rand.New(rand.NewPCG(1, 2))
		cases := gemmCases(r)
		t.Run("f32", func(t *testing.T) {
			for _, tc := range cases {
				checkGemm[float32](t, r, tc)
			}
		})
		t.Run("f64", func(t *testing.T) {
			for _, tc := range cases {
				checkGemm[float64](t, r, tc)
			}
		})
	})
}

func TestGemmErrors(t *testing.T) {
	a := make([]float32, 6)
	b := make([]float32, 6)
	c := make([]float32, 4)
	tests := []struct {
		name string
		err  error
	}{
		{"negative m", GemmF32(false, false, -1, 2, 3, 1, a, 3, b, 2, 0, c, 2)},
		{"short lda", GemmF32(false, false, 2, 2, 3, 1, a, 2, b, 2, 0, c, 2)},
		{"short ldb for transB", GemmF32(false, true, 2, 2, 3, 1, a, 3, b, 2, 0, c, 2)},
		{"short A", GemmF32(false, false, 2, 2, 3, 1, a[:5], 3, b, 2, 0, c, 2)},
		{"short C", GemmF32(false, false, 2, 2, 3, 1, a, 3, b, 2, 0, c[:3], 2)},
		{"short B f64", GemmF64(false, false, 2, 2, 3, 1, make([]float64, 6), 3, make([]float64, 5), 2, 0, make([]float64, 4), 2)},
	}
	for _, tt := range tests {
		if tt.err == nil {
			t.Errorf("%s: no error", tt.name)
		}
	}
	if err := GemmF32(false, false, 2, 2, 3, 1, a, 3, b, 2, 0, c, 2); err != nil {
		t.Errorf("valid call: %v", err)
	}
}
