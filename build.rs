//! Build script of the `warden` package: builds the guest programs and packs the default
//! guest image.
//!
//! Design (see shared/notes/guest-build.md): the guest programs live in the separate cargo
//! workspace `guest-apps/`, whose `.cargo/config.toml` carries the guest link flags. This
//! script runs `$CARGO build --release` there with its own `--target-dir` under `OUT_DIR` and
//! with every inherited variable that would override that config removed (`RUSTFLAGS`,
//! `CARGO_ENCODED_RUSTFLAGS`, `CARGO_TARGET_*`, `CARGO_BUILD_*`, `RUSTC_WORKSPACE_WRAPPER`).
//! The child's stderr is inherited, so a failed guest build shows its errors; its stdout goes
//! to stderr too, because cargo reads this script's stdout for `cargo:` directives.
//!
//! Outputs:
//! - `OUT_DIR/default-image.tar`: a plain (ustar) tar with `bin/<program>` (0755) for every
//!   `guest-apps/apps/src/bin/*.rs` (except that `t_NAME` goes to `bin/tests/NAME`: the test
//!   programs `warden test /bin/tests` runs), `etc/rc` and an empty `tmp/` (1777); owner 0,
//!   mtime 0 and a sorted entry order, so the image is byte-for-byte reproducible.
//! - `WARDEN_GUEST_BIN_DIR`: the directory of the built guest binaries (for tests).
//! - `WARDEN_GUEST_PROGRAMS`: the program names, comma-separated.

use std::env;
use std::ffi::OsString;
use std::fs::{self, File};
use std::io::{self, BufWriter, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode};

/// The target every guest is built for (also pinned in guest-apps/.cargo/config.toml).
const GUEST_TARGET: &str = "x86_64-unknown-linux-gnu";

fn main() -> ExitCode {
    match run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("error: {message}");
            ExitCode::FAILURE
        }
    }
}

fn run() -> Result<(), String> {
    let manifest_dir = PathBuf::from(env_var("CARGO_MANIFEST_DIR")?);
    let out_dir = PathBuf::from(env_var("OUT_DIR")?);
    let guest_dir = manifest_dir.join("guest-apps");

    for path in [
        "build.rs",
        "guest-apps/Cargo.toml",
        "guest-apps/Cargo.lock",
        "guest-apps/.cargo/config.toml",
        "guest-apps/runtime",
        "guest-apps/apps",
        "guest-apps/etc",
        "guest-kernel/abi/Cargo.toml",
        "guest-kernel/abi/src",
    ] {
        println!("cargo:rerun-if-changed={path}");
    }

    let target_dir = out_dir.join("guest-target");
    build_guests(&guest_dir, &target_dir)?;

    let bin_dir = target_dir.join(GUEST_TARGET).join("release");
    let programs = program_names(&guest_dir.join("apps/src/bin"))?;
    let image = out_dir.join("default-image.tar");
    pack_image(&image, &bin_dir, &programs, &guest_dir.join("etc/rc"))
        .map_err(|e| format!("writing {}: {e}", image.display()))?;

    println!("cargo:rustc-env=WARDEN_GUEST_BIN_DIR={}", bin_dir.display());
    println!("cargo:rustc-env=WARDEN_GUEST_PROGRAMS={}", programs.join(","));
    Ok(())
}

fn env_var(key: &str) -> Result<OsString, String> {
    env::var_os(key).ok_or_else(|| format!("{key} is not set (not run by cargo?)"))
}

