//! `escape`: tries every way out of a jail and a system-call mask, one line per attempt:
//! `contained NAME: detail` or `ESCAPED NAME: detail`, then `escape: N attempts, E escaped`
//! (exit status 0 only if nothing escaped). Run as `warden run escape` (tests/escape.rs).
//!
//! Design: the program (unjailed, as root) builds a scene under /tmp/esc: a secret file,
//! victims to remove, a jail directory holding hostile symlinks and a copy of this program,
//! and a sleeping process outside the jail. A forked child opens descriptors outside, enters
//! the jail, shrinks its mask (everything but `umask`) and makes each attempt; an attempt
//! "escapes" if it reads the secret, names or acts on anything outside, or widens the mask.
//! Attempts that change the file system are then verified from outside by the parent (the
//! child cannot see outside to tell). Forked grandchildren try what would end the child
//! (exec, nested jails, widening from a child). `escape --probe` is what runs *inside* the
//! jail after an exec: it checks that the jail and mask survived exec.
//!
//! The child exits with its attempt count (plus 128 if anything escaped), so the parent can
//! total the attempts. `escape --control` makes the same attempts without the jail and mask
//! (a negative control: most of them must then escape).

#![no_std]
#![no_main]

extern crate alloc;

use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;

use runtime::abi::{self, CALLS, Errno};
use runtime::fs::{self, File};
use runtime::process::Command;
use runtime::syscall::int80_3;
use runtime::{env, println, sys};

runtime::entry!(main);

const SECRET: &[u8] = b"SECRET-OUTSIDE";
/// A file name only the directory outside the jail has (seen in a listing of it).
const MARKER: &[u8] = b"OUTSIDE-MARKER";
const ESC: &str = "/tmp/esc";
const JAIL: &str = "/tmp/esc/jail";

/// Attempt tally.
struct Tally {
    attempts: usize,
    escaped: usize,
}

impl Tally {
    fn report(&mut self, name: &str, escaped: bool, detail: &str) {
        self.attempts += 1;
        if escaped {
            self.escaped += 1;
            println!("ESCAPED {name}: {detail}");
        } else {
            println!("contained {name}: {detail}");
        }
    }

    /// An attempt to read the secret through `path`.
    fn read(&mut self, name: &str, path: &str) {
        self.read_flags(name, path, abi::O_RDONLY);
    }

    fn read_flags(&mut self, name: &str, path: &str, flags: usize) {
        match File::open_with(path, flags) {
            Err(e) => self.report(name, false, &format!("open {path:?}: {}", e.description())),
            Ok(f) => {
                let mut data = Vec::new();
                let _ = f.read_to_end(&mut data);
                // The secret itself, or a listing of the directory outside.
                let leaked =
                    data.windows(SECRET.len()).any(|w| w == SECRET) || data.windows(MARKER.len()).any(|w| w == MARKER);
                self.report(name, leaked, &format!("open {path:?} read {} bytes", data.len()));
            }
        }
    }

    /// An attempt that must fail.
    fn fails(&mut self, name: &str, what: &str, r: Result<usize, Errno>) {
        match r {
            Err(e) => self.report(name, false, &format!("{what}: {}", e.description())),
            Ok(v) => self.report(name, true, &format!("{what} = {v}")),
        }
    }

    /// A path reported to the jailed process must not mention the outside.
    fn no_leak(&mut self, name: &str, what: &str, text: &str) {
        self.report(name, text.contains("/tmp/esc") || text.contains("jail"), &format!("{what} = {text:?}"));
    }
}

fn symlink(path: &str, target: &str) {
    let flags = abi::O_CREAT | abi::O_SYMLINK | abi::O_WRONLY | 0o777;
    match File::open_with(path, flags) {
        Ok(f) => {
            let _ = f.write_all(target.as_bytes());
        }
        Err(e) => println!("escape: setup: symlink {path}: {}", e.description()),
    }
}

