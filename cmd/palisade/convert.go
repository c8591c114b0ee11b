package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"

	"palisade.dev/palisade/internal/config"
	"palisade.dev/palisade/internal/convert"
)

// runConvert implements `palisade convert [--root-namespace NS] [FILE...]`:
// it reads legacy v1alpha1 authentication and RBAC resources (from the
// files, or stdin when none are given) and writes PeerAuthentication,
// RequestAuthentication and AuthorizationPolicy as multi-document YAML on
// stdout. Input errors exit 2.
func runConvert(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("convert", flag.ContinueOnError)
	fs.SetOutput(stderr)
	root := fs.String("root-namespace", config.DefaultRootNamespace, "the mesh's root namespace, where mesh-wide policies go")
	fs.Usage = func() {
		fmt.Fprintln(stderr, "usage: palisade convert [--root-namespace NS] [FILE...]")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return nil
		}
		return exitError{code: 2, err: fmt.Errorf("convert: %w", err)}
	}
	var rs []*config.Resource
	var errs []error
	read := func(name string, data []byte) {
		got, err := config.Decode(name, data)
		if err != nil {
			errs = append(errs, err)
		}
		rs = append(rs, got...)
	}
	if fs.NArg() == 0 {
		data, err := io.ReadAll(os.Stdin)
		if err != nil {
			return fmt.Errorf("convert: read stdin: %w", err)
		}
		read("<stdin>", data)
	}
	for _, f := range fs.Args() {
		if err := ctx.Err(); err != nil {
			return err
		}
		data, err := os.ReadFile(f)
		if err != nil {
			errs = append(errs, fmt.Errorf("convert: %w", err))
			continue
		}
		read(f, data)
	}
	if err := errors.Join(errs...); err != nil {
		return exitError{code: 2, err: err}
	}
	out, err := convert.Convert(rs, *root).Marshal()
	if err != nil {
		return err
	}
	if _, err := stdout.Write(out); err != nil {
		return fmt.Errorf("convert: write: %w", err)
	}
	return nil
}
