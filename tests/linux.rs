//! The Linux personality end to end: unmodified static Linux programs run
//! natively and under `warden run --root / PROG` must print the same bytes on
//! stdout and exit with the same status.
//!
//! Fixtures are C sources in `tests/fixtures/linux/`, built here with the
//! machine's `gcc -static -O2` (glibc: TLS set-up, IRELATIVE relocations,
//! CPUID-driven string functions) and `musl-gcc -static -O2` (Debian's
//! musl-tools); busybox is Debian's busybox-static at `/bin/busybox`. A
//! missing tool skips its tests with a "SKIPPED: ..." line, unless
//! `WARDEN_REQUIRE_TOOLS=1` (set by `.ci/run`, which installs them), where
//! it fails them.
//!
//! Each run gets a fresh empty working directory (warden's writes go to its
//! in-memory layer; the native run's to disk), the environment
//! `PATH=<dir of busybox applet links>:/usr/bin:/bin` only, and no stdin.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::OnceLock;

mod common {
    pub mod cargo;
}

const FIXTURES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/linux");
const BUSYBOX: &str = "/bin/busybox";

fn require_tools() -> bool {
    std::env::var("WARDEN_REQUIRE_TOOLS").is_ok_and(|v| v == "1")
}

/// `true` if `tool` can be used; otherwise prints SKIPPED (or panics when tools are required).
fn have(tool: &str, found: bool) -> bool {
    if !found {
        if require_tools() {
            panic!("{tool} not found but WARDEN_REQUIRE_TOOLS=1");
        }
        eprintln!("SKIPPED: {tool} not found");
    }
    found
}

fn on_path(cmd: &str) -> bool {
    Command::new(cmd).arg("--version").stdout(Stdio::null()).stderr(Stdio::null()).status().is_ok()
}

fn work_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("linux")
}

