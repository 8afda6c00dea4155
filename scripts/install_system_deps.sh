#!/usr/bin/env bash
# Debian packages the corpus builder needs: espeak-ng (German source speech) and the FreeDict
# German<->English dictionaries (their example sentences are the parallel text), and Ding
# (trans-de-en: the --extra-pairs training sentences and phrases); Chromium, the real browser the
# server's page is tested in, and nginx, the balancer two servers are tested behind.
set -euo pipefail
packages=(espeak-ng dict-freedict-deu-eng dict-freedict-eng-deu trans-de-en chromium nginx-light)
case "${1:-}" in
  "") ;;
  -h|--help) echo "usage: $0   installs (as root) or names the missing Debian packages: ${packages[*]}"
             exit 0 ;;
  *) echo "$0: takes no arguments (--help)" >&2; exit 2 ;;
esac
missing=()
for package in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q "install ok installed" || missing+=("$package")
done
[ ${#missing[@]} -eq 0 ] && exit 0
if [ "$(id -u)" -eq 0 ]; then
  echo "Installing Debian packages: ${missing[*]}"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}"
else
  echo "Missing Debian packages. Run as root:" >&2
  echo "  sudo apt-get update && sudo apt-get install -y ${missing[*]}" >&2
  exit 1
fi
