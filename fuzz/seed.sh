#!/usr/bin/env bash
# Rebuilds fuzz/corpus/TARGET/ (the committed seed corpora) from the test
# fixtures and examples: one file per distinct input, named by its SHA-1
# as libFuzzer names what it finds. Rerun after fixtures change.
set -euo pipefail
cd "$(dirname "$0")"
fx=../tests/fixtures
rm -rf corpus
seed() { # TARGET FILE...
    local target=$1; shift
    mkdir -p "corpus/$target"
    for f in "$@"; do
        cp "$f" "corpus/$target/$(sha1sum <"$f" | cut -c1-40)"
    done
}
mapfile -t releases < <(find "$fx/apt" -name Release -o -name InRelease)
seed deb822 "${releases[@]}" $(find "$fx/apt" -name '*.dsc')
seed apt_index $(find "$fx/apt" -name Packages -o -name Sources)
seed rpm_xml $(find "$fx/rpm" -name repomd.xml)
for f in $(find "$fx/rpm" -name '*primary.xml.gz' -o -name '*filelists.xml.gz' -o -name '*other.xml.gz'); do
    tmp=$(mktemp); gzip -dc "$f" >"$tmp"; seed rpm_xml "$tmp"; rm -f "$tmp"
done
seed rpm_header $(find "$fx/rpm" -name '*.rpm')
seed deb $(find "$fx/apt" -name '*.deb' -o -name '*.udeb')
seed result_tar $(find "$fx/testreq" -name '*.tar')
seed yaml ../examples/*.yaml
# Definitions as depot's store writes them (mirror, repo, guard) and a
# settings file.
mkdir -p corpus/yaml
while IFS= read -r -d '' doc; do
    printf '%s' "$doc" >"corpus/yaml/$(printf '%s' "$doc" | sha1sum | cut -c1-40)"
done < <(printf '%s\0' \
  $'name: deb\nurl: http://127.0.0.1:8080/debian\nkind: apt\nsuite: stable\ncomponents: [main]\narchs: [amd64]\nfilter: Priority (required)\nwith_deps: true\n' \
  $'name: local\nkind: rpm\n' \
  $'name: dev\nkind: token\ntokens:\n- sha256: 0000000000000000000000000000000000000000000000000000000000000000\n' \
  $'concurrency: 4\ncompress: [gz, xz]\nsigner: ABCD\nbroker: amqp://guest:guest@127.0.0.1:5672/%2f\nresults: file:///tmp/results\n')
# The query language has no fixture files: these are the README's examples.
mkdir -p corpus/query
for q in 'Priority (required)' 'nginx | nginx-common' 'Name (% libc6*), $Architecture (amd64)' \
         'foo (>= 1.0), !bar' '$Source (glibc) | Section (libs)' 'python3 {amd64}' \
         'Name (~ ^lib.*)' '$Version (<< 2.0)' '(a | b), !(c {i386})'; do
    printf '%s' "$q" >"corpus/query/$(printf '%s' "$q" | sha1sum | cut -c1-40)"
done
# Request heads for serve_request: PATH, Authorization, Range (one a line).
mkdir -p corpus/serve_request
while IFS= read -r -d '' req; do
    printf '%s' "$req" >"corpus/serve_request/$(printf '%s' "$req" | sha1sum | cut -c1-40)"
done < <(printf '%s\0' \
  $'/bookworm/dev/dists/bookworm/InRelease\nBearer s3cret\nbytes=0-99' \
  $'/bookworm/20261122T020012Z/pool/main/a/alpha/alpha_1.0-1_amd64.deb\nBasic dTpzM2NyZXQ=\nbytes=-500' \
  $'/bookworm/release/%2e%2e/%2e%2e/etc/passwd\n\nbytes=100-' \
  $'/d/dev//pool/../x%2fy\nBearer \nbytes=5-1,7-9' \
  $'/ceph/main/0123456789abcdef0123456789abcdef01234567/ubuntu/jammy/amd64/flavors/default/\nBearer up\nbytes=0-0')
# Swift listings for swift_listing: MARKER, PREFIX, then the page.
mkdir -p corpus/swift_listing
while IFS= read -r -d '' listing; do
    printf '%s' "$listing" >"corpus/swift_listing/$(printf '%s' "$listing" | sha1sum | cut -c1-40)"
done < <(printf '%s\0' \
  $'\nnoble/amd64/h/hello/\nnoble/amd64/h/hello/20261122_020012_ab12c@\nnoble/amd64/h/hello/20261123_020012_cd34e@\n' \
  $'noble/amd64/h/hello/20261122_020012_ab12c@\nnoble/amd64/h/hello/\nnoble/amd64/h/hello/20261122_020012_ab12c@\nnoble/amd64/h/hello/20261123_020012_cd34e@\n' \
  $'\nnoble/\nnoble/b@\nnoble/a@\n\n  noble/c@  \nother/d@\nnoble/e')
du -sh corpus/*
