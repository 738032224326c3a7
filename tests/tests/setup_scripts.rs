//! The set-up scripts install what the code needs.

use ktstr_kernel_cache::build::BUILD_PACKAGES;

#[test]
fn the_test_script_installs_every_kernel_build_package() {
    let setup = include_str!("../../scripts/setup.sh");
    let line = setup
        .lines()
        .find_map(|l| l.strip_prefix("KERNEL_BUILD_PACKAGES="))
        .expect("setup.sh defines KERNEL_BUILD_PACKAGES");
    assert_eq!(line.trim_matches('"'), BUILD_PACKAGES);
}
