package kernels

// ConvParams describes a general N-dimensional convolution (XLA's
// ConvGeneralDilated semantics) in the canonical channels-last layout that the
// convolution kernels use:
//
//	input  [Batch, InSpatial..., InChannels]
//	kernel [KernelSpatial..., InChannels/FeatureGroups, OutChannels]
//	output [Batch/BatchGroups, OutSpatial..., OutChannels]
//
// The backend transposes operands of any other axis order into this layout.
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
}
