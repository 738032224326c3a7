# Sourced by the entry scripts: checks and installs what the build needs. Every step is
# idempotent, so running an entry script twice costs only the checks.

# What `ktstr kernel build` runs (keep in step with BUILD_PACKAGES in adapters/kernel-cache).
KERNEL_BUILD_PACKAGES="make gcc flex bison bc libelf-dev libssl-dev dwarves cpio zstd lz4 xz-utils binutils"

# What the guest side builds and boots with: BPF via clang, libbpf's C deps, QEMU.
GUEST_PACKAGES="clang-19 llvm-19 libelf-dev zlib1g-dev pkg-config qemu-system-x86"
# The own VMM's ACPI tables are checked by disassembling them.
VMM_TEST_PACKAGES="acpica-tools"

# The Rust toolchain cannot be fetched by a script here; say what is missing instead.
ensure_toolchain() {
    local missing=()
    command -v cargo >/dev/null || missing+=("cargo (install Rust with rustup)")
    cargo fmt --version >/dev/null 2>&1 || missing+=("rustfmt (rustup component add rustfmt)")
    cargo clippy --version >/dev/null 2>&1 || missing+=("clippy (rustup component add clippy)")
    command -v cc >/dev/null || missing+=("a C compiler (apt-get install build-essential)")
    if [ ${#missing[@]} -gt 0 ]; then
        printf 'missing: %s\n' "${missing[@]}" >&2
        exit 1
    fi
}

# Installs the named Debian packages that are not installed yet.
ensure_apt() {
    local need=()
    for pkg in "$@"; do
        dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || need+=("$pkg")
    done
    [ ${#need[@]} -eq 0 ] && return 0
    local sudo=""
    [ "$(id -u)" -eq 0 ] || sudo="sudo"
    echo "installing: ${need[*]}"
    $sudo apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "${need[@]}"
}

# cargo-fuzz, built once into ktstr's cache (outside the repository), on the nightly
# toolchain the machine already has. Prints the directory to put on PATH.
CARGO_FUZZ_VERSION="0.13.2"
ensure_cargo_fuzz() {
    if ! rustup run nightly rustc --version >/dev/null 2>&1; then
        echo "missing: the nightly Rust toolchain (cargo fuzz needs it: rustup toolchain install nightly)" >&2
        exit 1
    fi
    local root="${KTSTR_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/ktstr}/tools/cargo-fuzz-$CARGO_FUZZ_VERSION"
    if [ ! -x "$root/bin/cargo-fuzz" ]; then
        echo "installing cargo-fuzz $CARGO_FUZZ_VERSION into $root" >&2
        cargo install --quiet --locked --version "$CARGO_FUZZ_VERSION" --root "$root" cargo-fuzz >&2
    fi
    echo "$root/bin"
}
