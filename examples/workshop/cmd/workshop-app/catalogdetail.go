package main

import "net/http"

// vendorDetails is what catalogdetail answers at GET /catalogDetail.
type vendorDetails struct {
	Version string   `json:"version"`
	Vendors []string `json:"vendors"`
	Caller  string   `json:"caller"`
}

// newCatalogDetail returns the catalogdetail service: the vendor details that
// productcatalog merges into its product list.
func newCatalogDetail() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /ping", pingHandler("catalogdetail"))
	mux.HandleFunc("GET /catalogDetail", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, http.StatusOK, vendorDetails{
			Version: "1",
			Vendors: []string{"ABC.com", "XYZ.com"},
			Caller:  caller(r),
		})
	})
	return mux
}
