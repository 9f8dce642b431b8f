//! Link settings of the `sluice` binary.

fn main() {
    let gnu_linux = std::env::var("CARGO_CFG_TARGET_OS").is_ok_and(|os| os == "linux")
        && std::env::var("CARGO_CFG_TARGET_ENV").is_ok_and(|env| env == "gnu");
    if gnu_linux {
        // Packed relative relocations (DT_RELR, glibc 2.36 and binutils 2.38 or later): the dynamic
        // loader reads a few kilobytes of relocations at start instead of a 1.6 MB table, every page
        // of which stayed in a worker's resident set.
        println!("cargo:rustc-link-arg-bins=-Wl,-z,pack-relative-relocs");
    }
}
