package cpu

// Builder methods of the elementwise ops; see elementwise.go.

import "github.com/gomlx/gomlx/backends"

// Abs adds the elementwise Abs of x.
func (b *Builder) Abs(x backends.Op) (backends.Op, error) {
	return b.addUnary(backends.OpTypeAbs, x)
}

// Neg adds the elementwise Neg of x.
func (b *Builder) Neg(x backends.Op) (backends.Op, error) {
	return b.addUnary(backends.OpTypeNeg, x)
}

// Exp adds the elementwise Exp of x.
func (b *Builder) Exp(x backends.Op) (backends.Op, error) {
	return b.addUnary(backends.OpTypeExp, x)
}

// Expm1 adds the elementwise Expm1 of x.
func (b *Builder) Expm1(x backends.Op) (backends.Op, error) {
	return b.addUnary(backends.OpTypeExpm1, x)
}

// Log adds the elementwise Log of x.
func (b *Builder) Log(x backends.Op) (backends.Op, error) {
	return b.addUnary(backends.OpTypeLog, x)
}

// Log1p adds the elementwise Log1p of x.
func (b *Builder) Log1p(x backends.Op) (backends.Op, error) {
	return b.addUnary(backends.OpTypeLog1p, x)
}

// Logistic adds the elementwise Logistic of x.
func (b *Builder) Logistic(x backends.Op) (backends.Op, error) {
	return b.addUnary(backends.OpTypeLogistic, x)
}

// Tanh adds the elementwise Tanh of x.
func (b *Builder) Tanh(x backends.Op) (backends.Op, error) {
	return b.addUnary(backends.OpTypeTanh, x)
}

// Sqrt adds the elementwise Sqrt of x.
func (b *Builder) Sqrt(x backends.Op) (backends.Op, error) {
	return b.addUnary(backends.OpTypeSqrt, x)
}

// Rsqrt adds the elementwise Rsqrt of x.
func (b *Builder) Rsqrt(x backends.Op) (backends.Op, error) {
	return b.addUnary(backends.OpTypeRsqrt, x)
}

// Sign adds the elementwise Sign of x.
func (b *Builder) Sign(x backends.Op) (backends.Op, error) {
	return b.addUnary(backends.OpTypeSign, x)
}

// Floor adds the elementwise Floor of x.
func (b *Builder) Floor(x backends.Op) (backends.Op, error) {
	return b.addUnary(backends.OpTypeFloor, x)
}

// Ceil adds the elementwise Ceil of x.
func (b *Builder) Ceil(x backends.Op) (backends.Op, error) {
	return b.addUnary(backends.OpTypeCeil, x)
}

// Round adds the elementwise Round of x.
func (b *Builder) Round(x backends.Op) (backends.Op, error) {
	return b.addUnary(backends.OpTypeRound, x)
}

// Cos adds the elementwise Cos of x.
func (b *Builder) Cos(x backends.Op) (backends.Op, error) {
	return b.addUnary(backends.OpTypeCos, x)
}

// Sin adds the elementwise Sin of x.
func (b *Builder) Sin(x backends.Op) (backends.Op, error) {
	return b.addUnary(backends.OpTypeSin, x)
}

// Erf adds the elementwise Erf of x.
func (b *Builder) Erf(x backends.Op) (backends.Op, error) {
	return b.addUnary(backends.OpTypeErf, x)
}

// LogicalNot adds the elementwise LogicalNot of x.
func (b *Builder) LogicalNot(x backends.Op) (backends.Op, error) {
	return b.addUnary(backends.OpTypeLogicalNot, x)
}

// BitwiseNot adds the elementwise BitwiseNot of x.
func (b *Builder) BitwiseNot(x backends.Op) (backends.Op, error) {
	return b.addUnary(backends.OpTypeBitwiseNot, x)
}

// BitCount adds the elementwise BitCount of x.
func (b *Builder) BitCount(x backends.Op) (backends.Op, error) {
	return b.addUnary(backends.OpTypeBitCount, x)
}

// Clz adds the elementwise Clz of x.
func (b *Builder) Clz(x backends.Op) (backends.Op, error) {
	return b.addUnary(backends.OpTypeClz, x)
}