/// Runs `cargo build --release` in the guest workspace.
fn build_guests(guest_dir: &Path, target_dir: &Path) -> Result<(), String> {
    let cargo = env::var_os("CARGO").unwrap_or_else(|| OsString::from("cargo"));
    let mut cmd = Command::new(&cargo);
    cmd.current_dir(guest_dir)
        .args(["build", "--release", "--target", GUEST_TARGET, "--target-dir"])
        .arg(target_dir)
        .stdout(io::stderr());
    for (key, _) in env::vars_os() {
        let name = key.to_string_lossy();
        if name == "RUSTFLAGS"
            || name == "CARGO_ENCODED_RUSTFLAGS"
            || name == "RUSTC_WORKSPACE_WRAPPER"
            || name.starts_with("CARGO_TARGET_")
            || name.starts_with("CARGO_BUILD_")
        {
            cmd.env_remove(&key);
        }
    }
    let status = cmd.status().map_err(|e| format!("cannot run {}: {e}", cargo.to_string_lossy()))?;
    if !status.success() {
        return Err(format!(
            "building the guest programs in {} failed ({status}); the errors are above",
            guest_dir.display()
        ));
    }
    Ok(())
}

/// The guest program names: the stems of `apps/src/bin/*.rs`, sorted.
fn program_names(bin_src: &Path) -> Result<Vec<String>, String> {
    let entries = fs::read_dir(bin_src).map_err(|e| format!("reading {}: {e}", bin_src.display()))?;
    let mut names = Vec::new();
    for entry in entries {
        let path = entry.map_err(|e| format!("reading {}: {e}", bin_src.display()))?.path();
        if path.extension().is_some_and(|ext| ext == "rs") {
            if let Some(stem) = path.file_stem().and_then(|s| s.to_str()) {
                names.push(stem.to_string());
            }
        }
    }
    names.sort();
    if names.is_empty() {
        return Err(format!("no guest programs in {}", bin_src.display()));
    }
    Ok(names)
}

/// Writes the image to a temporary file and renames it into place.
fn pack_image(image: &Path, bin_dir: &Path, programs: &[String], rc: &Path) -> io::Result<()> {
    let partial = image.with_extension("tar.partial");
    let mut builder = tar::Builder::new(BufWriter::new(File::create(&partial)?));
    add_dir(&mut builder, "bin/", 0o755)?;
    add_dir(&mut builder, "bin/tests/", 0o755)?;
    for name in programs {
        let path = bin_dir.join(name);
        let data =
            fs::read(&path).map_err(|e| io::Error::new(e.kind(), format!("guest binary {}: {e}", path.display())))?;
        let guest_path = match name.strip_prefix("t_") {
            Some(test) => format!("bin/tests/{test}"),
            None => format!("bin/{name}"),
        };
        add_file(&mut builder, &guest_path, 0o755, &data)?;
    }
    add_dir(&mut builder, "etc/", 0o755)?;
    let rc_data = fs::read(rc).map_err(|e| io::Error::new(e.kind(), format!("{}: {e}", rc.display())))?;
    add_file(&mut builder, "etc/rc", 0o644, &rc_data)?;
    add_dir(&mut builder, "tmp/", 0o1777)?;
    let mut out = builder.into_inner()?;
    out.flush()?;
    drop(out);
    fs::rename(&partial, image)
}

fn header(path: &str, mode: u32, size: u64, kind: tar::EntryType) -> io::Result<tar::Header> {
    let mut header = tar::Header::new_ustar();
    header.set_path(path)?;
    header.set_entry_type(kind);
    header.set_mode(mode);
    header.set_size(size);
    header.set_uid(0);
    header.set_gid(0);
    header.set_mtime(0);
    header.set_username("root")?;
    header.set_groupname("root")?;
    header.set_cksum();
    Ok(header)
}

fn add_dir<W: Write>(builder: &mut tar::Builder<W>, path: &str, mode: u32) -> io::Result<()> {
    let header = header(path, mode, 0, tar::EntryType::Directory)?;
    builder.append(&header, io::empty())
}

fn add_file<W: Write>(builder: &mut tar::Builder<W>, path: &str, mode: u32, data: &[u8]) -> io::Result<()> {
    let header = header(path, mode, data.len() as u64, tar::EntryType::Regular)?;
    builder.append(&header, data)
}
