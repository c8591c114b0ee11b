#!/bin/sh
# istio-cacerts.sh DIR [pkcs1|pkcs8] [INTERMEDIATE_BITS]
#
# Makes an Istio plug-in CA directory in DIR the way Istio's
# tools/certs/Makefile.selfsigned.mk (with common.mk's root-ca.conf and
# intermediate.conf) does it, with the openssl CLI only: an RSA 4096 root,
# an RSA intermediate (pathlen:0, DNS SAN istiod.istio-system.svc) and
# ca-cert.pem, ca-key.pem, root-cert.pem and cert-chain.pem (intermediate
# then root) in DIR. The root's key stays in DIR/root/, as an operator
# would keep it off the cluster. ca-key.pem is PKCS#1 ("RSA PRIVATE
# KEY") or PKCS#8 ("PRIVATE KEY", what OpenSSL 3's genrsa writes).
set -eu
dir=$1
format=${2:-pkcs8}
bits=${3:-4096}
mkdir -p "$dir/root"
cd "$dir"

cat > root/root-ca.conf <<CONF
[ req ]
encrypt_key = no
prompt = no
utf8 = yes
default_md = sha256
default_bits = 4096
req_extensions = req_ext
x509_extensions = req_ext
distinguished_name = req_dn
[ req_ext ]
subjectKeyIdentifier = hash
basicConstraints = critical, CA:true
keyUsage = critical, digitalSignature, nonRepudiation, keyEncipherment, keyCertSign
[ req_dn ]
O = Istio
CN = Root CA
CONF

cat > intermediate.conf <<CONF
[ req ]
encrypt_key = no
prompt = no
utf8 = yes
default_md = sha256
default_bits = $bits
req_extensions = req_ext
x509_extensions = req_ext
distinguished_name = req_dn
[ req_ext ]
subjectKeyIdentifier = hash
basicConstraints = critical, CA:true, pathlen:0
keyUsage = critical, digitalSignature, nonRepudiation, keyEncipherment, keyCertSign
subjectAltName=@san
[ san ]
DNS.1 = istiod.istio-system.svc
[ req_dn ]
O = Istio
CN = Intermediate CA
L = cluster1
CONF

# root-ca: root-key.pem root-cert.pem
openssl genrsa -out root/root-key.pem 4096 2>/dev/null
openssl req -new -key root/root-key.pem -config root/root-ca.conf -out root/root-cert.csr
openssl x509 -req -days 3650 -signkey root/root-key.pem \
	-extensions req_ext -extfile root/root-ca.conf \
	-in root/root-cert.csr -out root-cert.pem 2>/dev/null

# cluster1-cacerts: ca-key.pem, ca-cert.pem, cert-chain.pem, root-cert.pem
case $format in
pkcs1) openssl genrsa -traditional -out ca-key.pem "$bits" 2>/dev/null ;;
pkcs8) openssl genrsa -out ca-key.pem "$bits" 2>/dev/null ;;
*) echo "istio-cacerts.sh: key format $format: want pkcs1 or pkcs8" >&2; exit 2 ;;
esac
openssl req -new -config intermediate.conf -key ca-key.pem -out cluster-ca.csr
openssl x509 -req -days 730 \
	-CA root-cert.pem -CAkey root/root-key.pem -CAcreateserial -CAserial root/root-cert.srl \
	-extensions req_ext -extfile intermediate.conf \
	-in cluster-ca.csr -out ca-cert.pem 2>/dev/null
cat ca-cert.pem root-cert.pem > cert-chain.pem
