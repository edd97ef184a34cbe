#!/bin/sh
# Reproduces the pre-signed test zones nsec.example.zone, nsec3.example.zone and
# their signed children kid.nsec.example.zone and kid.nsec3.example.zone from
# their *.unsigned sources with ldns-signzone (Debian package ldnsutils).
#
# The keys in keys/ are test-only ED25519 keys, committed so that this script
# gives byte-identical output (ED25519 signatures are deterministic and the
# inception/expiration times are fixed). Run it from anywhere after editing a
# *.unsigned file; with no keys/ it makes new keys first.
set -eu
cd "$(dirname "$0")"
command -v ldns-signzone >/dev/null || { echo "sign.sh: needs ldns-signzone (apt-get install ldnsutils)" >&2; exit 1; }

inception=20240101000000
expiration=20360101000000
mkdir -p keys

key_for() { # zone -> key base name in keys/, made on first use
	base=$(ls keys/K"$1"+015+*.private 2>/dev/null | head -n 1)
	if [ -z "$base" ]; then
		(cd keys && ldns-keygen -a ED25519 -k "$1" >/dev/null)
		base=$(ls keys/K"$1"+015+*.private | head -n 1)
	fi
	echo "${base%.private}"
}

# NSEC
for z in nsec.example. kid.nsec.example.; do
	ldns-signzone -i $inception -e $expiration -o $z \
		-f ${z}zone ${z}unsigned "$(key_for $z)"
done

# NSEC3: SHA-1, 0 extra iterations, empty salt, no opt-out (RFC 9276)
for z in nsec3.example. kid.nsec3.example.; do
	ldns-signzone -n -a 1 -t 0 -s '' -i $inception -e $expiration -o $z \
		-f ${z}zone ${z}unsigned "$(key_for $z)"
done
