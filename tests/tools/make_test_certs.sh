#!/usr/bin/env bash
# Test certificates for the TLS tests (tests/unit/server/security_test.cc,
# client/python/tests/test_auth.py), made with Debian's `openssl` into DIR:
#   ca.pem                 the CA the coordinator's and the workers' certificates chain to
#   server.pem/.key        coordinator certificate for localhost and 127.0.0.1 (signed by ca)
#   client.pem/.key        client certificate, CN=worker-1 (signed by ca; mutual TLS)
#   other-ca.pem           an unrelated CA
#   wrong-server.pem/.key  a coordinator certificate signed by other-ca
#   wrong-client.pem/.key  a client certificate signed by other-ca
#   expired-server.pem/.key  signed by ca, valid only in January 2020
# Usage: make_test_certs.sh DIR
set -euo pipefail
dir=$1
mkdir -p "$dir"
cd "$dir"
key() { openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$1" 2>/dev/null; }
selfsigned_ca() {  # name cn
  key "$1.key"
  openssl req -x509 -new -key "$1.key" -subj "/CN=$2" -days 30 -out "$1.pem" \
    -addext basicConstraints=critical,CA:TRUE -addext keyUsage=critical,keyCertSign,cRLSign
}
printf 'subjectAltName=DNS:localhost,IP:127.0.0.1\nextendedKeyUsage=serverAuth\n' > server.ext
printf 'extendedKeyUsage=clientAuth\n' > client.ext
signed() {  # name cn ca ext
  key "$1.key"
  openssl req -new -key "$1.key" -subj "/CN=$2" -out "$1.csr"
  openssl x509 -req -in "$1.csr" -CA "$3.pem" -CAkey "$3.key" -CAcreateserial -days 30 \
    -extfile "$4" -out "$1.pem" 2>/dev/null
}
selfsigned_ca ca "caldera test CA"
selfsigned_ca other-ca "unrelated CA"
signed server localhost ca server.ext
signed client worker-1 ca client.ext
signed wrong-server localhost other-ca server.ext
signed wrong-client worker-1 other-ca client.ext
# Expired: `openssl ca` can set dates in the past.
mkdir -p ca-db
: > ca-db/index.txt
echo 1000 > ca-db/serial
cat > ca.cnf <<CNF
[ ca ]
default_ca = test_ca
[ test_ca ]
database = ca-db/index.txt
new_certs_dir = ca-db
serial = ca-db/serial
default_md = sha256
policy = any
[ any ]
commonName = supplied
CNF
key expired-server.key
openssl req -new -key expired-server.key -subj "/CN=localhost" -out expired-server.csr
openssl ca -batch -config ca.cnf -cert ca.pem -keyfile ca.key -in expired-server.csr \
  -out expired-server.pem -startdate 20200101000000Z -enddate 20200131000000Z \
  -extfile server.ext -notext 2>/dev/null
