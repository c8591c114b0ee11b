package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"html/template"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"strings"
)

// frontend is the frontend service: it renders the product list that
// productcatalog returns and adds products through it.
type frontend struct {
	client     *http.Client
	catalogURL string // base URL of productcatalog
	log        *slog.Logger
}

// newFrontend returns the frontend service; it calls productcatalog at
// catalogURL.
func newFrontend(client *http.Client, catalogURL string, log *slog.Logger) http.Handler {
	f := &frontend{client: client, catalogURL: strings.TrimSuffix(catalogURL, "/"), log: log}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /ping", pingHandler("frontend"))
	mux.HandleFunc("GET /{$}", f.handleIndex)
	mux.HandleFunc("POST /products", f.handleAdd)
	return mux
}

// pageData is what the index page shows.
type pageData struct {
	List   *productList
	Error  string
	Caller string // who called frontend
}

func (f *frontend) handleIndex(w http.ResponseWriter, r *http.Request) {
	data := pageData{Caller: caller(r)}
	status := http.StatusOK
	list, err := f.fetchProducts(r.Context(), r.Header)
	if err != nil {
		f.log.Warn("fetch products", "err", err)
		data.Error = err.Error()
		status = http.StatusBadGateway
	} else {
		data.List = list
	}
	var buf bytes.Buffer
	if err := indexPage.Execute(&buf, data); err != nil {
		f.log.Error("render index", "err", err)
		http.Error(w, "internal error", http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.WriteHeader(status)
	_, _ = w.Write(buf.Bytes())
}

// handleAdd takes the form fields id and name, stores the product in
// productcatalog and sends the browser back to the list.
func (f *frontend) handleAdd(w http.ResponseWriter, r *http.Request) {
	r.Body = http.MaxBytesReader(w, r.Body, maxBodySize)
	if err := r.ParseForm(); err != nil {
		http.Error(w, "bad form", http.StatusBadRequest)
		return
	}
	id, name := strings.TrimSpace(r.PostForm.Get("id")), strings.TrimSpace(r.PostForm.Get("name"))
	if !productIDPattern.MatchString(id) {
		http.Error(w, "product id must be a number", http.StatusBadRequest)
		return
	}
	if err := validName(name); err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	if err := f.addProduct(r.Context(), r.Header, id, name); err != nil {
		f.log.Warn("add product", "id", id, "err", err)
		http.Error(w, err.Error(), http.StatusBadGateway)
		return
	}
	http.Redirect(w, r, "/", http.StatusSeeOther)
}

func (f *frontend) fetchProducts(ctx context.Context, in http.Header) (*productList, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, f.catalogURL+"/products/", nil)
	if err != nil {
		return nil, fmt.Errorf("productcatalog: %w", err)
	}
	var list productList
	if err := f.do(req, in, &list); err != nil {
		return nil, err
	}
	return &list, nil
}

func (f *frontend) addProduct(ctx context.Context, in http.Header, id, name string) error {
	body, err := json.Marshal(map[string]string{"name": name})
	if err != nil {
		return fmt.Errorf("productcatalog: %w", err)
	}
	u := f.catalogURL + "/products/" + url.PathEscape(id)
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, u, bytes.NewReader(body))
	if err != nil {
		return fmt.Errorf("productcatalog: %w", err)
	}
	req.Header.Set("Content-Type", "application/json")
	return f.do(req, in, nil)
}

// do sends req to productcatalog and decodes a 2xx JSON answer into out.
func (f *frontend) do(req *http.Request, in http.Header, out any) error {
	propagate(req.Header, in)
	resp, err := f.client.Do(req)
	if err != nil {
		return fmt.Errorf("productcatalog: %w", err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return fmt.Errorf("productcatalog: read: %w", err)
	}
	if resp.StatusCode/100 != 2 {
		return fmt.Errorf("productcatalog: %s: %s", resp.Status, strings.TrimSpace(string(body)))
	}
	if out == nil {
		return nil
	}
	if err := json.Unmarshal(body, out); err != nil {
		return fmt.Errorf("productcatalog: decode: %w", err)
	}
	return nil
}

var indexPage = template.Must(template.New("index").Funcs(template.FuncMap{
	"who": func(id string) string {
		if id == "" {
			return "no mesh identity (plaintext)"
		}
		return id
	},
}).Parse(`<!DOCTYPE html>
<html lang="en">
<head><meta charset="utf-8"><title>Product catalog</title>
<style>
body { font-family: sans-serif; margin: 2em auto; max-width: 48em; }
table { border-collapse: collapse; } td, th { border: 1px solid #ccc; padding: .3em .8em; }
.error { color: #a00; } footer { margin-top: 2em; font-size: .9em; color: #555; }
code { background: #f4f4f4; }
</style></head>
<body>
<h1>Product catalog</h1>
{{if .Error}}<p class="error">Could not load products: {{.Error}}</p>{{end}}
{{with .List}}
<table>
<tr><th>ID</th><th>Name</th></tr>
{{range .Products}}<tr><td>{{.ID}}</td><td>{{.Name}}</td></tr>
{{else}}<tr><td colspan="2">No products yet.</td></tr>
{{end}}
</table>
<h2>Vendors</h2>
{{with .Details}}<p>Catalog version {{.Version}}: {{range $i, $v := .Vendors}}{{if $i}}, {{end}}{{$v}}{{end}}</p>
{{else}}<p class="error">Vendor details unavailable: {{.DetailsError}}</p>{{end}}
{{end}}
<h2>Add a product</h2>
<form method="post" action="/products">
<label>ID <input name="id" required pattern="[0-9]+" size="6"></label>
<label>Name <input name="name" required maxlength="100"></label>
<button type="submit">Add</button>
</form>
<footer>
<p>frontend was called by: <code>{{who .Caller}}</code></p>
{{with .List}}<p>productcatalog was called by: <code>{{who .Caller}}</code></p>
{{with .Details}}<p>catalogdetail was called by: <code>{{who .Caller}}</code></p>{{end}}{{end}}
</footer>
</body>
</html>
`))
