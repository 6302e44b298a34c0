package models

import (
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"

	"github.com/gomlx/gomlx/pkg/core/dtypes"
	"github.com/gomlx/gomlx/pkg/core/graph"
	"github.com/gomlx/gomlx/pkg/core/shapes"
	"github.com/gomlx/gomlx/pkg/core/tensors"
	"github.com/gomlx/gomlx/pkg/ml/context"
)

// featureWidth is the expected number of features of a model: the width of
// the MLP's hidden layer, or the channels of a ResNet's last stage.
func featureWidth(name string) int {
	base := strings.TrimSuffix(strings.TrimSuffix(strings.TrimPrefix(name, "se"), "-skipinit"), "-nobn")
	switch base {
	case "mlp":
		return 256
	case "resnet20", "resnet32", "resnet44", "resnet56", "resnet110":
		return 64
	case "resnet18", "resnet34":
		return 512
	}
	return 2048 // bottleneck ResNets: 4 x 512
}

// variableLayout lists the variables of ctx as "scope/name shape" strings.
func variableLayout(ctx *context.Context) []string {
	var out []string
	for v := range ctx.IterVariables() {
		out = append(out, fmt.Sprintf("%s/%s %s trainable=%v", v.Scope(), v.Name(), v.Shape(), v.Trainable))
	}
	slices.Sort(out)
	return out
}

// TestFeaturesEveryModel builds every registered model with Features and
// with Build: the features have the expected width, the logits the right
// shape, and both create exactly the same variables.
func TestFeaturesEveryModel(t *testing.T) {
	b := goBackend(t)
	const classes = 7
	for _, name := range Names() {
		spec, _ := Get(name)
		if spec.Features == nil {
			t.Errorf("%s: no Features function", name)
			continue
		}
		in := []int{16, 16, 3}
		if name == "mlp" {
			in = []int{6, 6, 1}
		}
		build := func(features bool) (layout []string, fDims, lDims []int, err error) {
			g := graph.NewGraph(b, "features_"+name)
			defer g.Finalize()
			ctx := context.New()
			ctx.SetParams(map[string]any{ParamSmallStem: true})
			err = func() (err error) {
				defer func() {
					if r := recover(); r != nil {
						err = fmt.Errorf("%v", r)
					}
				}()
				x := graph.Parameter(g, "images", shapes.Make(dtypes.Float32, 2, in[0], in[1], in[2]))
				if features {
					f, l := spec.Features(ctx, x, classes)
					fDims, lDims = f.Shape().Dimensions, l.Shape().Dimensions
				} else {
					lDims = spec.Build(ctx, x, classes).Shape().Dimensions
				}
				return nil
			}()
			return variableLayout(ctx), fDims, lDims, err
		}
		withF, fDims, lDims, err := build(true)
		if err != nil {
			t.Errorf("%s: Features: %v", name, err)
			continue
		}
		plain, _, plainDims, err := build(false)
		if err != nil {
			t.Errorf("%s: Build: %v", name, err)
			continue
		}
		if want := []int{2, featureWidth(name)}; !slices.Equal(fDims, want) {
			t.Errorf("%s: features shape %v, want %v", name, fDims, want)
		}
		if !slices.Equal(lDims, []int{2, classes}) || !slices.Equal(plainDims, lDims) {
			t.Errorf("%s: logits shapes %v (Features) and %v (Build), want [2 %d]", name, lDims, plainDims, classes)
		}
		if !slices.Equal(withF, plain) {
			t.Errorf("%s: Features and Build create different variables:\n%v\n%v", name, withF, plain)
		}
	}
}

// TestFeaturesFeedFinalLayer runs a few models in inference mode and checks
// that the logits are exactly the final dense layer applied to the
// features (computed here on the host from the layer's variables), that
// Build gives the same logits, and that a ResNet's pooled features, averages
// of ReLU outputs, are non-negative.
func TestFeaturesFeedFinalLayer(t *testing.T) {
	rng := rand.New(rand.NewPCG(21, 22))
	const classes = 5
	for _, tc := range []struct {
		name string
		in   []int
	}{
		{"mlp", []int{6, 6, 1}},
		{"resnet20", []int{8, 8, 3}},
		{"resnet20-nobn", []int{8, 8, 2}},
		{"seresnet18", []int{8, 8, 3}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			spec, err := Get(tc.name)
			if err != nil {
				t.Fatal(err)
			}
			ctx := context.New()
			ctx.SetParams(map[string]any{ParamSmallStem: true})
			exec, err := context.NewExec(goBackend(t), ctx, func(ctx *context.Context, x *graph.Node) []*graph.Node {
				ctx.SetTraining(x.Graph(), false)
				f, l := spec.Features(ctx, x, classes)
				return []*graph.Node{f, l, spec.Build(ctx.Reuse(), x, classes)}
			})
			if err != nil {
				t.Fatal(err)
			}
			defer exec.Finalize()
			const n = 3
			x, _ := randomBatch(rng, n, tc.in, classes)
			out, err := exec.Exec(x)
			if err != nil {
				t.Fatal(err)
			}
			features := tensors.MustCopyFlatData[float32](out[0])
			logits := tensors.MustCopyFlatData[float32](out[1])
			built := tensors.MustCopyFlatData[float32](out[2])
			width := len(features) / n
			if width != featureWidth(tc.name) {
				t.Fatalf("%d features per example, want %d", width, featureWidth(tc.name))
			}
			// The final layer: the variable of shape [width, classes] and the
			// biases [classes] in its scope.
			var w, bias []float32
			for v := range ctx.IterVariables() {
				if d := v.Shape().Dimensions; len(d) == 2 && d[0] == width && d[1] == classes {
					value, err := v.Value()
					if err != nil {
						t.Fatal(err)
					}
					w = tensors.MustCopyFlatData[float32](value)
					for u := range ctx.IterVariables() {
						if u.Scope() == v.Scope() && slices.Equal(u.Shape().Dimensions, []int{classes}) {
							bv, err := u.Value()
							if err != nil {
								t.Fatal(err)
							}
							bias = tensors.MustCopyFlatData[float32](bv)
						}
					}
				}
			}
			if w == nil || bias == nil {
				t.Fatalf("final layer variables not found: %v", variableLayout(ctx))
			}
			var nonZero int
			for i := range n {
				for c := range classes {
					want := float64(bias[c])
					for k := range width {
						want += float64(features[i*width+k]) * float64(w[k*classes+c])
					}
					got := float64(logits[i*classes+c])
					if math.Abs(got-want) > 1e-4*(1+math.Abs(want)) {
						t.Errorf("example %d class %d: logit %g, features x W + b = %g", i, c, got, want)
					}
					if built[i*classes+c] != logits[i*classes+c] {
						t.Errorf("example %d class %d: Build logit %g differs from Features logit %g", i, c, built[i*classes+c], logits[i*classes+c])
					}
				}
			}
			for _, f := range features {
				if f < 0 {
					t.Fatalf("negative feature %g: features are ReLU outputs (pooled)", f)
				}
				if f > 0 {
					nonZero++
				}
			}
			if nonZero == 0 {
				t.Error("all features are zero")
			}
		})
	}
}
