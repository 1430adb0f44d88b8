#!/usr/bin/env bash
# Make sure the system programs the tests use are present: Chromium (the HTML report and email are
# checked in a real browser), poppler's pdftoppm (PDF pages to PNG), PostgreSQL server binaries,
# Java (Spark local mode) and openssl.
# Installs them with apt when running as root; otherwise says what is missing (those tests skip).
set -euo pipefail
missing=()
command -v chromium >/dev/null 2>&1 || missing+=(chromium)
command -v pdftoppm >/dev/null 2>&1 || missing+=(poppler-utils)
fc-list 2>/dev/null | grep -qi "Liberation Sans" || missing+=(fonts-liberation)
if ! command -v pg_ctl >/dev/null 2>&1 && ! ls /usr/lib/postgresql/*/bin/pg_ctl >/dev/null 2>&1; then
  missing+=(postgresql)
fi
# Spark local mode (PySpark 4 needs Java 17 or newer)
java_major() { java -version 2>&1 | sed -nE '1s/.*version "(1\.)?([0-9]+).*/\2/p'; }
if ! command -v java >/dev/null 2>&1; then
  missing+=(default-jre-headless)
elif v=$(java_major); (( ${v:-0} < 17 )); then
  missing+=(openjdk-17-jre-headless)
fi
command -v openssl >/dev/null 2>&1 || missing+=(openssl)              # throwaway TLS certificate (email tests)
if ((${#missing[@]} == 0)); then exit 0; fi
if [[ $(id -u) -eq 0 ]] && command -v apt-get >/dev/null 2>&1; then
  echo "installing system packages for the tests: ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq >/dev/null
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
else
  echo "warning: missing system packages (tests that need them will be skipped): ${missing[*]}" >&2
  echo "         install them with: sudo apt-get install ${missing[*]}" >&2
fi