// Add adds the elementwise Add of lhs and rhs (scalar and size-1 broadcasting).
func (b *Builder) Add(lhs, rhs backends.Op) (backends.Op, error) {
	return b.addBinary(backends.OpTypeAdd, lhs, rhs)
}

// Sub adds the elementwise Sub of lhs and rhs (scalar and size-1 broadcasting).
func (b *Builder) Sub(lhs, rhs backends.Op) (backends.Op, error) {
	return b.addBinary(backends.OpTypeSub, lhs, rhs)
}

// Mul adds the elementwise Mul of lhs and rhs (scalar and size-1 broadcasting).
func (b *Builder) Mul(lhs, rhs backends.Op) (backends.Op, error) {
	return b.addBinary(backends.OpTypeMul, lhs, rhs)
}

// Div adds the elementwise Div of lhs and rhs (scalar and size-1 broadcasting).
func (b *Builder) Div(lhs, rhs backends.Op) (backends.Op, error) {
	return b.addBinary(backends.OpTypeDiv, lhs, rhs)
}

// Pow adds the elementwise Pow of lhs and rhs (scalar and size-1 broadcasting).
func (b *Builder) Pow(lhs, rhs backends.Op) (backends.Op, error) {
	return b.addBinary(backends.OpTypePow, lhs, rhs)
}

// Max adds the elementwise Max of lhs and rhs (scalar and size-1 broadcasting).
func (b *Builder) Max(lhs, rhs backends.Op) (backends.Op, error) {
	return b.addBinary(backends.OpTypeMax, lhs, rhs)
}

// Min adds the elementwise Min of lhs and rhs (scalar and size-1 broadcasting).
func (b *Builder) Min(lhs, rhs backends.Op) (backends.Op, error) {
	return b.addBinary(backends.OpTypeMin, lhs, rhs)
}

// Rem adds the elementwise Rem of lhs and rhs (scalar and size-1 broadcasting).
func (b *Builder) Rem(lhs, rhs backends.Op) (backends.Op, error) {
	return b.addBinary(backends.OpTypeRem, lhs, rhs)
}

// LogicalAnd adds the elementwise LogicalAnd of lhs and rhs (scalar and size-1 broadcasting).
func (b *Builder) LogicalAnd(lhs, rhs backends.Op) (backends.Op, error) {
	return b.addBinary(backends.OpTypeLogicalAnd, lhs, rhs)
}

// LogicalOr adds the elementwise LogicalOr of lhs and rhs (scalar and size-1 broadcasting).
func (b *Builder) LogicalOr(lhs, rhs backends.Op) (backends.Op, error) {
	return b.addBinary(backends.OpTypeLogicalOr, lhs, rhs)
}

// LogicalXor adds the elementwise LogicalXor of lhs and rhs (scalar and size-1 broadcasting).
func (b *Builder) LogicalXor(lhs, rhs backends.Op) (backends.Op, error) {
	return b.addBinary(backends.OpTypeLogicalXor, lhs, rhs)
}

// BitwiseAnd adds the elementwise BitwiseAnd of lhs and rhs (scalar and size-1 broadcasting).
func (b *Builder) BitwiseAnd(lhs, rhs backends.Op) (backends.Op, error) {
	return b.addBinary(backends.OpTypeBitwiseAnd, lhs, rhs)
}

// BitwiseOr adds the elementwise BitwiseOr of lhs and rhs (scalar and size-1 broadcasting).
func (b *Builder) BitwiseOr(lhs, rhs backends.Op) (backends.Op, error) {
	return b.addBinary(backends.OpTypeBitwiseOr, lhs, rhs)
}

// BitwiseXor adds the elementwise BitwiseXor of lhs and rhs (scalar and size-1 broadcasting).
func (b *Builder) BitwiseXor(lhs, rhs backends.Op) (backends.Op, error) {
	return b.addBinary(backends.OpTypeBitwiseXor, lhs, rhs)
}

// ShiftLeft adds the elementwise ShiftLeft of lhs by rhs bits.
func (b *Builder) ShiftLeft(lhs, rhs backends.Op) (backends.Op, error) {
	return b.addShift(backends.OpTypeShiftLeft, lhs, rhs)
}

