package ca

import (
	"encoding/pem"
)

// pemDecode returns the bytes of the first PEM block of type typ, or nil.
func pemDecode(data []byte, typ string) []byte {
	for {
		var b *pem.Block
		b, data = pem.Decode(data)
		if b == nil {
			return nil
		}
		if b.Type == typ {
			return b.Bytes
		}
	}
}
