package sgt_test

import (
	"fmt"
	"log"

	"github.com/gomlx/gomlx/backends"
	_ "github.com/gomlx/gomlx/backends/simplego"
	"github.com/gomlx/gomlx/pkg/core/graph"
	"github.com/gomlx/gomlx/pkg/ml/context"

	"github.com/sgt-dev/sgt"
)

// A linear classifier in GoMLX trained with SGT: the only change from plain
// training is the loss line, sgt.CrossEntropyLoss(logits, labels, alpha,
// labelSmoothing). The forward value is the plain cross-entropy, the same at
// every alpha; the gradient at the logits is (softmax(alpha*z) - q)/N. The
// first example is confident (p = 0.975 for its label, above the smoothed
// target 0.933), so at alpha = 1 its gradient pulls the label's logit back
// down; the flatter tampered distribution at alpha = 0.3 (0.656 for the
// label) still pushes it up.
func ExampleCrossEntropyLoss() {
	// GoMLX's pure-Go backend, running its ops one at a time.
	backend, err := backends.NewWithConfig("go:ops_sequential")
	if err != nil {
		log.Fatal(err)
	}
	defer backend.Finalize()

	ctx := context.New()
	w := ctx.VariableWithValue("weights", [][]float32{{4, -1, 0}, {0, 1, -2}}) // 2 features -> 3 classes
	images := [][]float32{{1, 0}, {0, 1}}
	labels := []int32{0, 2}

	for _, alpha := range []float64{1, 0.3} {
		exec, err := context.NewExec(backend, ctx, func(ctx *context.Context, x, y *graph.Node) []*graph.Node {
			logits := graph.Dot(x, w.ValueGraph(x.Graph()))
			loss := sgt.CrossEntropyLoss(logits, y, alpha, 0.1) // the SGT loss, label smoothing 0.1
			return []*graph.Node{loss, graph.Gradient(loss, logits)[0]}
		})
		if err != nil {
			log.Fatal(err)
		}
		out, err := exec.Exec(images, labels)
		exec.Finalize()
		if err != nil {
			log.Fatal(err)
		}
		fmt.Printf("alpha %.1f: loss %.4f, d loss/d logits %.4f\n", alpha, out[0].Value(), out[1].Value())
	}
	// Output:
	// alpha 1.0: loss 1.7535, d loss/d logits [[0.0211 -0.0134 -0.0077] [0.1131 0.3360 -0.4491]]
	// alpha 0.3: loss 1.7535, d loss/d logits [[-0.1387 0.0565 0.0821] [0.1558 0.2162 -0.3720]]
}