// ShiftRightArithmetic adds the elementwise ShiftRightArithmetic of lhs by rhs bits.
func (b *Builder) ShiftRightArithmetic(lhs, rhs backends.Op) (backends.Op, error) {
	return b.addShift(backends.OpTypeShiftRightArithmetic, lhs, rhs)
}

// ShiftRightLogical adds the elementwise ShiftRightLogical of lhs by rhs bits.
func (b *Builder) ShiftRightLogical(lhs, rhs backends.Op) (backends.Op, error) {
	return b.addShift(backends.OpTypeShiftRightLogical, lhs, rhs)
}

// Equal adds the elementwise comparison Equal of lhs and rhs, giving booleans.
func (b *Builder) Equal(lhs, rhs backends.Op) (backends.Op, error) {
	return b.addCompare(backends.OpTypeEqual, lhs, rhs)
}

// NotEqual adds the elementwise comparison NotEqual of lhs and rhs, giving booleans.
func (b *Builder) NotEqual(lhs, rhs backends.Op) (backends.Op, error) {
	return b.addCompare(backends.OpTypeNotEqual, lhs, rhs)
}

// GreaterOrEqual adds the elementwise comparison GreaterOrEqual of lhs and rhs, giving booleans.
func (b *Builder) GreaterOrEqual(lhs, rhs backends.Op) (backends.Op, error) {
	return b.addCompare(backends.OpTypeGreaterOrEqual, lhs, rhs)
}

// GreaterThan adds the elementwise comparison GreaterThan of lhs and rhs, giving booleans.
func (b *Builder) GreaterThan(lhs, rhs backends.Op) (backends.Op, error) {
	return b.addCompare(backends.OpTypeGreaterThan, lhs, rhs)
}

// LessOrEqual adds the elementwise comparison LessOrEqual of lhs and rhs, giving booleans.
func (b *Builder) LessOrEqual(lhs, rhs backends.Op) (backends.Op, error) {
	return b.addCompare(backends.OpTypeLessOrEqual, lhs, rhs)
}

// LessThan adds the elementwise comparison LessThan of lhs and rhs, giving booleans.
func (b *Builder) LessThan(lhs, rhs backends.Op) (backends.Op, error) {
	return b.addCompare(backends.OpTypeLessThan, lhs, rhs)
}

// EqualTotalOrder adds the elementwise comparison EqualTotalOrder of lhs and rhs, giving booleans.
func (b *Builder) EqualTotalOrder(lhs, rhs backends.Op) (backends.Op, error) {
	return b.addCompare(backends.OpTypeEqualTotalOrder, lhs, rhs)
}

// NotEqualTotalOrder adds the elementwise comparison NotEqualTotalOrder of lhs and rhs, giving booleans.
func (b *Builder) NotEqualTotalOrder(lhs, rhs backends.Op) (backends.Op, error) {
	return b.addCompare(backends.OpTypeNotEqualTotalOrder, lhs, rhs)
}

// GreaterOrEqualTotalOrder adds the elementwise comparison GreaterOrEqualTotalOrder of lhs and rhs, giving booleans.
func (b *Builder) GreaterOrEqualTotalOrder(lhs, rhs backends.Op) (backends.Op, error) {
	return b.addCompare(backends.OpTypeGreaterOrEqualTotalOrder, lhs, rhs)
}

// GreaterThanTotalOrder adds the elementwise comparison GreaterThanTotalOrder of lhs and rhs, giving booleans.
func (b *Builder) GreaterThanTotalOrder(lhs, rhs backends.Op) (backends.Op, error) {
	return b.addCompare(backends.OpTypeGreaterThanTotalOrder, lhs, rhs)
}

// LessOrEqualTotalOrder adds the elementwise comparison LessOrEqualTotalOrder of lhs and rhs, giving booleans.
func (b *Builder) LessOrEqualTotalOrder(lhs, rhs backends.Op) (backends.Op, error) {
	return b.addCompare(backends.OpTypeLessOrEqualTotalOrder, lhs, rhs)
}

// LessThanTotalOrder adds the elementwise comparison LessThanTotalOrder of lhs and rhs, giving booleans.
func (b *Builder) LessThanTotalOrder(lhs, rhs backends.Op) (backends.Op, error) {
	return b.addCompare(backends.OpTypeLessThanTotalOrder, lhs, rhs)
}
