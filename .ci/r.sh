# Install Debian's R with survival and cmprsk, if missing, for the test that reruns
# tests/golden/make_golden.R (tests/test_finegray.py skips it when `Rscript` is absent).
# Only Debian's packages: nothing is fetched from CRAN.
#   source .ci/r.sh && ensure_r

_r_has_packages() {
  command -v Rscript >/dev/null 2>&1 &&
    Rscript -e 'quit(status = !all(c("survival", "cmprsk") %in% rownames(installed.packages())))' >/dev/null 2>&1
}

ensure_r() {
  if ! _r_has_packages; then
    echo "installing R, survival and cmprsk from Debian packages"
    local sudo=()
    if [ "$(id -u)" != 0 ]; then sudo=(sudo); fi
    "${sudo[@]}" apt-get update -qq
    "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
      r-base-core r-cran-survival r-cran-cmprsk >/dev/null
  fi
  if ! _r_has_packages; then
    echo "R with survival and cmprsk is still missing after installing them from Debian packages" >&2
    return 1
  fi
  Rscript --version 2>&1 | head -n 1
}