fn setup() -> Result<(), String> {
    let fail = |what: &str, e: Errno| format!("setup: {what}: {}", e.description());
    fs::create_dir_all(&format!("{JAIL}/sub")).map_err(|e| fail("mkdir jail", e))?;
    fs::create_dir_all(&format!("{JAIL}/bin")).map_err(|e| fail("mkdir bin", e))?;
    fs::create_dir_all(&format!("{ESC}/victimdir")).map_err(|e| fail("mkdir victimdir", e))?;
    fs::write(&format!("{ESC}/secret.txt"), SECRET).map_err(|e| fail("secret", e))?;
    fs::write(&format!("{ESC}/victim"), b"victim").map_err(|e| fail("victim", e))?;
    fs::write(&format!("{ESC}/OUTSIDE-MARKER"), b"").map_err(|e| fail("marker", e))?;
    fs::write(&format!("{JAIL}/inside.txt"), b"inside").map_err(|e| fail("inside", e))?;
    let me = fs::read("/bin/escape").map_err(|e| fail("read /bin/escape", e))?;
    fs::write(&format!("{JAIL}/bin/escape"), &me).map_err(|e| fail("copy escape", e))?;
    symlink(&format!("{JAIL}/up"), "../secret.txt");
    symlink(&format!("{JAIL}/abs"), "/tmp/esc/secret.txt");
    symlink(&format!("{JAIL}/root"), "/");
    symlink(&format!("{JAIL}/dotdot"), "..");
    symlink(&format!("{JAIL}/sub/deep"), "../../../..");
    symlink(&format!("{JAIL}/loop"), "loop");
    symlink(&format!("{JAIL}/ping"), "pong");
    symlink(&format!("{JAIL}/pong"), "ping");
    symlink(&format!("{JAIL}/vict"), "/tmp/esc/victim");
    symlink(&format!("{JAIL}/dang"), "/tmp/esc/created2");
    symlink(&format!("{JAIL}/outdir"), "/tmp/esc");
    Ok(())
}

/// Runs `f` in a forked child; its exit status.
fn in_child(f: impl FnOnce() -> i32) -> i32 {
    match Command::new("escape").spawn_fn(f).and_then(|mut c| c.wait()) {
        Ok(status) => status.code().unwrap_or(-1),
        Err(_) => -2,
    }
}

fn all_calls() -> Vec<usize> {
    CALLS.iter().map(|c| c.number).collect()
}

fn read_path(path: &str) -> String {
    fs::read(path).map(|d| String::from_utf8_lossy(&d).into_owned()).unwrap_or_default()
}

fn fpath(fd: usize) -> Result<String, Errno> {
    let mut buf = [0u8; 256];
    let n = sys::fpath(fd, &mut buf)?;
    Ok(String::from_utf8_lossy(&buf[..n]).into_owned())
}

fn cwd() -> String {
    env::current_dir().unwrap_or_default()
}

