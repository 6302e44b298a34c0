package train

import (
	"errors"
	"testing"

	"github.com/sgt-dev/sgt/backend"
	"github.com/sgt-dev/sgt/models"
)

// TestSmallStem checks that --small-stem reaches the model: a ResNet-18 on
// one-channel 28x28 images loses exactly the difference between the 7x7 and
// the 3x3 stem kernels (64 filters), and models without the option refuse it.
func TestSmallStem(t *testing.T) {
	b, _, err := backend.New("cpu")
	if err != nil {
		t.Fatal(err)
	}
	defer b.Finalize()
	spec, err := models.Get("resnet18")
	if err != nil {
		t.Fatal(err)
	}
	dims := []int{2, 28, 28, 1}
	bigNeed, err := probeModel(b, spec, dims, 10, (&Config{}).modelParams())
	if err != nil {
		t.Fatal(err)
	}
	smallNeed, err := probeModel(b, spec, dims, 10, (&Config{SmallStem: true}).modelParams())
	if err != nil {
		t.Fatal(err)
	}
	big, small := int(bigNeed.params/4), int(smallNeed.params/4)
	t.Logf("resnet18 on 28x28x1: %d parameters, %d with the small stem", big, small)
	if want := (7*7 - 3*3) * 1 * 64; big-small != want {
		t.Errorf("parameters with the 7x7 stem %d, with the small stem %d: difference %d, want %d", big, small, big-small, want)
	}

	cfg := DefaultConfig()
	cfg.Model = "mlp"
	cfg.SmallStem = true
	var fe *FieldError
	if err := cfg.Validate(); !errors.As(err, &fe) || fe.Field != "small-stem" {
		t.Errorf("Validate with --small-stem on the MLP = %v, want an error for the small-stem flag", err)
	}
}
