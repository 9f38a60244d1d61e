#!/usr/bin/env bash
# One command from a fresh Debian machine to a signed, apt-consumable
# repository: installs build and runtime dependencies, builds depot, then
# mirrors the committed fixture repository (tests/fixtures/apt/state1),
# snapshots it, publishes it signed with a throwaway key, and lets real
# apt-get read the result. Everything lands in ${DEMO_DIR:-/tmp/depot-demo}.
set -euo pipefail
cd "$(dirname "$0")/.."
repo=$PWD
demo=${DEMO_DIR:-/tmp/depot-demo}

if ! dpkg -s libgpgme-dev gnupg apt-utils pkg-config >/dev/null 2>&1; then
  sudo=; [ "$(id -u)" = 0 ] || sudo=sudo
  $sudo apt-get update -qq
  $sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq libgpgme-dev gnupg apt-utils pkg-config
fi
cargo build --release --quiet
depot() { "$repo/target/release/depot" --root "$demo/root" "$@"; }

rm -rf "$demo"; mkdir -p "$demo/gnupg"; chmod 700 "$demo/gnupg"
export GNUPGHOME=$demo/gnupg
gpg --batch --quiet --pinentry-mode loopback --passphrase '' \
  --quick-gen-key 'depot demo <demo@depot.invalid>' ed25519 sign never
gpg --batch --export demo@depot.invalid > "$demo/publisher.gpg"

fixture=$repo/tests/fixtures/apt
depot mirror create demo "file://$fixture/state1" --kind apt --suite stable \
  --component main --arch amd64 --keyring "$fixture/keys/good.gpg" --with-sources
depot mirror update demo
depot snapshot create demo-snap --mirror demo
depot publish demo-snap --dist demo --sign-key demo@depot.invalid
depot snapshot show demo-snap --packages

# Real apt-get against the published dev stage.
apt=$demo/apt; mkdir -p "$apt/lists/partial" "$apt/archives/partial"
echo "deb [signed-by=$demo/publisher.gpg] file://$demo/root/public/demo/dev stable main" > "$apt/sources.list"
apt-get -q -o Dir::Etc::SourceList="$apt/sources.list" -o Dir::Etc::SourceParts=/dev/null \
  -o Dir::State="$apt" -o Dir::State::Lists="$apt/lists" -o Dir::Cache="$apt" \
  -o Dir::State::status=/dev/null -o Debug::NoLocking=1 -o APT::Sandbox::User=root update
apt-cache -o Dir::State::Lists="$apt/lists" -o Dir::Etc::SourceList="$apt/sources.list" \
  -o Dir::Etc::SourceParts=/dev/null -o Dir::State::status=/dev/null -o Dir::Cache="$apt" policy alpha
gpgconf --kill all
echo "demo done: published tree in $demo/root/public/demo/dev"
