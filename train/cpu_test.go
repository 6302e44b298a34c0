package train

// The convolutional runs train on our CPU backend, registered as "cpu":
// GoMLX's pure-Go backend lacks the convolution gradients.
import _ "github.com/sgt-dev/sgt/backend/cpu"
