package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"unicode/utf8"
)

// product is one entry of the catalog.
type product struct {
	ID   string `json:"id"`
	Name string `json:"name"`
}

// productList is what productcatalog answers at GET /products/: the products
// with the vendor details from catalogdetail merged in. When catalogdetail
// cannot be reached (or the mesh denies the call), Details is nil and
// DetailsError says why, so the effect of a policy is visible.
type productList struct {
	Products     []product      `json:"products"`
	Details      *vendorDetails `json:"details"`
	DetailsError string         `json:"detailsError,omitempty"`
	Caller       string         `json:"caller"`
}

// productBody answers GET and POST /products/<id>.
type productBody struct {
	product
	Caller string `json:"caller"`
}

// Limits on what a client may add.
const (
	maxProducts = 1000
	maxNameLen  = 100
	maxBodySize = 4 << 10
)

// productIDPattern matches the ids the workshop's OPA policy allows
// (^/products/\d+$).
var productIDPattern = regexp.MustCompile(`^[0-9]{1,9}$`)

// catalog is the in-memory product store.
type catalog struct {
	mu       sync.Mutex
	products map[string]string // id -> name
}

func (c *catalog) list() []product {
	c.mu.Lock()
	out := make([]product, 0, len(c.products))
	for id, name := range c.products {
		out = append(out, product{ID: id, Name: name})
	}
	c.mu.Unlock()
	slices.SortFunc(out, func(a, b product) int {
		x, _ := strconv.Atoi(a.ID)
		y, _ := strconv.Atoi(b.ID)
		return x - y
	})
	return out
}

func (c *catalog) get(id string) (string, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	name, ok := c.products[id]
	return name, ok
}

// put stores a product; it reports whether the product is new.
func (c *catalog) put(id, name string) (created bool, err error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	_, exists := c.products[id]
	if !exists && len(c.products) >= maxProducts {
		return false, fmt.Errorf("catalog is full (%d products)", maxProducts)
	}
	c.products[id] = name
	return !exists, nil
}

// productCatalog is the productcatalog service.
type productCatalog struct {
	client     *http.Client
	detailsURL string // base URL of catalogdetail
	log        *slog.Logger
	store      *catalog
}

// newProductCatalog returns the productcatalog service, seeded with two
// products; it fetches vendor details from catalogdetail at detailsURL.
func newProductCatalog(client *http.Client, detailsURL string, log *slog.Logger) http.Handler {
	pc := &productCatalog{
		client:     client,
		detailsURL: strings.TrimSuffix(detailsURL, "/"),
		log:        log,
		store:      &catalog{products: map[string]string{"1": "Table", "2": "Chair"}},
	}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /ping", pingHandler("productcatalog"))
	mux.HandleFunc("GET /products/{$}", pc.handleList)
	mux.HandleFunc("GET /products/{id}", pc.handleGet)
	mux.HandleFunc("POST /products/{id}", pc.handlePost)
	return mux
}

func (pc *productCatalog) handleList(w http.ResponseWriter, r *http.Request) {
	out := productList{Products: pc.store.list(), Caller: caller(r)}
	details, err := pc.fetchDetails(r.Context(), r.Header)
	if err != nil {
		pc.log.Warn("fetch vendor details", "err", err)
		out.DetailsError = err.Error()
	} else {
		out.Details = details
	}
	writeJSON(w, http.StatusOK, out)
}

func (pc *productCatalog) handleGet(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("id")
	name, ok := pc.store.get(id)
	if !ok {
		writeError(w, r, http.StatusNotFound, fmt.Sprintf("product %q not found", id))
		return
	}
	writeJSON(w, http.StatusOK, productBody{product: product{ID: id, Name: name}, Caller: caller(r)})
}

// handlePost adds or replaces the product <id>; the body is {"name": "..."}.
func (pc *productCatalog) handlePost(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("id")
	if !productIDPattern.MatchString(id) {
		writeError(w, r, http.StatusBadRequest, "product id must be a number")
		return
	}
	var body struct {
		Name string `json:"name"`
	}
	dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, maxBodySize))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&body); err != nil {
		writeError(w, r, http.StatusBadRequest, "body must be JSON {\"name\": \"...\"}")
		return
	}
	if err := validName(body.Name); err != nil {
		writeError(w, r, http.StatusBadRequest, err.Error())
		return
	}
	created, err := pc.store.put(id, body.Name)
	if err != nil {
		writeError(w, r, http.StatusInsufficientStorage, err.Error())
		return
	}
	status := http.StatusOK
	if created {
		status = http.StatusCreated
	}
	pc.log.Info("product stored", "id", id, "created", created, "caller", caller(r))
	writeJSON(w, status, productBody{product: product{ID: id, Name: body.Name}, Caller: caller(r)})
}

// validName checks a product name a client sent.
func validName(name string) error {
	switch {
	case strings.TrimSpace(name) == "":
		return errors.New("product name is empty")
	case !utf8.ValidString(name) || utf8.RuneCountInString(name) > maxNameLen:
		return fmt.Errorf("product name must be valid text of at most %d characters", maxNameLen)
	}
	return nil
}

// fetchDetails calls catalogdetail through the mesh.
func (pc *productCatalog) fetchDetails(ctx context.Context, in http.Header) (*vendorDetails, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, pc.detailsURL+"/catalogDetail", nil)
	if err != nil {
		return nil, fmt.Errorf("catalogdetail: %w", err)
	}
	propagate(req.Header, in)
	resp, err := pc.client.Do(req)
	if err != nil {
		return nil, fmt.Errorf("catalogdetail: %w", err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	if err != nil {
		return nil, fmt.Errorf("catalogdetail: read: %w", err)
	}
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("catalogdetail: %s: %s", resp.Status, strings.TrimSpace(string(body)))
	}
	var d vendorDetails
	if err := json.Unmarshal(body, &d); err != nil {
		return nil, fmt.Errorf("catalogdetail: decode: %w", err)
	}
	return &d, nil
}
