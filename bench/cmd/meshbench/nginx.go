package main

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
)

// startNginx runs two nginx processes in HTTP mode: the client side
// parses the plain HTTP it is sent and originates mTLS to the server side
// on pooled keep-alive upstream connections (proxy_ssl_verify on the
// server's certificate), the server side terminates mTLS with a client
// certificate required (ssl_verify_client on) and forwards to the
// backend. Each side is one process (master_process off), so the CPU and
// RSS metered on its pid are all of it; one nginx worker is one thread,
// as many as the machine's two cores allow per side. Debian's nginx-light has no stream module, so nginx carries
// HTTP only: its raw TCP row stays unmeasured.
func startNginx(e *env, pc *peerCerts, be *backendAddrs) (*pair, error) {
	dir := filepath.Join(e.work, "nginx")
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, err
	}
	p := &pair{Name: "nginx", HTTP: freeAddr()}
	srv := freeAddr()
	common := func(name string) string {
		d := filepath.Join(dir, name)
		_ = os.MkdirAll(d, 0o700)
		return fmt.Sprintf(`daemon off;
master_process off;
pid %[1]s/nginx.pid;
error_log %[1]s/error.log warn;
events { worker_connections 8192; }
http {
  access_log off;
  client_body_temp_path %[1]s/body;
  proxy_temp_path %[1]s/proxy;
  fastcgi_temp_path %[1]s/fastcgi;
  uwsgi_temp_path %[1]s/uwsgi;
  scgi_temp_path %[1]s/scgi;
  keepalive_timeout 300s;
  keepalive_requests 1000000;
`, d)
	}
	server := common("server") + fmt.Sprintf(`  upstream app {
    server %[2]s;
    keepalive 256;
  }
  server {
    listen %[1]s ssl;
    ssl_certificate %[3]s;
    ssl_certificate_key %[4]s;
    ssl_client_certificate %[5]s;
    ssl_verify_client on;
    ssl_protocols TLSv1.2 TLSv1.3;
    location / {
      proxy_pass http://app;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
      proxy_set_header Host $http_host;
    }
  }
}
`, srv, be.HTTP, pc.ServerCert, pc.ServerKey, pc.CA)
	client := common("client") + fmt.Sprintf(`  upstream mesh {
    server %[2]s;
    keepalive 256;
  }
  server {
    listen %[1]s;
    location / {
      proxy_pass https://mesh;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
      proxy_set_header Host $http_host;
      proxy_ssl_certificate %[3]s;
      proxy_ssl_certificate_key %[4]s;
      proxy_ssl_trusted_certificate %[5]s;
      proxy_ssl_verify on;
      proxy_ssl_name localhost;
      proxy_ssl_session_reuse on;
      proxy_ssl_protocols TLSv1.2 TLSv1.3;
    }
  }
}
`, p.HTTP, srv, pc.ClientCert, pc.ClientKey, pc.CA)
	for name, cfg := range map[string]string{"server": server, "client": client} {
		if err := os.WriteFile(filepath.Join(dir, name+".conf"), []byte(cfg), 0o600); err != nil {
			return nil, err
		}
	}
	var err error
	if p.server, err = start("nginx-server", dir, nil, e.nginx, "-p", filepath.Join(dir, "server"), "-c", filepath.Join(dir, "server.conf")); err != nil {
		return nil, err
	}
	if p.client, err = start("nginx-client", dir, nil, e.nginx, "-p", filepath.Join(dir, "client"), "-c", filepath.Join(dir, "client.conf")); err != nil {
		p.server.stop()
		return nil, err
	}
	return p, waitPair(p)
}

// nginxVersion is "nginx 1.22.1" from `nginx -v` (which prints to
// standard error).
func nginxVersion(bin string) string {
	out, err := exec.Command(bin, "-v").CombinedOutput()
	if err != nil {
		return "version unknown"
	}
	_, v, ok := strings.Cut(strings.TrimSpace(string(out)), "nginx/")
	if !ok {
		return "version unknown"
	}
	v, _, _ = strings.Cut(v, " ")
	return "nginx " + v
}
