//go:build linux || darwin

package backend

// This file holds the only C code of the package: dlopen, and reading the
// PJRT C API version a plugin reports before anything else of it runs. It is
// used by the probe process (see probe.go) and, after a successful probe, to
// preload the NVIDIA libraries of a CUDA plugin in this process.

/*
#cgo linux LDFLAGS: -ldl
#include <dlfcn.h>
#include <stdlib.h>
#include <stddef.h>

// The first fields of PJRT_Api and PJRT_Api_Version (xla/pjrt/c/pjrt_c_api.h).
// They are the same in every version of the PJRT C API, so that a client can
// read the version before using anything else.
typedef struct {
	size_t struct_size;
	void* extension_start;
	int major_version;
	int minor_version;
} sgt_pjrt_api_version;

typedef struct {
	size_t struct_size;
	void* extension_start;
	sgt_pjrt_api_version pjrt_api_version;
} sgt_pjrt_api_head;

typedef const sgt_pjrt_api_head* (*sgt_get_pjrt_api)(void);

// sgt_dlopen opens a shared library; on failure it returns NULL and sets *err
// to dlerror's message (owned by libdl, copy it at once).
static void* sgt_dlopen(const char* path, int global, const char** err) {
	dlerror();
	void* h = dlopen(path, RTLD_NOW | (global ? RTLD_GLOBAL : RTLD_LOCAL));
	if (h == NULL) {
		*err = dlerror();
	}
	return h;
}

// sgt_pjrt_version calls the library's GetPjrtApi and reads the head of the
// table it returns. It returns 0 on success, 1 when the symbol is missing
// (*err is set), 2 when GetPjrtApi returned NULL.
static int sgt_pjrt_version(void* handle, size_t* size, int* major, int* minor, const char** err) {
	dlerror();
	void* sym = dlsym(handle, "GetPjrtApi");
	const char* e = dlerror();
	if (sym == NULL || e != NULL) {
		*err = e;
		return 1;
	}
	const sgt_pjrt_api_head* api = ((sgt_get_pjrt_api)sym)();
	if (api == NULL) {
		return 2;
	}
	*size = api->struct_size;
	*major = api->pjrt_api_version.major_version;
	*minor = api->pjrt_api_version.minor_version;
	return 0;
}
*/
import "C"

import (
	"errors"
	"fmt"
	"unsafe"
)

// errNoPJRTSymbol is returned by readPJRTVersion for a shared library that
// does not export GetPjrtApi: not a PJRT plugin.
var errNoPJRTSymbol = errors.New("it does not export GetPjrtApi, so it is not a PJRT plugin")

// dlopen loads the shared library at path (RTLD_NOW, and RTLD_GLOBAL if
// global) and returns an opaque handle. The library stays loaded: handles
// are never closed, since unloading a CUDA library is never safe.
func dlopen(path string, global bool) (unsafe.Pointer, error) {
	cPath := C.CString(path)
	defer C.free(unsafe.Pointer(cPath))
	g := C.int(0)
	if global {
		g = 1
	}
	var cErr *C.char
	h := C.sgt_dlopen(cPath, g, &cErr)
	if h == nil {
		msg := "unknown error"
		if cErr != nil {
			msg = C.GoString(cErr)
		}
		return nil, fmt.Errorf("dlopen: %s", msg)
	}
	return h, nil
}

// readPJRTVersion loads a plugin and reads the PJRT C API version it
// reports (and the size of its API table) without initialising it.
func readPJRTVersion(path string) (structSize, major, minor int, err error) {
	h, err := dlopen(path, false)
	if err != nil {
		return 0, 0, 0, err
	}
	var size C.size_t
	var ma, mi C.int
	var cErr *C.char
	switch C.sgt_pjrt_version(h, &size, &ma, &mi, &cErr) {
	case 0:
		return int(size), int(ma), int(mi), nil
	case 1:
		msg := ""
		if cErr != nil {
			msg = " (" + C.GoString(cErr) + ")"
		}
		return 0, 0, 0, fmt.Errorf("%w%s", errNoPJRTSymbol, msg)
	default:
		return 0, 0, 0, errors.New("its GetPjrtApi returned no API table")
	}
}