/// The jailed child: every attempt from inside. With `control`, the child only moves into
/// the jail directory without entering the jail or masking anything: a negative control that
/// shows the attempts do reach outside when nothing stops them.
fn jailed(parent: usize, sleeper: usize, control: bool) -> i32 {
    let mut t = Tally { attempts: 0, escaped: 0 };
    // Descriptors opened before entering.
    let dir_out = sys::open(ESC, abi::O_RDONLY | abi::O_DIRECTORY).unwrap_or(usize::MAX);
    let secret_out = sys::open(&format!("{ESC}/secret.txt"), abi::O_RDONLY).unwrap_or(usize::MAX);
    let bin_out = sys::open("/bin/true", abi::O_RDONLY).unwrap_or(usize::MAX);
    let home = if control { JAIL } else { "/" };
    if control {
        let _ = sys::chdir(JAIL);
    } else {
        if let Err(e) = sys::jail(JAIL, 0) {
            println!("escape: jail: {}", e.description());
            return 254;
        }
        let mut allowed = all_calls();
        allowed.retain(|&n| n != abi::SYS_UMASK);
        if let Err(e) = sys::mask(&allowed, 0) {
            println!("escape: mask: {}", e.description());
            return 254;
        }
    }
    let me = sys::getpid();

    // `..` through every path-taking call (the working directory is the jail's root).
    t.read("open-dotdot", "../secret.txt");
    t.read("open-abs-dotdot", "/../tmp/esc/secret.txt");
    t.read("open-many-dotdot", "/../../../../../../../../tmp/esc/secret.txt");
    t.read("open-global-path", "/tmp/esc/secret.txt");
    t.read("open-file-scheme", "file:/../tmp/esc/secret.txt");
    t.read("open-file-scheme-relative", "file:../tmp/esc/secret.txt");
    t.read("open-dot-dotdot-mix", "./sub/.././../secret.txt");
    t.read("open-trailing-dotdot", "sub/../..");
    t.read("open-trailing-slash", "../");
    // SAFETY: the kernel reads `path.len()` bytes from `path`.
    let via80 =
        |path: &str| Errno::demux(unsafe { int80_3(abi::SYS_OPEN, path.as_ptr() as usize, path.len(), abi::O_RDONLY) });
    t.fails("open-int80-dotdot", "int 0x80 open ../secret.txt", via80("../secret.txt"));
    t.fails("open-write-dotdot", "open ../secret.txt O_WRONLY", sys::open("../secret.txt", abi::O_WRONLY));
    let made = sys::open("../created", abi::O_WRONLY | abi::O_CREAT | 0o644);
    t.report("create-dotdot", made.is_ok() && !fs::exists("/created"), "open ../created O_CREAT");
    let md = fs::create_dir("../escdir");
    t.report("mkdir-dotdot", md.is_ok() && !fs::exists("/escdir"), "mkdir ../escdir");
    t.fails("unlink-dotdot", "unlink ../victim", sys::unlink("../victim"));
    t.fails("unlink-abs", "unlink /tmp/esc/victim", sys::unlink("/tmp/esc/victim"));
    t.fails("rmdir-dotdot", "rmdir ../victimdir", sys::rmdir("../victimdir"));
    t.fails("rmdir-dot-dot", "rmdir ..", sys::rmdir(".."));
    t.fails("unlink-dot-dot", "unlink ..", sys::unlink(".."));
    let _ = sys::chdir("..");
    t.read("chdir-dotdot", "secret.txt");
    let _ = sys::chdir(home);
    let _ = sys::chdir("sub");
    let _ = sys::chdir("../..");
    t.read("chdir-sub-dotdot", "secret.txt");
    let _ = sys::chdir(home);
    let _ = sys::chdir("/../../tmp/esc");
    t.read("chdir-abs-dotdot", "secret.txt");
    let _ = sys::chdir(home);
    let _ = sys::chdir("sub");
    t.no_leak("getcwd", "getcwd in sub", &cwd());
    let _ = sys::chdir(home);

    // Symbolic links.
    t.read("symlink-relative", "up");
    t.read("symlink-absolute", "abs");
    t.read("symlink-root", "root/tmp/esc/secret.txt");
    t.read("symlink-dotdot", "dotdot/secret.txt");
    t.read("symlink-deep", "sub/deep/tmp/esc/secret.txt");
    t.read("symlink-dir-outside", "outdir/secret.txt");
    t.read("symlink-dir-listing", "outdir/");
    t.read_flags("symlink-nofollow", "abs", abi::O_RDONLY | abi::O_NOFOLLOW);
    t.fails("symlink-loop", "open loop", sys::open("loop", abi::O_RDONLY));
    t.fails("symlink-loop-pair", "open ping", sys::open("ping", abi::O_RDONLY));
    symlink("mine", "/../../../tmp/esc/secret.txt");
    t.read("symlink-made-inside-absolute", "mine");
    symlink("mine2", "../secret.txt");
    t.read("symlink-made-inside-relative", "mine2");
    t.fails("symlink-dangling-create", "open dang O_CREAT", sys::open("dang", abi::O_WRONLY | abi::O_CREAT | 0o644));
    let _ = sys::chdir("root");
    t.read("chdir-symlink", "tmp/esc/secret.txt");
    let _ = sys::chdir(home);
    t.fails("rmdir-through-symlink", "rmdir outdir/victimdir", sys::rmdir("outdir/victimdir"));
    let _ = sys::unlink("vict");
    t.report("unlink-symlink-only", false, "unlink vict removes the link (the victim is checked outside)");

    // Descriptors opened before entering.
    t.fails("dup-subpath-outside-dir", "dup(outside dir, \"secret.txt\")", sys::dup(dir_out, b"secret.txt"));
    t.fails("dup2-subpath-outside-dir", "dup2(outside dir, 50, \"secret.txt\")", sys::dup2(dir_out, 50, b"secret.txt"));
    match fpath(dir_out) {
        Ok(p) => t.no_leak("fpath-outside-dir", "fpath(outside dir)", &p),
        Err(e) => t.report("fpath-outside-dir", false, &format!("fpath(outside dir): {}", e.description())),
    }
    match fpath(secret_out) {
        Ok(p) => t.no_leak("fpath-outside-file", "fpath(outside file)", &p),
        Err(e) => t.report("fpath-outside-file", false, &format!("fpath(outside file): {}", e.description())),
    }
    let inside = sys::open("inside.txt", abi::O_RDONLY).unwrap_or(usize::MAX);
    let shown = fpath(inside).unwrap_or_default();
    t.report("fpath-inside", shown != "file:/inside.txt", &format!("fpath(inside.txt) = {shown:?}"));
    let status = in_child(|| {
        let err = sys::fexec(bin_out, &[b"true"], &[]);
        if err.0 == abi::EACCES { 42 } else { 43 }
    });
    t.report("fexec-outside-fd", status != 42, &format!("fexec(/bin/true opened before) -> child status {status}"));
    t.fails("exec-outside-path", "open /bin/true", sys::open("/bin/true", abi::O_RDONLY));

    // Other processes.
    t.fails("kill-parent", "kill(parent, 0)", sys::kill(parent, 0));
    t.fails("kill-init", "kill(1, 0)", sys::kill(1, 0));
    t.fails("kill-sleeper", "kill(sleeper, SIGTERM)", sys::kill(sleeper, abi::SIGTERM));
    t.fails("kill-negative-pid", "kill(-sleeper, 0)", sys::kill((sleeper as isize).wrapping_neg() as usize, 0));
    t.fails("kill-all", "kill(-1, 0)", sys::kill(usize::MAX, 0));
    t.fails("supervise-parent", "supervise(parent)", sys::supervise(parent));
    t.fails("supervise-sleeper", "supervise(sleeper)", sys::supervise(sleeper));
    t.fails("getpgid-outside", "getpgid(parent)", sys::getpgid(parent));
    t.fails("setpgid-outside", "setpgid(sleeper, sleeper)", sys::setpgid(sleeper, sleeper));
    let list = read_path("proc:");
    let pids: Vec<&str> = list.lines().collect();
    let foreign = pids.iter().any(|p| p.parse::<usize>().ok() != Some(me));
    t.report("proc-list", foreign, &format!("proc: lists {pids:?}"));
    t.fails("proc-parent", "open proc:PARENT/status", sys::open(&format!("proc:{parent}/status"), abi::O_RDONLY));
    t.fails("proc-init", "open proc:1/cmdline", sys::open("proc:1/cmdline", abi::O_RDONLY));
    t.fails("proc-sleeper", "open proc:SLEEPER/fds", sys::open(&format!("proc:{sleeper}/fds"), abi::O_RDONLY));
    t.fails("proc-sleeper-dir", "open proc:SLEEPER/", sys::open(&format!("proc:{sleeper}/"), abi::O_RDONLY));

    // The mask.
    t.fails("masked-call", "umask(0)", sys::umask(0));
    // SAFETY: no memory arguments.
    let r = Errno::demux(unsafe { runtime::syscall::int80_1(abi::SYS_UMASK, 0) });
    t.fails("masked-call-int80", "int 0x80 umask(0)", r);
    let widened = sys::mask(&all_calls(), 0);
    t.report("widen-mask", widened.is_ok() || sys::umask(0).is_ok(), &format!("mask(all) -> {widened:?}"));
    let status = in_child(|| {
        let r = sys::mask(&all_calls(), 0);
        if r.is_ok() || sys::umask(0).is_ok() { 1 } else { 0 }
    });
    t.report("widen-mask-child", status != 0, &format!("child mask(all) -> status {status}"));
    let status = in_child(|| {
        let fd = sys::open("/bin/escape", abi::O_RDONLY).unwrap_or(usize::MAX);
        let err = sys::fexec(fd, &[b"escape", b"--probe"], &[]);
        println!("escape: exec inside: {}", err.description());
        99
    });
    t.report("exec-keeps-jail-and-mask", status != 0, &format!("/bin/escape --probe after exec -> status {status}"));

    // Jailing again, from inside.
    let status = in_child(|| {
        let ok = [sys::jail("/", 0), sys::jail("..", 0), sys::jail("file:/../..", 0), sys::jail("root", 0)]
            .iter()
            .all(Result::is_ok);
        let leak = fs::read("../secret.txt").is_ok() || fs::read("/tmp/esc/secret.txt").is_ok();
        if leak {
            1
        } else if ok {
            0
        } else {
            2
        }
    });
    t.report(
        "rejail",
        status != 0,
        &format!("jail(\"/\"), jail(\"..\"), jail(\"file:/../..\"), jail(\"root\") -> {status}"),
    );
    t.fails("chdir-proc", "chdir proc:", sys::chdir("proc:"));
    let _ = sys::chdir(home);
    t.fails("jail-outside-path", "jail /tmp/esc then open", sys::jail(ESC, 0).and_then(|_| sys::open("secret.txt", 0)));

    println!("escape: jailed child made {} attempts, {} escaped", t.attempts, t.escaped);
    (t.attempts.min(127) + if t.escaped > 0 { 128 } else { 0 }) as i32
}

