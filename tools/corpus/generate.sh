#!/usr/bin/env bash
# Regenerates engine/testdata/runtime_corpus/ from real runtimes (not part of the
# test run; its output is committed). Needs python3 with babel, phonenumbers,
# isodate and humanize (pip), node, a JDK, go, perl and php-cli (Debian).
#   pip install babel phonenumbers isodate humanize
#   apt-get install --no-install-recommends golang-go php-cli
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
out="$here/../../engine/testdata/runtime_corpus"
export TZ=America/New_York LC_ALL=C.UTF-8
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
{
  python3 "$here/python_values.py" "$here/instants.txt"
  node "$here/node_values.js" "$here/instants.txt"
  javac -d "$work" "$here/JavaValues.java" && java -cp "$work" JavaValues "$here/instants.txt"
  (cd "$work" && GOCACHE="$work/gocache" go run "$here/go_values.go" "$here/instants.txt")
  perl "$here/perl_values.pl" "$here/instants.txt"
  php "$here/php_values.php" "$here/instants.txt"
  python3 "$here/cldr_amounts.py"
  python3 "$here/phone_examples.py"
} > "$work/printed.tsv"
python3 "$here/build.py" "$out" < "$work/printed.tsv"
python3 "$here/currency_symbols.py" "$here/../../engine/src/mapping/coerce/currency_symbols.tsv"
{
  echo "# Versions that printed the corpus"
  python3 -c 'import sys, babel, phonenumbers; print("python", sys.version.split()[0], "babel", babel.__version__, "(CLDR", babel.core.get_cldr_version() if hasattr(babel.core, "get_cldr_version") else "?", ") phonenumbers", phonenumbers.__version__)'
  echo "node $(node --version) icu $(node -p process.versions.icu)"
  java -version 2>&1 | head -1
  go version
  perl -e 'print "perl $^V\n"'
  php --version | head -1
} > "$out/VERSIONS"
wc -l "$out"/*.tsv
