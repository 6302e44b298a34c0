package cpu

import (
	"fmt"
	"math/rand/v2"
	"testing"

	"github.com/gomlx/gomlx/backends"
	. "github.com/gomlx/gomlx/pkg/core/graph"
	"github.com/gomlx/gomlx/pkg/core/tensors"
	"github.com/gomlx/gomlx/pkg/ml/context"
	"github.com/gomlx/gomlx/pkg/ml/layers"
	"github.com/gomlx/gomlx/pkg/ml/layers/activations"
	"github.com/gomlx/gomlx/pkg/ml/layers/batchnorm"
	"github.com/gomlx/gomlx/pkg/ml/train"
	"github.com/gomlx/gomlx/pkg/ml/train/losses"
	"github.com/gomlx/gomlx/pkg/ml/train/optimizers"
)

// Benchmarks: training steps of a small CIFAR-style ResNet (the speed work's
// baseline) and of an MLP, and conv-net inference, on this backend and, where
// it can run them, on simplego.

// resnetBlock is a pre-activation-free basic residual block with batch norm.
func resnetBlock(ctx *context.Context, x *Node, channels int) *Node {
	y := layers.Convolution(ctx.In("conv1"), x).Channels(channels).KernelSize(3).PadSame().UseBias(false).Done()
	y = activations.Relu(batchnorm.New(ctx.In("bn1"), y, -1).Done())
	y = layers.Convolution(ctx.In("conv2"), y).Channels(channels).KernelSize(3).PadSame().UseBias(false).Done()
	y = batchnorm.New(ctx.In("bn2"), y, -1).Done()
	return activations.Relu(Add(x, y))
}

// smallResNet: 3x3 conv stem (16 channels), two residual blocks, a strided
// 32-channel block, global average pooling and a 10-way classifier.
func smallResNet(ctx *context.Context, _ any, inputs []*Node) []*Node {
	x := inputs[0]
	x = layers.Convolution(ctx.In("stem"), x).Channels(16).KernelSize(3).PadSame().UseBias(false).Done()
	x = activations.Relu(batchnorm.New(ctx.In("stem_bn"), x, -1).Done())
	x = resnetBlock(ctx.In("b1"), x, 16)
	x = resnetBlock(ctx.In("b2"), x, 16)
	x = layers.Convolution(ctx.In("down"), x).Channels(32).KernelSize(3).Strides(2).PadSame().Done()
	x = resnetBlock(ctx.In("b3"), x, 32)
	x = ReduceMean(x, 1, 2)
	return []*Node{layers.DenseWithBias(ctx.In("fc"), x, 10)}
}

func benchImages(n, size int) (*tensors.Tensor, *tensors.Tensor) {
	rng := rand.New(rand.NewPCG(1, 1))
	xs := make([]float32, n*size*size*3)
	for i := range xs {
		xs[i] = float32(rng.NormFloat64())
	}
	ys := make([]int32, n)
	for i := range ys {
		ys[i] = int32(rng.IntN(10))
	}
	return tensors.FromFlatDataAndDimensions(xs, n, size, size, 3), tensors.FromFlatDataAndDimensions(ys, n, 1)
}

func benchTrain(b *testing.B, be backends.Backend, model train.ModelFn, x, y *tensors.Tensor) {
	ctx := context.New()
	trainer := train.NewTrainer(be, ctx, model, losses.SparseCategoricalCrossEntropyLogits,
		optimizers.StochasticGradientDescent().WithLearningRate(0.01).Done(), nil, nil)
	step := func() {
		if _, err := trainer.TrainStep(nil, []*tensors.Tensor{x}, []*tensors.Tensor{y}); err != nil {
			b.Fatal(err)
		}
	}
	step() // compile
	b.ResetTimer()
	for b.Loop() {
		step()
	}
	b.ReportMetric(float64(x.Shape().Dimensions[0])*float64(b.N)/b.Elapsed().Seconds(), "images/s")
}

// BenchmarkConvTrainStep is one SGD step of smallResNet on a batch of 32
// CIFAR-sized (32x32x3) images. simplego cannot run it (it lacks ops
// needed by the convolution and batch-norm gradients).
func BenchmarkConvTrainStep(b *testing.B) {
	x, y := benchImages(32, 32)
	benchTrain(b, mustCPU(b), smallResNet, x, y)
}

