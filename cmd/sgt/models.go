package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"slices"
	"strconv"
	"text/tabwriter"

	"github.com/sgt-dev/sgt/backend"
	"github.com/sgt-dev/sgt/models"
)

func init() {
	register("models", "list the models, which are the paper's, and their parameter counts", runModels)
}

// modelInfo is one entry of "sgt models --json".
type modelInfo struct {
	Name        string `json:"name"`
	Description string `json:"description"`
	// Origin is "paper" for the models the paper uses, built as the
	// authors' code builds them, and "extension" for the others.
	Origin string `json:"origin"`
	// Paper says where the paper uses the model (empty for extensions).
	Paper      string `json:"paper,omitempty"`
	Parameters int    `json:"parameters"`
	InputShape []int  `json:"input_shape"`
	BatchNorm  bool   `json:"batch_norm"`
	SmallStem  bool   `json:"small_stem_option"`
}

// runModels implements "sgt models": the registered models, whether each is
// the paper's or an extension, their descriptions and their parameter counts
// for --classes classes and their usual input shape.
func runModels(_ context.Context, args []string, _ io.Reader, stdout, stderr io.Writer) error {
	fs := newFlagSet("models", stderr)
	classes := fs.Int("classes", 10, "number of classes the parameter counts are for")
	asJSON := fs.Bool("json", false, "print a JSON object instead of a table")
	if err := parseFlags(fs, args, false); err != nil {
		return err
	}
	if *classes < 1 {
		return usagef("--classes must be >= 1, got %d", *classes)
	}
	// Counting only builds graphs (nothing runs), so the pure-Go backend,
	// always available, is enough.
	b, _, err := backend.New("go")
	if err != nil {
		return fmt.Errorf("creating a backend to build the models: %w", err)
	}
	defer b.Finalize()
	names := models.Names()
	slices.SortFunc(names, naturalCompare)
	var infos []modelInfo
	for _, name := range names {
		spec, err := models.Get(name)
		if err != nil {
			return err
		}
		n, err := models.CountParameters(b, name, nil, *classes, nil)
		if err != nil {
			return fmt.Errorf("counting parameters: %w", err)
		}
		origin := "extension"
		if spec.Paper != "" {
			origin = "paper"
		}
		infos = append(infos, modelInfo{
			Name: name, Description: spec.Description, Origin: origin, Paper: spec.Paper, Parameters: n,
			InputShape: spec.InputShape, BatchNorm: spec.BatchNorm, SmallStem: spec.SmallStem,
		})
	}
	if *asJSON {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		return enc.Encode(struct {
			Classes int         `json:"classes"`
			Models  []modelInfo `json:"models"`
		}{*classes, infos})
	}
	tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintf(tw, "MODEL\tORIGIN\tPARAMETERS\tINPUT\tDESCRIPTION\n")
	for _, m := range infos {
		fmt.Fprintf(tw, "%s\t%s\t%d\t%dx%dx%d\t%s\n", m.Name, m.Origin, m.Parameters, m.InputShape[0], m.InputShape[1], m.InputShape[2], m.Description)
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	fmt.Fprintf(stdout, "\nParameter counts are for %d classes and the input shown (HxWxC); every model accepts other sizes.\n", *classes)
	fmt.Fprintln(stdout, "ORIGIN paper: used in the paper and built as the authors' code builds it; extension: not used in the paper.")
	for _, m := range infos {
		if m.Paper != "" {
			fmt.Fprintf(stdout, "  %s: %s\n", m.Name, m.Paper)
		}
	}
	return nil
}

// naturalCompare orders strings with their runs of digits compared as
// numbers, so that resnet18 < resnet20 < resnet110.
func naturalCompare(a, b string) int {
	for a != "" && b != "" {
		da, db := digitPrefix(a), digitPrefix(b)
		if da > 0 && db > 0 {
			na, _ := strconv.Atoi(a[:da])
			nb, _ := strconv.Atoi(b[:db])
			if na != nb {
				return na - nb
			}
			a, b = a[da:], b[db:]
			continue
		}
		if a[0] != b[0] {
			return int(a[0]) - int(b[0])
		}
		a, b = a[1:], b[1:]
	}
	return len(a) - len(b)
}

// digitPrefix returns the length of the run of ASCII digits starting s.
func digitPrefix(s string) int {
	n := 0
	for n < len(s) && s[n] >= '0' && s[n] <= '9' {
		n++
	}
	return n
}
