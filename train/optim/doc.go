// Package optim holds sgt's optimizer as small composable gradient
// transforms (weight decay, global-norm and adaptive gradient clipping,
// momentum, the learning-rate step), chained like optax's transforms and
// applied to GoMLX context variables while a train step graph is built, and
// the learning-rate schedules, computed on the host and fed to the step as a
// scalar.
package optim
