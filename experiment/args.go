package experiment

import (
	"fmt"
	"strings"
)

// Flag is one command-line flag of a trial: --Name=Value, or the bare --Name
// of a boolean flag given without a value (Bare is then true).
type Flag struct {
	// Name is the flag's name without leading dashes.
	Name string
	// Value is the flag's value as written (empty for a bare boolean flag).
	Value string
	// Bare is true for a boolean flag written without a value.
	Bare bool
}

// Arg returns the flag as one command-line word, "--name=value" (or
// "--name" when bare). The "=" form is unambiguous for boolean flags and
// negative numbers.
func (f Flag) Arg() string {
	if f.Bare {
		return "--" + f.Name
	}
	return "--" + f.Name + "=" + f.Value
}

// FlagKinds tells the argument parser what it cannot see in the words alone.
// Either function may be nil.
type FlagKinds struct {
	// IsBool reports whether the named flag is a boolean flag: written bare it
	// takes no value, so the next word is not its value.
	IsBool func(name string) bool
	// IsList reports whether the named flag's own value is a comma-separated
	// list (e.g. learning-rate milestones "100,150"). A grid never splits such
	// a value on commas; its alternatives are separated by ";" instead.
	IsList func(name string) bool
}

func (k FlagKinds) isBool(name string) (known, isBool bool) {
	if k.IsBool == nil {
		return false, false
	}
	return true, k.IsBool(name)
}

func (k FlagKinds) isList(name string) bool {
	return k.IsList != nil && k.IsList(name)
}

// ParseFlags splits command-line words into flags. It accepts "-name",
// "--name", "--name=value" and "--name value". A flag known to be boolean
// (kinds.IsBool) never takes the following word as its value; when the kind
// is unknown, a flag followed by nothing or by another flag ("-x", "--x",
// but not a negative number such as "-0.5") is taken as a bare boolean.
// Positional words are an error, as is "--" alone.
func ParseFlags(args []string, kinds FlagKinds) ([]Flag, error) {
	var flags []Flag
	for i := 0; i < len(args); i++ {
		word := args[i]
		if !isFlagWord(word) {
			return nil, fmt.Errorf("unexpected argument %q: expected a flag such as --alpha=0.3", word)
		}
		body := strings.TrimPrefix(strings.TrimPrefix(word, "-"), "-")
		if body == "" || strings.HasPrefix(body, "-") || strings.HasPrefix(body, "=") {
			return nil, fmt.Errorf("bad flag syntax %q", word)
		}
		if name, value, ok := strings.Cut(body, "="); ok {
			flags = append(flags, Flag{Name: name, Value: value})
			continue
		}
		known, isBool := kinds.isBool(body)
		next := i + 1
		switch {
		case known && isBool, !known && (next >= len(args) || isFlagWord(args[next])):
			flags = append(flags, Flag{Name: body, Bare: true})
		case next >= len(args):
			return nil, fmt.Errorf("flag needs an argument: %s", word)
		default:
			flags = append(flags, Flag{Name: body, Value: args[next]})
			i = next
		}
	}
	return flags, nil
}

// isFlagWord reports whether word looks like a flag: it starts with "-"
// followed by something that is not a digit or a dot (so "-0.5" is a value).
func isFlagWord(word string) bool {
	if len(word) < 2 || word[0] != '-' {
		return false
	}
	c := word[1]
	if c == '-' {
		return true
	}
	return !(c >= '0' && c <= '9') && c != '.'
}

// FlagArgs turns flags back into command-line words (see Flag.Arg).
func FlagArgs(flags []Flag) []string {
	out := make([]string, len(flags))
	for i, f := range flags {
		out[i] = f.Arg()
	}
	return out
}

// SplitValues splits a grid flag value into its alternatives: on "," (or on
// ";" for list-valued flags). A backslash escapes the separator ("\,"
// keeps a literal comma) and itself ("\\"). Empty alternatives are an error.
func SplitValues(value string, listValued bool) ([]string, error) {
	sep := byte(',')
	if listValued {
		sep = ';'
	}
	var (
		out []string
		cur strings.Builder
	)
	for i := 0; i < len(value); i++ {
		c := value[i]
		switch {
		case c == '\\' && i+1 < len(value) && (value[i+1] == sep || value[i+1] == '\\'):
			cur.WriteByte(value[i+1])
			i++
		case c == sep:
			out = append(out, cur.String())
			cur.Reset()
		default:
			cur.WriteByte(c)
		}
	}
	out = append(out, cur.String())
	for _, v := range out {
		if strings.TrimSpace(v) == "" {
			return nil, fmt.Errorf("value list %q has an empty entry", value)
		}
	}
	return out, nil
}
