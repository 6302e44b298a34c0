package kernels

// ConvParams describes a general N-dimensional convolution (XLA's
// ConvGeneralDilated semantics) in the canonical channels-last layout that the
// convolution kernels use:
//
//	input  [Batch, InSpatial..., InChannels]
//	kernel [KernelSpatial..., InChannels/FeatureGroups, OutChannels]
//	output [Batch/BatchGroups, OutSpatial..., OutChannels]
//
// The backend transposes operands of any other axis order into this layout,
// except where KernelLayout and OutputLayout describe the kernel and output
// in place (see their docs: this is how the gradient convolutions GoMLX's
// autodiff builds run without transposes).
type ConvParams struct {
	// Batch is the input batch size.
	Batch int
	// InSpatial are the input's spatial sizes (before input dilation).
	InSpatial []int
	// InChannels is the input's channel count.
	InChannels int
	// KernelSpatial are the kernel's spatial sizes (before kernel dilation).
	KernelSpatial []int
	// OutChannels is the kernel's (and output's) channel count.
	OutChannels int
	// OutSpatial are the output's spatial sizes.
	OutSpatial []int
	// Strides are the window strides per spatial axis.
	Strides []int
	// InputDilation (lhs dilation) inserts InputDilation-1 zeros between input elements.
	InputDilation []int
	// KernelDilation (rhs dilation) inserts KernelDilation-1 zeros between kernel taps.
	KernelDilation []int
	// PadLow and PadHigh are the paddings per spatial axis, applied after input
	// dilation; they may be negative (cropping).
	PadLow, PadHigh []int
	// FeatureGroups is XLA's feature_group_count (grouped convolution).
	FeatureGroups int
	// BatchGroups is XLA's batch_group_count (used by kernel gradients).
	BatchGroups int
	// KernelLayout, if not nil, says where the kernel's elements are: the
	// kernel is then read in place in any axis order (and with its spatial
	// axes optionally reversed) instead of the canonical layout above.
	KernelLayout *ConvKernelLayout
	// SwappedInput says the input is stored with its batch and channel axes
	// swapped, as [InChannels, InSpatial..., Batch], instead of the
	// canonical layout. This is x [N, H, W, C] as the input of the kernel
	// gradient of a channels-last convolution (whose batch is C and whose
	// input channels are N): when SwappedInputDirect holds, it is read in
	// place (see conv_wgrad.go); otherwise it is transposed first.
	SwappedInput bool
	// OutputLayout, if not nil, says where the output's rows are: the
	// output is then written in place in any order of its batch and spatial
	// axes (channels stay innermost) instead of the canonical layout above.
	OutputLayout *ConvOutputLayout
}

// ConvKernelLayout gives the element strides of the kernel tensor's axes,
// for a kernel stored in another axis order than the canonical
// [KernelSpatial..., InChannels/FeatureGroups, OutChannels]. The kernel
// element of tap t..., input channel ci and output channel co is
//
//	kernel[sum_i t'_i*Spatial[i] + ci*In + co*Out]
//
// where t'_i = t_i, or KernelSpatial[i]-1-t_i when Reverse[i]. The strides
// must be positive and address only elements inside the kernel slice (which
// still has the canonical number of elements). Packing the kernel is a small
// part of a convolution, so any layout runs at full speed; Out == 1 packs
// fastest.
//
// Uses in backend/cpu (GoMLX autodiff of a channels-last convolution with
// input [N, H, W, Cin], kernel [KH, KW, Cin, Cout], output [N, Ho, Wo, Cout]):
//
//   - Input gradient: GoMLX builds ConvGeneral(v, Reverse(kernel, spatial))
//     with the kernel's channel roles swapped (KernelInputChannels = the
//     Cout axis, KernelOutputChannels = the Cin axis). Instead of the
//     Reverse and the kernel transpose, pass the original kernel with
//     KernelLayout{Spatial: [KW*Cin*Cout, Cin*Cout], In: 1, Out: Cout,
//     Reverse: [true, true]}: In is the stride of the axis the convolution
//     uses as input channels (here the Cout axis), Out that of its output
//     channels (the Cin axis).
//   - Kernel gradient: GoMLX builds ConvGeneral(x, v) with x's batch and
//     channel roles swapped and v = the output gradient [N, Ho, Wo, Cout]
//     as the kernel with KernelInputChannels = N (axis 0), KernelSpatial =
//     (1, 2) and KernelOutputChannels = Cout (axis 3). Pass v in place with
//     KernelLayout{Spatial: [Wo*Cout, Cout], In: Ho*Wo*Cout, Out: 1} (no
//     transpose of v), and write the result [KH, KW, Cin, Cout] in place with
//     OutputLayout{Batch: Cout, Spatial: [KW*Cin*Cout, Cin*Cout]} (its
//     "batch" is Cin). Only the input x still needs the layout change to
//     [Cin, H, W, N] (e.g. with Transpose), since the convolution reads it in
//     place with the channels (here N) contiguous.
//
// In general: Spatial[i] is the stride of the axis KernelSpatial[i] of the
// ConvolveAxesConfig, In that of KernelInputChannels and Out that of
// KernelOutputChannels, computed from the kernel operand's row-major
// dimensions; Reverse marks a Reverse op on that spatial axis that was
// folded in.
type ConvKernelLayout struct {
	// Spatial holds the element stride of each kernel spatial axis.
	Spatial []int
	// In is the element stride of the kernel's input-channel axis.
	In int
	// Out is the element stride of the kernel's output-channel axis.
	Out int
	// Reverse marks the spatial axes whose taps are stored in reverse order
	// (nil means none).
	Reverse []bool
}

// ConvOutputLayout gives the element strides of the output's batch and
// spatial axes, for an output whose channels are innermost (stride 1) but
// whose other axes are in another order than the canonical
// [Batch/BatchGroups, OutSpatial..., OutChannels]: output element (b, o...,
// co) is output[b*Batch + sum_i o_i*Spatial[i] + co]. The strides must be
// positive and address only elements inside the output slice (which has the
// canonical number of elements). See ConvKernelLayout for the kernel
// gradient, which writes [KH, KW, Cin, Cout] through it.
type ConvOutputLayout struct {
	// Batch is the element stride of the output batch axis.
	Batch int
	// Spatial holds the element stride of each output spatial axis.
	Spatial []int
}
