package train

import (
	"errors"
	"fmt"
	"io"

	"github.com/sgt-dev/sgt/rundir"
)

// measure makes the end-of-epoch measurements: the test set, the training
// subset, the filter norms (recorded in filter_norms.csv at the end of
// every epoch when so configured) and the zeroed-out filters and features.
// A non-finite evaluation loss stops the run before anything of the epoch
// is recorded.
func (t *trainer) measure(epoch int) (rundir.EpochMetrics, error) {
	m := rundir.Unmeasured()
	m.Epoch = epoch
	test, err := t.evaluate(t.test, "test")
	if err != nil {
		return m, err
	}
	where := fmt.Sprintf("epoch %d evaluation", epoch)
	if !finite(test.loss) {
		return m, t.diverged(where, "the test loss", test.loss)
	}
	m.TestLoss, m.TestAcc, m.LogitNorm = test.loss, test.acc, test.logitNorm
	if t.top5 {
		m.TestTop5 = test.top5
	}
	if test.featureAbs != nil {
		m.Features = len(test.featureAbs)
		for _, s := range test.featureAbs {
			if s/float64(test.n) < t.cfg.ZeroThreshold {
				m.ZeroedFeatures++
			}
		}
	}
	if t.trainEval != nil {
		tr, err := t.evaluate(t.trainEval, "training-set")
		if err != nil {
			return m, err
		}
		if !finite(tr.loss) {
			return m, t.diverged(where, "the training-set evaluation loss", tr.loss)
		}
		m.TrainEvalLoss, m.TrainEvalAcc = tr.loss, tr.acc
		m.Gap = tr.acc - test.acc
	}
	layers, err := convFilterNorms(t.ctx)
	if err != nil {
		return m, err
	}
	m.ZeroedFilters, m.Filters = countBelow(layers, t.cfg.ZeroThreshold)
	if t.cfg.FilterNormsEvery == FilterNormsEpoch {
		if err := t.recordFilterNorms(layers); err != nil {
			return m, err
		}
	}
	return m, nil
}

// evalResult is what an evaluation pass measured.
type evalResult struct {
	// n is the number of examples.
	n int
	// loss is the mean loss, acc the top-1 and top5 the top-5 accuracy,
	// logitNorm the mean L2 norm of the logit vectors.
	loss, acc, top5, logitNorm float64
	// featureAbs holds the summed absolute activation of each feature (nil
	// when the model does not expose its features).
	featureAbs []float64
}

// evaluate runs the split in inference mode, without augmentation; what
// names it in errors.
func (t *trainer) evaluate(s *split, what string) (*evalResult, error) {
	l, err := s.evalLoader(t.evalBatchSize())
	if err != nil {
		return nil, err
	}
	defer func() { _ = l.Close() }()
	r := &evalResult{}
	var sums [evalFeatureAbs]float64
	for {
		images, labels, err := s.nextBatch(l, what+" evaluation")
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return nil, err
		}
		n := images.Shape().Dimensions[0]
		err = graphResult(fmt.Sprintf("evaluating %s examples %d-%d", what, r.n, r.n+n-1), func() error {
			defer func() { _, _ = images.FinalizeAll(), labels.FinalizeAll() }()
			out, err := t.evalExec.Exec(images, labels)
			if err != nil {
				return err
			}
			for i := range sums {
				v, err := scalar(out[i])
				if err != nil {
					return err
				}
				sums[i] += v
			}
			if len(out) > evalFeatureAbs {
				r.featureAbs, err = accumulate(r.featureAbs, out[evalFeatureAbs])
			}
			return err
		})
		if err != nil {
			return nil, err
		}
		r.n += n
	}
	if r.n != s.n {
		return nil, fmt.Errorf("%s evaluation saw %d of its %d examples", what, r.n, s.n)
	}
	nf := float64(r.n)
	r.loss, r.acc, r.top5, r.logitNorm = sums[evalLossSum]/nf, sums[evalCorrect]/nf, sums[evalTop5]/nf, sums[evalLogitNorm]/nf
	return r, nil
}