/// After exec inside the jail: still jailed and masked?
fn probe() -> i32 {
    let jailed = fs::read("../secret.txt").is_err() && fs::read("/tmp/esc/secret.txt").is_err();
    let masked = sys::umask(0).is_err() && sys::mask(&all_calls(), 0).is_err();
    let cwd_ok = cwd() == "/";
    if jailed && masked && cwd_ok { 0 } else { 1 }
}

fn main() -> i32 {
    let arg = env::args().get(1).cloned().unwrap_or_default();
    if arg == "--probe" {
        return probe();
    }
    let control = arg == "--control";
    if let Err(msg) = setup() {
        println!("escape: {msg}");
        return 2;
    }
    let parent = sys::getpid();
    let mut sleeper = match Command::new("/bin/sleep").arg("100000").spawn() {
        Ok(c) => c,
        Err(e) => {
            println!("escape: spawn sleep: {}", e.description());
            return 2;
        }
    };
    let sleeper_pid = sleeper.id();
    let status = in_child(|| jailed(parent, sleeper_pid, control));
    let mut t = Tally { attempts: 0, escaped: 0 };
    if !(0..=255).contains(&status) || status & 127 == 0 || status & 127 >= 126 {
        println!("escape: jailed child failed with status {status}");
        return 2;
    }
    let child_attempts = (status & 127) as usize;
    let child_escaped = status & 128 != 0;
    // Verified from outside.
    t.report("outside-secret-intact", read_path("/tmp/esc/secret.txt").as_bytes() != SECRET, "secret.txt unchanged");
    t.report("outside-victim-intact", !fs::exists("/tmp/esc/victim"), "victim still there");
    t.report("outside-victimdir-intact", !fs::exists("/tmp/esc/victimdir"), "victimdir still there");
    t.report("outside-nothing-created", fs::exists("/tmp/esc/created") || fs::exists("/tmp/created"), "no created");
    t.report("outside-no-dir-created", fs::exists("/tmp/esc/escdir") || fs::exists("/tmp/escdir"), "no escdir");
    t.report("outside-no-dangling-create", fs::exists("/tmp/esc/created2"), "no created2");
    t.report("outside-sleeper-alive", sys::kill(sleeper_pid, 0).is_err(), "sleeper alive");
    let _ = sys::kill(sleeper_pid, abi::SIGKILL);
    let _ = sleeper.wait();
    let total = child_attempts + t.attempts;
    let escaped = t.escaped + usize::from(child_escaped);
    println!(
        "escape: {total} attempts, {} escaped",
        if child_escaped { String::from("some") } else { format!("{escaped}") }
    );
    if escaped == 0 { 0 } else { 1 }
}