fn fresh_dir(tag: &str) -> PathBuf {
    static N: AtomicUsize = AtomicUsize::new(0);
    let n = N.fetch_add(1, Ordering::SeqCst);
    let d = work_dir().join("runs").join(format!("{}-{n}-{tag}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

/// Builds fixture `name` with `compiler` ("gcc" or "musl-gcc"); `None` if the compiler is missing.
fn build(name: &str, compiler: &str) -> Option<PathBuf> {
    build_linked(name, compiler, true)
}

/// [`build`], statically linked or not.
fn build_linked(name: &str, compiler: &str, static_link: bool) -> Option<PathBuf> {
    build_as(name, compiler, if static_link { "-static" } else { "" })
}

/// Builds fixture `name` with `compiler` and the link flag `link` ("-static", "-static-pie"
/// or "" for a dynamic program); `None` if the compiler is missing.
fn build_as(name: &str, compiler: &str, link: &str) -> Option<PathBuf> {
    if !have(compiler, on_path(compiler)) {
        return None;
    }
    let out_dir = work_dir().join("bin");
    std::fs::create_dir_all(&out_dir).unwrap();
    let kind = match link {
        "-static" => "",
        "" => ".dyn",
        other => other,
    };
    let out = out_dir.join(format!("{name}.{compiler}{kind}"));
    // Each build once per test process, under a lock: two tests of one fixture running in
    // parallel would otherwise run a file the compiler is still writing.
    static BUILT: std::sync::Mutex<Vec<PathBuf>> = std::sync::Mutex::new(Vec::new());
    let mut built = BUILT.lock().unwrap_or_else(|e| e.into_inner());
    if built.contains(&out) {
        return Some(out);
    }
    let src = Path::new(FIXTURES).join(format!("{name}.c"));
    let status = Command::new(compiler)
        .args((!link.is_empty()).then_some(link))
        .args(["-O2", "-pthread", "-o"])
        .arg(&out)
        .arg(&src)
        .arg("-lm")
        .status()
        .expect("run compiler");
    assert!(status.success(), "{compiler} failed on {}", src.display());
    built.push(out.clone());
    Some(out)
}

/// The five ways the issue builds a fixture: glibc static, static-pie and dynamic, musl
/// static and dynamic. Each must match its native run.
fn check_five_builds(name: &str) {
    let builds = [("gcc", "-static"), ("gcc", "-static-pie"), ("gcc", ""), ("musl-gcc", "-static"), ("musl-gcc", "")];
    let mut failures = Vec::new();
    for (compiler, link) in builds {
        let Some(prog) = build_as(name, compiler, link) else { continue };
        if let Err(e) = compare(&prog, &[]) {
            failures.push(format!("{compiler} {link}: {e}"));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

/// A directory of symlinks `applet -> /bin/busybox`, so both runs find the
/// same (static) programs on PATH.
fn applet_dir() -> Option<&'static Path> {
    static DIR: OnceLock<Option<PathBuf>> = OnceLock::new();
    DIR.get_or_init(|| {
        if !Path::new(BUSYBOX).exists() {
            return None;
        }
        let dir = work_dir().join(format!("applets-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let list = Command::new(BUSYBOX).arg("--list").output().expect("busybox --list");
        for name in String::from_utf8_lossy(&list.stdout).lines() {
            if !name.is_empty() && !name.contains('/') {
                let _ = std::os::unix::fs::symlink(BUSYBOX, dir.join(name));
            }
        }
        Some(dir)
    })
    .as_deref()
}

struct Outcome {
    stdout: Vec<u8>,
    stderr: Vec<u8>,
    status: i32,
}

fn status_of(s: std::process::ExitStatus) -> i32 {
    use std::os::unix::process::ExitStatusExt;
    s.code().unwrap_or_else(|| 128 + s.signal().unwrap_or(0))
}

fn path_env() -> String {
    match applet_dir() {
        Some(d) => format!("{}:/usr/bin:/bin", d.display()),
        None => "/usr/bin:/bin".to_string(),
    }
}

fn run_native(prog: &Path, args: &[&str]) -> Outcome {
    let dir = fresh_dir("native");
    let out = Command::new(prog)
        .args(args)
        .current_dir(&dir)
        .env_clear()
        .env("PATH", path_env())
        .stdin(Stdio::null())
        .output()
        .expect("run natively");
    let _ = std::fs::remove_dir_all(&dir);
    Outcome { stdout: out.stdout, stderr: out.stderr, status: status_of(out.status) }
}

fn run_warden(prog: &Path, args: &[&str]) -> Outcome {
    let dir = fresh_dir("warden");
    let out = Command::new(env!("CARGO_BIN_EXE_warden"))
        .args(["run", "--root", "/", "--budget", "20000000000", "--env"])
        .arg(format!("PATH={}", path_env()))
        .arg(prog)
        .args(args)
        .current_dir(&dir)
        .stdin(Stdio::null())
        .output()
        .expect("run warden");
    let _ = std::fs::remove_dir_all(&dir);
    Outcome { stdout: out.stdout, stderr: out.stderr, status: status_of(out.status) }
}

/// Runs `prog args` both ways; `Err` describes the first difference.
fn compare(prog: &Path, args: &[&str]) -> Result<(), String> {
    let native = run_native(prog, args);
    let warden = run_warden(prog, args);
    if native.stdout != warden.stdout || native.status != warden.status {
        return Err(format!(
            "{} {:?}:\n--- native (status {}) ---\n{}\n--- warden (status {}) ---\n{}\n--- warden stderr ---\n{}",
            prog.display(),
            args,
            native.status,
            String::from_utf8_lossy(&native.stdout),
            warden.status,
            String::from_utf8_lossy(&warden.stdout),
            String::from_utf8_lossy(&warden.stderr),
        ));
    }
    Ok(())
}

fn check_fixture(name: &str, compiler: &str, args: &[&str]) {
    let Some(prog) = build(name, compiler) else { return };
    if let Err(e) = compare(&prog, args) {
        panic!("{e}");
    }
}

macro_rules! fixture_tests {
    ($($test:ident: $name:literal, $compiler:literal, [$($arg:literal),*];)*) => {$(
        #[test]
        fn $test() {
            check_fixture($name, $compiler, &[$($arg),*]);
        }
    )*};
}

fixture_tests! {
    glibc_hello: "hello", "gcc", ["one", "two words"];
    glibc_files: "files", "gcc", [];
    glibc_procs: "procs", "gcc", [];
    glibc_signals: "signals", "gcc", [];
    glibc_threads: "threads", "gcc", [];
    glibc_time: "timing", "gcc", [];
    glibc_poll: "poll", "gcc", [];
    glibc_timers: "timers", "gcc", [];
    glibc_links: "links", "gcc", [];
    musl_hello: "hello", "musl-gcc", ["one", "two words"];
    musl_files: "files", "musl-gcc", [];
    musl_procs: "procs", "musl-gcc", [];
    musl_signals: "signals", "musl-gcc", [];
    musl_threads: "threads", "musl-gcc", [];
    musl_time: "timing", "musl-gcc", [];
    musl_poll: "poll", "musl-gcc", [];
    musl_timers: "timers", "musl-gcc", [];
    musl_links: "links", "musl-gcc", [];
}

#[test]
fn pipes_in_five_builds() {
    check_five_builds("pipes");
}

#[test]
fn sockets_in_five_builds() {
    check_five_builds("sockets");
}

/// The host's dynamically linked Python with extension modules (`_socket`, `_ssl`,
/// `_sqlite3`, `_json` through dlopen), a thread, a child process and loopback TCP.
#[test]
fn python_script_with_sockets_threads_and_sqlite() {
    let python = Path::new("/usr/bin/python3");
    if !have("python3 (/usr/bin/python3)", python.exists()) {
        return;
    }
    let script = Path::new(FIXTURES).join("python_net.py");
    if let Err(e) = compare(python, &[script.to_str().unwrap()]) {
        panic!("{e}");
    }
}

/// Python's extension modules through `dlopen` (`_ctypes`, `_decimal`, `_ssl` with
/// OpenSSL), a C function called through `dlopen(NULL)`/`dlsym`, and `ctypes.util`
/// reading `/etc/ld.so.cache` (through `ldconfig -p`, a child process).
#[test]
fn python_extension_modules_load() {
    let python = Path::new("/usr/bin/python3");
    if !have("python3 (/usr/bin/python3)", python.exists()) {
        return;
    }
    let code = "import _ctypes, _decimal, ssl, ctypes, ctypes.util; \
                print(ctypes.CDLL(None).abs(-5), _decimal.Decimal('1.1') + 1, ssl.OPENSSL_VERSION_NUMBER > 0, \
                ctypes.util.find_library('c'))";
    if let Err(e) = compare(python, &["-c", code]) {
        panic!("{e}");
    }
}

/// A dynamic program (glibc and musl) whose libraries are found through `-rpath
/// '$ORIGIN/lib'`: one linked, one `dlopen`ed by name (see `origin.c`).
#[test]
fn origin_rpath_and_dlopen() {
    for compiler in ["gcc", "musl-gcc"] {
        if !have(compiler, on_path(compiler)) {
            continue;
        }
        let dir = work_dir().join(format!("origin-{compiler}-{}", std::process::id()));
        std::fs::create_dir_all(dir.join("lib")).unwrap();
        let src = Path::new(FIXTURES).join("origin.c");
        let cc = |args: &[&str]| {
            let status = Command::new(compiler).arg("-O2").arg(&src).args(args).current_dir(&dir).status().unwrap();
            assert!(status.success(), "{compiler} {args:?} failed");
        };
        cc(&["-shared", "-fPIC", "-DLIB", "-o", "lib/libgreet.so"]);
        cc(&["-shared", "-fPIC", "-DLIB", "-o", "lib/libplug.so"]);
        cc(&["-o", "prog", "-Llib", "-lgreet", "-ldl", "-Wl,-rpath,$ORIGIN/lib"]);
        let result = compare(&dir.join("prog"), &[]);
        let _ = std::fs::remove_dir_all(&dir);
        if let Err(e) = result {
            panic!("{e}");
        }
    }
}

/// sendfile, copy_file_range, splice, tee, memfd_create, timerfd, renameat2's exchange.
#[test]
fn fd_calls_in_five_builds() {
    check_five_builds("fdcalls");
}

/// signalfd, rt_sigtimedwait, the masks of ppoll/pselect6/epoll_pwait, ITIMER_VIRTUAL and
/// ITIMER_PROF, clone3.
#[test]
fn signal_calls_in_five_builds() {
    check_five_builds("sigcalls");
}

/// A FIFO the host made (`mkfifo` outside, seen through `--root /`) is a named pipe
/// between guest processes, as natively (it was EACCES).
#[test]
fn host_made_fifo_works_inside_the_guest() {
    if !busybox() {
        return;
    }
    let dir = work_dir().join(format!("host-fifo-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let fifo = dir.join("f");
    let c_path = std::ffi::CString::new(fifo.to_str().unwrap()).unwrap();
    // SAFETY: a valid NUL-terminated path; mkfifo only reads it.
    assert_eq!(unsafe { libc::mkfifo(c_path.as_ptr(), 0o644) }, 0, "mkfifo");
    let script = format!(
        "test -p {f} && echo is a fifo; (echo one; echo two) > {f} & while read l; do echo got $l; done < {f}; wait",
        f = fifo.display()
    );
    let result = compare(Path::new(BUSYBOX), &["sh", "-c", &script]);
    let _ = std::fs::remove_dir_all(&dir);
    if let Err(e) = result {
        panic!("{e}");
    }
}

/// Named pipes: mkfifo/mknod, opens that wait for the other side, O_NONBLOCK opens.
/// Item 6: sessions, process groups, stop and continue, what waits and SIGCHLD report, the
/// orphaned-group rules (`tests/fixtures/linux/jobctl.c`).
#[test]
fn job_control_in_five_builds() {
    check_five_builds("jobctl");
}

#[test]
fn fifo_in_five_builds() {
    check_five_builds("fifo");
}

/// inotify for the program's own changes.
#[test]
fn inotify_in_five_builds() {
    check_five_builds("inotify");
}

#[test]
fn epoll_in_five_builds() {
    check_five_builds("epoll");
}

#[test]
fn mmap_in_five_builds() {
    check_five_builds("mmap");
}

#[test]
fn procfs_in_five_builds() {
    check_five_builds("procfs");
}

/// A dynamically linked program: exec loads its interpreter (here musl's
/// `/lib/ld-musl-x86_64.so.1`), which maps the C library itself.
#[test]
fn musl_dynamic_programs_run() {
    for name in ["hello", "files", "procs"] {
        let Some(prog) = build_linked(name, "musl-gcc", false) else { return };
        let bytes = std::fs::read(&prog).unwrap();
        assert!(bytes.windows(14).any(|w| w == b"ld-musl-x86_64"), "{name} is not dynamically linked");
        if let Err(e) = compare(&prog, &["dyn"]) {
            panic!("{e}");
        }
    }
}

fn busybox() -> bool {
    have("busybox (/bin/busybox)", Path::new(BUSYBOX).exists())
}

#[test]
fn busybox_sh_script() {
    if !busybox() {
        return;
    }
    let script = Path::new(FIXTURES).join("busybox/shell.sh");
    if let Err(e) = compare(Path::new(BUSYBOX), &["sh", script.to_str().unwrap()]) {
        panic!("{e}");
    }
}

/// The program warden starts may be a `#!` script, also one whose interpreter is another
/// script (Debian's `ldd` and `which` are scripts), as execve allows.
#[test]
fn started_program_may_be_a_script() {
    if !busybox() {
        return;
    }
    use std::os::unix::fs::PermissionsExt;
    let dir = work_dir().join(format!("scripts-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let inner = dir.join("inner.sh");
    let outer = dir.join("outer.sh");
    std::fs::write(&inner, format!("#!{BUSYBOX}  sh \necho \"$0 | $*\"\nexit 3\n")).unwrap();
    std::fs::write(&outer, format!("#!{} one arg\n", inner.display())).unwrap();
    for f in [&inner, &outer] {
        std::fs::set_permissions(f, std::fs::Permissions::from_mode(0o755)).unwrap();
    }
    let result = compare(&outer, &["a", "b c"]).and_then(|()| compare(&inner, &[]));
    let _ = std::fs::remove_dir_all(&dir);
    if let Err(e) = result {
        panic!("{e}");
    }
}

#[test]
fn busybox_applets() {
    if !busybox() {
        return;
    }
    let setup = std::fs::read_to_string(Path::new(FIXTURES).join("busybox/applets.sh")).unwrap();
    let cases = std::fs::read_to_string(Path::new(FIXTURES).join("busybox/applets.txt")).unwrap();
    let mut failures = Vec::new();
    let mut count = 0;
    for line in cases.lines().filter(|l| !l.trim().is_empty() && !l.starts_with('#')) {
        let (name, cmd) = line.split_once('\t').expect("NAME<TAB>COMMAND");
        let script = format!("{setup}\n{cmd}\n");
        count += 1;
        match compare(Path::new(BUSYBOX), &["sh", "-c", &script]) {
            Ok(()) => eprintln!("applet {name}: same"),
            Err(e) => failures.push(format!("applet {name}: {e}")),
        }
    }
    assert!(count >= 30, "only {count} applet cases");
    assert!(failures.is_empty(), "{} of {count} applet cases differ:\n{}", failures.len(), failures.join("\n"));
}

/// Redox and Linux programs exec each other inside one guest: an image made
/// of the default image plus busybox.
#[test]
fn redox_and_linux_programs_exec_each_other() {
    if !busybox() {
        return;
    }
    let image = work_dir().join(format!("mixed-{}.tar", std::process::id()));
    {
        let mut builder = tar::Builder::new(std::fs::File::create(&image).unwrap());
        let mut archive = tar::Archive::new(warden::DEFAULT_IMAGE);
        for entry in archive.entries().unwrap() {
            let mut entry = entry.unwrap();
            let header = entry.header().clone();
            let path = entry.path().unwrap().into_owned();
            let mut data = Vec::new();
            std::io::Read::read_to_end(&mut entry, &mut data).unwrap();
            builder.append_data(&mut header.clone(), path, &data[..]).unwrap();
        }
        let bytes = std::fs::read(BUSYBOX).unwrap();
        let mut header = tar::Header::new_gnu();
        header.set_size(bytes.len() as u64);
        header.set_mode(0o755);
        header.set_cksum();
        builder.append_data(&mut header, "linux/busybox", &bytes[..]).unwrap();
        builder.finish().unwrap();
    }
    let warden = |args: &[&str]| {
        let out = Command::new(env!("CARGO_BIN_EXE_warden"))
            .args(["run", "--image"])
            .arg(&image)
            .args(args)
            .stdin(Stdio::null())
            .output()
            .unwrap();
        (String::from_utf8_lossy(&out.stdout).into_owned(), status_of(out.status))
    };
    // Redox sh runs a Linux program, in a pipeline into a Redox program.
    let (out, status) = warden(&["/bin/sh", "-c", "/linux/busybox echo from linux | /bin/wc -c; /linux/busybox false"]);
    assert_eq!((out.as_str(), status), ("11\n", 1));
    // Linux sh runs Redox programs.
    let (out, status) =
        warden(&["/linux/busybox", "sh", "-c", "/bin/echo from redox | /linux/busybox tr a-z A-Z; exit 4"]);
    assert_eq!((out.as_str(), status), ("FROM REDOX\n", 4));
    let _ = std::fs::remove_file(&image);
}

/// `--personality redox` on a Linux program makes its calls Redox calls,
/// which mean something else there: it never gets to print.
#[test]
fn personality_flag_overrides_the_rule() {
    let Some(prog) = build("hello", "gcc") else { return };
    let dir = fresh_dir("flag");
    let out = Command::new(env!("CARGO_BIN_EXE_warden"))
        .args(["run", "--root", "/", "--budget", "2000000000", "--personality", "redox"])
        .arg(&prog)
        .current_dir(&dir)
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert!(!String::from_utf8_lossy(&out.stdout).contains("hello"), "ran as Linux despite the flag");
    let out = Command::new(env!("CARGO_BIN_EXE_warden"))
        .args(["run", "--root", "/", "--personality", "linux"])
        .arg(&prog)
        .current_dir(&dir)
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert!(String::from_utf8_lossy(&out.stdout).starts_with("hello, world!"));
    assert_eq!(status_of(out.status), 3);
    let _ = std::fs::remove_dir_all(&dir);
}

/// `warden trace` shows Linux calls with Linux names and decoded arguments;
/// calls the layer does not implement show as ENOSYS.
#[test]
fn linux_calls_are_traced() {
    let Some(prog) = build("hello", "gcc") else { return };
    let (status, trace) = warden_trace("trace", &[prog.as_os_str()]);
    assert_eq!(status, 3, "{trace}");
    for needle in [
        "1 execve(\"",
        "arch_prctl(ARCH_SET_FS, ",
        "write(1, \"hello, world! argc=1\\n",
        "rseq(",
        "= -1 ENOSYS (Function not implemented)",
        "+++ exited with 3 +++",
    ] {
        assert!(trace.contains(needle), "{needle:?} missing from the trace:\n{trace}");
    }
}

/// `warden trace --root / ARGS` in a fresh directory: its exit status and its trace.
fn warden_trace(dir_name: &str, args: &[&std::ffi::OsStr]) -> (i32, String) {
    let dir = fresh_dir(dir_name);
    let out = Command::new(env!("CARGO_BIN_EXE_warden"))
        .args(["trace", "--root", "/"])
        .args(args)
        .current_dir(&dir)
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let _ = std::fs::remove_dir_all(&dir);
    (status_of(out.status), String::from_utf8_lossy(&out.stderr).into_owned())
}

/// `warden trace` follows a Linux program's children (a fork, then an exec in the child).
#[test]
fn linux_children_are_traced() {
    if !busybox() {
        return;
    }
    let args = [BUSYBOX, "sh", "-c", "/bin/busybox true; exit 5"].map(std::ffi::OsStr::new);
    let (status, trace) = warden_trace("trace-children", &args);
    assert_eq!(status, 5, "{trace}");
    for needle in ["2 execve(\"/bin/busybox\", [\"/bin/busybox\", \"true\"]", "2 +++ exited with 0 +++", "1 wait4("] {
        assert!(trace.contains(needle), "{needle:?} missing from the trace:\n{trace}");
    }
}

/// A Rust test binary (`rustc --test` of `rust_tests.rs`, dynamically linked) passes under
/// warden with the same report as natively (durations aside), one test thread and several.
#[test]
fn rust_test_binary_runs() {
    if !have("rustc", on_path("rustc")) {
        return;
    }
    let dir = work_dir().join(format!("rust-tests-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let prog = dir.join("rust_tests");
    let status = Command::new("rustc")
        .args(["--test", "--edition", "2021", "-o"])
        .arg(&prog)
        .arg(Path::new(FIXTURES).join("rust_tests.rs"))
        .status()
        .unwrap();
    assert!(status.success(), "rustc --test failed");
    let report = |out: &[u8]| {
        let text = String::from_utf8_lossy(out);
        text.lines().map(|l| l.split("; finished in").next().unwrap_or(l).to_string()).collect::<Vec<_>>()
    };
    for threads in ["--test-threads=1", "--test-threads=4"] {
        let native = run_native(&prog, &[threads]);
        let warden = run_warden(&prog, &[threads]);
        let (mut n, mut w) = (report(&native.stdout), report(&warden.stdout));
        if threads != "--test-threads=1" {
            // Tests finish in any order with several threads.
            n.sort();
            w.sort();
        }
        assert_eq!((native.status, &n), (warden.status, &w), "{}", String::from_utf8_lossy(&warden.stderr));
        assert!(n.iter().any(|l| l.starts_with("test result: ok. 4 passed; 0 failed; 1 ignored")), "{n:?}");
    }
    let _ = std::fs::remove_dir_all(&dir);
}

/// Issue 16's done-criterion as a user meets it: `cargo test` builds a small crate (the
/// `rust_tests.rs` fixture as its library; no dependencies, offline, once per process) and
/// its test binary, `target/debug/deps/CRATE-HASH`, passes under `warden run --root /` with
/// the same report as natively: threads, a panic the harness catches, captured output
/// (shown with `--nocapture`), an ignored test.
#[test]
fn cargo_test_binary_runs_under_warden() {
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    if !have("cargo", Command::new(&cargo).arg("--version").stdout(Stdio::null()).status().is_ok()) {
        return;
    }
    static BIN: OnceLock<PathBuf> = OnceLock::new();
    let prog = BIN.get_or_init(|| {
        // The crate is written outside the source tree (cargo writes its Cargo.lock there).
        let dir = work_dir().join("cargo-crate");
        std::fs::create_dir_all(dir.join("src")).unwrap();
        let manifest =
            "[package]\nname = \"lxcrate\"\nversion = \"0.1.0\"\nedition = \"2021\"\npublish = false\n\n[workspace]\n";
        std::fs::write(dir.join("Cargo.toml"), manifest).unwrap();
        std::fs::copy(Path::new(FIXTURES).join("rust_tests.rs"), dir.join("src/lib.rs")).unwrap();
        common::cargo::test_executable(&[], Some(&dir))
    });
    assert!(prog.starts_with(work_dir().join("cargo-crate/target/debug/deps")), "{}", prog.display());
    let report = |out: &[u8]| {
        let text = String::from_utf8_lossy(out);
        let mut lines: Vec<String> =
            text.lines().map(|l| l.split("; finished in").next().unwrap_or(l).to_string()).collect();
        // Tests finish in any order with several test threads.
        lines.sort();
        lines
    };
    for args in [&[][..], &["--nocapture", "--test-threads=1"][..]] {
        let native = run_native(prog, args);
        let warden = run_warden(prog, args);
        let (n, w) = (report(&native.stdout), report(&warden.stdout));
        assert_eq!((native.status, &n), (warden.status, &w), "{}", String::from_utf8_lossy(&warden.stderr));
        assert_eq!(warden.status, 0);
        assert!(n.iter().any(|l| l.starts_with("test result: ok. 4 passed; 0 failed; 1 ignored")), "{n:?}");
    }
}

/// `MAP_SHARED` maps of a memfd share its bytes (maps, read/write, fork, ftruncate), memfd
/// seals, and a shared file map after `mremap` grows or moves it.
#[test]
fn memfd_maps_and_seals_in_five_builds() {
    check_five_builds("memfd");
}

/// Signals as programs use them: `SA_RESTART` per call (restarted or EINTR as Linux
/// decides, `nanosleep`'s time left), `sigaltstack` (SS_ONSTACK, EPERM on it, SS_AUTODISARM,
/// `uc_stack` at sigreturn), and signalfd's sender fields for kill, tgkill, sigqueue and
/// SIGCHLD.
#[test]
fn signal_restart_altstack_and_senders_in_five_builds() {
    check_five_builds("sigrestart");
}

/// inotify's IN_OPEN, IN_ACCESS, IN_CLOSE_WRITE and IN_CLOSE_NOWRITE for the program's own
/// opens, reads, directory listings and (last) closes.
#[test]
fn inotify_open_access_close_in_five_builds() {
    check_five_builds("inotify_open");
}

/// What the guest is told about the machine agrees with itself for every `--cpu` model:
/// CPUID against /proc/cpuinfo, processor counts everywhere, and memory (sysinfo, sysconf,
/// /proc/meminfo) against `--max-mem-total`. Under warden only: a host's CPUID describes a
/// whole package its /proc need not.
#[test]
fn machine_description_is_consistent() {
    for compiler in ["gcc", "musl-gcc"] {
        let Some(prog) = build("machine", compiler) else { continue };
        for cpu in ["v1", "v2", "v3"] {
            let out = Command::new(env!("CARGO_BIN_EXE_warden"))
                .args(["run", "--root", "/", "--max-mem-total", "512", "--cpu", cpu])
                .arg(&prog)
                .stdin(Stdio::null())
                .output()
                .expect("run warden");
            let text = String::from_utf8_lossy(&out.stdout);
            assert!(out.status.success(), "{compiler} --cpu {cpu}: {text}");
            assert!(!text.contains("DIFFERENT"), "{compiler} --cpu {cpu}:\n{text}");
            assert_eq!(text.matches(" same (").count(), 11, "{compiler} --cpu {cpu}:\n{text}");
            assert!(text.contains("MemTotal MiB 512\n"), "{compiler} --cpu {cpu}:\n{text}");
        }
    }
}
