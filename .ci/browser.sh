# Install Debian's Chromium, if it is missing, for the headless-browser report tests
# (tests/test_report_browser.py, which fail under CI when `chromium` is absent).
# Only Debian's package: no browser is downloaded by a tool of its own.
#   source .ci/browser.sh && ensure_chromium

_chromium_bin() {
  command -v chromium 2>/dev/null || true
}

ensure_chromium() {
  if [ -z "$(_chromium_bin)" ]; then
    echo "installing Chromium from Debian packages"
    local sudo=()
    if [ "$(id -u)" != 0 ]; then sudo=(sudo); fi
    "${sudo[@]}" apt-get update -qq
    # Fonts explicitly: without recommends nothing else brings them, and a page without fonts
    # screenshots as blank boxes.
    "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
      chromium fonts-dejavu-core fonts-liberation >/dev/null
  fi
  local bin; bin=$(_chromium_bin)
  if [ -z "$bin" ]; then
    echo "chromium is still missing after installing it from Debian packages" >&2
    return 1
  fi
  # Debian's launcher script prints shell noise on stderr on some machines; the version is what counts.
  echo "$("$bin" --version 2>/dev/null)"
}