// resNet20 is the CIFAR ResNet-20 (He et al. 2016): a 16-channel stem and
// three stages of three basic blocks with 16, 32 and 64 channels.
func resNet20(ctx *context.Context, _ any, inputs []*Node) []*Node {
	x := inputs[0]
	x = layers.Convolution(ctx.In("stem"), x).Channels(16).KernelSize(3).PadSame().UseBias(false).Done()
	x = activations.Relu(batchnorm.New(ctx.In("stem_bn"), x, -1).Done())
	for stage, ch := range []int{16, 32, 64} {
		for blk := range 3 {
			c := ctx.In(fmt.Sprintf("s%d_b%d", stage, blk))
			if stage > 0 && blk == 0 {
				// Downsampling block with a 1x1 strided projection.
				y := layers.Convolution(c.In("conv1"), x).Channels(ch).KernelSize(3).Strides(2).PadSame().UseBias(false).Done()
				y = activations.Relu(batchnorm.New(c.In("bn1"), y, -1).Done())
				y = layers.Convolution(c.In("conv2"), y).Channels(ch).KernelSize(3).PadSame().UseBias(false).Done()
				y = batchnorm.New(c.In("bn2"), y, -1).Done()
				sc := layers.Convolution(c.In("proj"), x).Channels(ch).KernelSize(1).Strides(2).UseBias(false).Done()
				sc = batchnorm.New(c.In("proj_bn"), sc, -1).Done()
				x = activations.Relu(Add(sc, y))
				continue
			}
			x = resnetBlock(c, x, ch)
		}
	}
	x = ReduceMean(x, 1, 2)
	return []*Node{layers.DenseWithBias(ctx.In("fc"), x, 10)}
}

// BenchmarkResNet20TrainStep is one SGD step of ResNet-20 on 32 CIFAR
// images (PyTorch: ~543 images/s on the same 2 cores).
func BenchmarkResNet20TrainStep(b *testing.B) {
	x, y := benchImages(32, 32)
	benchTrain(b, mustCPU(b), resNet20, x, y)
}

// BenchmarkMLPTrainStep compares an MLP training step on both backends.
func BenchmarkMLPTrainStep(b *testing.B) {
	cpu, ref := testBackends(b)
	for _, be := range []backends.Backend{cpu, ref} {
		b.Run(be.String(), func(b *testing.B) {
			x, y := mlpData(256, 1)
			benchTrain(b, be, mlpModel, x, y)
		})
	}
}

// BenchmarkConvInference compares the forward pass of a conv net (conv,
// bias, relu, pooling, dense) on both backends.
func BenchmarkConvInference(b *testing.B) {
	cpu, ref := testBackends(b)
	model := func(ctx *context.Context, x *Node) *Node {
		x = activations.Relu(layers.Convolution(ctx.In("c1"), x).Channels(16).KernelSize(3).PadSame().Done())
		x = MaxPool(x).Window(2).Done()
		x = activations.Relu(layers.Convolution(ctx.In("c2"), x).Channels(32).KernelSize(3).PadSame().Done())
		x = ReduceMean(x, 1, 2)
		return layers.DenseWithBias(ctx.In("fc"), x, 10)
	}
	for _, be := range []backends.Backend{cpu, ref} {
		b.Run(be.String(), func(b *testing.B) {
			x, _ := benchImages(32, 32)
			ctx := context.New()
			exec, err := context.NewExec(be, ctx, model)
			if err != nil {
				b.Fatal(err)
			}
			if _, err := exec.Exec(x); err != nil {
				b.Fatal(err)
			}
			b.ResetTimer()
			for b.Loop() {
				if _, err := exec.Exec(x); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(32*float64(b.N)/b.Elapsed().Seconds(), "images/s")
		})
	}
}

// BenchmarkDenseGradient is the weight and input gradients of a 784x256
// dense layer at batch 128 (the MLP's first layer), with the contraction
// rewrite (GEMMs) and without it ("nocontract": GoMLX's broadcast product
// of 128x784x256 elements, then a reduction).
func BenchmarkDenseGradient(b *testing.B) {
	plain, err := New("nocontract")
	if err != nil {
		b.Fatal(err)
	}
	rng := rand.New(rand.NewPCG(3, 4))
	x := make([]float32, 128*784)
	w := make([]float32, 784*256)
	for i := range x {
		x[i] = float32(rng.NormFloat64())
	}
	for i := range w {
		w[i] = float32(rng.NormFloat64()) / 28
	}
	for _, c := range []struct {
		name string
		be   backends.Backend
	}{{"contract", mustCPU(b)}, {"nocontract", plain}} {
		b.Run(c.name, func(b *testing.B) {
			// Tensors stay on the backend they were first used on.
			xt := tensors.FromFlatDataAndDimensions(x, 128, 784)
			wt := tensors.FromFlatDataAndDimensions(w, 784, 256)
			exec, err := NewExec(c.be, func(x, w *Node) []*Node {
				y := Dot(x, w)
				return Gradient(ReduceAllSum(Mul(y, y)), x, w)
			})
			if err != nil {
				b.Fatal(err)
			}
			defer exec.Finalize()
			if _, err := exec.Exec(xt, wt); err != nil {
				b.Fatal(err)
			}
			b.ResetTimer()
			for b.Loop() {
				if _, err := exec.Exec(xt, wt); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
