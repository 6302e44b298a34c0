package cpu

import (
	"fmt"
	"sync"
	"sync/atomic"

	"github.com/gomlx/gomlx/backends"
	"github.com/gomlx/gomlx/pkg/core/dtypes"
	"github.com/gomlx/gomlx/pkg/core/shapes"
)

// Buffer is the backend's tensor storage: a shape and a flat Go slice of the
// shape's dtype, row-major.
type Buffer struct {
	shape shapes.Shape
	flat  any
	// shared buffers were handed to the user by NewSharedBuffer; their memory
	// is never recycled into the pool.
	shared bool
	// invalid is set once the buffer was finalized or donated.
	invalid atomic.Bool
}

var _ backends.DataInterface = (*Backend)(nil)

type poolKey struct {
	dtype dtypes.DType
	n     int
}

// getFlat returns a typed slice of n elements, recycled from the pool when
// possible. Its contents are unspecified.
func (b *Backend) getFlat(dt dtypes.DType, n int) any {
	if p, ok := b.pools.Load(poolKey{dt, n}); ok {
		if v := p.(*sync.Pool).Get(); v != nil {
			return v
		}
	}
	return makeSlice(dt, n)
}

// putFlat returns a flat slice to the pool.
func (b *Backend) putFlat(dt dtypes.DType, flat any) {
	if b.finalized.Load() || flat == nil {
		return
	}
	_, n, err := flatDType(flat)
	if err != nil || n == 0 {
		return
	}
	p, _ := b.pools.LoadOrStore(poolKey{dt, n}, &sync.Pool{})
	p.(*sync.Pool).Put(flat)
}

// newBuffer returns a buffer of the given shape with unspecified contents.
func (b *Backend) newBuffer(shape shapes.Shape) *Buffer {
	return &Buffer{shape: shape.Clone(), flat: b.getFlat(shape.DType, shape.Size())}
}

// toBuffer checks that buf is a valid buffer of this backend.
func toBuffer(buf backends.Buffer, what string) (*Buffer, error) {
	bb, ok := buf.(*Buffer)
	if !ok || bb == nil {
		return nil, fmt.Errorf("cpu backend: %s: buffer %T is not a cpu backend buffer", what, buf)
	}
	if bb.invalid.Load() {
		return nil, fmt.Errorf("cpu backend: %s: buffer was already finalized or donated", what)
	}
	return bb, nil
}

// BufferFinalize releases a buffer; it must not be used again.
func (b *Backend) BufferFinalize(buffer backends.Buffer) error {
	bb, err := toBuffer(buffer, "BufferFinalize")
	if err != nil {
		return err
	}
	if bb.invalid.Swap(true) {
		return fmt.Errorf("cpu backend: BufferFinalize: buffer already finalized")
	}
	if !bb.shared {
		b.putFlat(bb.shape.DType, bb.flat)
	}
	bb.flat = nil
	return nil
}

// BufferShape returns the buffer's shape.
func (b *Backend) BufferShape(buffer backends.Buffer) (shapes.Shape, error) {
	bb, err := toBuffer(buffer, "BufferShape")
	if err != nil {
		return shapes.Invalid(), err
	}
	return bb.shape, nil
}

// BufferDeviceNum returns 0, the only device.
func (b *Backend) BufferDeviceNum(buffer backends.Buffer) (backends.DeviceNum, error) {
	if _, err := toBuffer(buffer, "BufferDeviceNum"); err != nil {
		return 0, err
	}
	return 0, nil
}

// BufferToFlatData copies the buffer's values into flat, a slice of the
// buffer's dtype and exact size.
func (b *Backend) BufferToFlatData(buffer backends.Buffer, flat any) error {
	bb, err := toBuffer(buffer, "BufferToFlatData")
	if err != nil {
		return err
	}
	dt, n, err := flatDType(flat)
	if err != nil {
		return fmt.Errorf("cpu backend: BufferToFlatData: %w", err)
	}
	if dt != bb.shape.DType || n != bb.shape.Size() {
		return fmt.Errorf("cpu backend: BufferToFlatData: destination is [%d]%s, buffer is %s", n, dt, bb.shape)
	}
	copyFlat(flat, bb.flat)
	return nil
}

// BufferFromFlatData copies flat into a new buffer of the given shape.
func (b *Backend) BufferFromFlatData(deviceNum backends.DeviceNum, flat any, shape shapes.Shape) (backends.Buffer, error) {
	if err := b.checkDevice(deviceNum, "BufferFromFlatData"); err != nil {
		return nil, err
	}
	dt, n, err := flatDType(flat)
	if err != nil {
		return nil, fmt.Errorf("cpu backend: BufferFromFlatData: %w", err)
	}
	if dt != shape.DType || n != shape.Size() {
		return nil, fmt.Errorf("cpu backend: BufferFromFlatData: flat data is [%d]%s, shape is %s", n, dt, shape)
	}
	buf := b.newBuffer(shape)
	copyFlat(buf.flat, flat)
	return buf, nil
}

func (b *Backend) checkDevice(deviceNum backends.DeviceNum, what string) error {
	if b.finalized.Load() {
		return fmt.Errorf("cpu backend: %s: backend is finalized", what)
	}
	if deviceNum != 0 {
		return fmt.Errorf("cpu backend: %s: invalid device %d (only device 0 exists)", what, deviceNum)
	}
	return nil
}

// HasSharedBuffers returns true: buffers live in Go memory and can be shared
// with the caller without copies.
func (b *Backend) HasSharedBuffers() bool { return true }

// NewSharedBuffer returns a new buffer and its flat storage, which the caller
// may read and write directly while no execution uses the buffer.
func (b *Backend) NewSharedBuffer(deviceNum backends.DeviceNum, shape shapes.Shape) (backends.Buffer, any, error) {
	if err := b.checkDevice(deviceNum, "NewSharedBuffer"); err != nil {
		return nil, nil, err
	}
	if !isSupportedDType(shape.DType) {
		return nil, nil, fmt.Errorf("cpu backend: NewSharedBuffer: unsupported dtype in shape %s", shape)
	}
	buf := &Buffer{shape: shape.Clone(), flat: makeSlice(shape.DType, shape.Size()), shared: true}
	return buf, buf.flat, nil
}

// BufferData returns the buffer's flat storage itself (zero-copy).
func (b *Backend) BufferData(buffer backends.Buffer) (any, error) {
	bb, err := toBuffer(buffer, "BufferData")
	if err != nil {
		return nil, err
	}
	return bb.flat, nil
}

// BufferCopyToDevice always fails: there is only one device.
func (b *Backend) BufferCopyToDevice(source backends.Buffer, deviceNum backends.DeviceNum) (backends.Buffer, error) {
	return nil, fmt.Errorf("cpu backend: BufferCopyToDevice: only one device exists, cannot copy to device %d", deviceNum)
}
